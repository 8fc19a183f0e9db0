"""The LMDB chain store (DESIGN §9).

One environment per datadir with named databases:

=============  =========================================================================
``meta``       schema version, network, genesis hash, tip (height, hash), coins tip (below)
``blocks``     block hash → encoded block
``index``      height (u64 big-endian, so cursors walk in height order) → block hash
``undo``       block hash → undo record (docs/encoding.md, "Undo record")
``utxo``       coin key (:func:`coin_key`: creation height ‖ outpoint) → coin, as of the coins tip
``finalized``  txid → finalized transaction and its certificate (consensus issue)
``masternodes`` masternode registry state per height (masternode issue)
``peers``      address book and bans (P2P issue)
``txindex``    txid → block height and byte span (timecoin/store/txindex.py)
``consensus``  signer state, per-outpoint accept votes, commit certificates (timecoin/consensus/store.py)
``digests``    block hash → BLAKE3-256 of the block's whole encoding (integrity only, below)
=============  =========================================================================

**One write transaction per block**: the block, its index entry, its undo record and the new tip
commit together or not at all (the failpoints between the steps prove it). **The coins follow
behind** (:mod:`timecoin.store.coins`): :meth:`ChainStore.write_coins` writes the UTXO set's
delta in transactions of their own, the last of which moves the ``coins_tip`` marker; a start
replays the blocks after the marker from the blocks and their undo records. A store written
before the marker existed has its coins at its tip. A full map
(``MapFullError``) doubles the map size and retries the whole transaction. Only a devnet may skip
fsync (``unsafe_nosync``). No store writes through a writable map (LMDB's ``MDB_WRITEMAP``):
it extends the data file to the whole map, a full disk then kills the process with SIGBUS instead
of failing the write, and where the mapped file counts as the process's memory (a sandbox's
accounting, libFuzzer's RSS limit) the whole map counts: the RPC fuzz harness's node, 80 MB
without it, measured 2.2 GB with it in CI.

**Integrity** (DESIGN §9, §12 invariant 11, §13 "Storage integrity"): every block read through
:meth:`ChainStore.block` is checked against its own hashes and against the digest of its whole
encoding written with it (:func:`timecoin.store.integrity.block_damage`: the block hash and merkle
root leave the witnesses out, the digest does not); a block that fails is logged (once), counted
and answered as absent, so no caller can serve it. A block stored before digests were kept is
checked against its hashes alone. A damaged block is repaired only with
:meth:`ChainStore.repair_block`: bytes from a peer that hash to the digest stored with the block,
so they are exactly the bytes this node validated when it connected it (the P2P layer fetches
them, :mod:`timecoin.p2p.sync` "Repairing").

Before LMDB reads any page but its two meta pages, the data file's size is checked against the
last page the meta page names, so a truncated file is a :class:`StoreDamaged` error naming the
file and the fix, never a SIGBUS; every other LMDB failure is a :class:`StoreDamaged` too.

This module stores bytes and checks them against their hashes; it never judges validity.
"""

from __future__ import annotations

import logging
import os
import struct
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import lmdb

from timecoin import failpoints
from timecoin._args import HASH_LEN
from timecoin.core.types import COIN_LEN, OUTPOINT_LEN
from timecoin.store.integrity import block_damage, block_digest

log = logging.getLogger(__name__)

SCHEMA_VERSION = 2
"""Bumped on any change to the layout below; a store of another version refuses to open, except
a version-1 store (coins keyed by outpoint), whose coins :meth:`ChainStore.open` re-keys by
:func:`coin_key` (docs/operator.md, "Upgrades")."""

COIN_KEY_LEN = 8 + OUTPOINT_LEN
"""Bytes of a coin's key in the ``utxo`` database (:func:`coin_key`)."""
CONVERT_CHUNK = 100_000
"""Coins re-keyed per write transaction when a version-1 store is opened: a bounded transaction
(LMDB limits the pages one transaction may dirty), and a crash between two leaves the rest to
the next start."""

INITIAL_MAP_SIZE = 1 << 30
"""Initial LMDB map size, bytes (1 GiB); it doubles whenever a write finds it full."""

VERIFIED_BLOCKS = 4096
"""Hashes of blocks recently found intact that :meth:`ChainStore.block` serves again without
re-hashing (a bounded LRU): a block is checked on its first read by this process, and again once
it has left this cache. Re-hashing a whole block on every read made each ``gettransactionfinality``
of a big block's transactions cost milliseconds (the transaction index reads through here)."""

DATA_FILE = "data.mdb"
"""LMDB's data file inside the environment directory (``lock.mdb`` is the other, rebuilt)."""

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
    b"digests",
)

_CORE_DATABASES = (b"meta", b"blocks", b"index", b"undo", b"utxo", b"digests")
"""Written only by the block commits of this module (never as ``extra`` writes)."""

_META_SCHEMA = b"schema_version"
_META_NETWORK = b"network"
_META_GENESIS = b"genesis"
_META_TIP = b"tip"
_META_COINS_TIP = b"coins_tip"

_T = TypeVar("_T")


def coin_key(outpoint: bytes, coin: bytes) -> bytes:
    """The key of ``outpoint``'s coin in the ``utxo`` database: the coin's creation height (u64
    big-endian; the coin holds it little-endian at bytes 40..48) ‖ the 36-byte outpoint, as the
    native ``UtxoSet.take_delta`` keys its writes. Sorted so, the coins of a new block follow every
    older coin: a flush writes them into the last pages of the database, where keyed by outpoint
    they went into random pages all over it, a cost that grew with the set
    (``benches/bench_coins.py``, docs/benchmarks.md)."""
    return coin[47:39:-1] + outpoint


class StoreError(Exception):
    """The store cannot be used as asked: wrong schema, network or genesis, or inconsistent."""


class RepairRefused(StoreError):
    """A damaged block cannot be repaired here: it is not stored, or no usable digest was stored
    with it (stored before digests were kept, or the digest record itself is damaged), so no
    copy from a peer can be proven to be the bytes this node validated. The message names the fix
    (:func:`repair_hint`)."""


class RepairMismatch(ValueError):
    """Bytes offered to :meth:`ChainStore.repair_block` are not the stored block: they fail its
    hashes or the digest stored with it (the sender's fault: garbage, not another encoding, since
    the digest is of the one encoding this node validated)."""


class StoreDamaged(StoreError):
    """The store's files are damaged: a truncated or empty data file, or an LMDB error
    (``MDB_CORRUPTED``, ``MDB_PAGE_NOTFOUND``, ``MDB_INVALID``, an I/O error). The message is one
    line naming the data file and the fix (:func:`repair_hint`)."""


def repair_hint(path: Path) -> str:
    """What an operator does about a damaged store in environment directory ``path`` (the node's
    ``<datadir>/chain``; docs/operator.md "Storage integrity")."""
    return (
        f"run `timecoin db check --datadir {path.parent}` to see what is damaged, or resync: stop "
        f"the node, remove {path} and start it again (it fetches the chain from its peers)"
    )


def _damaged(path: Path, what: str) -> StoreDamaged:
    return StoreDamaged(f"chain store {path / DATA_FILE} is damaged: {what}; {repair_hint(path)}")


FREE_TAIL_TOLERANCE = 4 * 1024 * 1024
"""Bytes a cleanly closed ``data.mdb`` may lack at its end (:func:`_check_data_file`), at most
:data:`FREE_TAIL_SHARE` of the pages counted."""
FREE_TAIL_SHARE = 8
"""... that is, at most one eighth of them."""


def _check_data_file(env: lmdb.Environment, path: Path) -> None:
    """Makes ``data.mdb`` as long as the pages its newest meta page counts, or raises
    :class:`StoreDamaged` if it was truncated. LMDB trusts that count and maps the file, so
    reading a page past the end of the file would kill the process with SIGBUS.

    A file shorter than that count is not always damaged: LMDB counts pages it allocated and
    freed again in one transaction without ever writing them, so after a clean stop the last
    pages of the count can lie past the end of the file (seen in CI: 39 of 649 pages, and the
    whole store read back intact). A shortfall of at most :data:`FREE_TAIL_TOLERANCE` bytes and
    one :data:`FREE_TAIL_SHARE`-th of the file is taken for such free pages: the file is extended
    with zero pages (what LMDB itself does when it reuses them). A larger one is truncation.
    Free pages cannot be told from lost ones without reading LMDB's free list, so a truncation
    within that tolerance is not caught here; LMDB then fails on the page it reads."""
    need = (int(env.info()["last_pgno"]) + 1) * int(env.stat()["psize"])
    data = path / DATA_FILE
    size = data.stat().st_size
    if size >= need:
        return
    missing = need - size
    if missing > FREE_TAIL_TOLERANCE or missing * FREE_TAIL_SHARE > need:
        raise _damaged(path, f"the file is truncated: {size} bytes, but its pages in use end at byte {need}")
    try:
        os.truncate(data, need)
    except OSError as e:
        raise _damaged(
            path, f"it is {missing} bytes shorter than its pages and cannot be extended ({e})"
        ) from None
    log.info(
        "%s was %d bytes, %d short of the pages LMDB counts: free pages it never wrote; extended",
        data,
        size,
        missing,
    )


@dataclass(frozen=True, slots=True)
class Tip:
    """The last committed block."""

    height: int
    block_hash: bytes


UtxoDelta = list[tuple[bytes, bytes | None]]
"""(coin key, coin to put) or (coin key, None to delete), keyed by :func:`coin_key`, as
``UtxoSet.take_delta`` returns."""

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

    def __init__(
        self, env: lmdb.Environment, dbs: dict[bytes, lmdb._Database], path: Path, readonly: bool = False
    ) -> None:
        self._env = env
        self._dbs = dbs
        self._readonly = readonly
        self.path = path
        """The environment directory."""
        self._damaged: dict[bytes, str] = {}
        self._verified: OrderedDict[bytes, None] = OrderedDict()
        self.damaged_blocks_found = 0
        """Stored blocks found failing their hashes since open, each counted once (a metric)."""
        self.blocks_repaired = 0
        """Damaged blocks replaced by :meth:`repair_block` since open (a metric)."""
        self.damage_listener: Callable[[bytes], None] | None = None
        """Called with the block hash every time a read finds a stored block damaged, on the
        reading thread (a worker thread too), after the block is logged and counted: the node
        queues the block's repair from peers. An exception it raises is logged, never the
        reader's."""

    @classmethod
    def open(
        cls,
        path: Path,
        *,
        unsafe_nosync: bool = False,
        map_size: int = INITIAL_MAP_SIZE,
        readonly: bool = False,
    ) -> ChainStore:
        """Opens (creating if needed, unless ``readonly``) the store in directory ``path``.
        ``readonly`` writes nothing (``timecoin db check``, beside a running node); a database the
        store does not hold yet is then absent.

        Raises :class:`StoreDamaged` (one line naming the file and the fix) if ``data.mdb`` is
        empty, truncated or not an LMDB file, or LMDB fails; :class:`StoreError` if the store
        holds another schema version, or ``readonly`` finds no store.
        """
        data = path / DATA_FILE
        try:
            size = data.stat().st_size
        except FileNotFoundError:
            size = None
        except OSError as e:
            raise _damaged(path, f"cannot read it ({e.strerror})") from None
        if size is None and readonly:
            raise StoreError(f"no chain store at {path} (no {DATA_FILE})")
        if size == 0:
            # LMDB would start a new environment in it: a chain (and a masternode's signer state)
            # silently gone. It writes its meta pages when it creates the file, so only damage
            # leaves it empty.
            raise _damaged(path, "the file is empty")
        if not readonly:
            path.mkdir(parents=True, exist_ok=True)

        try:
            env = lmdb.open(
                str(path),
                map_size=map_size,
                max_dbs=len(DATABASES),
                sync=not unsafe_nosync,
                metasync=not unsafe_nosync,
                readahead=False,
                readonly=readonly,
                create=not readonly,
            )
        except lmdb.Error as e:
            raise _damaged(path, f"LMDB cannot open it ({_lmdb_reason(e)})") from None
        try:
            _check_data_file(env, path)
            if readonly:
                dbs: dict[bytes, lmdb._Database] = {}
                for name in DATABASES:
                    try:
                        dbs[name] = env.open_db(name, create=False)
                    except lmdb.NotFoundError:
                        pass
            else:
                dbs = {name: env.open_db(name) for name in DATABASES}
            if b"meta" not in dbs:
                raise StoreError(f"no chain store at {path} (no meta database)")
            store = cls(env, dbs, path, readonly)
            with env.begin(db=dbs[b"meta"]) as txn:
                found = txn.get(_META_SCHEMA)
                version = None if found is None else struct.unpack("<I", found)[0]
            if version not in (None, 1, SCHEMA_VERSION):
                raise StoreError(
                    f"store at {path} has schema version {version}, this node reads {SCHEMA_VERSION}"
                )
            if version != SCHEMA_VERSION and not readonly:
                if version == 1:
                    store._rekey_coins()
                schema = struct.pack("<I", SCHEMA_VERSION)
                store._write(lambda txn: txn.put(_META_SCHEMA, schema, db=dbs[b"meta"]))
        except lmdb.Error as e:
            env.close()
            raise _damaged(path, f"LMDB failed opening its databases ({_lmdb_reason(e)})") from None
        except BaseException:
            env.close()
            raise
        return store

    def close(self) -> None:
        """Closes the environment (flushes if sync is off)."""
        if not self._readonly:
            self._env.sync(True)
        self._env.close()

    # --- reads ----------------------------------------------------------------------------------

    @contextmanager
    def _lmdb(self, what: str) -> Iterator[None]:
        """Turns an LMDB failure while doing ``what`` into :class:`StoreDamaged`."""
        try:
            yield
        except lmdb.MapFullError:
            raise
        except lmdb.Error as e:
            error = _damaged(self.path, f"LMDB failed {what} ({_lmdb_reason(e)})")
            log.error("%s", error)
            raise error from None

    def _get(self, db: bytes, key: bytes) -> bytes | None:
        with self._lmdb(f"reading {db.decode()}"), self._env.begin(db=self._dbs[db]) as txn:
            value = txn.get(key)
            return bytes(value) if value is not None else None

    def tip(self) -> Tip | None:
        """The last committed block, or ``None`` for an empty store."""
        return _tip(self._get(b"meta", _META_TIP))

    def coins_tip(self) -> Tip:
        """The block whose UTXO set the ``utxo`` database holds, with some of the writes of later
        blocks possibly landed (:mod:`timecoin.store.coins`); the tip in a store written before
        the marker was kept. ``StoreError`` for an empty store."""
        with self._lmdb("reading meta"), self._env.begin(db=self._dbs[b"meta"]) as txn:
            marker = _tip(txn.get(_META_COINS_TIP)) or _tip(txn.get(_META_TIP))
        if marker is None:
            raise StoreError("the store holds no chain")
        return marker

    def genesis_hash(self) -> bytes | None:
        """The hash of the genesis block this store was created with."""
        return self._get(b"meta", _META_GENESIS)

    def network(self) -> int | None:
        """The network id this store was created for."""
        raw = self._get(b"meta", _META_NETWORK)
        return raw[0] if raw is not None else None

    def block(self, block_hash: bytes) -> bytes | None:
        """The encoded block with this hash, if stored and intact: the stored bytes must hash to
        ``block_hash``, hold the transactions the header's merkle root commits and hash to the
        digest stored with them (:func:`~timecoin.store.integrity.block_damage`). A block that
        fails is answered ``None``, like an absent one, so no reader ever serves it; the first
        time, it is logged as an error and counted (:attr:`damaged_blocks_found`), and
        :meth:`block_damage` says what is wrong."""
        with self._lmdb("reading blocks"), self._env.begin() as txn:
            raw = txn.get(block_hash, db=self._dbs[b"blocks"])
            if raw is None:
                return None
            raw = bytes(raw)
            verified = self._verified
            if block_hash in verified:
                verified.move_to_end(block_hash)
                return raw
            digest = txn.get(block_hash, db=self._dbs[b"digests"]) if b"digests" in self._dbs else None
        damage = block_damage(block_hash, raw, bytes(digest) if digest is not None else None)
        if damage is None:
            verified[block_hash] = None
            if len(verified) > VERIFIED_BLOCKS:
                verified.popitem(last=False)
            return raw
        if block_hash not in self._damaged:
            self._damaged[block_hash] = damage
            self.damaged_blocks_found += 1
            log.error(
                "stored block %s is damaged (%s); it is not served; %s",
                block_hash.hex(),
                damage,
                repair_hint(self.path),
            )
        listener = self.damage_listener
        if listener is not None:
            try:
                listener(block_hash)
            except Exception:
                log.exception("the damage listener failed for block %s", block_hash.hex())
        return None

    def block_damage(self, block_hash: bytes) -> str | None:
        """Why the stored block ``block_hash`` failed its hashes when last read, or ``None`` if no
        read found it damaged (bounded: only stored blocks can be damaged)."""
        return self._damaged.get(block_hash)

    def damaged_block_hashes(self) -> list[bytes]:
        """The hashes of the stored blocks reads found damaged and no repair has replaced since
        (those found before a :attr:`damage_listener` was set, say)."""
        return list(self._damaged)

    def block_part(self, block_hash: bytes, offset: int, length: int) -> bytes | None:
        """``length`` bytes at ``offset`` of the encoded block ``block_hash``, if the block is
        stored and intact (checked as :meth:`block` checks it, once while it stays in the
        verified cache) and holds that range; else ``None``. Copies only the range: a
        transaction read by its index entry (``gettransactionfinality``, ``getrawtransaction``)
        copied its whole block before, ~1 MB per lookup in a block of 4,000 transfers."""
        if block_hash not in self._verified and self.block(block_hash) is None:
            return None
        with self._lmdb("reading blocks"), self._env.begin(buffers=True) as txn:
            raw = txn.get(block_hash, db=self._dbs[b"blocks"])
            if raw is None or offset < 0 or length < 0 or offset + length > len(raw):
                return None
            return bytes(raw[offset : offset + length])

    def block_hash(self, height: int) -> bytes | None:
        """The hash of the committed block at ``height``, if any."""
        return self._get(b"index", _height_key(height))

    def undo(self, block_hash: bytes) -> bytes | None:
        """The undo record of a committed block."""
        return self._get(b"undo", block_hash)

    def utxos(self) -> Iterator[tuple[bytes, bytes]]:
        """Every (outpoint, coin) of the stored UTXO set, in key order (:func:`coin_key`), from one
        snapshot. A version-1 store opened read-only holds outpoint keys: they come as they are."""
        with self._lmdb("reading utxo"), self._env.begin(db=self._dbs[b"utxo"], buffers=False) as txn:
            for key, coin in txn.cursor().iternext(keys=True, values=True):
                yield (key[8:] if len(key) == COIN_KEY_LEN else key), coin

    def utxo_count(self) -> int:
        """Number of stored UTXOs."""
        with self._lmdb("reading utxo"), self._env.begin(db=self._dbs[b"utxo"]) as txn:
            return int(txn.stat(self._dbs[b"utxo"])["entries"])

    def size_bytes(self) -> int:
        """Bytes of the map in use (pages × page size)."""
        info, stat = self._env.info(), self._env.stat()
        return int((info["last_pgno"] + 1) * stat["psize"])

    # --- writes ---------------------------------------------------------------------------------

    def _write(self, body: Callable[[lmdb.Transaction], _T]) -> _T:
        """Runs ``body`` in one write transaction; on a full map, doubles it and runs it again.
        Any other LMDB failure is :class:`StoreDamaged`."""
        while True:
            try:
                with self._lmdb("writing"), self._env.begin(write=True) as txn:
                    return body(txn)
            except lmdb.MapFullError:
                new_size = self._env.info()["map_size"] * 2
                log.info("LMDB map full; growing it to %d bytes", new_size)
                self._env.set_mapsize(new_size)

    def _rekey_coins(self) -> None:
        """Re-keys a version-1 store's coins (outpoint → coin) by :func:`coin_key`,
        :data:`CONVERT_CHUNK` coins per write transaction. Raises :class:`StoreError` on a coin
        that is not 49 bytes (the store is corrupt)."""
        utxo, start, converted = self._dbs[b"utxo"], b"", 0
        while True:
            found: list[tuple[bytes, bytes]] = []
            with self._lmdb("reading utxo"), self._env.begin(db=utxo, buffers=False) as txn:
                cursor = txn.cursor()
                if cursor.set_range(start) if start else cursor.first():
                    for key, coin in cursor.iternext(keys=True, values=True):
                        if len(key) == OUTPOINT_LEN:
                            if len(coin) != COIN_LEN:
                                raise StoreError(
                                    f"coin of outpoint {key.hex()} is {len(coin)} bytes, not {COIN_LEN}: "
                                    "the store is corrupt"
                                )
                            found.append((key, coin))
                            if len(found) == CONVERT_CHUNK:
                                break
            if not found:
                break

            def body(txn: lmdb.Transaction, found: list[tuple[bytes, bytes]] = found) -> None:
                for outpoint, _ in found:
                    txn.delete(outpoint, db=utxo)
                txn.cursor(db=utxo).putmulti(sorted((coin_key(o, c), c) for o, c in found))

            self._write(body)
            converted += len(found)
            start = found[-1][0]
        if converted:
            log.info("re-keyed %d stored coins by creation height (store schema 1 → 2)", converted)

    def _put_block(self, txn: lmdb.Transaction, block_hash: bytes, block: bytes) -> None:
        txn.put(block_hash, block, db=self._dbs[b"blocks"])
        txn.put(block_hash, block_digest(block), db=self._dbs[b"digests"])

    def _put_delta(self, txn: lmdb.Transaction, delta: UtxoDelta) -> None:
        # Each outpoint appears once, so the deletes and the puts (one ``putmulti``: the loop
        # runs in C, ~2.5x faster than ``put`` by ``put``) may go in either order.
        utxo = self._dbs[b"utxo"]
        puts = []
        for outpoint, coin in delta:
            if coin is None:
                txn.delete(outpoint, db=utxo)
            else:
                puts.append((outpoint, coin))
        txn.cursor(db=utxo).putmulti(puts)

    def _put_extra(self, txn: lmdb.Transaction, extra: ExtraWrites) -> None:
        # In order; each run of puts into one database goes in one ``putmulti``. A block's
        # extra writes are a few per transaction (its finalized record, its signer records, its
        # index entry), so the database names are checked once each, not once per write.
        handles: dict[bytes, lmdb._Database] = {}
        run: list[tuple[bytes, bytes]] = []
        run_handle: lmdb._Database | None = None
        delete = txn.delete
        for db, key, value in extra:
            handle = handles.get(db)
            if handle is None:
                if db in _CORE_DATABASES or db not in self._dbs:
                    raise StoreError(f"extra writes may not touch database {db!r}")
                handle = handles[db] = self._dbs[db]
            if value is None:
                if run:
                    txn.cursor(db=run_handle).putmulti(run)
                    run = []
                delete(key, db=handle)
                continue
            if run and handle is not run_handle:
                txn.cursor(db=run_handle).putmulti(run)
                run = []
            run.append((key, value))
            run_handle = handle
        if run:
            txn.cursor(db=run_handle).putmulti(run)

    def get(self, db: bytes, key: bytes) -> bytes | None:
        """A value of one of the subsystem databases (``finalized``, ``masternodes``, ``peers``).
        Blocks are read through :meth:`block` only (``StoreError`` here), so every read is checked."""
        if db == b"blocks":
            raise StoreError("blocks are read through ChainStore.block, which checks them")
        return self._get(db, key)

    def items(self, db: bytes, prefix: bytes = b"") -> Iterator[tuple[bytes, bytes]]:
        """(key, value) pairs of a database whose keys start with ``prefix``, in key order.
        Not for ``blocks`` (``StoreError``; see :meth:`get`)."""
        if db == b"blocks":
            raise StoreError("blocks are read through ChainStore.block, which checks them")
        with self._lmdb(f"reading {db.decode()}"), self._env.begin(db=self._dbs[db], buffers=False) as txn:
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

    def _put_tip(self, txn: lmdb.Transaction, height: int, block_hash: bytes, key: bytes = _META_TIP) -> None:
        txn.put(key, struct.pack("<Q", height) + block_hash, db=self._dbs[b"meta"])

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
            self._put_block(txn, block_hash, block)
            txn.put(_height_key(0), block_hash, db=self._dbs[b"index"])
            self._put_delta(txn, [(coin_key(outpoint, coin), coin) for outpoint, coin in utxos])
            self._put_tip(txn, 0, block_hash)
            self._put_tip(txn, 0, block_hash, _META_COINS_TIP)

        self._write(body)

    def commit_block(
        self,
        height: int,
        block_hash: bytes,
        block: bytes,
        undo: bytes,
        extra: ExtraWrites = (),
    ) -> None:
        """Commits a connected block: block, index entry, undo record, the ``extra`` subsystem
        writes and tip, in one write transaction (DESIGN §9); its coins follow with
        :meth:`write_coins`. Raises :class:`StoreError` unless ``height`` is tip + 1."""
        tip = self.tip()
        if tip is None or height != tip.height + 1:
            raise StoreError(f"cannot commit height {height} on tip {tip}")

        def body(txn: lmdb.Transaction) -> None:
            self._put_block(txn, block_hash, block)
            failpoints.hit("store.commit_block.after_block")
            txn.put(_height_key(height), block_hash, db=self._dbs[b"index"])
            txn.put(block_hash, undo, db=self._dbs[b"undo"])
            failpoints.hit("store.commit_block.after_undo")
            self._put_extra(txn, extra)
            failpoints.hit("store.commit_block.after_extra")
            self._put_tip(txn, height, block_hash)
            failpoints.hit("store.commit_block.before_commit")

        self._write(body)
        failpoints.hit("store.commit_block.after_commit")

    def write_coins(self, delta: UtxoDelta, marker: Tip | None) -> None:
        """Writes UTXO set changes (a chunk of ``UtxoSet.take_delta``) in one transaction and, if
        ``marker`` is given, moves the coins tip to it (:mod:`timecoin.store.coins`). Raises
        :class:`StoreError`, nothing written, if ``marker`` is not a committed block."""

        def body(txn: lmdb.Transaction) -> None:
            if marker is not None:
                stored = txn.get(_height_key(marker.height), db=self._dbs[b"index"])
                if stored is None or bytes(stored) != marker.block_hash:
                    raise StoreError(f"cannot move the coins to block {marker}: it is not committed")
            self._put_delta(txn, delta)
            if marker is not None:
                self._put_tip(txn, marker.height, marker.block_hash, _META_COINS_TIP)

        self._write(body)

    def repair_block(self, block_hash: bytes, raw: bytes) -> bool:
        """Replaces the stored block ``block_hash`` (32 bytes), if it is damaged, with ``raw`` (an
        encoded block a peer sent), in one write transaction, only if ``raw`` hashes to the digest
        stored with the block when this node connected it (:func:`~timecoin.store.integrity.
        block_digest`) and passes :func:`~timecoin.store.integrity.block_damage`: the bytes are
        then exactly those this node validated, witnesses included, which the block hash does not
        cover. The digest is read in the same transaction. Afterwards :meth:`block` serves the
        block again and :attr:`blocks_repaired` counts it.

        Returns ``True`` if it wrote ``raw``; ``False`` if the stored block is intact (nothing to
        repair: repaired already, say). Raises :class:`RepairMismatch` if ``raw`` is not the
        block, :class:`RepairRefused` if the block is not stored or has no usable digest (none was
        stored with it, or the digest record is damaged: ``raw`` is byte for byte the stored copy
        and passes the block's hashes but neither hashes to the digest), :class:`StoreDamaged` if
        LMDB fails."""

        def body(txn: lmdb.Transaction) -> bool:
            stored = txn.get(block_hash, db=self._dbs[b"blocks"])
            if stored is None:
                raise RepairRefused(f"block {block_hash.hex()} is not stored here; nothing to repair")
            stored = bytes(stored)
            found = txn.get(block_hash, db=self._dbs[b"digests"])
            digest = bytes(found) if found is not None else None
            if digest is None or len(digest) != HASH_LEN:
                what = (
                    "it was stored before block digests were kept"
                    if digest is None
                    else f"its digest record is damaged ({len(digest)} bytes, not {HASH_LEN})"
                )
                raise RepairRefused(
                    f"stored block {block_hash.hex()} cannot be repaired from a peer's copy: {what}, "
                    f"so no copy can be proven to be the bytes this node validated; {repair_hint(self.path)}"
                )
            if block_damage(block_hash, stored, digest) is None:
                return False
            damage = block_damage(block_hash, raw, digest)
            if damage is None:
                txn.put(block_hash, raw, db=self._dbs[b"blocks"])
                return True
            if raw == stored and block_damage(block_hash, raw) is None:
                raise RepairRefused(
                    f"stored block {block_hash.hex()} cannot be repaired: a peer's copy is byte for "
                    "byte the stored one and matches the block's hashes, but neither hashes to the "
                    f"digest stored with it, so the digest record is damaged; {repair_hint(self.path)}"
                )
            raise RepairMismatch(f"the bytes offered are not block {block_hash.hex()}: {damage}")

        if not self._write(body):
            self._damaged.pop(block_hash, None)
            return False
        self._damaged.pop(block_hash, None)
        self.blocks_repaired += 1
        return True

    def commit_rollback(self, tip: Tip, prev_hash: bytes, delta: UtxoDelta, extra: ExtraWrites = ()) -> None:
        """Disconnects the tip block: removes its index entry, block and undo record, applies the
        UTXO delta that restores the previous block's set and the ``extra`` subsystem writes, and
        moves the tip and the coins tip back, in one write transaction. The coins must be at the
        tip (flushed), else :class:`StoreError`."""
        current = self.tip()
        if current != tip or tip.height == 0:
            raise StoreError(f"cannot roll back {tip}: the tip is {current}")
        coins = self.coins_tip()
        if coins != tip:
            raise StoreError(f"cannot roll back {tip}: the stored coins are at {coins}; flush them first")

        def body(txn: lmdb.Transaction) -> None:
            txn.delete(_height_key(tip.height), db=self._dbs[b"index"])
            txn.delete(tip.block_hash, db=self._dbs[b"blocks"])
            txn.delete(tip.block_hash, db=self._dbs[b"digests"])
            self._verified.pop(tip.block_hash, None)
            txn.delete(tip.block_hash, db=self._dbs[b"undo"])
            failpoints.hit("store.rollback.after_delete")
            self._put_delta(txn, delta)
            self._put_extra(txn, extra)
            self._put_tip(txn, tip.height - 1, prev_hash)
            self._put_tip(txn, tip.height - 1, prev_hash, _META_COINS_TIP)

        self._write(body)


def _tip(raw: bytes | None) -> Tip | None:
    """A stored (height u64 ‖ block hash) marker."""
    if raw is None:
        return None
    raw = bytes(raw)
    return Tip(struct.unpack("<Q", raw[:8])[0], raw[8:])


def _lmdb_reason(error: lmdb.Error) -> str:
    """LMDB's own words without the path py-lmdb prefixes them with."""
    text = str(error)
    name, sep, rest = text.partition(": ")
    return rest if sep and os.sep in name else text
