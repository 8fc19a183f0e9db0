"""Masternode transactions from a wallet: registration, deregistration and payout change
(kinds 2, 3, 4; docs/masternodes.md "Registering a masternode"; Dash's ``protx register``,
``protx revoke``, ``protx update_registrar`` are the model).

Each transaction pays its fee from one coin of the wallet, **never** a masternode's collateral
(spending a collateral deregisters its masternode, docs/masternodes.md §1): one input, the change
back to the same address, so the fee is the base fee only (docs/encoding.md "Validity":
nothing is sent to others). Witnesses, in order (docs/encoding.md, the kinds' extra witnesses):
the input's key, then

* registration: the masternode key, then the collateral's owner (for the Free tier, which has no
  collateral, the masternode key again);
* deregistration and payout change: the masternode's owner (the collateral coin's key; for the
  Free tier, the masternode key).

Pure: no I/O. :class:`timecoin.wallet.node.NodeWallet` supplies the coins and the chain id.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass

from timecoin.core.types import (
    WITNESS_LEN,
    MasternodeDeregistration,
    MasternodePayoutChange,
    MasternodeRegistration,
    OutPoint,
    Transaction,
    TxOut,
)
from timecoin.params import NetworkParams
from timecoin.wallet.coinselect import InsufficientFunds, SpendableCoin, required_fee

__all__ = ["MasternodePayload", "MasternodeSpend", "build", "fee_coin"]

MasternodePayload = MasternodeRegistration | MasternodeDeregistration | MasternodePayoutChange


@dataclass(frozen=True, slots=True)
class MasternodeSpend:
    """An unsigned masternode transaction, the coin paying its fee and the fee (sat)."""

    transaction: Transaction
    coin: SpendableCoin
    fee: int


def fee_coin(
    params: NetworkParams, coins: Sequence[SpendableCoin], exclude: Collection[OutPoint]
) -> SpendableCoin:
    """The largest of ``coins`` outside ``exclude`` (the collaterals) that pays the base fee and
    leaves change of at least the dust limit (ties by outpoint). :class:`InsufficientFunds` if
    none does."""
    need = required_fee(params, 0) + params.dust_limit
    usable = [c for c in coins if c.outpoint not in exclude]
    best = max(usable, key=lambda c: (c.value, c.outpoint.txid, c.outpoint.vout), default=None)
    if best is None or best.value < need:
        raise InsufficientFunds(need, best.value if best is not None else 0)
    return best


def build(params: NetworkParams, payload: MasternodePayload, coin: SpendableCoin) -> MasternodeSpend:
    """The unsigned masternode transaction of ``payload`` spending ``coin`` for its fee, the
    change back to the coin's address. ``ValueError`` if ``coin`` cannot pay the fee and a change
    output of at least the dust limit, or the signed transaction would exceed the size limit."""
    fee = required_fee(params, 0)
    change = coin.value - fee
    if change < params.dust_limit:
        raise ValueError(
            f"coin {coin.outpoint.txid.hex()}:{coin.outpoint.vout} holds {coin.value} sat: not enough for "
            f"the {fee} sat fee and {params.dust_limit} sat of change"
        )
    tx = Transaction.masternode(payload, [coin.outpoint], [TxOut(change, coin.pubkey_hash)])
    if tx.encoded_len() + WITNESS_LEN * tx.witness_count > params.max_tx_size:
        raise ValueError("the masternode transaction would exceed the maximum transaction size")
    return MasternodeSpend(tx, coin, fee)
