"""Genesis files and blocks (docs/genesis.md): deterministic, identify the network, and bad
files name the offending key."""

import orjson
import pytest

from timecoin import params
from timecoin.core.types import TxKind
from timecoin.ledger.genesis import GenesisConfig, GenesisError, build_genesis
from timecoin.params import TIER_COLLATERAL, Tier
from timecoin.testing.chaingen import devnet_genesis


def test_build_is_deterministic_and_round_trips_json():
    config, _, _ = devnet_genesis()
    a, b = build_genesis(config), build_genesis(GenesisConfig.from_json(config.to_json()))
    assert a.hash == b.hash and a.encoded == b.encoded


def test_block_layout():
    config, _, mn_keys = devnet_genesis(accounts=3, masternodes=2)
    g = build_genesis(config)
    coinbase, *registrations = g.block.transactions
    assert coinbase.kind == TxKind.COINBASE and coinbase.coinbase_height == 0
    assert [o.value for o in coinbase.outputs[3:]] == [TIER_COLLATERAL[Tier.GOLD]] * 2
    assert [tx.kind for tx in registrations] == [TxKind.MASTERNODE_REGISTER] * 2
    assert [tx.txid for tx in registrations] == sorted(tx.txid for tx in registrations)
    for _, reg in g.registrations:
        assert reg.collateral.txid == coinbase.txid and reg.collateral.vout >= 3
    assert g.block.header.height == 0 and g.block.header.prev_hash == bytes(32)
    assert len(g.coins) == len(coinbase.outputs)


def test_any_change_changes_the_network():
    config, _, _ = devnet_genesis()
    other, _, _ = devnet_genesis(timestamp=config.timestamp + 1)
    assert build_genesis(config).hash != build_genesis(other).hash


def _doc():
    config, _, _ = devnet_genesis(accounts=1, masternodes=1)
    return orjson.loads(config.to_json())


@pytest.mark.parametrize(
    "mutate,message",
    [
        (lambda d: d.pop("treasury"), "treasury: missing"),
        (lambda d: d.update(network="moon"), "network: unknown network 'moon'"),
        (lambda d: d.update(timestamp="now"), "timestamp: must be int"),
        (lambda d: d["allocations"][0].update(amount_sat=100), r"allocations\[0\].amount_sat"),
        (
            lambda d: d["allocations"][0].update(address=d["allocations"][0]["address"][:-1] + "x"),
            r"allocations\[0\].address",
        ),
        (lambda d: d["masternodes"][0].update(tier="platinum"), r"masternodes\[0\].tier: unknown tier"),
        (lambda d: d["masternodes"][0].update(public_key="zz"), r"masternodes\[0\].public_key"),
        (lambda d: d["masternodes"].append(dict(d["masternodes"][0])), "listed twice"),
    ],
)
def test_bad_files_name_the_key(mutate, message):
    doc = _doc()
    mutate(doc)
    with pytest.raises(GenesisError, match=message):
        GenesisConfig.from_json(orjson.dumps(doc))


def test_address_of_another_network_is_refused():
    doc = _doc()
    mainnet_treasury = _doc()
    config = GenesisConfig.from_json(orjson.dumps(mainnet_treasury))
    from timecoin.core.address import encode_address

    doc["treasury"] = encode_address(config.treasury, params.MAINNET)
    with pytest.raises(GenesisError, match="treasury: .* is a mainnet address, expected devnet"):
        GenesisConfig.from_json(orjson.dumps(doc))
    with pytest.raises(GenesisError, match="not JSON"):
        GenesisConfig.from_json(b"{")
