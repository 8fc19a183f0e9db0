"""The consensus engine inside a running node (DESIGN §6, §7; docs/consensus.md §1, §9): the
one :class:`~timecoin.consensus.engine.Consensus` of the process, driven by the reference
:class:`~timecoin.consensus.runner.EffectRunner` over the node's P2P service and event loop.

**Who owns the state.** The event loop thread: every input (a gossip batch, a fired timer, a
submitted transaction, a block connected by sync) is one synchronous step, engine call then all
its effects, with no ``await`` inside, so nothing else sees the engine or the chain half-way
(CometBFT's ``receiveRoutine``, with the loop as the one routine).

**Wire mapping.** Consensus messages are opaque P2P vote items: ``Broadcast`` gossips them
(items over ``MAX_VOTE_ITEM`` — proposals and decisions carrying a block — travel one per
LARGE_VOTE frame); ``SendTo(masternode)`` goes to that masternode's connection, or, without one,
to every connected masternode (a decision request or Snowball query any member can answer);
``Reply`` answers the peer the request came from. Received TxVote, Proposal, BlockVote, Status
and TxCertificate items are relayed on (so a partial mesh works); point-to-point kinds are not.

**Followers.** A node without a masternode key runs the engine without a key: it tallies the
votes masternodes gossip to it and reports finality from them, but sends nothing (the VOTE
classes are closed to non-masternodes). Its blocks arrive by P2P block sync, fully validated
by the ledger; the sync protocol does not carry commit certificates yet, so a follower does not
check them (docs/consensus.md §9).

**Timers** are ``loop.call_later`` handles, kept and cancelled by :meth:`ConsensusService.stop`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Protocol

from timecoin.consensus.effects import (
    Effect,
    Evidence,
    Timer,
    TransactionFinalized,
    TransactionRejected,
)
from timecoin.consensus.engine import Consensus
from timecoin.consensus.feed import FinalityFeed
from timecoin.consensus.messages import Kind
from timecoin.consensus.runner import EffectRunner
from timecoin.core.types import Block
from timecoin.ledger.chain import ChainState
from timecoin.ledger.mempool import Admission, Mempool
from timecoin.p2p import P2PService
from timecoin.p2p.gossip import GossipKind
from timecoin.p2p.messages import MAX_LARGE_VOTE_ITEM
from timecoin.p2p.peer import Peer
from timecoin.store.chainstore import ExtraWrites

__all__ = ["PROPOSAL_OVERHEAD", "RECENT_CERTIFICATES", "ConsensusService"]

log = logging.getLogger(__name__)

PROPOSAL_OVERHEAD = 256 * 1024
"""Bytes of a LARGE_VOTE item kept for everything of a proposal or decision besides its
transactions: header, coinbase (one output per paid masternode), message fields and a commit
certificate (96 bytes per voter: ~2,700 voters)."""
RECENT_CERTIFICATES = 100_000
"""Finality certificates remembered after their transactions are archived (a block deletes the
``finalized`` record), so ``gettransactionfinality`` can still show them for a while."""
RELAYED_KINDS = frozenset(
    {Kind.TX_VOTE, Kind.TX_CERTIFICATE, Kind.PROPOSAL, Kind.PREVOTE, Kind.PRECOMMIT, Kind.STATUS}
)
"""Consensus kinds every masternode needs: relayed on; the others are point-to-point."""


class ConsensusMetricsHook(Protocol):
    """What the service reports to metrics (``timecoin.metrics.ConsensusMetrics``)."""

    def transactions_finalized(self, latencies: Iterable[float]) -> None: ...

    def round_started(self, height: int, round: int) -> None: ...

    def phase_finished(self, phase: str, seconds: float) -> None: ...


class ConsensusService:
    """Runs one node's consensus (see the module docstring).

    ``connect_block(raw, extra)`` connects a committed block with extra store writes in its
    transaction (the node's own, which also indexes, cleans the mempool and announces it).
    ``on_failure(reason)`` is called when a step fails (a bug or a store failure: the engine's
    state may no longer match the store, so the node should stop). ``clock`` is unix seconds.
    ``metrics`` (``timecoin.metrics.ConsensusMetrics``) is told of finality and new rounds.
    """

    def __init__(
        self,
        chain: ChainState,
        mempool: Mempool,
        p2p: P2PService,
        secret_key: bytes | None,
        production_gate: Callable[[], bool],
        connect_block: Callable[[bytes, ExtraWrites], object],
        on_failure: Callable[[str], None],
        clock: Callable[[], float] = time.time,
        metrics: ConsensusMetricsHook | None = None,
    ) -> None:
        self.p2p = p2p
        self.metrics = metrics
        self._round_seen: tuple[int, int] | None = None
        self._rounds_reported = 0
        self._latencies: list[float] = []
        """Finality latencies of this step, for the metrics in one call at its end."""
        """Round records (``Monitor.rounds``) whose phase durations went to the metrics."""
        self.clock = clock
        self.is_masternode = secret_key is not None
        self._on_failure = on_failure
        self.engine = Consensus.from_store(
            chain,
            mempool,
            secret_key=secret_key,
            production_gate=production_gate,
            max_transaction_bytes=MAX_LARGE_VOTE_ITEM - PROPOSAL_OVERHEAD,
        )
        self.runner = EffectRunner(
            self.engine,
            chain,
            self,
            self._schedule,
            clock,
            on_notice=self._notice,
            connect_block=connect_block,
        )
        self.recent: OrderedDict[bytes, tuple[bytes, int | None]] = OrderedDict()
        """txid → (finality certificate, settling block height or None), most recent last."""
        self.feed = FinalityFeed()
        """Every finality decision here, numbered (``getfinalityfeed``)."""
        self.dropped_sends = 0
        """Messages a follower did not send (the VOTE classes are closed to non-masternodes)."""
        self._timers: set[asyncio.TimerHandle] = set()
        self._waiters: dict[bytes, list[asyncio.Future[None]]] = {}
        self._started = False
        self._failed = False

    # -- lifecycle -------------------------------------------------------------------------------------

    def start(self) -> None:
        """Plugs into P2P vote gossip and starts the engine (call after P2P has started)."""
        if self._started:
            raise RuntimeError("ConsensusService already started")
        self._started = True
        self.p2p.register_handler(GossipKind.VOTE, self.on_gossip)
        self.p2p.register_handler(GossipKind.LARGE_VOTE, self.on_gossip)
        self._step(lambda: self.engine.start(self.clock()))

    def stop(self) -> None:
        """Cancels every timer and wakes every waiter (they see the state as it is)."""
        self._failed = True  # no step runs after stop
        for handle in self._timers:
            handle.cancel()
        self._timers.clear()
        for futures in self._waiters.values():
            for fut in futures:
                if not fut.done():
                    fut.set_result(None)
        self._waiters.clear()

    # -- inputs (each one synchronous step) -------------------------------------------------------------

    def submit(self, raws: Sequence[bytes]) -> list[Admission]:
        """Admits encoded transactions (RPC or gossip) for finality voting; one verdict each."""
        result: list[Admission] = []

        def step() -> list[Effect]:
            admissions, effects = self.engine.submit(raws, self.clock())
            result.extend(admissions)
            return effects

        self._step(step)
        return result

    def on_gossip(self, peer: Peer, items: list[bytes]) -> list[bool]:
        """The P2P VOTE / LARGE_VOTE handler: one ``on_messages`` batch; relay flags per item."""
        self._step(lambda: self.engine.on_messages([(peer, item) for item in items], self.clock()))
        return [bool(item) and item[0] in RELAYED_KINDS for item in items]

    def block_connected(self, raw: bytes | Block) -> None:
        """A block connected outside the engine (P2P sync, ``submitblock``) is the new tip."""
        self._step(lambda: self.engine.on_block_applied(raw, self.clock()))

    def _report_phases(self) -> None:
        """Phase durations of the rounds closed since the last call (every record but the
        current one is closed: a round's record closes when the next one starts) to the
        metrics. O(1) when none closed."""
        assert self.metrics is not None
        monitor = self.engine.monitor
        closed = monitor.counters["rounds"] - (monitor.current is not None)
        new = min(closed - self._rounds_reported, len(monitor.rounds) - 1)
        self._rounds_reported = closed
        if new <= 0:
            return
        for record in list(monitor.rounds)[-1 - new : -1]:
            for phase, seconds in record.phases.items():
                self.metrics.phase_finished(phase, seconds)

    def _fire(self, handle_box: list[asyncio.TimerHandle], timer: Timer) -> None:
        self._timers.discard(handle_box[0])
        self._step(lambda: self.engine.on_timer(timer, self.clock()))

    def _step(self, call: Callable[[], list[Effect]]) -> None:
        if self._failed:
            return
        try:
            self.runner.run(call())
            if self.metrics is not None and self._latencies:
                self.metrics.transactions_finalized(self._latencies)
            self._latencies = []
            if self.metrics is not None:
                state = self.engine.bft
                current = (state.height, state.round)
                if current != self._round_seen:
                    self._round_seen = current
                    self.metrics.round_started(*current)
                self._report_phases()
        except Exception:
            self._failed = True
            log.exception("consensus step failed; consensus stops")
            self._on_failure("consensus step failed")

    # -- transport (EffectRunner) -----------------------------------------------------------------------

    def broadcast(self, data: bytes) -> None:
        if not self.is_masternode:
            self.dropped_sends += 1
            return
        self.p2p.broadcast_votes([data])

    def resend(self, data: bytes) -> None:
        if not self.is_masternode:
            self.dropped_sends += 1
            return
        self.p2p.resend_votes([data])

    def relay_transactions(self, raws: list[bytes]) -> None:
        self.p2p.resend_transactions(raws)

    def send(self, masternode: bytes, data: bytes) -> None:
        if not self.is_masternode:
            self.dropped_sends += 1
            return
        peers = self.p2p.masternode_peers()
        target = peers.get(masternode)
        for peer in [target] if target is not None else peers.values():
            self.p2p.send_votes(peer, [data])

    def reply(self, peer: Any, data: bytes) -> None:
        if not self.is_masternode or not isinstance(peer, Peer):
            self.dropped_sends += 1
            return
        self.p2p.send_votes(peer, [data])

    def _schedule(self, timer: Timer, at: float) -> None:
        loop = asyncio.get_running_loop()
        box: list[asyncio.TimerHandle] = []
        handle = loop.call_later(max(0.0, at - self.clock()), self._fire, box, timer)
        box.append(handle)
        self._timers.add(handle)

    # -- notices and queries ----------------------------------------------------------------------------

    def _notice(self, effect: Effect) -> None:
        if isinstance(effect, TransactionFinalized):
            if effect.latency is not None:
                self._latencies.append(max(0.0, effect.latency))
            self.recent[effect.txid] = (effect.certificate, effect.block_height)
            self.recent.move_to_end(effect.txid)
            if len(self.recent) > RECENT_CERTIFICATES:
                self.recent.popitem(last=False)
            self.feed.append(effect.txid, True)
            self._wake(effect.txid)
        elif isinstance(effect, TransactionRejected):
            self.feed.append(effect.txid, False)
            self._wake(effect.txid)
        elif isinstance(effect, Evidence):
            log.warning(
                "evidence %s by masternode %s at height %d",
                effect.kind,
                effect.masternode.hex(),
                effect.height,
            )

    def _wake(self, txid: bytes) -> None:
        for fut in self._waiters.pop(txid, ()):
            if not fut.done():
                fut.set_result(None)

    async def wait_decided(self, txid: bytes, timeout: float) -> None:
        """Returns once ``txid`` is finalized or rejected here, or after ``timeout`` seconds
        (whichever is first; the caller reads the status then)."""
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(txid, []).append(fut)
        try:
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow a cancellation.
            async with asyncio.timeout(timeout):
                await fut
        except TimeoutError:
            pass
        finally:
            futures = self._waiters.get(txid)
            if futures is not None and fut in futures:
                futures.remove(fut)
                if not futures:
                    del self._waiters[txid]

    def final_spender(self, outpoint: bytes) -> bytes | None:
        """The txid of the final transaction no block archives yet that spends ``outpoint``."""
        return self.engine.finality.spent_final.get(outpoint)

    def final_transaction(self, txid: bytes) -> bytes | None:
        """The encoded transaction ``txid`` if it is final here and no block archives it yet."""
        entry = self.engine.finality.finalized.get(txid)
        return entry.raw if entry is not None else None

    def certificate(self, txid: bytes) -> bytes | None:
        """The finality certificate of ``txid`` if this node holds one (final, or archived
        recently); empty bytes when a block settled it without one."""
        status = self.engine.transaction_status(txid)
        if status is not None and status.get("state") == "final":
            return bytes.fromhex(status["certificate"])
        entry = self.recent.get(txid)
        return entry[0] if entry is not None else None
