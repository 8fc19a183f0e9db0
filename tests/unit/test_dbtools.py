"""``timecoin db check|backup|rollback|reindex`` (DESIGN §9, §10; docs/operator.md) on a real
LMDB store in a temp dir holding a real devnet chain whose blocks carry real commit certificates
(signed by the genesis masternodes, :func:`timecoin.testing.chaingen.grow_chain`).

* ``check`` verifies every stored commit certificate against the masternode set of its height:
  a certificate of another block, or one signed by a stranger, is named by height (exit 1); an
  intact chain reports how many were verified, with a progress bar on stderr.
* ``backup`` writes a compacted copy that opens, holds the same chain and checks intact; it
  refuses a non-empty destination.
* ``rollback`` goes through ``ChainState.rollback_to`` (UTXO set, registry and store back at the
  height, certificates above it dropped, the store then checks intact), refuses past the reorg
  limit with nothing changed, and refuses while a node holds the data directory.
* ``reindex`` rebuilds a store whose UTXO set is corrupt (the node refuses to open it) into the
  same chain: UTXO set, registry and transaction index rebuilt, consensus records kept.
"""

from __future__ import annotations

import dataclasses
import logging
import struct
from pathlib import Path

import lmdb
import pytest
from click.testing import CliRunner

from timecoin.cli.main import main as timecoin_cli
from timecoin.config import NodeConfig
from timecoin.consensus.store import CONSENSUS_DB, commit_key
from timecoin.core.types import HEADER_LEN, BlockHeader
from timecoin.ledger.chain import ChainState
from timecoin.ledger.genesis import build_genesis
from timecoin.masternode.registry import MASTERNODE_DB
from timecoin.node import CHAIN_DIR, GENESIS_COPY, DataDirLock
from timecoin.params import DEVNET
from timecoin.store.chainstore import DATA_FILE, ChainStore, StoreError, coin_key
from timecoin.store.integrity import check_store
from timecoin.store.txindex import TxIndex
from timecoin.testing.chaingen import Wallet, commit_certificate, devnet_genesis, grow_chain, seed_key

BLOCKS, TXS = 6, 3
SIGNER_RECORD = (b"signer/last", struct.pack(">QIB", 5, 0, 3) + bytes(32))
"""A consensus record (signer safety state) that a reindex must keep byte for byte."""


@pytest.fixture
def datadir(tmp_path) -> Path:
    """A node data directory (``chain/`` and ``genesis.json``) with a certified devnet chain of
    BLOCKS blocks of TXS transfers, and one consensus signer record."""
    config, accounts, mn_keys = devnet_genesis()
    genesis = build_genesis(config)
    (tmp_path / GENESIS_COPY).write_bytes(config.to_json())
    chain = ChainState.open(tmp_path / CHAIN_DIR, config.params, genesis)
    try:
        TxIndex(chain.store).catch_up(DEVNET.reorg_max_depth)
        for _ in grow_chain(chain, Wallet.from_genesis(chain, accounts), BLOCKS, TXS, mn_keys):
            pass
        chain.store.write([(CONSENSUS_DB, *SIGNER_RECORD)])
    finally:
        chain.close()
    return tmp_path


def db(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(timecoin_cli, ["db", *args])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


def open_chain(datadir: Path) -> ChainState:
    config, _, _ = devnet_genesis()
    return ChainState.open(datadir / CHAIN_DIR, DEVNET, build_genesis(config))


def state(datadir: Path) -> tuple:
    """What a rebuild or rollback must get right: tip, UTXO set hash and size, registry."""
    chain = open_chain(datadir)
    try:
        return chain.tip, chain.utxos.set_hash(), len(chain.utxos), chain.registry.snapshot()
    finally:
        chain.close()


def put_raw(datadir: Path, db_name: bytes, key: bytes, value: bytes | None) -> None:
    """Writes one record straight into LMDB, around every check of the store (damage)."""
    env = lmdb.open(str(datadir / CHAIN_DIR), max_dbs=16)
    try:
        with env.begin(write=True, db=env.open_db(db_name)) as txn:
            if value is None:
                assert txn.delete(key)
            else:
                txn.put(key, value)
    finally:
        env.close()


# -- check ---------------------------------------------------------------------------------------


def test_check_verifies_every_commit_certificate_with_progress(datadir):
    code, out, err = db("check", "--network", "devnet", "--datadir", str(datadir))
    assert code == 0, err
    assert f"{BLOCKS} commit certificates verified" in out
    assert "certificates" in err and f"{BLOCKS}/{BLOCKS}" in err  # the progress bar's last state


def test_check_quiets_the_store_log_for_itself_only(datadir):
    """The report names every damaged block, so the check quiets the store's own log while it
    runs; the command also runs inside other processes (these tests), whose log it restores."""
    store_log = logging.getLogger("timecoin.store")
    before = store_log.level
    code, _, err = db("check", "--network", "devnet", "--datadir", str(datadir))
    assert code == 0, err
    assert store_log.level == before


@pytest.mark.parametrize("how", ["another block's", "a stranger's"])
def test_check_names_a_height_whose_certificate_does_not_verify(datadir, how):
    bad = 4
    config, _, mn_keys = devnet_genesis()
    genesis_hash = build_genesis(config).hash
    store = ChainStore.open(datadir / CHAIN_DIR)
    try:
        other = store.block_hash(bad - 1)
        target = store.block_hash(bad)
    finally:
        store.close()
    assert other is not None and target is not None
    if how == "another block's":
        cert = commit_certificate(genesis_hash, bad - 1, other, mn_keys)
    else:
        strangers = [seed_key(b"stranger", i) for i in range(4)]
        cert = commit_certificate(genesis_hash, bad, target, strangers)
    put_raw(datadir, CONSENSUS_DB, commit_key(bad), cert)
    code, out, err = db("check", "--network", "devnet", "--datadir", str(datadir))
    assert code == 1
    assert f"damaged: height {bad}: its commit certificate does not verify" in err
    assert f"first damaged height {bad}" in err and "resync" in err
    assert "intact" not in out


def test_check_reports_blocks_without_certificates_as_a_note(datadir):
    put_raw(datadir, CONSENSUS_DB, commit_key(2), None)
    code, out, err = db("check", "--network", "devnet", "--datadir", str(datadir))
    assert code == 0, err
    assert f"{BLOCKS - 1} commit certificates verified" in out
    assert "note: 1 blocks have no commit certificate stored" in err


# -- backup --------------------------------------------------------------------------------------


def test_backup_is_a_checked_copy_that_opens(datadir, tmp_path_factory):
    dest = tmp_path_factory.mktemp("backup") / "b1"
    code, out, err = db("backup", str(dest), "--network", "devnet", "--datadir", str(datadir))
    assert code == 0, err
    assert "checked intact" in out
    assert (dest / GENESIS_COPY).read_bytes() == (datadir / GENESIS_COPY).read_bytes()
    assert state(dest) == state(datadir)
    store = ChainStore.open(dest / CHAIN_DIR, readonly=True)
    try:
        report = check_store(store, DEVNET)
        assert store.get(CONSENSUS_DB, SIGNER_RECORD[0]) == SIGNER_RECORD[1]
    finally:
        store.close()
    assert report.damage == [] and report.certificates == BLOCKS
    # A second backup into the same place is refused, and the first is left alone.
    code, _, err = db("backup", str(dest), "--network", "devnet", "--datadir", str(datadir))
    assert code == 1 and "not an empty directory" in err
    assert state(dest) == state(datadir)


# -- rollback ------------------------------------------------------------------------------------


def test_rollback_goes_through_the_undo_records(datadir, tmp_path_factory):
    # The reference: a second copy of the same chain built only up to height 3.
    config, accounts, mn_keys = devnet_genesis()
    ref_dir = tmp_path_factory.mktemp("reference")
    ref = ChainState.open(ref_dir / CHAIN_DIR, DEVNET, build_genesis(config))
    try:
        for _ in grow_chain(ref, Wallet.from_genesis(ref, accounts), 3, TXS, mn_keys):
            pass
    finally:
        ref.close()
    code, out, err = db("rollback", "3", "--yes", "--network", "devnet", "--datadir", str(datadir))
    assert code == 0, err
    assert f"rolled back {BLOCKS - 3} blocks: tip 3" in out
    assert state(datadir) == state(ref_dir)
    store = ChainStore.open(datadir / CHAIN_DIR, readonly=True)
    try:
        assert [store.get(CONSENSUS_DB, commit_key(h)) is not None for h in range(1, BLOCKS + 1)] == [
            True,
            True,
            True,
            False,
            False,
            False,
        ]
        assert check_store(store, DEVNET).damage == []
    finally:
        store.close()


def test_rollback_past_the_reorg_limit_or_beside_a_node_changes_nothing(datadir, monkeypatch):
    before = state(datadir)
    lock = DataDirLock(datadir)
    lock.acquire()
    try:
        code, _, err = db("rollback", "4", "--yes", "--network", "devnet", "--datadir", str(datadir))
    finally:
        lock.release()
    assert code == 1 and "needs the node stopped" in err
    shallow = dataclasses.replace(DEVNET, reorg_max_depth=2)
    monkeypatch.setattr(NodeConfig, "params", property(lambda self: shallow))
    code, _, err = db("rollback", "3", "--yes", "--network", "devnet", "--datadir", str(datadir))
    assert code == 1 and "exceeds the limit of 2" in err
    assert state(datadir) == before


# -- reindex -------------------------------------------------------------------------------------


def test_reindex_rebuilds_a_corrupt_utxo_set_and_keeps_consensus_records(datadir):
    good = state(datadir)
    store = ChainStore.open(datadir / CHAIN_DIR, readonly=True)
    try:
        outpoint, coin = next(iter(store.utxos()))
        tip_block = store.block(good[0].block_hash)
    finally:
        store.close()
    assert tip_block is not None
    put_raw(datadir, b"utxo", coin_key(outpoint, coin), None)  # a coin lost on disk
    put_raw(datadir, b"txindex", b"best", None)  # and the transaction index with it
    put_raw(datadir, MASTERNODE_DB, b"undo/" + struct.pack(">Q", 2), b"junk")  # and a registry record
    with pytest.raises(StoreError, match="corrupt"):
        open_chain(datadir).close()

    code, out, err = db("reindex", "--network", "devnet", "--datadir", str(datadir))
    assert code == 0, err
    assert f"reindexed {BLOCKS} blocks ({BLOCKS} commit certificates verified" in out
    assert state(datadir) == good
    assert not (datadir / "chain.reindex").exists() and not (datadir / "chain.pre-reindex").exists()
    store = ChainStore.open(datadir / CHAIN_DIR, readonly=True)
    try:
        assert store.get(CONSENSUS_DB, SIGNER_RECORD[0]) == SIGNER_RECORD[1]
        index = TxIndex(store)
        assert index.best() == (good[0].height, good[0].block_hash)
        last_tx = BlockHeader.decode(tip_block[:HEADER_LEN])
        found = [index.locate(txid) for txid in _txids(tip_block)]
        assert all(loc is not None and loc.height == last_tx.height for loc in found)
        report = check_store(store, DEVNET)
    finally:
        store.close()
    assert report.damage == [] and report.certificates == BLOCKS
    assert (datadir / CHAIN_DIR / DATA_FILE).exists()


def _txids(block: bytes) -> list[bytes]:
    import timecoin_native

    _, _, txids = timecoin_native.split_block(block)
    return list(txids)


def test_rollback_above_the_tip_is_refused(datadir):
    before = state(datadir)
    code, _, err = db("rollback", str(BLOCKS + 1), "--yes", "--network", "devnet", "--datadir", str(datadir))
    assert code == 1 and f"above the tip {BLOCKS}" in err
    assert state(datadir) == before


def test_reindex_stops_below_a_damaged_block_and_says_so(datadir):
    damaged = 4
    store = ChainStore.open(datadir / CHAIN_DIR, readonly=True)
    try:
        raw = store.block(store.block_hash(damaged) or b"")
    finally:
        store.close()
    assert raw is not None
    path = datadir / CHAIN_DIR / DATA_FILE
    data = bytearray(path.read_bytes())
    at = data.find(raw)
    while at >= 0:  # every copy of the block in the file, as a disk would damage it
        data[at + HEADER_LEN + 40] ^= 1
        at = data.find(raw, at + 1)
    path.write_bytes(bytes(data))
    code, out, err = db("reindex", "--network", "devnet", "--datadir", str(datadir))
    assert code == 1
    assert f"reindexed {damaged - 1} blocks" in out
    assert f"stopped below the old tip {BLOCKS}: block {damaged} is damaged" in err
    assert state(datadir)[0].height == damaged - 1  # the node fetches the rest from its peers


def test_an_interrupted_reindex_is_undone_first(datadir):
    good = state(datadir)
    (datadir / CHAIN_DIR).rename(datadir / "chain.pre-reindex")  # stopped between the renames
    (datadir / "chain.reindex").mkdir()  # and a half-built store of an earlier try
    (datadir / "chain.reindex" / DATA_FILE).write_bytes(b"half")
    code, out, err = db("reindex", "--network", "devnet", "--datadir", str(datadir))
    assert code == 0, err
    assert state(datadir) == good
    assert sorted(p.name for p in datadir.iterdir() if p.name.startswith("chain")) == [CHAIN_DIR]
