"""The after-block writers' loop (timecoin/store/chunked.py): passes paced so that a writer
never holds the event loop for long, started at a random moment so that the writers of one node,
and the nodes of one network, do not all write at once."""

from __future__ import annotations

import asyncio
import functools
import time

from timecoin.store.chunked import PACE, write_every

CHUNK_SECONDS = 0.01


class _Writer:
    """A pass of ``chunks`` chunks of ~10 ms of CPU each, logging when each starts."""

    def __init__(self, chunks: int) -> None:
        self.chunks = chunks
        self.left = 0
        self.pending = 0
        self.starts: list[float] = []
        self.passes = 0

    def in_pass(self) -> bool:
        return self.left > 0

    def write_chunk(self) -> None:
        if not self.left:
            self.left, self.pending = self.pending, 0
            self.passes += 1
        self.starts.append(time.perf_counter())
        end = time.perf_counter() + CHUNK_SECONDS
        while time.perf_counter() < end:
            pass
        self.left -= 1


def _run(writer: _Writer, seconds: float, first: float, interval: float = 10.0) -> list[float]:
    """Runs ``write_every`` over ``writer`` for ``seconds``; returns the ticks (perf_counter) of
    a task that wanted the loop every millisecond meanwhile."""

    async def scenario() -> list[float]:
        ticks: list[float] = []

        async def ticker() -> None:
            while True:
                ticks.append(time.perf_counter())
                await asyncio.sleep(0.001)

        tasks = [
            asyncio.create_task(
                write_every(
                    interval,
                    lambda: writer.pending > 0,
                    writer.in_pass,
                    writer.write_chunk,
                    lambda: None,
                    first,
                )
            ),
            asyncio.create_task(ticker()),
        ]
        await asyncio.sleep(seconds)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        return ticks

    return asyncio.run(scenario())


def test_a_pass_leaves_the_loop_free_for_pace_times_each_chunk():
    writer = _Writer(8)
    writer.pending = 8
    ticks = _run(writer, 0.6, first=0.0)
    assert writer.passes == 1 and len(writer.starts) == 8  # the whole pass, in chunks
    gaps = [b - a for a, b in zip(writer.starts, writer.starts[1:], strict=False)]
    assert min(gaps) >= (1 + PACE) * CHUNK_SECONDS * 0.9
    # Between two chunks the other task ran again and again, not once.
    between = [t for t in ticks if writer.starts[0] < t < writer.starts[-1]]
    assert len(between) >= 7 * PACE * CHUNK_SECONDS / 0.002


def test_a_pass_writes_what_was_due_at_its_start_then_waits_the_interval():
    writer = _Writer(3)
    writer.pending = 3

    def more_during_the_pass() -> None:
        writer.pending = 3  # the next pass's work, queued while this pass runs

    original = writer.write_chunk

    def chunk() -> None:
        original()
        more_during_the_pass()

    writer.write_chunk = chunk  # type: ignore[method-assign]
    _run(writer, 0.3, first=0.0, interval=0.2)
    assert writer.passes == 2  # one at 0 s, the next after the interval, not back to back
    assert writer.starts[3] - writer.starts[2] >= 0.2


def test_the_first_pass_comes_at_a_random_moment_of_the_interval():
    """Without ``first``: each writer's first pass within one interval, not all at its end."""
    interval = 0.2

    async def scenario() -> list[float]:
        started = time.perf_counter()
        firsts: dict[int, float] = {}

        def note(writer: int) -> None:
            firsts.setdefault(writer, time.perf_counter() - started)

        tasks = [
            asyncio.create_task(
                write_every(interval, lambda: True, lambda: False, functools.partial(note, i), lambda: None)
            )
            for i in range(20)
        ]
        await asyncio.sleep(interval * 1.1)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        return list(firsts.values())

    firsts = asyncio.run(scenario())
    assert len(firsts) == 20 and max(firsts) <= interval * 1.1
    assert max(firsts) - min(firsts) > interval / 10  # 20 draws within a tenth: ~1e-19
