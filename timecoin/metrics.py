"""Prometheus metrics of one node: one ``CollectorRegistry`` per node, served as ``/metrics`` on
its own port by aiohttp (DESIGN §10; off by default, config keys ``metrics``, ``metrics_bind``,
``metrics_port``; docs/operator.md "Metrics" lists every metric).

Names follow ``timecoin_<subsystem>_<name>_<unit>``, counters end in ``_total``, and no label
takes a per-peer or per-transaction value (CometBFT ``consensus/metrics.go``): labels are bounded
enums (``direction``, ``phase``, P2P message ``type``, RPC ``method`` among the server's own,
``outcome``, HTTP ``status``, reject ``reason`` codes, ``source``). No ``_created`` series: the
scrape leaves them out (:class:`WithoutCreated`), without prometheus-client's process-global
``disable_created_metrics()``.

Three kinds of metric:

* **state, read at scrape time** by :class:`NodeStateCollector` from the node the loop owns:
  chain height, mempool size (transactions, bytes), peers by direction, sync progress, DB size,
  stored blocks found damaged and repaired (counters the store keeps), event-loop lag (p99 and
  max of the last minute, :mod:`timecoin.looplag`), consensus messages ignored and evidence by
  reason (the consensus engine's monitor).
* **events counted in plain numbers where they happen** (:mod:`timecoin.counters`), exported
  at scrape time: P2P frames and bytes by message type and direction (each peer adds to its
  connection manager's :class:`~timecoin.counters.MessageTraffic`), RPC calls and latency by
  method (:attr:`timecoin.rpc.server.RPCServer.stats`), and the consensus hook
  :class:`ConsensusMetrics` (admission rejects, finality, rounds, phases). A per-message
  ``Counter.labels(...).inc()`` costs several times as much (``benches/bench_metrics.py``).
* **the process**: prometheus-client's process (``process_*``: CPU seconds, resident memory,
  open files, start time), platform (``python_info``) and garbage-collector (``python_gc_*``)
  collectors, and ``timecoin_build_info`` (version, native version and build profile, commit).

This module never changes node state and never blocks the loop for long: a scrape reads a few
counters, ``len()`` of the mempool, LMDB's ``info()`` and ``/proc/self``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

import timecoin_native
from aiohttp import web
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    GCCollector,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

import timecoin
from timecoin.consensus.monitor import PHASES
from timecoin.counters import BucketCounts, FinalityWindow, MessageTraffic, RequestStats

if TYPE_CHECKING:
    from timecoin.node import Node

log = logging.getLogger(__name__)

__all__ = [
    "ADMISSION_SOURCES",
    "FINALITY_LATENCY_BUCKETS",
    "METRICS_PATH",
    "NAMESPACE",
    "PHASE_DURATION_BUCKETS",
    "BuildInfoCollector",
    "ConsensusMetrics",
    "MetricsServer",
    "NodeStateCollector",
    "WithoutCreated",
    "p2p_traffic_families",
    "rpc_families",
    "summary_line",
]

NAMESPACE = "timecoin"
METRICS_PATH = "/metrics"
FINALITY_LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 10.0, 30.0)
"""Seconds. Dense below 1 s: DESIGN §11 asks p99 finality < 1 s."""
ADMISSION_SOURCES = ("rpc", "p2p")
"""Where a transaction came from when admission refused it: an RPC client, or a peer's gossip."""
PHASE_DURATION_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
"""Seconds, from CPU-bound phases (election: ~ms) to waits bounded by the leader timeout."""


class ConsensusMetrics(Collector):
    """The event metrics of admission, finality and BFT rounds: the hook the consensus service
    and the node call, counting in plain numbers (:mod:`timecoin.counters`) and exported as a
    collector at scrape time. Given a ``registry``, it registers itself there; the node keeps one
    whether or not ``/metrics`` is served, since its :attr:`window` feeds the summary line.

    Methods take plain numbers (seconds, counts) and reason codes so the consensus code needs no
    Prometheus import; each raises ``ValueError`` for a negative duration or count (a caller
    bug), changing nothing."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.finalized = 0
        self.finality_latency = BucketCounts(FINALITY_LATENCY_BUCKETS)
        self.window = FinalityWindow()
        """Finality since the last summary line (:meth:`timecoin.node.Node` reads and resets it)."""
        self.height = 0
        self.round = 0
        self.rounds = 0
        self.phase_duration = {phase: BucketCounts(PHASE_DURATION_BUCKETS) for phase in PHASES}
        self.step_failures = 0
        self.rejected: dict[str, int] = {}
        """Transactions rejected by finality (votes, a conflicting final transaction, a block), by reason."""
        self.admission_rejects: dict[tuple[str, str], int] = {}
        """Transactions refused at admission by (source, reject code)."""
        if registry is not None:
            registry.register(self)

    def transactions_finalized(self, latencies: Iterable[float]) -> None:
        """``latencies``: seconds from arrival to finality, one per transaction made final now."""
        values = list(latencies)
        if any(v < 0 for v in values):
            raise ValueError("finality latencies must be >= 0 seconds")
        for v in values:
            self.finality_latency.observe(v)
        self.finalized += len(values)
        self.window.add(values)

    def round_started(self, height: int, round: int) -> None:
        """The state machine entered (``height``, ``round``)."""
        if height < 0 or round < 0:
            raise ValueError(f"height and round must be >= 0, got {height}, {round}")
        self.height, self.round = height, round
        self.rounds += 1

    def step_failed(self) -> None:
        """A consensus step raised (its input was dropped, the engine rebuilt)."""
        self.step_failures += 1

    def phase_finished(self, phase: str, seconds: float) -> None:
        """One phase of DESIGN §7 took ``seconds``; ``ValueError`` for an unknown phase."""
        histogram = self.phase_duration.get(phase)
        if histogram is None:
            raise ValueError(f"unknown consensus phase {phase!r} (known: {', '.join(PHASES)})")
        if seconds < 0:
            raise ValueError(f"phase duration must be >= 0 seconds, got {seconds}")
        histogram.observe(seconds)

    def transaction_rejected(self, reason: str) -> None:
        """Finality rejected a pending transaction for ``reason`` (a code such as
        ``rejected-by-votes``, ``conflicts-with-final``, ``inputs-spent-by-block``)."""
        self.rejected[reason] = self.rejected.get(reason, 0) + 1

    def admission_refused(self, source: str, reason: str, count: int = 1) -> None:
        """``count`` transactions from ``source`` (one of :data:`ADMISSION_SOURCES`) were refused
        at admission with reject code ``reason``."""
        if source not in ADMISSION_SOURCES:
            raise ValueError(f"unknown admission source {source!r} (known: {', '.join(ADMISSION_SOURCES)})")
        if count < 0:
            raise ValueError(f"count must be >= 0, got {count}")
        key = (source, reason)
        self.admission_rejects[key] = self.admission_rejects.get(key, 0) + count

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        yield _counter(
            "finality_transactions_finalized",
            "Transactions that became final by masternode votes (docs/consensus.md); rate() is "
            "finalized TPS.",
            self.finalized,
        )
        yield _histogram(
            "finality_latency_seconds",
            "Seconds from a transaction's arrival at this node to its finality (docs/consensus.md).",
            self.finality_latency,
        )
        rejected = CounterMetricFamily(
            f"{NAMESPACE}_finality_rejected_transactions",
            "Pending transactions rejected by finality, by reason (docs/consensus.md).",
            labels=["reason"],
        )
        for reason, n in sorted(self.rejected.items()):
            rejected.add_metric([reason], n)
        yield rejected
        admission = CounterMetricFamily(
            f"{NAMESPACE}_admission_rejected_transactions",
            "Transactions refused at admission, by source (rpc, p2p) and reject code "
            "(docs/operator.md, Metrics).",
            labels=["source", "reason"],
        )
        for (source, reason), n in sorted(self.admission_rejects.items()):
            admission.add_metric([source, reason], n)
        yield admission
        yield _gauge(
            "consensus_height_blocks",
            "Height the BFT state machine works on (docs/consensus.md).",
            self.height,
        )
        yield _gauge(
            "consensus_round_number",
            "Round of the current height (0 = the first leader; > 0 after a fallback, docs/consensus.md).",
            self.round,
        )
        yield _counter("consensus_rounds", "BFT rounds started (docs/consensus.md).", self.rounds)
        phases = HistogramMetricFamily(
            f"{NAMESPACE}_consensus_phase_duration_seconds",
            "Seconds spent in each phase of a slot (docs/consensus.md: sync, election, construction, "
            "proposal, voting, collection, finalization).",
            labels=["phase"],
        )
        for phase, histogram in self.phase_duration.items():
            phases.add_metric([phase], histogram.cumulative(), histogram.sum)
        yield phases
        yield _counter(
            "consensus_step_failures",
            "Consensus steps that raised: each input dropped and the engine rebuilt from the store "
            "(docs/consensus.md). Anything but 0 is a bug to report.",
            self.step_failures,
        )


LAG_WINDOW = 60.0
"""Seconds of event-loop samples the lag gauges summarize."""


class NodeStateCollector(Collector):
    """Reads the node's state at each scrape (the module docstring's "state" metrics) and the
    plain counters of its RPC server and P2P connections. The node starts the metrics server
    once its chain, mempool and P2P service run, and stops it before closing them, so every
    scrape sees them open."""

    def __init__(self, node: Node) -> None:
        self._node = node

    def describe(self) -> list[Metric]:
        return []  # read at scrape time; nothing to check at registration

    def collect(self) -> Iterator[Metric]:
        node = self._node
        chain, mempool = node.chain, node.mempool
        yield _gauge("chain_height_blocks", "Height of the chain tip.", chain.tip.height)
        yield _gauge("store_db_size_bytes", "Bytes of the LMDB map in use.", chain.store.size_bytes())
        yield _counter(
            "store_damaged_blocks",
            "Stored blocks found failing their hashes when read, each counted once; never served "
            "(docs/operator.md, Storage integrity).",
            chain.store.damaged_blocks_found,
        )
        yield _counter(
            "store_repaired_blocks",
            "Damaged stored blocks replaced by a peer's copy whose bytes hash to the digest stored "
            "with the block (docs/operator.md, Storage integrity).",
            chain.store.blocks_repaired,
        )
        lag = node.loop_lag.summary(LAG_WINDOW)
        for stat in ("p99", "max"):
            yield _gauge(
                f"event_loop_lag_{stat}_seconds",
                f"Event-loop lag, {stat} of the samples of the last {LAG_WINDOW:g} s (docs/operator.md).",
                (lag[stat] or 0.0) / 1000,
            )
        yield _gauge("mempool_size_transactions", "Transactions pending in the mempool.", len(mempool))
        yield _gauge("mempool_size_bytes", "Encoded bytes of the pending transactions.", mempool.bytes)
        yield _gauge(
            "txindex_queued_blocks",
            "Connected blocks whose transaction index entries are not all written yet (docs/operator.md).",
            node.txindex.queued_blocks,
        )
        yield _gauge(
            "store_coins_blocks_behind",
            "Connected blocks whose coin changes are not written to the store yet (docs/operator.md).",
            chain.coins.blocks_behind,
        )
        yield _gauge(
            "store_sweep_queued_deletes",
            "Records committed blocks made useless that are not deleted yet (docs/operator.md).",
            node.sweeper.queued,
        )
        if node.rpc is not None:
            yield from rpc_families(node.rpc.stats)
        consensus = node.consensus
        if consensus is not None:
            yield _gauge(
                "finality_unarchived_transactions",
                "Final transactions no block holds yet (docs/consensus.md, Compact blocks).",
                consensus.final_backlog,
            )
            yield _gauge(
                "finality_unarchived_bytes",
                "Encoded bytes of those; admission_max_final_bytes bounds them (docs/operator.md).",
                consensus.final_backlog_bytes,
            )
            monitor = consensus.engine.monitor
            yield _labeled_counter(
                "consensus_ignored_messages",
                "Consensus messages dropped, by reason (bad-signature, unknown-voter, wrong-height, "
                "...; docs/consensus.md). Counts restart if the engine is rebuilt after a failed step.",
                "reason",
                monitor.ignored,
            )
            yield _labeled_counter(
                "consensus_evidence",
                "Masternodes caught signing conflicting messages, by kind (docs/consensus.md).",
                "kind",
                monitor.evidence,
            )
        p2p = node.p2p
        if p2p is None:
            return
        yield from p2p_traffic_families(p2p.connman.traffic)
        peers = GaugeMetricFamily(
            f"{NAMESPACE}_p2p_peers_connections",
            "Established peer connections by direction.",
            labels=["direction"],
        )
        established = [p for p in p2p.peer_info() if p.get("established")]
        inbound = sum(1 for p in established if p.get("inbound"))
        peers.add_metric(["in"], inbound)
        peers.add_metric(["out"], len(established) - inbound)
        yield peers
        status = p2p.sync_status()
        height, target = int(str(status["height"])), int(str(status["target"]))
        yield _gauge("sync_target_height_blocks", "Best height announced by peers.", target)
        yield _gauge(
            "sync_progress_ratio",
            "Height over the best announced height (1 when caught up).",
            height / target if target > 0 else 1.0,
        )


def rpc_families(stats: RequestStats) -> Iterator[Metric]:
    """``timecoin_rpc_requests_total{method, outcome}``, ``timecoin_rpc_request_duration_seconds
    {method}`` and ``timecoin_rpc_refused_requests_total{status}`` from the RPC server's counters."""
    requests = CounterMetricFamily(
        f"{NAMESPACE}_rpc_requests",
        "JSON-RPC calls (each call of a batch counts) and POST /rawtransactions requests, by method "
        "and outcome (ok, error).",
        labels=["method", "outcome"],
    )
    for outcome, counts in (("ok", stats.ok), ("error", stats.errors)):
        for method, n in sorted(counts.items()):
            requests.add_metric([method, outcome], n)
    yield requests
    latency = HistogramMetricFamily(
        f"{NAMESPACE}_rpc_request_duration_seconds",
        "Seconds a call took in its handler, by method (the waits included).",
        labels=["method"],
    )
    for method, histogram in sorted(stats.latency.items()):
        latency.add_metric([method], histogram.cumulative(), histogram.sum)
    yield latency
    yield _labeled_counter(
        "rpc_refused_requests",
        "HTTP requests refused before any call ran, by status (401, 403, 405, 408, 413, 415, 503).",
        "status",
        {str(status): n for status, n in stats.refused.items()},
    )


def p2p_traffic_families(traffic: MessageTraffic) -> Iterator[Metric]:
    """``timecoin_p2p_messages_total`` and ``timecoin_p2p_message_bytes_total`` by ``type`` (the
    wire's message names) and ``direction`` from the connection manager's counters."""
    from timecoin.p2p.messages import MessageType

    messages = CounterMetricFamily(
        f"{NAMESPACE}_p2p_messages",
        "P2P frames by message type and direction (in: received, out: queued to send).",
        labels=["type", "direction"],
    )
    nbytes = CounterMetricFamily(
        f"{NAMESPACE}_p2p_message_bytes",
        "Bytes of P2P frames (10-byte header included) by message type and direction.",
        labels=["type", "direction"],
    )
    for type_id, direction, frames, size in traffic.rows():
        name = MessageType(type_id).name
        messages.add_metric([name, direction], frames)
        nbytes.add_metric([name, direction], size)
    yield messages
    yield nbytes


class BuildInfoCollector(Collector):
    """``timecoin_build_info{version, native_version, native_profile, commit} 1``: what runs
    (the native extension's build profile says whether it is a release build; the commit is the
    git checkout the package was loaded from, empty when it is not one)."""

    def __init__(self, commit: str) -> None:
        self._labels = {
            "version": timecoin.__version__,
            "native_version": timecoin_native.__version__,
            "native_profile": timecoin_native.build_profile,
            "commit": commit,
        }

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        info = InfoMetricFamily(f"{NAMESPACE}_build", "The running node's version and build.")
        info.add_metric([], self._labels)
        yield info


def source_commit() -> str:
    """The git commit (40 hex digits, ``-dirty`` appended when the checkout has changes) of the
    checkout this package was loaded from, or "" when it is not one or git is absent."""
    from timecoin.loadtest.metadata import git_commit

    found = git_commit()
    if found is None:
        return ""
    return str(found["commit"]) + ("-dirty" if found["dirty"] else "")


class WithoutCreated(Collector):
    """A registry's metrics without the ``_created`` samples prometheus-client adds to counters,
    histograms and summaries (a timestamp series per label set that Prometheus needs no more
    than CometBFT exports). Per registry, leaving prometheus-client's global setting alone."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._registry = registry

    def collect(self) -> Iterator[Metric]:
        for metric in self._registry.collect():
            created = metric.name + "_created"
            if any(sample.name == created for sample in metric.samples):
                metric.samples = [sample for sample in metric.samples if sample.name != created]
            yield metric


def _gauge(name: str, help: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(f"{NAMESPACE}_{name}", help, value=value)


def _counter(name: str, help: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(f"{NAMESPACE}_{name}", help, value=value)


def _labeled_counter(name: str, help: str, label: str, counts: dict[str, int]) -> CounterMetricFamily:
    family = CounterMetricFamily(f"{NAMESPACE}_{name}", help, labels=[label])
    for value, n in sorted(counts.items()):
        family.add_metric([value], n)
    return family


def _histogram(name: str, help: str, histogram: BucketCounts) -> HistogramMetricFamily:
    return HistogramMetricFamily(
        f"{NAMESPACE}_{name}", help, buckets=histogram.cumulative(), sum_value=histogram.sum
    )


def summary_line(node: Node, seconds: float) -> tuple[str, dict[str, Any]]:
    """The periodic info line of a running node (docs/operator.md "Logs") over the last
    ``seconds``, and its fields for JSON logs: ``height``, ``block`` (tip hash, hex),
    ``tx_per_s`` (transactions made final per second), ``finalized``, ``finality_p99_ms`` (None
    without any), ``peers``, ``peers_in``, ``peers_out`` (established connections),
    ``mempool_txs``, ``mempool_bytes``. Resets the finality window it reads."""
    tip = node.chain.tip
    finalized, p99 = node.consensus_metrics.window.take()
    established = [p for p in node.p2p.peer_info() if p.get("established")] if node.p2p is not None else []
    inbound = sum(1 for p in established if p.get("inbound"))
    fields: dict[str, Any] = {
        "height": tip.height,
        "block": tip.block_hash.hex(),
        "tx_per_s": round(finalized / seconds, 1) if seconds > 0 else 0.0,
        "finalized": finalized,
        "finality_p99_ms": round(p99 * 1000, 1) if p99 is not None else None,
        "peers": len(established),
        "peers_in": inbound,
        "peers_out": len(established) - inbound,
        "mempool_txs": len(node.mempool),
        "mempool_bytes": node.mempool.bytes,
    }
    p99_text = f"{fields['finality_p99_ms']:.0f} ms" if p99 is not None else "-"
    message = (
        f"height {tip.height} ({fields['block'][:16]}…), {fields['tx_per_s']:.1f} tx/s final "
        f"(p99 {p99_text}), {len(established)} peers ({inbound} in, {len(established) - inbound} out), "
        f"mempool {fields['mempool_txs']} txs / {fields['mempool_bytes']} bytes"
    )
    return message, fields


class MetricsServer:
    """The node's registry (state, build, process, platform and garbage-collector collectors, and
    the node's :class:`ConsensusMetrics`) and the aiohttp server answering ``GET /metrics`` in the
    Prometheus text format."""

    def __init__(self, node: Node, bind: str, port: int) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(NodeStateCollector(node))
        self.registry.register(BuildInfoCollector(source_commit()))
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        GCCollector(registry=self.registry)
        self.consensus: ConsensusMetrics = node.consensus_metrics
        """The hook the consensus service calls (see :class:`ConsensusMetrics`)."""
        self.registry.register(self.consensus)
        self._bind, self._port = bind, port
        self._runner: web.AppRunner | None = None
        self.bound_port = 0

    def render(self) -> bytes:
        """The current scrape, Prometheus text format, without ``_created`` series."""
        return generate_latest(WithoutCreated(self.registry))

    async def _handle(self, request: web.Request) -> web.Response:
        return web.Response(body=self.render(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def start(self) -> None:
        """Starts listening; ``OSError`` if the address is taken."""
        app = web.Application()
        app.router.add_get(METRICS_PATH, self._handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._bind, self._port, reuse_address=True)
        try:
            await site.start()
        except OSError:
            await self._runner.cleanup()
            self._runner = None
            raise
        sockets = getattr(site._server, "sockets", None) or []
        self.bound_port = sockets[0].getsockname()[1] if sockets else self._port
        log.info("metrics on http://%s:%d%s", self._bind, self.bound_port, METRICS_PATH)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
