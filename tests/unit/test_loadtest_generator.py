"""The load generator's pre-signed transactions are real (DESIGN §11 load test, §4 rules).

A devnet genesis chain is opened; the fan-out transactions must pass the ledger's own admission
check (``UtxoSet.check_transactions``) against it, and once they are committed in a block, every
load transfer must pass it too. Transactions must spend pairwise disjoint coins (no conflicts
in the load), pay exactly the minimum fee, and the hand-joined encoding must equal the codec's.
"""

from __future__ import annotations

import pytest

from timecoin.core.types import OutPoint, Transaction, TxOut
from timecoin.ledger.blockbuilder import assemble_block
from timecoin.ledger.chain import ChainState
from timecoin.ledger.genesis import build_genesis
from timecoin.loadtest.generator import Generator, spendable_total, unsigned_transfer_1to1
from timecoin.params import DEVNET
from timecoin.testing.chaingen import devnet_genesis

ACCOUNTS, LOAD = 4, 600


@pytest.fixture
def chain(tmp_path):
    config, account_keys, _ = devnet_genesis(b"loadtest-unit", accounts=ACCOUNTS)
    state = ChainState.open(tmp_path / "chain", config.params, build_genesis(config))
    yield state, config, account_keys
    state.close()


def inputs_of(raws):
    return [op for raw in raws for op in Transaction.decode(raw).inputs]


def test_fanout_then_spends_are_valid_and_disjoint(chain):
    state, config, keys = chain
    gen = Generator.from_genesis(config, keys, batch_size=128)
    assert gen.fanout_plan(LOAD, max_outputs=200) == [LOAD]
    fanout = gen.fan_out(LOAD, max_outputs=200)
    assert len(fanout) == ACCOUNTS and len(gen.coins) == LOAD
    verdicts = state.utxos.check_transactions(fanout, state.rules, 1)
    assert all(v.ok for v in verdicts), [v.message for v in verdicts if not v.ok]
    # Every output pays the spent coin's key: nothing is sent to others, the base fee only.
    assert {v.fee for v in verdicts} == {DEVNET.min_fee(0)}

    block = assemble_block(state, [Transaction.decode(r) for r in fanout], config.timestamp + 2)
    state.connect_block(block.encode())

    spends = gen.spends(LOAD)
    assert len(spends) == LOAD and not gen.coins
    verdicts = state.utxos.check_transactions(spends, state.rules, 2)
    assert all(v.ok for v in verdicts), {v.code for v in verdicts if not v.ok}
    spent = inputs_of(spends)
    assert len(spent) == LOAD and len(set(spent)) == LOAD
    assert not set(spent) & set(inputs_of(fanout))
    assert gen.stats.transactions == ACCOUNTS + LOAD and gen.stats.rate > 0


def test_spends_without_the_fanout_committed_are_rejected(chain):
    """The admission check is not vacuous: spends of uncommitted fan-out outputs fail."""
    state, config, keys = chain
    gen = Generator.from_genesis(config, keys)
    gen.fan_out(20)
    verdicts = state.utxos.check_transactions(gen.spends(20), state.rules, 1)
    assert not any(v.ok for v in verdicts)


def test_multi_level_plan_and_limits(chain):
    _, config, keys = chain
    gen = Generator.from_genesis(config, keys)
    assert gen.fanout_plan(ACCOUNTS) == []
    assert gen.fanout_plan(100, max_outputs=5) == [20, 100]
    with pytest.raises(ValueError, match="spends asked"):
        gen.spends(ACCOUNTS + 1)
    with pytest.raises(ValueError, match="max_outputs"):
        gen.fan_out(10, max_outputs=1)


def test_joined_encoding_matches_the_codec():
    outpoint, owner = OutPoint(bytes(range(32)), 7), bytes(range(32, 64))
    value = spendable_total(5_000_000, DEVNET)
    assert value == 5_000_000 - DEVNET.min_fee_base  # paid back to its owner: the base fee only
    expected = Transaction.transfer([outpoint], [TxOut(value, owner)]).encode()
    assert unsigned_transfer_1to1(outpoint.encode(), value, owner) == expected
    with pytest.raises(ValueError, match="minimum fee"):
        spendable_total(DEVNET.min_fee_base, DEVNET)
