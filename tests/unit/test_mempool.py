"""The mempool (DESIGN §4) with real signed transactions against a real chain: input locks,
conflicts (double spends), limits and lowest-fee-rate eviction, clear rejection codes, and no
state change on any rejection."""

from __future__ import annotations

import dataclasses

import pytest

from timecoin import crypto
from timecoin.core.address import pubkey_hash
from timecoin.core.types import Transaction, TxOut
from timecoin.ledger.chain import ChainState
from timecoin.ledger.genesis import build_genesis
from timecoin.ledger.mempool import Mempool
from timecoin.params import COIN
from timecoin.testing.chaingen import Wallet, devnet_genesis


@pytest.fixture
def chain(tmp_path):
    config, accounts, _ = devnet_genesis(accounts=8, amount=10 * COIN)
    chain = ChainState.open(tmp_path, config.params, build_genesis(config))
    chain.accounts = accounts
    yield chain
    chain.close()


def spend(chain, outpoint, key, value, fee, ways=1):
    """A signed transfer of ``outpoint`` (worth ``value``) paying ``fee``."""
    owner = pubkey_hash(crypto.public_key(key))
    outs = [TxOut((value - fee) // ways, owner) for _ in range(ways)]
    tx = Transaction.transfer([outpoint], outs)
    return tx.signed_with([key], chain.genesis.hash, int(chain.params.network))


def coins(chain):
    wallet = Wallet.from_genesis(chain, chain.accounts)
    return sorted(((op, v, k) for op, (v, k) in wallet.coins.items()), key=lambda c: c[0].txid)


def snapshot(pool):
    return len(pool), pool.bytes, {e.txid for e in pool.entries()}


def test_accept_lock_and_conflict(chain):
    pool = Mempool(chain.params, chain.utxos, chain.rules)
    (op, value, key), (op2, value2, key2) = coins(chain)[:2]
    a = spend(chain, op, key, value, 10_000_000)
    results = pool.add([a.encode()], 1)
    assert results[0].accepted and results[0].txid == a.txid
    assert pool.locked_by(op.encode()) == a.txid and a.txid in pool
    before = snapshot(pool)

    again = pool.add([a.encode()], 1)[0]
    assert again.code == "txn-already-in-mempool"
    double = spend(chain, op, key, value, 20_000_000)
    verdict = pool.add([double.encode()], 1)[0]
    assert verdict.code == "txn-mempool-conflict" and a.txid.hex() in verdict.message
    assert snapshot(pool) == before

    # Two spends of one coin in one batch: the first wins.
    b1, b2 = spend(chain, op2, key2, value2, 10_000_000), spend(chain, op2, key2, value2, 11_000_000)
    r1, r2 = pool.add([b1.encode(), b2.encode()], 1)
    assert r1.accepted and r2.code == "txn-mempool-conflict"

    # Removing the holder releases the lock.
    pool.remove([a.txid])
    assert pool.locked_by(op.encode()) is None and pool.add([double.encode()], 1)[0].accepted


def test_native_rejections_change_nothing(chain):
    pool = Mempool(chain.params, chain.utxos, chain.rules)
    op, value, key = coins(chain)[0]
    good = spend(chain, op, key, value, 10_000_000)
    forged = dataclasses.replace(
        good, witnesses=(dataclasses.replace(good.witnesses[0], signature=bytes(64)),)
    )
    stranger = spend(chain, op, b"\7" * 32, value, 10_000_000)
    cheap = spend(chain, op, key, value, 999)
    results = pool.add([forged.encode(), stranger.encode(), cheap.encode(), b"\x00garbage"], 1)
    assert [r.code for r in results] == ["bad-signature", "wrong-key", "insufficient-fee", "bad-encoding"]
    assert all(r.message for r in results)
    assert snapshot(pool) == (0, 0, set()) and pool.locked_by(op.encode()) is None


def test_eviction_by_lowest_fee_rate(chain):
    params = dataclasses.replace(chain.params, mempool_max_txs=3)
    pool = Mempool(params, chain.utxos, chain.rules)
    cs = coins(chain)
    low = [spend(chain, op, k, v, 2_000_000 + i) for i, (op, v, k) in enumerate(cs[:3])]
    assert all(r.accepted for r in pool.add([t.encode() for t in low], 1))
    op, v, k = cs[3]
    poorer = spend(chain, op, k, v, 1_900_000)
    full = pool.add([poorer.encode()], 1)[0]
    assert full.code == "mempool-full" and len(pool) == 3
    richer = spend(chain, op, k, v, 5_000_000)
    assert pool.add([richer.encode()], 1)[0].accepted
    assert len(pool) == 3 and low[0].txid not in pool and richer.txid in pool
    assert pool.locked_by(cs[0][0].encode()) is None


def test_byte_limit(chain):
    op, v, k = coins(chain)[0]
    tx = spend(chain, op, k, v, 2_000_000)
    pool = Mempool(
        dataclasses.replace(chain.params, mempool_max_bytes=len(tx.encode()) - 1), chain.utxos, chain.rules
    )
    assert pool.add([tx.encode()], 1)[0].code == "mempool-full"


def test_byte_limit_evicts_by_fee_rate_and_holds(chain):
    """The byte bound holds however a peer fills it: what fits is admitted at once, past it a
    transaction gets in only by evicting lower fee rates, and the pending bytes never pass it."""
    cs = coins(chain)
    low = [spend(chain, op, k, v, 2_000_000 + i) for i, (op, v, k) in enumerate(cs[:2])]
    size = len(low[0].encode())
    assert all(len(t.encode()) == size for t in low)
    pool = Mempool(dataclasses.replace(chain.params, mempool_max_bytes=2 * size), chain.utxos, chain.rules)
    assert all(r.accepted for r in pool.add([t.encode() for t in low], 1)) and pool.bytes == 2 * size
    op, v, k = cs[2]
    assert pool.add([spend(chain, op, k, v, 1_900_000).encode()], 1)[0].code == "mempool-full"
    richer = spend(chain, op, k, v, 5_000_000)
    assert pool.add([richer.encode()], 1)[0].accepted
    assert low[0].txid not in pool and richer.txid in pool and pool.bytes <= 2 * size


def test_remove_conflicts_with_a_block(chain):
    pool = Mempool(chain.params, chain.utxos, chain.rules)
    op, v, k = coins(chain)[0]
    tx = spend(chain, op, k, v, 2_000_000)
    pool.add([tx.encode()], 1)
    removed = pool.remove_conflicts([op.encode()])
    assert [e.txid for e in removed] == [tx.txid] and len(pool) == 0 and pool.bytes == 0


def test_masternode_transactions_are_checked_against_the_registry(chain):
    from timecoin.core.types import MasternodeDeregistration, OutPoint

    op, value, key = coins(chain)[0]
    owner = pubkey_hash(crypto.public_key(key))
    dereg = Transaction.masternode(
        MasternodeDeregistration(OutPoint(b"\5" * 32, 0)), [op], [TxOut(value - 2_000_000, owner)]
    ).signed_with([key, b"\6" * 32], chain.genesis.hash, int(chain.params.network))
    unchecked = Mempool(chain.params, chain.utxos, chain.rules)
    assert unchecked.add([dereg.encode()], 1)[0].code == "mn-unchecked"
    pool = Mempool(chain.params, chain.utxos, chain.rules, special_check=chain.check_masternode_transaction)
    verdict = pool.add([dereg.encode()], 1)[0]
    assert verdict.code == "mn-not-registered" and verdict.message
    assert len(pool) == 0 and pool.locked_by(op.encode()) is None


def test_a_batch_never_evicts_what_it_admitted(chain):
    """Every verdict ``accepted`` holds when ``add`` returns: a richer transaction later in the
    same batch may evict older low-rate transactions but never one the batch itself admitted
    (before the fix it did, and finality's ``submit`` then found an accepted txid missing from
    the mempool: an ``AssertionError`` that stopped consensus on every masternode under load)."""
    params = dataclasses.replace(chain.params, mempool_max_txs=3)
    pool = Mempool(params, chain.utxos, chain.rules)
    cs = coins(chain)
    old = spend(chain, *cs[0][:1], cs[0][2], cs[0][1], 2_000_000)
    assert pool.add([old.encode()], 1)[0].accepted
    a, b = (spend(chain, op, k, v, 2_000_000 + i) for i, (op, v, k) in enumerate(cs[1:3], 1))
    richer = spend(chain, cs[3][0], cs[3][2], cs[3][1], 5_000_000)
    richest = spend(chain, cs[4][0], cs[4][2], cs[4][1], 6_000_000)
    verdicts = pool.add([t.encode() for t in (a, b, richer, richest)], 1)

    # The batch fills the pool (a, b), then the richer one evicts the older low-rate transaction;
    # the richest finds only transactions of its own batch to evict, so it is refused.
    assert [v.code for v in verdicts] == ["", "", "", "mempool-full"]
    assert all(v.txid in pool for v in verdicts if v.accepted)
    assert old.txid not in pool and pool.locked_by(cs[0][0].encode()) is None
    assert {e.txid for e in pool.entries()} == {a.txid, b.txid, richer.txid} and len(pool) == 3
    for t, (op, _, _) in zip((a, b, richer), cs[1:4], strict=True):
        assert pool.locked_by(op.encode()) == t.txid

    # Protection lasts for the call only: a later batch evicts by fee rate as before.
    assert pool.add([richest.encode()], 1)[0].accepted
    assert a.txid not in pool and richest.txid in pool and len(pool) == 3


def test_admission_limit_room(chain):
    """The admission limit (DESIGN §13) leaves room for ``max_txs`` pending transactions and none
    once their bytes reach ``max_bytes``; by default half of the mempool's limits."""
    from timecoin.ledger.mempool import ADMISSION_SHARE_PERCENT, AdmissionLimit

    default = AdmissionLimit.for_network(chain.params)
    assert default.max_txs == chain.params.mempool_max_txs * ADMISSION_SHARE_PERCENT // 100
    assert default.max_bytes == chain.params.mempool_max_bytes * ADMISSION_SHARE_PERCENT // 100
    assert default.max_final_bytes == chain.params.mempool_max_bytes
    assert AdmissionLimit.for_network(chain.params, 7).max_txs == 7
    assert AdmissionLimit.for_network(chain.params, max_final_bytes=9).max_final_bytes == 9
    with pytest.raises(ValueError):
        AdmissionLimit(0, 1, 1)
    with pytest.raises(ValueError):
        AdmissionLimit(1, 1, 0)

    pool = Mempool(chain.params, chain.utxos, chain.rules)
    txs = [spend(chain, op, k, v, 2_000_000) for op, v, k in coins(chain)[:3]]
    limit = AdmissionLimit(2, 10**9, 1_000)
    assert limit.room(pool) == 2
    pool.add([txs[0].encode()], 1)
    assert limit.room(pool) == 1
    pool.add([t.encode() for t in txs[1:]], 1)
    assert len(pool) == 3 and limit.room(pool) == 0
    assert AdmissionLimit(100, pool.bytes, 1_000).room(pool) == 0
    assert AdmissionLimit(100, pool.bytes + 1, 1_000).room(pool) == 97
    # Final transactions no block archives yet count against their own bound.
    assert AdmissionLimit(100, pool.bytes + 1, 1_000).room(pool, final_bytes=999) == 97
    assert AdmissionLimit(100, pool.bytes + 1, 1_000).room(pool, final_bytes=1_000) == 0
