"""RPC methods over the coins of given addresses (Bitcoin Core's "wallet" category, DESIGN §10).

The node keeps no wallet: these methods answer for the addresses a client names (its own
wallet's, :mod:`timecoin.wallet`), by one native scan of the UTXO set
(``UtxoSet.coins_of``). Only committed coins exist here: a pending transaction's outputs are not
spendable until a block holds them, so every listed coin has at least one confirmation. A coin
a pending or final-but-unarchived transaction spends is *locked* (DESIGN §4, UTXO states):
``listunspent`` leaves it out unless asked, and ``getbalance`` reports it apart.

Amounts are given twice, as everywhere in the RPC: TIME as a JSON number (8 decimals) and sat as
an exact integer.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from timecoin.core.address import AddressError, decode_address
from timecoin.core.types import Coin, OutPoint
from timecoin.rpc import render
from timecoin.rpc.errors import INVALID_ADDRESS_OR_KEY, INVALID_PARAMETER, RPCError
from timecoin.rpc.methods import Param, rpc_method

if TYPE_CHECKING:
    from timecoin.node import Node

CATEGORY = "Wallet"
MAX_ADDRESSES = 10_000
"""Most addresses one call names (a wallet's worth; the scan costs the same for any number)."""


def _owners(node: Node, addresses: list[Any]) -> dict[bytes, str]:
    """pubkey_hash → address for each distinct address; -5 naming the first bad one, -8 for
    none or too many."""
    if not addresses:
        raise RPCError(INVALID_PARAMETER, "at least one address is required")
    if len(addresses) > MAX_ADDRESSES:
        raise RPCError(INVALID_PARAMETER, f"{len(addresses)} addresses exceed the limit of {MAX_ADDRESSES}")
    owners: dict[bytes, str] = {}
    for i, address in enumerate(addresses):
        if not isinstance(address, str):
            raise RPCError(INVALID_ADDRESS_OR_KEY, f"Invalid address at position {i}: not a string")
        try:
            owners.setdefault(decode_address(address, node.params), address)
        except AddressError as e:
            raise RPCError(INVALID_ADDRESS_OR_KEY, f"Invalid address: {e}") from None
    return owners


def _coins(node: Node, owners: dict[bytes, str]) -> list[tuple[bytes, Coin]]:
    # On the event loop, like every reader of the set: the scan (GIL released) is short and the
    # set must not change under it (UtxoSet is not shared with worker threads).
    return [(op, Coin.decode(c)) for op, c in node.chain.utxos.coins_of(b"".join(owners))]


@rpc_method(
    CATEGORY,
    Param("minconf", "int", "Only coins with at least this many confirmations (a block's coins have 1)."),
    Param("addresses", "array", "The addresses whose coins to list (strings)."),
    Param(
        "include_locked",
        "bool",
        "Also list coins a pending or final (unarchived) transaction spends.",
        False,
        False,
    ),
)
def listunspent(node: Node, minconf: int, addresses: list[Any], include_locked: bool) -> list[dict[str, Any]]:
    """The unspent outputs paying to ``addresses``, sorted by txid and vout: ``txid``, ``vout``,
    ``address``, ``amount`` (TIME), ``amount_sat``, ``height`` (of the block that created it),
    ``confirmations``, ``coinbase`` and ``locked`` (a pending transaction, or a final one no
    block archives yet, spends it).

    Errors: -5 for an address that does not decode on this network (the message says why), -8
    for a negative minconf or an empty address list."""
    if minconf < 0:
        raise RPCError(INVALID_PARAMETER, f"minconf must be >= 0, got {minconf}")
    owners = _owners(node, addresses)
    tip = node.chain.tip.height
    out = []
    for op, coin in _coins(node, owners):
        confirmations = tip - coin.height + 1
        if confirmations < minconf:
            continue
        locked = node.spender_of(op) is not None
        if locked and not include_locked:
            continue
        outpoint = OutPoint.decode(op)
        out.append(
            {
                "txid": outpoint.txid.hex(),
                "vout": outpoint.vout,
                "address": owners[coin.pubkey_hash],
                "amount": render.amount(coin.value),
                "amount_sat": coin.value,
                "height": coin.height,
                "confirmations": confirmations,
                "coinbase": coin.is_coinbase,
                "locked": locked,
            }
        )
    return out


@rpc_method(
    CATEGORY,
    Param("address", "str", "An address whose coins count (more may follow).", variadic=True),
)
def getbalance(node: Node, address: list[Any]) -> dict[str, Any]:
    """The committed balance of one or more addresses: ``balance``/``balance_sat`` (every
    unspent coin), ``locked``/``locked_sat`` (the part pending or final unarchived transactions spend),
    ``available``/``available_sat`` (the rest, what a wallet can spend now), ``coins``, the tip
    ``height`` and ``hash``, and per address the same in ``addresses``.

    Errors: -5 for an address that does not decode on this network (the message says why)."""
    owners = _owners(node, address)
    per: dict[bytes, list[int]] = {h: [0, 0, 0] for h in owners}  # total, locked, coins
    for op, coin in _coins(node, owners):
        row = per[coin.pubkey_hash]
        row[0] += coin.value
        row[2] += 1
        if node.spender_of(op) is not None:
            row[1] += coin.value
    total = sum(r[0] for r in per.values())
    locked = sum(r[1] for r in per.values())
    tip = node.chain.tip
    return _amounts(total, locked) | {
        "coins": sum(r[2] for r in per.values()),
        "height": tip.height,
        "hash": tip.block_hash.hex(),
        "addresses": [
            {"address": owners[h]} | _amounts(r[0], r[1]) | {"coins": r[2]} for h, r in per.items()
        ],
    }


def _amounts(total: int, locked: int) -> dict[str, Any]:
    return {
        "balance": render.amount(total),
        "balance_sat": total,
        "locked": render.amount(locked),
        "locked_sat": locked,
        "available": render.amount(total - locked),
        "available_sat": total - locked,
    }
