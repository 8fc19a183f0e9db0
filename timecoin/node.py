"""The node: wires the services together, starts them in order and stops them cleanly (DESIGN §10).

Start order: data directory lock → JSON-RPC server (answering ``-28`` "warming up" with the
current step until the node is ready) → genesis → chain state (store + UTXO set) → transaction
index catch-up and its writer task → mempool → P2P → heartbeats → consensus
(:class:`~timecoin.consensus.service.ConsensusService`) → ``/metrics`` (when enabled) → the
summary line and the loop-lag monitor → ready. Stop order is the reverse: ``/metrics`` and the
RPC server stop accepting, consensus cancels its timers, P2P closes its connections, every task
the node spawned is cancelled and awaited, worker threads finish, the transaction index writes
what it still has queued, LMDB is flushed and closed, the cookie is removed and the lock released.

**Who owns the state.** The event loop thread owns the chain and the mempool: every change
(connecting a block, admitting transactions) runs synchronously on the loop, with no ``await``
between its first read and its last write, so it is atomic with respect to every other coroutine.
P2P handlers and RPC methods call the :class:`~timecoin.p2p.service.NodeHooks` methods below
directly; that is the hand-off, and it needs no queue because nothing else mutates the state.
Worker threads (:meth:`Node.run_in_worker`) get only immutable inputs (bytes, LMDB read
snapshots) for pure work off the loop: rendering a large block as JSON, UTXO-set statistics.

Blocks are committed by the consensus service (masternodes), or arrive from peers by sync or
from ``submitblock``; every one goes through :meth:`Node.connect_block_with` (index, mempool, tip
waiters, announcement), and those not committed by the engine are reported to it.
"""

from __future__ import annotations

import asyncio
import fcntl
import functools
import io
import logging
import os
import secrets
import signal
import struct
import time
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import timecoin_native

import timecoin
from timecoin import gctune, sdnotify
from timecoin.config import ConfigError, NodeConfig
from timecoin.consensus.service import ConsensusService
from timecoin.consensus.store import CONSENSUS_DB, commit_key, load_commit_certificate
from timecoin.core.types import COIN_LEN, OUTPOINT_LEN
from timecoin.ledger.chain import ChainState
from timecoin.ledger.genesis import Genesis, GenesisConfig, GenesisError, build_genesis
from timecoin.ledger.mempool import Admission, Mempool
from timecoin.looplag import LoopLagMonitor
from timecoin.masternode.liveness import Liveness
from timecoin.metrics import ConsensusMetrics, MetricsServer, summary_line
from timecoin.p2p import P2PConfig, P2PService
from timecoin.p2p.gossip import GossipKind
from timecoin.store.chainstore import ExtraWrites, StoreError
from timecoin.store.sweeper import Sweeper
from timecoin.store.txindex import TxIndex

if TYPE_CHECKING:
    from timecoin.rpc.server import RPCServer

log = logging.getLogger(__name__)

_T = TypeVar("_T")

LOCK_FILE = ".lock"
CHAIN_DIR = "chain"
GENESIS_COPY = "genesis.json"
NODE_KEY_FILE = "nodekey"
WORKER_THREADS = 2
"""Threads for pure work off the loop (block rendering, UTXO statistics): one per core of the
reference machine (DESIGN §11)."""
SECRET_KEY_LEN = 32
STOP_STEP_TIMEOUT = 10.0
"""Seconds one shutdown step (RPC, P2P, tasks) may take before it is abandoned and logged: the
chain must still be flushed and closed within a service manager's stop timeout."""


class StartupError(Exception):
    """The node cannot start; the message says why and what to change."""


class DataDirLock:
    """An exclusive ``flock`` on ``<datadir>/.lock``, held while the node runs, so a second node
    on the same data directory refuses to start instead of sharing its LMDB environment."""

    def __init__(self, datadir: Path) -> None:
        self.path = datadir / LOCK_FILE
        self._fd: int | None = None

    def acquire(self) -> None:
        """Takes the lock; :class:`StartupError` naming the holder's pid if another has it."""
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise StartupError(
                f"data directory {self.path.parent} is in use by another timecoind (pid {holder}; "
                f"lock file {self.path}). Stop it, or give this node another --datadir."
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


def spent_outpoints(undo: bytes) -> list[bytes]:
    """The 36-byte outpoints a block spent, read from its undo record (docs/encoding.md, "Undo
    record": version u8, height u64, block hash, prior set hash, created, spent)."""
    pos = 1 + 8 + 32 + 32
    (created,) = struct.unpack_from("<I", undo, pos)
    pos += 4 + OUTPOINT_LEN * created
    (spent,) = struct.unpack_from("<I", undo, pos)
    pos += 4
    item = OUTPOINT_LEN + COIN_LEN
    return [undo[pos + i * item : pos + i * item + OUTPOINT_LEN] for i in range(spent)]


def read_secret_key(path: Path, key: str) -> bytes:
    """A 32-byte secret key seed from a file of 64 hex digits; :class:`ConfigError` naming the
    configuration ``key`` otherwise."""
    try:
        text = path.read_text().strip()
    except OSError as e:
        raise ConfigError(f"{key}: cannot read {path}: {e.strerror}") from None
    try:
        seed = bytes.fromhex(text)
    except ValueError:
        seed = b""
    if len(seed) != SECRET_KEY_LEN:
        raise ConfigError(f"{key}: {path} must hold a {SECRET_KEY_LEN}-byte secret key as 64 hex digits")
    return seed


class Node:
    """A running TIME Coin node over one data directory. Cheap to construct; :meth:`run` (or
    :meth:`start` then :meth:`stop`) does the work."""

    def __init__(self, config: NodeConfig) -> None:
        self.config = config
        self.params = config.params
        self.datadir = config.datadir
        self.started_at = time.time()
        self.warmup: str | None = "starting"
        """What the node is doing before it is ready (RPC answers ``-28`` with it), else None."""
        self.genesis: Genesis | None = None
        self._chain: ChainState | None = None
        self._mempool: Mempool | None = None
        self._txindex: TxIndex | None = None
        self._sweeper: Sweeper | None = None
        """Deletes committed blocks made due, written after them (:mod:`timecoin.store.sweeper`)."""
        self.p2p: P2PService | None = None
        self.liveness: Liveness | None = None
        """Heartbeats: ours if we are a masternode, everyone's from gossip (DESIGN §5)."""
        """The P2P service, once started."""
        self.rpc: RPCServer | None = None
        """The JSON-RPC server, once started."""
        self.consensus: ConsensusService | None = None
        """Finality and block production (followers too: they track finality), once started."""
        self.consensus_metrics = ConsensusMetrics()
        """Admission, finality and round counters (the consensus hook); the summary line reads
        its finality window, ``/metrics`` exports it when enabled."""
        self.metrics: MetricsServer | None = (
            MetricsServer(self, config.metrics_bind, config.metrics_port) if config.metrics else None
        )
        """Prometheus ``/metrics`` if enabled; its ``consensus`` is the hook consensus calls."""
        self.masternode_secret: bytes | None = None
        self._lock = DataDirLock(self.datadir)
        self._workers: ThreadPoolExecutor | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self.loop_lag = LoopLagMonitor()
        self._stop_requested: asyncio.Event | None = None
        self._tip_changed: asyncio.Event | None = None
        self._stopped = False

    # -- state accessors (valid once started) --------------------------------------------------------

    @property
    def chain(self) -> ChainState:
        if self._chain is None:
            raise RuntimeError("the chain is not open yet")
        return self._chain

    @property
    def mempool(self) -> Mempool:
        if self._mempool is None:
            raise RuntimeError("the mempool is not started yet")
        return self._mempool

    @property
    def sweeper(self) -> Sweeper:
        if self._sweeper is None:
            raise RuntimeError("the node has not started")
        return self._sweeper

    @property
    def txindex(self) -> TxIndex:
        if self._txindex is None:
            raise RuntimeError("the transaction index is not open yet")
        return self._txindex

    @property
    def tip_changed(self) -> asyncio.Event:
        """Set (and replaced by a fresh event) each time a block connects."""
        assert self._tip_changed is not None
        return self._tip_changed

    # -- lifecycle -----------------------------------------------------------------------------------

    async def run(self) -> int:
        """Starts the node, serves until SIGINT, SIGTERM or the ``stop`` RPC, then stops it.
        Returns the process exit status: 0 after a clean stop, 1 if it could not start."""
        loop = asyncio.get_running_loop()
        self._stop_requested = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, functools.partial(self.request_stop, f"signal {sig.name}"))
        status = 0
        try:
            await self.start()
            gctune.settle()
            await self._stop_requested.wait()
        except (StartupError, ConfigError, GenesisError, StoreError) as e:
            log.error("cannot start: %s", e)
            status = 1
        except _Interrupted:
            log.info("start interrupted by a stop request")
        except Exception:
            log.exception("the node failed; stopping")
            status = 1
        finally:
            await self.stop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)
        return status

    def request_stop(self, reason: str) -> None:
        """Asks :meth:`run` to stop the node (signal handler, ``stop`` RPC)."""
        if self._stop_requested is not None and not self._stop_requested.is_set():
            log.info("stop requested (%s)", reason)
            self._stop_requested.set()

    def _check_interrupt(self) -> None:
        if self._stop_requested is not None and self._stop_requested.is_set():
            raise _Interrupted

    async def start(self) -> None:
        """Starts every service in order (module docstring). Raises :class:`StartupError`,
        :class:`ConfigError` or :class:`GenesisError` with what to fix."""
        if self._stop_requested is None:
            self._stop_requested = asyncio.Event()
        self._tip_changed = asyncio.Event()
        self._log_config()
        try:
            self.datadir.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as e:
            raise StartupError(f"datadir: cannot create {self.datadir}: {e.strerror}") from None
        self._lock.acquire()
        self._workers = ThreadPoolExecutor(WORKER_THREADS, thread_name_prefix="timecoin-worker")
        if self.config.masternode_key is not None:
            self.masternode_secret = read_secret_key(self.config.masternode_key, "masternode_key")

        from timecoin.rpc.server import RPCServer

        self.warmup = "starting the RPC server"
        rpc = self.rpc = RPCServer.from_config(self, self.config)
        await rpc.start()

        self.warmup = "loading the genesis block"
        self.genesis = self._load_genesis()
        self._check_interrupt()

        self.warmup = "loading the chain state"
        self._chain = await self.run_in_worker(
            ChainState.open, self.datadir / CHAIN_DIR, self.params, self.genesis
        )
        self._check_interrupt()

        self.warmup = "indexing transactions"
        self._txindex = TxIndex(self._chain.store)
        indexed = await self.run_in_worker(self._txindex.catch_up, self.params.reorg_max_depth)
        if indexed:
            log.info("transaction index caught up: %d blocks indexed", indexed)
        self._spawn(self._txindex.run(), "transaction index")
        self._sweeper = Sweeper(self._chain.store)
        self._spawn(self._sweeper.run(), "sweeper")
        self._spawn(self._chain.coins.run(), "coins flush")
        self._check_interrupt()

        self._mempool = Mempool(
            self.params,
            self._chain.utxos,
            self._chain.rules,
            special_check=self._chain.check_masternode_transaction,
        )

        self.warmup = "starting the P2P network"
        await self._start_p2p()
        self._check_interrupt()

        assert self.p2p is not None
        self.liveness = Liveness(self._chain, self.p2p.broadcast_heartbeats, self.masternode_secret)
        self.p2p.register_handler(GossipKind.HEARTBEAT, self.liveness.on_gossip)
        if self.masternode_secret is not None:
            self._spawn(self.liveness.run(), "heartbeat")

        self.consensus = ConsensusService(
            self._chain,
            self._mempool,
            self.p2p,
            self.masternode_secret,
            self.liveness.production_gate,
            self.connect_block_with,
            self.request_stop,
            metrics=self.consensus_metrics,
            sweep=self.sweeper.queue,
            offload_blocks=self.config.block_work_thread,
        )
        self.consensus.start()
        if self.metrics is not None:
            try:
                await self.metrics.start()
            except OSError as e:
                raise StartupError(
                    f"metrics_port: cannot listen on {self.config.metrics_bind}:{self.config.metrics_port}: "
                    f"{e.strerror or e}"
                ) from None

        self._spawn(self._summary_loop(), "summary")
        self._spawn(self.loop_lag.run(), "loop lag")
        self.warmup = None
        tip = self._chain.tip
        log.info(
            "node ready: %s height %d (%s), RPC on %s:%d",
            self.params.name,
            tip.height,
            tip.block_hash.hex(),
            self.config.rpcbind,
            rpc.bound_port,
        )
        # Type=notify units (contrib/systemd/timecoind.service): RPC answers from here on.
        sdnotify.notify(
            READY=1, STATUS=f"height {tip.height}, RPC on port {rpc.bound_port}", MAINPID=os.getpid()
        )

    async def _start_p2p(self) -> None:
        assert self.genesis is not None and self._chain is not None
        p2p_config = P2PConfig(
            listen_host=self.config.listen,
            listen_port=self.config.port,
            connect=self.config.connect,
            seeds=self.config.seeds,
            masternode_secret=self.masternode_secret,
        )
        self.p2p = P2PService(
            self.params, self.genesis.hash, self._node_secret(), self, self._chain.store, p2p_config
        )
        try:
            await self.p2p.start()
        except OSError as e:
            raise StartupError(
                f"port: cannot listen on {self.config.listen}:{self.config.port}: {e.strerror or e}"
            ) from None
        log.info("P2P node key %s", self.p2p.node_key.hex())
        # Damaged stored blocks (found by any read, the transaction index's catch-up included)
        # are fetched again from peers and repaired only with the bytes this node validated.
        self.p2p.sync.enable_repair(self._chain.store, self._block_repaired)

    def _block_repaired(self, height: int, block_hash: bytes, raw: bytes) -> None:
        """A damaged block was repaired with a peer's copy (the same bytes it had): its
        transactions are indexed again, since the read that found it damaged may have been the
        index's, which leaves a damaged block's transactions out."""
        try:
            self.txindex.reindex_block(height, raw)
        except Exception:
            log.exception("indexing the transactions of repaired block %d (%s)", height, block_hash.hex())

    def _node_secret(self) -> bytes:
        """This node's P2P identity seed: ``<datadir>/nodekey`` (64 hex digits, mode 0600),
        created at the first start and kept, so peers know the node across restarts."""
        path = self.datadir / NODE_KEY_FILE
        if not path.exists():
            tmp = path.with_suffix(".tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_bytes(SECRET_KEY_LEN).hex() + "\n")
            tmp.replace(path)
        try:
            return read_secret_key(path, "nodekey")
        except ConfigError as e:
            raise StartupError(f"{e}; delete it to make a new node identity") from None

    async def stop(self) -> None:
        """Stops every service in reverse order (module docstring). Idempotent."""
        if self._stopped:
            return
        self._stopped = True
        self.warmup = "shutting down"
        sdnotify.notify(STOPPING=1)
        if self.metrics is not None:
            await self._stop_step("metrics server", self.metrics.stop())
        if self.rpc is not None:
            await self._stop_step("RPC server", self.rpc.stop())
        if self.consensus is not None:
            self.consensus.stop()
        if self.p2p is not None:
            await self._stop_step("P2P service", self.p2p.stop())
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await self._stop_step("node tasks", asyncio.gather(*self._tasks, return_exceptions=True))
        if self._workers is not None:
            self._workers.shutdown(wait=True, cancel_futures=True)
        if self._txindex is not None:
            try:
                self._txindex.flush()
            except Exception:
                log.exception("transaction index: writing what is queued failed; the next start catches up")
        if self._sweeper is not None:
            try:
                self._sweeper.flush()
            except Exception:
                log.exception("sweeper: deleting what is queued failed; the next start drops stale records")
        if self._chain is not None:
            tip = self._chain.tip
            self._chain.close()
            log.info("chain closed at height %d (%s)", tip.height, tip.block_hash.hex())
        self._lock.release()
        log.info("stopped")

    async def _stop_step(self, what: str, step: Awaitable[Any]) -> None:
        """Awaits one shutdown step for at most ``STOP_STEP_TIMEOUT`` seconds. A step that hangs is
        logged with every pending task's stack, then cancelled, so the chain is still flushed and
        closed: a stop always ends."""
        task = asyncio.ensure_future(step)
        done, _ = await asyncio.wait({task}, timeout=STOP_STEP_TIMEOUT)
        if not done:
            log.error("%s did not stop within %.0f s; going on with the shutdown", what, STOP_STEP_TIMEOUT)
            for pending in asyncio.all_tasks():
                if pending is not asyncio.current_task():
                    buffer = io.StringIO()
                    pending.print_stack(file=buffer)
                    log.error("pending task %s:\n%s", pending.get_name(), buffer.getvalue().rstrip())
            task.cancel()
            await asyncio.wait({task}, timeout=1.0)
        elif not task.cancelled() and task.exception() is not None:
            log.error("%s failed while stopping; going on with the shutdown", what, exc_info=task.exception())

    def _spawn(self, coro: Any, name: str) -> asyncio.Task[Any]:
        """Starts a task the node owns: kept referenced, cancelled and awaited at stop."""
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("task %s failed; stopping the node", task.get_name(), exc_info=task.exception())
            self.request_stop(f"task {task.get_name()} failed")

    async def run_in_worker(self, fn: Callable[..., _T], *args: Any) -> _T:
        """``fn(*args)`` on a worker thread. For pure work on immutable inputs only (see the module
        docstring): never to touch the chain or the mempool."""
        if self._workers is None:
            raise RuntimeError("the node has no worker threads (not started, or stopped)")
        return await asyncio.get_running_loop().run_in_executor(self._workers, fn, *args)

    def _log_config(self) -> None:
        log.info(
            "timecoind %s (timecoin-native %s, %s build), config file %s",
            timecoin.__version__,
            timecoin_native.__version__,
            timecoin_native.build_profile,
            self.config.conf or "none",
        )
        for key, value, source in self.config.describe():
            log.info("config %s = %s (%s)", key, value, source)

    def _load_genesis(self) -> Genesis:
        copy = self.datadir / GENESIS_COPY
        path = self.config.genesis or (copy if copy.exists() else None)
        if path is None:
            raise ConfigError(
                f"genesis: no genesis file for {self.params.name}; give --genesis FILE (docs/genesis.md) "
                f"on the first start (it is then kept as {copy})"
            )
        try:
            data = path.read_bytes()
        except OSError as e:
            raise ConfigError(f"genesis: cannot read {path}: {e.strerror}") from None
        try:
            genesis_config = GenesisConfig.from_json(data)
        except GenesisError as e:
            raise ConfigError(f"genesis: {path}: {e}") from None
        if genesis_config.params.network != self.params.network:
            raise ConfigError(
                f"genesis: {path} defines a {genesis_config.params.name} chain, "
                f"this node runs {self.params.name}"
            )
        genesis = build_genesis(genesis_config)
        if path != copy:
            tmp = copy.with_suffix(".tmp")
            tmp.write_bytes(data)
            tmp.replace(copy)
        log.info("genesis %s from %s", genesis.hash.hex(), path)
        return genesis

    async def _summary_loop(self) -> None:
        """One info line every ``log_summary_interval`` seconds (``timecoin.metrics.summary_line``)."""
        last = time.monotonic()
        while True:
            await asyncio.sleep(self.config.log_summary_interval)
            now = time.monotonic()
            message, fields = summary_line(self, now - last)
            last = now
            log.info("%s", message, extra=fields)

    # -- NodeHooks (docs in timecoin.p2p.service) -------------------------------------------------

    def chain_tip(self) -> tuple[int, bytes]:
        """(height, block hash) of the tip."""
        tip = self.chain.tip
        return tip.height, tip.block_hash

    def block_hash(self, height: int) -> bytes | None:
        """The hash of the committed block at ``height``."""
        return self.chain.store.block_hash(height)

    def block(self, block_hash: bytes) -> bytes | None:
        """The encoded committed block with this hash."""
        return self.chain.store.block(block_hash)

    def commit_certificate(self, height: int) -> bytes | None:
        """The commit certificate stored with the committed block at ``height``, if any."""
        return load_commit_certificate(self.chain.store, height)

    def leader_set(self, height: int) -> tuple[Sequence[bytes], Sequence[int]]:
        """(public keys, weights) of the masternode set of ``height`` (tip + 1), from the chain."""
        return self.chain.leader_set(height)

    def connect_block(self, raw: bytes, certificate: bytes | None = None) -> None:
        """Validates, applies and commits the encoded block on the tip (from sync or
        ``submitblock``) with :meth:`connect_block_with`, its commit ``certificate`` (verified by
        the caller) stored in the same store transaction, then tells consensus the tip moved.
        Raises ``timecoin_native.ValidationError`` (chain unchanged) for a bad block."""
        extra = (
            ()
            if certificate is None
            else ((CONSENSUS_DB, commit_key(self.chain.tip.height + 1), certificate),)
        )
        self.connect_block_with(raw, extra)
        if self.consensus is not None:
            self.consensus.block_connected(raw)

    def connect_block_with(self, raw: bytes, extra: ExtraWrites) -> None:
        """Connects the encoded block with ``extra`` store writes in its transaction (the commit
        certificate, archived finalized records), then queues its transactions for the index (its
        task writes them; :class:`~timecoin.store.txindex.TxIndex`), removes them and their
        conflicts from the mempool, wakes tip waiters and announces it. Raises
        ``timecoin_native.ValidationError`` (chain unchanged) for a bad block."""
        applied = self.chain.connect_block(raw, extra)
        if not self.txindex.queue_block(applied.height, applied.block_hash, raw, applied.txids):
            self._catch_up_index(applied.height)
        self.mempool.remove(applied.txids)
        self.mempool.remove_conflicts(spent_outpoints(applied.undo))
        changed = self.tip_changed
        self._tip_changed = asyncio.Event()
        changed.set()
        # Relay the news whatever the sync state (peers' claims are hints, DESIGN §13): only
        # peers claiming a lower height are told.
        if self.p2p is not None:
            # Masternodes running consensus learn blocks from it (Status, Decision).
            voting = self.consensus is not None and self.consensus.is_masternode
            self.p2p.announce_block(applied.height, applied.block_hash, to_masternodes=not voting)

    def _catch_up_index(self, height: int) -> None:
        # The block is committed whatever happens here: an index failure is logged and the index
        # catches up from its own best block at the next block or the next start.
        try:
            self.txindex.catch_up(self.params.reorg_max_depth)
        except Exception:
            log.exception("transaction index update failed at height %d; it will catch up", height)

    def accept_transactions(self, raws: list[bytes]) -> list[Admission]:
        """Admits our own (RPC) encoded transactions for finality voting in one batch (consensus
        admission: the mempool's rules, then finality's; one verdict each, in order) and gossips
        the accepted ones to every peer."""
        verdicts = self._admit(raws, "rpc")
        if self.p2p is not None:
            accepted = [raw for raw, v in zip(raws, verdicts, strict=True) if v.accepted]
            if accepted:
                self.p2p.broadcast_transactions(accepted)
        return verdicts

    def submit_transactions(self, raws: list[bytes]) -> list[tuple[bytes | None, str]]:
        """Consensus admission of transactions gossiped by peers: (txid, reject code or "") each.
        The gossip layer relays the accepted ones itself (to all but their sender)."""
        return [(v.txid, v.code) for v in self._admit(raws, "p2p")]

    def _admit(self, raws: list[bytes], source: str) -> list[Admission]:
        if self.consensus is None:
            raise RuntimeError("transactions arrived before consensus started")
        verdicts = self.consensus.submit(raws)
        for v in verdicts:
            if v.code:
                self.consensus_metrics.admission_refused(source, v.code)
        return verdicts

    def has_transaction(self, txid: bytes) -> bool:
        """Whether ``txid`` is pending in the mempool or indexed in a committed block."""
        return txid in self.mempool or self.txindex.contains(txid)

    def spender_of(self, outpoint: bytes) -> bytes | None:
        """The txid of the transaction spending the committed coin ``outpoint`` (36 bytes) that
        no block archives yet: pending in the mempool, or final (UTXO states "locked" and
        "spent-final", DESIGN §4); None if nothing does."""
        holder = self.mempool.locked_by(outpoint)
        if holder is None and self.consensus is not None:
            holder = self.consensus.final_spender(outpoint)
        return holder

    def unarchived_transaction(self, txid: bytes) -> bytes | None:
        """The encoded transaction ``txid`` if it is pending in the mempool or final and not yet
        in a block."""
        entry = self.mempool.get(txid)
        if entry is not None:
            return entry.raw
        return self.consensus.final_transaction(txid) if self.consensus is not None else None

    def pending_transactions(self) -> list[bytes]:
        """The mempool's transactions in arrival order (pending finality)."""
        return [e.raw for e in self.mempool.entries()]

    def is_masternode_key(self, public_key: bytes) -> bool:
        """Whether ``public_key`` is a registered masternode at the tip (the registry's set of
        height tip + 1)."""
        return public_key in self.chain.registry


class _Interrupted(Exception):
    """A stop was requested while the node was starting."""
