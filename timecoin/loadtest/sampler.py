"""What every node does while the load runs (issue 15 item 5; docs/loadtest.md "Plots"): its
chain height (so the plot can mark block commits), mempool size and CPU use, sampled every
:data:`SAMPLE_INTERVAL` seconds.

Each node is read as cheaply as it allows, since the sampling shares the machine (and the nodes'
event loops) with the load it measures:

* a node on this machine whose pid is known (a devnet's manifest): height and mempool over
  JSON-RPC (``getblockcount``, ``getmempoolinfo``), CPU from ``/proc/<pid>/stat`` (utime +
  stime). A ``/metrics`` scrape renders ~500 series: ~4 ms of the node's event loop per scrape
  and ~3 ms here to parse it, measured on a 4-node devnet, eight times a second in all; the two
  small calls cost a fraction of that;
* else from its Prometheus ``/metrics`` (:class:`NodeProbe` ``metrics_url``: ``--metrics URL``,
  a ``timecoin.conf`` with ``metrics = true``): ``timecoin_chain_height_blocks``,
  ``timecoin_mempool_size_transactions`` and, where the node exports process metrics,
  ``process_cpu_seconds_total``;
* else over JSON-RPC, which every node serves, without CPU: the report says so (``cpu_source``
  null and a note).

A failed read leaves a gap (None) in that node's series and the sampling goes on; the sampler
never changes a node. One task samples; :meth:`Sampler.run` is cancelled by its owner when the
load phase ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from timecoin.loadtest.submitter import NETWORK_ERRORS, AsyncRPC

__all__ = [
    "CPU_METRIC",
    "HEIGHT_METRIC",
    "MEMPOOL_METRIC",
    "SAMPLE_INTERVAL",
    "NodeProbe",
    "Sampler",
    "parse_metrics",
    "proc_cpu_seconds",
]

SAMPLE_INTERVAL = 0.5
"""Seconds between samples: a block commit is placed within this of when it happened."""
METRICS_TIMEOUT = 2.0
"""Seconds one ``/metrics`` scrape may take before the sample is a gap."""
HEIGHT_METRIC = "timecoin_chain_height_blocks"
MEMPOOL_METRIC = "timecoin_mempool_size_transactions"
CPU_METRIC = "process_cpu_seconds_total"
"""Prometheus' standard process collector (user + system CPU seconds of the node's process)."""


@dataclass(frozen=True, slots=True)
class NodeProbe:
    """Where to read one node besides its JSON-RPC: its ``/metrics`` URL and, for a node on this
    machine, its process id (CPU from ``/proc``). Both optional."""

    metrics_url: str | None = None
    pid: int | None = None


def parse_metrics(text: str) -> dict[str, float]:
    """The unlabelled samples of a Prometheus text exposition, name → value (a counter's
    ``_total`` sample under its full name); ``ValueError`` for text that is not the format."""
    values: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if not sample.labels:
                values[sample.name] = float(sample.value)
    return values


def proc_cpu_seconds(pid: int, proc: Path = Path("/proc")) -> float | None:
    """User + system CPU seconds of process ``pid`` from ``/proc/<pid>/stat`` (proc(5): fields
    14 and 15, in clock ticks); None when it cannot be read (no such process, not Linux)."""
    try:
        text = (proc / str(pid) / "stat").read_text()
        fields = text[text.rindex(")") + 2 :].split()
        ticks = int(fields[11]) + int(fields[12])  # utime, stime: fields 14, 15 counting from 1
        return ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


@dataclass(slots=True)
class _Series:
    height: list[int | None] = field(default_factory=list)
    mempool: list[int | None] = field(default_factory=list)
    cpu_seconds: list[float | None] = field(default_factory=list)
    cpu_source: str | None = None


class Sampler:
    """Samples every node (``nodes``, with ``probes`` in the same order) until cancelled; sample
    times on ``clock`` (``time.monotonic`` as the submitter's; ``time.time`` for Locust workers'
    wall-clock times)."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        nodes: list[AsyncRPC],
        probes: list[NodeProbe] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._clock = clock
        self._session = session
        self._nodes = nodes
        self._probes = list(probes or [])
        self._probes += [NodeProbe()] * (len(nodes) - len(self._probes))
        self.times: list[float] = []
        """The clock's time of each sample."""
        self._series = [_Series() for _ in nodes]

    async def run(self, interval: float = SAMPLE_INTERVAL) -> None:
        """Takes a sample every ``interval`` seconds, forever (the owner cancels it)."""
        while True:
            started = self._clock()
            await self.sample()
            await asyncio.sleep(max(0.0, interval - (self._clock() - started)))

    async def sample(self) -> None:
        """One sample of every node, taken concurrently. Its time is kept with its readings once
        every node has been read: a sample cancelled on the way (the load phase ended) leaves
        nothing, so :meth:`result` has one reading per time."""
        at = self._clock()
        readings = await asyncio.gather(*(self._read(i) for i in range(len(self._nodes))))
        self.times.append(at)
        for series, (height, mempool, cpu, source) in zip(self._series, readings, strict=True):
            series.height.append(height)
            series.mempool.append(mempool)
            series.cpu_seconds.append(cpu)
            if source is not None:
                series.cpu_source = source

    async def _scrape(self, url: str) -> dict[str, float] | None:
        try:
            timeout = aiohttp.ClientTimeout(total=METRICS_TIMEOUT)
            async with self._session.get(url, timeout=timeout) as r:
                if r.status != 200:
                    return None
                return parse_metrics(await r.text())
        except (aiohttp.ClientError, TimeoutError, ValueError, UnicodeDecodeError):
            return None

    async def _read(self, i: int) -> tuple[int | None, int | None, float | None, str | None]:
        probe = self._probes[i]
        cpu = proc_cpu_seconds(probe.pid) if probe.pid is not None else None
        source: str | None = "proc" if cpu is not None else None
        metrics = None
        if cpu is None and probe.metrics_url:
            metrics = await self._scrape(probe.metrics_url)
        height = mempool = None
        if metrics is not None and HEIGHT_METRIC in metrics and MEMPOOL_METRIC in metrics:
            height, mempool = int(metrics[HEIGHT_METRIC]), int(metrics[MEMPOOL_METRIC])
        else:
            with contextlib.suppress(*NETWORK_ERRORS, KeyError, TypeError):
                height = int(await self._nodes[i].call("getblockcount"))
                mempool = int((await self._nodes[i].call("getmempoolinfo"))["size"])
        if metrics is not None and CPU_METRIC in metrics:
            cpu, source = metrics[CPU_METRIC], "metrics"
        return height, mempool, cpu, source

    def result(self, start: float) -> dict[str, Any]:
        """The report's ``nodes_sampled``: ``t_s`` (seconds since ``start``, the first send, one
        per sample), per node ``height``, ``mempool`` (transactions), ``cpu_percent`` (of one
        core, over the interval before each sample; None for the first and for gaps) and
        ``cpu_source`` (``"metrics"``, ``"proc"`` or None); ``block_commits_s``: for each
        height reached during the sampling, the first sample at which some node had it; and
        ``cpu_note``, why some node has no CPU series (None when all have one)."""
        t = [round(x - start, 3) for x in self.times]
        nodes = []
        for s in self._series:
            cpu_percent: list[float | None] = [None]
            for k in range(1, len(t)):
                a, b = s.cpu_seconds[k - 1], s.cpu_seconds[k]
                dt = self.times[k] - self.times[k - 1]
                cpu_percent.append(
                    round(100 * (b - a) / dt, 1) if a is not None and b is not None and dt > 0 else None
                )
            nodes.append(
                {
                    "height": s.height,
                    "mempool": s.mempool,
                    "cpu_percent": cpu_percent[: len(t)],
                    "cpu_source": s.cpu_source,
                }
            )
        commits: list[float] = []
        best: int | None = None
        for k, at in enumerate(t):
            heights = [h for s in self._series if (h := s.height[k]) is not None]
            if not heights:
                continue
            top = max(heights)
            if best is not None and top > best:
                commits += [at] * (top - best)
            best = top if best is None else max(best, top)
        missing = [i for i, s in enumerate(self._series) if s.cpu_source is None]
        return {
            "t_s": t,
            "nodes": nodes,
            "block_commits_s": commits,
            "cpu_note": (
                f"no CPU for nodes {missing}: no {CPU_METRIC} in their /metrics (or no metrics URL) "
                "and no local process id"
            )
            if missing
            else None,
        }
