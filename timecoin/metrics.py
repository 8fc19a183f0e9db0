"""Prometheus metrics of one node: one ``CollectorRegistry`` per node, served as ``/metrics`` on
its own port by aiohttp (DESIGN §10; off by default, config keys ``metrics``, ``metrics_bind``,
``metrics_port``).

Names follow ``timecoin_<subsystem>_<name>_<unit>``, counters end in ``_total``, and no label
takes a per-peer or per-transaction value (CometBFT ``consensus/metrics.go``); the only labels are
``direction`` (``in``/``out``) and the seven consensus ``phase`` names of DESIGN §7.

Two kinds of metric:

* **state, read at scrape time** by :class:`NodeStateCollector` from the node the loop owns:
  chain height, mempool size (transactions, bytes), peers by direction, sync progress, DB size,
  stored blocks found damaged and repaired (counters the store keeps), event-loop lag (p99 and
  max of the last minute, :mod:`timecoin.looplag`).
  Nothing copies that state in between, so a scrape never shows a stale value.
* **events, pushed by the service that sees them** through :class:`ConsensusMetrics` (the hook the
  consensus service calls): transactions finalized (a counter; the finalized TPS is Prometheus'
  ``rate()`` of it), finality latency (a histogram, seconds), the current height and round,
  rounds started, phase durations (a histogram per phase, seconds). Until a consensus service
  calls the hook these stay at zero: nothing is finalized without it.

This module never changes node state and never blocks the loop for long: a scrape reads a few
counters, ``len()`` of the mempool and LMDB's ``info()``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

from aiohttp import web
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from timecoin.consensus.monitor import PHASES

if TYPE_CHECKING:
    from timecoin.node import Node

log = logging.getLogger(__name__)

__all__ = [
    "FINALITY_LATENCY_BUCKETS",
    "METRICS_PATH",
    "NAMESPACE",
    "PHASE_DURATION_BUCKETS",
    "ConsensusMetrics",
    "MetricsServer",
    "NodeStateCollector",
]

NAMESPACE = "timecoin"
METRICS_PATH = "/metrics"
FINALITY_LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 10.0, 30.0)
"""Seconds. Dense below 1 s: DESIGN §11 asks p99 finality < 1 s."""
PHASE_DURATION_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
"""Seconds, from CPU-bound phases (election: ~ms) to waits bounded by the leader timeout."""


class ConsensusMetrics:
    """The event metrics of finality and BFT rounds, and the hook the consensus service calls.

    Methods take plain numbers (seconds, counts) so the consensus code needs no Prometheus
    import; each raises ``ValueError`` for a negative duration or count (a caller bug), changing
    nothing."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.finalized = Counter(
            "finality_transactions_finalized",
            "Transactions that became final by masternode votes (DESIGN §6); rate() is finalized TPS.",
            namespace=NAMESPACE,
            registry=registry,
        )
        self.finality_latency = Histogram(
            "finality_latency_seconds",
            "Seconds from a transaction's arrival at this node to its finality (DESIGN §6, §11).",
            namespace=NAMESPACE,
            buckets=FINALITY_LATENCY_BUCKETS,
            registry=registry,
        )
        self.height = Gauge(
            "consensus_height_blocks",
            "Height the BFT state machine works on (DESIGN §7).",
            namespace=NAMESPACE,
            registry=registry,
        )
        self.round = Gauge(
            "consensus_round_number",
            "Round of the current height (0 = the first leader; > 0 after a fallback, DESIGN §7).",
            namespace=NAMESPACE,
            registry=registry,
        )
        self.rounds = Counter(
            "consensus_rounds",
            "BFT rounds started (DESIGN §7).",
            namespace=NAMESPACE,
            registry=registry,
        )
        self.phase_duration = Histogram(
            "consensus_phase_duration_seconds",
            "Seconds spent in each phase of a slot (DESIGN §7: sync, election, construction, "
            "proposal, voting, collection, finalization).",
            ["phase"],
            namespace=NAMESPACE,
            buckets=PHASE_DURATION_BUCKETS,
            registry=registry,
        )
        for phase in PHASES:
            self.phase_duration.labels(phase=phase)
        self.step_failures = Counter(
            "consensus_step_failures",
            "Consensus steps that raised: each input dropped and the engine rebuilt from the store "
            "(DESIGN §13; docs/consensus.md). Anything but 0 is a bug to report.",
            namespace=NAMESPACE,
            registry=registry,
        )

    def transactions_finalized(self, latencies: Iterable[float]) -> None:
        """``latencies``: seconds from arrival to finality, one per transaction made final now."""
        values = list(latencies)
        if any(v < 0 for v in values):
            raise ValueError("finality latencies must be >= 0 seconds")
        for v in values:
            self.finality_latency.observe(v)
        self.finalized.inc(len(values))

    def round_started(self, height: int, round: int) -> None:
        """The state machine entered (``height``, ``round``)."""
        if height < 0 or round < 0:
            raise ValueError(f"height and round must be >= 0, got {height}, {round}")
        self.height.set(height)
        self.round.set(round)
        self.rounds.inc()

    def step_failed(self) -> None:
        """A consensus step raised (its input was dropped, the engine rebuilt)."""
        self.step_failures.inc()

    def phase_finished(self, phase: str, seconds: float) -> None:
        """One phase of DESIGN §7 took ``seconds``; ``ValueError`` for an unknown phase."""
        if phase not in PHASES:
            raise ValueError(f"unknown consensus phase {phase!r} (known: {', '.join(PHASES)})")
        if seconds < 0:
            raise ValueError(f"phase duration must be >= 0 seconds, got {seconds}")
        self.phase_duration.labels(phase=phase).observe(seconds)


LAG_WINDOW = 60.0
"""Seconds of event-loop samples the lag gauges summarize."""


class NodeStateCollector(Collector):
    """Reads the node's state at each scrape (the module docstring's "state" metrics). The node
    starts the metrics server once its chain, mempool and P2P service run, and stops it before
    closing them, so every scrape sees them open."""

    def __init__(self, node: Node) -> None:
        self._node = node

    def describe(self) -> list[Metric]:
        return []  # read at scrape time; nothing to check at registration

    def collect(self) -> Iterator[Metric]:
        node = self._node
        chain, mempool = node.chain, node.mempool
        yield _gauge("chain_height_blocks", "Height of the chain tip.", chain.tip.height)
        yield _gauge("store_db_size_bytes", "Bytes of the LMDB map in use.", chain.store.size_bytes())
        yield CounterMetricFamily(
            f"{NAMESPACE}_store_damaged_blocks",
            "Stored blocks found failing their hashes when read, each counted once; never served "
            "(DESIGN §13 storage integrity; docs/operator.md).",
            value=chain.store.damaged_blocks_found,
        )
        yield CounterMetricFamily(
            f"{NAMESPACE}_store_repaired_blocks",
            "Damaged stored blocks replaced by a peer's copy whose bytes hash to the digest stored "
            "with the block (DESIGN §13 storage integrity; docs/operator.md).",
            value=chain.store.blocks_repaired,
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
        p2p = node.p2p
        if p2p is None:
            return
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


def _gauge(name: str, help: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(f"{NAMESPACE}_{name}", help, value=value)


class MetricsServer:
    """The node's registry (state collector + :class:`ConsensusMetrics`) and the aiohttp server
    answering ``GET /metrics`` in the Prometheus text format."""

    def __init__(self, node: Node, bind: str, port: int) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(NodeStateCollector(node))
        self.consensus = ConsensusMetrics(self.registry)
        """The hook the consensus service calls (see :class:`ConsensusMetrics`)."""
        self._bind, self._port = bind, port
        self._runner: web.AppRunner | None = None
        self.bound_port = 0

    def render(self) -> bytes:
        """The current scrape, Prometheus text format."""
        return generate_latest(self.registry)

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
