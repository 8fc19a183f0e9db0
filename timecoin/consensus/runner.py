"""The reference driver of :class:`~timecoin.consensus.engine.Consensus`: runs its effects in
order against a :class:`~timecoin.ledger.chain.ChainState` and a transport (DESIGN §2).

Used by the simulation harness (``timecoin.testing.consensus_sim``) and meant for the node: the
node supplies a transport over P2P and a timer service over its event loop. The order rules:

* ``Persist`` is one durable ``ChainStore.write`` before anything after it (then the failpoint
  ``consensus.after_persist``: a crash test can kill the process between signing and sending);
* ``ApplyBlock`` connects the block with its commit certificate as an ``extra`` write of the
  block's one store transaction (block, undo, UTXO delta, registry, certificate: a crash leaves
  all or none), then feeds ``on_block_applied``'s effects back in. A block the engine committed
  failing to connect is a bug: it is raised.
* ``Sweep`` (the records the block made useless) goes to ``sweep``: the node's
  :class:`~timecoin.store.sweeper.Sweeper` deletes them a chunk at a time after the block; by
  default they are deleted at once, in their own store transaction.
* ``CheckBlock`` and ``BuildBlock`` (an engine made with ``offload_blocks``) go to
  ``offload`` with the work to do (:func:`run_check`, :func:`run_build`): the node runs it on a
  worker thread and feeds the result back (:meth:`EffectRunner.result_effects`) as a step of
  its own; by default the work is done at once and its result fed back after the effects of
  the current input (a driver runs all effects of one call before it feeds the engine its next
  input).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Protocol

from timecoin import failpoints
from timecoin.consensus.blocks import CheckedBlock, build_elected, check_block
from timecoin.consensus.effects import (
    ApplyBlock,
    Broadcast,
    BuildBlock,
    CheckBlock,
    Effect,
    Persist,
    RelayTransactions,
    Reply,
    Resend,
    ScheduleTimer,
    SendTo,
    ServeDecision,
    Sweep,
    Timer,
)
from timecoin.consensus.engine import Consensus
from timecoin.consensus.messages import (
    DECISION_OVERHEAD,
    CommitCertificate,
    CompactBlock,
    Decision,
    encoded_compact_len,
)
from timecoin.consensus.store import CONSENSUS_DB, commit_key, load_commit_certificate
from timecoin.core.types import HEADER_LEN
from timecoin.ledger.blockbuilder import TX_COUNT
from timecoin.ledger.chain import ChainState
from timecoin.store.chainstore import ExtraWrites

log = logging.getLogger(__name__)

__all__ = [
    "EffectRunner",
    "Offloaded",
    "Transport",
    "decision_message",
    "run_build",
    "run_check",
    "run_offloaded",
]

Offloaded = CheckBlock | BuildBlock
"""The block work an engine made with ``offload_blocks`` leaves to its driver."""


class Transport(Protocol):
    """How consensus messages leave the node."""

    def broadcast(self, data: bytes) -> None: ...

    def resend(self, data: bytes) -> None:
        """Gossips ``data`` to every peer, even those that had it."""
        ...

    def relay_transactions(self, raws: list[bytes]) -> None:
        """Sends encoded transactions to every peer, even those that had them."""
        ...

    def send(self, masternode: bytes, data: bytes) -> None: ...

    def reply(self, peer: Any, data: bytes) -> None: ...


def decision_message(chain: ChainState, height: int, max_bytes: int | None = None) -> bytes | None:
    """The encoded :class:`~timecoin.consensus.messages.Decision` of ``height`` from the store
    (None without a block or commit certificate there): every transaction prefilled if that
    fits ``max_bytes`` (None: no bound), else the coinbase only (the receiver takes the rest from
    its own transactions, or syncs the block); None, logged, if not even that fits."""
    block_hash = chain.store.block_hash(height)
    raw = chain.store.block(block_hash) if block_hash is not None else None
    cert = load_commit_certificate(chain.store, height)
    if raw is None or cert is None:
        return None
    count = TX_COUNT.unpack_from(raw, HEADER_LEN)[0]
    # Every transaction prefilled: a length prefix each, and the block's transaction bytes.
    prefilled = 4 * count + len(raw) - HEADER_LEN - 4
    whole = DECISION_OVERHEAD + 4 + len(cert) + encoded_compact_len(count, ()) + prefilled
    if max_bytes is None or whole <= max_bytes:
        compact = CompactBlock.whole(raw)
    else:
        compact = CompactBlock.of_block(raw, lambda _, __: False)
    data = Decision(CommitCertificate.decode(cert), compact).encode()
    if max_bytes is not None and len(data) > max_bytes:
        log.error(
            "the decision of height %d takes %d bytes, over one message's %d", height, len(data), max_bytes
        )
        return None
    return data


def run_check(chain: ChainState, check: CheckBlock) -> CheckedBlock | Exception:
    """The verdict a ``CheckBlock`` asks for, for ``Consensus.on_block_checked``: the
    ``CheckedBlock``, else the exception the check raised (``BlockRejected``: the block is
    invalid). It only reads ``chain``, so it may run on a thread other than the one that
    changes the chain: the native UTXO set makes a write wait for it, and a check that saw the
    tip move under it is for a height the engine has left, so its verdict is ignored."""
    try:
        return check_block(chain, check.block, check.keys, check.weights)
    except Exception as e:  # the engine's step raises what is not a verdict
        return e


def run_build(chain: ChainState, request: BuildBlock) -> bytes | Exception:
    """The block a ``BuildBlock`` asks for, for ``Consensus.on_block_built``: encoded, else the
    exception the build raised. Reads the chain only, as :func:`run_check` (the block of a
    round the engine has left is dropped by it)."""
    try:
        return build_elected(chain, request.election, request.round, request.transactions, request.now)
    except Exception as e:  # the engine's step raises it, unless the round has passed
        return e


def run_offloaded(chain: ChainState, effect: Offloaded) -> object:
    """The work of an offloaded effect: :func:`run_check` or :func:`run_build`."""
    return run_check(chain, effect) if isinstance(effect, CheckBlock) else run_build(chain, effect)


class EffectRunner:
    """Executes a consensus engine's effects (see the module docstring). ``schedule(timer, at)``
    must call ``consensus.on_timer(timer, now)`` at ``at`` and run the result through
    :meth:`run`; ``on_notice`` receives finality, rejection and evidence notices;
    ``after_effect`` (tests) is called after each executed effect. ``connect_block(raw, extra)``
    connects a committed block with extra store writes (default ``chain.connect_block``; a node
    passes its own, which also indexes and announces the block). ``sweep(keys)`` deletes the
    (database, key) records of a ``Sweep`` (default: at once, in one store transaction; a node
    passes its sweeper's queue). ``offload(effect)`` takes a ``CheckBlock`` or ``BuildBlock``,
    must run :func:`run_offloaded` on it and later run :meth:`result_effects` of the result, as
    an input of its own (default: done at once, fed back once the effects of the current input
    have run)."""

    def __init__(
        self,
        consensus: Consensus,
        chain: ChainState,
        transport: Transport,
        schedule: Callable[[Timer, float], None],
        clock: Callable[[], float],
        on_notice: Callable[[Effect], None] | None = None,
        after_effect: Callable[[Effect], None] | None = None,
        connect_block: Callable[[bytes, ExtraWrites], object] | None = None,
        sweep: Callable[[Sequence[tuple[bytes, bytes]]], None] | None = None,
        offload: Callable[[Offloaded], None] | None = None,
    ) -> None:
        self.consensus = consensus
        self.chain = chain
        self.transport = transport
        self.schedule = schedule
        self.clock = clock
        self.on_notice = on_notice
        self.after_effect = after_effect
        self.connect_block = connect_block or chain.connect_block
        self.sweep = sweep or (lambda keys: chain.store.write([(db, key, None) for db, key in keys]))
        self._handlers: dict[type, Callable[[Any], None]] = {
            Persist: self._persist,
            Broadcast: lambda e: self.transport.broadcast(e.data),
            Resend: lambda e: self.transport.resend(e.data),
            RelayTransactions: lambda e: self.transport.relay_transactions(list(e.raws)),
            SendTo: lambda e: self.transport.send(e.masternode, e.data),
            Reply: lambda e: self.transport.reply(e.peer, e.data),
            ScheduleTimer: lambda e: self.schedule(e.timer, e.at),
            ServeDecision: self._serve_decision,
            ApplyBlock: self._apply,
            Sweep: lambda e: self.sweep(e.keys),
            CheckBlock: offload or self._do_now,
            BuildBlock: offload or self._do_now,
        }
        """The effects this runner executes, by type; any other goes to ``on_notice``."""
        self._results: list[tuple[Offloaded, object]] = []
        """Results of the default ``offload``, fed back when the outermost :meth:`run` ends."""
        self._depth = 0

    def run(self, effects: Iterable[Effect]) -> None:
        handlers = self._handlers  # by exact type: one lookup per effect (notices are per tx)
        self._depth += 1
        try:
            for effect in effects:
                handler = handlers.get(type(effect))
                if handler is not None:
                    handler(effect)
                elif self.on_notice is not None:
                    self.on_notice(effect)
                if self.after_effect is not None:
                    self.after_effect(effect)
        finally:
            self._depth -= 1
        while self._depth == 0 and self._results:
            effect, result = self._results.pop(0)
            self.run(self.result_effects(effect, result))

    def result_effects(self, effect: Offloaded, result: object) -> list[Effect]:
        """The engine's effects of the result of offloaded ``effect`` (:func:`run_offloaded`):
        ``on_block_checked`` or ``on_block_built`` of the engine this runner drives now."""
        if isinstance(effect, CheckBlock):
            return self.consensus.on_block_checked(effect, result, self.clock())  # type: ignore[arg-type]
        return self.consensus.on_block_built(effect, result, self.clock())  # type: ignore[arg-type]

    def _do_now(self, effect: Offloaded) -> None:
        self._results.append((effect, run_offloaded(self.chain, effect)))

    def _persist(self, effect: Persist) -> None:
        self.chain.store.write(list(effect.writes))
        failpoints.hit("consensus.after_persist")

    def _serve_decision(self, effect: ServeDecision) -> None:
        data = decision_message(self.chain, effect.height, self.consensus.ctx.max_message_bytes)
        if data is not None:
            self.transport.reply(effect.peer, data)

    def _apply(self, effect: ApplyBlock) -> None:
        block = effect.view
        extra = [(CONSENSUS_DB, commit_key(effect.height), effect.certificate)]
        started = time.perf_counter()
        self.connect_block(effect.block, extra)
        connected = time.perf_counter()
        effects = self.consensus.on_block_applied(block, self.clock())
        if log.isEnabledFor(logging.DEBUG):  # a line per block: debug (docs/operator.md "Logs")
            connect_ms = round(1000 * (connected - started), 1)
            consensus_ms = round(1000 * (time.perf_counter() - connected), 1)
            txs = len(block.txids)
            log.debug(
                "committed block %d %s: %d txs, %d bytes; connect %.1f ms, consensus %.1f ms",
                effect.height,
                effect.block_hash.hex(),
                txs,
                len(effect.block),
                connect_ms,
                consensus_ms,
                extra={
                    "height": effect.height,
                    "block": effect.block_hash.hex(),
                    "txs": txs,
                    "bytes": len(effect.block),
                    "connect_ms": connect_ms,
                    "consensus_ms": consensus_ms,
                },
            )
        self.run(effects)
