"""Pre-signed load: fan-out transactions that split the genesis accounts' coins into many, then
one transfer per resulting coin, so every load transaction spends an independent coin and none
conflicts or waits for another (DESIGN §11 load test).

Signing is native and batched: one ``sign_encoded_transactions`` call (GIL released, all cores)
per batch of ``batch_size`` transactions. Every transaction sends everything back to its owner's
key, so it pays exactly the minimum fee of a self-send (DESIGN §4, ``NetworkParams.min_fee(0)``:
the base only).

The generator only builds bytes: it submits nothing and never reads a node. It times itself
(:attr:`Generator.stats`) so a load test can show it is not the bottleneck.
"""

from __future__ import annotations

import struct
import time
from dataclasses import dataclass

import timecoin_native

from timecoin import crypto
from timecoin.core.address import pubkey_hash
from timecoin.core.types import OutPoint, Transaction, TxOut, sign_encoded_transactions
from timecoin.ledger.genesis import GenesisConfig, build_genesis
from timecoin.params import NetworkParams

__all__ = [
    "DEFAULT_BATCH",
    "MAX_FANOUT",
    "GeneratorStats",
    "Generator",
    "SpendableCoin",
    "spendable_total",
    "unsigned_transfer_1to1",
]

DEFAULT_BATCH = 4096
"""Transactions per native signing call."""
MAX_FANOUT = 2000
"""Most outputs of one fan-out transaction: 2000 × 40 bytes ≈ 80 kB, well under the 1 MB
transaction limit of DESIGN §4, so fan-outs propagate and validate like ordinary transactions."""


@dataclass(frozen=True, slots=True)
class SpendableCoin:
    """A coin the generator may spend: its outpoint, value (sat) and the owner's 32-byte seed."""

    outpoint: OutPoint
    value: int
    key: bytes


@dataclass(slots=True)
class GeneratorStats:
    """Transactions built and signed, and the wall-clock seconds it took."""

    transactions: int = 0
    seconds: float = 0.0

    @property
    def rate(self) -> float:
        """Transactions per second (0 before any)."""
        return self.transactions / self.seconds if self.seconds > 0 else 0.0


def spendable_total(value: int, params: NetworkParams) -> int:
    """The largest output total a coin of ``value`` sat can pay back to its own owner at the
    minimum fee: every output of the load pays the spent coin's key, so nothing is sent to
    others and the fee is the base only, ``params.min_fee(0)`` (DESIGN §4 fee rule).
    ``ValueError`` if the coin cannot even pay the fee."""
    total = value - params.min_fee(0)
    if total <= 0:
        raise ValueError(f"a coin of {value} sat cannot pay the minimum fee")
    return total


def _transfer_template() -> tuple[bytes, bytes, bytes]:
    """The fixed parts of an unsigned one-input, one-output transfer, cut from the canonical
    encoding (docs/encoding.md): head ‖ outpoint ‖ mid ‖ value u64 ‖ pubkey_hash ‖ tail."""
    outpoint, out = OutPoint(b"\x11" * 32, 0x22222222), TxOut(0x3333333333333333, b"\x44" * 32)
    raw = Transaction.transfer([outpoint], [out]).encode()
    op, txout = outpoint.encode(), out.encode()
    i, j = raw.index(op), raw.index(txout)
    return raw[:i], raw[i + len(op) : j], raw[j + len(txout) :]


_HEAD, _MID, _TAIL = _transfer_template()
_U64 = struct.Struct("<Q")


def unsigned_transfer_1to1(outpoint: bytes, value: int, owner: bytes) -> bytes:
    """The unsigned encoding of a transfer of one 36-byte encoded outpoint to one output of
    ``value`` sat paid to the 32-byte ``owner`` hash: the canonical encoding's bytes joined
    without building objects (:func:`Generator.spends` checks it against the codec each batch)."""
    return b"".join((_HEAD, outpoint, _MID, _U64.pack(value), owner, _TAIL))


class Generator:
    """Builds and signs load transactions over a pool of :class:`SpendableCoin`.

    :meth:`fan_out` spends pool coins into more coins (one level; the new coins are spendable
    once the fan-out transactions are committed or final); :meth:`spends` makes one transfer per
    pool coin. Both take coins out of the pool, so no two transactions spend one outpoint."""

    def __init__(
        self,
        params: NetworkParams,
        chain_id: bytes,
        coins: list[SpendableCoin],
        batch_size: int = DEFAULT_BATCH,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.params = params
        self.chain_id = chain_id
        self.coins = list(coins)
        """The pool, in a deterministic order."""
        self.batch_size = batch_size
        self.stats = GeneratorStats()
        self._owners: dict[bytes, bytes] = {}

    @classmethod
    def from_genesis(
        cls, config: GenesisConfig, account_keys: list[bytes], batch_size: int = DEFAULT_BATCH
    ) -> Generator:
        """A generator over the genesis allocations paid to ``account_keys`` (32-byte seeds)."""
        genesis = build_genesis(config)
        coinbase = genesis.block.transactions[0]
        owners = {pubkey_hash(crypto.public_key(k)): k for k in account_keys}
        coins = [
            SpendableCoin(OutPoint(coinbase.txid, vout), out.value, owners[out.pubkey_hash])
            for vout, out in enumerate(coinbase.outputs[: len(config.allocations)])
            if out.pubkey_hash in owners
        ]
        if not coins:
            raise ValueError("no genesis allocation is paid to the given account keys")
        return cls(config.params, genesis.hash, coins, batch_size)

    def _owner(self, key: bytes) -> bytes:
        owner = self._owners.get(key)
        if owner is None:
            owner = self._owners[key] = pubkey_hash(crypto.public_key(key))
        return owner

    def fanout_plan(self, want: int, max_outputs: int = MAX_FANOUT) -> list[int]:
        """Coins in the pool after each fan-out level needed to hold at least ``want`` coins
        (empty if the pool already does). ``ValueError`` if the pool is empty and ``want`` > 0
        (no fan-out can grow it)."""
        if not self.coins and want > 0:
            raise ValueError(f"no coins to fan out into {want}")
        levels, have = [], len(self.coins)
        while have < want:
            have = min(want, have * max_outputs)
            levels.append(have)
        return levels

    def fan_out(self, want: int, max_outputs: int = MAX_FANOUT) -> list[bytes]:
        """One fan-out level: spends pool coins into outputs so the pool holds ``min(want, pool
        × max_outputs)`` coins (split as evenly as the coins allow), returns the encoded signed
        transactions, and replaces the pool with their outputs. ``ValueError`` if a coin is
        too small to split."""
        if not 2 <= max_outputs <= MAX_FANOUT * 10:
            raise ValueError(f"max_outputs must be in 2..{MAX_FANOUT * 10}, got {max_outputs}")
        sources = self.coins
        target = min(want, len(sources) * max_outputs)
        per, extra = divmod(target, len(sources))
        started = time.perf_counter()
        unsigned: list[bytes] = []
        plan: list[tuple[SpendableCoin, list[TxOut]]] = []
        for i, coin in enumerate(sources):
            n = per + (1 if i < extra else 0)
            if n == 0:
                continue
            total = spendable_total(coin.value, self.params)
            share = total // n
            if share <= self.params.dust_limit:
                raise ValueError(f"coin of {coin.value} sat is too small to split into {n} outputs")
            owner = self._owner(coin.key)
            outputs = [TxOut(share, owner)] * (n - 1) + [TxOut(total - share * (n - 1), owner)]
            unsigned.append(Transaction.transfer([coin.outpoint], outputs).encode())
            plan.append((coin, outputs))
        signed = self._sign(unsigned, [coin.key for coin, _ in plan])
        pool: list[SpendableCoin] = []
        for txid, (coin, outputs) in zip(timecoin_native.txids(signed), plan, strict=True):
            pool.extend(
                SpendableCoin(OutPoint(txid, v), out.value, coin.key) for v, out in enumerate(outputs)
            )
        self.coins = pool
        self.stats.seconds += time.perf_counter() - started
        return signed

    def spends(self, count: int) -> list[bytes]:
        """``count`` encoded signed transfers, each spending one pool coin (taken out of the pool)
        back to its owner at the minimum fee. ``ValueError`` if the pool holds fewer coins."""
        if count > len(self.coins):
            raise ValueError(f"the pool holds {len(self.coins)} coins, {count} spends asked")
        started = time.perf_counter()
        taken, self.coins = self.coins[:count], self.coins[count:]
        out: list[bytes] = []
        for i in range(0, count, self.batch_size):
            batch = taken[i : i + self.batch_size]
            unsigned = [
                unsigned_transfer_1to1(
                    c.outpoint.encode(), spendable_total(c.value, self.params), self._owner(c.key)
                )
                for c in batch
            ]
            first = batch[0]
            canonical = Transaction.transfer(
                [first.outpoint], [TxOut(spendable_total(first.value, self.params), self._owner(first.key))]
            ).encode()
            if unsigned[0] != canonical:
                raise RuntimeError("unsigned_transfer_1to1 disagrees with the codec; fix the template")
            out.extend(self._sign(unsigned, [c.key for c in batch]))
        self.stats.seconds += time.perf_counter() - started
        return out

    def _sign(self, unsigned: list[bytes], keys: list[bytes]) -> list[bytes]:
        out: list[bytes] = []
        network = int(self.params.network)
        for i in range(0, len(unsigned), self.batch_size):
            out.extend(
                sign_encoded_transactions(
                    unsigned[i : i + self.batch_size],
                    [[k] for k in keys[i : i + self.batch_size]],
                    self.chain_id,
                    network,
                )
            )
        self.stats.transactions += len(unsigned)
        return out
