"""The wallet's side of a node: balances, coins, sending and waiting for finality over JSON-RPC
(``getblockchaininfo``, ``getbalance``, ``listunspent``, ``sendrawtransaction``,
``waittransactionfinality``; docs/wallet.md).

The node holds no key: the wallet selects coins (:mod:`timecoin.wallet.coinselect`), signs with
``Transaction.signed_with`` over the chain id the node reports (its genesis hash), and submits
the signed bytes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from timecoin.core.address import decode_address
from timecoin.core.types import OutPoint
from timecoin.params import NetworkParams
from timecoin.rpc.client import JSONRPCError, RPCClient
from timecoin.rpc.errors import METHOD_NOT_FOUND
from timecoin.wallet.coinselect import Selection, SpendableCoin, select_coins
from timecoin.wallet.keystore import Keystore

MIN_CONFIRMATIONS = 1
"""Coins the wallet spends: any committed one (a block's coins have one confirmation)."""


class WalletError(Exception):
    """The node cannot serve this wallet (another network) or lacks a method it needs."""


@dataclass(frozen=True, slots=True)
class Sent:
    """A submitted transfer: txid (hex), the encoded signed transaction, fee and change (sat)."""

    txid: str
    raw: bytes
    fee: int
    change: int
    inputs: int


class NodeWallet:
    """A keystore's view of the chain through a node's RPC."""

    def __init__(self, rpc: RPCClient, params: NetworkParams) -> None:
        self.rpc = rpc
        self.params = params
        self._chain_id: bytes | None = None

    def chain_id(self) -> bytes:
        """The chain id signatures commit to (the genesis hash), after checking that the node
        runs this wallet's network; :class:`WalletError` if not."""
        if self._chain_id is None:
            info = self.rpc.getblockchaininfo()
            if info["chain"] != self.params.name:
                raise WalletError(f"the node runs {info['chain']}, this wallet is for {self.params.name}")
            self._chain_id = bytes.fromhex(info["genesis"])
        return self._chain_id

    def balance(self, addresses: Sequence[str]) -> dict[str, Any]:
        """``getbalance`` of the addresses (TIME and sat: total, locked, available)."""
        self.chain_id()
        return self.rpc.getbalance(*addresses)  # type: ignore[no-any-return]

    def spendable(self, addresses: Sequence[str]) -> list[SpendableCoin]:
        """The committed coins of the addresses that no pending transaction spends."""
        self.chain_id()
        coins = self.rpc.listunspent(MIN_CONFIRMATIONS, list(addresses))
        return [
            SpendableCoin(
                OutPoint(bytes.fromhex(c["txid"]), c["vout"]),
                c["amount_sat"],
                decode_address(c["address"], self.params),
            )
            for c in coins
        ]

    def build(
        self,
        keystore: Keystore,
        payments: Sequence[tuple[str, int]],
        *,
        fee_margin_per_mille: int = 0,
    ) -> tuple[Selection, bytes]:
        """Selects coins for ``payments`` ((address, sat)) and signs; (selection, encoded
        signed transaction). Change goes to the keystore's first address. Raises
        ``AddressError`` for a bad address, ``InsufficientFunds``, ``ValueError``."""
        if not keystore.keys:
            raise WalletError("the wallet has no keys")
        decoded = [(decode_address(a, self.params), v) for a, v in payments]
        chain_id = self.chain_id()
        selection = select_coins(
            self.params,
            self.spendable(keystore.addresses),
            decoded,
            keystore.keys[0].pubkey_hash,
            fee_margin_per_mille=fee_margin_per_mille,
        )
        secrets = {k.pubkey_hash: k.secret for k in keystore.keys}
        signed = selection.transaction.signed_with(
            [secrets[c.pubkey_hash] for c in selection.coins], chain_id, int(self.params.network)
        )
        return selection, signed.encode()

    def send(
        self,
        keystore: Keystore,
        payments: Sequence[tuple[str, int]],
        *,
        fee_margin_per_mille: int = 0,
    ) -> Sent:
        """:meth:`build`, then ``sendrawtransaction``; a rejection raises the node's
        ``JSONRPCError`` (code and reject code)."""
        selection, raw = self.build(keystore, payments, fee_margin_per_mille=fee_margin_per_mille)
        txid = self.rpc.sendrawtransaction(raw.hex())
        return Sent(txid, raw, selection.fee, selection.change, len(selection.coins))

    def wait_final(self, txid: str, timeout: float) -> dict[str, Any]:
        """``waittransactionfinality``: the transaction's finality status once final or
        rejected, or as it stands after ``timeout`` seconds. :class:`WalletError` if the node
        does not offer the method."""
        try:
            return self.rpc.waittransactionfinality(txid, int(timeout * 1000))  # type: ignore[no-any-return]
        except JSONRPCError as e:
            if e.code == METHOD_NOT_FOUND:
                raise WalletError(
                    "the node has no waittransactionfinality: it cannot report finality"
                ) from None
            raise
