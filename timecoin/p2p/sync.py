"""Block sync and block serving (DESIGN §8, §13): a node behind fetches block ranges from several
peers in parallel, verifies each block's commit certificate, applies them in height order, and
reports progress.

* **Claims are hints.** The heights peers claim (HELLO, BLOCK_ANNOUNCE, a decision served to the
  consensus engine: :meth:`BlockSync.note_height`) only schedule requests:
  the best claim is recomputed from the *connected* peers whenever it is needed, so a claim is
  forgotten when its peer leaves. A peer that fails to back its claim (NOTFOUND for the first
  height of a range within it, or a request unanswered for ``sync_request_timeout``) has its
  claim cut to what it served and loses reputation. The node reports ``syncing`` (and the
  claimed target) only while certified blocks keep arriving: a block connected by sync within
  the last ``sync_request_timeout``, so a peer that claims much and serves nothing never holds
  the node in initial block download.
* **Fetching**: the heights from tip + 1 up to ``sync_window`` ahead (and no higher than the
  best claim) that no received block or outstanding request covers are cut into GETBLOCKS ranges
  spread over the peers that claim them (each with at most ``sync_requests_per_peer``
  outstanding), never holding more than :data:`MAX_PENDING_BYTES` of unapplied blocks.
* **Receiving**: a peer answers a request with its blocks in order, each with its commit
  certificate (a certified block record, :func:`~timecoin.p2p.messages.encode_certified_block`):
  BLOCK for a record of at most one chunk, ordered BLOCK_CHUNKs for a larger one (the first
  chunk's header must hash to the announced block hash), or NOTFOUND for the height where it
  stops. A block nobody asked for, a height out of order, a header for another height or a
  block without a certificate is penalized.
* **Applying**: the sync task takes received blocks in height order; each block's certificate is
  verified (:func:`~timecoin.consensus.certificates.verify_commit_certificate`) against the
  masternode set the node derives from its own chain for that height, then the block is
  connected with its certificate through the chain's ``connect_block`` (full ledger
  validation; the certificate is stored in the block's store transaction). A block whose
  certificate or content fails gets its server penalized to a ban and dropped, and every block
  it sent is fetched again elsewhere. A request unanswered for ``sync_request_timeout`` goes to
  another peer.
* **Serving**: GETBLOCKS is answered from the store with each block's stored commit certificate,
  at most :data:`MAX_RESPONSE_BYTES` per request; NOTFOUND for the first height with no block or
  no certificate (genesis, a block connected without one) and everything after. A block the
  store finds damaged is answered NOTFOUND like an absent one, never sent.
* **Repairing** (DESIGN §13 "Storage integrity"; :meth:`BlockSync.enable_repair`): every read
  that finds a stored block damaged (a peer's GETBLOCKS, ``getblock``, the transaction index)
  queues its height, at most :data:`MAX_REPAIR_HEIGHTS` at once. The sync task asks one peer
  that claims the height for that one block (GETBLOCKS of 1, in the same per-peer request queue,
  so answers stay in order), one request in flight per height; NOTFOUND or no answer within
  ``sync_request_timeout`` (the usual penalty) passes it to a peer not yet asked, and once every
  candidate was asked, the round starts again at most once per ``sync_request_timeout``. The
  answer repairs the block only through ``ChainStore.repair_block``: its bytes must hash to the
  digest stored with the block, so they are exactly what this node validated when it connected
  it, witnesses included; bytes that do not cost the sender :data:`PENALTY_BAD_REPAIR` and go
  to the next peer. A block without a usable digest (stored before digests were kept, digest
  record damaged) or at height 0 is not fetched: logged once with the operator's fix. The
  damaged block is never served meanwhile.

The sync task owns the request table, the received blocks and the repairs; frame handlers only
record what arrived and wake it.
"""

from __future__ import annotations

import asyncio
import logging
import math
import struct
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

import timecoin_native

from timecoin._args import HASH_LEN
from timecoin.consensus.certificates import CertificateError, verify_commit_certificate
from timecoin.consensus.validators import ValidatorSet
from timecoin.core.types import HEADER_LEN, BlockHeader
from timecoin.p2p import messages as m
from timecoin.p2p.config import P2PConfig
from timecoin.p2p.messages import MessageType
from timecoin.p2p.peer import Misbehaving
from timecoin.store.chainstore import RepairMismatch, RepairRefused, StoreError, repair_hint

if TYPE_CHECKING:
    from timecoin.p2p.connman import ConnMan
    from timecoin.p2p.peer import Peer
    from timecoin.store.chainstore import ChainStore

log = logging.getLogger(__name__)

MAX_PENDING_BYTES = 256 * 1024 * 1024
"""Bytes of received, not yet applied blocks beyond which no new range is requested."""
PENALTY_BAD_BLOCK = 100
"""An invalid block, a missing or invalid commit certificate: ban (docs/p2p.md)."""
PENALTY_UNSOLICITED = 20
PENALTY_SLOW = 10
"""A request unanswered in time, or NOTFOUND for a height the peer claimed: its claim is cut."""
PENALTY_BAD_REPAIR = 20
"""A block sent for a repair whose bytes are not the block (they miss the digest this node stored
with it): bad data, like a malformed payload (docs/p2p.md); the repair goes to another peer."""
MAX_REPAIR_HEIGHTS = 64
"""Damaged blocks awaiting a peer's copy at once; one found beyond it is queued by its next read."""
MAX_UNREPAIRABLE = 1024
"""Damaged blocks remembered as not repairable from peers (each logged once); the oldest is
forgotten beyond it."""
_UNDO_HEADER = struct.Struct("<BQ32s")
"""The start of an undo record: version u8, height u64, block hash (docs/encoding.md, "Undo
record"): how a damaged block's hash is mapped to its height."""
PROGRESS_LOG_INTERVAL = 5.0
RATE_WINDOW = 10.0
"""Seconds of applied blocks the blocks/s figure averages over."""


class SyncChain(Protocol):
    """What block sync needs from the node's chain (a subset of ``NodeHooks``)."""

    def chain_tip(self) -> tuple[int, bytes]:
        """(height, block hash) of the tip."""
        ...

    def block_hash(self, height: int) -> bytes | None: ...

    def block(self, block_hash: bytes) -> bytes | None: ...

    def commit_certificate(self, height: int) -> bytes | None:
        """The stored commit certificate of the committed block at ``height`` (None without)."""
        ...

    def leader_set(self, height: int) -> tuple[Sequence[bytes], Sequence[int]]:
        """(public keys ascending, weights) of the masternode set of ``height`` (tip + 1)."""
        ...

    def connect_block(self, raw: bytes, certificate: bytes | None = None) -> None:
        """Validates and commits the next block, storing ``certificate`` (verified by the
        caller) in its store transaction."""
        ...


@dataclass(slots=True)
class Request:
    """GETBLOCKS [start, end) outstanding at one peer; ``next`` is the height it owes next."""

    peer_id: int
    start: int
    end: int
    next: int
    last_progress: float
    repair: bool = False
    """A request for one damaged stored block (:class:`Repair`), not for blocks to connect."""


@dataclass(slots=True)
class Repair:
    """A damaged stored block awaiting a peer's copy: the peers asked this round, the request in
    flight (at most one) and when the last one was sent (``-inf``: never)."""

    height: int
    block_hash: bytes
    tried: set[int] = field(default_factory=set)
    request: Request | None = None
    last_sent: float = -math.inf


@dataclass(slots=True)
class Assembly:
    """A certified block record arriving in chunks from one peer."""

    height: int
    block_hash: bytes
    total_len: int
    count: int
    next_index: int = 0
    data: bytearray = field(default_factory=bytearray)


@dataclass(slots=True)
class Received:
    """A received block waiting for its turn: its bytes, its certificate, who sent it."""

    raw: bytes
    block_hash: bytes
    certificate: bytes
    peer_id: int

    @property
    def size(self) -> int:
        return len(self.raw) + len(self.certificate)


class BlockSync:
    """Fetching, verifying, applying and serving blocks for one node. ``chain_id`` is the genesis
    hash commit certificates are signed over."""

    def __init__(
        self,
        connman: ConnMan,
        config: P2PConfig,
        max_block_size: int,
        chain_id: bytes,
        chain: SyncChain,
        clock: Callable[[], float],
    ) -> None:
        self._connman = connman
        self._config = config
        self._max_block_size = max_block_size
        self._chain_id = chain_id
        self._chain = chain
        self._clock = clock
        self._requests: dict[int, list[Request]] = {}
        self._blocks: dict[int, Received] = {}
        self._pending_bytes = 0
        self._assembly: dict[int, Assembly] = {}
        self._wake = asyncio.Event()
        self._applied: deque[tuple[float, int]] = deque()
        self._last_certified: float | None = None
        """When sync last connected a block with a verified certificate."""
        self._last_log = 0.0
        self.served: dict[bytes, int] = {}
        """Blocks applied per serving node key (a metric; tests check the spread)."""
        self._store: ChainStore | None = None
        self._on_repaired: Callable[[int, bytes, bytes], None] | None = None
        self._repairs: dict[int, Repair] = {}
        self._unrepairable: dict[bytes, None] = {}
        for mtype, handler in (
            (MessageType.GETBLOCKS, self._on_getblocks),
            (MessageType.BLOCK, self._on_block),
            (MessageType.BLOCK_CHUNK, self._on_chunk),
            (MessageType.NOTFOUND, self._on_notfound),
            (MessageType.BLOCK_ANNOUNCE, self._on_announce),
        ):
            connman.handlers[mtype] = handler
        connman.on_established.append(lambda peer: self._wake.set())
        connman.on_disconnected.append(self._on_disconnected)

    # -- progress --------------------------------------------------------------------------------

    def _peers(self) -> list[Peer]:
        return [p for p in self._connman.peers.values() if p.established and not p.closing]

    def best_claim(self) -> int:
        """The highest height a connected peer claims (HELLO, BLOCK_ANNOUNCE, cut when it fails
        to serve it), or our tip: a hint that schedules requests, never state (DESIGN §13)."""
        return max([self._chain.chain_tip()[0], *(p.height for p in self._peers())])

    def syncing(self) -> bool:
        """Whether the node is catching up: a connected peer claims more than our tip *and* sync
        connected a block with a verified commit certificate within ``sync_request_timeout``."""
        last = self._last_certified
        if last is None or self._clock() - last > self._config.sync_request_timeout:
            return False
        return self.best_claim() > self._chain.chain_tip()[0]

    def status(self) -> dict[str, object]:
        """height, target (the best claim while :meth:`syncing`, else our height), blocks_per_s,
        eta_s (``None`` when unknown), syncing."""
        height = self._chain.chain_tip()[0]
        syncing = self.syncing()
        target = self.best_claim() if syncing else height
        rate = self._rate()
        behind = target - height
        return {
            "height": height,
            "target": target,
            "blocks_per_s": rate,
            "eta_s": (behind / rate if rate > 0 else None) if behind > 0 else 0.0,
            "syncing": syncing,
        }

    def _rate(self) -> float:
        samples = self._applied
        now = self._clock()
        while samples and now - samples[0][0] > RATE_WINDOW:
            samples.popleft()
        if len(samples) < 2 or samples[-1][0] <= samples[0][0]:
            return 0.0
        return (samples[-1][1] - samples[0][1]) / (samples[-1][0] - samples[0][0])

    # -- serving ---------------------------------------------------------------------------------

    def _on_getblocks(self, peer: Peer, payload: bytes) -> None:
        start, count = m.decode_getblocks(payload)
        chain = self._chain
        sent = 0
        for height in range(start, start + count):
            if sent > m.MAX_RESPONSE_BYTES:
                peer.send(MessageType.NOTFOUND, m.encode_u64(height))
                return
            block_hash = chain.block_hash(height)
            raw = chain.block(block_hash) if block_hash is not None else None
            certificate = chain.commit_certificate(height) if raw is not None else None
            if raw is None or block_hash is None or not certificate:
                peer.send(MessageType.NOTFOUND, m.encode_u64(height))
                return
            record = m.encode_certified_block(certificate, raw)
            if len(record) <= m.BLOCK_CHUNK_SIZE:
                peer.send(MessageType.BLOCK, m.encode_u64(height) + record)
            else:
                for chunk in m.split_block(height, block_hash, record):
                    peer.send(MessageType.BLOCK_CHUNK, chunk)
            sent += len(record)

    # -- receiving -------------------------------------------------------------------------------

    def _expected(self, peer: Peer, height: int) -> Request:
        requests = self._requests.get(peer.id)
        if not requests or requests[0].next != height:
            owed = requests[0].next if requests else None
            raise Misbehaving(PENALTY_UNSOLICITED, f"block {height} not requested (owed: {owed})")
        return requests[0]

    def _on_block(self, peer: Peer, payload: bytes) -> None:
        height, certificate, raw = m.decode_block_message(payload)
        request = self._expected(peer, height)
        if peer.id in self._assembly:
            raise Misbehaving(PENALTY_UNSOLICITED, "BLOCK in the middle of a chunked block")
        self._received(peer, request, height, certificate, raw)

    def _on_chunk(self, peer: Peer, payload: bytes) -> None:
        chunk = m.BlockChunk.decode(payload)
        assembly = self._assembly.get(peer.id)
        if assembly is None:
            request = self._expected(peer, chunk.height)
            if chunk.index != 0:
                raise Misbehaving(
                    PENALTY_UNSOLICITED, f"chunk {chunk.index} of block {chunk.height} before chunk 0"
                )
            # Chunk 0 holds the certificate and the header (MAX_SYNC_CERTIFICATE sees to it).
            cert_len, header_bytes = m.certified_block_header(chunk.data)
            if cert_len == 0:
                raise Misbehaving(
                    PENALTY_BAD_BLOCK, f"block {chunk.height} sent without a commit certificate"
                )
            if chunk.total_len - 4 - cert_len > self._max_block_size:
                raise Misbehaving(
                    PENALTY_BAD_BLOCK, f"chunked block of {chunk.total_len} bytes over the maximum"
                )
            header = BlockHeader.decode(header_bytes)
            if header.hash != chunk.block_hash or header.height != chunk.height:
                raise Misbehaving(
                    PENALTY_BAD_BLOCK, "first chunk's header does not match its block hash and height"
                )
            assembly = self._assembly[peer.id] = Assembly(
                chunk.height, chunk.block_hash, chunk.total_len, chunk.count
            )
        elif (chunk.height, chunk.block_hash, chunk.total_len, chunk.count, chunk.index) != (
            assembly.height,
            assembly.block_hash,
            assembly.total_len,
            assembly.count,
            assembly.next_index,
        ):
            del self._assembly[peer.id]
            raise Misbehaving(
                PENALTY_UNSOLICITED, f"chunk {chunk.index} out of order for block {assembly.height}"
            )
        else:
            request = self._expected(peer, chunk.height)
        assembly.data += chunk.data
        assembly.next_index += 1
        request.last_progress = self._clock()
        if assembly.next_index == assembly.count:
            del self._assembly[peer.id]
            certificate, raw = m.decode_certified_block(bytes(assembly.data))
            self._received(peer, request, assembly.height, certificate, raw)

    def _received(self, peer: Peer, request: Request, height: int, certificate: bytes, raw: bytes) -> None:
        if request.repair:
            self._requests[peer.id].pop(0)
            self._repair_received(peer, height, raw)
            return
        if not certificate:
            raise Misbehaving(PENALTY_BAD_BLOCK, f"block {height} sent without a commit certificate")
        if len(raw) < HEADER_LEN:
            raise Misbehaving(PENALTY_BAD_BLOCK, f"block {height} shorter than a header")
        header = BlockHeader.decode(raw[:HEADER_LEN])
        if header.height != height:
            raise Misbehaving(
                PENALTY_BAD_BLOCK, f"block sent as height {height} has header height {header.height}"
            )
        request.next += 1
        request.last_progress = self._clock()
        if request.next >= request.end:
            self._requests[peer.id].pop(0)
        if height not in self._blocks and height > self._chain.chain_tip()[0]:
            entry = self._blocks[height] = Received(raw, header.hash, certificate, peer.id)
            self._pending_bytes += entry.size
        self._wake.set()

    def _on_notfound(self, peer: Peer, payload: bytes) -> None:
        height = m.decode_u64(payload, "NOTFOUND")
        requests = self._requests.get(peer.id)
        if not requests or not requests[0].start <= height <= requests[0].next:
            raise Misbehaving(PENALTY_UNSOLICITED, f"NOTFOUND {height} for no request")
        request = requests.pop(0)
        self._assembly.pop(peer.id, None)
        self._wake.set()
        if request.repair:
            # It cannot serve a block below our tip (its own copy damaged, say): no claim of
            # ours to back, so no penalty; the next peer is asked.
            return
        if height == request.start:
            # It has none of a range it claimed: its claim is cut (don't ask it again until it
            # announces more), and the claim cost it (DESIGN §13: claims are hints).
            claimed = peer.height
            peer.height = min(peer.height, height - 1)
            raise Misbehaving(PENALTY_SLOW, f"claimed height {claimed} but has no certified block {height}")

    def _on_announce(self, peer: Peer, payload: bytes) -> None:
        height, block_hash = m.decode_announce(payload)
        if height > peer.height:
            peer.height, peer.tip_hash = height, block_hash
            self._wake.set()

    def note_height(self, peer: Peer, height: int) -> None:
        """``peer`` showed it holds the certified block ``height`` (it served a verified decision
        of it, :class:`~timecoin.consensus.effects.SyncBlock`): its claim rises to at least
        ``height`` and the blocks up to it are fetched like any claim's (a hint like the others:
        cut if it fails to serve)."""
        if height > peer.height and peer.established and not peer.closing:
            peer.height = height
            self._wake.set()

    def _on_disconnected(self, peer: Peer) -> None:
        self._requests.pop(peer.id, None)
        self._assembly.pop(peer.id, None)
        self._wake.set()

    # -- the task --------------------------------------------------------------------------------

    async def run(self) -> None:
        """The sync task: apply what arrived, expire stale requests, request what is missing."""
        period = min(1.0, self._config.sync_request_timeout / 2)
        while True:
            # asyncio.timeout, not wait_for: on 3.11 wait_for swallows a cancellation that
            # arrives as the event is set, and stop() sets it while cancelling this task.
            try:
                async with asyncio.timeout(period):
                    await self._wake.wait()
            except TimeoutError:
                pass
            self._wake.clear()
            await self._apply_ready()
            self._expire()
            self._schedule()
            self._schedule_repairs()
            self._log_progress()

    async def _apply_ready(self) -> None:
        applied = 0
        while True:
            tip = self._chain.chain_tip()[0]
            for stale in [h for h in self._blocks if h <= tip]:
                self._pending_bytes -= self._blocks.pop(stale).size
            entry = self._blocks.pop(tip + 1, None)
            if entry is None:
                break
            height = tip + 1
            self._pending_bytes -= entry.size
            peer = self._connman.peers.get(entry.peer_id)
            try:
                keys, weights = self._chain.leader_set(height)
                validators = ValidatorSet.of(height, keys, weights)
            except Exception:
                # Our chain cannot name the set (a bug or a damaged registry), not the peer's fault.
                log.exception(
                    "no masternode set for height %d: block not applied", height, extra={"height": height}
                )
                break
            try:
                verify_commit_certificate(
                    entry.certificate, entry.block_hash, height, validators, self._chain_id
                )
            except CertificateError as e:
                self._bad_block(entry.peer_id, peer, height, f"bad commit certificate ({e.code})", e)
                continue
            try:
                self._chain.connect_block(entry.raw, entry.certificate)
            except (timecoin_native.ValidationError, ValueError) as e:
                self._bad_block(entry.peer_id, peer, height, getattr(e, "code", "bad-block"), e)
                continue
            except Exception:
                # Our failure (the store, say), not the peer's: the block is fetched again.
                log.exception("connecting block %d failed", height, extra={"height": height})
                break
            applied += 1
            now = self._clock()
            self._last_certified = now
            self._applied.append((now, height))
            if peer is not None and peer.node_key is not None:
                self.served[peer.node_key] = self.served.get(peer.node_key, 0) + 1
            if applied % 16 == 0:
                await asyncio.sleep(0)

    def _bad_block(self, peer_id: int, peer: Peer | None, height: int, code: str, error: Exception) -> None:
        log.warning(
            "block %d from peer %d is refused (%s): %s",
            height,
            peer_id,
            code,
            error,
            extra={"height": height, "peer": peer_id},
        )
        for h in [h for h, r in self._blocks.items() if r.peer_id == peer_id]:
            self._pending_bytes -= self._blocks.pop(h).size
        self._requests.pop(peer_id, None)
        self._assembly.pop(peer_id, None)
        if peer is not None:
            self._connman.penalize(
                peer, PENALTY_BAD_BLOCK, f"served invalid block {height}: {code}", disconnect=True
            )

    def _expire(self) -> None:
        now = self._clock()
        timeout = self._config.sync_request_timeout
        for peer_id, requests in list(self._requests.items()):
            if requests and now - requests[0].last_progress > timeout:
                del self._requests[peer_id]
                self._assembly.pop(peer_id, None)
                peer = self._connman.peers.get(peer_id)
                if peer is not None:
                    # It does not back its claim: cut the claim to what it served, charge it.
                    peer.height = min(peer.height, requests[0].next - 1)
                    self._connman.penalize(
                        peer, PENALTY_SLOW, f"block request unanswered for {timeout:.1f} s"
                    )

    def _schedule(self) -> None:
        tip = self._chain.chain_tip()[0]
        peers = self._peers()
        claim = max([tip, *(p.height for p in peers)])
        if claim <= tip or self._pending_bytes > MAX_PENDING_BYTES:
            return
        last = min(claim, tip + self._config.sync_window)
        covered = set(self._blocks)
        for requests in self._requests.values():
            for r in requests:
                covered.update(range(r.next, r.end))
        gaps: list[list[int]] = []
        for h in range(tip + 1, last + 1):
            if h in covered:
                continue
            if gaps and gaps[-1][1] == h:
                gaps[-1][1] = h + 1
            else:
                gaps.append([h, h + 1])
        if not gaps:
            return
        limit = self._config.sync_requests_per_peer
        candidates = [p for p in peers if len(self._requests.get(p.id, ())) < limit]
        if not candidates:
            return
        missing = sum(end - start for start, end in gaps)
        size = max(
            1,
            min(
                self._config.sync_blocks_per_request,
                m.MAX_BLOCKS_PER_REQUEST,
                math.ceil(missing / len(candidates)),
            ),
        )
        now = self._clock()
        for start, end in gaps:
            while start < end:
                ready = [
                    p for p in candidates if p.height >= start and len(self._requests.get(p.id, ())) < limit
                ]
                if not ready:
                    return
                # The least busy peer next: consecutive ranges spread over the peers.
                peer = min(ready, key=lambda p: len(self._requests.get(p.id, ())))
                count = min(size, end - start, peer.height - start + 1)
                self._requests.setdefault(peer.id, []).append(
                    Request(peer.id, start, start + count, start, now)
                )
                peer.send(MessageType.GETBLOCKS, m.encode_getblocks(start, count))
                start += count

    # -- repairing ----------------------------------------------------------------------------------

    def enable_repair(
        self, store: ChainStore, repaired: Callable[[int, bytes, bytes], None] | None = None
    ) -> None:
        """Repairs the damaged blocks of ``store`` (the chain store the hooks read) from peers
        from now on (module docstring, "Repairing"): sets the store's damage listener, which hands
        each damaged block over to this event loop from whatever thread read it, and queues the
        blocks reads found damaged before. ``repaired(height, block_hash, raw)`` is called on the
        loop after each repair (the node indexes the block's transactions again). Call it on the
        loop the sync task runs on."""
        loop = asyncio.get_running_loop()

        def damaged(block_hash: bytes) -> None:
            if not loop.is_closed():
                loop.call_soon_threadsafe(self.request_repair, block_hash)

        self._store = store
        self._on_repaired = repaired
        store.damage_listener = damaged
        for block_hash in store.damaged_block_hashes():
            self.request_repair(block_hash)

    def repairs_pending(self) -> dict[int, bytes]:
        """Height → hash of the damaged blocks awaiting a peer's copy."""
        return {height: r.block_hash for height, r in self._repairs.items()}

    def request_repair(self, block_hash: bytes) -> None:
        """Queues the repair of the stored block ``block_hash`` a read found damaged (on the loop).
        Nothing happens for a block queued already, one known not to be repairable, or while
        :data:`MAX_REPAIR_HEIGHTS` are queued (its next read queues it). A block whose height
        cannot be found, genesis (peers serve no genesis) or a block without a usable digest is
        not repairable from peers: logged once with the operator's fix."""
        store = self._store
        if store is None or block_hash in self._unrepairable:
            return
        if any(r.block_hash == block_hash for r in self._repairs.values()):
            return
        height = _committed_height(store, block_hash)
        if height is None:
            self._refuse(
                block_hash,
                f"damaged block {block_hash.hex()} is not repaired from peers: its height cannot be "
                f"read from its undo record and the height index; {repair_hint(store.path)}",
            )
            return
        if height == 0:
            self._refuse(
                block_hash,
                f"the damaged genesis block is not repaired from peers (they do not serve it); "
                f"{repair_hint(store.path)}",
            )
            return
        digest = store.get(b"digests", block_hash)
        if digest is None or len(digest) != HASH_LEN:
            what = "stored before block digests were kept" if digest is None else "its digest is damaged"
            self._refuse(
                block_hash,
                f"damaged block {height} ({block_hash.hex()}) is not repaired from peers: {what}, "
                "so no peer's copy can be proven to be the bytes this node validated; "
                f"{repair_hint(store.path)}",
            )
            return
        if len(self._repairs) >= MAX_REPAIR_HEIGHTS:
            log.debug("block %d is damaged, but %d repairs are pending", height, len(self._repairs))
            return
        self._repairs[height] = Repair(height, block_hash)
        log.info(
            "fetching a copy of damaged block %d (%s) from peers",
            height,
            block_hash.hex(),
            extra={"height": height, "block": block_hash.hex()},
        )
        self._wake.set()

    def _refuse(self, block_hash: bytes, message: str) -> None:
        """Remembers ``block_hash`` as not repairable from peers and logs ``message`` once."""
        if len(self._unrepairable) >= MAX_UNREPAIRABLE:
            del self._unrepairable[next(iter(self._unrepairable))]
        self._unrepairable[block_hash] = None
        log.error("%s", message)

    def _schedule_repairs(self) -> None:
        """Sends GETBLOCKS of one block for each queued repair with no request in flight, to the
        least busy connected peer that claims its height and was not asked this round."""
        store = self._store
        if store is None or not self._repairs:
            return
        now = self._clock()
        limit = self._config.sync_requests_per_peer
        peers = self._peers()
        for height, repair in list(self._repairs.items()):
            if store.block_hash(height) != repair.block_hash:
                del self._repairs[height]  # rolled back meanwhile: nothing left to repair
                continue
            pending = repair.request
            if pending is not None and any(r is pending for r in self._requests.get(pending.peer_id, ())):
                continue
            repair.request = None
            ready = [p for p in peers if p.height >= height and len(self._requests.get(p.id, ())) < limit]
            untried = [p for p in ready if p.id not in repair.tried]
            if not untried and now - repair.last_sent >= self._config.sync_request_timeout:
                repair.tried.clear()  # every candidate was asked: a new round
                untried = ready
            if not untried:
                continue
            peer = min(untried, key=lambda p: len(self._requests.get(p.id, ())))
            request = Request(peer.id, height, height + 1, height, now, repair=True)
            self._requests.setdefault(peer.id, []).append(request)
            repair.request, repair.last_sent = request, now
            repair.tried.add(peer.id)
            peer.send(MessageType.GETBLOCKS, m.encode_getblocks(height, 1))

    def _repair_received(self, peer: Peer, height: int, raw: bytes) -> None:
        """A peer's copy of a damaged block: repairs the store with it if it is the block (the
        store checks it against the stored digest), else charges the peer."""
        self._wake.set()
        repair = self._repairs.get(height)
        store = self._store
        if repair is None or store is None:
            return  # rolled back or repaired meanwhile
        repair.request = None
        try:
            repaired = store.repair_block(repair.block_hash, raw)
        except RepairMismatch as e:
            raise Misbehaving(PENALTY_BAD_REPAIR, f"sent a wrong copy of block {height}: {e}") from None
        except RepairRefused as e:
            del self._repairs[height]
            self._refuse(repair.block_hash, str(e))
            return
        except StoreError:
            del self._repairs[height]  # LMDB failed (logged by the store); the next read queues it
            return
        del self._repairs[height]
        if not repaired:
            return
        log.warning(
            "damaged block %d (%s) repaired with the copy of peer %r; it is served again",
            height,
            repair.block_hash.hex(),
            peer,
        )
        if self._on_repaired is not None:
            try:
                self._on_repaired(height, repair.block_hash, raw)
            except Exception:
                log.exception("after repairing block %d", height, extra={"height": height})

    def _log_progress(self) -> None:
        now = self._clock()
        if now - self._last_log < PROGRESS_LOG_INTERVAL:
            return
        status = self.status()
        if status["syncing"]:
            self._last_log = now
            log.info(
                "sync: height %s of %s, %.1f blocks/s, ETA %s s",
                status["height"],
                status["target"],
                status["blocks_per_s"],
                "?" if status["eta_s"] is None else f"{status['eta_s']:.0f}",
            )


def _committed_height(store: ChainStore, block_hash: bytes) -> int | None:
    """The height of the committed block ``block_hash``: 0 for genesis, else the height its undo
    record names, if the undo record names this block and the height index holds it there."""
    if block_hash == store.genesis_hash():
        return 0
    undo = store.undo(block_hash)
    if undo is None or len(undo) < _UNDO_HEADER.size:
        return None
    _, height, named = _UNDO_HEADER.unpack_from(undo)
    return height if named == block_hash and store.block_hash(height) == block_hash else None
