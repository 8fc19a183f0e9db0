"""A Byzantine masternode for e2e runs (DESIGN §12.8, §13; docs/e2e.md, "Byzantine actor").

The actor holds the real secret key of one registered masternode (whose honest ``timecoind``
keeps running: the masternode as a whole is Byzantine, 1 of n ≥ 4 equal weights, below 1/3). It
connects to every node as a raw P2P peer (:class:`timecoin.testing.mininode.MiniNode`), proves
that masternode key in the handshake, and while its fault lasts:

* ``lying-status``: signs statuses at height 2^64 - 1 (a claim, never state: DESIGN §13);
* ``forged-decision``: sends a decision for the next height whose block is the tip's with a new
  height, committed by a certificate signed by a key outside the masternode set;
* ``equivocation``: for every proposal, prevote and precommit its twin (the honest process of
  the same key) sends it, sends a conflicting one signed with the same key to half the nodes, and
  prevotes and precommits two different blocks at the current round to the two halves;
* ``split-votes``: spends a coin of its own accounts twice (two transfers, one per half of the
  nodes, each submitted over RPC there) and tells each half it accepts that half's transfer and
  rejects the other's; it also contradicts every finality vote batch of its twin.

What it sent is counted (:class:`ByzantineStats`), and every double-spend pair is kept for the
history checker (no two conflicting transactions may both become final).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from timecoin import crypto
from timecoin.consensus.messages import (
    NIL,
    BlockVote,
    CommitCertificate,
    CompactBlock,
    Decision,
    Kind,
    Proposal,
    Status,
    TxVote,
    block_vote_signing_message,
    decode_message,
)
from timecoin.core.address import encode_address, pubkey_hash
from timecoin.core.types import U64_MAX, Block, OutPoint, Transaction, TxOut, sign_transactions
from timecoin.e2e.manifest import Behaviour
from timecoin.loadtest.generator import spendable_total
from timecoin.loadtest.submitter import AsyncRPC
from timecoin.p2p import messages as m
from timecoin.p2p.messages import MessageType
from timecoin.params import NetworkParams
from timecoin.rpc.client import JSONRPCError
from timecoin.testing.consensus_sim import retimed
from timecoin.testing.mininode import MiniNode

__all__ = ["TICK", "ByzantineActor", "ByzantineStats", "DoubleSpend"]

log = logging.getLogger(__name__)

TICK = 0.5
"""Seconds between two rounds of proactive misbehaviour."""
CONNECT_TIMEOUT = 5.0
"""Seconds one handshake may take."""
RPC_TIMEOUT = 5.0
"""Seconds one RPC call of the actor may take."""
MAX_PAIRS_PER_TICK = 4
"""Double spends made per tick at most (bounded by its accounts' committed coins)."""
MAX_SEEN = 10_000
"""Twin messages remembered (each is contradicted once, however many peers relay it); the
memory is cleared when it is full."""
SECOND_PAYMENT_LESS = 1_000
"""Sat the second transfer of a double spend pays less than the first (a different txid, a higher
fee: both valid alone)."""


@dataclass(frozen=True, slots=True)
class DoubleSpend:
    """Two transfers spending ``outpoint`` (hex ``txid:vout``), sent to different halves."""

    outpoint: str
    first: str
    second: str


@dataclass(slots=True)
class ByzantineStats:
    """What the actor did: messages sent by behaviour, double spends made, the disconnects the
    nodes imposed (node → reason) and errors met."""

    sent: Counter[str] = field(default_factory=Counter)
    pairs: list[DoubleSpend] = field(default_factory=list)
    disconnects: dict[int, str] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "sent": dict(self.sent),
            "double_spends": [dataclasses.asdict(p) for p in self.pairs],
            "disconnects": {str(k): v for k, v in self.disconnects.items()},
            "errors": self.errors[:20],
        }


class _Peer(MiniNode):
    """A MiniNode that hands every consensus item it receives to the actor."""

    def __init__(self, actor: ByzantineActor, index: int, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.actor, self.index = actor, index

    def on_vote_batch(self, payload: bytes) -> None:
        self._items(payload, MessageType.VOTE_BATCH)

    def on_large_vote(self, payload: bytes) -> None:
        self._items(payload, MessageType.LARGE_VOTE)

    def _items(self, payload: bytes, message_type: MessageType) -> None:
        limits = m.ITEM_LIMITS[message_type]
        try:
            items = m.decode_items(payload, *limits, message_type.name)
        except ValueError:
            return
        for item in items:
            self.actor.observe(item)


class ByzantineActor:
    """Misbehaves with masternode ``twin``'s ``secret`` key towards the nodes whose P2P ports
    are ``ports`` (RPC through ``rpc``), spending the coins of ``account_keys`` for double
    spends."""

    def __init__(
        self,
        params: NetworkParams,
        chain_id: bytes,
        secret: bytes,
        twin: int,
        ports: list[int],
        rpc: list[AsyncRPC],
        account_keys: list[bytes],
        behaviours: tuple[Behaviour, ...],
    ) -> None:
        self.params, self.chain_id, self.secret, self.twin = params, chain_id, secret, twin
        self.public_key = crypto.public_key(secret)
        self.ports, self.rpc = ports, rpc
        self.behaviours = frozenset(behaviours)
        self.keys = {encode_address(pubkey_hash(crypto.public_key(k)), params): k for k in account_keys}
        """Address → 32-byte seed of the accounts it double-spends from."""
        self.outsider = os.urandom(32)
        """A key outside the masternode set: it signs the forged commit certificates."""
        nodes = list(range(len(ports)))
        self.halves = (nodes[0::2], nodes[1::2])
        self.peers: dict[int, _Peer] = {}
        self.stats = ByzantineStats()
        self.seen: set[bytes] = set()
        """Hashes of the twin's messages already contradicted (at most :data:`MAX_SEEN`)."""
        self.used: set[str] = set()
        """Outpoints already double-spent (``txid:vout``)."""
        self.active = False

    # -- connections ---------------------------------------------------------------------------------

    async def _connect(self, index: int) -> None:
        peer = _Peer(self, index, self.params, self.chain_id, masternode_secret=self.secret)
        try:
            await peer.connect("127.0.0.1", self.ports[index], timeout=CONNECT_TIMEOUT)
        except (TimeoutError, OSError, ConnectionError) as e:
            self.stats.errors.append(f"connect to node {index}: {e}")
            peer.close()
            return
        self.peers[index] = peer

    async def _reconnect(self) -> None:
        for index in range(len(self.ports)):
            peer = self.peers.get(index)
            if peer is not None and peer.disconnected.is_set():
                self.stats.disconnects[index] = peer.close_reason
                del self.peers[index]
            if index not in self.peers:
                await self._connect(index)

    def close(self) -> None:
        self.active = False
        for peer in self.peers.values():
            peer.close()
        self.peers.clear()

    def _send(self, item: bytes, targets: list[int] | None = None, what: str = "") -> None:
        message_type = MessageType.VOTE_BATCH if len(item) <= m.MAX_VOTE_ITEM else MessageType.LARGE_VOTE
        payload = m.encode_items([item])
        for index in targets if targets is not None else list(self.peers):
            peer = self.peers.get(index)
            if peer is None or peer.disconnected.is_set() or peer.protocol is None:
                continue
            peer.send_message(message_type, payload)
            if what:
                self.stats.sent[what] += 1

    # -- reactions to the twin's messages ----------------------------------------------------------------

    def observe(self, item: bytes) -> None:
        """Contradicts, to the second half of the nodes, every message the twin signs."""
        if (
            not self.active
            or not item
            or item[0] not in (Kind.PROPOSAL, Kind.PREVOTE, Kind.PRECOMMIT, Kind.TX_VOTE)
        ):
            return
        digest = crypto.blake3(item)
        if digest in self.seen:
            return
        if len(self.seen) >= MAX_SEEN:
            self.seen.clear()
        self.seen.add(digest)
        try:
            msg = decode_message(item)
        except ValueError:
            return
        other = self.halves[1]
        if Behaviour.EQUIVOCATION in self.behaviours and isinstance(msg, Proposal):
            if msg.proposer != self.public_key:
                return
            second = Proposal.create(
                self.secret, self.chain_id, msg.height, msg.round, msg.valid_round, retimed(msg.compact)
            )
            self._send(second.encode(), other, "equivocating-proposal")
        elif Behaviour.EQUIVOCATION in self.behaviours and isinstance(msg, BlockVote):
            if msg.voter != self.public_key:
                return
            target = NIL if msg.block_hash != NIL else os.urandom(32)
            vote = BlockVote.create(self.secret, self.chain_id, msg.kind, msg.height, msg.round, target)
            self._send(vote.encode(), other, "equivocating-vote")
        elif Behaviour.SPLIT_VOTES in self.behaviours and isinstance(msg, TxVote):
            if msg.voter != self.public_key or not msg.accepts:
                return
            contrary = TxVote.create(self.secret, self.chain_id, msg.height, msg.rejects, msg.accepts)
            self._send(contrary.encode(), other, "contradicting-tx-vote")

    # -- proactive misbehaviour --------------------------------------------------------------------------

    async def _call(self, node: int, method: str, *params: Any) -> Any:
        return await asyncio.wait_for(self.rpc[node].call(method, *params), RPC_TIMEOUT)

    async def _round_state(self) -> tuple[int, int, str, bytes] | None:
        """(height being decided, round, tip hash hex, tip block) from the first node that
        answers; None if none does."""
        for node in range(len(self.rpc)):
            try:
                info = await self._call(node, "getconsensusinfo")
                tip = await self._call(node, "getbestblockhash")
                raw = bytes.fromhex(await self._call(node, "getblock", tip, 0))
            except (TimeoutError, OSError, JSONRPCError, ValueError):
                continue
            state = info["round_state"]
            return int(state["height"]), int(state["round"]), tip, raw
        return None

    def _lying_status(self, height: int, round_: int) -> None:
        status = Status.create(self.secret, self.chain_id, U64_MAX, os.urandom(32), round_)
        self._send(status.encode(), None, "lying-status")

    def _forged_decision(self, height: int, tip: str, raw: bytes) -> None:
        block = Block.decode(raw)
        header = dataclasses.replace(block.header, height=height, prev_hash=bytes.fromhex(tip))
        forged = Block(header, block.transactions)
        signature = crypto.sign(
            self.outsider, block_vote_signing_message(Kind.PRECOMMIT, self.chain_id, height, 0, forged.hash)
        )
        certificate = CommitCertificate(
            height, 0, forged.hash, ((crypto.public_key(self.outsider), signature),)
        )
        self._send(
            Decision(certificate, CompactBlock.whole(forged.encode())).encode(), None, "forged-decision"
        )

    def _split_block_votes(self, height: int, round_: int) -> None:
        first, second = os.urandom(32), NIL
        for kind in (Kind.PREVOTE, Kind.PRECOMMIT):
            for half, target in zip(self.halves, (first, second), strict=True):
                vote = BlockVote.create(self.secret, self.chain_id, kind, height, round_, target)
                self._send(vote.encode(), half, "equivocating-vote")

    async def _double_spends(self, height: int) -> None:
        try:
            rows = await self._call(0 if self.twin != 0 else 1, "listunspent", 1, list(self.keys))
        except (TimeoutError, OSError, JSONRPCError) as e:
            self.stats.errors.append(f"listunspent: {e}")
            return
        made = 0
        for row in rows:
            outpoint = f"{row['txid']}:{row['vout']}"
            if outpoint in self.used or made >= MAX_PAIRS_PER_TICK:
                continue
            key = self.keys[row["address"]]
            self.used.add(outpoint)
            made += 1
            value = spendable_total(int(row["amount_sat"]), self.params)
            coin = OutPoint(bytes.fromhex(row["txid"]), int(row["vout"]))
            to = pubkey_hash(crypto.public_key(key))
            a, b = sign_transactions(
                [
                    Transaction.transfer([coin], [TxOut(value, to)]),
                    Transaction.transfer([coin], [TxOut(value - SECOND_PAYMENT_LESS, to)]),
                ],
                [[key], [key]],
                self.chain_id,
                int(self.params.network),
            )
            self.stats.pairs.append(DoubleSpend(outpoint, a.txid.hex(), b.txid.hex()))
            for tx, half in zip((a, b), self.halves, strict=True):
                for node in half:
                    try:
                        await self._call(node, "sendrawtransaction", tx.encode().hex())
                        self.stats.sent["double-spend"] += 1
                    except (TimeoutError, OSError, JSONRPCError) as e:
                        self.stats.sent["double-spend-refused"] += 1
                        log.debug("node %d refused a double spend: %s", node, e)
            for (mine, theirs), half in zip(((a, b), (b, a)), self.halves, strict=True):
                vote = TxVote.create(self.secret, self.chain_id, height, [mine.txid], [theirs.txid])
                self._send(vote.encode(), half, "split-tx-vote")

    async def run(self, duration: float) -> None:
        """Misbehaves for ``duration`` seconds, then disconnects from every node."""
        self.active = True
        deadline = time.monotonic() + duration
        try:
            while time.monotonic() < deadline:
                await self._reconnect()
                state = await self._round_state()
                if state is not None:
                    height, round_, tip, raw = state
                    if Behaviour.LYING_STATUS in self.behaviours:
                        self._lying_status(height, round_)
                    if Behaviour.FORGED_DECISION in self.behaviours:
                        self._forged_decision(height, tip, raw)
                    if Behaviour.EQUIVOCATION in self.behaviours:
                        self._split_block_votes(height, round_)
                    if Behaviour.SPLIT_VOTES in self.behaviours:
                        await self._double_spends(height)
                await asyncio.sleep(max(0.0, min(TICK, deadline - time.monotonic())))
        finally:
            for index, peer in self.peers.items():
                if peer.disconnected.is_set():
                    self.stats.disconnects[index] = peer.close_reason
            self.close()
