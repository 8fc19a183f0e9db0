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

The deletes are written every ``AFTER_BLOCK_INTERVAL`` seconds (20, timecoin/store/chunked.py),
those of every block queued since merged in key order (each block's sorted when queued, then a
lazy merge, so no step sorts them all): the accept records' random keys then touch each page of
their database once per pass, not once per chunk of every block.
"""

from __future__ import annotations

import heapq
import itertools
import logging
from collections.abc import Iterable, Iterator

from timecoin.store.chainstore import ChainStore
from timecoin.store.chunked import AFTER_BLOCK_INTERVAL, write_every

log = logging.getLogger(__name__)

__all__ = ["MAX_QUEUED", "SWEEP_CHUNK", "Sweeper"]

SWEEP_CHUNK = 2_000
"""Deletes per store transaction of :meth:`Sweeper.run`: a few ms of the event loop each (the
transaction index's chunk, ``timecoin.store.txindex.INDEX_CHUNK``, measured the same)."""
MAX_QUEUED = 1_000_000
"""Deletes queued at most: past it :meth:`Sweeper.queue` writes everything at once (a task
starved of the loop for many blocks), so memory stays bounded (~100 MB of keys)."""


class Sweeper:
    """Deferred deletes over a :class:`ChainStore` (see the module docstring). The chain's owner
    queues; :meth:`run`, a task of the same event loop, writes every :attr:`interval` seconds."""

    def __init__(
        self, store: ChainStore, chunk: int = SWEEP_CHUNK, interval: float = AFTER_BLOCK_INTERVAL
    ) -> None:
        if chunk < 1:
            raise ValueError(f"chunk must be positive, not {chunk}")
        self._store = store
        self._chunk = chunk
        self.interval = interval
        """Seconds between two passes of :meth:`run`."""
        self._batches: list[list[tuple[bytes, bytes]]] = []
        """What each :meth:`queue` call queued, sorted, oldest first."""
        self._queued = 0
        self._pass: Iterator[tuple[bytes, bytes]] | None = None
        """The merge of the batches the pass under way writes."""
        self._pass_batches = 0
        self._pass_total = 0
        self._pass_left = 0
        self.swept = 0
        """Deletes written so far."""

    @property
    def queued(self) -> int:
        """Deletes not written yet."""
        return self._queued

    def queue(self, keys: Iterable[tuple[bytes, bytes]]) -> None:
        """Queues the deletes of (database, key) pairs. Past :data:`MAX_QUEUED` everything queued
        is written now. ``StoreError`` (nothing written) for a database the store does not allow
        extra writes to, as :meth:`ChainStore.write` raises it."""
        batch = sorted(keys)
        if not batch:
            return
        self._batches.append(batch)
        self._queued += len(batch)
        if self._queued > MAX_QUEUED:
            log.warning("%d deletes queued: writing them now", self._queued)
            self.flush()

    def write_queued(self) -> int:
        """Writes the next at most ``chunk`` deletes of the pass under way in one store
        transaction, starting a pass over every batch queued if none is; returns how many (0:
        nothing was queued). Store errors propagate (the deletes stay queued; the pass starts
        over)."""
        if self._pass is None:
            if not self._batches:
                return 0
            self._pass_batches = len(self._batches)
            self._pass_total = self._pass_left = sum(len(b) for b in self._batches)
            self._pass = heapq.merge(*self._batches)
        chunk = list(itertools.islice(self._pass, self._chunk))
        try:
            self._store.write([(db, key, None) for db, key in chunk])
        except BaseException:
            # The pass starts over: what it wrote is deleted again (a no-op), so count it queued.
            self._queued += self._pass_total - self._pass_left
            self._pass = None
            raise
        n = len(chunk)
        self._pass_left -= n
        self._queued -= n
        self.swept += n
        if not self._pass_left:
            del self._batches[: self._pass_batches]
            self._pass = None
        return n

    def flush(self) -> None:
        """Writes everything queued now (at a stop)."""
        while self.write_queued():
            pass

    async def run(self) -> None:
        """Every :attr:`interval` seconds, writes what is queued a chunk at a time, yielding the
        loop after each (paced: :func:`~timecoin.store.chunked.write_every`), until cancelled
        (what is left stays queued: :meth:`flush`). A store error is logged and drops the queue:
        what it held is the data the module docstring says may stay."""
        await write_every(
            self.interval,
            lambda: bool(self._batches),
            lambda: self._pass is not None,
            self.write_queued,
            self._failed,
        )

    def _failed(self) -> None:
        log.exception("sweeper: dropping %d queued deletes after a store error", self._queued)
        self._batches.clear()
        self._queued = 0
        self._pass = None
