"""A deterministic simulation of N masternodes running the real consensus: fake clock, in-memory
network with seeded latency, partitions, crashes and Byzantine message rewriting (DESIGN §12; the
tests of invariants 1-5 and ``benches/bench_consensus.py`` use it).

Every simulated node is real below the network: its own ``ChainState`` over LMDB in its own
directory (from ``chaingen.devnet_genesis``), a ``Mempool``, a ``HeartbeatTracker`` fed by real
signed heartbeats (the production gate), a :class:`~timecoin.consensus.engine.Consensus` and the
reference :class:`~timecoin.consensus.runner.EffectRunner`. Only the wire and the clock are
simulated: a discrete-event scheduler delivers each message after a latency drawn from the
network's seeded RNG, and every message a node receives at one instant reaches its consensus in
one ``on_messages`` batch. Transactions a node admits are relayed to the others (the P2P layer's
job in a real node).

Nothing here is a stand-in for consensus logic; faults are injected only at the edges: a node can
be crashed and restarted from its store, partitioned, made to crash between persisting and
sending (``crash_after_persist``), or given an ``outgoing`` hook that rewrites what it sends
(Byzantine behaviour, with its real key).
"""

from __future__ import annotations

import heapq
import itertools
import random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from timecoin import crypto
from timecoin.consensus.effects import (
    CheckBlock,
    Effect,
    Evidence,
    Persist,
    SyncBlock,
    Timer,
    TransactionFinalized,
    TransactionRejected,
)
from timecoin.consensus.engine import Consensus
from timecoin.consensus.messages import NIL, BlockVote, CompactBlock, Kind, Proposal, TxVote, decode_message
from timecoin.consensus.runner import EffectRunner, Offloaded, run_offloaded
from timecoin.consensus.store import CONSENSUS_DB, commit_key, load_commit_certificate
from timecoin.core.address import pubkey_hash
from timecoin.core.types import Block, BlockHeader, Transaction, TxOut, sign_transactions
from timecoin.ledger.chain import ChainState
from timecoin.ledger.genesis import Genesis, build_genesis
from timecoin.ledger.mempool import Admission, Mempool
from timecoin.masternode.heartbeat import Heartbeat, HeartbeatRejected, HeartbeatTracker
from timecoin.params import DEVNET, NetworkParams, Tier
from timecoin.testing.chaingen import Wallet, devnet_genesis

__all__ = [
    "FakeClock",
    "Scheduler",
    "SimCrash",
    "SimNode",
    "Simulation",
    "conflicting_pairs",
    "double_voter",
    "equivocating_leader",
    "flooding_leader",
    "signature_conflicts",
]

Outgoing = Callable[["SimNode", bytes], Iterable[tuple[Sequence[int] | None, bytes]]]
"""A Byzantine rewrite of what a node sends: (destination node indices or None for all others,
data) pairs instead of broadcasting ``data``."""


class FakeClock:
    """Unix seconds that move only when the scheduler says so."""

    def __init__(self, start: float) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


class Scheduler:
    """A discrete-event loop over a :class:`FakeClock`."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self._heap: list[tuple[float, int, Callable[[], None]]] = []
        self._seq = itertools.count()
        self.events = 0

    def at(self, when: float, fn: Callable[[], None]) -> None:
        heapq.heappush(self._heap, (max(when, self.clock.now), next(self._seq), fn))

    def run_until(self, predicate: Callable[[], bool], timeout: float) -> bool:
        """Runs events until ``predicate()`` holds (True) or ``timeout`` simulated seconds pass."""
        deadline = self.clock.now + timeout
        while True:
            if predicate():
                return True
            if not self._heap or self._heap[0][0] > deadline:
                self.clock.now = max(self.clock.now, deadline)
                return predicate()
            when, _, fn = heapq.heappop(self._heap)
            self.clock.now = when
            self.events += 1
            fn()

    def run_for(self, seconds: float) -> None:
        self.run_until(lambda: False, seconds)


class SimCrash(Exception):
    """Raised inside a node's effect run to crash it on the spot (the rest is never executed)."""


@dataclass
class SimNode:
    """One simulated masternode (see the module docstring)."""

    sim: Simulation
    index: int
    secret_key: bytes | None
    path: Path
    online: bool = False
    generation: int = 0
    heartbeats: bool = True
    crash_after_persist: bytes | None = None
    """Crash right after the next ``Persist`` writing a ``consensus`` key with this prefix
    (``b"signer/"``: a signed block message; ``b"accept/"``: a finality accept), before anything
    after it runs: signed and persisted, never sent."""
    outgoing: Outgoing | None = None
    finalized: dict[bytes, TransactionFinalized] = field(default_factory=dict)
    finalized_at: dict[bytes, float] = field(default_factory=dict)
    rejected: dict[bytes, str] = field(default_factory=dict)
    evidence: list[Evidence] = field(default_factory=list)
    synced_blocks: int = 0
    """Blocks connected by (simulated) block sync, outside the engine."""
    checks_done: int = 0
    """Block checks done for the engine off its steps (``Simulation.work_delay``)."""
    checked: list[tuple[int, bytes]] = field(default_factory=list)
    """(height, block hash) of each of those checks, in order."""
    builds_done: int = 0
    """Block builds done for the engine off its steps (``Simulation.work_delay``)."""
    work_delay: float | None = None
    """Seconds this node's offloaded block work takes (None: ``Simulation.work_delay``)."""
    sent: list[bytes] = field(default_factory=list)
    """Every consensus message this node signed and put on the wire (for signer-safety checks;
    others' messages it re-sends, a proof of lock or evidence, are not its signatures)."""
    _inbox: list[tuple[Any, bytes]] = field(default_factory=list)
    _tx_inbox: list[bytes] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.public_key = crypto.public_key(self.secret_key) if self.secret_key is not None else None

    # -- lifecycle ---------------------------------------------------------------------------------

    def open(self) -> None:
        sim = self.sim
        self.chain = ChainState.open(self.path, sim.params, sim.genesis)
        self.mempool = Mempool(
            sim.params, self.chain.utxos, self.chain.rules, sim.clock, self.chain.check_masternode_transaction
        )
        self.tracker = HeartbeatTracker(sim.params, sim.genesis.hash, self.chain.registry.tier_of, sim.clock)
        self.consensus = Consensus.from_store(
            self.chain,
            self.mempool,
            secret_key=self.secret_key,
            production_gate=self.tracker.can_produce,
            rng=random.Random(sim.seed * 1000 + self.index + 7919 * self.generation),
            perf=sim.clock,
            max_message_bytes=sim.max_message_bytes,
            offload_blocks=sim.work_delay is not None,
        )
        self.runner = EffectRunner(
            self.consensus,
            self.chain,
            self,
            self._schedule,
            sim.clock,
            on_notice=self._notice,
            after_effect=self._after_effect,
            offload=self._offload if sim.work_delay is not None else None,
        )
        self.online = True

    def start(self) -> None:
        self._guard(lambda: self.runner.run(self.consensus.start(self.sim.clock.now)))

    def crash(self) -> None:
        """Stops the node like kill -9: nothing in flight survives; the store keeps what was
        written."""
        if not self.online:
            return
        self.online = False
        self.generation += 1
        self._inbox.clear()
        self._tx_inbox.clear()
        self.chain.close()

    def restart(self) -> None:
        """Reopens the node from its store (chain, signer state, finalized pool) and starts it."""
        assert not self.online
        self.open()
        self.send_heartbeat()
        self.start()

    # -- transport (EffectRunner) ---------------------------------------------------------------------

    def broadcast(self, data: bytes) -> None:
        self._send(None, data)

    def resend(self, data: bytes) -> None:
        self._send(None, data)  # the simulated wire keeps no seen-cache

    def relay_transactions(self, raws: list[bytes]) -> None:
        for node in self.sim.nodes:
            if node is not self:
                self.sim.network.deliver_transactions(self, node, list(raws))

    def send(self, masternode: bytes, data: bytes) -> None:
        target = self.sim.by_key.get(masternode)
        if target is not None:
            self._send([target.index], data)

    def reply(self, peer: Any, data: bytes) -> None:
        self.send(peer, data)

    def _send(self, targets: Sequence[int] | None, data: bytes) -> None:
        routes: Iterable[tuple[Sequence[int] | None, bytes]] = [(targets, data)]
        if self.outgoing is not None:
            routes = self.outgoing(self, data) if targets is None else routes
        for dests, payload in routes:
            if _signer(payload) in (None, self.public_key):
                self.sent.append(payload)
            for node in self.sim.nodes:
                if node is not self and (dests is None or node.index in dests):
                    self.sim.network.deliver(self, node, payload)

    def _schedule(self, timer: Timer, at: float) -> None:
        generation = self.generation
        self.sim.scheduler.at(at, lambda: self._on_timer(generation, timer))

    def _offload(self, effect: Offloaded) -> None:
        """Block work (a check or a build) that takes ``Simulation.work_delay`` seconds, as on
        the node's worker thread: done when it ends, on the chain as it is then, and fed back as
        an input."""
        generation = self.generation
        delay = self.work_delay if self.work_delay is not None else self.sim.work_delay
        assert delay is not None
        self.sim.scheduler.at(self.sim.clock.now + delay, lambda: self._done(generation, effect))

    def _done(self, generation: int, effect: Offloaded) -> None:
        if generation == self.generation and self.online:
            result = run_offloaded(self.chain, effect)
            if isinstance(effect, CheckBlock):
                self.checks_done += 1
                self.checked.append((effect.height, effect.block_hash))
            else:
                self.builds_done += 1
            self._guard(lambda: self.runner.run(self.runner.result_effects(effect, result)))

    def _on_timer(self, generation: int, timer: Timer) -> None:
        if generation == self.generation and self.online:
            self._guard(lambda: self.runner.run(self.consensus.on_timer(timer, self.sim.clock.now)))

    # -- inputs --------------------------------------------------------------------------------------

    def deliver(self, source: SimNode, data: bytes) -> None:
        """A message arrives; everything arriving at this instant is handled as one batch."""
        if not self.online:
            return
        if not self._inbox:
            generation = self.generation
            self.sim.scheduler.at(self.sim.clock.now, lambda: self._drain(generation))
        self._inbox.append((source.public_key, data))

    def _drain(self, generation: int) -> None:
        if generation != self.generation or not self.online:
            return
        items, self._inbox = self._inbox, []
        self._guard(lambda: self.runner.run(self.consensus.on_messages(items, self.sim.clock.now)))

    def submit(self, raws: Sequence[bytes]) -> list[Admission]:
        """Transactions from a client: admitted for voting and relayed to the other nodes."""
        if not self.online:
            return []
        result: list[Admission] = []

        def run() -> None:
            admissions, effects = self.consensus.submit(raws, self.sim.clock.now)
            result.extend(admissions)
            self.runner.run(effects)

        self._guard(run)
        relay = [raw for raw, a in zip(raws, result, strict=False) if a.accepted]
        if relay:
            for node in self.sim.nodes:
                if node is not self:
                    self.sim.network.deliver_transactions(self, node, relay)
        return result

    def receive_transactions(self, raws: list[bytes]) -> None:
        if not self.online:
            return
        if not self._tx_inbox:
            generation = self.generation
            self.sim.scheduler.at(self.sim.clock.now, lambda: self._drain_transactions(generation))
        self._tx_inbox.extend(raws)

    def _drain_transactions(self, generation: int) -> None:
        if generation != self.generation or not self.online:
            return
        raws, self._tx_inbox = self._tx_inbox, []
        self.submit(raws)

    def heartbeat(self) -> bytes:
        """A fresh signed heartbeat of this masternode (its tip, the clock's now)."""
        assert self.secret_key is not None
        sim = self.sim
        tip = self.chain.tip
        return Heartbeat.create(
            self.secret_key,
            sim.genesis.hash,
            int(sim.params.network),
            Tier.GOLD,
            tip.height,
            tip.block_hash,
            int(sim.clock.now * 1000),
            "timecoin-sim",
        ).encode()

    def send_heartbeat(self) -> None:
        if not self.online or not self.heartbeats or self.secret_key is None:
            return
        data = self.heartbeat()
        self.receive_heartbeat(data)
        for node in self.sim.nodes:
            if node is not self:
                self.sim.network.deliver_heartbeat(self, node, data)

    def receive_heartbeat(self, data: bytes) -> None:
        if self.online:
            try:
                self.tracker.receive(data)
            except HeartbeatRejected:
                pass

    # -- effects ---------------------------------------------------------------------------------------

    def _guard(self, fn: Callable[[], None]) -> None:
        try:
            fn()
        except SimCrash:
            self.crash()

    def _after_effect(self, effect: Effect) -> None:
        prefix = self.crash_after_persist
        if (
            prefix is not None
            and isinstance(effect, Persist)
            and any(key.startswith(prefix) for _, key, _ in effect.writes)
        ):
            self.crash_after_persist = None
            raise SimCrash

    def _notice(self, effect: Effect) -> None:
        if isinstance(effect, TransactionFinalized):
            self.finalized[effect.txid] = effect
            self.finalized_at[effect.txid] = self.sim.clock.now
        elif isinstance(effect, TransactionRejected):
            self.rejected[effect.txid] = effect.reason
        elif isinstance(effect, Evidence):
            self.evidence.append(effect)
        elif isinstance(effect, SyncBlock):
            holder = self.sim.by_key.get(effect.peer)
            if holder is not None:
                self.sim.network.deliver_blocks(holder, self, effect.height)

    def receive_blocks(self, holder: SimNode, height: int) -> None:
        """Block sync from ``holder`` up to ``height``: each certified block it holds above this
        node's tip, connected in order with its commit certificate outside the engine (as
        ``timecoin.p2p.sync`` does after checking the certificate)."""
        if not self.online:
            return
        while self.chain.tip.height < min(height, holder.chain.tip.height):
            h = self.chain.tip.height + 1
            block_hash = holder.chain.store.block_hash(h)
            raw = holder.chain.store.block(block_hash) if block_hash is not None else None
            certificate = load_commit_certificate(holder.chain.store, h)
            if raw is None or certificate is None:
                return
            self.chain.connect_block(raw, [(CONSENSUS_DB, commit_key(h), certificate)])
            self.synced_blocks += 1
            now = self.sim.clock.now
            self._guard(lambda raw=raw, now=now: self.runner.run(self.consensus.on_block_applied(raw, now)))

    # -- views ---------------------------------------------------------------------------------------

    def blocks(self) -> list[Block]:
        """The committed blocks after genesis, in height order."""
        out = []
        for h in range(1, self.chain.tip.height + 1):
            block = self.chain.block(h)
            assert block is not None
            out.append(block)
        return out

    def chain_txids(self) -> set[bytes]:
        return {tx.txid for b in self.blocks() for tx in b.transactions[1:]}


class SimNetwork:
    """Delivery with seeded latency; ``partition`` (groups of node indices) drops messages
    between groups; ``drop`` (src, dst, data) → True drops one message."""

    def __init__(self, sim: Simulation, latency: tuple[float, float], rng: random.Random) -> None:
        self.sim = sim
        self.latency = latency
        self.rng = rng
        self.partition: list[set[int]] | None = None
        self.drop: Callable[[SimNode, SimNode, bytes], bool] | None = None
        self.delivered = 0

    def _blocked(self, src: SimNode, dst: SimNode) -> bool:
        if self.partition is None:
            return False
        return not any(src.index in g and dst.index in g for g in self.partition)

    def _delay(self) -> float:
        lo, hi = self.latency
        return lo + (hi - lo) * self.rng.random()

    def deliver(self, src: SimNode, dst: SimNode, data: bytes) -> None:
        if self._blocked(src, dst) or (self.drop is not None and self.drop(src, dst, data)):
            return
        self.delivered += 1
        self.sim.scheduler.at(self.sim.clock.now + self._delay(), lambda: dst.deliver(src, data))

    def deliver_transactions(self, src: SimNode, dst: SimNode, raws: list[bytes]) -> None:
        if not self._blocked(src, dst):
            self.sim.scheduler.at(self.sim.clock.now + self._delay(), lambda: dst.receive_transactions(raws))

    def deliver_blocks(self, src: SimNode, dst: SimNode, height: int) -> None:
        if not self._blocked(src, dst):
            self.sim.scheduler.at(self.sim.clock.now + self._delay(), lambda: dst.receive_blocks(src, height))

    def deliver_heartbeat(self, src: SimNode, dst: SimNode, data: bytes) -> None:
        if not self._blocked(src, dst):
            self.sim.scheduler.at(self.sim.clock.now + self._delay(), lambda: dst.receive_heartbeat(data))


class Simulation:
    """N masternodes on a devnet genesis (``devnet_genesis(masternodes=N)``), each in
    ``tmp_path / f"node{i}"``. ``observers`` adds nodes without a masternode key.
    ``max_message_bytes``: the bound a node's transport puts on one consensus message
    (``Context.max_message_bytes``; None: none). ``work_delay``: the engines leave block checks and
    builds to the driver (``Context.offload_blocks``), whose work takes this many seconds, as on
    a node's worker thread (None: done inside the step)."""

    def __init__(
        self,
        tmp_path: Path,
        masternodes: int = 4,
        *,
        seed: int = 0,
        params: NetworkParams = DEVNET,
        latency: tuple[float, float] = (0.005, 0.03),
        accounts: int = 16,
        observers: int = 0,
        max_message_bytes: int | None = None,
        work_delay: float | None = None,
    ) -> None:
        config, account_keys, mn_keys = devnet_genesis(
            accounts=accounts, masternodes=masternodes, params=params
        )
        self.params = params
        self.seed = seed
        self.max_message_bytes = max_message_bytes
        self.work_delay = work_delay
        self.genesis: Genesis = build_genesis(config)
        self.account_keys = account_keys
        self.clock = FakeClock(float(config.timestamp + 10))
        self.scheduler = Scheduler(self.clock)
        self.network = SimNetwork(self, latency, random.Random(seed))
        keys: list[bytes | None] = [*mn_keys, *([None] * observers)]
        self.nodes = [SimNode(self, i, k, tmp_path / f"node{i}") for i, k in enumerate(keys)]
        self.by_key = {n.public_key: n for n in self.nodes if n.public_key is not None}

    def start(self) -> Simulation:
        """Opens every node, exchanges a first round of heartbeats, then starts consensus."""
        for node in self.nodes:
            node.open()
        for node in self.nodes:
            node.send_heartbeat()
        self._heartbeat_loop()
        self.scheduler.at(self.clock.now + 0.1, self._start_all)
        return self

    def _start_all(self) -> None:
        for node in self.nodes:
            if node.online:
                node.start()

    def _heartbeat_loop(self) -> None:
        interval = self.params.heartbeat_interval

        def beat() -> None:
            for node in self.nodes:
                node.send_heartbeat()
            self.scheduler.at(self.clock.now + interval, beat)

        self.scheduler.at(self.clock.now + interval, beat)

    def close(self) -> None:
        for node in self.nodes:
            if node.online:
                node.online = False
                node.chain.close()

    # -- driving ---------------------------------------------------------------------------------------

    def run_until(self, predicate: Callable[[], bool], timeout: float = 30.0) -> bool:
        return self.scheduler.run_until(predicate, timeout)

    def run_for(self, seconds: float) -> None:
        self.scheduler.run_for(seconds)

    def online(self) -> list[SimNode]:
        return [n for n in self.nodes if n.online]

    def heights(self) -> list[int]:
        return [n.chain.tip.height for n in self.online()]

    def wait_height(self, height: int, timeout: float = 60.0, nodes: Sequence[SimNode] | None = None) -> bool:
        group = list(nodes) if nodes is not None else self.online()
        return self.run_until(lambda: all(n.online and n.chain.tip.height >= height for n in group), timeout)

    def wallet(self) -> Wallet:
        return Wallet.from_genesis(self.nodes[0].chain, self.account_keys)

    def transfers(self, wallet: Wallet, count: int) -> list[Transaction]:
        return wallet.transfers(count, self.nodes[0].chain)

    def all_final(self, txids: Iterable[bytes], nodes: Sequence[SimNode] | None = None) -> bool:
        group = list(nodes) if nodes is not None else self.online()
        wanted = list(txids)
        return all(all(t in n.finalized for t in wanted) for n in group)

    def assert_consistent(self) -> None:
        """Invariants 2 and 4 across the online nodes: at every height two nodes share, the
        same block, hence (the header commits it) the same UTXO set hash."""
        nodes = self.online()
        common = min(n.chain.tip.height for n in nodes)
        for h in range(1, common + 1):
            hashes = {n.chain.store.block_hash(h) for n in nodes}
            assert len(hashes) == 1, f"nodes disagree at height {h}"
        tips = {n.chain.tip for n in nodes if n.chain.tip.height == common}
        assert len(tips) == 1
        sets = {n.chain.utxos.set_hash() for n in nodes if n.chain.tip.height == common}
        assert len(sets) == 1, "nodes at the same tip hold different UTXO sets"


# -- scenario helpers ----------------------------------------------------------------------------


def _signer(data: bytes) -> bytes | None:
    """The key that signed a vote, proposal or status (None for other messages)."""
    if data[0] not in (Kind.TX_VOTE, Kind.PROPOSAL, Kind.PREVOTE, Kind.PRECOMMIT):
        return None
    msg = decode_message(data)
    if isinstance(msg, Proposal):
        return msg.proposer
    return msg.voter  # type: ignore[union-attr]


def conflicting_pairs(sim: Simulation, wallet: Wallet, count: int) -> list[tuple[Transaction, Transaction]]:
    """``count`` pairs of signed transfers, the two of a pair spending the same wallet coin to the
    same owner with different amounts (so different txids): double spends."""
    chain = sim.nodes[0].chain
    coins = sorted(wallet.coins.items(), key=lambda kv: (kv[0].txid, kv[0].vout))
    if len(coins) < count:
        raise ValueError(f"wallet has {len(coins)} coins, {count} pairs asked")
    pairs = []
    for outpoint, (value, key) in coins[:count]:
        owner = pubkey_hash(crypto.public_key(key))
        a = Transaction.transfer([outpoint], [TxOut(value // 2, owner)])
        b = Transaction.transfer([outpoint], [TxOut(value // 2 - 1, owner)])
        signed = sign_transactions([a, b], [[key], [key]], chain.genesis.hash, int(sim.params.network))
        pairs.append((signed[0], signed[1]))
        del wallet.coins[outpoint]
    return pairs


def retimed(compact: CompactBlock, seconds: int = 1) -> CompactBlock:
    """The same compact block with its header's timestamp ``seconds`` later: another block, which
    a Byzantine leader signs as a second proposal for the same (height, round)."""
    header = BlockHeader.decode(compact.header)
    return replace(compact, header=replace(header, timestamp=header.timestamp + seconds).encode())


def equivocating_leader(sim: Simulation) -> Outgoing:
    """A Byzantine leader: each proposal it makes goes to all but one node, and a second proposal
    for the same (height, round), a different block (timestamp + 1, same VRF proof), signed with
    its key, goes to the last node and to the first (which therefore sees both)."""

    def rewrite(node: SimNode, data: bytes) -> list[tuple[Sequence[int] | None, bytes]]:
        if data[0] != Kind.PROPOSAL or node.secret_key is None:
            return [(None, data)]
        proposal = Proposal.decode(data)
        second = Proposal.create(
            node.secret_key,
            sim.genesis.hash,
            proposal.height,
            proposal.round,
            proposal.valid_round,
            retimed(proposal.compact),
        ).encode()
        others = [n.index for n in sim.nodes if n is not node]
        return [(others[:-1], data), (others[-1:], second), (others[:1], second)]

    return rewrite


def flooding_leader(sim: Simulation, copies: int) -> Outgoing:
    """A Byzantine leader flooding its rounds: each proposal it makes goes to everyone, followed
    by ``copies`` more for the same (height, round), each a different block (timestamp + 1, + 2,
    ..., same VRF proof) signed with its key."""

    def rewrite(node: SimNode, data: bytes) -> list[tuple[Sequence[int] | None, bytes]]:
        if data[0] != Kind.PROPOSAL or node.secret_key is None:
            return [(None, data)]
        proposal = Proposal.decode(data)
        routes: list[tuple[Sequence[int] | None, bytes]] = [(None, data)]
        for i in range(1, copies + 1):
            flood = Proposal.create(
                node.secret_key,
                sim.genesis.hash,
                proposal.height,
                proposal.round,
                proposal.valid_round,
                retimed(proposal.compact, i),
            )
            routes.append((None, flood.encode()))
        return routes

    return rewrite


def double_voter(sim: Simulation) -> Outgoing:
    """A Byzantine voter: every prevote/precommit it sends is followed by a conflicting one (nil
    for a block, a made-up block hash for nil), and every finality vote by one rejecting what it
    accepted, all validly signed and sent to everyone."""

    def rewrite(node: SimNode, data: bytes) -> list[tuple[Sequence[int] | None, bytes]]:
        routes: list[tuple[Sequence[int] | None, bytes]] = [(None, data)]
        assert node.secret_key is not None
        if data[0] in (Kind.PREVOTE, Kind.PRECOMMIT):
            vote = BlockVote.decode(data)
            other = NIL if vote.block_hash != NIL else bytes([1]) * 32
            routes.append(
                (
                    None,
                    BlockVote.create(
                        node.secret_key, sim.genesis.hash, vote.kind, vote.height, vote.round, other
                    ).encode(),
                )
            )
        elif data[0] == Kind.TX_VOTE:
            txv = TxVote.decode(data)
            if txv.accepts:
                routes.append(
                    (
                        None,
                        TxVote.create(
                            node.secret_key, sim.genesis.hash, txv.height, [], txv.accepts
                        ).encode(),
                    )
                )
        return routes

    return rewrite


def signature_conflicts(
    messages: Iterable[bytes], inputs: dict[bytes, Sequence[bytes]] | None = None
) -> list[str]:
    """Conflicting signatures among messages one key signed (DESIGN §12 invariant 3): two
    proposals, prevotes or precommits for different blocks at one (height, round); a txid both
    accepted and rejected; and, given ``inputs`` (txid → outpoints), two txids accepted for one
    outpoint. Returns a description of each conflict (empty: none)."""
    block_msgs: dict[tuple[int, int, int, bytes], bytes] = {}
    accepted: dict[bytes, set[bytes]] = {}
    rejected: dict[bytes, set[bytes]] = {}
    found = []
    for data in messages:
        msg = decode_message(data)
        if isinstance(msg, (BlockVote, Proposal)):
            kind = int(msg.kind) if isinstance(msg, BlockVote) else int(Kind.PROPOSAL)
            signer = msg.voter if isinstance(msg, BlockVote) else msg.proposer
            key = (kind, msg.height, msg.round, signer)
            seen = block_msgs.setdefault(key, msg.block_hash)
            if seen != msg.block_hash:
                found.append(
                    f"{Kind(kind).name} at {msg.height}/{msg.round}: {seen.hex()} and {msg.block_hash.hex()}"
                )
        elif isinstance(msg, TxVote):
            accepted.setdefault(msg.voter, set()).update(msg.accepts)
            rejected.setdefault(msg.voter, set()).update(msg.rejects)
    for voter, txids in accepted.items():
        for txid in txids & rejected.get(voter, set()):
            found.append(f"{voter.hex()[:16]} accepted and rejected {txid.hex()}")
        if inputs is not None:
            spent: dict[bytes, bytes] = {}
            for txid in sorted(txids):
                for o in inputs.get(txid, ()):
                    other = spent.setdefault(o, txid)
                    if other != txid:
                        found.append(
                            f"{voter.hex()[:16]} accepted {other.hex()} and {txid.hex()} for one outpoint"
                        )
    return found
