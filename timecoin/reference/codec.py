"""Pure-Python twin of the native canonical codec (docs/encoding.md): same entry points as the
codec functions of ``timecoin_native``, same values (plain tuples in the spec's field order),
same strictness, no native code. It is the test oracle and the benchmark baseline.

The layout is written out independently here (``struct`` formats, the payload table of
docs/encoding.md) rather than imported, so the differential tests compare two implementations of
the spec. Hashes are the ``blake3`` package in ``derive_key`` mode with the contexts of
``timecoin.crypto.HASH_DOMAINS``; signatures are PyNaCl through :mod:`timecoin.reference.crypto`.

Bytes that are not a canonical encoding raise ``ValueError`` (messages differ from the native
ones); malformed field tuples raise ``TypeError`` or ``ValueError``.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from blake3 import blake3 as _blake3

from timecoin.crypto import HASH_DOMAINS
from timecoin.reference import crypto as _crypto

_T = TypeVar("_T")

_U8 = struct.Struct("<B")
_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")
_OUTPOINT = struct.Struct("<32sI")
_TXOUT = struct.Struct("<Q32s")
_WITNESS = struct.Struct("<32s64s")
_COIN = struct.Struct("<Q32sQB")
_HEADER = struct.Struct("<IQ32s32s32sQ32s80s64sI")
_SIGHASH = struct.Struct("<32sB32sI")

# docs/encoding.md, "Payloads by kind": kind tag -> exact payload length, bytes.
_PAYLOAD_LEN = {0: 0, 1: 8, 2: 36 + 32 + 32, 3: 36, 4: 36 + 32}
# Smallest transaction: version, kind, four empty sequences, lock_time.
_MIN_TX_LEN = 4 + 1 + 4 + 4 + 4 + 4 + 4

_Fields = tuple[Any, ...]


def _hash(domain: str, data: bytes) -> bytes:
    return _blake3(data, derive_key_context=HASH_DOMAINS[domain]).digest()


class _Reader:
    """Checked reads over bytes; every failure is a ``ValueError`` naming field and offset."""

    __slots__ = ("data", "pos")

    def __init__(self, data: object) -> None:
        if not isinstance(data, bytes):
            raise TypeError(f"data must be bytes, not {type(data).__name__}")
        self.data = data
        self.pos = 0

    def need(self, n: int, what: str) -> None:
        if n > len(self.data) - self.pos:
            raise ValueError(
                f"truncated {what} at offset {self.pos}: needs {n} bytes, {len(self.data) - self.pos} remain"
            )

    def unpack(self, fmt: struct.Struct, what: str) -> tuple[Any, ...]:
        self.need(fmt.size, what)
        out = fmt.unpack_from(self.data, self.pos)
        self.pos += fmt.size
        return out

    def take(self, n: int, what: str) -> bytes:
        self.need(n, what)
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def count(self, what: str, min_item: int) -> int:
        offset = self.pos
        (n,) = self.unpack(_U32, what)
        if n * min_item > len(self.data) - self.pos:
            raise ValueError(
                f"{what} count {n} at offset {offset} needs at least {n * min_item} bytes, "
                f"only {len(self.data) - self.pos} remain"
            )
        return int(n)

    def items(self, what: str, fmt: struct.Struct) -> tuple[tuple[Any, ...], ...]:
        return tuple(self.unpack(fmt, what) for _ in range(self.count(what, fmt.size)))

    def finish(self, what: str) -> None:
        if self.pos != len(self.data):
            raise ValueError(f"{len(self.data) - self.pos} trailing bytes after {what} at offset {self.pos}")


def _decode_all(data: bytes, what: str, read: Callable[[_Reader], _T]) -> _T:
    r = _Reader(data)
    value = read(r)
    r.finish(what)
    return value


def _read_tx(r: _Reader) -> tuple[_Fields, int]:
    """One transaction's fields and the offset where its witness section starts."""
    (version,) = r.unpack(_U32, "transaction version")
    offset = r.pos
    (kind,) = r.unpack(_U8, "transaction kind")
    if kind not in _PAYLOAD_LEN:
        raise ValueError(f"unknown transaction kind {kind} at offset {offset}")
    inputs = r.items("inputs", _OUTPOINT)
    outputs = r.items("outputs", _TXOUT)
    (lock_time,) = r.unpack(_U32, "transaction lock_time")
    offset = r.pos
    (length,) = r.unpack(_U32, "payload length")
    if length != _PAYLOAD_LEN[kind]:
        raise ValueError(
            f"payload length {length} at offset {offset} does not match kind {kind}: "
            f"expected {_PAYLOAD_LEN[kind]}"
        )
    payload = r.take(length, "payload")
    witness_offset = r.pos
    witnesses = r.items("witnesses", _WITNESS)
    return (version, kind, inputs, outputs, lock_time, payload, witnesses), witness_offset


def _read_block(r: _Reader) -> tuple[_Fields, list[tuple[int, int]]]:
    header = r.unpack(_HEADER, "block header")
    txs, ranges = [], []
    for _ in range(r.count("transactions", _MIN_TX_LEN)):
        start = r.pos
        tx, witness_offset = _read_tx(r)
        txs.append(tx)
        ranges.append((start, witness_offset))
    return (header, tuple(txs)), ranges


# -- field checks for encoding --------------------------------------------------------------------


def _record(value: object, what: str, n: int) -> tuple[Any, ...]:
    if not isinstance(value, tuple):
        raise TypeError(f"{what} must be a tuple, not {type(value).__name__}")
    if len(value) != n:
        raise ValueError(f"{what} must be a tuple of {n} fields, got {len(value)}")
    return value


def _int(value: object, what: str, bits: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{what} must be an int, not {type(value).__name__}")
    if not 0 <= value < 1 << bits:
        raise ValueError(f"{what} must be in 0..={(1 << bits) - 1} (u{bits}), got {value}")
    return value


def _bytes(value: object, what: str, n: int | None = None) -> bytes:
    if not isinstance(value, bytes):
        raise TypeError(f"{what} must be bytes, not {type(value).__name__}")
    if n is not None and len(value) != n:
        raise ValueError(f"{what} must be {n} bytes, got {len(value)}")
    return value


def _seq(value: object, what: str) -> Sequence[Any]:
    if not isinstance(value, (tuple, list)):
        raise TypeError(f"{what} must be a tuple or list, not {type(value).__name__}")
    return value


def _outpoint(f: object, what: str) -> bytes:
    txid, vout = _record(f, what, 2)
    return _OUTPOINT.pack(_bytes(txid, f"{what}.txid", 32), _int(vout, f"{what}.vout", 32))


def _tx_out(f: object, what: str) -> bytes:
    value, pubkey_hash = _record(f, what, 2)
    return _TXOUT.pack(_int(value, f"{what}.value", 64), _bytes(pubkey_hash, f"{what}.pubkey_hash", 32))


def _witness(f: object, what: str) -> bytes:
    public_key, signature = _record(f, what, 2)
    return _WITNESS.pack(
        _bytes(public_key, f"{what}.public_key", 32), _bytes(signature, f"{what}.signature", 64)
    )


def _encode_seq(value: object, what: str, item: Callable[[object, str], bytes]) -> bytes:
    items = _seq(value, what)
    return _U32.pack(len(items)) + b"".join(item(x, f"{what}[{i}]") for i, x in enumerate(items))


def _tx_without_witnesses(f: object, what: str) -> tuple[bytes, object]:
    version, kind, inputs, outputs, lock_time, payload, witnesses = _record(f, what, 7)
    _int(kind, f"{what}.kind", 8)
    if kind not in _PAYLOAD_LEN:
        raise ValueError(f"{what}.kind must be in 0..=4 (transaction kinds), got {kind}")
    payload = _bytes(payload, f"{what}.payload")
    if len(payload) != _PAYLOAD_LEN[kind]:
        raise ValueError(
            f"{what}.payload must be {_PAYLOAD_LEN[kind]} bytes for kind {kind}, got {len(payload)}"
        )
    body = b"".join(
        (
            _U32.pack(_int(version, f"{what}.version", 32)),
            _U8.pack(kind),
            _encode_seq(inputs, f"{what}.inputs", _outpoint),
            _encode_seq(outputs, f"{what}.outputs", _tx_out),
            _U32.pack(_int(lock_time, f"{what}.lock_time", 32)),
            _U32.pack(len(payload)),
            payload,
        )
    )
    return body, witnesses


def _transaction(f: object, what: str) -> bytes:
    body, witnesses = _tx_without_witnesses(f, what)
    return body + _encode_seq(witnesses, f"{what}.witnesses", _witness)


def _header(f: object, what: str) -> bytes:
    names = ("version", "height", "prev_hash", "merkle_root", "utxo_set_hash", "timestamp",
             "proposer", "vrf_proof", "vrf_output", "round")  # fmt: skip
    checks: tuple[Callable[[object, str], object], ...] = (
        lambda v, w: _int(v, w, 32),
        lambda v, w: _int(v, w, 64),
        lambda v, w: _bytes(v, w, 32),
        lambda v, w: _bytes(v, w, 32),
        lambda v, w: _bytes(v, w, 32),
        lambda v, w: _int(v, w, 64),
        lambda v, w: _bytes(v, w, 32),
        lambda v, w: _bytes(v, w, 80),
        lambda v, w: _bytes(v, w, 64),
        lambda v, w: _int(v, w, 32),
    )
    values = _record(f, what, 10)
    return _HEADER.pack(*(c(v, f"{what}.{n}") for c, v, n in zip(checks, values, names, strict=True)))


# -- public entry points (names and values as in timecoin_native) ---------------------------------


def encode_outpoint(fields: tuple[bytes, int]) -> bytes:
    return _outpoint(fields, "outpoint")


def decode_outpoint(data: bytes) -> tuple[bytes, int]:
    return _decode_all(data, "outpoint", lambda r: r.unpack(_OUTPOINT, "outpoint"))


def encode_tx_out(fields: tuple[int, bytes]) -> bytes:
    return _tx_out(fields, "output")


def decode_tx_out(data: bytes) -> tuple[int, bytes]:
    return _decode_all(data, "output", lambda r: r.unpack(_TXOUT, "output"))


def encode_witness(fields: tuple[bytes, bytes]) -> bytes:
    return _witness(fields, "witness")


def decode_witness(data: bytes) -> tuple[bytes, bytes]:
    return _decode_all(data, "witness", lambda r: r.unpack(_WITNESS, "witness"))


def encode_coin(fields: tuple[int, bytes, int, bool]) -> bytes:
    value, pubkey_hash, height, is_coinbase = _record(fields, "coin", 4)
    if not isinstance(is_coinbase, bool):
        raise TypeError(f"coin.is_coinbase must be a bool, not {type(is_coinbase).__name__}")
    return _COIN.pack(
        _int(value, "coin.value", 64),
        _bytes(pubkey_hash, "coin.pubkey_hash", 32),
        _int(height, "coin.height", 64),
        is_coinbase,
    )


def decode_coin(data: bytes) -> tuple[int, bytes, int, bool]:
    value, pubkey_hash, height, flag = _decode_all(data, "coin", lambda r: r.unpack(_COIN, "coin"))
    if flag > 1:
        raise ValueError(f"coin is_coinbase at offset 48 must be 0 or 1, got {flag}")
    return value, pubkey_hash, height, flag == 1


def encode_block_header(fields: _Fields) -> bytes:
    return _header(fields, "header")


def decode_block_header(data: bytes) -> _Fields:
    return _decode_all(data, "block header", lambda r: r.unpack(_HEADER, "block header"))


def encode_transaction(fields: _Fields) -> bytes:
    return _transaction(fields, "transaction")


def decode_transaction(data: bytes) -> _Fields:
    return _decode_all(data, "transaction", _read_tx)[0]


def encode_block(fields: tuple[_Fields, Sequence[_Fields]]) -> bytes:
    header, txs = _record(fields, "block", 2)
    return _header(header, "block.header") + _encode_seq(txs, "block.transactions", _transaction)


def decode_block(data: bytes) -> tuple[_Fields, tuple[_Fields, ...]]:
    return _decode_all(data, "block", _read_block)[0]


def decode_block_with_txids(data: bytes) -> tuple[tuple[_Fields, tuple[_Fields, ...]], list[bytes]]:
    block, ranges = _decode_all(data, "block", _read_block)
    return block, [_hash("txid", data[start:end]) for start, end in ranges]


def _read_spans(r: _Reader) -> list[tuple[int, int]]:
    r.unpack(_HEADER, "block header")
    spans = []
    for _ in range(r.count("transactions", _MIN_TX_LEN)):
        start = r.pos
        _read_tx(r)
        spans.append((start, r.pos - start))
    return spans


def transaction_spans(data: bytes) -> list[tuple[int, int]]:
    return _decode_all(data, "block", _read_spans)


_INDEX_ENTRY = struct.Struct(">QII")


def index_entries(block: bytes, txids: Sequence[bytes], height: int) -> list[tuple[bytes, bytes]]:
    spans = transaction_spans(block)
    ids = _seq(txids, "txids")
    if len(ids) != len(spans):
        raise ValueError(f"the block has {len(spans)} transactions, {len(ids)} txids given")
    for i, t in enumerate(ids):
        if not isinstance(t, bytes):
            raise TypeError(f"txids[{i}] must be bytes, not {type(t).__name__}")
        if len(t) != 32:
            raise ValueError(f"txids[{i}] must be 32 bytes, not {len(t)}")
    # (txid, entry) tuples sort by txid, then offset: block order among equal txids.
    return sorted((t, _INDEX_ENTRY.pack(height, o, n)) for t, (o, n) in zip(ids, spans, strict=True))


def txid(transaction: bytes) -> bytes:
    _, witness_offset = _decode_all(transaction, "transaction", _read_tx)
    return _hash("txid", transaction[:witness_offset])


def txids(transactions: Sequence[bytes], parallel: bool = True) -> list[bytes]:
    """One by one; ``parallel`` is accepted for signature parity and ignored."""
    out = []
    for i, tx in enumerate(_seq(transactions, "transactions")):
        try:
            out.append(txid(tx))
        except ValueError as e:
            raise ValueError(f"transactions[{i}]: {e}") from None
        except TypeError:
            raise TypeError(f"transactions[{i}] must be bytes, not {type(tx).__name__}") from None
    return out


def block_hash(header: bytes) -> bytes:
    decode_block_header(header)
    return _hash("block_header", header)


def sighash(chain_id: bytes, network: int, txid: bytes, index: int) -> bytes:
    message = _SIGHASH.pack(
        _bytes(chain_id, "chain_id", 32), _int(network, "network", 8), _bytes(txid, "txid", 32),
        _int(index, "index", 32),
    )  # fmt: skip
    return _hash("sighash", message)


def _split(data: bytes, what: str, lengths: bytes, lengths_name: str, unit: int) -> list[bytes]:
    _bytes(data, what)
    if len(_bytes(lengths, lengths_name)) % 4:
        raise ValueError(f"{lengths_name} must be a concatenation of 4-byte items, got {len(lengths)} bytes")
    out, offset = [], 0
    for (n,) in _U32.iter_unpack(lengths):
        if offset + n * unit > len(data):
            raise ValueError(f"{lengths_name} add up to more than the {len(data)} bytes of {what}")
        out.append(data[offset : offset + n * unit])
        offset += n * unit
    if offset != len(data):
        raise ValueError(f"{lengths_name} add up to {offset} bytes but {what} has {len(data)}")
    return out


def sign_transactions(
    transactions: bytes,
    transaction_lengths: bytes,
    secret_keys: bytes,
    key_counts: bytes,
    chain_id: bytes,
    network: int,
    parallel: bool = True,
) -> list[bytes]:
    """Same buffers as the native batch signer; one by one (``parallel`` ignored)."""
    _bytes(chain_id, "chain_id", 32)
    _int(network, "network", 8)
    txs = _split(transactions, "transactions", transaction_lengths, "transaction_lengths", 1)
    keys = _split(secret_keys, "secret_keys", key_counts, "key_counts", 32)
    if len(txs) != len(keys):
        raise ValueError(f"batch sizes differ: {len(txs)} transaction lengths, {len(keys)} key counts")
    out = []
    for i, (tx, seeds) in enumerate(zip(txs, keys, strict=True)):
        try:
            _, witness_offset = _decode_all(tx, "transaction", _read_tx)
        except ValueError as e:
            raise ValueError(f"transactions[{i}]: {e}") from None
        body = tx[:witness_offset]
        tx_hash = _hash("txid", body)
        parts = [body, _U32.pack(len(seeds) // 32)]
        for j in range(len(seeds) // 32):
            seed = seeds[32 * j : 32 * j + 32]
            message = sighash(chain_id, network, tx_hash, j)
            parts.append(_crypto.public_key(seed) + _crypto.sign(seed, message))
        out.append(b"".join(parts))
    return out
