"""The event-loop lag monitor's summaries (``timecoin.looplag``; docs/operator.md, "Event-loop
lag") and its sampling on a real loop."""

from __future__ import annotations

import asyncio
import time

import pytest

from timecoin.looplag import MAX_WINDOW, WINDOW_SAMPLES, LoopLagMonitor


def test_summary_covers_the_window_only():
    monitor = LoopLagMonitor()
    for i in range(100):  # 100 samples at t = 0..99 s, lag 1..100 ms
        monitor.record((i + 1) / 1000, float(i))
    recent = monitor.summary(10, now=99.0)  # t = 89..99: lags 90..100 ms
    assert recent["samples"] == 11 and recent["max"] == 100.0 and recent["p50"] == 95.0
    whole = monitor.summary(MAX_WINDOW, now=99.0)
    assert whole["samples"] == 100 and whole["p99"] == 99.0 and whole["p50"] == 50.0
    assert monitor.summary(5, now=1000.0) == {
        "window_s": 5,
        "samples": 0,
        "p50": None,
        "p99": None,
        "max": None,
        "max_since_start": 100.0,
    }
    for bad in (0, -1, MAX_WINDOW + 1):
        with pytest.raises(ValueError, match="window"):
            monitor.summary(bad)


def test_the_ring_keeps_the_newest_samples():
    monitor = LoopLagMonitor()
    for i in range(WINDOW_SAMPLES + 10):
        monitor.record(0.001 if i < 10 else 0.0, 0.0)
    assert monitor.summary(1, now=0.0)["max"] == 0.0  # the ten 1 ms samples were overwritten
    assert monitor.max_lag == 0.001


def test_a_blocking_callback_shows_as_lag():
    async def scenario() -> dict:
        monitor = LoopLagMonitor()
        task = asyncio.get_running_loop().create_task(monitor.run())
        await asyncio.sleep(0.05)
        time.sleep(0.2)  # holds the loop, as a long step would
        await asyncio.sleep(0.05)
        task.cancel()
        return monitor.summary(10)

    summary = asyncio.run(scenario())
    assert summary["samples"] >= 3
    assert summary["max"] >= 150.0 and summary["max_since_start"] == summary["max"]
