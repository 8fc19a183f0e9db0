"""ChainState (DESIGN §4, §9) on real LMDB with real signed blocks: connect and disconnect,
reward checks, double spends across blocks, rollback limits and the open-time checks."""

from __future__ import annotations

import dataclasses
import logging

import lmdb
import pytest

from timecoin.core.types import HEADER_LEN, Block, Transaction, TxOut
from timecoin.crypto import merkle_root
from timecoin.ledger.blockbuilder import assemble_block, assemble_raw
from timecoin.ledger.chain import ChainState, ValidationError
from timecoin.ledger.genesis import build_genesis
from timecoin.store.chainstore import StoreError
from timecoin.testing.chaingen import Wallet, devnet_genesis, grow_chain


@pytest.fixture
def setup(tmp_path):
    config, accounts, _ = devnet_genesis(accounts=8)
    genesis = build_genesis(config)
    chain = ChainState.open(tmp_path / "chain", config.params, genesis)
    yield chain, Wallet.from_genesis(chain, accounts), genesis, tmp_path
    chain.close()


def test_connect_disconnect_restores_the_set(setup):
    chain, wallet, _, _ = setup
    hashes = [chain.utxos.set_hash()]
    for _ in grow_chain(chain, wallet, 3, 4):
        hashes.append(chain.utxos.set_hash())
        assert chain.utxos.set_hash() == chain.tip_header.utxo_set_hash
    for height in (2, 1, 0):
        chain.disconnect_tip()
        assert chain.tip.height == height and chain.utxos.set_hash() == hashes[height]
    with pytest.raises(StoreError, match="genesis"):
        chain.disconnect_tip()


def test_wrong_coinbase_amount_is_rejected_and_changes_nothing(setup):
    chain, wallet, _, _ = setup
    good = assemble_block(chain, wallet.transfers(2, chain), chain.tip_header.timestamp + 2)
    coinbase = good.transactions[0]
    greedy = Transaction.coinbase(
        1, [TxOut(coinbase.outputs[0].value + 1, coinbase.outputs[0].pubkey_hash), *coinbase.outputs[1:]]
    )
    # Re-assemble around the greedy coinbase so that only the amount is wrong.
    txs = (greedy, *good.transactions[1:])
    header = dataclasses.replace(
        good.header, merkle_root=merkle_root([t.txid for t in txs]), utxo_set_hash=bytes(32)
    )
    applied = chain.utxos.apply_block(Block(header, txs).encode(), chain.rules, check_utxo_hash=False)
    set_hash = chain.utxos.set_hash()
    chain.utxos.rollback(applied.undo)
    bad = Block(dataclasses.replace(header, utxo_set_hash=set_hash), txs)
    before = chain.utxos.set_hash()
    with pytest.raises(ValidationError) as e:
        chain.connect_block(bad.encode())
    assert e.value.code == "bad-coinbase-amount"
    assert chain.utxos.set_hash() == before and chain.tip.height == 0
    chain.connect_block(good.encode())
    assert chain.tip.height == 1


def test_linkage_checks(setup):
    chain, wallet, _, _ = setup
    block = assemble_block(chain, wallet.transfers(1, chain), chain.tip_header.timestamp + 2)
    wrong_prev = Block(dataclasses.replace(block.header, prev_hash=b"\1" * 32), block.transactions)
    with pytest.raises(ValidationError, match="bad-prevblk"):
        chain.connect_block(wrong_prev.encode())
    wrong_height = Block(dataclasses.replace(block.header, height=5), block.transactions)
    with pytest.raises(ValidationError, match="bad-height"):
        chain.connect_block(wrong_height.encode())
    with pytest.raises(ValidationError, match="bad-encoding"):
        chain.connect_block(b"\0" * 10)
    assert chain.tip.height == 0


def test_double_spend_across_blocks(setup):
    chain, wallet, genesis, _ = setup
    spent = min(wallet.coins, key=lambda op: (op.txid, op.vout))
    value, key = wallet.coins[spent]
    first = Transaction.transfer([spent], [TxOut(value // 2, b"\1" * 32)]).signed_with([key], genesis.hash, 2)
    chain.connect_block(assemble_block(chain, [first], chain.tip_header.timestamp + 2).encode())
    again = Transaction.transfer([spent], [TxOut(value // 3, b"\2" * 32)]).signed_with([key], genesis.hash, 2)
    before = (chain.tip, chain.utxos.set_hash())
    with pytest.raises(ValidationError) as e:
        assemble_block(chain, [again], chain.tip_header.timestamp + 2)
    assert e.value.code == "missing-input"
    assert (chain.tip, chain.utxos.set_hash()) == before


def test_rollback_depth_limit_and_alert(setup, caplog):
    chain, wallet, _, _ = setup
    chain.params = dataclasses.replace(chain.params, reorg_alert_depth=2, reorg_max_depth=3)
    list(grow_chain(chain, wallet, 5, 1))
    with pytest.raises(ValueError, match="exceeds the limit of 3"):
        chain.rollback_to(1)
    assert chain.tip.height == 5
    with caplog.at_level(logging.WARNING):
        chain.rollback_to(2)
    assert chain.tip.height == 2 and chain.deep_rollbacks == 1 and "ALERT" in caplog.text


def test_reopen_checks_network_genesis_and_utxo_hash(setup):
    chain, wallet, genesis, tmp_path = setup
    list(grow_chain(chain, wallet, 2, 2))
    chain.close()
    other, _, _ = devnet_genesis(seed=b"another network")
    with pytest.raises(StoreError, match="belongs to network"):
        ChainState.open(tmp_path / "chain", other.params, build_genesis(other))
    # Corrupt one stored coin: the set no longer hashes to the tip's commitment.
    env = lmdb.open(str(tmp_path / "chain"), max_dbs=16)
    with env.begin(write=True, db=env.open_db(b"utxo")) as txn:
        key, value = next(iter(txn.cursor()))
        txn.put(key, bytes([value[0] ^ 1]) + value[1:])
    env.close()
    with pytest.raises(StoreError, match="store is corrupt"):
        ChainState.open(tmp_path / "chain", genesis.config.params, genesis)
    chain.close = lambda: None  # closed above; the fixture must not close it twice


def test_extra_writes_commit_with_the_block(setup):
    chain, wallet, _, _ = setup
    block = assemble_block(chain, wallet.transfers(1, chain), chain.tip_header.timestamp + 2)
    chain.connect_block(block.encode(), [(b"consensus", b"cert/1", b"certificate")])
    assert chain.store.get(b"consensus", b"cert/1") == b"certificate"
    bad = assemble_block(chain, wallet.transfers(1, chain), chain.tip_header.timestamp + 2)
    with pytest.raises(StoreError, match="may not touch"):
        chain.connect_block(bad.encode(), [(b"utxo", b"k", b"v")])
    assert chain.tip.height == 1 and chain.utxos.set_hash() == chain.tip_header.utxo_set_hash
    chain.connect_block(bad.encode())
    assert chain.tip.height == 2


def test_block_assembled_from_encodings_is_the_canonical_block(setup):
    """``assemble_raw`` concatenates the transactions' encodings (no decode, no re-encode): the
    bytes are the canonical encoding of the block (coinbase first, then by txid, merkle root
    and UTXO set hash in the header), it connects, and an invalid transaction is named by its
    index in the input."""
    chain, wallet, _, _ = setup
    txs = wallet.transfers(5, chain)
    pairs = [(tx.txid, tx.encode()) for tx in reversed(txs)]
    block_hash, raw = assemble_raw(chain, pairs, chain.tip_header.timestamp + 2)
    block = Block.decode(raw)
    assert block.encode() == raw and block.hash == block_hash
    assert [tx.txid for tx in block.transactions[1:]] == sorted(tx.txid for tx in txs)
    assert block.header.merkle_root == merkle_root([tx.txid for tx in block.transactions])
    spent = (txs[0].txid, txs[0].encode())
    chain.connect_block(raw)
    assert chain.tip.block_hash == block_hash
    with pytest.raises(ValidationError) as e:
        assemble_raw(chain, [*wallet_pairs(wallet, chain, 2), spent], chain.tip_header.timestamp + 2)
    assert e.value.tx_index == 2


def wallet_pairs(wallet, chain, count):
    return [(tx.txid, tx.encode()) for tx in wallet.transfers(count, chain)]


class _CountingSet:
    """The chain's real UTXO set, counting ``prepare_block`` calls (full validations) and
    ``check_transactions`` calls."""

    def __init__(self, utxos):
        self._utxos = utxos
        self.prepared = 0
        self.checked = 0

    def prepare_block(self, *args, **kwargs):
        self.prepared += 1
        return self._utxos.prepare_block(*args, **kwargs)

    def check_transactions(self, *args, **kwargs):
        self.checked += 1
        return self._utxos.check_transactions(*args, **kwargs)

    def __getattr__(self, name):
        return getattr(self._utxos, name)

    def __len__(self):
        return len(self._utxos)


def test_a_checked_block_commits_without_a_second_validation(setup):
    """A proposal (built by another node: here a second chain of the same genesis) is validated
    once (``prepare_block``, the chain unchanged) and its commit only applies the kept result;
    the kept result goes when the tip moves."""
    chain, wallet, genesis, tmp_path = setup
    proposer = ChainState.open(tmp_path / "proposer", chain.params, genesis)
    try:
        block = assemble_block(proposer, wallet.transfers(3, proposer), chain.tip_header.timestamp + 2)
    finally:
        proposer.close()
    raw = block.encode()
    counting = chain.utxos = _CountingSet(chain.utxos)
    before = (chain.utxos.set_hash(), len(chain.utxos), chain.tip)
    prepared = chain.prepare_block(raw)
    assert (chain.utxos.set_hash(), len(chain.utxos), chain.tip) == before
    assert prepared.ledger.utxo_set_hash == block.header.utxo_set_hash
    assert chain.prepare_block(raw) is prepared and counting.prepared == 1
    applied = chain.connect_block(raw)
    assert counting.prepared == 1
    assert applied.txids == [tx.txid for tx in block.transactions]
    assert chain.tip.block_hash == block.hash
    assert chain.utxos.set_hash() == block.header.utxo_set_hash
    # Committed: connecting the same bytes again is a linkage error, not a second commit.
    with pytest.raises(ValidationError) as e:
        chain.connect_block(raw)
    assert e.value.code == "bad-prevblk" and chain.tip.height == 1


def test_a_block_this_chain_assembled_commits_without_a_native_prepare(setup):
    """The block builder prepares the transactions under a draft header to learn the set hash;
    the chain keeps that result under the final header (``prepare_built``), so the leader's
    commit validates nothing again, and the kept result is what preparing the block gives."""
    chain, wallet, _, _ = setup
    block = assemble_block(chain, wallet.transfers(3, chain), chain.tip_header.timestamp + 2)
    raw = block.encode()
    counting = chain.utxos = _CountingSet(chain.utxos)
    kept = chain.prepare_block(raw)
    assert counting.prepared == 0
    fresh = counting._utxos.prepare_block(raw, chain.rules)
    assert (kept.ledger.block_hash, kept.ledger.txids, kept.ledger.fees, kept.ledger.utxo_set_hash) == (
        fresh.block_hash,
        fresh.txids,
        fresh.fees,
        fresh.utxo_set_hash,
    )
    chain.connect_block(raw)
    assert counting.prepared == 0
    assert chain.tip.block_hash == block.hash and chain.utxos.set_hash() == block.header.utxo_set_hash


def test_a_block_is_built_with_one_validation_of_its_transactions(setup):
    """The builder validates the transactions once, under a draft coinbase, and swaps in the
    coinbase that pays their fees (``PreparedBlock.with_coinbase``): one native prepare, no
    check of each transaction beforehand. The block is what a node validating it from scratch
    accepts, its coinbase paying the reward rule on the fees."""
    chain, wallet, genesis, tmp_path = setup
    txs = wallet.transfers(4, chain)
    counting = chain.utxos = _CountingSet(chain.utxos)
    block = assemble_block(chain, txs, chain.tip_header.timestamp + 2)
    assert (counting.prepared, counting.checked) == (1, 0)
    fresh = counting._utxos.prepare_block(block.encode(), chain.rules)
    assert fresh.fees > 0 and fresh.utxo_set_hash == block.header.utxo_set_hash
    assert [(o.value, o.pubkey_hash) for o in block.transactions[0].outputs] == chain.expected_coinbase(
        1, fresh.fees
    )
    other = ChainState.open(tmp_path / "other", chain.params, genesis)
    try:
        other.connect_block(block.encode())
        assert other.utxos.set_hash() == block.header.utxo_set_hash
    finally:
        other.close()


def test_a_built_block_under_another_header_is_refused(setup):
    """``prepare_built`` takes the draft only under the header the builder made from it: one
    with another set hash or other transactions is refused."""
    chain, wallet, _, _ = setup
    txs = wallet.transfers(2, chain)
    block = assemble_block(chain, txs, chain.tip_header.timestamp + 2)
    raw = block.encode()
    draft_header = dataclasses.replace(block.header, utxo_set_hash=bytes(32))
    draft = chain.utxos.prepare_block(
        draft_header.encode() + raw[HEADER_LEN:], chain.rules, check_utxo_hash=False
    )
    wrong_hash = dataclasses.replace(block.header, utxo_set_hash=bytes(range(32)))
    with pytest.raises(ValueError, match="UTXO set hash"):
        chain.prepare_built(wrong_hash.encode() + raw[HEADER_LEN:], draft)
    wrong_root = dataclasses.replace(block.header, merkle_root=bytes(32))
    with pytest.raises(ValueError, match="merkle root"):
        chain.prepare_built(wrong_root.encode() + raw[HEADER_LEN:], draft)
    assert chain.prepare_built(raw, draft).ledger.block_hash == block.hash


def test_same_block_hash_with_other_witnesses_is_validated_on_its_own(setup):
    """Witnesses are outside the txid, so a block whose signatures were tampered with has the
    same hash as the block prepared before it: it must not commit on that block's verdict."""
    chain, wallet, _, _ = setup
    block = assemble_block(chain, wallet.transfers(2, chain), chain.tip_header.timestamp + 2)
    raw = block.encode()
    chain.prepare_block(raw)
    tampered = bytearray(raw)
    tampered[-1] ^= 1  # the last signature byte of the last transaction
    assert Block.decode(bytes(tampered)).hash == block.hash
    before = chain.utxos.set_hash()
    with pytest.raises(ValidationError) as e:
        chain.connect_block(bytes(tampered))
    assert e.value.code == "bad-signature"
    assert chain.tip.height == 0 and chain.utxos.set_hash() == before
    chain.connect_block(raw)
    assert chain.tip.block_hash == block.hash


def test_a_block_prepared_before_a_reorg_is_validated_again(setup):
    """A block prepared on a tip that was left and returned to is validated afresh (the set
    changed in between), and it still commits."""
    chain, wallet, _, _ = setup
    first = assemble_block(chain, wallet.transfers(1, chain), chain.tip_header.timestamp + 2)
    other = assemble_block(chain, wallet.transfers(1, chain), chain.tip_header.timestamp + 3)
    counting = chain.utxos = _CountingSet(chain.utxos)
    chain.prepare_block(first.encode())
    chain.connect_block(other.encode())
    chain.disconnect_tip()
    chain.connect_block(first.encode())
    # Both were kept from their assembly (``prepare_built``): only ``first``'s commit after the
    # reorg validates again.
    assert counting.prepared == 1 and chain.tip.block_hash == first.hash
