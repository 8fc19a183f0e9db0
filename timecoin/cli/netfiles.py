"""The files that define a new network, shared by ``timecoin devnet`` (one machine) and
``timecoin testnet init`` (several): its genesis, the funded accounts' keys and key files.

Keys come from :func:`timecoin.testing.chaingen.devnet_genesis`: every key is derived from one
seed, so a devnet's fixed seed gives the same network every time, and ``testnet init``'s random
seed (never written) gives keys nobody else can derive. This module writes files only; it starts
nothing and opens no socket.

Files (in a keys directory, mode 0700; each file mode 0600)::

    accounts.json   the funded accounts' 32-byte secret seeds, a JSON list of hex strings (the
                    load test spends them: ``timecoin loadtest --funding-key``)
    faucet.key      one more funded account the load test never spends, 64 hex digits, for
                    ``timecoin wallet import-key`` (docs/wallet.md)
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import orjson

from timecoin.ledger.genesis import GenesisConfig
from timecoin.params import NetworkParams
from timecoin.testing.chaingen import devnet_genesis

__all__ = [
    "ACCOUNTS_FILE",
    "FAUCET_KEY",
    "KEY_FILE_MODE",
    "NetworkKeys",
    "new_network",
    "write_funding",
    "write_key",
    "write_secret",
]

ACCOUNTS_FILE = "accounts.json"
"""In the keys directory: the load test's funded accounts."""
FAUCET_KEY = "faucet.key"
"""In the keys directory: the secret seed (hex) of a funded genesis account for a wallet."""
KEY_FILE_MODE = 0o600
"""Mode of every secret file: readable by its owner only (docs/operator.md, "Installing")."""
KEYS_DIR_MODE = 0o700


@dataclass(frozen=True)
class NetworkKeys:
    """A new network: its genesis configuration and the 32-byte secret seeds behind it."""

    config: GenesisConfig
    accounts: list[bytes]
    """The load test's funded accounts, in genesis allocation order."""
    faucet: bytes
    """The last allocation: a wallet's, never spent by the load test."""
    masternodes: list[bytes]
    """The genesis masternodes' keys (each also owns its collateral and payout), in genesis order."""


def new_network(
    seed: bytes, accounts: int, masternodes: int, params: NetworkParams, timestamp: int
) -> NetworkKeys:
    """A genesis funding ``accounts`` + 1 keys (the faucet last) and registering ``masternodes``
    Gold masternodes on ``params``' network, every key derived from ``seed``; ``timestamp`` in
    unix seconds."""
    config, account_keys, mn_keys = devnet_genesis(
        seed, accounts=accounts + 1, masternodes=masternodes, params=params, timestamp=timestamp
    )
    faucet = account_keys.pop()
    return NetworkKeys(config, account_keys, faucet, mn_keys)


def write_secret(path: Path, data: bytes) -> None:
    """Writes ``data`` to ``path`` created with mode :data:`KEY_FILE_MODE` (never readable by
    others, not even for a moment); an existing file is truncated and keeps its mode."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, KEY_FILE_MODE)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def write_key(path: Path, seed: bytes) -> None:
    """A key file: the 32-byte secret seed as 64 hex digits and a newline, mode 0600 (the format
    ``masternode_key`` and ``nodekey`` are read in)."""
    write_secret(path, seed.hex().encode() + b"\n")


def write_funding(keys_dir: Path, keys: NetworkKeys) -> None:
    """Writes ``keys_dir``/:data:`ACCOUNTS_FILE` and :data:`FAUCET_KEY` (module docstring),
    creating ``keys_dir`` with mode 0700 if needed."""
    keys_dir.mkdir(parents=True, exist_ok=True, mode=KEYS_DIR_MODE)
    write_key(keys_dir / FAUCET_KEY, keys.faucet)
    write_secret(keys_dir / ACCOUNTS_FILE, orjson.dumps([k.hex() for k in keys.accounts]))
