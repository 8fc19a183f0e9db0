"""``ChainStore.repair_block`` (DESIGN §13 "Storage integrity") on a real LMDB in a temp dir
holding a real devnet chain, damaged the way a disk damages it (bytes flipped in ``data.mdb``, a
digest record deleted or overwritten through LMDB): a damaged block is replaced only by bytes
that hash to the digest stored with it, in one transaction that survives a reopen; a wrong
encoding (another witness, another block) is refused and changes nothing; a block without a
usable digest is refused even with the right bytes, with the operator's fix; every damaged read
reaches the damage listener (how the node queues the repair), and a failing listener never
fails the read.
"""

from __future__ import annotations

from pathlib import Path

import lmdb
import pytest

from timecoin.core.types import HEADER_LEN, BlockHeader
from timecoin.ledger.chain import ChainState
from timecoin.ledger.genesis import build_genesis
from timecoin.node import CHAIN_DIR
from timecoin.store.chainstore import DATA_FILE, ChainStore, RepairMismatch, RepairRefused
from timecoin.testing.chaingen import Wallet, devnet_genesis, grow_chain

BLOCKS, TXS = 5, 3
DAMAGED = 3
COINBASE_VALUE_AT = HEADER_LEN + 4 + 4 + 1 + 4 + 4
"""Offset of the coinbase's first output value (docs/encoding.md): a byte the merkle root covers."""


@pytest.fixture
def chain(tmp_path) -> tuple[Path, list[bytes]]:
    """The ``chain/`` environment of a devnet chain of BLOCKS blocks; the encoded blocks by height."""
    config, accounts, _ = devnet_genesis()
    genesis = build_genesis(config)
    state = ChainState.open(tmp_path / CHAIN_DIR, config.params, genesis)
    try:
        raws = [genesis.encoded, *grow_chain(state, Wallet.from_genesis(state, accounts), BLOCKS, TXS)]
    finally:
        state.close()
    return tmp_path / CHAIN_DIR, raws


def block_hash(raw: bytes) -> bytes:
    return BlockHeader.decode(raw[:HEADER_LEN]).hash


def flipped(raw: bytes, offset: int) -> bytes:
    at = offset % len(raw)
    return raw[:at] + bytes([raw[at] ^ 1]) + raw[at + 1 :]


def flip_in_file(env_dir: Path, raw: bytes, offset: int) -> None:
    """Flips bit 0 of byte ``offset`` of every copy of ``raw`` in ``data.mdb``, as a disk would."""
    path = env_dir / DATA_FILE
    data = bytearray(path.read_bytes())
    at = data.find(raw)
    assert at >= 0, "block bytes not found in data.mdb"
    while at >= 0:
        data[at + offset % len(raw)] ^= 1
        at = data.find(raw, at + 1)
    path.write_bytes(bytes(data))


def set_digest(env_dir: Path, key: bytes, value: bytes | None) -> None:
    """Writes (or deletes, for ``None``) the digest record of block ``key`` through LMDB itself."""
    env = lmdb.open(str(env_dir), max_dbs=16)
    try:
        with env.begin(write=True, db=env.open_db(b"digests")) as txn:
            if value is None:
                txn.delete(key)
            else:
                txn.put(key, value)
    finally:
        env.close()


def test_repair_refuses_a_wrong_encoding_and_accepts_the_right_one(chain):
    env_dir, raws = chain
    raw = raws[DAMAGED]
    key = block_hash(raw)
    flip_in_file(env_dir, raw, -1)  # a witness byte: only the digest sees it
    store = ChainStore.open(env_dir)
    try:
        assert store.block(key) is None
        assert store.damaged_block_hashes() == [key]
        # Another witness byte: the same txids, merkle root and block hash, but not the bytes
        # this node validated. Another block entirely. Bytes too short to be a block.
        for wrong, why in (
            (flipped(raw, -2), "digest"),
            (raws[DAMAGED - 1], "header"),
            (raw[:10], "shorter"),
        ):
            with pytest.raises(RepairMismatch, match=why):
                store.repair_block(key, wrong)
            assert store.block(key) is None
        assert store.blocks_repaired == 0
        assert store.repair_block(key, raw) is True
        assert store.block(key) == raw
        assert store.block_damage(key) is None and store.damaged_block_hashes() == []
        assert store.blocks_repaired == 1 and store.damaged_blocks_found == 1
        assert store.repair_block(key, raw) is False  # intact: nothing written, nothing counted
        assert store.blocks_repaired == 1
        # An intact block is never replaced, not even by another encoding of it.
        assert store.repair_block(key, flipped(raw, -2)) is False
        assert store.block(key) == raw
    finally:
        store.close()
    store = ChainStore.open(env_dir)
    try:
        assert store.block(key) == raw, "the repair did not reach the file"
    finally:
        store.close()


def test_repair_refused_without_a_usable_digest(chain):
    env_dir, raws = chain
    old, other = raws[DAMAGED], raws[DAMAGED + 1]
    # A block stored before digests were kept, then damaged where its merkle root sees it.
    set_digest(env_dir, block_hash(old), None)
    flip_in_file(env_dir, old, COINBASE_VALUE_AT)
    # An intact block whose digest record is damaged (32 other bytes).
    set_digest(env_dir, block_hash(other), bytes(32))
    store = ChainStore.open(env_dir)
    try:
        assert store.block(block_hash(old)) is None
        with pytest.raises(RepairRefused, match="before block digests were kept") as refused:
            store.repair_block(block_hash(old), old)
        assert "timecoin db check" in str(refused.value)
        assert store.block(block_hash(old)) is None

        assert store.block(block_hash(other)) is None  # it fails the (damaged) digest
        # The right bytes: byte for byte the stored copy, so the digest is what is damaged.
        with pytest.raises(RepairRefused, match="digest record is damaged"):
            store.repair_block(block_hash(other), other)
        with pytest.raises(RepairMismatch):
            store.repair_block(block_hash(other), flipped(other, -1))
        with pytest.raises(RepairRefused, match="not stored"):
            store.repair_block(bytes(32), other)
        assert store.blocks_repaired == 0
    finally:
        store.close()


def test_every_damaged_read_reaches_the_listener_which_cannot_fail_it(chain):
    env_dir, raws = chain
    raw = raws[DAMAGED]
    flip_in_file(env_dir, raw, COINBASE_VALUE_AT)
    store = ChainStore.open(env_dir)
    heard: list[bytes] = []

    def listener(key: bytes) -> None:
        heard.append(key)
        raise RuntimeError("the loop is gone")

    store.damage_listener = listener
    try:
        assert store.block(block_hash(raw)) is None
        assert store.block(block_hash(raw)) is None
        assert store.block(block_hash(raws[DAMAGED - 1])) == raws[DAMAGED - 1]
        assert heard == [block_hash(raw)] * 2
        assert store.damaged_blocks_found == 1
    finally:
        store.close()
