"""The store writers that work after the block, a chunk per store transaction, yielding the event
loop between two: the coins (:mod:`timecoin.store.coins`), the transaction index
(:mod:`timecoin.store.txindex`) and the sweeper (:mod:`timecoin.store.sweeper`)."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable

__all__ = ["AFTER_BLOCK_INTERVAL", "PACE", "write_every"]

AFTER_BLOCK_INTERVAL = 20.0
"""Seconds between two passes of the writers that gain from batching blocks (the coins,
:mod:`timecoin.store.coins`; the transaction index, :mod:`timecoin.store.txindex`; the sweeper,
:mod:`timecoin.store.sweeper`): ~10 blocks
at the devnet's 2-s slot, every block at mainnet's 600 s. LMDB copies each page a write
transaction touches, and one block's random keys already touch most leaves of a large database,
so ten blocks written in one sorted pass cost about half of ten passes (``benches/bench_coins.py``,
docs/benchmarks.md). A crash leaves at most this much to replay or re-index."""

PACE = 3.0
"""A pass yields the loop, after each chunk, for this many times as long as the chunk took: one
writer takes at most a quarter of the loop while its pass runs. Passes start at a random moment
of the interval on each node and for each writer, so they do not fall together. Written back to
back at the same moment on every node, the three writers' passes of ten blocks (py-spy: ~1.5 s
of one node's loop at 6,000 tx/s, four nodes sharing two cores) held finality on all of them at
once; paced and spread, the p99 finality of ``devnet --load --rate 6000 --duration 60`` went
from 1,145 / 1,454 / 1,312 ms to 858 / 1,099 ms, run alternately (docs/benchmarks.md)."""


async def write_every(
    interval: float,
    pending: Callable[[], bool],
    in_pass: Callable[[], bool],
    write_chunk: Callable[[], object],
    on_error: Callable[[], None],
    first: float | None = None,
    start_pass: Callable[[], Awaitable[object]] | None = None,
) -> None:
    """Until cancelled: a pass every ``interval`` seconds, the first ``first`` seconds from now
    (default: at random within one interval). A pass runs if ``pending()``: it awaits
    ``start_pass()`` if given (work done off the loop before the first chunk), then calls
    ``write_chunk()`` (the first call starts the pass if ``start_pass`` did not) until
    ``in_pass()`` is false, yielding the loop after each call for :data:`PACE` times as long as
    the call took. An exception from ``start_pass`` or ``write_chunk`` goes to ``on_error``
    (called inside the ``except`` block) and ends the pass; the next pass comes ``interval``
    seconds later."""

    await asyncio.sleep(random.uniform(0, interval) if first is None else first)
    while True:
        if pending():
            await _write_pass(in_pass, write_chunk, on_error, start_pass)
        await asyncio.sleep(interval)


async def _write_pass(
    in_pass: Callable[[], bool],
    write_chunk: Callable[[], object],
    on_error: Callable[[], None],
    start_pass: Callable[[], Awaitable[object]] | None,
) -> None:
    try:
        if start_pass is not None:
            await start_pass()
        while True:
            started = time.perf_counter()
            write_chunk()
            if not in_pass():
                return
            await asyncio.sleep(PACE * (time.perf_counter() - started))
    except Exception:
        on_error()
