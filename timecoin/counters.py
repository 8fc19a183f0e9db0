"""Plain counters for the node's hot paths: P2P messages, RPC calls, finality latencies.

The message path of a busy node handles tens of thousands of frames a second, so what it counts
costs an integer addition into a list or a dict, never a Prometheus ``Counter.labels(...).inc()``
(a label lookup and a lock per call; ``benches/bench_metrics.py`` measures both). The Prometheus
collectors of :mod:`timecoin.metrics` read these at scrape time, and the summary line reads the
:class:`FinalityWindow`. Nothing here imports Prometheus or does I/O.

Labels never carry per-peer or per-transaction values: message types are the wire's enum, RPC
methods are the server's own method names (anything else is counted as :data:`UNKNOWN_METHOD`).
"""

from __future__ import annotations

import math
import random
from bisect import bisect_left
from collections.abc import Iterable, Sequence

__all__ = [
    "DIRECTIONS",
    "FINALITY_WINDOW_SAMPLES",
    "UNKNOWN_METHOD",
    "BucketCounts",
    "FinalityWindow",
    "MessageTraffic",
    "RequestStats",
]

DIRECTIONS = ("in", "out")
"""Values of the ``direction`` label: received, sent."""
UNKNOWN_METHOD = "unknown"
"""The ``method`` label of calls naming no method the server has (the name a client sends is
never a label value: it would let a client create series without bound)."""
FINALITY_WINDOW_SAMPLES = 10_000
"""Latencies a :class:`FinalityWindow` keeps between two summaries: every one below this, a
uniform sample of this many above it (reservoir sampling; a p99 from 10,000 samples is off by
well under one percentile). 10,000 floats: about 300 kB."""


class BucketCounts:
    """A histogram as plain counts: ``bounds`` are the upper bounds (ascending; a value equal to a
    bound falls in that bound's bucket, Prometheus' ``le``), plus one bucket for values above all.
    :meth:`cumulative` gives Prometheus' cumulative buckets."""

    __slots__ = ("bounds", "count", "counts", "sum")

    def __init__(self, bounds: Sequence[float]) -> None:
        if list(bounds) != sorted(set(bounds)) or not bounds:
            raise ValueError(f"bucket bounds must be distinct and ascending, got {list(bounds)}")
        self.bounds = tuple(float(b) for b in bounds)
        self.counts = [0] * (len(self.bounds) + 1)
        self.count = 0
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.count += 1
        self.sum += value

    def cumulative(self) -> list[tuple[str, float]]:
        """``[(le, count of values <= le), ..., ("+Inf", count)]`` as Prometheus exports them."""
        out: list[tuple[str, float]] = []
        running = 0
        for bound, n in zip(self.bounds, self.counts, strict=False):
            running += n
            out.append((_le(bound), running))
        out.append(("+Inf", self.count))
        return out


def _le(bound: float) -> str:
    # prometheus_client writes bucket bounds with repr(float): 0.5, 1.0, 10.0
    return repr(float(bound))


class MessageTraffic:
    """P2P frames and their bytes (header included) by message type and direction, for one
    node (its connection manager owns one). Indexed by the wire's type id; the peer adds to the
    lists directly (:meth:`timecoin.p2p.peer.Peer.on_frames`, :meth:`~timecoin.p2p.peer.Peer.send`)."""

    __slots__ = ("bytes_in", "bytes_out", "frames_in", "frames_out")

    def __init__(self, type_ids: int) -> None:
        """``type_ids``: one more than the largest message type id."""
        self.frames_in = [0] * type_ids
        self.bytes_in = [0] * type_ids
        self.frames_out = [0] * type_ids
        self.bytes_out = [0] * type_ids

    def rows(self) -> Iterable[tuple[int, str, int, int]]:
        """``(type id, direction, frames, bytes)`` of every type and direction seen at least once."""
        for direction, frames, nbytes in (
            ("in", self.frames_in, self.bytes_in),
            ("out", self.frames_out, self.bytes_out),
        ):
            for type_id, n in enumerate(frames):
                if n:
                    yield type_id, direction, n, nbytes[type_id]


class RequestStats:
    """Calls served by method: counts by outcome (``ok``, ``error``) and a latency histogram of
    ``bounds`` (seconds) each. ``methods`` are the only label values; any other name is counted
    as :data:`UNKNOWN_METHOD`. HTTP refusals before a call (401, 403, 408, 413, 503, ...) are
    counted by status."""

    def __init__(self, methods: Iterable[str], bounds: Sequence[float]) -> None:
        self._known = frozenset(methods)
        self._bounds = tuple(bounds)
        self.ok: dict[str, int] = {}
        self.errors: dict[str, int] = {}
        self.latency: dict[str, BucketCounts] = {}
        self.refused: dict[int, int] = {}

    def label(self, method: object) -> str:
        """The label value for a requested method name."""
        return method if isinstance(method, str) and method in self._known else UNKNOWN_METHOD

    def record(self, method: str, ok: bool, seconds: float) -> None:
        """One call of ``method`` (a :meth:`label` value) that took ``seconds``."""
        counts = self.ok if ok else self.errors
        counts[method] = counts.get(method, 0) + 1
        histogram = self.latency.get(method)
        if histogram is None:
            histogram = self.latency[method] = BucketCounts(self._bounds)
        histogram.observe(seconds)

    def refuse(self, status: int) -> None:
        """One request answered with HTTP ``status`` before any call ran."""
        self.refused[status] = self.refused.get(status, 0) + 1


class FinalityWindow:
    """Finality since the last :meth:`take`: how many transactions became final and a bounded
    sample of their latencies (seconds), for the summary line's tx/s and p99."""

    def __init__(self, samples: int = FINALITY_WINDOW_SAMPLES, rng: random.Random | None = None) -> None:
        if samples < 1:
            raise ValueError(f"samples must be >= 1, got {samples}")
        self._capacity = samples
        self._rng = rng or random.Random()
        self.finalized = 0
        self._sample: list[float] = []

    def add(self, latencies: Sequence[float]) -> None:
        """Transactions made final now, one latency each (seconds)."""
        sample, capacity = self._sample, self._capacity
        for value in latencies:
            self.finalized += 1
            if len(sample) < capacity:
                sample.append(value)
            else:  # Algorithm R: keep each of the n seen with probability capacity / n
                j = self._rng.randrange(self.finalized)
                if j < capacity:
                    sample[j] = value

    def take(self) -> tuple[int, float | None]:
        """``(finalized, p99 latency in seconds or None without any)`` since the last call; resets."""
        finalized, sample = self.finalized, self._sample
        self.finalized, self._sample = 0, []
        return finalized, percentile(sample, 0.99)


def percentile(values: Sequence[float], q: float) -> float | None:
    """The nearest-rank ``q`` percentile (0 < q <= 1) of ``values``: the smallest value with at
    least ``q`` of them at or below it; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]
