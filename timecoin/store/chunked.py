"""The store writers that work after the block, a chunk per store transaction, yielding the event
loop between two: the coins (:mod:`timecoin.store.coins`), the transaction index
(:mod:`timecoin.store.txindex`) and the sweeper (:mod:`timecoin.store.sweeper`)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

__all__ = ["AFTER_BLOCK_INTERVAL", "write_every"]

AFTER_BLOCK_INTERVAL = 20.0
"""Seconds between two passes of the writers that gain from batching blocks (the coins,
:mod:`timecoin.store.coins`; the transaction index, :mod:`timecoin.store.txindex`; the sweeper,
:mod:`timecoin.store.sweeper`): ~10 blocks
at the devnet's 2-s slot, every block at mainnet's 600 s. LMDB copies each page a write
transaction touches, and one block's random keys already touch most leaves of a large database,
so ten blocks written in one sorted pass cost about half of ten passes (``benches/bench_coins.py``,
docs/benchmarks.md). A crash leaves at most this much to replay or re-index."""


async def write_every(
    interval: float,
    pending: Callable[[], bool],
    write_chunk: Callable[[], object],
    on_error: Callable[[], None],
) -> None:
    """Until cancelled: every ``interval`` seconds, calls ``write_chunk()`` while ``pending()``,
    yielding the loop after each call. An exception from ``write_chunk`` goes to ``on_error``
    (called inside the ``except`` block) and ends the pass; the next pass comes ``interval``
    seconds later."""
    while True:
        await asyncio.sleep(interval)
        while pending():
            try:
                write_chunk()
            except Exception:
                on_error()
                break
            await asyncio.sleep(0)
