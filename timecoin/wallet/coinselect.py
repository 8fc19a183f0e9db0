"""Coin selection and the fee of a wallet transfer (docs/wallet.md).

**Largest-first**: the spendable coins are taken by value, largest first (ties by outpoint),
until they pay the outputs plus the fee that a transfer without change needs. Few inputs keep
the transaction small; it is predictable and never fails when the funds suffice. (Branch and
bound would avoid change more often, but here the fee does not grow with inputs, so it buys
little.)

**Fee**: DESIGN §4's minimum, ``params.min_fee(total outputs)`` (1,000 sat + 0.1 % of all output
value, change included), plus an optional margin of ``fee_margin_per_mille`` thousandths of it
(rounded up). With change, the change is the largest amount that still leaves that fee, so the
fee is the required one (a few sat over at most, from the rounding). **Change below the dust
limit** (DESIGN §4: outputs below 546 sat are invalid) is never created: it is added to the fee.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from timecoin.core.types import WITNESS_LEN, OutPoint, Transaction, TxOut
from timecoin.params import NetworkParams


class InsufficientFunds(ValueError):
    """The spendable coins do not cover the outputs and the fee."""

    def __init__(self, needed: int, available: int) -> None:
        super().__init__(
            f"insufficient funds: {needed} sat needed (outputs and minimum fee), {available} sat spendable"
        )
        self.needed = needed
        self.available = available


@dataclass(frozen=True, slots=True)
class SpendableCoin:
    """A coin the wallet can spend: its outpoint, value (sat) and owner's key hash."""

    outpoint: OutPoint
    value: int
    pubkey_hash: bytes


@dataclass(frozen=True, slots=True)
class Selection:
    """An unsigned transfer and what it spends: ``coins`` in input order, ``fee`` and
    ``change`` (0 when none) in sat."""

    transaction: Transaction
    coins: tuple[SpendableCoin, ...]
    fee: int
    change: int


def required_fee(params: NetworkParams, total_out: int, fee_margin_per_mille: int = 0) -> int:
    """The fee a transfer paying ``total_out`` sat in outputs must pay: the minimum fee rule
    (DESIGN §4, ``params.min_fee``) plus ``fee_margin_per_mille`` ‰ of it, rounded up."""
    if fee_margin_per_mille < 0:
        raise ValueError(f"fee margin must be >= 0 per mille, got {fee_margin_per_mille}")
    base = params.min_fee(total_out)
    return base + -(-base * fee_margin_per_mille // 1000)


def _largest_total_out(params: NetworkParams, total_in: int, margin: int) -> int:
    """The largest T with T + required_fee(T) <= total_in (-1 if none): required_fee grows
    with T, so bisect."""
    lo, hi = -1, total_in
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if mid + required_fee(params, mid, margin) <= total_in:
            lo = mid
        else:
            hi = mid - 1
    return lo


def select_coins(
    params: NetworkParams,
    coins: Sequence[SpendableCoin],
    payments: Sequence[tuple[bytes, int]],
    change_pubkey_hash: bytes,
    *,
    fee_margin_per_mille: int = 0,
) -> Selection:
    """An unsigned transfer paying ``payments`` ((pubkey_hash, sat), each at least the dust
    limit) from ``coins``, largest first, with change to ``change_pubkey_hash`` when it would
    reach the dust limit. Raises ``ValueError`` for an empty or dust payment,
    :class:`InsufficientFunds` when the coins do not suffice, ``ValueError`` when the inputs
    needed would exceed the maximum transaction size."""
    if not payments:
        raise ValueError("nothing to pay")
    for pkh, value in payments:
        if value < params.dust_limit:
            raise ValueError(f"payment of {value} sat is below the dust limit of {params.dust_limit} sat")
        if len(pkh) != 32:
            raise ValueError("a payment's pubkey_hash must be 32 bytes")
    pay = sum(v for _, v in payments)
    needed = pay + required_fee(params, pay, fee_margin_per_mille)
    ordered = sorted(coins, key=lambda c: (-c.value, c.outpoint.txid, c.outpoint.vout))
    chosen: list[SpendableCoin] = []
    total_in = 0
    for coin in ordered:
        if total_in >= needed:
            break
        chosen.append(coin)
        total_in += coin.value
    if total_in < needed:
        raise InsufficientFunds(needed, total_in)
    outputs = [TxOut(v, pkh) for pkh, v in payments]
    change = _largest_total_out(params, total_in, fee_margin_per_mille) - pay
    if change >= params.dust_limit:
        outputs.append(TxOut(change, change_pubkey_hash))
    else:
        change = 0  # below dust: left to the fee
    tx = Transaction.transfer([c.outpoint for c in chosen], outputs)
    signed_len = tx.encoded_len() + WITNESS_LEN * len(chosen)  # one witness per input once signed
    if signed_len > params.max_tx_size:
        raise ValueError(
            f"the {len(chosen)} inputs needed make a {signed_len}-byte transaction, over the "
            f"{params.max_tx_size}-byte limit: consolidate coins first"
        )
    return Selection(tx, tuple(chosen), total_in - pay - change, change)
