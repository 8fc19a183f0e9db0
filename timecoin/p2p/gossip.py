"""Gossip of transactions, votes and heartbeats (DESIGN §8): batches in both directions, a
seen-cache so nothing is handled or relayed twice, and a handler registry for the opaque
consensus and masternode items.

Inbound, a batch's items are checked against the seen-cache as the frame arrives (a duplicate
costs one hash) and the new ones are queued for the gossip task, which hands everything queued
to its consumer in one call per kind: transactions to the node's ``submit_transactions``, votes
and heartbeats to the registered handler. Accepted items are queued for relay to every other
peer and sent after at most ``gossip_interval`` seconds, many per frame. The seen-cache is keyed
by a hash of the item's full bytes (witnesses included), so a copy with a broken witness cannot
shadow the real transaction.

Backpressure: past :data:`MAX_PENDING_ITEMS` queued items the node stops reading from the peers
that sent them until the task catches up.

Consensus items are relayed only on the handler's word, item by item (:data:`ItemHandler`): the
consensus handler says yes only for items that decoded and verified; an item it calls a
:class:`BadItem` (undecodable, badly signed) costs its sender reputation.

**Transactions on request** (DESIGN §8: "votes naming unknown txids make the node fetch them,
within a bound"). :meth:`Gossip.request_transactions` asks one peer (the masternode whose vote
named them) for transactions with GET_TRANSACTIONS: at most :data:`MAX_REQUESTS_PER_PEER` txids
outstanding per peer, each txid asked for once in a while (:data:`REQUESTED_MEMORY`), none the
node already has. The answer, TRANSACTIONS, is taken only for txids asked of that peer and goes
to ``submit_transactions`` like gossip (the seen-cache does not filter it: the node may have
refused an earlier copy, e.g. before its parent arrived). A peer that leaves a request
unanswered for :data:`TX_REQUEST_TIMEOUT` is penalized: it named the transactions in its own
vote, so an honest one holds them. The node serves GET_TRANSACTIONS from its pending and final,
not yet archived, transactions.

The gossip task owns the queues; the frame handlers only append to them. ``after_pending``
runs a callback once everything queued before it is handled: PONG goes through it, so a ping
after a batch proves the batch was processed (the test harness's ``send_and_ping``).
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import timecoin_native

from timecoin.p2p import messages as m
from timecoin.p2p.messages import MessageType
from timecoin.p2p.peer import Misbehaving
from timecoin.p2p.seen import SeenCache as SeenCache
from timecoin.p2p.seen import item_key as item_key

if TYPE_CHECKING:
    from timecoin.p2p.connman import ConnMan
    from timecoin.p2p.peer import Peer

log = logging.getLogger(__name__)

MAX_PENDING_ITEMS = 100_000
"""Queued inbound items past which the senders are paused."""
PENALTY_INVALID_TX = 20
"""Per batch holding a transaction that no honest node could have relayed."""
INVALID_TX_CODES = frozenset(
    {
        "bad-encoding",
        "bad-version",
        "tx-too-large",
        "no-inputs",
        "no-outputs",
        "dust-output",
        "duplicate-input",
        "bad-witness-count",
        "wrong-key",
        "bad-signature",
        "value-overflow",
        "insufficient-fee",
        "coinbase-not-first",
        "multiple-coinbase",
        "bad-coinbase",
    }
)
"""Native rejection codes (native/src/validate.rs) that prove the sender relayed garbage; the
others (missing input, conflicts, a full mempool, lock time) can befall honest relays."""
PENALTY_BAD_ITEM = 20
"""Per batch holding consensus or masternode items no honest node sends (the handler's
:class:`BadItem`: undecodable, badly signed), like a malformed payload."""
PENALTY_NOT_SERVED = 10
"""Per GET_TRANSACTIONS' worth (up to ``MAX_GET_TRANSACTIONS`` txids) of transactions asked of a
peer that it did not send within :data:`TX_REQUEST_TIMEOUT`: its own vote named them, so an
honest one holds them (bar a rare race with a block). A flood of votes naming ~8,000 unknown
txids is banned at its first expiry."""
PENALTY_UNSOLICITED_TX = 20
"""Per TRANSACTIONS frame holding a transaction this node never asked for."""
TX_REQUEST_TIMEOUT = 10.0
"""Seconds a peer has to send transactions asked of it (GET_TRANSACTIONS). An honest peer
answers from its frame handler at once; the margin is for a loaded event loop."""
MAX_REQUESTS_PER_PEER = 8_000
"""Txids outstanding at one peer at most (one vote's worth); more named txids are not asked for
until these are answered or expired (and named again)."""
REQUESTED_MEMORY = 100_000
"""Txids asked for recently, of any peer, that are not asked for again: two generations of at
least this many (about 10 s of transactions at 10,000 tx/s)."""
RETRY_TX_CODES = frozenset({"mempool-full"})
"""Rejections that say nothing about the transaction: it is forgotten by the seen-cache, so the
same transaction relayed again later (a pending one is, every revote) is considered again."""


class GossipKind(enum.IntEnum):
    """What travels in a gossip batch, with its message type."""

    TX = MessageType.TX_BATCH
    VOTE = MessageType.VOTE_BATCH
    LARGE_VOTE = MessageType.LARGE_VOTE
    """One consensus item over ``MAX_VOTE_ITEM`` per frame (a proposal or decision with its block)."""
    HEARTBEAT = MessageType.HEARTBEAT_BATCH


VOTE_KINDS = frozenset({GossipKind.VOTE, GossipKind.LARGE_VOTE})
"""The consensus classes: sent and relayed only by masternodes."""

SEEN_CAPACITY: dict[GossipKind, int] = {
    GossipKind.TX: 250_000,
    GossipKind.VOTE: 100_000,
    GossipKind.LARGE_VOTE: 10_000,
    GossipKind.HEARTBEAT: 50_000,
}
"""Items each seen-cache remembers at least (25 s of transactions at 10,000 tx/s)."""


@dataclass(frozen=True, slots=True)
class BadItem:
    """A handler's verdict on an item no honest peer sends (it does not decode, its signature
    does not verify): not relayed, and its sender penalized by ``points`` (one penalty per batch,
    the largest of its items')."""

    points: int
    reason: str


ItemHandler = Callable[["Peer", list[bytes]], "list[bool | BadItem]"]
"""A consumer of opaque gossip: gets the sending peer and the new items of a batch, returns one
verdict per item: ``True`` to relay it (valid and new), ``False`` to keep it, or a
:class:`BadItem`."""
SubmitTransactions = Callable[[list[bytes]], list[tuple[bytes | None, str]]]


class Gossip:
    """Batching, dedup and relay for one node."""

    def __init__(
        self,
        connman: ConnMan,
        submit_transactions: SubmitTransactions,
        max_tx_size: int,
        interval: float,
        relay_votes: bool,
        *,
        transaction: Callable[[bytes], bytes | None] | None = None,
        has_transaction: Callable[[bytes], bool] | None = None,
        request_timeout: float = TX_REQUEST_TIMEOUT,
    ) -> None:
        """``transaction(txid)``: the encoded transaction if this node can serve it (None: the
        node answers no GET_TRANSACTIONS); ``has_transaction(txid)``: whether the node holds it
        already (never requested then)."""
        self._connman = connman
        self._submit = submit_transactions
        self._max_tx_size = max_tx_size
        self._interval = interval
        self._relay_votes = relay_votes
        self._transaction = transaction
        self._has_transaction = has_transaction
        self._request_timeout = request_timeout
        self._requests: dict[int, dict[bytes, float]] = {}
        """peer id → {txid asked of it: deadline}, in deadline order (insertion order)."""
        self._asked = SeenCache(REQUESTED_MEMORY)
        self.tx_requested = 0
        """Txids asked of peers (a metric)."""
        self.tx_requests_expired = 0
        """Txids asked of peers that never sent them (a metric)."""
        self._seen = {kind: SeenCache(cap) for kind, cap in SEEN_CAPACITY.items()}
        self._handlers: dict[GossipKind, ItemHandler] = {}
        self._inbound: deque[tuple[Peer | None, GossipKind | None, Any]] = deque()
        self._pending_items = 0
        self._paused: set[Peer] = set()
        self._outbound: dict[GossipKind, list[tuple[bytes, int]]] = {kind: [] for kind in GossipKind}
        self._wake = asyncio.Event()
        self.received = dict.fromkeys(GossipKind, 0)
        """New items received per kind (a metric)."""
        self.duplicates = dict.fromkeys(GossipKind, 0)
        """Items received that the seen-cache already had, per kind (a metric)."""
        self.relayed = dict.fromkeys(GossipKind, 0)
        """Items sent per kind, counted once per item (a metric)."""
        for kind in GossipKind:
            connman.handlers[kind.value] = self._frame_handler(kind)
        connman.handlers[MessageType.TRANSACTIONS] = self._on_transactions
        if transaction is not None:
            connman.handlers[MessageType.GET_TRANSACTIONS] = self._on_get_transactions
        connman.on_disconnected.append(self._forget_requests)

    def register_handler(self, kind: GossipKind, handler: ItemHandler) -> None:
        """Plugs in the consumer of VOTE, LARGE_VOTE or HEARTBEAT items (one per kind)."""
        if kind is GossipKind.TX:
            raise ValueError("transactions go to the node's submit_transactions hook")
        self._handlers[kind] = handler

    # -- inbound (frame handlers, synchronous) ---------------------------------------------------

    def _frame_handler(self, kind: GossipKind) -> Callable[[Peer, bytes], None]:
        if kind is GossipKind.TX:
            max_items, max_item = m.MAX_TX_BATCH_ITEMS, self._max_tx_size
        else:
            max_items, max_item = m.ITEM_LIMITS[MessageType(kind.value)]
        name = MessageType(kind.value).name

        def handle(peer: Peer, payload: bytes) -> None:
            self.receive(peer, kind, m.decode_items(payload, max_items, max_item, name))

        return handle

    def receive(self, peer: Peer, kind: GossipKind, items: list[bytes]) -> None:
        """Queues the items of a batch not seen before for the gossip task."""
        new = self._seen[kind].add_items(items)
        self.duplicates[kind] += len(items) - len(new)
        if new:
            self._enqueue(peer, kind, new)

    def _enqueue(self, peer: Peer, kind: GossipKind, new: list[bytes]) -> None:
        self.received[kind] += len(new)
        self._inbound.append((peer, kind, new))
        self._pending_items += len(new)
        self._wake.set()
        if self._pending_items > MAX_PENDING_ITEMS and peer.protocol is not None:
            peer.protocol.pause_reading()
            self._paused.add(peer)

    def after_pending(self, callback: Callable[[], None]) -> None:
        """Runs ``callback`` once every item queued so far has been handled (now if none)."""
        if not self._inbound:
            callback()
            return
        self._inbound.append((None, None, callback))
        self._wake.set()

    # -- transactions on request -----------------------------------------------------------------

    def request_transactions(self, peer: Peer, txids: list[bytes]) -> int:
        """Asks ``peer`` for the transactions ``txids`` (GET_TRANSACTIONS) that the node does not
        have, has not asked anyone for recently, and that fit the peer's
        :data:`MAX_REQUESTS_PER_PEER`; the rest are skipped. Returns how many were asked for."""
        if peer.closing or not peer.established:
            return 0
        outstanding = self._requests.get(peer.id)
        if outstanding is None:
            outstanding = self._requests[peer.id] = {}
        room = MAX_REQUESTS_PER_PEER - len(outstanding)
        deadline = self._connman.clock() + self._request_timeout
        asked: list[bytes] = []
        has = self._has_transaction
        for txid in txids:
            if len(asked) >= room:
                break
            if txid in self._asked or (has is not None and has(txid)):
                continue
            self._asked.add(txid)
            outstanding[txid] = deadline
            asked.append(txid)
        if not outstanding:
            del self._requests[peer.id]
        for i in range(0, len(asked), m.MAX_GET_TRANSACTIONS):
            peer.send(MessageType.GET_TRANSACTIONS, m.encode_txids(asked[i : i + m.MAX_GET_TRANSACTIONS]))
        if asked:
            self.tx_requested += len(asked)
            self._wake.set()  # the task learns the new deadline
        return len(asked)

    def _on_get_transactions(self, peer: Peer, payload: bytes) -> None:
        assert self._transaction is not None
        found = [raw for raw in map(self._transaction, m.decode_txids(payload)) if raw is not None]
        if found:
            for frame in _frames(MessageType.TRANSACTIONS, m.MAX_TX_BATCH_ITEMS, found):
                peer.send(MessageType.TRANSACTIONS, frame)

    def _on_transactions(self, peer: Peer, payload: bytes) -> None:
        items = m.decode_items(payload, m.MAX_TX_BATCH_ITEMS, self._max_tx_size, "TRANSACTIONS")
        txids = timecoin_native.txids(items)  # ValueError (a malformed payload) for a bad one
        outstanding = self._requests.get(peer.id, {})
        solicited: list[bytes] = []
        unsolicited = 0
        for raw, txid in zip(items, txids, strict=True):
            if outstanding.pop(txid, None) is not None:
                solicited.append(raw)
            elif txid not in self._asked:
                unsolicited += 1  # (one asked for but expired already cost its penalty)
        if not outstanding:
            self._requests.pop(peer.id, None)
        if solicited:
            seen = self._seen[GossipKind.TX]
            for raw in solicited:
                seen.add(item_key(raw))
            self._enqueue(peer, GossipKind.TX, solicited)
        if unsolicited:
            raise Misbehaving(PENALTY_UNSOLICITED_TX, f"{unsolicited} transactions nobody asked for")

    def _forget_requests(self, peer: Peer) -> None:
        self._requests.pop(peer.id, None)

    def _expire_requests(self, now: float) -> float | None:
        """Drops requests past their deadline, penalizing each peer that had some once; returns
        the next deadline (None without requests)."""
        next_at: float | None = None
        for peer_id, outstanding in list(self._requests.items()):
            expired = 0
            while outstanding:
                txid, at = next(iter(outstanding.items()))
                if at > now:
                    next_at = at if next_at is None else min(next_at, at)
                    break
                del outstanding[txid]
                expired += 1
            if not outstanding:
                self._requests.pop(peer_id, None)
            if not expired:
                continue
            self.tx_requests_expired += expired
            peer = self._connman.peers.get(peer_id)
            if peer is not None and not peer.closing:
                requests = -(-expired // m.MAX_GET_TRANSACTIONS)
                self._connman.penalize(
                    peer,
                    PENALTY_NOT_SERVED * requests,
                    f"{expired} transactions asked of it not sent within {self._request_timeout:.0f} s",
                )
        return next_at

    # -- outbound --------------------------------------------------------------------------------

    def broadcast(self, kind: GossipKind, items: list[bytes]) -> None:
        """Queues our own items for every peer; items already seen are skipped."""
        queue = self._outbound[kind]
        queue.extend((item, 0) for item in self._seen[kind].add_items(items))
        if queue:
            self._wake.set()

    def resend(self, kind: GossipKind, items: list[bytes]) -> None:
        """Sends items to every peer now, whatever the seen-cache holds (see :meth:`send_to`)."""
        peers = [p for p in self._connman.peers.values() if p.established]
        self._send_now(peers, kind, items)

    def send_to(self, peer: Peer, kind: GossipKind, items: list[bytes]) -> None:
        """Sends items to one peer now, batched like relay, whatever the seen-cache holds (the
        peer may not have them although we do); nothing to a closing peer. Votes only if this
        node relays votes."""
        self._send_now([peer], kind, items)

    def _send_now(self, peers: list[Peer], kind: GossipKind, items: list[bytes]) -> None:
        if not items or (kind in VOTE_KINDS and not self._relay_votes):
            return
        payloads = _batches(kind, items)  # framed once, whatever the number of peers
        for peer in peers:
            if not peer.closing:
                for payload in payloads:
                    peer.send(MessageType(kind.value), payload)

    def _flush(self) -> None:
        peers = [p for p in self._connman.peers.values() if p.established and not p.closing]
        for kind, queue in self._outbound.items():
            if not queue:
                continue
            self._outbound[kind] = []
            if kind in VOTE_KINDS and not self._relay_votes:
                continue
            self.relayed[kind] += len(queue)
            sources = {source for _, source in queue}
            # Masternodes keep a full mesh, and the node a transaction was submitted to sends it
            # to every masternode itself: one that arrived from a masternode is not sent on to
            # other masternodes (they hold it, or fetch it from the first vote naming it, or get
            # its holders' periodic resend: docs/p2p.md "Gossip").
            masternode_sources = (
                {p.id for p in peers if p.masternode_key is not None and p.id in sources}
                if kind is GossipKind.TX
                else set()
            )
            shared: list[bytes] | None = None
            among_masternodes: list[bytes] | None = None
            for peer in peers:
                if masternode_sources and peer.masternode_key is not None:
                    if among_masternodes is None:
                        among_masternodes = _batches(
                            kind, [item for item, source in queue if source not in masternode_sources]
                        )
                    payloads = among_masternodes
                elif peer.id in sources:
                    payloads = _batches(kind, [item for item, source in queue if source != peer.id])
                else:
                    if shared is None:
                        shared = _batches(kind, [item for item, _ in queue])
                    payloads = shared
                for payload in payloads:
                    peer.send(MessageType(kind.value), payload)

    # -- the task --------------------------------------------------------------------------------

    async def run(self) -> None:
        """The gossip task: handle queued items, then relay after ``interval``; expire
        transaction requests at their deadlines."""
        clock = self._connman.clock
        while True:
            next_at = self._expire_requests(clock())
            if next_at is None:
                await self._wake.wait()
            else:
                try:
                    async with asyncio.timeout(max(0.0, next_at - clock())):
                        await self._wake.wait()
                except TimeoutError:
                    continue
            self._wake.clear()
            self._process_inbound()
            if any(self._outbound.values()):
                await asyncio.sleep(self._interval)
                self._process_inbound()
                self._flush()

    def _process_inbound(self) -> None:
        while self._inbound:
            entries = list(self._inbound)
            self._inbound.clear()
            group: list[tuple[Peer, GossipKind, list[bytes]]] = []
            for peer, kind, value in entries:
                if kind is None:
                    self._handle(group)
                    group = []
                    value()
                else:
                    assert peer is not None
                    group.append((peer, kind, value))
            self._handle(group)
        self._pending_items = 0
        for peer in self._paused:
            if peer.protocol is not None:
                peer.protocol.resume_reading()
        self._paused.clear()

    def _handle(self, group: list[tuple[Peer, GossipKind, list[bytes]]]) -> None:
        for kind in GossipKind:
            batches = [(peer, items) for peer, k, items in group if k is kind]
            if not batches:
                continue
            try:
                if kind is GossipKind.TX:
                    self._handle_transactions(batches)
                else:
                    self._handle_items(kind, batches)
            except Exception:
                # A failing consumer loses these items, never the gossip task.
                log.exception("%s consumer failed; %d batches dropped", kind.name, len(batches))

    def _handle_transactions(self, batches: list[tuple[Peer, list[bytes]]]) -> None:
        raws = [raw for _, items in batches for raw in items]
        verdicts = self._submit(raws)
        queue = self._outbound[GossipKind.TX]
        seen = self._seen[GossipKind.TX]
        i = 0
        for peer, items in batches:
            accepted = invalid = 0
            for raw in items:
                code = verdicts[i][1]
                i += 1
                if not code:
                    queue.append((raw, peer.id))
                    accepted += 1
                elif code in INVALID_TX_CODES:
                    invalid += 1
                elif code in RETRY_TX_CODES:
                    seen.discard(item_key(raw))
            if invalid:
                self._connman.penalize(peer, PENALTY_INVALID_TX, f"{invalid} invalid transactions in a batch")
            elif accepted:
                self._connman.reward(peer, 1)

    def _handle_items(self, kind: GossipKind, batches: list[tuple[Peer, list[bytes]]]) -> None:
        handler = self._handlers.get(kind)
        if handler is None:
            log.debug("no handler for %s gossip; %d batches dropped", kind.name, len(batches))
            return
        queue = self._outbound[kind]
        for peer, items in batches:
            verdicts = handler(peer, items)
            if len(verdicts) != len(items):
                raise RuntimeError(f"{kind.name} handler: {len(verdicts)} verdicts for {len(items)} items")
            queue.extend((item, peer.id) for item, v in zip(items, verdicts, strict=True) if v is True)
            bad = [v for v in verdicts if isinstance(v, BadItem)]
            if bad:
                worst = max(bad, key=lambda b: b.points)
                reason = f"{len(bad)} bad {kind.name} items: {worst.reason}"
                self._connman.penalize(peer, worst.points, reason)


def _batches(kind: GossipKind, items: list[bytes]) -> list[bytes]:
    """Batch payloads of ``kind`` within its message's size and item limits."""
    mtype = MessageType(kind.value)
    return _frames(mtype, m.MAX_TX_BATCH_ITEMS if kind is GossipKind.TX else m.ITEM_LIMITS[mtype][0], items)


def _frames(mtype: MessageType, max_items: int, items: list[bytes]) -> list[bytes]:
    """Batch payloads (count u32 ‖ (len u32 ‖ item)*) of ``mtype`` within its size limit and
    ``max_items``."""
    limit = m.SPECS[mtype].max_payload
    out: list[bytes] = []
    start, size = 0, 4
    for i, item in enumerate(items):
        if i > start and (size + 4 + len(item) > limit or i - start >= max_items):
            out.append(m.encode_items(items[start:i]))
            start, size = i, 4
        size += 4 + len(item)
    if start < len(items):
        out.append(m.encode_items(items[start:]))
    return out
