"""The TIME Coin wallet: an encrypted keystore of derived Ed25519 keys, coin selection, signing,
and the node calls to send and follow transfers (DESIGN §10; docs/wallet.md)."""

from timecoin.wallet.coinselect import (
    InsufficientFunds,
    Selection,
    SpendableCoin,
    required_fee,
    select_coins,
    sweep,
)
from timecoin.wallet.keystore import Key, Keystore, KeystoreError, derive_key, read_public
from timecoin.wallet.node import NodeWallet, Sent, WalletError

__all__ = [
    "InsufficientFunds",
    "Key",
    "Keystore",
    "KeystoreError",
    "NodeWallet",
    "Selection",
    "Sent",
    "SpendableCoin",
    "WalletError",
    "derive_key",
    "read_public",
    "required_fee",
    "select_coins",
    "sweep",
]
