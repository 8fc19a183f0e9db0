"""Typed, immutable consensus objects over the native canonical codec (docs/encoding.md, DESIGN §3).

Every class is a frozen, slotted dataclass whose fields are the spec's fields in the spec's
order. ``encode()`` and ``decode()`` go through the Rust codec (``timecoin_native``), which is
strict: no trailing bytes, counts checked before allocation, unknown kinds and wrong payload
lengths rejected. Its pure-Python twin is :mod:`timecoin.reference.codec`.

Construction checks field types and ranges (``TypeError`` for a wrong type, ``ValueError`` for a
wrong length or an out-of-range int, naming the field); sequences given as lists are stored as
tuples, bytes-like values as ``bytes``. Values decoded from bytes skip those checks: the codec
already guarantees them.

These are shapes, not rules: a well-formed transaction can still be invalid (unbalanced, badly
signed, spending a missing coin); validation is the ledger's business.
"""

from __future__ import annotations

import enum
from array import array
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import timecoin_native as _native

from timecoin._args import HASH_LEN, PUBLIC_KEY_LEN, SECRET_KEY_LEN, SIGNATURE_LEN, as_bytes

__all__ = [
    "COIN_LEN",
    "HEADER_LEN",
    "OUTPOINT_LEN",
    "TXOUT_LEN",
    "TX_VERSION",
    "U32_MAX",
    "U64_MAX",
    "VRF_OUTPUT_LEN",
    "VRF_PROOF_LEN",
    "WITNESS_LEN",
    "Block",
    "BlockHeader",
    "BlockView",
    "Coin",
    "MasternodeDeregistration",
    "MasternodePayoutChange",
    "MasternodeRegistration",
    "OutPoint",
    "Transaction",
    "TxKind",
    "TxOut",
    "Witness",
    "sign_encoded_transactions",
    "sign_transactions",
]

U32_MAX = 2**32 - 1
U64_MAX = 2**64 - 1
OUTPOINT_LEN = 36
"""Encoded :class:`OutPoint`, bytes (docs/encoding.md)."""
TXOUT_LEN = 40
"""Encoded :class:`TxOut`, bytes."""
WITNESS_LEN = 96
"""Encoded :class:`Witness`, bytes."""
HEADER_LEN = 296
"""Encoded :class:`BlockHeader`, bytes."""
COIN_LEN = 49
"""Encoded :class:`Coin`, bytes."""
VRF_PROOF_LEN = 80
"""VRF proof, bytes (RFC 9381, ECVRF-EDWARDS25519-SHA512-TAI)."""
VRF_OUTPUT_LEN = 64
"""VRF output, bytes (RFC 9381, SHA-512)."""
TX_VERSION = 1
"""The transaction version of docs/encoding.md; the default of the builders below."""

_new = object.__new__
_set = object.__setattr__


class TxKind(enum.IntEnum):
    """Transaction kinds and their payloads (docs/encoding.md, "Payloads by kind")."""

    TRANSFER = 0
    COINBASE = 1
    MASTERNODE_REGISTER = 2
    MASTERNODE_DEREGISTER = 3
    MASTERNODE_PAYOUT = 4

    @property
    def payload_len(self) -> int:
        """Exact payload length of the kind, bytes."""
        return _PAYLOAD_LEN[self]

    @property
    def extra_witnesses(self) -> int:
        """Witnesses the kind needs after the input witnesses."""
        return _EXTRA_WITNESSES[self]


_PAYLOAD_LEN = {
    TxKind.TRANSFER: 0,
    TxKind.COINBASE: 8,
    TxKind.MASTERNODE_REGISTER: OUTPOINT_LEN + PUBLIC_KEY_LEN + HASH_LEN,
    TxKind.MASTERNODE_DEREGISTER: OUTPOINT_LEN,
    TxKind.MASTERNODE_PAYOUT: OUTPOINT_LEN + HASH_LEN,
}
_EXTRA_WITNESSES = {
    TxKind.TRANSFER: 0,
    TxKind.COINBASE: 0,
    TxKind.MASTERNODE_REGISTER: 2,
    TxKind.MASTERNODE_DEREGISTER: 1,
    TxKind.MASTERNODE_PAYOUT: 1,
}


# -- field checks ---------------------------------------------------------------------------------


def _int(obj: object, name: str, value: object, maximum: int, width: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{type(obj).__name__}.{name} must be an int, not {type(value).__name__}")
    if not 0 <= value <= maximum:
        raise ValueError(f"{type(obj).__name__}.{name} must be in 0..={maximum} ({width}), got {value}")
    return int(value)


def _u32(obj: object, name: str) -> None:
    _set(obj, name, _int(obj, name, getattr(obj, name), U32_MAX, "u32"))


def _u64(obj: object, name: str) -> None:
    _set(obj, name, _int(obj, name, getattr(obj, name), U64_MAX, "u64"))


def _bytes(obj: object, name: str, length: int | None = None) -> None:
    _set(obj, name, as_bytes(f"{type(obj).__name__}.{name}", getattr(obj, name), length))


def _items(obj: object, name: str, cls: type) -> None:
    """Stores a list/tuple field as a tuple whose items are all ``cls``."""
    value = getattr(obj, name)
    if not isinstance(value, (tuple, list)):
        raise TypeError(f"{type(obj).__name__}.{name} must be a tuple or list, not {type(value).__name__}")
    for i, item in enumerate(value):
        if not isinstance(item, cls):
            raise TypeError(
                f"{type(obj).__name__}.{name}[{i}] must be {cls.__name__}, not {type(item).__name__}"
            )
    if len(value) > U32_MAX:
        raise ValueError(f"{type(obj).__name__}.{name} has {len(value)} items, over the u32 count")
    _set(obj, name, tuple(value))


def _instance(obj: object, name: str, cls: type) -> None:
    value = getattr(obj, name)
    if not isinstance(value, cls):
        raise TypeError(f"{type(obj).__name__}.{name} must be {cls.__name__}, not {type(value).__name__}")


# -- small fixed-size values ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OutPoint:
    """A reference to output ``vout`` of transaction ``txid`` (36 bytes encoded)."""

    txid: bytes
    vout: int

    NULL: ClassVar[OutPoint]
    """All-zero txid, vout ``U32_MAX``: "no collateral" in a Free-tier registration."""

    def __post_init__(self) -> None:
        _bytes(self, "txid", HASH_LEN)
        _u32(self, "vout")

    def encode(self) -> bytes:
        """The 36-byte encoding: txid ‖ vout u32."""
        return _native.encode_outpoint((self.txid, self.vout))

    @classmethod
    def decode(cls, data: bytes) -> OutPoint:
        """Decodes exactly 36 bytes; ``ValueError`` otherwise."""
        return _outpoint(_native.decode_outpoint(data))


OutPoint.NULL = OutPoint(bytes(HASH_LEN), U32_MAX)


@dataclass(frozen=True, slots=True)
class TxOut:
    """An output: ``value`` sat paid to the key whose hash is ``pubkey_hash`` (40 bytes)."""

    value: int
    pubkey_hash: bytes

    def __post_init__(self) -> None:
        _u64(self, "value")
        _bytes(self, "pubkey_hash", HASH_LEN)

    def encode(self) -> bytes:
        """The 40-byte encoding: value u64 ‖ pubkey_hash."""
        return _native.encode_tx_out((self.value, self.pubkey_hash))

    @classmethod
    def decode(cls, data: bytes) -> TxOut:
        """Decodes exactly 40 bytes; ``ValueError`` otherwise."""
        return _tx_out(_native.decode_tx_out(data))


@dataclass(frozen=True, slots=True)
class Witness:
    """An Ed25519 signature (64 bytes) with the public key (32 bytes) that made it."""

    public_key: bytes
    signature: bytes

    def __post_init__(self) -> None:
        _bytes(self, "public_key", PUBLIC_KEY_LEN)
        _bytes(self, "signature", SIGNATURE_LEN)

    def encode(self) -> bytes:
        """The 96-byte encoding: public_key ‖ signature."""
        return _native.encode_witness((self.public_key, self.signature))

    @classmethod
    def decode(cls, data: bytes) -> Witness:
        """Decodes exactly 96 bytes; ``ValueError`` otherwise."""
        return _witness(_native.decode_witness(data))


@dataclass(frozen=True, slots=True)
class Coin:
    """A UTXO set entry (49 bytes): value (sat), owner key hash, creating block height, and
    whether a coinbase created it."""

    value: int
    pubkey_hash: bytes
    height: int
    is_coinbase: bool

    def __post_init__(self) -> None:
        _u64(self, "value")
        _bytes(self, "pubkey_hash", HASH_LEN)
        _u64(self, "height")
        if not isinstance(self.is_coinbase, bool):
            raise TypeError(f"Coin.is_coinbase must be a bool, not {type(self.is_coinbase).__name__}")

    def encode(self) -> bytes:
        """The 49-byte encoding: value u64 ‖ pubkey_hash ‖ height u64 ‖ is_coinbase u8."""
        return _native.encode_coin((self.value, self.pubkey_hash, self.height, self.is_coinbase))

    @classmethod
    def decode(cls, data: bytes) -> Coin:
        """Decodes exactly 49 bytes (flag byte 0 or 1); ``ValueError`` otherwise."""
        value, pubkey_hash, height, is_coinbase = _native.decode_coin(data)
        coin = _new(Coin)
        _set(coin, "value", value)
        _set(coin, "pubkey_hash", pubkey_hash)
        _set(coin, "height", height)
        _set(coin, "is_coinbase", is_coinbase)
        return coin


# -- kind payloads (plain decoding; the registry gives them meaning) ------------------------------


def _split_payload(kind: TxKind, payload: bytes) -> tuple[OutPoint, bytes]:
    payload = as_bytes("payload", payload)
    if len(payload) != kind.payload_len:
        raise ValueError(f"{kind.name} payload must be {kind.payload_len} bytes, got {len(payload)}")
    return OutPoint.decode(payload[:OUTPOINT_LEN]), payload[OUTPOINT_LEN:]


@dataclass(frozen=True, slots=True)
class MasternodeRegistration:
    """Payload of a masternode register transaction: collateral ‖ masternode key ‖ payout
    pubkey_hash (100 bytes). A Free-tier registration has ``OutPoint.NULL`` as collateral."""

    collateral: OutPoint
    masternode_key: bytes
    payout_pubkey_hash: bytes

    def __post_init__(self) -> None:
        _instance(self, "collateral", OutPoint)
        _bytes(self, "masternode_key", PUBLIC_KEY_LEN)
        _bytes(self, "payout_pubkey_hash", HASH_LEN)

    def encode(self) -> bytes:
        """The payload bytes."""
        return self.collateral.encode() + self.masternode_key + self.payout_pubkey_hash

    @classmethod
    def decode(cls, payload: bytes) -> MasternodeRegistration:
        """Splits exactly 100 payload bytes; ``ValueError`` otherwise."""
        collateral, rest = _split_payload(TxKind.MASTERNODE_REGISTER, payload)
        return cls(collateral, rest[:PUBLIC_KEY_LEN], rest[PUBLIC_KEY_LEN:])


@dataclass(frozen=True, slots=True)
class MasternodeDeregistration:
    """Payload of a masternode deregister transaction: the collateral outpoint (36 bytes)."""

    collateral: OutPoint

    def __post_init__(self) -> None:
        _instance(self, "collateral", OutPoint)

    def encode(self) -> bytes:
        """The payload bytes."""
        return self.collateral.encode()

    @classmethod
    def decode(cls, payload: bytes) -> MasternodeDeregistration:
        """Decodes exactly 36 payload bytes; ``ValueError`` otherwise."""
        return cls(_split_payload(TxKind.MASTERNODE_DEREGISTER, payload)[0])


@dataclass(frozen=True, slots=True)
class MasternodePayoutChange:
    """Payload of a masternode payout change: collateral ‖ new payout pubkey_hash (68 bytes)."""

    collateral: OutPoint
    payout_pubkey_hash: bytes

    def __post_init__(self) -> None:
        _instance(self, "collateral", OutPoint)
        _bytes(self, "payout_pubkey_hash", HASH_LEN)

    def encode(self) -> bytes:
        """The payload bytes."""
        return self.collateral.encode() + self.payout_pubkey_hash

    @classmethod
    def decode(cls, payload: bytes) -> MasternodePayoutChange:
        """Splits exactly 68 payload bytes; ``ValueError`` otherwise."""
        collateral, rest = _split_payload(TxKind.MASTERNODE_PAYOUT, payload)
        return cls(collateral, rest)


# -- transactions ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Transaction:
    """A transaction (docs/encoding.md). ``payload`` must be exactly ``kind.payload_len`` bytes;
    ``witnesses`` are the input witnesses then the kind's extra ones. ``_txid`` is a private
    cache of :attr:`txid` (not an init argument, not compared; ``dataclasses.replace`` drops it)."""

    version: int
    kind: TxKind
    inputs: tuple[OutPoint, ...]
    outputs: tuple[TxOut, ...]
    lock_time: int
    payload: bytes
    witnesses: tuple[Witness, ...]
    _txid: bytes | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        _u32(self, "version")
        kind = self.kind
        if not isinstance(kind, int) or isinstance(kind, bool):
            raise TypeError(f"Transaction.kind must be a TxKind, not {type(kind).__name__}")
        try:
            _set(self, "kind", TxKind(kind))
        except ValueError:
            raise ValueError(f"Transaction.kind must be one of 0..=4, got {kind}") from None
        _items(self, "inputs", OutPoint)
        _items(self, "outputs", TxOut)
        _u32(self, "lock_time")
        _bytes(self, "payload")
        if len(self.payload) != self.kind.payload_len:
            raise ValueError(
                f"Transaction.payload must be {self.kind.payload_len} bytes for {self.kind.name}, "
                f"got {len(self.payload)}"
            )
        _items(self, "witnesses", Witness)

    # Builders for each kind (version TX_VERSION, no witnesses: sign with ``signed_with``).

    @classmethod
    def transfer(
        cls, inputs: Sequence[OutPoint], outputs: Sequence[TxOut], *, lock_time: int = 0
    ) -> Transaction:
        """An unsigned transfer."""
        return cls(TX_VERSION, TxKind.TRANSFER, tuple(inputs), tuple(outputs), lock_time, b"", ())

    @classmethod
    def coinbase(cls, height: int, outputs: Sequence[TxOut]) -> Transaction:
        """A coinbase for block ``height`` (its payload, which makes every coinbase txid unique)."""
        if not isinstance(height, int) or isinstance(height, bool) or not 0 <= height <= U64_MAX:
            raise ValueError(f"coinbase height must be an int in 0..={U64_MAX}, got {height!r}")
        payload = height.to_bytes(8, "little")
        return cls(TX_VERSION, TxKind.COINBASE, (), tuple(outputs), 0, payload, ())

    @classmethod
    def masternode(
        cls,
        payload: MasternodeRegistration | MasternodeDeregistration | MasternodePayoutChange,
        inputs: Sequence[OutPoint] = (),
        outputs: Sequence[TxOut] = (),
        *,
        lock_time: int = 0,
    ) -> Transaction:
        """An unsigned masternode transaction of the kind of ``payload``."""
        kind = _PAYLOAD_KIND.get(type(payload))
        if kind is None:
            raise TypeError(f"payload must be a masternode payload, not {type(payload).__name__}")
        return cls(TX_VERSION, kind, tuple(inputs), tuple(outputs), lock_time, payload.encode(), ())

    # Encoding and hashes.

    def _fields(self) -> tuple[Any, ...]:
        return (
            self.version,
            int(self.kind),
            [(i.txid, i.vout) for i in self.inputs],
            [(o.value, o.pubkey_hash) for o in self.outputs],
            self.lock_time,
            self.payload,
            [(w.public_key, w.signature) for w in self.witnesses],
        )

    def encode(self) -> bytes:
        """The full canonical encoding, witnesses included."""
        return _native.encode_transaction(self._fields())

    @classmethod
    def decode(cls, data: bytes) -> Transaction:
        """Decodes exactly one transaction; ``ValueError`` with the codec's message otherwise."""
        return _transaction(_native.decode_transaction(data), None)

    @property
    def txid(self) -> bytes:
        """``hash_in("txid", encoding without witnesses)`` (32 bytes), computed natively once."""
        txid = self._txid
        if txid is None:
            txid = _native.txid(self.encode())
            _set(self, "_txid", txid)
        return txid

    def encoded_len(self) -> int:
        """Length of :meth:`encode`, bytes, without encoding."""
        return (
            25
            + OUTPOINT_LEN * len(self.inputs)
            + TXOUT_LEN * len(self.outputs)
            + len(self.payload)
            + WITNESS_LEN * len(self.witnesses)
        )

    # Signatures (docs/encoding.md, "Signatures").

    @property
    def witness_count(self) -> int:
        """Witnesses a complete transaction carries: one per input, then the kind's extras."""
        return len(self.inputs) + self.kind.extra_witnesses

    def sighash(self, index: int, chain_id: bytes, network: int) -> bytes:
        """The 32-byte message witness ``index`` signs."""
        return _native.sighash(as_bytes("chain_id", chain_id, HASH_LEN), network, self.txid, index)

    def signed_with(self, secret_keys: Sequence[bytes], chain_id: bytes, network: int) -> Transaction:
        """A copy with one witness per 32-byte seed, witness ``i`` by ``secret_keys[i]`` over
        ``sighash(i)``: input owners first, then the kind's extra signers (masternode key, then
        collateral owner for a registration). ``ValueError`` unless exactly
        :attr:`witness_count` keys are given."""
        if len(secret_keys) != self.witness_count:
            raise ValueError(
                f"{self.kind.name} with {len(self.inputs)} inputs needs {self.witness_count} "
                f"secret keys, got {len(secret_keys)}"
            )
        return sign_transactions([self], [secret_keys], chain_id, network, parallel=False)[0]

    # Payload views.

    @property
    def is_coinbase(self) -> bool:
        return self.kind is TxKind.COINBASE

    def _require(self, kind: TxKind) -> None:
        if self.kind is not kind:
            raise ValueError(f"transaction is {self.kind.name}, not {kind.name}")

    @property
    def coinbase_height(self) -> int:
        """Block height in a coinbase payload; ``ValueError`` for other kinds."""
        self._require(TxKind.COINBASE)
        return int.from_bytes(self.payload, "little")

    @property
    def masternode_registration(self) -> MasternodeRegistration:
        """The register payload; ``ValueError`` for other kinds."""
        self._require(TxKind.MASTERNODE_REGISTER)
        return MasternodeRegistration.decode(self.payload)

    @property
    def masternode_deregistration(self) -> MasternodeDeregistration:
        """The deregister payload; ``ValueError`` for other kinds."""
        self._require(TxKind.MASTERNODE_DEREGISTER)
        return MasternodeDeregistration.decode(self.payload)

    @property
    def masternode_payout_change(self) -> MasternodePayoutChange:
        """The payout change payload; ``ValueError`` for other kinds."""
        self._require(TxKind.MASTERNODE_PAYOUT)
        return MasternodePayoutChange.decode(self.payload)


_PAYLOAD_KIND: dict[type, TxKind] = {
    MasternodeRegistration: TxKind.MASTERNODE_REGISTER,
    MasternodeDeregistration: TxKind.MASTERNODE_DEREGISTER,
    MasternodePayoutChange: TxKind.MASTERNODE_PAYOUT,
}


# -- blocks ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BlockHeader:
    """A block header (296 bytes): timestamp in unix seconds, proposer = masternode public key,
    VRF proof/output of the proposer election (RFC 9381)."""

    version: int
    height: int
    prev_hash: bytes
    merkle_root: bytes
    utxo_set_hash: bytes
    timestamp: int
    proposer: bytes
    vrf_proof: bytes
    vrf_output: bytes
    round: int
    _hash: bytes | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        _u32(self, "version")
        _u64(self, "height")
        _bytes(self, "prev_hash", HASH_LEN)
        _bytes(self, "merkle_root", HASH_LEN)
        _bytes(self, "utxo_set_hash", HASH_LEN)
        _u64(self, "timestamp")
        _bytes(self, "proposer", PUBLIC_KEY_LEN)
        _bytes(self, "vrf_proof", VRF_PROOF_LEN)
        _bytes(self, "vrf_output", VRF_OUTPUT_LEN)
        _u32(self, "round")

    def _fields(self) -> tuple[Any, ...]:
        return (
            self.version,
            self.height,
            self.prev_hash,
            self.merkle_root,
            self.utxo_set_hash,
            self.timestamp,
            self.proposer,
            self.vrf_proof,
            self.vrf_output,
            self.round,
        )

    def encode(self) -> bytes:
        """The 296-byte encoding."""
        return _native.encode_block_header(self._fields())

    @classmethod
    def decode(cls, data: bytes) -> BlockHeader:
        """Decodes exactly 296 bytes; ``ValueError`` otherwise."""
        return _header(_native.decode_block_header(data))

    @property
    def hash(self) -> bytes:
        """Block hash: ``hash_in("block_header", encoding)`` (32 bytes), computed natively once."""
        h = self._hash
        if h is None:
            h = _native.block_hash(self.encode())
            _set(self, "_hash", h)
        return h


@dataclass(frozen=True, slots=True)
class Block:
    """A header and its transactions (coinbase first, by the validation rules)."""

    header: BlockHeader
    transactions: tuple[Transaction, ...]

    def __post_init__(self) -> None:
        _instance(self, "header", BlockHeader)
        _items(self, "transactions", Transaction)

    @property
    def hash(self) -> bytes:
        """The header's hash."""
        return self.header.hash

    @property
    def txids(self) -> list[bytes]:
        """The transactions' txids in block order (the merkle leaves)."""
        missing = [tx for tx in self.transactions if tx._txid is None]
        if missing:
            for tx, txid in zip(missing, _native.txids([tx.encode() for tx in missing]), strict=True):
                _set(tx, "_txid", txid)
        return [tx.txid for tx in self.transactions]

    def encode(self) -> bytes:
        """The encoding: header ‖ u32 count ‖ transactions."""
        return _native.encode_block((self.header._fields(), [tx._fields() for tx in self.transactions]))

    @classmethod
    def decode(cls, data: bytes) -> Block:
        """Decodes exactly one block; ``ValueError`` with the codec's message otherwise. The
        txids are hashed natively from ``data`` in the same call."""
        (header, txs), txids = _native.decode_block_with_txids(data)
        block = _new(Block)
        _set(block, "header", _header(header))
        _set(block, "transactions", tuple(map(_transaction, txs, txids)))
        return block

    def transaction(self, index: int) -> Transaction:
        """Transaction ``index`` (as :meth:`BlockView.transaction`)."""
        return self.transactions[index]


@dataclass(frozen=True, slots=True)
class BlockView:
    """A block whose transactions stay encoded until one is asked for: the header, the txids and
    each transaction's bytes, from one native call (``split_block``). For the paths that need a
    block's txids and few of its transactions as objects (a node's committed blocks, whose
    transactions it mostly holds already): building 10,000 :class:`Transaction` objects costs
    more than the native decode. ``ValueError`` from :meth:`decode` for a bad encoding."""

    header: BlockHeader
    txids: tuple[bytes, ...]
    raw_transactions: tuple[bytes, ...]

    @classmethod
    def decode(cls, data: bytes) -> BlockView:
        header, raws, txids = _native.split_block(data)
        return cls(_header(header), tuple(txids), tuple(raws))

    @property
    def hash(self) -> bytes:
        """The header's hash."""
        return self.header.hash

    def __len__(self) -> int:
        return len(self.txids)

    def transaction(self, index: int) -> Transaction:
        """Transaction ``index``, decoded now (its txid already known)."""
        return _transaction(_native.decode_transaction(self.raw_transactions[index]), self.txids[index])


# -- batch signing (load generation, tests) -------------------------------------------------------


def sign_encoded_transactions(
    transactions: Sequence[bytes],
    secret_keys: Sequence[Sequence[bytes]],
    chain_id: bytes,
    network: int,
    *,
    parallel: bool = True,
) -> list[bytes]:
    """Signs n encoded transactions in one native call (GIL released, all cores if ``parallel``):
    each comes back with its witness section replaced by one witness per seed in
    ``secret_keys[i]``, witness ``j`` signing ``sighash(j)``. Keys are not checked against the
    coins they spend. ``ValueError`` for a bad encoding, a seed that is not 32 bytes, or
    sequences of different lengths."""
    if len(transactions) != len(secret_keys):
        raise ValueError(f"{len(transactions)} transactions but {len(secret_keys)} secret key lists")
    txs = [as_bytes(f"transactions[{i}]", tx) for i, tx in enumerate(transactions)]
    keys = [
        as_bytes(f"secret_keys[{i}][{j}]", k, SECRET_KEY_LEN)
        for i, ks in enumerate(secret_keys)
        for j, k in enumerate(ks)
    ]
    return _native.sign_transactions(
        b"".join(txs),
        _u32_array(map(len, txs)),
        b"".join(keys),
        _u32_array(map(len, secret_keys)),
        as_bytes("chain_id", chain_id, HASH_LEN),
        network,
        parallel,
    )


def sign_transactions(
    transactions: Sequence[Transaction],
    secret_keys: Sequence[Sequence[bytes]],
    chain_id: bytes,
    network: int,
    *,
    parallel: bool = True,
) -> list[Transaction]:
    """:func:`sign_encoded_transactions` over typed transactions; the results carry their txids."""
    for i, tx in enumerate(transactions):
        if not isinstance(tx, Transaction):
            raise TypeError(f"transactions[{i}] must be a Transaction, not {type(tx).__name__}")
    signed = sign_encoded_transactions(
        [tx.encode() for tx in transactions], secret_keys, chain_id, network, parallel=parallel
    )
    return [
        _transaction(_native.decode_transaction(data), tx._txid)
        for data, tx in zip(signed, transactions, strict=True)
    ]


def _u32_array(values: Iterable[int]) -> bytes:
    lengths = array("I", values)
    if lengths.itemsize != 4:  # pragma: no cover - every platform CPython supports today
        raise RuntimeError("array('I') is not 4 bytes on this platform")
    return lengths.tobytes()


# -- trusted construction from native decoder output (already checked by the codec) ---------------


def _outpoint(f: tuple[bytes, int]) -> OutPoint:
    o = _new(OutPoint)
    _set(o, "txid", f[0])
    _set(o, "vout", f[1])
    return o


def _tx_out(f: tuple[int, bytes]) -> TxOut:
    o = _new(TxOut)
    _set(o, "value", f[0])
    _set(o, "pubkey_hash", f[1])
    return o


def _witness(f: tuple[bytes, bytes]) -> Witness:
    w = _new(Witness)
    _set(w, "public_key", f[0])
    _set(w, "signature", f[1])
    return w


_KINDS = tuple(TxKind)


def _transaction(f: tuple[Any, ...], txid: bytes | None) -> Transaction:
    tx = _new(Transaction)
    _set(tx, "version", f[0])
    _set(tx, "kind", _KINDS[f[1]])
    _set(tx, "inputs", tuple(map(_outpoint, f[2])))
    _set(tx, "outputs", tuple(map(_tx_out, f[3])))
    _set(tx, "lock_time", f[4])
    _set(tx, "payload", f[5])
    _set(tx, "witnesses", tuple(map(_witness, f[6])))
    _set(tx, "_txid", txid)
    return tx


def _header(f: tuple[Any, ...]) -> BlockHeader:
    h = _new(BlockHeader)
    for name, value in zip(_HEADER_FIELDS, f, strict=True):
        _set(h, name, value)
    _set(h, "_hash", None)
    return h


_HEADER_FIELDS = (
    "version",
    "height",
    "prev_hash",
    "merkle_root",
    "utxo_set_hash",
    "timestamp",
    "proposer",
    "vrf_proof",
    "vrf_output",
    "round",
)
