"""The LMDB chain store (DESIGN §9).

One environment per datadir with named databases:

=============  =========================================================================
``meta``       schema version, network, genesis hash, tip (height, hash)
``blocks``     block hash → encoded block
``index``      height (u64 big-endian, so cursors walk in height order) → block hash
``undo``       block hash → undo record (docs/encoding.md, "Undo record")
``utxo``       outpoint (36 bytes) → coin (49 bytes)
``finalized``  txid → finalized transaction and its certificate (consensus issue)
``masternodes`` masternode registry state per height (masternode issue)
``peers``      address book and bans (P2P issue)
``txindex``    txid → block height and byte span (timecoin/store/txindex.py)
``consensus``  signer state, per-outpoint accept votes, commit certificates (timecoin/consensus/store.py)
=============  =========================================================================

**One write transaction per block**: the block, its index entry, its undo record, the UTXO
delta and the new tip commit together or not at all, so a crash at any instant leaves the last
committed block with exactly its UTXO set (the failpoints between the steps prove it). A full map
(``MapFullError``) doubles the map size and retries the whole transaction. Only a devnet may skip
fsync (``unsafe_nosync``).

This module stores bytes; it never decodes blocks or judges validity.
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import lmdb

from timecoin.testing import failpoints

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
"""Bumped on any change to the layout below; a store of another version refuses to open."""

INITIAL_MAP_SIZE = 1 << 30
"""Initial LMDB map size, bytes (1 GiB); it doubles whenever a write finds it full."""

DATABASES = (
    b"meta",
    b"blocks",
    b"index",
    b"undo",
    b"utxo",
    b"finalized",
    b"masternodes",
    b"peers",
    b"txindex",
    b"consensus",
)

_META_SCHEMA = b"schema_version"
_META_NETWORK = b"network"
_META_GENESIS = b"genesis"
_META_TIP = b"tip"

_T = TypeVar("_T")


class StoreError(Exception):
    """The store cannot be used as asked: wrong schema, network or genesis, or inconsistent."""


@dataclass(frozen=True, slots=True)
class Tip:
    """The last committed block."""

    height: int
    block_hash: bytes


UtxoDelta = list[tuple[bytes, bytes | None]]
"""(outpoint, coin to put) or (outpoint, None to delete), as ``UtxoSet.take_delta`` returns."""

ExtraWrites = Sequence[tuple[bytes, bytes, bytes | None]]
"""(database name, key, value to put or None to delete): state of other subsystems (the
masternode registry, finalized transactions) that must commit in the same transaction as the
block that changes it."""


def _height_key(height: int) -> bytes:
    return struct.pack(">Q", height)


class ChainStore:
    """Blocks, undo records, the UTXO set and the tip in one LMDB environment.

    Open with :meth:`open`. All writes happen on the caller's thread; one task owns the store.
    """

    def __init__(self, env: lmdb.Environment, dbs: dict[bytes, object]) -> None:
        self._env = env
        self._dbs = dbs

    @classmethod
    def open(cls, path: Path, *, unsafe_nosync: bool = False, map_size: int = INITIAL_MAP_SIZE) -> ChainStore:
        """Opens (creating if needed) the store in directory ``path``.

        Raises :class:`StoreError` if it holds another schema version.
        """
        path.mkdir(parents=True, exist_ok=True)
        env = lmdb.open(
            str(path),
            map_size=map_size,
            max_dbs=len(DATABASES),
            sync=not unsafe_nosync,
            metasync=not unsafe_nosync,
            readahead=False,
        )
        dbs = {name: env.open_db(name) for name in DATABASES}
        store = cls(env, dbs)
        with env.begin(write=True, db=dbs[b"meta"]) as txn:
            found = txn.get(_META_SCHEMA)
            if found is None:
                txn.put(_META_SCHEMA, struct.pack("<I", SCHEMA_VERSION))
            elif struct.unpack("<I", found)[0] != SCHEMA_VERSION:
                env.close()
                raise StoreError(
                    f"store at {path} has schema version {struct.unpack('<I', found)[0]}, "
                    f"this node reads {SCHEMA_VERSION}"
                )
        return store

    def close(self) -> None:
        """Closes the environment (flushes if sync is off)."""
        self._env.sync(True)
        self._env.close()

    # --- reads ----------------------------------------------------------------------------------

    def _get(self, db: bytes, key: bytes) -> bytes | None:
        with self._env.begin(db=self._dbs[db]) as txn:
            value = txn.get(key)
            return bytes(value) if value is not None else None

    def tip(self) -> Tip | None:
        """The last committed block, or ``None`` for an empty store."""
        raw = self._get(b"meta", _META_TIP)
        if raw is None:
            return None
        return Tip(struct.unpack("<Q", raw[:8])[0], raw[8:])

    def genesis_hash(self) -> bytes | None:
        """The hash of the genesis block this store was created with."""
        return self._get(b"meta", _META_GENESIS)

    def network(self) -> int | None:
        """The network id this store was created for."""
        raw = self._get(b"meta", _META_NETWORK)
        return raw[0] if raw is not None else None

    def block(self, block_hash: bytes) -> bytes | None:
        """The encoded block with this hash, if stored."""
        return self._get(b"blocks", block_hash)

    def block_hash(self, height: int) -> bytes | None:
        """The hash of the committed block at ``height``, if any."""
        return self._get(b"index", _height_key(height))

    def undo(self, block_hash: bytes) -> bytes | None:
        """The undo record of a committed block."""
        return self._get(b"undo", block_hash)

    def coin(self, outpoint: bytes) -> bytes | None:
        """The stored coin of ``outpoint`` (36 bytes), if unspent."""
        return self._get(b"utxo", outpoint)

    def utxos(self) -> Iterator[tuple[bytes, bytes]]:
        """Every (outpoint, coin) of the stored UTXO set, in key order, from one snapshot."""
        with self._env.begin(db=self._dbs[b"utxo"], buffers=False) as txn:
            yield from txn.cursor().iternext(keys=True, values=True)

    def utxo_count(self) -> int:
        """Number of stored UTXOs."""
        with self._env.begin(db=self._dbs[b"utxo"]) as txn:
            return int(txn.stat(self._dbs[b"utxo"])["entries"])

    def size_bytes(self) -> int:
        """Bytes of the map in use (pages × page size)."""
        info, stat = self._env.info(), self._env.stat()
        return int((info["last_pgno"] + 1) * stat["psize"])

    # --- writes ---------------------------------------------------------------------------------

    def _write(self, body: Callable[[lmdb.Transaction], _T]) -> _T:
        """Runs ``body`` in one write transaction; on a full map, doubles it and runs it again."""
        while True:
            try:
                with self._env.begin(write=True) as txn:
                    return body(txn)
            except lmdb.MapFullError:
                new_size = self._env.info()["map_size"] * 2
                log.info("LMDB map full; growing it to %d bytes", new_size)
                self._env.set_mapsize(new_size)

    def _put_delta(self, txn: lmdb.Transaction, delta: UtxoDelta) -> None:
        utxo = self._dbs[b"utxo"]
        for outpoint, coin in delta:
            if coin is None:
                txn.delete(outpoint, db=utxo)
            else:
                txn.put(outpoint, coin, db=utxo)

    def _put_extra(self, txn: lmdb.Transaction, extra: ExtraWrites) -> None:
        for db, key, value in extra:
            if db in (b"meta", b"blocks", b"index", b"undo", b"utxo") or db not in self._dbs:
                raise StoreError(f"extra writes may not touch database {db!r}")
            if value is None:
                txn.delete(key, db=self._dbs[db])
            else:
                txn.put(key, value, db=self._dbs[db])

    def get(self, db: bytes, key: bytes) -> bytes | None:
        """A value of one of the subsystem databases (``finalized``, ``masternodes``, ``peers``)."""
        return self._get(db, key)

    def items(self, db: bytes, prefix: bytes = b"") -> Iterator[tuple[bytes, bytes]]:
        """(key, value) pairs of a database whose keys start with ``prefix``, in key order."""
        with self._env.begin(db=self._dbs[db], buffers=False) as txn:
            cursor = txn.cursor()
            if not cursor.set_range(prefix):
                return
            for key, value in cursor:
                if not key.startswith(prefix):
                    return
                yield key, value

    def write(self, extra: ExtraWrites) -> None:
        """Writes subsystem state that belongs to no block (peers, bans), in one transaction."""
        self._write(lambda txn: self._put_extra(txn, extra))

    def _put_tip(self, txn: lmdb.Transaction, height: int, block_hash: bytes) -> None:
        txn.put(_META_TIP, struct.pack("<Q", height) + block_hash, db=self._dbs[b"meta"])

    def write_genesis(
        self, network: int, block_hash: bytes, block: bytes, utxos: list[tuple[bytes, bytes]]
    ) -> None:
        """Stores the genesis block (height 0), its coins and the network identity, in one
        transaction. Raises :class:`StoreError` if the store already has a chain."""
        if self.tip() is not None:
            raise StoreError("store already holds a chain; genesis can only start an empty one")

        def body(txn: lmdb.Transaction) -> None:
            meta = self._dbs[b"meta"]
            txn.put(_META_NETWORK, bytes([network]), db=meta)
            txn.put(_META_GENESIS, block_hash, db=meta)
            txn.put(block_hash, block, db=self._dbs[b"blocks"])
            txn.put(_height_key(0), block_hash, db=self._dbs[b"index"])
            self._put_delta(txn, list(utxos))
            self._put_tip(txn, 0, block_hash)

        self._write(body)

    def commit_block(
        self,
        height: int,
        block_hash: bytes,
        block: bytes,
        undo: bytes,
        delta: UtxoDelta,
        extra: ExtraWrites = (),
    ) -> None:
        """Commits a connected block: block, index entry, undo record, UTXO delta, the ``extra``
        subsystem writes and tip, in one write transaction (DESIGN §9). Raises
        :class:`StoreError` unless ``height`` is tip + 1."""
        tip = self.tip()
        if tip is None or height != tip.height + 1:
            raise StoreError(f"cannot commit height {height} on tip {tip}")

        def body(txn: lmdb.Transaction) -> None:
            txn.put(block_hash, block, db=self._dbs[b"blocks"])
            failpoints.hit("store.commit_block.after_block")
            txn.put(_height_key(height), block_hash, db=self._dbs[b"index"])
            txn.put(block_hash, undo, db=self._dbs[b"undo"])
            failpoints.hit("store.commit_block.after_undo")
            self._put_delta(txn, delta)
            self._put_extra(txn, extra)
            failpoints.hit("store.commit_block.after_utxo")
            self._put_tip(txn, height, block_hash)
            failpoints.hit("store.commit_block.before_commit")

        self._write(body)
        failpoints.hit("store.commit_block.after_commit")

    def commit_rollback(self, tip: Tip, prev_hash: bytes, delta: UtxoDelta, extra: ExtraWrites = ()) -> None:
        """Disconnects the tip block: removes its index entry, block and undo record, applies the
        UTXO delta that restores the previous block's set and the ``extra`` subsystem writes, and
        moves the tip back, in one write transaction."""
        current = self.tip()
        if current != tip or tip.height == 0:
            raise StoreError(f"cannot roll back {tip}: the tip is {current}")

        def body(txn: lmdb.Transaction) -> None:
            txn.delete(_height_key(tip.height), db=self._dbs[b"index"])
            txn.delete(tip.block_hash, db=self._dbs[b"blocks"])
            txn.delete(tip.block_hash, db=self._dbs[b"undo"])
            failpoints.hit("store.rollback.after_delete")
            self._put_delta(txn, delta)
            self._put_extra(txn, extra)
            self._put_tip(txn, tip.height - 1, prev_hash)

        self._write(body)
