"""The LMDB chain store (DESIGN §9) on a real LMDB in a temp dir: one transaction per block,
rollback, schema and map growth. Blocks are real encodings (the store checks what it reads
against the block hash; tests/unit/test_store_integrity.py)."""

import struct

import lmdb
import pytest
import timecoin_native

from timecoin.core.types import HEADER_LEN
from timecoin.store import chainstore
from timecoin.store.chainstore import (
    DATA_FILE,
    INITIAL_MAP_SIZE,
    SCHEMA_VERSION,
    ChainStore,
    StoreError,
    Tip,
    coin_key,
)


def encoded_block(height, outputs=1):
    """(hash, encoding) of a block at ``height`` holding one transaction with ``outputs`` outputs
    (40 bytes each): real hashes, no ledger validity."""
    tx = (1, 0, (), tuple((i, bytes(32)) for i in range(outputs)), 0, b"", ())
    txid = timecoin_native.txid(timecoin_native.encode_transaction(tx))
    header = (
        1,
        height,
        bytes(32),
        timecoin_native.merkle_root([txid]),
        bytes(32),
        0,
        bytes(32),
        bytes(80),
        bytes(64),
        0,
    )
    raw = timecoin_native.encode_block((header, (tx,)))
    return timecoin_native.block_hash(raw[:HEADER_LEN]), raw


BLOCKS = [encoded_block(i) for i in range(3)]


def h(i):
    return BLOCKS[i][0]


def b(i):
    return BLOCKS[i][1]


def op(i):
    return bytes([i]) * 36


def coin(i, height=0):
    """A 49-byte coin (docs/encoding.md) of value ``i`` created at ``height``."""
    return struct.pack("<Q", i) + bytes(32) + struct.pack("<Q", height) + b"\x00"


def raw_keys(path):
    """The keys of the ``utxo`` database in LMDB's order, read beside the store."""
    env = lmdb.open(str(path), max_dbs=16, readonly=True, lock=False)
    try:
        with env.begin(db=env.open_db(b"utxo", create=False)) as txn:
            return [bytes(k) for k in txn.cursor().iternext(keys=True, values=False)]
    finally:
        env.close()


def test_genesis_commit_and_rollback(tmp_path):
    store = ChainStore.open(tmp_path)
    assert store.tip() is None
    store.write_genesis(2, h(0), b"genesis", [(op(1), coin(1)), (op(2), coin(2))])
    assert store.tip() == Tip(0, h(0)) and store.genesis_hash() == h(0) and store.network() == 2
    with pytest.raises(StoreError, match="already holds a chain"):
        store.write_genesis(2, h(0), b"genesis", [])
    with pytest.raises(StoreError, match="cannot commit height 2"):
        store.commit_block(2, h(2), b"b2", b"u2")
    assert store.coins_tip() == Tip(0, h(0))
    store.commit_block(1, h(1), b(1), b"undo1")
    assert store.tip() == Tip(1, h(1))
    assert store.block(h(1)) == b(1) and store.undo(h(1)) == b"undo1" and store.block_hash(1) == h(1)
    # The coins follow in transactions of their own; only the last chunk moves the coins tip.
    assert dict(store.utxos()) == {op(1): coin(1), op(2): coin(2)} and store.coins_tip() == Tip(0, h(0))
    store.write_coins([(coin_key(op(1), coin(1)), None)], None)
    assert store.coins_tip() == Tip(0, h(0))
    with pytest.raises(StoreError, match="cannot roll back"):
        store.commit_rollback(
            Tip(1, h(1)), h(0), [(coin_key(op(1), coin(1)), coin(1)), (coin_key(op(3), coin(3, 1)), None)]
        )
    with pytest.raises(StoreError, match="not committed"):
        store.write_coins([(coin_key(op(3), coin(3, 1)), coin(3, 1))], Tip(2, h(2)))
    store.write_coins([(coin_key(op(3), coin(3, 1)), coin(3, 1))], Tip(1, h(1)))
    assert dict(store.utxos()) == {op(2): coin(2), op(3): coin(3, 1)} and store.coins_tip() == Tip(1, h(1))
    store.commit_rollback(
        Tip(1, h(1)), h(0), [(coin_key(op(1), coin(1)), coin(1)), (coin_key(op(3), coin(3, 1)), None)]
    )
    assert store.tip() == Tip(0, h(0)) and store.block(h(1)) is None and store.block_hash(1) is None
    assert dict(store.utxos()) == {op(1): coin(1), op(2): coin(2)} and store.coins_tip() == Tip(0, h(0))
    with pytest.raises(StoreError, match="cannot roll back"):
        store.commit_rollback(Tip(0, h(0)), h(0), [])
    store.close()
    reopened = ChainStore.open(tmp_path)
    assert reopened.tip() == Tip(0, h(0)) and reopened.utxo_count() == 2
    reopened.close()


def test_other_schema_version_refuses_to_open(tmp_path):
    ChainStore.open(tmp_path).close()
    env = lmdb.open(str(tmp_path), max_dbs=16)
    with env.begin(write=True, db=env.open_db(b"meta")) as txn:
        txn.put(b"schema_version", struct.pack("<I", SCHEMA_VERSION + 1))
    env.close()
    with pytest.raises(StoreError, match="schema version"):
        ChainStore.open(tmp_path)


def test_coins_are_keyed_by_creation_height(tmp_path):
    """A newer block's coins sort after every older coin, whatever their outpoints, so a flush
    writes them into the last pages of the database."""
    store = ChainStore.open(tmp_path)
    store.write_genesis(2, h(0), b(0), [(op(9), coin(1))])
    store.commit_block(1, h(1), b(1), b"u1")
    store.commit_block(2, h(2), b(2), b"u2")
    store.write_coins(
        sorted([(coin_key(op(1), coin(2, 2)), coin(2, 2)), (coin_key(op(5), coin(3, 1)), coin(3, 1))]),
        Tip(2, h(2)),
    )
    store.close()
    keys = raw_keys(tmp_path)
    assert [k[:8] for k in keys] == [struct.pack(">Q", height) for height in (0, 1, 2)]
    assert [k[8:] for k in keys] == [op(9), op(5), op(1)]
    reopened = ChainStore.open(tmp_path)
    assert list(reopened.utxos()) == [(op(9), coin(1)), (op(5), coin(3, 1)), (op(1), coin(2, 2))]
    reopened.close()


def test_a_version_1_store_has_its_coins_rekeyed_at_open(tmp_path, monkeypatch):
    """Schema 1 keyed coins by outpoint. Read-only, it is read as it is; opened for writing, its
    coins are re-keyed a chunk per transaction and the version moves to 2. A coin of the wrong
    length stops the conversion with a named error."""
    store = ChainStore.open(tmp_path)
    store.write_genesis(2, h(0), b(0), [])
    store.close()
    coins = {op(i): coin(i, height=7 - i) for i in range(1, 6)}
    env = lmdb.open(str(tmp_path), max_dbs=16)
    meta, utxo = env.open_db(b"meta"), env.open_db(b"utxo")
    with env.begin(write=True) as txn:
        txn.put(b"schema_version", struct.pack("<I", 1), db=meta)
        for outpoint, c in coins.items():
            txn.put(outpoint, c, db=utxo)
    env.close()
    readonly = ChainStore.open(tmp_path, readonly=True)
    assert dict(readonly.utxos()) == coins
    readonly.close()
    assert raw_keys(tmp_path) == sorted(coins)

    monkeypatch.setattr(chainstore, "CONVERT_CHUNK", 2)
    store = ChainStore.open(tmp_path)
    assert dict(store.utxos()) == coins and store.utxo_count() == len(coins)
    store.close()
    assert raw_keys(tmp_path) == sorted(coin_key(o, c) for o, c in coins.items())
    env = lmdb.open(str(tmp_path), max_dbs=16)
    meta, utxo = env.open_db(b"meta"), env.open_db(b"utxo")
    with env.begin(write=True) as txn:
        assert txn.get(b"schema_version", db=meta) == struct.pack("<I", SCHEMA_VERSION) == b"\x02\x00\x00\x00"
        txn.put(b"schema_version", struct.pack("<I", 1), db=meta)
        txn.put(op(8), b"short", db=utxo)
    env.close()
    with pytest.raises(StoreError, match="is 5 bytes, not 49: the store is corrupt"):
        ChainStore.open(tmp_path)


def test_map_grows_when_full(tmp_path):
    store = ChainStore.open(tmp_path, map_size=1 << 20)
    store.write_genesis(2, h(0), b"g", [])
    big_hash, big = encoded_block(1, outputs=(4 << 20) // 40)
    store.commit_block(1, big_hash, big, b"u")
    assert store.block(big_hash) == big
    store.close()


def test_a_store_that_skips_fsync_holds_its_pages_not_its_map(tmp_path):
    """A devnet store (``unsafe_nosync``) writes without a writable map: its data file is as long
    as the pages it uses, not the map. Through a writable map LMDB extends the file to the whole
    map first, and where the mapped file counts as the process's memory the whole map counted:
    the RPC fuzz harness's node (80 MB here) measured 2.2 GB under CI and hit libFuzzer's limit."""
    store = ChainStore.open(tmp_path, unsafe_nosync=True)
    store.write_genesis(2, h(0), b(0), [(op(1), b"c1")])
    store.commit_block(1, h(1), b(1), b"u1")
    store.write_coins([(op(2), b"c2")], Tip(1, h(1)))
    used = store.size_bytes()
    store.close()
    size = (tmp_path / DATA_FILE).stat().st_size
    assert size <= 4 * used < INITIAL_MAP_SIZE // 64, (size, used)


def test_extra_writes_commit_with_the_block(tmp_path):
    store = ChainStore.open(tmp_path)
    store.write_genesis(2, h(0), b"g", [])
    store.commit_block(1, h(1), b"b1", b"u1", [(b"masternodes", b"k1", b"v1"), (b"finalized", b"t", b"x")])
    assert store.get(b"masternodes", b"k1") == b"v1"
    assert list(store.items(b"masternodes", b"k")) == [(b"k1", b"v1")]
    with pytest.raises(StoreError, match="may not touch"):
        store.commit_block(2, h(2), b"b2", b"u2", [(b"utxo", b"k", b"v")])
    assert store.tip() == Tip(1, h(1))
    store.write_coins([], Tip(1, h(1)))
    store.commit_rollback(Tip(1, h(1)), h(0), [], [(b"masternodes", b"k1", None)])
    assert store.get(b"masternodes", b"k1") is None and store.get(b"finalized", b"t") == b"x"
    store.write([(b"peers", b"p", b"1")])
    assert store.get(b"peers", b"p") == b"1"
    store.close()
