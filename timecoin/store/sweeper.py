"""Deletes a committed block makes due but no invariant needs at once, written after the block a
chunk at a time (issue 13 item 4: the block off the event loop's critical moment).

A block of 12,000 transfers made useless, on every node at the same moment, 12,000 finalized
records (and the vote batches only they name) and 12,000 signer accept records. Deleted in the
block's store transaction and the Persist right after it, they held each node's event loop
tens of ms per block while all four nodes of a devnet committed together (docs/benchmarks.md).
What stays true if they are deleted later, or never (a crash in between):

* a finalized record whose transaction a block archived is dropped when the engine loads
  (``FinalityEngine.start``: its inputs are no longer unspent), and a vote batch no record names
  with it;
* an accept record of an outpoint a committed block spent only keeps that masternode from
  accepting another spend of a coin that no longer exists (DESIGN §6: "an honest masternode signs
  at most one accept per outpoint, ever": keeping it longer is the safe side). A crash between
  the block and the sweep leaves such records behind; they cost their bytes, nothing else.

Keys queued here are never written again (sequence-numbered records; accept records of spent
outpoints), so a delete that lands later than the block is the same delete.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Iterable

from timecoin.store.chainstore import ChainStore
from timecoin.store.chunked import write_in_chunks

log = logging.getLogger(__name__)

__all__ = ["MAX_QUEUED", "SWEEP_CHUNK", "Sweeper"]

SWEEP_CHUNK = 2_000
"""Deletes per store transaction of :meth:`Sweeper.run`: a few ms of the event loop each (the
transaction index's chunk, ``timecoin.store.txindex.INDEX_CHUNK``, measured the same)."""
MAX_QUEUED = 1_000_000
"""Deletes queued at most: past it :meth:`Sweeper.queue` writes everything at once (a task
starved of the loop for many blocks), so memory stays bounded (~100 MB of keys)."""


class Sweeper:
    """Deferred deletes over a :class:`ChainStore` (see the module docstring), in queue order.
    The chain's owner queues; :meth:`run`, a task of the same event loop, writes."""

    def __init__(self, store: ChainStore, chunk: int = SWEEP_CHUNK) -> None:
        if chunk < 1:
            raise ValueError(f"chunk must be positive, not {chunk}")
        self._store = store
        self._chunk = chunk
        self._queued: deque[tuple[bytes, bytes]] = deque()
        self._more = asyncio.Event()
        self.swept = 0
        """Deletes written so far."""

    @property
    def queued(self) -> int:
        """Deletes not written yet."""
        return len(self._queued)

    def queue(self, keys: Iterable[tuple[bytes, bytes]]) -> None:
        """Queues the deletes of (database, key) pairs. Past :data:`MAX_QUEUED` everything queued
        is written now. ``StoreError`` (nothing written) for a database the store does not allow
        extra writes to, as :meth:`ChainStore.write` raises it."""
        self._queued.extend(keys)
        if len(self._queued) > MAX_QUEUED:
            log.warning("%d deletes queued: writing them now", len(self._queued))
            self.flush()
        elif self._queued:
            self._more.set()

    def write_queued(self) -> int:
        """Writes the next at most ``chunk`` deletes in one store transaction; returns how many.
        Store errors propagate (the deletes stay queued)."""
        n = min(self._chunk, len(self._queued))
        if n:
            queued = self._queued
            self._store.write([(queued[i][0], queued[i][1], None) for i in range(n)])
            for _ in range(n):
                queued.popleft()
            self.swept += n
        return n

    def flush(self) -> None:
        """Writes everything queued now (at a stop)."""
        while self.write_queued():
            pass

    async def run(self) -> None:
        """Writes queued deletes a chunk at a time, yielding the loop after each, until cancelled
        (what is left stays queued: :meth:`flush`). A store error is logged and drops the
        queue: what it held is the data the module docstring says may stay."""
        await write_in_chunks(self._more, lambda: bool(self._queued), self.write_queued, self._failed)

    def _failed(self) -> None:
        log.exception("sweeper: dropping %d queued deletes after a store error", len(self._queued))
        self._queued.clear()
