"""The P2P service: the node's one entry point to the peer-to-peer network (DESIGN §8; the
interface agreed with the node is notes/p2p-interface.md).

It wires the connection manager (:mod:`~timecoin.p2p.connman`), gossip
(:mod:`~timecoin.p2p.gossip`) and block sync (:mod:`~timecoin.p2p.sync`) to the node through
:class:`NodeHooks`, and owns their tasks: :meth:`P2PService.start` spawns them and
:meth:`P2PService.stop` closes every connection, cancels every task and persists the address
book (bans are written as they happen). Everything runs on the caller's event loop (uvloop in
the daemon); nothing here blocks on I/O except the small LMDB writes of addresses and bans.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Protocol

from timecoin.p2p import messages as m
from timecoin.p2p.addrman import AddrMan
from timecoin.p2p.banman import Ban, BanMan
from timecoin.p2p.config import P2PConfig
from timecoin.p2p.connman import ConnMan
from timecoin.p2p.gossip import Gossip, GossipKind, ItemHandler
from timecoin.p2p.handshake import LocalIdentity
from timecoin.p2p.messages import MessageType
from timecoin.p2p.peer import Peer
from timecoin.p2p.sync import BlockSync
from timecoin.params import NetworkParams
from timecoin.store.chainstore import ChainStore

__all__ = ["GossipKind", "NodeHooks", "P2PConfig", "P2PService"]

log = logging.getLogger(__name__)


class NodeHooks(Protocol):
    """What the P2P service asks of the node (implemented by ``timecoin/node.py``)."""

    def chain_tip(self) -> tuple[int, bytes]:
        """(height, block hash) of the tip."""
        ...

    def block_hash(self, height: int) -> bytes | None: ...

    def block(self, block_hash: bytes) -> bytes | None:
        """The encoded block."""
        ...

    def commit_certificate(self, height: int) -> bytes | None:
        """The encoded commit certificate stored with the committed block at ``height`` (None
        for genesis or a block connected without one: such a block is not served to peers)."""
        ...

    def leader_set(self, height: int) -> tuple[Sequence[bytes], Sequence[int]]:
        """(public keys ascending, integer weights) of the masternode set of ``height`` (tip + 1),
        derived from the chain: what a synced block's commit certificate is checked against."""
        ...

    def connect_block(self, raw: bytes, certificate: bytes | None = None) -> None:
        """Validates and commits the next block, with ``certificate`` (its commit certificate,
        already verified by the caller) stored in the block's store transaction;
        ``timecoin_native.ValidationError`` or ``ValueError`` for a bad block (which changes
        nothing)."""
        ...

    def submit_transactions(self, raws: list[bytes]) -> list[tuple[bytes | None, str]]:
        """Mempool admission of a batch: (txid, reject code or "") per transaction."""
        ...

    def has_transaction(self, txid: bytes) -> bool: ...

    def unarchived_transaction(self, txid: bytes) -> bytes | None:
        """The encoded transaction ``txid`` if it is pending or final and not yet in a block:
        what GET_TRANSACTIONS is answered from."""
        ...

    def pending_transactions(self) -> list[bytes]:
        """The encoded transactions still pending here (the mempool, in arrival order): sent to
        every peer as its connection is established."""
        ...

    def is_masternode_key(self, public_key: bytes) -> bool:
        """Whether ``public_key`` is a registered masternode key at the tip."""
        ...


class P2PService:
    """One node's P2P network: listening, peers, gossip and sync."""

    def __init__(
        self,
        params: NetworkParams,
        genesis_hash: bytes,
        node_secret: bytes,
        hooks: NodeHooks,
        store: ChainStore,
        config: P2PConfig,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.params = params
        self.config = config
        self.hooks = hooks
        self.clock = clock
        self.local = LocalIdentity.create(
            int(params.network), genesis_hash, node_secret, config.masternode_secret
        )
        self.banman = BanMan(store)
        self.addrman = AddrMan(store, clock=clock)
        self.connman = ConnMan(
            params.magic,
            self.local,
            config,
            self.banman,
            self.addrman,
            hooks.chain_tip,
            hooks.is_masternode_key,
            clock,
        )
        self.gossip = Gossip(
            self.connman,
            hooks.submit_transactions,
            params.max_tx_size,
            config.gossip_interval,
            relay_votes=config.masternode_secret is not None,
            transaction=hooks.unarchived_transaction,
            has_transaction=hooks.has_transaction,
        )
        self.sync = BlockSync(self.connman, config, params.max_block_size, genesis_hash, hooks, clock)
        self.connman.handlers[MessageType.PING] = self._on_ping
        self.connman.on_established.append(self._send_pending)
        self._started = False

    @property
    def node_key(self) -> bytes:
        """This node's P2P identity (Ed25519 public key of ``node_secret``)."""
        return self.local.node_key

    async def start(self) -> None:
        """Listens, dials static peers and seeds, starts gossip and sync."""
        if self._started:
            raise RuntimeError("P2PService already started")
        self._started = True
        await self.connman.start()
        self.connman.spawn(self.gossip.run(), "p2p-gossip")
        self.connman.spawn(self.sync.run(), "p2p-sync")

    async def stop(self) -> None:
        """Closes every connection, cancels every task, persists the address book."""
        await self.connman.stop()

    @property
    def bound_port(self) -> int:
        """The port listened on (the OS's pick when ``listen_port`` is 0)."""
        if not self.connman.listen_port:
            raise RuntimeError("P2PService is not started")
        return self.connman.listen_port

    # -- for the node ----------------------------------------------------------------------------

    def broadcast_transactions(self, raws: list[bytes]) -> None:
        """Gossips transactions the node admitted (batched; each sent at most once)."""
        self.gossip.broadcast(GossipKind.TX, raws)

    def resend_transactions(self, raws: list[bytes]) -> None:
        """Sends transactions to every peer again, even those that had them (a peer whose
        mempool was full dropped them and is waiting for another copy)."""
        self.gossip.resend(GossipKind.TX, raws)

    def broadcast_votes(self, items: list[bytes]) -> None:
        """Gossips this masternode's encoded consensus items: those of at most ``MAX_VOTE_ITEM``
        bytes batched in VOTE_BATCH frames, larger ones (≤ ``MAX_LARGE_VOTE_ITEM``: proposals and
        decisions with a large compact block) one per LARGE_VOTE frame. ``ValueError`` for a larger item."""
        small, large = _split_votes(items)
        if small:
            self.gossip.broadcast(GossipKind.VOTE, small)
        if large:
            self.gossip.broadcast(GossipKind.LARGE_VOTE, large)

    def resend_votes(self, items: list[bytes]) -> None:
        """Sends this masternode's consensus items to every peer again, even those that had them
        (a peer that was away or restarted), in the frames :meth:`broadcast_votes` uses."""
        small, large = _split_votes(items)
        if small:
            self.gossip.resend(GossipKind.VOTE, small)
        if large:
            self.gossip.resend(GossipKind.LARGE_VOTE, large)

    def request_transactions(self, peer: Peer, txids: list[bytes]) -> int:
        """Asks ``peer`` for transactions its vote named that this node lacks, within the
        per-peer bound (:meth:`Gossip.request_transactions`); how many were asked for."""
        return self.gossip.request_transactions(peer, txids)

    def send_votes(self, peer: Peer, items: list[bytes]) -> None:
        """Sends consensus items to one peer only (replies, requests to one masternode), in the
        frames :meth:`broadcast_votes` would use; the receiver does not relay them. Nothing is
        sent to a closed peer. ``ValueError`` for an item over ``MAX_LARGE_VOTE_ITEM``."""
        small, large = _split_votes(items)
        if peer.closing or not peer.established:
            return
        for i in range(0, len(small), m.MAX_VOTE_BATCH_ITEMS):
            peer.send(MessageType.VOTE_BATCH, m.encode_items(small[i : i + m.MAX_VOTE_BATCH_ITEMS]))
        for item in large:
            peer.send(MessageType.LARGE_VOTE, m.encode_items([item]))

    def masternode_peers(self) -> dict[bytes, Peer]:
        """Established connections by the registered masternode key they proved."""
        return {
            p.masternode_key: p
            for p in self.connman.peers.values()
            if p.established and not p.closing and p.masternode_key is not None
        }

    def broadcast_heartbeats(self, items: list[bytes]) -> None:
        """Gossips encoded heartbeats (opaque items ≤ MAX_HEARTBEAT_ITEM bytes)."""
        self.gossip.broadcast(GossipKind.HEARTBEAT, items)

    def register_handler(self, kind: GossipKind, handler: ItemHandler) -> None:
        """Plugs the consumer of VOTE, LARGE_VOTE or HEARTBEAT gossip in (see :data:`ItemHandler`)."""
        self.gossip.register_handler(kind, handler)

    def announce_block(self, height: int, block_hash: bytes, to_masternodes: bool = True) -> None:
        """Tells the peers that may not have it (those whose claimed height is below) about a
        block we committed, whatever the sync state (not the masternode peers unless
        ``to_masternodes``: a masternode learns blocks from consensus rather than by block
        sync)."""
        payload = m.encode_announce(height, block_hash)
        for peer in self.connman.peers.values():
            if not to_masternodes and peer.masternode_key is not None:
                continue
            if peer.established and peer.height < height:
                peer.send(MessageType.BLOCK_ANNOUNCE, payload)

    async def connect(self, host: str, port: int) -> bool:
        """Dials (host, port) once (``addnode onetry``); whether a connection was established."""
        return await self.connman.dial(host, port) is not None

    def disconnect(self, peer_id: int) -> bool:
        """Closes the connection with id ``peer_id``; whether there was one."""
        peer = self.connman.peers.get(peer_id)
        if peer is None:
            return False
        peer.close("disconnected by the operator")
        return True

    def peer_info(self) -> list[dict[str, object]]:
        """One dict per connection (getpeerinfo): id, addr, inbound, node_key, masternode,
        height, pingtime (s), bytessent, bytesrecv, reputation, conntime (s), established,
        rate_limited."""
        now = self.clock()
        return [p.info(now) for p in self.connman.peers.values()]

    def sync_status(self) -> dict[str, object]:
        """height, target, blocks_per_s, eta_s (s or ``None``), syncing."""
        return self.sync.status()

    def recent_disconnects(self) -> list[dict[str, object]]:
        """The last closed connections, oldest first: addr, node_key, inbound, established,
        reason (the logged reason a peer was dropped)."""
        return list(self.connman.recent_disconnects)

    def bans(self) -> list[Ban]:
        return self.banman.bans()

    # -- handlers --------------------------------------------------------------------------------

    def _send_pending(self, peer: Peer) -> None:
        # A transaction gossiped before this peer connected (a node's first seconds, a peer
        # that restarted) would otherwise never reach it, and a masternode that never sees a
        # transaction never votes on it: with one masternode of four missing, finality could
        # stall for good. Like BIP 35's mempool request, but pushed once per connection.
        self.gossip.send_to(peer, GossipKind.TX, self.hooks.pending_transactions())

    def _on_ping(self, peer: Peer, payload: bytes) -> None:
        m.decode_u64(payload, "PING")
        self.gossip.after_pending(lambda: peer.send(MessageType.PONG, payload))


def _split_votes(items: list[bytes]) -> tuple[list[bytes], list[bytes]]:
    """(items for VOTE_BATCH, items for LARGE_VOTE); ``ValueError`` for one too large for either."""
    small: list[bytes] = []
    large: list[bytes] = []
    for item in items:
        if len(item) <= m.MAX_VOTE_ITEM:
            small.append(item)
        elif len(item) <= m.MAX_LARGE_VOTE_ITEM:
            large.append(item)
        else:
            raise ValueError(f"consensus item of {len(item)} bytes exceeds {m.MAX_LARGE_VOTE_ITEM}")
    return small, large
