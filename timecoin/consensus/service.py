"""The consensus engine inside a running node (DESIGN §6, §7; docs/consensus.md §1, §9): the
one :class:`~timecoin.consensus.engine.Consensus` of the process, driven by the reference
:class:`~timecoin.consensus.runner.EffectRunner` over the node's P2P service and event loop.

**Who owns the state.** The event loop thread: every input (a gossip batch, a fired timer, a
submitted transaction, a block connected by sync) is one synchronous step, engine call then all
its effects, with no ``await`` inside, so nothing else sees the engine or the chain half-way
(CometBFT's ``receiveRoutine``, with the loop as the one routine).

**Wire mapping.** Consensus messages are opaque P2P vote items: ``Broadcast`` gossips them
(items over ``MAX_VOTE_ITEM`` — proposals and decisions with a large compact block — travel one per
LARGE_VOTE frame); ``SendTo(masternode)`` goes to that masternode's connection, or, without one,
to every connected masternode (a decision request or Snowball query any member can answer);
``Reply`` answers the peer the request came from. Received TxVote, Proposal, BlockVote, Status
and TxCertificate items are relayed on (so a partial mesh works) once they decoded and verified;
point-to-point kinds are not; undecodable or badly signed ones cost their sender reputation.
``FetchTransactions`` asks the voter's connection for transactions its vote named; ``SyncBlock``
raises the claimed height of the peer that served a decision this node cannot rebuild, so block
sync fetches the block in chunks (docs/consensus.md, "Compact blocks").

**Followers.** A node without a masternode key runs the engine without a key: it tallies the
votes masternodes gossip to it and reports finality from them, but sends nothing (the VOTE
classes are closed to non-masternodes). Its blocks arrive by P2P block sync, fully validated
by the ledger, each checked first against its commit certificate, which it stores with the block
(docs/p2p.md, "Block sync").

**Block work** (``CheckBlock``: a proposed block's full validation, ~70 ms for a block of
12,000 transfers; ``BuildBlock``: the leader's assembly of its block, ~130 ms) runs on one
worker thread, so the loop goes on tallying transaction votes meanwhile; the native UTXO set
is read there with the GIL released, and a write (a block connected, the coins flusher) waits
for the work to finish. The result comes back as a step of its own (``checked``, ``built``).
``stop`` waits for the work in progress. Where the node has less than a core of its own, the
thread costs more than it saves (it contends for the GIL and the cores with the loop), so it
can be turned off (``offload_blocks``): the work then runs inside the steps.

**Timers** are ``loop.call_later`` handles, kept and cancelled by :meth:`ConsensusService.stop`.
The loop may run a timer up to its clock's resolution early (uvloop rounds the delay down to a
millisecond); the engine is told the time the timer was set for if the clock is still before
it, so a deadline check never finds itself early and re-arms the same timer in a spin.

**Failed steps** (DESIGN §13: no exception inside a consensus step stops the node). A step that
raises, in the engine or in one of its effects, is logged with its input (kind, peer, the first
bytes of each message), counted (``step_failures``, metric
``timecoin_consensus_step_failures_total``) and its input dropped. What it leaves cannot be
trusted: the engine changes its memory first and emits effects at the end, so a half-run step
leaves state with the effects that belong to it lost (a vote flush marked scheduled whose timer
never started, a signer accept recorded in memory but not persisted, a block committed but not
connected). Dropping the input but keeping that engine would stall finality or, after a
restart, let the signer contradict itself. So the engine is rebuilt from the store, exactly as
at a restart (signer records, finalized pool, tip): every message that left the node was
persisted before it left, so the store holds everything the node has promised, and what only
lived in memory (tallies, round state) is learnt again from the peers' re-votes and statuses as
after a restart. The old engine's pending transactions (and the mempool's) are admitted again
in their arrival order, except the dropped input's own (refused ``consensus-step-failed``, which
a client may retry); timers are cancelled and the new engine schedules its own. Only if the
rebuild itself fails does consensus stop (``on_failure``). Failpoints ``consensus.step.<kind>``
(``start``, ``submit``, ``gossip``, ``timer``, ``block``, ``checked``, ``built``;
``timecoin.failpoints``) sit between a step's engine call and its effects: the worst place to
fail.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol

from timecoin import failpoints
from timecoin.consensus.effects import (
    CheckBlock,
    Effect,
    Encodable,
    Evidence,
    FetchTransactions,
    SyncBlock,
    Timer,
    TransactionFinalized,
    TransactionRejected,
)
from timecoin.consensus.engine import FAULTS, Consensus
from timecoin.consensus.feed import FinalityFeed
from timecoin.consensus.messages import Kind
from timecoin.consensus.runner import EffectRunner, Offloaded, run_offloaded
from timecoin.core.types import Block
from timecoin.ledger.chain import ChainState
from timecoin.ledger.mempool import Admission, Mempool
from timecoin.p2p import P2PService
from timecoin.p2p.gossip import PENALTY_BAD_ITEM, BadItem, GossipKind
from timecoin.p2p.messages import MAX_LARGE_VOTE_ITEM
from timecoin.p2p.peer import Peer
from timecoin.store.chainstore import ExtraWrites

__all__ = ["RECENT_CERTIFICATES", "STEP_FAILED", "ConsensusService"]

log = logging.getLogger(__name__)

RECENT_CERTIFICATES = 100_000
"""Finality certificates remembered after their transactions are archived (a block deletes the
``finalized`` record), so ``gettransactionfinality`` can still show them for a while."""
RELAYED_KINDS = frozenset(
    {Kind.TX_VOTE, Kind.TX_CERTIFICATE, Kind.PROPOSAL, Kind.PREVOTE, Kind.PRECOMMIT, Kind.STATUS}
)
"""Consensus kinds every masternode needs: relayed on; the others are point-to-point."""
STEP_FAILED = "consensus-step-failed"
"""Reject code of the transactions of a submission whose consensus step failed (dropped: nothing
of it was admitted; the client may submit them again)."""
DESCRIBED_ITEMS = 4
"""Messages of a failed step's input shown in its log line."""
DESCRIBED_BYTES = 24
"""Bytes of each of them shown (hex)."""


class ConsensusMetricsHook(Protocol):
    """What the service reports to metrics (``timecoin.metrics.ConsensusMetrics``)."""

    def transactions_finalized(self, latencies: Iterable[float]) -> None: ...

    def round_started(self, height: int, round: int) -> None: ...

    def phase_finished(self, phase: str, seconds: float) -> None: ...

    def step_failed(self) -> None: ...

    def transaction_rejected(self, reason: str) -> None: ...


class ConsensusService:
    """Runs one node's consensus (see the module docstring).

    ``connect_block(raw, extra)`` connects a committed block with extra store writes in its
    transaction (the node's own, which also indexes, cleans the mempool and announces it).
    ``on_failure(reason)`` is called when a step failed and the engine could not be rebuilt
    from the store either (module docstring, "Failed steps"): the node should stop. ``clock``
    is unix seconds.
    ``metrics`` (``timecoin.metrics.ConsensusMetrics``) is told of finality and new rounds.
    ``sweep(keys)`` takes the records committed blocks made useless (the node's
    ``timecoin.store.sweeper.Sweeper.queue``; default: deleted at once). ``offload_blocks``:
    block checks and builds on the worker thread (module docstring, "Block work"; the node's
    ``block_work_thread`` setting), else inside the steps.
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
        sweep: Callable[[Sequence[tuple[bytes, bytes]]], None] | None = None,
        offload_blocks: bool = True,
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
        self._chain = chain
        self._mempool = mempool

        def new_engine() -> Consensus:
            return Consensus.from_store(
                chain,
                mempool,
                secret_key=secret_key,
                production_gate=production_gate,
                max_message_bytes=MAX_LARGE_VOTE_ITEM,
                offload_blocks=offload_blocks,
            )

        self._new_engine = new_engine
        self.engine = new_engine()
        self.step_failures = 0
        """Steps that raised (each input dropped, the engine rebuilt)."""
        self.runner = EffectRunner(
            self.engine,
            chain,
            self,
            self._schedule,
            clock,
            on_notice=self._notice,
            connect_block=connect_block,
            sweep=sweep,
            offload=self._offload if offload_blocks else None,
        )
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="block-work")
        """Runs the engine's block checks and builds off the loop (module docstring, "Block
        work")."""
        self._work: set[asyncio.Future[object]] = set()
        self.recent: OrderedDict[bytes, bytes | Encodable] = OrderedDict()
        """txid → its finality certificate, encoded or by reference (empty bytes when a block
        settled it), most recent last: no tuple per entry, so the collector has nothing to
        scan in it (a certificate by reference is untracked, docs/operator.md "Memory")."""
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
        self._step("start", lambda: self.engine.start(self.clock()), lambda: "start")

    def stop(self) -> None:
        """Cancels every timer and wakes every waiter (they see the state as it is), once the block
        work in progress has ended (it reads the chain)."""
        self._failed = True  # no step runs after stop
        for fut in self._work:
            fut.cancel()
        self._work.clear()
        self._worker.shutdown(wait=True, cancel_futures=True)  # the work in progress reads the chain
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

        if not self._step("submit", step, lambda: _describe(len(raws), "transactions", None, raws), raws):
            message = "the consensus step admitting this transaction failed; nothing was admitted, retry"
            return [Admission(None, STEP_FAILED, message) for _ in raws]
        return result

    def on_gossip(self, peer: Peer, items: list[bytes]) -> list[bool | BadItem]:
        """The P2P VOTE / LARGE_VOTE handler: one ``Consensus.receive`` batch. Per item: relay it
        if it decoded, verified and was handled and is of a kind every masternode needs
        (DESIGN §8: "consensus items are relayed only after they decode and verify"); charge its
        sender if it did not decode or verify (``engine.FAULTS``, DESIGN §13); else keep it."""
        verdicts: list[str] = []

        def step() -> list[Effect]:
            effects, found = self.engine.receive([(peer, item) for item in items], self.clock())
            verdicts.extend(found)
            return effects

        if not self._step("gossip", step, lambda: _describe(len(items), "consensus messages", peer, items)):
            return [False] * len(items)  # a failed step relays nothing
        return [
            BadItem(PENALTY_BAD_ITEM, f"consensus message: {verdict}")
            if verdict in FAULTS
            else not verdict and item[0] in RELAYED_KINDS
            for item, verdict in zip(items, verdicts, strict=True)
        ]

    def block_connected(self, raw: bytes | Block) -> None:
        """A block connected outside the engine (P2P sync, ``submitblock``) is the new tip."""
        self._step(
            "block",
            lambda: self.engine.on_block_applied(raw, self.clock()),
            lambda: f"block {raw[:DESCRIBED_BYTES].hex() if isinstance(raw, bytes) else raw.header.height}",
        )

    def _offload(self, effect: Offloaded) -> None:
        """The runner's ``offload``: :func:`run_offloaded` on the worker thread, its result fed
        to the engine as a step on the loop (``checked`` or ``built``)."""
        fut = asyncio.get_running_loop().run_in_executor(self._worker, run_offloaded, self._chain, effect)
        self._work.add(fut)
        fut.add_done_callback(lambda done: self._done(done, effect))

    def _done(self, fut: asyncio.Future[object], effect: Offloaded) -> None:
        self._work.discard(fut)
        if fut.cancelled():
            return
        result = fut.result()
        if isinstance(effect, CheckBlock):
            kind, what = "checked", f"check of block {effect.block_hash.hex()} at height {effect.height}"
        else:
            kind, what = "built", f"build of the block of height {effect.height} round {effect.round}"
        self._step(kind, lambda: self.runner.result_effects(effect, result), lambda: what)

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

    def _fire(self, handle_box: list[asyncio.TimerHandle], timer: Timer, at: float) -> None:
        self._timers.discard(handle_box[0])
        now = max(self.clock(), at)  # never early (module docstring, "Timers")
        self._step("timer", lambda: self.engine.on_timer(timer, now), lambda: f"timer {timer}")

    def _step(
        self,
        kind: str,
        call: Callable[[], list[Effect]],
        describe: Callable[[], str],
        dropped: Sequence[bytes] = (),
    ) -> bool:
        """Runs one input of ``kind`` (``start``, ``submit``, ``gossip``, ``timer``, ``block``,
        ``checked``, ``built``):
        the engine ``call``, then all its effects. Whether it completed: a step that raised is
        logged with ``describe()``, counted, dropped (with the transactions ``dropped``) and the
        engine rebuilt (module docstring, "Failed steps")."""
        if self._failed:
            return False
        try:
            effects = call()
            failpoints.hit(f"consensus.step.{kind}")
            self.runner.run(effects)
        except Exception:
            self._step_failed(kind, describe, dropped)
            return False
        try:
            self._report_metrics()
        except Exception:
            log.exception("consensus metrics failed")  # the step itself completed
        return True

    def _report_metrics(self) -> None:
        latencies, self._latencies = self._latencies, []
        if self.metrics is None:
            return
        if latencies:
            self.metrics.transactions_finalized(latencies)
        state = self.engine.bft
        current = (state.height, state.round)
        if current != self._round_seen:
            self._round_seen = current
            self.metrics.round_started(*current)
        self._report_phases()

    def _step_failed(self, kind: str, describe: Callable[[], str], dropped: Sequence[bytes]) -> None:
        """Called in the ``except`` block of a failed step: logs, counts, rebuilds."""
        self.step_failures += 1
        try:
            what = describe()
        except Exception as e:  # the description must never hide the failure itself
            what = f"(input not describable: {e!r})"
        log.exception(
            "consensus step failed (%s: %s); input dropped, engine rebuilt from the store", kind, what
        )
        if self.metrics is not None:
            self.metrics.step_failed()
        try:
            self._rebuild(dropped)
        except Exception:
            self._failed = True
            log.exception("consensus engine could not be rebuilt after a failed step; consensus stops")
            self._on_failure("consensus step failed and the engine could not be rebuilt")

    def _rebuild(self, dropped: Sequence[bytes]) -> None:
        """Replaces the engine with one read from the store (a restart without the process
        restart) and admits the old one's pending transactions again, in arrival order, but
        not those of the failed input (``dropped``)."""
        old = self.engine
        skip = set(dropped)
        pending = sorted(old.finality.pending.values(), key=lambda p: p.first_seen)
        carried = [p.raw for p in pending if p.raw not in skip]
        carried += [
            e.raw for e in self._mempool.entries() if e.txid not in old.finality.pending and e.raw not in skip
        ]
        for handle in self._timers:
            handle.cancel()
        self._timers.clear()
        self._mempool.remove([e.txid for e in list(self._mempool.entries())])
        self._latencies = []
        self._round_seen = None
        self._rounds_reported = 0
        self.engine = self._new_engine()
        self.runner.consensus = self.engine
        self.runner.run(self.engine.start(self.clock()))
        if carried:
            admissions, effects = self.engine.submit(carried, self.clock())
            self.runner.run(effects)
            lost = sum(not a.accepted for a in admissions)
            log.warning(
                "consensus rebuilt: %d pending transactions carried over, %d of them refused now",
                len(carried) - lost,
                lost,
            )

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
        handle = loop.call_later(max(0.0, at - self.clock()), self._fire, box, timer, at)
        box.append(handle)
        self._timers.add(handle)

    # -- notices and queries ----------------------------------------------------------------------------

    def _notice(self, effect: Effect) -> None:
        if isinstance(effect, TransactionFinalized):
            if effect.latency is not None:
                self._latencies.append(max(0.0, effect.latency))
            self.recent[effect.txid] = effect.certificate
            self.recent.move_to_end(effect.txid)
            if len(self.recent) > RECENT_CERTIFICATES:
                self.recent.popitem(last=False)
            self.feed.append(effect.txid, True)
            self._wake(effect.txid)
        elif isinstance(effect, TransactionRejected):
            if self.metrics is not None:
                self.metrics.transaction_rejected(effect.reason)
            self.feed.append(effect.txid, False)
            self._wake(effect.txid)
        elif isinstance(effect, FetchTransactions):
            # From the voter's own connection, which pays for txids it never sends; without
            # one, the transactions come by gossip or their holders' periodic resend.
            peer = self.p2p.masternode_peers().get(effect.masternode)
            if peer is not None:
                self.p2p.request_transactions(peer, list(effect.txids))
        elif isinstance(effect, SyncBlock):
            if isinstance(effect.peer, Peer):
                self.p2p.sync.note_height(effect.peer, effect.height)
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

    @property
    def final_backlog(self) -> int:
        """Final transactions no block archives yet."""
        return len(self.engine.finality.finalized)

    @property
    def final_backlog_bytes(self) -> int:
        """Bytes of the final transactions no block archives yet (admission control bounds it)."""
        return self.engine.finality.finalized_bytes

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
        cert = self.recent.get(txid)
        if cert is None:
            return None
        return cert if isinstance(cert, bytes) else cert.encode()


def _describe(count: int, noun: str, peer: object, items: Sequence[bytes]) -> str:
    """A failed step's input for its log line: how many items, from which peer, and the kind
    (first byte) and first :data:`DESCRIBED_BYTES` bytes of the first :data:`DESCRIBED_ITEMS`."""
    shown = []
    for item in items[:DESCRIBED_ITEMS]:
        try:
            kind = Kind(item[0]).name if item else "empty"
        except ValueError:
            kind = f"kind {item[0]}"
        shown.append(f"{kind} {len(item)} B {item[:DESCRIBED_BYTES].hex()}")
    source = f" from peer {peer}" if peer is not None else ""
    more = f", +{count - len(shown)} more" if count > len(shown) else ""
    return f"{count} {noun}{source}: " + "; ".join(shown) + more
