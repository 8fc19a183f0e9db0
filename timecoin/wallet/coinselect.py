"""Coin selection and the fee of a wallet transfer (docs/wallet.md).

**Largest-first**: the spendable coins are taken by value, largest first (ties by outpoint),
until they pay the outputs plus the fee that a transfer without change needs. Few inputs keep
the transaction small; it is predictable and never fails when the funds suffice. (Branch and
bound would avoid change more often, but here the fee does not grow with inputs, so it buys
little.)

**Fee**: DESIGN §4's minimum, ``params.min_fee(sent to others)``: 1,000 sat + 0.1 % of the value
of the outputs paying an address that none of the spent coins has, plus an optional margin of
``fee_margin_per_mille`` thousandths of it (rounded up). **Change** goes back to the address of
the largest coin spent, an address the transaction spends from, so it adds nothing to the fee:
sending 1 TIME from a 1,000,000 TIME coin costs 1,000 sat + 0.001 TIME. A payment to an address
of the same wallet that the transaction does not spend from is sent to others like any other.
**Change below the dust limit** (DESIGN §4: outputs below 546 sat are invalid) is never created:
it is added to the fee.

**Sweep** (``send --all``) spends every coin into one output; **subtract fee** pays the fee out
of the amount, so the payee receives the amount less the fee (Bitcoin Core's
``subtractfeefromamount``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
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
    """An unsigned transfer and what it spends: ``coins`` in input order; ``paid`` (what the
    payees receive), ``fee`` and ``change`` (0 when none), in sat."""

    transaction: Transaction
    coins: tuple[SpendableCoin, ...]
    paid: int
    fee: int
    change: int


def required_fee(params: NetworkParams, sent_to_others: int, fee_margin_per_mille: int = 0) -> int:
    """The fee a transfer sending ``sent_to_others`` sat to others must pay (sat): the minimum
    fee rule (DESIGN §4, ``params.min_fee``) plus ``fee_margin_per_mille`` ‰ of it, rounded up.
    ``ValueError`` for a negative margin."""
    if fee_margin_per_mille < 0:
        raise ValueError(f"fee margin must be >= 0 per mille, got {fee_margin_per_mille}")
    base = params.min_fee(sent_to_others)
    return base + -(-base * fee_margin_per_mille // 1000)


def _largest(fits: Callable[[int], bool], hi: int) -> int:
    """The largest v in 0..hi with ``fits(v)`` (-1 if none); ``fits`` must be monotone."""
    lo = -1
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if fits(mid):
            lo = mid
        else:
            hi = mid - 1
    return lo


def _net_of_fee(params: NetworkParams, budget: int, to_self: bool, margin: int) -> int:
    """The largest payment v with v + its fee <= ``budget`` (sat; -1 if none): the base fee
    when the payee is an address spent from (``to_self``), else the fee on v itself."""
    if to_self:
        return budget - required_fee(params, 0, margin)
    return _largest(lambda v: v + required_fee(params, v, margin) <= budget, budget)


def _check_payments(params: NetworkParams, payments: Sequence[tuple[bytes, int]]) -> None:
    if not payments:
        raise ValueError("nothing to pay")
    for pkh, value in payments:
        if value < params.dust_limit:
            raise ValueError(f"payment of {value} sat is below the dust limit of {params.dust_limit} sat")
        if len(pkh) != 32:
            raise ValueError("a payment's pubkey_hash must be 32 bytes")


def _sent_to_others(payments: Sequence[tuple[bytes, int]], chosen: Sequence[SpendableCoin]) -> int:
    own = {c.pubkey_hash for c in chosen}
    return sum(v for pkh, v in payments if pkh not in own)


def _finish(
    params: NetworkParams,
    chosen: Sequence[SpendableCoin],
    outputs: list[TxOut],
    change: int,
) -> Selection:
    """The selection of ``chosen`` paying ``outputs``, plus ``change`` to the largest spent
    coin's address when it reaches the dust limit (else it is left to the fee); ``ValueError``
    when the signed transaction would be over the size limit."""
    paid = sum(o.value for o in outputs)
    if change >= params.dust_limit:
        outputs = [*outputs, TxOut(change, chosen[0].pubkey_hash)]
    else:
        change = 0  # below dust: left to the fee
    tx = Transaction.transfer([c.outpoint for c in chosen], outputs)
    signed_len = tx.encoded_len() + WITNESS_LEN * len(chosen)  # one witness per input once signed
    if signed_len > params.max_tx_size:
        raise ValueError(
            f"the {len(chosen)} inputs needed make a {signed_len}-byte transaction, over the "
            f"{params.max_tx_size}-byte limit: consolidate coins first"
        )
    total_in = sum(c.value for c in chosen)
    return Selection(tx, tuple(chosen), paid, total_in - paid - change, change)


def _largest_first(coins: Sequence[SpendableCoin]) -> list[SpendableCoin]:
    return sorted(coins, key=lambda c: (-c.value, c.outpoint.txid, c.outpoint.vout))


def select_coins(
    params: NetworkParams,
    coins: Sequence[SpendableCoin],
    payments: Sequence[tuple[bytes, int]],
    *,
    fee_margin_per_mille: int = 0,
    subtract_fee: bool = False,
) -> Selection:
    """An unsigned transfer paying ``payments`` ((pubkey_hash, sat), each at least the dust
    limit) from ``coins``, largest first, with change back to the address of the largest coin
    spent when it reaches the dust limit. With ``subtract_fee`` (one payment only) the fee comes
    out of the payment: the payee receives the largest amount that, with its fee, fits in the
    one asked. Raises ``ValueError`` for no payment, a dust payment, ``subtract_fee`` with
    several payments or an amount that cannot pay its own fee, :class:`InsufficientFunds` when
    the coins do not suffice, ``ValueError`` when the inputs needed would exceed the maximum
    transaction size."""
    _check_payments(params, payments)
    if subtract_fee and len(payments) != 1:
        raise ValueError("the fee can be subtracted from a single payment only")
    pay = sum(v for _, v in payments)

    def needed(chosen: Sequence[SpendableCoin]) -> int:
        if subtract_fee:
            return pay
        return pay + required_fee(params, _sent_to_others(payments, chosen), fee_margin_per_mille)

    chosen: list[SpendableCoin] = []
    total_in = 0
    for coin in _largest_first(coins):
        if chosen and total_in >= needed(chosen):
            break
        chosen.append(coin)
        total_in += coin.value
    if not chosen or total_in < needed(chosen):
        raise InsufficientFunds(needed(chosen) if chosen else needed([]), total_in)
    if subtract_fee:
        ((payee, amount),) = payments
        to_self = payee in {c.pubkey_hash for c in chosen}
        value = _net_of_fee(params, amount, to_self, fee_margin_per_mille)
        if value < params.dust_limit:
            raise ValueError(
                f"{amount} sat cannot pay its own fee and leave at least the dust limit "
                f"({params.dust_limit} sat) to the payee"
            )
        outputs = [TxOut(value, payee)]
        change = total_in - amount
    else:
        outputs = [TxOut(v, pkh) for pkh, v in payments]
        fee = required_fee(params, _sent_to_others(payments, chosen), fee_margin_per_mille)
        change = total_in - pay - fee
    return _finish(params, chosen, outputs, change)


def sweep(
    params: NetworkParams,
    coins: Sequence[SpendableCoin],
    payee: bytes,
    *,
    fee_margin_per_mille: int = 0,
) -> Selection:
    """An unsigned transfer of every coin in ``coins`` to ``payee`` (``send --all``): one
    output, the whole value less the fee (the base fee only when ``payee`` is an address
    spent from). :class:`InsufficientFunds` when nothing would be left above the dust limit,
    ``ValueError`` for a bad ``payee`` or more coins than one transaction can spend."""
    if len(payee) != 32:
        raise ValueError("a payment's pubkey_hash must be 32 bytes")
    chosen = _largest_first(coins)
    total_in = sum(c.value for c in chosen)
    to_self = payee in {c.pubkey_hash for c in chosen}
    value = _net_of_fee(params, total_in, to_self, fee_margin_per_mille)
    if not chosen or value < params.dust_limit:
        fee = required_fee(params, 0 if to_self else params.dust_limit, fee_margin_per_mille)
        raise InsufficientFunds(params.dust_limit + fee, total_in)
    return _finish(params, chosen, [TxOut(value, payee)], 0)
