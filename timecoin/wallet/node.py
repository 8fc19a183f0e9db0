"""The wallet's side of a node: balances, coins, sending and waiting for finality over JSON-RPC
(``getblockchaininfo``, ``getbalance``, ``listunspent``, ``sendrawtransaction``,
``waittransactionfinality``; docs/wallet.md).

The node holds no key: the wallet selects coins (:mod:`timecoin.wallet.coinselect`), signs with
``Transaction.signed_with`` over the chain id the node reports (its genesis hash), and submits
the signed bytes.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from timecoin.core.address import decode_address
from timecoin.core.types import OutPoint
from timecoin.params import NetworkParams
from timecoin.rpc.client import JSONRPCError, RPCClient
from timecoin.rpc.errors import METHOD_NOT_FOUND
from timecoin.wallet.coinselect import Selection, SpendableCoin, select_coins, sweep
from timecoin.wallet.keystore import Keystore

MIN_CONFIRMATIONS = 1
"""Coins the wallet spends: any committed one (a block's coins have one confirmation)."""
FINAL_STATES = ("final", "rejected")
"""``gettransactionfinality`` states that no longer change (timecoin.rpc.consensus)."""
SPENT_FINAL = "txn-spent-final"
"""Reject code of a transaction spending a coin that a final transaction spends
(timecoin.consensus.finality)."""


class WalletError(Exception):
    """The node cannot serve this wallet (another network), lacks a method it needs, or refused a
    transfer for a reason the wallet explains."""


@dataclass(frozen=True, slots=True)
class Sent:
    """A submitted transfer: txid (hex), the encoded signed transaction, what the payees receive,
    the fee and the change (sat), the inputs spent, and ``submitted`` (``time.monotonic()`` when
    the node accepted it, for the finality latency)."""

    txid: str
    raw: bytes
    paid: int
    fee: int
    change: int
    inputs: int
    submitted: float


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

    def collaterals(self) -> set[OutPoint]:
        """The collateral outpoints of every registered masternode (``masternodelist``)."""
        return {
            OutPoint(bytes.fromhex(row["collateral"]["txid"]), row["collateral"]["vout"])
            for row in self.rpc.masternodelist()
            if row.get("collateral") is not None
        }

    def unspent(self, addresses: Sequence[str]) -> list[SpendableCoin]:
        """The committed coins of the addresses that no pending transaction spends, collaterals
        included."""
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

    def spendable(self, addresses: Sequence[str]) -> list[SpendableCoin]:
        """The committed coins of the addresses that no pending transaction spends and that are
        no registered masternode's collateral: spending one would deregister its masternode
        (docs/masternodes.md §1; "locked while registered" is wallet policy, DESIGN §5)."""
        locked = self.collaterals()
        return [c for c in self.unspent(addresses) if c.outpoint not in locked]

    def select(
        self,
        keystore: Keystore,
        payments: Sequence[tuple[str, int]],
        *,
        fee_margin_per_mille: int = 0,
        subtract_fee: bool = False,
        send_all: bool = False,
    ) -> Selection:
        """Selects coins of the keystore's addresses for ``payments`` ((address, sat)); the
        change goes back to the address of the largest coin spent (DESIGN §4: base fee only).
        ``send_all``: one payment of every spendable coin, less the fee (its amount is
        ignored). Raises ``AddressError`` for a bad address, ``InsufficientFunds``,
        ``ValueError``, :class:`WalletError`."""
        if not keystore.addresses:
            raise WalletError("the wallet has no keys")
        decoded = [(decode_address(a, self.params), v) for a, v in payments]
        coins = self.spendable(keystore.addresses)
        if send_all:
            if len(decoded) != 1:
                raise ValueError("--all pays a single address")
            return sweep(self.params, coins, decoded[0][0], fee_margin_per_mille=fee_margin_per_mille)
        return select_coins(
            self.params, coins, decoded, fee_margin_per_mille=fee_margin_per_mille, subtract_fee=subtract_fee
        )

    def sign(self, keystore: Keystore, selection: Selection) -> bytes:
        """The encoded transaction of ``selection`` signed with the keystore's keys over the
        node's chain id."""
        secrets = {k.pubkey_hash: k.secret for k in keystore.all_keys}
        signed = selection.transaction.signed_with(
            [secrets[c.pubkey_hash] for c in selection.coins], self.chain_id(), int(self.params.network)
        )
        return signed.encode()

    def build(
        self,
        keystore: Keystore,
        payments: Sequence[tuple[str, int]],
        *,
        fee_margin_per_mille: int = 0,
    ) -> tuple[Selection, bytes]:
        """:meth:`select` and :meth:`sign`: (selection, encoded signed transaction)."""
        selection = self.select(keystore, payments, fee_margin_per_mille=fee_margin_per_mille)
        return selection, self.sign(keystore, selection)

    def submit(self, selection: Selection, raw: bytes) -> Sent:
        """``sendrawtransaction`` of the signed ``raw``; a rejection raises the node's
        ``JSONRPCError`` (code and reject code), or :class:`WalletError` when a chosen coin is
        spent by a final transaction that no block holds yet (``txn-spent-final``: such a spend
        does not lock the coin in ``listunspent``, so only the next block shows it spent)."""
        try:
            txid = self.rpc.sendrawtransaction(raw.hex())
        except JSONRPCError as e:
            if e.message.startswith(SPENT_FINAL):
                raise WalletError(
                    f"the node refused: {e.message}; a coin this wallet chose is spent by a final "
                    "transaction not yet in a block, so send again after the next block"
                ) from None
            raise
        return Sent(
            txid,
            raw,
            selection.paid,
            selection.fee,
            selection.change,
            len(selection.coins),
            time.monotonic(),
        )

    def send(
        self,
        keystore: Keystore,
        payments: Sequence[tuple[str, int]],
        *,
        fee_margin_per_mille: int = 0,
    ) -> Sent:
        """:meth:`build`, then :meth:`submit`."""
        selection, raw = self.build(keystore, payments, fee_margin_per_mille=fee_margin_per_mille)
        return self.submit(selection, raw)

    def wait_final(self, txid: str, timeout: float) -> dict[str, Any]:
        """``waittransactionfinality``: the transaction's finality status once final or
        rejected, or as it stands after ``timeout`` seconds (0 asks once). The wait is split
        into calls of at most half the RPC client's own timeout, so a long wait never outlasts
        the HTTP read. ``ValueError`` for a negative timeout; :class:`WalletError` if the node
        does not offer the method."""
        if not timeout >= 0:
            raise ValueError(f"the finality wait must be >= 0 seconds, got {timeout}")
        deadline = time.monotonic() + timeout
        while True:
            remaining = max(0.0, deadline - time.monotonic())
            chunk = min(remaining, self.rpc.timeout / 2)
            try:
                status: dict[str, Any] = self.rpc.waittransactionfinality(txid, int(chunk * 1000))
            except JSONRPCError as e:
                if e.code == METHOD_NOT_FOUND:
                    raise WalletError(
                        "the node has no waittransactionfinality: it cannot report finality"
                    ) from None
                raise
            if status.get("status") in FINAL_STATES or time.monotonic() >= deadline:
                return status

    def wait_block(self, txid: str, timeout: float) -> int | None:
        """Waits until a committed block holds ``txid`` (``gettransactionfinality``'s
        ``height``), for at most ``timeout`` seconds, in ``waitfornewblock`` long polls of at
        most half the RPC client's timeout; the block's height, or None if none holds it by
        then."""
        deadline = time.monotonic() + timeout
        while True:
            height = self.rpc.gettransactionfinality(txid).get("height")
            remaining = deadline - time.monotonic()
            if height is not None or remaining <= 0:
                return height if isinstance(height, int) else None
            self.rpc.waitfornewblock(max(1, int(min(remaining, self.rpc.timeout / 2) * 1000)))
