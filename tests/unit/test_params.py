"""Network parameters (DESIGN §4, §5)."""

import pytest

from timecoin import params
from timecoin.params import COIN, Tier


def test_design_values():
    for p in params.NETWORKS.values():
        assert p.block_reward == 100 * COIN and p.treasury_reward == 5 * COIN
        assert p.dust_limit == 546 and p.max_tx_size == 1_000_000
        assert p.mempool_max_txs == 10_000 and p.mempool_max_bytes == 300_000_000
        assert p.reorg_max_depth == 1_000 and p.reorg_alert_depth == 100
    assert params.MAINNET.block_slot == 600
    assert not params.MAINNET.lmdb_unsafe_nosync and not params.TESTNET.lmdb_unsafe_nosync
    assert len({p.magic for p in params.NETWORKS.values()}) == 3


def test_min_fee_is_1000_sat_plus_a_tenth_percent():
    assert params.MAINNET.min_fee(0) == 1_000
    assert params.MAINNET.min_fee(1_000_000) == 2_000
    assert params.MAINNET.min_fee(1_999) == 1_001


def test_tiers():
    assert params.tier_for_collateral(0) == Tier.FREE
    assert params.tier_for_collateral(999 * COIN) == Tier.FREE
    assert params.tier_for_collateral(1_000 * COIN) == Tier.BRONZE
    assert params.tier_for_collateral(99_999 * COIN) == Tier.SILVER
    assert params.tier_for_collateral(10**6 * COIN) == Tier.GOLD
    assert [params.TIER_BASE_WEIGHT[t] for t in Tier] == [1, 2, 4, 8]


def test_lookup():
    assert params.by_name("devnet") is params.DEVNET
    assert params.by_id(1) is params.TESTNET
    with pytest.raises(ValueError, match="unknown network 'x'; known: mainnet, testnet, devnet"):
        params.by_name("x")
