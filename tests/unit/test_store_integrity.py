"""Storage integrity (DESIGN §9, §12 invariant 11, §13 "Storage integrity") on a real LMDB in a
temp dir holding a real devnet chain: bytes flipped inside ``data.mdb`` itself (every copy of a
stored block in the file) make the block unreadable through ``ChainStore.block`` (logged once,
counted, never returned); a truncated, empty or foreign data file is a ``StoreDamaged`` error
naming the file and the fix (the truncated one in a subprocess: the old code died of SIGBUS);
``timecoin db check`` names the first damaged height and exits 1, or 0 for an intact store.
"""

from __future__ import annotations

import logging
import signal
import subprocess
import sys
from pathlib import Path

import lmdb
import pytest
import timecoin_native
from click.testing import CliRunner

from timecoin.cli.main import main as timecoin_cli
from timecoin.core.types import HEADER_LEN, BlockHeader
from timecoin.ledger.chain import ChainState
from timecoin.ledger.genesis import build_genesis
from timecoin.node import CHAIN_DIR
from timecoin.store.chainstore import DATA_FILE, ChainStore, StoreDamaged, StoreError
from timecoin.store.integrity import block_damage, check_store
from timecoin.testing.chaingen import Wallet, devnet_genesis, grow_chain
from timecoin.testing.node import truncate_data_file

BLOCKS, TXS = 6, 4
DAMAGED = 3
COINBASE_VALUE_AT = HEADER_LEN + 4 + 4 + 1 + 4 + 4
"""Offset of the coinbase's first output value in a block: header, tx count, then the coinbase's
version, kind, input count (0) and output count (docs/encoding.md)."""


@pytest.fixture
def chain_dir(tmp_path) -> tuple[Path, list[bytes]]:
    """A node data directory whose ``chain/`` holds a devnet chain of BLOCKS blocks; the encoded
    blocks by height (genesis first)."""
    config, accounts, _ = devnet_genesis()
    genesis = build_genesis(config)
    chain = ChainState.open(tmp_path / CHAIN_DIR, config.params, genesis)
    try:
        raws = [genesis.encoded, *grow_chain(chain, Wallet.from_genesis(chain, accounts), BLOCKS, TXS)]
    finally:
        chain.close()
    return tmp_path, raws


def block_hash(raw: bytes) -> bytes:
    return BlockHeader.decode(raw[:HEADER_LEN]).hash


def flip_in_file(env_dir: Path, raw: bytes, offset: int) -> int:
    """Flips bit 0 of byte ``offset`` of every copy of ``raw`` in ``data.mdb`` (the live value and
    any stale copy in a free page), as a disk would; the number of copies."""
    path = env_dir / DATA_FILE
    data = bytearray(path.read_bytes())
    copies, at = 0, data.find(raw)
    while at >= 0:
        data[at + offset] ^= 1
        copies += 1
        at = data.find(raw, at + 1)
    assert copies, "block bytes not found in data.mdb"
    path.write_bytes(bytes(data))
    return copies


def test_block_part_is_the_range_of_an_intact_block_checked_first(chain_dir):
    """A range of a stored block (a transaction read by its index entry) is served only once the
    whole block was found intact, like the block itself; outside the block it is None."""
    datadir, raws = chain_dir
    raw = raws[DAMAGED]
    store = ChainStore.open(datadir / CHAIN_DIR)
    try:
        assert store.block_part(block_hash(raw), HEADER_LEN, 40) == raw[HEADER_LEN : HEADER_LEN + 40]
        assert store.block_part(block_hash(raw), 0, len(raw)) == raw
        assert store.block_part(block_hash(raw), 1, len(raw)) is None
        assert store.block_part(block_hash(raw), -1, 2) is None
        assert store.block_part(bytes(32), 0, 1) is None
    finally:
        store.close()
    flip_in_file(datadir / CHAIN_DIR, raw, len(raw) - 1)  # a witness byte, outside the range read
    store = ChainStore.open(datadir / CHAIN_DIR)
    try:
        assert store.block_part(block_hash(raw), HEADER_LEN, 40) is None
        assert store.damaged_blocks_found == 1
    finally:
        store.close()


def test_intact_chain_reads_and_checks_clean(chain_dir):
    datadir, raws = chain_dir
    store = ChainStore.open(datadir / CHAIN_DIR)
    try:
        assert all(store.block(block_hash(raw)) == raw for raw in raws)
        assert store.damaged_blocks_found == 0
        report = check_store(store)
    finally:
        store.close()
    assert report.damage == [] and report.notes == []
    assert report.blocks == BLOCKS + 1 and report.utxos and report.utxos > 0


@pytest.mark.parametrize(
    "offset,reason",
    [
        (COINBASE_VALUE_AT, "merkle root"),  # an output value: the txid changes
        (HEADER_LEN - 1, "header hashes to"),  # the header's last byte (round)
        (-1, "digest"),  # a witness signature byte: outside every txid and the block hash
    ],
)
def test_flipped_byte_is_never_returned_and_is_logged_once_and_counted(chain_dir, caplog, offset, reason):
    datadir, raws = chain_dir
    raw = raws[DAMAGED]
    flip_in_file(datadir / CHAIN_DIR, raw, offset % len(raw))
    store = ChainStore.open(datadir / CHAIN_DIR)
    try:
        with caplog.at_level(logging.ERROR, logger="timecoin.store"):
            assert store.block(block_hash(raw)) is None
            assert store.block(block_hash(raw)) is None
        assert reason in (store.block_damage(block_hash(raw)) or "")
        assert store.damaged_blocks_found == 1
        errors = [r for r in caplog.records if r.levelno == logging.ERROR]
        assert len(errors) == 1 and block_hash(raw).hex() in errors[0].getMessage()
        assert "timecoin db check" in errors[0].getMessage()
        # Its neighbours are untouched, and the damaged bytes are not reachable another way:
        # not as a range (what the transaction index reads) either.
        assert store.block(block_hash(raws[DAMAGED - 1])) == raws[DAMAGED - 1]
        with pytest.raises(StoreError, match="ChainStore.block"):
            store.get(b"blocks", block_hash(raw))
        assert store.block_part(block_hash(raw), 0, HEADER_LEN) is None
        report = check_store(store)
    finally:
        store.close()
    assert report.first_damaged_height == DAMAGED
    assert [d.height for d in report.damage] == [DAMAGED] and reason in report.damage[0].what


def test_block_damage_checks_hash_merkle_root_and_digest(chain_dir):
    _, raws = chain_dir
    raw = raws[DAMAGED]
    assert block_damage(block_hash(raw), raw) is None
    assert "shorter than a header" in (block_damage(block_hash(raw), raw[:100]) or "")
    assert "do not decode" in (block_damage(block_hash(raw), raw[:-1]) or "")
    assert "hashes to" in (block_damage(bytes(32), raw) or "")
    assert "digest" in (block_damage(block_hash(raw), raw, bytes(32)) or "")


def test_check_store_finds_broken_links_missing_undo_and_a_wrong_utxo_set(chain_dir):
    datadir, raws = chain_dir
    env = lmdb.open(str(datadir / CHAIN_DIR), max_dbs=16)
    index, undo, utxo = env.open_db(b"index"), env.open_db(b"undo"), env.open_db(b"utxo")
    with env.begin(write=True) as txn:
        # Height 2 names block 4: intact, but at the wrong height, linked to block 3 (not 1), and
        # block 3 then links to block 2, not to what the index has at 2.
        txn.put((2).to_bytes(8, "big"), block_hash(raws[4]), db=index)
        txn.delete(block_hash(raws[5]), db=undo)
        outpoint = next(iter(txn.cursor(db=utxo).iternext(values=False)))
        txn.delete(outpoint, db=utxo)
    env.close()
    store = ChainStore.open(datadir / CHAIN_DIR, readonly=True)
    try:
        report = check_store(store)
    finally:
        store.close()
    found = {
        (d.height, w)
        for d in report.damage
        for w in ("header height", "links to", "undo", "UTXO")
        if w in d.what
    }
    assert found == {
        (2, "header height"),
        (2, "links to"),
        (3, "links to"),
        (5, "undo"),
        (BLOCKS, "UTXO"),
    }, report.damage
    assert report.first_damaged_height == 2


def test_truncated_data_file_is_a_clear_error_not_sigbus(chain_dir):
    datadir, _ = chain_dir
    data = truncate_data_file(datadir / CHAIN_DIR)
    script = (
        "import sys\nfrom pathlib import Path\n"
        "from timecoin.store.chainstore import ChainStore, StoreDamaged\n"
        "try:\n"
        "    s = ChainStore.open(Path(sys.argv[1]))\n"
        "    print(len(list(s.utxos())))\n"
        "except StoreDamaged as e:\n"
        "    print(e, file=sys.stderr); sys.exit(3)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script, str(datadir / CHAIN_DIR)], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode != -signal.SIGBUS, "the store died of SIGBUS"
    assert proc.returncode == 3, (proc.returncode, proc.stderr)
    line = proc.stderr.strip()
    assert "\n" not in line
    assert str(data) in line and "truncated" in line and "timecoin db check" in line and "remove" in line


def test_empty_or_foreign_data_file_refuses_to_open(tmp_path):
    env_dir = tmp_path / CHAIN_DIR
    env_dir.mkdir()
    (env_dir / DATA_FILE).write_bytes(b"")
    with pytest.raises(StoreDamaged, match="the file is empty"):
        ChainStore.open(env_dir)
    (env_dir / DATA_FILE).write_bytes(b"not an lmdb file" * 1024)
    with pytest.raises(StoreDamaged, match=r"data\.mdb is damaged: LMDB cannot open it"):
        ChainStore.open(env_dir)
    assert (env_dir / DATA_FILE).read_bytes() == b"not an lmdb file" * 1024  # nothing written


def test_db_check_command(chain_dir):
    datadir, raws = chain_dir
    runner = CliRunner()
    ok = runner.invoke(timecoin_cli, ["db", "check", "--network", "devnet", "--datadir", str(datadir)])
    assert ok.exit_code == 0, ok.output
    assert "intact" in ok.output and f"{BLOCKS + 1} blocks checked" in ok.output

    flip_in_file(datadir / CHAIN_DIR, raws[DAMAGED], COINBASE_VALUE_AT)
    bad = runner.invoke(timecoin_cli, ["db", "check", "--network", "devnet", "--datadir", str(datadir)])
    assert bad.exit_code == 1, bad.output
    assert f"first damaged height {DAMAGED}" in bad.output and "merkle root" in bad.output

    data = truncate_data_file(datadir / CHAIN_DIR)
    cut = runner.invoke(timecoin_cli, ["db", "check", "--network", "devnet", "--datadir", str(datadir)])
    assert cut.exit_code == 1, cut.output
    assert "LMDB structure" in cut.output and str(data) in cut.output


def test_db_check_refuses_while_the_node_holds_the_datadir(chain_dir):
    from timecoin.node import DataDirLock

    datadir, _ = chain_dir
    lock = DataDirLock(datadir)
    lock.acquire()
    try:
        result = CliRunner().invoke(
            timecoin_cli, ["db", "check", "--network", "devnet", "--datadir", str(datadir)]
        )
    finally:
        lock.release()
    assert result.exit_code == 1 and "needs the node stopped" in result.output


def test_txindex_catch_up_skips_a_damaged_block(chain_dir):
    from timecoin.store.txindex import TxIndex, transaction_spans

    datadir, raws = chain_dir
    flip_in_file(datadir / CHAIN_DIR, raws[DAMAGED], COINBASE_VALUE_AT)
    store = ChainStore.open(datadir / CHAIN_DIR)
    try:
        index = TxIndex(store)
        assert index.catch_up(reorg_max_depth=100) == BLOCKS  # genesis..tip, less the damaged one
        assert index.best() == (BLOCKS, block_hash(raws[BLOCKS]))
        o, n = transaction_spans(raws[DAMAGED])[1]
        assert index.lookup(timecoin_native.txid(raws[DAMAGED][o : o + n])) is None
        o, n = transaction_spans(raws[DAMAGED + 1])[1]
        found = index.lookup(timecoin_native.txid(raws[DAMAGED + 1][o : o + n]))
        assert found is not None and found[0].height == DAMAGED + 1
    finally:
        store.close()


def test_file_shorter_than_its_page_count_but_only_by_free_pages_opens(tmp_path, caplog):
    """LMDB counts pages it allocated and freed in one transaction without writing them, so a
    cleanly closed ``data.mdb`` can be shorter than its page count (seen in CI: a devnet node
    refused to start again as "truncated"). Such a file is extended and opens; nothing is lost."""
    store = ChainStore.open(tmp_path)
    store.write([(b"peers", b"kept", b"value")])
    store.write([(b"peers", b"kept-%05d" % i, b"k" * 1000) for i in range(6000)])  # ~6 MB in use
    store.close()
    # One transaction that fills pages and frees them again: LMDB counts them, never writes them.
    env = lmdb.open(str(tmp_path), max_dbs=32, sync=False)
    peers = env.open_db(b"peers", create=False)
    with env.begin(write=True, db=peers) as txn:
        keys = [bytes([i % 256, i // 256]) * 8 for i in range(1000)]
        for k in keys:
            txn.put(k, b"x" * 1000)
        for k in keys:
            txn.delete(k)
    need = (env.info()["last_pgno"] + 1) * env.stat()["psize"]
    env.close()
    data = tmp_path / "data.mdb"
    assert data.stat().st_size < need  # the situation itself, made here by LMDB
    with caplog.at_level(logging.INFO, logger="timecoin.store.chainstore"):
        store = ChainStore.open(tmp_path)
    try:
        assert store.get(b"peers", b"kept") == b"value"
        assert data.stat().st_size == need and "free pages it never wrote" in caplog.text
    finally:
        store.close()
