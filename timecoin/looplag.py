"""Event-loop lag of a node (docs/operator.md, "Event-loop lag"): how late the loop runs a
callback that was due, sampled every :data:`SAMPLE_INTERVAL` seconds.

Everything a node does runs on one event loop; a step that holds it (applying a block,
committing LMDB, a burst of votes) delays every other message, timer and RPC by as long. The
monitor sleeps :data:`SAMPLE_INTERVAL`, measures how much later than that it woke, and keeps the
last :data:`WINDOW_SAMPLES` measurements (ten minutes) and the largest since start. Quorums form
only between stalls, so this is the figure that bounds finality latency under load (issue 13:
"the loop never blocked for more than 20 ms by one block at 10,000 tx/s").

Its own cost: :data:`SAMPLE_INTERVAL` of 10 ms is 100 wake-ups a second, a few microseconds each.
"""

from __future__ import annotations

import asyncio
import math
import time
from array import array
from typing import Any

__all__ = ["MAX_WINDOW", "SAMPLE_INTERVAL", "WINDOW_SAMPLES", "LoopLagMonitor"]

SAMPLE_INTERVAL = 0.01
"""Seconds between two samples."""
MAX_WINDOW = 600.0
"""Seconds of samples kept."""
WINDOW_SAMPLES = int(MAX_WINDOW / SAMPLE_INTERVAL)
"""Samples kept: the last :data:`MAX_WINDOW` seconds' worth."""


class LoopLagMonitor:
    """Samples the lag of the running loop (:meth:`run`, a task the node keeps) and summarizes
    it (:meth:`summary`). Only the loop's own task touches it."""

    def __init__(self) -> None:
        self._lags = array("d", bytes(8 * WINDOW_SAMPLES))
        self._at = array("d", bytes(8 * WINDOW_SAMPLES))
        self._next = 0
        self._count = 0
        self.max_lag = 0.0
        """Largest lag since start, seconds."""

    def record(self, lag: float, at: float) -> None:
        """One sample: the loop ran ``lag`` seconds late at monotonic time ``at``."""
        i = self._next
        self._lags[i] = lag
        self._at[i] = at
        self._next = (i + 1) % WINDOW_SAMPLES
        self._count = min(self._count + 1, WINDOW_SAMPLES)
        self.max_lag = max(self.max_lag, lag)

    async def run(self) -> None:
        clock = time.monotonic
        while True:
            start = clock()
            await asyncio.sleep(SAMPLE_INTERVAL)
            now = clock()
            self.record(max(0.0, now - start - SAMPLE_INTERVAL), now)

    def summary(self, window: float, now: float | None = None) -> dict[str, Any]:
        """Lag over the last ``window`` seconds (at most :data:`MAX_WINDOW`), in milliseconds:
        ``samples``, ``p50``, ``p99``, ``max`` (None without samples), and ``max_since_start``.
        ``ValueError`` for a window that is not in (0, MAX_WINDOW]."""
        if not 0 < window <= MAX_WINDOW:
            raise ValueError(f"window must be in (0, {MAX_WINDOW:g}] seconds, got {window}")
        now = time.monotonic() if now is None else now
        lags = sorted(self._lags[i] for i in range(self._count) if now - self._at[i] <= window)

        def ms(value: float) -> float:
            return round(value * 1000, 3)

        def rank(q: float) -> float | None:
            return ms(lags[min(len(lags) - 1, math.ceil(q * len(lags)) - 1)]) if lags else None

        return {
            "window_s": window,
            "samples": len(lags),
            "p50": rank(0.50),
            "p99": rank(0.99),
            "max": ms(lags[-1]) if lags else None,
            "max_since_start": ms(self.max_lag),
        }
