"""The loop of a store writer that works after the block, a chunk per store transaction, yielding
the event loop between two: the transaction index (:mod:`timecoin.store.txindex`) and the sweeper
(:mod:`timecoin.store.sweeper`)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

__all__ = ["write_in_chunks"]


async def write_in_chunks(
    more: asyncio.Event,
    pending: Callable[[], bool],
    write_chunk: Callable[[], object],
    on_error: Callable[[], None],
) -> None:
    """Until cancelled: waits for ``more``, then calls ``write_chunk()`` while ``pending()``,
    yielding the loop after each call. An exception from ``write_chunk`` goes to ``on_error``,
    called inside the ``except`` block (so ``log.exception`` works there), which must leave
    ``pending()`` false or the same chunk is tried again at once."""
    while True:
        await more.wait()
        while pending():
            try:
                write_chunk()
            except Exception:
                on_error()
            await asyncio.sleep(0)
        more.clear()
