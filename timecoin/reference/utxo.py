"""Pure-Python twin of the native UTXO set and validation (native/src/{utxo,validate,apply}.rs):
same entry points as ``timecoin_native.UtxoSet``, same rules in the same order, same rejection
codes, same undo record bytes and the same store delta. It is the test oracle of the native set
and the benchmark baseline of the validation pipeline; it never runs in the node.

Parsing is :mod:`timecoin.reference.codec`, signatures :mod:`timecoin.reference.crypto`, the set
hash :mod:`timecoin.reference.lthash`. The set is a plain ``dict`` from 36-byte outpoint to
49-byte coin; ``touched`` remembers, for every outpoint changed since the last
:meth:`UtxoSet.take_delta`, what the store holds for it (``None``: not in the store).
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from timecoin.reference import codec, crypto
from timecoin.reference.lthash import LtHash
from timecoin.store.chainstore import coin_key

UNDO_VERSION = 1
"""Version byte of the undo record (docs/encoding.md, "Undo record")."""
TX_VERSION = 1
"""The transaction version validated (docs/encoding.md)."""

_COINBASE, _REGISTER = 1, 2
_EXTRA_WITNESSES = {0: 0, 1: 0, 2: 2, 3: 1, 4: 1}
_U64_MAX = 2**64 - 1
_U32 = struct.Struct("<I")
_COIN = struct.Struct("<Q32sQB")
_UNDO_HEAD = struct.Struct("<BQ32s32s")
_HEADER_LEN = 296


class Rules(Protocol):
    """What validation reads from ``timecoin_native.LedgerRules`` (or any object like it)."""

    @property
    def chain_id(self) -> bytes: ...
    @property
    def network(self) -> int: ...
    @property
    def dust_limit(self) -> int: ...
    @property
    def min_fee_base(self) -> int: ...
    @property
    def min_fee_per_mille(self) -> int: ...
    @property
    def max_tx_size(self) -> int: ...
    @property
    def max_block_size(self) -> int: ...


class ValidationError(ValueError):
    """A rejection: stable ``code``, ``message``, ``tx_index`` (or None)."""

    def __init__(self, code: str, message: str, tx_index: int | None = None) -> None:
        super().__init__(code, message, tx_index)
        self.code, self.message, self.tx_index = code, message, tx_index

    def __str__(self) -> str:
        where = f"transaction {self.tx_index}: " if self.tx_index is not None else ""
        return f"{self.code}: {where}{self.message}"


class _Reject(Exception):
    """A rejection of one transaction before its index is known."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(code, message)
        self.code, self.message = code, message


@dataclass(frozen=True)
class AppliedBlock:
    height: int
    block_hash: bytes
    txids: list[bytes]
    fees: int
    undo: bytes
    coinbase_outputs: list[tuple[int, bytes]]
    masternode_txs: list[tuple[int, int, bytes]]


@dataclass(frozen=True)
class TxVerdict:
    ok: bool
    txid: bytes | None
    kind: int | None
    fee: int
    size: int
    inputs: bytes
    code: str
    message: str


def _encoded_len(tx: tuple[Any, ...]) -> int:
    """Length of a decoded transaction's canonical encoding, bytes (docs/encoding.md)."""
    return 25 + 36 * len(tx[2]) + 40 * len(tx[3]) + len(tx[5]) + 96 * len(tx[6])


def _outpoint(txid: bytes, vout: int) -> bytes:
    return txid + _U32.pack(vout)


def _show(key: bytes) -> str:
    return f"{key[:32].hex()}:{_U32.unpack(key[32:])[0]}"


def _codec_reject(e: ValueError) -> tuple[str, str]:
    return "bad-encoding", str(e)


def min_fee(rules: Rules, sent_to_others: int) -> int:
    """``min_fee_base + sent_to_others × min_fee_per_mille // 1000``, sat (DESIGN §4)."""
    return rules.min_fee_base + sent_to_others * rules.min_fee_per_mille // 1000


def sent_to_others(outputs: Sequence[tuple[int, bytes]], spent_from: Sequence[bytes]) -> int:
    """The value (sat) of the ``outputs`` ((value, pubkey_hash)) paying none of ``spent_from``,
    the pubkey_hashes of the coins the inputs spend (DESIGN §4: change and self-sends are not
    sent to others)."""
    own = set(spent_from)
    return sum(value for value, pubkey_hash in outputs if pubkey_hash not in own)


# -- transaction rules (validate.rs) -----------------------------------------------------------


def _check_common(tx: tuple[Any, ...], size: int, rules: Rules, height: int) -> None:
    version, _, _, _, lock_time, _, _ = tx
    if size > rules.max_tx_size:
        raise _Reject("tx-too-large", f"transaction is {size} bytes, over {rules.max_tx_size}")
    if version != TX_VERSION:
        raise _Reject("bad-version", f"transaction version {version} is not {TX_VERSION}")
    if lock_time > height:
        raise _Reject("lock-time", f"lock_time {lock_time} is above the block height {height}")


def _total_output(outputs: Sequence[tuple[int, bytes]]) -> int:
    total = sum(value for value, _ in outputs)
    if total > _U64_MAX:
        raise _Reject("value-overflow", "total output value overflows u64")
    return total


def check_stateless(tx: tuple[Any, ...], size: int, rules: Rules, height: int) -> int:
    """Rules that need no set; returns the total output value, sat."""
    _check_common(tx, size, rules, height)
    _, kind, inputs, outputs, _, payload, witnesses = tx
    if not inputs:
        raise _Reject("no-inputs", "a transaction must spend at least one input")
    if not outputs:
        raise _Reject("no-outputs", "a transaction must have at least one output")
    for i, (value, _) in enumerate(outputs):
        if value < rules.dust_limit:
            raise _Reject("dust-output", f"output {i} pays {value} sat, below {rules.dust_limit}")
    total = _total_output(outputs)
    seen: set[tuple[bytes, int]] = set()
    for i, op in enumerate(inputs):
        if op in seen:
            raise _Reject("duplicate-input", f"input {i} spends {_show(_outpoint(*op))} again")
        seen.add(op)
    if len(witnesses) != len(inputs) + _EXTRA_WITNESSES[kind]:
        raise _Reject("bad-witness-count", f"{len(witnesses)} witnesses for {len(inputs)} inputs")
    if kind == _REGISTER and witnesses[len(inputs)][0] != payload[36:68]:
        raise _Reject("wrong-key", f"witness {len(inputs)} must be the registered masternode key")
    return total


def check_coinbase(tx: tuple[Any, ...], size: int, rules: Rules, height: int) -> int:
    _check_common(tx, size, rules, height)
    _, _, inputs, outputs, _, payload, witnesses = tx
    if inputs or witnesses:
        raise _Reject("bad-coinbase", "a coinbase has no inputs and no witnesses")
    if int.from_bytes(payload, "little") != height:
        raise _Reject("bad-coinbase-height", "coinbase height differs from the block height")
    return _total_output(outputs)


def _check_key(i: int, coin: bytes, public_key: bytes) -> int:
    if crypto.hash_in("public_key", public_key) != coin[8:40]:
        raise _Reject("wrong-key", f"witness {i}'s key does not hash to the coin's pubkey_hash")
    return int.from_bytes(coin[:8], "little")


def _check_fee(total_in: int, total_out: int, sent: int, rules: Rules) -> int:
    if total_in > _U64_MAX:
        raise _Reject("value-overflow", "total input value overflows u64")
    if total_in < total_out:
        raise _Reject("insufficient-fee", f"outputs ({total_out} sat) exceed inputs ({total_in} sat)")
    fee = total_in - total_out
    if fee < min_fee(rules, sent):
        raise _Reject("insufficient-fee", f"fee {fee} sat is below the minimum for {sent} sat sent to others")
    return fee


def _at(tx_index: int, check: Callable[..., int], *args: Any) -> int:
    """``check(*args)``, its rejection raised as a ValidationError of transaction ``tx_index``."""
    try:
        return check(*args)
    except _Reject as r:
        raise ValidationError(r.code, r.message, tx_index) from None


def _bad_witnesses(tx: tuple[Any, ...], txid: bytes, rules: Rules) -> list[int]:
    return [
        j
        for j, (pk, sig) in enumerate(tx[6])
        if not crypto.verify(pk, codec.sighash(rules.chain_id, rules.network, txid, j), sig)
    ]


def _decode_undo(undo: bytes) -> tuple[int, bytes, bytes, list[bytes], list[tuple[bytes, bytes]]]:
    """(height, block hash, prior set hash, created outpoints, spent (outpoint, coin)) of an
    undo record, decoded strictly as ``Undo::decode`` (utxo.rs); ``ValueError`` otherwise."""
    if len(undo) < _UNDO_HEAD.size + 4:
        raise ValueError("malformed undo record: truncated")
    version, height, block_hash, prior = _UNDO_HEAD.unpack_from(undo)
    if version != UNDO_VERSION:
        raise ValueError(f"malformed undo record: unknown version {version}")
    pos = _UNDO_HEAD.size
    (n,) = _U32.unpack_from(undo, pos)
    pos += 4
    if pos + 36 * n + 4 > len(undo):
        raise ValueError("malformed undo record: truncated")
    created = [undo[pos + 36 * i : pos + 36 * (i + 1)] for i in range(n)]
    pos += 36 * n
    if pos + 4 > len(undo):
        raise ValueError("malformed undo record: truncated")
    (m,) = _U32.unpack_from(undo, pos)
    pos += 4
    if pos + 85 * m != len(undo):
        raise ValueError("malformed undo record: wrong length")
    spent = [
        (undo[pos + 85 * i : pos + 85 * i + 36], undo[pos + 85 * i + 36 : pos + 85 * (i + 1)])
        for i in range(m)
    ]
    keys = created + [k for k, _ in spent]
    if len(set(keys)) != len(keys) or any(c[48] > 1 for _, c in spent):
        raise ValueError("malformed undo record: repeated outpoint or bad coin")
    return height, block_hash, prior, created, spent


# -- the set (utxo.rs) -------------------------------------------------------------------------


class UtxoSet:
    """Dict model of ``timecoin_native.UtxoSet``."""

    def __init__(self) -> None:
        self.coins: dict[bytes, bytes] = {}
        self.touched: dict[bytes, bytes | None] = {}
        self.hash = LtHash()

    def __len__(self) -> int:
        return len(self.coins)

    def get(self, outpoint: bytes) -> bytes | None:
        return self.coins.get(outpoint)

    def set_hash(self) -> bytes:
        return self.hash.digest()

    def state(self) -> bytes:
        return self.hash.to_bytes()

    def load(self, entries: list[tuple[bytes, bytes]]) -> None:
        seen: set[bytes] = set()
        for i, (key, coin) in enumerate(entries):
            if len(key) != 36 or len(coin) != 49 or coin[48] > 1:
                raise ValueError(f"entry {i}: bad outpoint or coin")
            if key in self.coins or key in seen:
                raise ValueError(f"entry {i}: outpoint {_show(key)} is already in the set")
            seen.add(key)
        for key, coin in entries:
            self.coins[key] = coin
            self.hash.insert(key + coin)
            if key in self.touched:
                self.touched[key] = coin

    def _touch(self, key: bytes) -> None:
        if key not in self.touched:
            self.touched[key] = self.coins.get(key)

    def take_delta(self) -> list[tuple[bytes, bytes | None]]:
        delta: list[tuple[bytes, bytes | None]] = []
        for outpoint, stored in self.touched.items():
            current = self.coins.get(outpoint)
            if current == stored:
                continue
            put = None if current is None else coin_key(outpoint, current)
            if stored is not None and coin_key(outpoint, stored) != put:
                delta.append((coin_key(outpoint, stored), None))
            if put is not None:
                delta.append((put, current))
        self.touched.clear()
        return sorted(delta, key=lambda write: write[0])

    # -- blocks (apply.rs) ----------------------------------------------------------------------

    def apply_block(self, block: bytes, rules: Rules, check_utxo_hash: bool = True) -> AppliedBlock:
        if len(block) > rules.max_block_size:
            raise ValidationError("block-too-large", f"block is {len(block)} bytes", None)
        try:
            (header, txs), txids = codec.decode_block_with_txids(block)
        except ValueError as e:
            raise ValidationError(*_codec_reject(e), None) from None
        height = header[1]
        if not txs:
            raise ValidationError("coinbase-not-first", "block has no transactions", None)
        if txs[0][1] != _COINBASE:
            raise ValidationError("coinbase-not-first", "the first transaction must be the coinbase", 0)
        for i in range(1, len(txs)):
            if txs[i][1] == _COINBASE:
                raise ValidationError("multiple-coinbase", "a block has exactly one coinbase", i)
        if crypto.merkle_root(txids) != header[3]:
            raise ValidationError("bad-merkle-root", "header merkle root is not the txids' root", None)
        for i in range(2, len(txids)):
            if txids[i - 1] >= txids[i]:
                raise ValidationError("bad-tx-order", "transactions not in increasing txid order", i)

        totals = []
        for i, tx in enumerate(txs):
            size = _encoded_len(tx)
            check = check_coinbase if i == 0 else check_stateless
            totals.append(_at(i, check, tx, size, rules, height))
        created: dict[bytes, bytes] = {}
        for i, (tx, txid) in enumerate(zip(txs, txids, strict=True)):
            for vout, (value, pubkey_hash) in enumerate(tx[3]):
                key = _outpoint(txid, vout)
                if key in self.coins:
                    raise ValidationError("output-exists", f"output {vout} is already unspent", i)
                created[key] = _COIN.pack(value, pubkey_hash, height, int(tx[1] == _COINBASE))
        created_spent: set[bytes] = set()
        spent: dict[bytes, bytes] = {}
        fees = 0
        for i in range(1, len(txs)):
            tx = txs[i]
            total_in = 0
            spent_from = []
            for j, op in enumerate(tx[2]):
                key = _outpoint(*op)
                if key in created:
                    if key in created_spent:
                        raise ValidationError("double-spend-in-block", f"input {j} already spent", i)
                    created_spent.add(key)
                    coin = created[key]
                elif key in self.coins:
                    if key in spent:
                        raise ValidationError("double-spend-in-block", f"input {j} already spent", i)
                    coin = spent[key] = self.coins[key]
                else:
                    raise ValidationError("missing-input", f"input {j} spends {_show(key)}", i)
                total_in += _at(i, _check_key, j, coin, tx[6][j][0])
                spent_from.append(coin[8:40])
            fees += _at(i, _check_fee, total_in, totals[i], sent_to_others(tx[3], spent_from), rules)
        if fees > _U64_MAX:
            raise ValidationError("value-overflow", "total fees overflow u64", None)
        for i in range(1, len(txs)):
            bad = _bad_witnesses(txs[i], txids[i], rules)
            if bad:
                raise ValidationError("bad-signature", f"signature of witness {bad} does not verify", i)
        kept = [(k, c) for k, c in created.items() if k not in created_spent]
        new_hash = self.hash.copy()
        for key, coin in kept:
            new_hash.insert(key + coin)
        for key, coin in spent.items():
            new_hash.remove(key + coin)
        if check_utxo_hash and new_hash.digest() != header[4]:
            raise ValidationError("bad-utxo-hash", "header UTXO set hash differs from the set", None)

        prior = self.set_hash()
        for key in spent:
            self._touch(key)
            del self.coins[key]
        for key, coin in kept:
            self._touch(key)
            self.coins[key] = coin
        self.hash = new_hash
        block_hash = codec.block_hash(block[:_HEADER_LEN])
        undo = b"".join(
            [
                _UNDO_HEAD.pack(UNDO_VERSION, height, block_hash, prior),
                _U32.pack(len(kept)),
                *(k for k, _ in kept),
                _U32.pack(len(spent)),
                *(k + c for k, c in spent.items()),
            ]
        )
        return AppliedBlock(
            height=height,
            block_hash=block_hash,
            txids=list(txids),
            fees=fees,
            undo=undo,
            coinbase_outputs=[(v, h) for v, h in txs[0][3]],
            masternode_txs=[(i, tx[1], tx[5]) for i, tx in enumerate(txs) if tx[1] in (2, 3, 4)],
        )

    def rollback(self, undo: bytes) -> None:
        _, _, prior, created, spent = _decode_undo(undo)
        if any(k not in self.coins for k in created) or any(k in self.coins for k, _ in spent):
            raise ValueError("undo record does not match the set")
        new_hash = self.hash.copy()
        for key in created:
            new_hash.remove(key + self.coins[key])
        for key, coin in spent:
            new_hash.insert(key + coin)
        if new_hash.digest() != prior:
            raise ValueError("undo record does not match the set: prior set hash differs")
        for key in created:
            self._touch(key)
            del self.coins[key]
        for key, coin in spent:
            self._touch(key)
            self.coins[key] = coin
        self.hash = new_hash

    def replay_block(self, block: bytes, undo: bytes) -> None:
        (header, txs), txids = codec.decode_block_with_txids(block)
        height, block_hash, _, created, spent = _decode_undo(undo)
        if height != header[1] or block_hash != codec.block_hash(block[:_HEADER_LEN]):
            raise ValueError("undo record: it is the record of another block")
        outputs = {
            _outpoint(txid, vout): _COIN.pack(value, pubkey_hash, header[1], int(tx[1] == _COINBASE))
            for tx, txid in zip(txs, txids, strict=True)
            for vout, (value, pubkey_hash) in enumerate(tx[3])
        }
        if any(key not in outputs for key in created):
            raise ValueError("undo record: a created outpoint is not an output of the block")
        if any(key in self.coins and self.coins[key] != outputs[key] for key in created):
            raise ValueError("a created outpoint is already in the set with another coin")
        for key, _ in spent:
            if key in self.coins:
                self._touch(key)
                self.hash.remove(key + self.coins.pop(key))
        for key in created:
            if key not in self.coins:
                self._touch(key)
                self.coins[key] = outputs[key]
                self.hash.insert(key + outputs[key])

    # -- mempool (validate.rs check_transactions) -----------------------------------------------

    def check_transactions(self, txs: Sequence[bytes], rules: Rules, height: int) -> list[TxVerdict]:
        return [self._check_one(raw, rules, height) for raw in txs]

    def _check_one(self, raw: bytes, rules: Rules, height: int) -> TxVerdict:
        size = len(raw)
        txid: bytes | None = None
        kind: int | None = None
        inputs = b""
        try:
            if size > rules.max_tx_size:
                raise _Reject("tx-too-large", f"transaction is {size} bytes, over {rules.max_tx_size}")
            try:
                tx = codec.decode_transaction(raw)
                txid = codec.txid(raw)
            except ValueError as e:
                raise _Reject(*_codec_reject(e)) from None
            kind = tx[1]
            inputs = b"".join(_outpoint(*op) for op in tx[2])
            if kind == _COINBASE:
                raise _Reject("coinbase-not-first", "a coinbase is only valid first in a block")
            total_out = check_stateless(tx, size, rules, height)
            total_in = 0
            spent_from = []
            for j, op in enumerate(tx[2]):
                coin = self.coins.get(_outpoint(*op))
                if coin is None:
                    raise _Reject("missing-input", f"input {j} spends {_show(_outpoint(*op))}")
                total_in += _check_key(j, coin, tx[6][j][0])
                spent_from.append(coin[8:40])
            fee = _check_fee(total_in, total_out, sent_to_others(tx[3], spent_from), rules)
            bad = _bad_witnesses(tx, txid, rules)
            if bad:
                raise _Reject("bad-signature", f"signature of witness {bad} does not verify")
        except _Reject as r:
            return TxVerdict(False, txid, kind, 0, size, inputs, r.code, r.message)
        return TxVerdict(True, txid, kind, fee, size, inputs, "", "")
