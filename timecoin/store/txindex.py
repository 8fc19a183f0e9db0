"""The transaction index: txid → where its bytes are in a committed block (``getrawtransaction``).

It lives in the chain store's ``txindex`` database and, like Bitcoin Core's ``-txindex``, is
derived data with its own best block, written after the block, not in its store transaction:

* a connected block is queued (:meth:`TxIndex.queue_block`, when the index and its queue are at
  the block's parent: the node's steady state) and its entries answer lookups from memory at
  once; the index's own task (:meth:`TxIndex.run`), every ``AFTER_BLOCK_INTERVAL`` seconds (20,
  timecoin/store/chunked.py), writes the entries of every block queued, merged and sorted by
  txid, at most :data:`INDEX_CHUNK` per store transaction, yielding the event loop between two
  (paced: ``chunked.PACE``),
  the best block (the last of them) with the last chunk. The entries' keys are random, one
  B-tree page each: written in the block's own transaction they held every node's loop ~25 ms
  per block of 9,315 transfers at the same moment (py-spy at 6,000 tx/s, docs/benchmarks.md),
  and one pass over several blocks copies each page once, not once per block;
* the catch-up (:meth:`TxIndex.catch_up`) indexes from the stored best block to the chain tip, on
  start (a store that had no index, a crash or stop with blocks queued) and after a block that
  could not be queued.

Layout: ``txid`` (32 bytes) → ``height`` u64 BE ‖ ``offset`` u32 BE ‖ ``length`` u32 BE (the
transaction's bytes inside the encoded block); key ``best`` → height u64 BE ‖ block hash.
A lookup re-hashes the bytes it finds and answers only if they are that txid, so an entry left
behind by a rolled-back block can never answer with a wrong transaction.

This module reads and writes bytes; it judges no validity.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import struct
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import timecoin_native

from timecoin.store.chainstore import ChainStore
from timecoin.store.chunked import AFTER_BLOCK_INTERVAL, write_every

log = logging.getLogger(__name__)

TXINDEX_DB = b"txindex"
"""The chain store database of the index (``DATABASES`` in chainstore.py)."""

INDEX_CHUNK = 2_000
"""Entries per store transaction of :meth:`TxIndex.run`: a few ms of the event loop each on a
2-core machine (docs/benchmarks.md)."""
MAX_QUEUED_BLOCKS = 32
"""Blocks queued at most (their entries are held in memory, ~150 bytes each): a pass's worth at
the devnet's 2-s slot with room to spare. A node connecting blocks faster than the task writes
them (a sync) finds the queue full and indexes in step (:meth:`catch_up`)."""

_BEST = b"best"
_ENTRY = struct.Struct(">QII")
_BEST_FORMAT = struct.Struct(">Q32s")


@dataclass(frozen=True, slots=True)
class TxLocation:
    """Where a committed transaction is: block height and its byte span in the encoded block."""

    height: int
    offset: int
    length: int


def transaction_spans(block: bytes) -> list[tuple[int, int]]:
    """(offset, length) of each transaction in an encoded block, in block order (native: decoded
    as strictly as a block, nothing hashed; docs/encoding.md "Block"). ``ValueError`` with the
    codec's message on bytes that are not exactly one block."""
    return timecoin_native.transaction_spans(block)


@dataclass(frozen=True, slots=True)
class _Queued:
    """A connected block whose entries are not all written yet."""

    height: int
    block_hash: bytes
    entries: list[tuple[bytes, bytes]]
    """(txid, packed entry), sorted by txid."""


@dataclass(slots=True)
class _Pass:
    """The blocks one pass of :meth:`TxIndex.write_queued` writes: their entries merged."""

    blocks: int
    """How many of the queue's first blocks it covers."""
    total: int
    """Their entries."""
    merged: Iterator[tuple[bytes, bytes]]
    """Their (txid, packed entry) in txid order: a lazy merge of the blocks' sorted entries, so
    no step holds the loop for the sort of all of them (~100 ms for ten blocks)."""
    written: int = field(default=0)


class TxIndex:
    """The txid index over a :class:`ChainStore`. The chain's owner queues blocks and reads it;
    :meth:`run`, a task of the same event loop, writes what is queued."""

    def __init__(
        self, store: ChainStore, chunk: int = INDEX_CHUNK, interval: float = AFTER_BLOCK_INTERVAL
    ) -> None:
        if chunk < 1:
            raise ValueError(f"chunk must be positive, not {chunk}")
        self._store = store
        self._chunk = chunk
        self.interval = interval
        """Seconds between two passes of :meth:`run`."""
        self._queued: deque[_Queued] = deque()
        self._pass: _Pass | None = None
        self._unwritten: dict[bytes, bytes] = {}
        """txid → packed entry, of the queued blocks' entries not written yet."""

    @property
    def queued_blocks(self) -> int:
        """Connected blocks whose entries are not all written yet."""
        return len(self._queued)

    def queue_block(self, height: int, block_hash: bytes, block: bytes, txids: Sequence[bytes]) -> bool:
        """Queues the entries of the committed ``block`` at ``height`` (``txids`` in block order,
        coinbase included) for :meth:`run`; lookups answer them at once. Only if the index, with
        what it has queued, is at the block's parent and fewer than :data:`MAX_QUEUED_BLOCKS` are
        queued: ``False`` (nothing queued) otherwise, and :meth:`catch_up` is the way.
        ``ValueError`` as :meth:`block_writes`."""
        if self._queued:
            at: int | None = self._queued[-1].height
        else:
            best = self.best()
            at = best[0] if best is not None else None
        if at is None or at + 1 != height or len(self._queued) >= MAX_QUEUED_BLOCKS:
            return False
        entries = self._entries(height, block, txids, block_hash)
        self._unwritten.update(entries)
        self._queued.append(_Queued(height, block_hash, entries))
        return True

    def write_queued(self) -> int:
        """Writes the next at most ``chunk`` entries of the pass under way in one store
        transaction, starting a pass over every block queued if none is (their entries merged
        and sorted), with the best block if they are its last; returns how many it wrote (0:
        nothing was queued). Queued blocks the chain no longer holds (rolled back) are dropped
        unwritten when a pass starts; the best block is the last of the pass the chain still
        holds when it ends. Store errors propagate (the entries stay queued)."""
        current = self._pass
        if current is None:
            while (
                self._queued
                and self._store.block_hash(self._queued[-1].height) != self._queued[-1].block_hash
            ):
                self._drop(self._queued.pop())
            if not self._queued:
                return 0
            queued = list(self._queued)
            merged = heapq.merge(*(q.entries for q in queued))
            current = self._pass = _Pass(len(queued), sum(len(q.entries) for q in queued), merged)
        writes: list[tuple[bytes, bytes, bytes | None]] = [
            (TXINDEX_DB, k, v) for k, v in itertools.islice(current.merged, self._chunk)
        ]
        count = len(writes)
        last = current.written + count == current.total
        if last:
            done = [self._queued[i] for i in range(current.blocks)]
            held = [q for q in done if self._store.block_hash(q.height) == q.block_hash]
            if held:
                writes.append((TXINDEX_DB, _BEST, _BEST_FORMAT.pack(held[-1].height, held[-1].block_hash)))
        try:
            self._store.write(writes)
        except BaseException:
            self._pass = None  # the merge has moved past the chunk: the next pass starts over
            raise
        current.written += count
        if last:
            for _ in range(current.blocks):
                self._drop(self._queued.popleft())
            self._pass = None
        return count

    def flush(self) -> None:
        """Writes everything queued now (at a stop, before a catch-up)."""
        while self.write_queued():
            pass

    async def run(self) -> None:
        """Every :attr:`interval` seconds, writes every block queued a chunk at a time, yielding
        the loop after each (paced: :func:`~timecoin.store.chunked.write_every`), until cancelled
        (what is left stays queued: :meth:`flush` or the next start's :meth:`catch_up`). A store
        error is logged and empties the queue: the index then lags, and the next block that
        cannot be queued catches it up."""
        await write_every(
            self.interval,
            lambda: bool(self._queued),
            lambda: self._pass is not None,
            self.write_queued,
            self._failed,
        )

    def _failed(self) -> None:
        log.exception("transaction index: writing failed; it will catch up")
        self._queued.clear()
        self._unwritten.clear()
        self._pass = None

    def _drop(self, done: _Queued) -> None:
        unwritten = self._unwritten
        for txid, entry in done.entries:
            if unwritten.get(txid) is entry:
                del unwritten[txid]

    def best(self) -> tuple[int, bytes] | None:
        """(height, block hash) of the last block indexed, or ``None`` if none is."""
        raw = self._store.get(TXINDEX_DB, _BEST)
        if raw is None:
            return None
        height, block_hash = _BEST_FORMAT.unpack(raw)
        return height, block_hash

    @staticmethod
    def block_writes(
        height: int, block_hash: bytes, block: bytes, txids: Sequence[bytes]
    ) -> list[tuple[bytes, bytes, bytes | None]]:
        """The store writes that index the transactions ``txids`` (block order) of the encoded
        ``block`` at ``height`` and make it the best block: for the block's own store
        transaction (``ChainState.connect_block``'s ``extra``) when the index is at its parent,
        or for :meth:`index_block`. ``ValueError`` if the block's transaction count is not
        ``len(txids)``."""
        writes: list[tuple[bytes, bytes, bytes | None]] = [
            (TXINDEX_DB, txid, entry) for txid, entry in TxIndex._entries(height, block, txids, block_hash)
        ]
        writes.append((TXINDEX_DB, _BEST, _BEST_FORMAT.pack(height, block_hash)))
        return writes

    @staticmethod
    def _entries(
        height: int, block: bytes, txids: Sequence[bytes], block_hash: bytes
    ) -> list[tuple[bytes, bytes]]:
        """(txid, entry) of each transaction of ``block``, sorted by txid: native, 1.7 times as
        fast as packing and sorting them in Python (``benches/bench_txindex.py``, group
        ``txindex-entries``), on every node at every block. ``ValueError`` naming the block if
        ``txids`` do not fit it."""
        try:
            return timecoin_native.index_entries(block, list(txids), height)
        except ValueError as e:
            raise ValueError(f"block {block_hash.hex()}: {e}") from None

    def index_block(self, height: int, block_hash: bytes, block: bytes, txids: Sequence[bytes]) -> None:
        """Indexes a committed block (:meth:`block_writes`) in a store transaction of its own."""
        self._store.write(self.block_writes(height, block_hash, block, txids))

    def reindex_block(self, height: int, block: bytes) -> None:
        """Writes the entries of the transactions of the committed ``block`` at ``height`` again,
        leaving the best block as it is: a repaired block whose transactions a damaged read left
        out (:meth:`catch_up`). ``ValueError`` if ``block`` does not split into transactions."""
        txids = timecoin_native.txids([block[o : o + n] for o, n in transaction_spans(block)])
        entries = timecoin_native.index_entries(block, txids, height)
        self._store.write([(TXINDEX_DB, txid, entry) for txid, entry in entries])

    def contains(self, txid: bytes) -> bool:
        """Whether ``txid`` has an entry: one key read, without the re-hash of :meth:`lookup`
        (for the P2P "do we have it" check on every announced txid)."""
        return len(txid) == 32 and (txid in self._unwritten or self._store.get(TXINDEX_DB, txid) is not None)

    def locate(self, txid: bytes) -> TxLocation | None:
        """Where ``txid`` is in the chain, or ``None`` if no committed block holds it."""
        found = self.lookup(txid)
        return found[0] if found is not None else None

    def lookup(self, txid: bytes) -> tuple[TxLocation, bytes, bytes] | None:
        """(location, block hash, encoded transaction) of ``txid`` in the committed chain, or
        ``None``. The bytes found are re-hashed and must be ``txid``."""
        raw = self._unwritten.get(txid) or self._store.get(TXINDEX_DB, txid)
        if raw is None or len(raw) != _ENTRY.size:
            return None
        loc = TxLocation(*_ENTRY.unpack(raw))
        block_hash = self._store.block_hash(loc.height)
        tx = self._store.block_part(block_hash, loc.offset, loc.length) if block_hash is not None else None
        if tx is None:
            return None
        try:
            if timecoin_native.txid(tx) != txid:
                return None
        except ValueError:
            return None
        assert block_hash is not None
        return loc, block_hash, tx

    def catch_up(self, reorg_max_depth: int) -> int:
        """Indexes every committed block above the best indexed one (after a crash, or on a store
        that had no index); returns how many blocks it indexed. A block the store finds damaged
        is skipped (logged); a missing one is a ``ValueError``. If the best indexed block is no
        longer in the chain (a rollback the index did not see), it re-indexes from
        ``reorg_max_depth`` blocks below it, deeper than any rollback can go. What is queued is
        written first (:meth:`flush`)."""
        self.flush()
        tip = self._store.tip()
        if tip is None:
            return 0
        best = self.best()
        if best is None:
            start = 0
        elif self._store.block_hash(best[0]) == best[1]:
            start = best[0] + 1
        else:
            start = max(0, min(best[0], tip.height) - reorg_max_depth)
        done = 0
        for height in range(start, tip.height + 1):
            block_hash = self._store.block_hash(height)
            block = self._store.block(block_hash) if block_hash is not None else None
            if block_hash is not None and block is None and self._store.block_damage(block_hash):
                # Damaged on disk (logged and counted by the store): its transactions stay out of
                # the index rather than stopping it, or the node, for good.
                log.error("transactions of damaged block %d are not indexed", height)
                continue
            if block_hash is None or block is None:
                raise ValueError(f"block {height} is missing from the store; cannot index it")
            spans = transaction_spans(block)
            txids = timecoin_native.txids([block[o : o + n] for o, n in spans])
            self.index_block(height, block_hash, block, txids)
            done += 1
        return done
