"""The stored UTXO set, flushed behind the blocks (DESIGN §9; the shape of Bitcoin Core's coins
cache, which flushes with its own best block and replays blocks after it at start).

The whole UTXO set lives in memory (``timecoin_native.UtxoSet``); the ``utxo`` database only lets
a start skip rebuilding it. Written in each block's store transaction, its delta (~36,000 writes
on random keys for a block of 12,000 transfers) held every node's event loop ~55 ms at the same
moment (docs/benchmarks.md). Now:

* a block's store transaction holds the block, its undo record, index entry and tip, never coins;
* :class:`CoinsFlusher`, every ``AFTER_BLOCK_INTERVAL`` seconds (20, timecoin/store/chunked.py),
  takes the set's delta (every outpoint whose stored value differs, a coin created and spent
  between two flushes costing nothing) with the tip it belongs to, and writes it
  :data:`COINS_CHUNK` writes per store transaction in key order (a coin's creation height, then
  its outpoint: ``chainstore.coin_key``, so new coins append), the loop yielded between two
  (paced: ``chunked.PACE``); the last chunk also moves the ``coins_tip`` marker
  (``ChainStore.coins_tip``) to that tip. Flushing the changes of several blocks at once is what
  makes it cheap: LMDB copies every page a transaction touches, and 36,000 writes on random keys
  touch most leaf pages of the set whether they are one block's or ten blocks'
  (``benches/bench_coins.py``, keyed by outpoint as they were then: 54 ms of writes a block
  flushed every block, 26 ms every ten; docs/benchmarks.md). The take is two halves:
  ``UtxoSet.take_dirty`` moves the table of changed outpoints out of the set on the loop (O(1)),
  and ``DirtyCoins.delta`` works out their sorted writes as of that moment on a worker thread,
  GIL released, reading the set a slice at a time while blocks go on connecting (in one call on
  the loop, a take of ten blocks at 6,000 tx/s held it 70–280 ms; docs/benchmarks.md);
* :func:`load_utxo_set` loads the stored coins and replays every block after the marker from the
  block and its undo record (``UtxoSet.replay_block``: spent outpoints removed if present,
  created coins added if absent). Whatever subset of a flush's writes landed before a crash, the
  replay ends at the tip's set, which the caller checks against the tip header's set hash.

A rollback first flushes everything (:meth:`CoinsFlusher.flush`), then writes its own delta
with the block's removal (``ChainStore.commit_rollback``), so the marker is always a block of
the current chain at or below the tip, and replay only ever goes forward.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence

import timecoin_native

from timecoin import failpoints
from timecoin.store.chainstore import ChainStore, StoreError, Tip
from timecoin.store.chunked import AFTER_BLOCK_INTERVAL, write_every

log = logging.getLogger(__name__)

CoinWrites = Sequence[tuple[bytes, bytes | None]]
"""A delta as ``DirtyCoins.delta`` returns it (native, sliced into lists of
:data:`~timecoin.store.chainstore.UtxoDelta` writes), or any sequence of the same writes."""

__all__ = [
    "COINS_CHUNK",
    "CoinWrites",
    "MAX_BLOCKS_BEHIND",
    "CoinsFlusher",
    "load_utxo_set",
]

COINS_CHUNK = 4_000
"""Coin writes per store transaction of :class:`CoinsFlusher`. Sorted by key, a chunk dirties
one contiguous run of the database's pages, so a flush writes each page about once however it is
cut; 4,000 writes are a few ms of the event loop."""
MAX_BLOCKS_BEHIND = 64
"""Blocks the marker may lag the tip before :meth:`CoinsFlusher.note_block` flushes at once (a
flusher starved of the loop, or a process that runs none): bounds the replay at the next start
and the set's record of changed outpoints (~100 bytes each)."""


def load_utxo_set(store: ChainStore, tip: Tip) -> tuple[timecoin_native.UtxoSet, int]:
    """(the UTXO set after block ``tip``, blocks replayed): the stored coins, then every block
    after the stored marker replayed (module docstring). The caller checks the set hash.

    Raises :class:`StoreError` if the marker is not a block of the chain at or below ``tip``, a
    block or undo record to replay is missing or does not fit, or a stored coin is malformed."""
    marker = store.coins_tip()
    if marker.height > tip.height or store.block_hash(marker.height) != marker.block_hash:
        raise StoreError(
            f"the stored coins are at block {marker.height} ({marker.block_hash.hex()}), which is not "
            f"a block of the chain at or below its tip {tip.height}: the store is corrupt"
        )
    utxos = timecoin_native.UtxoSet()
    try:
        utxos.load(list(store.utxos()))
    except ValueError as e:
        raise StoreError(f"the stored UTXO set is corrupt: {e}") from None
    for height in range(marker.height + 1, tip.height + 1):
        block_hash = store.block_hash(height)
        raw = store.block(block_hash) if block_hash is not None else None
        undo = store.undo(block_hash) if block_hash is not None else None
        if raw is None or undo is None:
            raise StoreError(f"block {height} or its undo record is missing: its coins cannot be replayed")
        try:
            utxos.replay_block(raw, undo)
        except ValueError as e:
            raise StoreError(f"cannot replay the coins of block {height}: {e}") from None
    replayed = tip.height - marker.height
    if replayed:
        log.info("replayed the coins of %d blocks after the stored set (block %d)", replayed, marker.height)
    return utxos, replayed


class CoinsFlusher:
    """Writes the UTXO set's delta behind the blocks (module docstring). The chain's owner calls
    :meth:`note_block` after each block; :meth:`run`, a task of the same event loop, writes
    every :attr:`interval` seconds.

    ``take_dirty()`` takes the set's changed outpoints (``UtxoSet.take_dirty``, the set's owner
    ``ChainState`` calls it) with the tip they are the changes of. They are taken when the
    previous delta is all written, so the changes of blocks connected meanwhile merge into one
    delta; their writes (``DirtyCoins.delta``: native, converted to Python a chunk at a time,
    since the delta of ten blocks as one list held the loop ~0.3 s) are worked out on a worker
    thread by :meth:`run`'s pass, or on the spot by a :meth:`write_chunk` that needs them first.
    """

    def __init__(
        self,
        store: ChainStore,
        take_dirty: Callable[[], tuple[timecoin_native.DirtyCoins, Tip]],
        chunk: int = COINS_CHUNK,
        interval: float = AFTER_BLOCK_INTERVAL,
    ) -> None:
        if chunk < 1:
            raise ValueError(f"chunk must be positive, not {chunk}")
        self._store = store
        self._take_dirty = take_dirty
        self.chunk = chunk
        self.interval = interval
        """Seconds between two flushes of :meth:`run`."""
        self._dirty: timecoin_native.DirtyCoins | None = None
        """The changes taken whose writes are not worked out yet."""
        self._delta: CoinWrites = []
        self._written = 0
        self._marker: Tip | None = None
        """The tip of the delta being written; ``None`` when none is."""
        self._behind = 0
        """Blocks connected since the last delta was taken."""

    @property
    def blocks_behind(self) -> int:
        """Blocks connected since the delta being written (or the last one) was taken."""
        return self._behind

    @property
    def queued(self) -> int:
        """Writes of the delta being written not written yet; while they are being worked out,
        the number of outpoints taken (an upper bound)."""
        if self._dirty is not None:
            return len(self._dirty)
        return len(self._delta) - self._written

    def note_block(self, count: int = 1) -> None:
        """``count`` blocks were connected (or replayed at a start): their coin changes wait in
        the set. Past :data:`MAX_BLOCKS_BEHIND` everything is written now."""
        self._behind += count
        if self._behind > MAX_BLOCKS_BEHIND:
            log.warning("the stored coins lag %d blocks: writing them now", self._behind)
            self.flush()

    def _pending(self) -> bool:
        return self._marker is not None or self._behind > 0

    def _take(self) -> None:
        """Takes the set's changes if no delta is being written and blocks wait."""
        if self._marker is None and self._behind:
            self._dirty, self._marker = self._take_dirty()
            self._delta, self._written, self._behind = [], 0, 0

    def write_chunk(self) -> int:
        """Writes the next at most :attr:`chunk` coin writes in one store transaction, taking the
        set's changes first if no delta is being written, and working out their writes if that
        is not done yet (here, on the caller's thread); the transaction that ends a delta moves
        the marker. Returns the writes done. Store errors propagate; the delta stays and is
        tried again."""
        self._take()
        if self._marker is None:
            return 0
        if self._dirty is not None:
            self._delta, self._dirty = self._dirty.delta(), None
        start = self._written
        end = min(start + self.chunk, len(self._delta))
        last = end == len(self._delta)
        self._store.write_coins(self._delta[start:end], self._marker if last else None)
        self._written = end
        if last:
            self._delta, self._marker, self._written = [], None, 0
        else:
            failpoints.hit("store.coins.after_chunk")
        return end - start

    async def _start_pass(self) -> None:
        """A pass's first step: takes the set's changes and works out their writes on a worker
        thread (``asyncio.to_thread``; ``DirtyCoins.delta`` releases the GIL), so that the loop
        goes on meanwhile. If a :meth:`flush` wrote them meanwhile, what the thread gives is
        dropped."""
        self._take()
        dirty = self._dirty
        if dirty is None:
            return
        try:
            delta = await asyncio.to_thread(dirty.delta)
        except ValueError:
            if self._dirty is dirty:
                raise
            return  # stale: a flush wrote these changes and took the next ones meanwhile
        if self._dirty is dirty:
            self._delta, self._dirty = delta, None

    def flush(self) -> None:
        """Writes everything now: the delta being written, then the set's delta to the tip (a
        stop, a rollback). Store errors propagate."""
        while self._pending():
            self.write_chunk()

    async def run(self) -> None:
        """Every :attr:`interval` seconds, works out the writes due off the loop, then writes them
        a chunk at a time, yielding the loop after each (paced:
        :func:`~timecoin.store.chunked.write_every`), until cancelled (what is left is written by
        :meth:`flush` at the stop, or replayed at the next start). A store error is logged and
        the write tried again at the next interval."""
        await write_every(
            self.interval,
            self._pending,
            lambda: self._marker is not None,
            self.write_chunk,
            self._failed,
            start_pass=self._start_pass,
        )

    def _failed(self) -> None:
        log.exception(
            "coins flush failed; trying again in %.0f s (a start replays the blocks)", self.interval
        )
