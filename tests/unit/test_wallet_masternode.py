"""The wallet's masternode transactions (:mod:`timecoin.wallet.masternode`): the fee coin is the
largest coin that is no collateral, the fee is the base fee with the change back to the fee
coin's address, and each kind wants the input's witness plus its extra witnesses (a
registration signed with too few keys is refused before anything is sent). The end-to-end walk
(a real devnet) is tests/functional/test_masternode_register.py."""

from __future__ import annotations

import pytest

from timecoin import crypto
from timecoin.core.address import pubkey_hash
from timecoin.core.types import MasternodeDeregistration, MasternodeRegistration, OutPoint, TxKind
from timecoin.params import COIN, DEVNET
from timecoin.wallet.coinselect import InsufficientFunds, SpendableCoin
from timecoin.wallet.masternode import build, fee_coin

OWNER = pubkey_hash(crypto.public_key(bytes(range(32))))


def coin(i: int, value: int) -> SpendableCoin:
    return SpendableCoin(OutPoint(bytes([i]) * 32, 0), value, OWNER)


def test_fee_coin_is_the_largest_that_is_no_collateral():
    collateral, big, small = coin(1, 1_000 * COIN), coin(2, 5 * COIN), coin(3, 2 * COIN)
    assert fee_coin(DEVNET, [small, collateral, big], {collateral.outpoint}) == big
    with pytest.raises(InsufficientFunds):
        fee_coin(DEVNET, [collateral], {collateral.outpoint})
    with pytest.raises(InsufficientFunds):  # the fee and dust-limit change do not fit
        fee_coin(DEVNET, [coin(4, DEVNET.min_fee_base + DEVNET.dust_limit - 1)], set())


def test_build_pays_the_base_fee_and_returns_the_change():
    payer = coin(2, 5 * COIN)
    mn = crypto.public_key(bytes(32))
    spend = build(DEVNET, MasternodeRegistration(coin(1, 0).outpoint, mn, OWNER), payer)
    tx = spend.transaction
    assert tx.kind is TxKind.MASTERNODE_REGISTER and tx.inputs == (payer.outpoint,)
    assert spend.fee == DEVNET.min_fee(0) == DEVNET.min_fee_base
    assert [(o.value, o.pubkey_hash) for o in tx.outputs] == [(5 * COIN - spend.fee, OWNER)]
    assert tx.witness_count == 3  # the input, the masternode key, the collateral's owner
    assert build(DEVNET, MasternodeDeregistration(OutPoint.NULL), payer).transaction.witness_count == 2
    with pytest.raises(ValueError, match="needs 3"):
        tx.signed_with([bytes(range(32))], bytes(32), int(DEVNET.network))
