"""Consensus messages: canonical, strict encodings and the exact bytes each signature covers
(DESIGN §3, §6, §7; the layouts are in docs/encoding.md, "Consensus messages").

Every message is ``kind u8 ‖ version u8 (1) ‖ fields``; integers are fixed-width little-endian,
sequences a ``u32`` count then the items. Decoding is strict: a known kind and version, every
count checked against :data:`LIMITS` and against the bytes that remain before anything is
allocated, sorted-and-unique where the layout says so, no trailing bytes. A malformed message
raises :class:`MessageError` (a ``ValueError``, ``code`` ``"bad-encoding"``) and builds nothing.

A signed message's signature (Ed25519, ZIP-215) covers ``SIGNING_DOMAIN ‖ kind ‖ chain_id ‖
fields`` (see each ``signing_message``): the domain differs from the heartbeat's and is longer
than the 32-byte sighash a transaction witness signs, and the kind byte keeps a prevote from
ever passing for a precommit.

Pure codec: no I/O, no clock, no validity beyond the shape (who may sign what is the engine's
business).
"""

from __future__ import annotations

import enum
import functools
import struct
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from timecoin import crypto
from timecoin._args import HASH_LEN, PUBLIC_KEY_LEN, SIGNATURE_LEN
from timecoin.core.types import HEADER_LEN, OUTPOINT_LEN, U32_MAX, BlockView

__all__ = [
    "BLOCK_CARRIER_VERSION",
    "DECISION_OVERHEAD",
    "LIMITS",
    "NIL",
    "PROPOSAL_OVERHEAD",
    "SIGNING_DOMAIN",
    "VERSION",
    "BlockVote",
    "CertificateEntry",
    "CommitCertificate",
    "CompactBlock",
    "Decision",
    "CertificateRequest",
    "DecisionRequest",
    "FinalityCertificate",
    "Kind",
    "MessageError",
    "Proposal",
    "SnowballQuery",
    "SnowballResponse",
    "Status",
    "TxCertificate",
    "TxVote",
    "decode_message",
    "encoded_compact_len",
    "proposal_signing_message",
]

VERSION = 1
"""Version byte of every layout below but the two that carry a block."""
BLOCK_CARRIER_VERSION = 2
"""Version byte of :class:`Proposal` and :class:`Decision`: 2 since they carry a
:class:`CompactBlock` (version 1 carried the whole block, which capped a block at one frame)."""
SIGNING_DOMAIN = b"TIME Coin 2026-11-21 consensus v1\x00"
"""Prefix of every signed consensus message (then the kind byte and the chain id)."""
NIL = bytes(32)
"""The block hash of a nil prevote/precommit (Tendermint's ``nil``)."""
NO_ROUND = U32_MAX
"""``valid_round`` of a proposal without a proof-of-lock round (Tendermint's ``-1``)."""

LIMITS = {
    "txids_per_vote": 8_000,
    "certificate_entries": 65_535,
    "merkle_proof": 32,
    "snowball_candidates": 16,
    "certificate_request_txids": 1_024,
    "compact_txids": 1_000_000,
}
"""Bounds checked while decoding: txids in one vote batch (8,000 × 32 bytes fit one 256 KiB P2P
vote item), signers in one certificate, siblings in one merkle proof (trees of up to 2^32
leaves), conflicting transactions in one Snowball query, txids in one certificate request, txids
in one compact block (what one 2 MiB frame could hold is ~65,000: the frame bounds it first)."""


class MessageError(ValueError):
    """A consensus message that is not a canonical encoding; ``code`` is ``"bad-encoding"``."""

    code = "bad-encoding"


class Kind(enum.IntEnum):
    """Consensus message kinds (the first byte of every message)."""

    TX_VOTE = 1
    TX_CERTIFICATE = 2
    PROPOSAL = 3
    PREVOTE = 4
    PRECOMMIT = 5
    DECISION = 6
    DECISION_REQUEST = 7
    STATUS = 8
    SNOWBALL_QUERY = 9
    SNOWBALL_RESPONSE = 10
    CERTIFICATE_REQUEST = 11


_set = object.__setattr__
_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")


@functools.lru_cache(maxsize=64)
def _public_key(secret_key: bytes) -> bytes:
    """The public key of a signing seed, derived once per key (every ``create`` needs it)."""
    return crypto.public_key(secret_key)


def _prefix(kind: Kind, chain_id: bytes) -> bytes:
    return SIGNING_DOMAIN + bytes([kind]) + chain_id


def _head(kind: Kind, version: int = VERSION) -> bytes:
    return bytes([kind, version])


def _u32(v: int) -> bytes:
    return _U32.pack(v)


def _u64(v: int) -> bytes:
    return _U64.pack(v)


class _Reader:
    """Strict sequential reads over one message; every failure is a :class:`MessageError`."""

    __slots__ = ("data", "pos", "what")

    def __init__(self, data: bytes, what: str) -> None:
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(f"{what} must be bytes, not {type(data).__name__}")
        self.data = bytes(data)
        self.pos = 0
        self.what = what

    def fail(self, message: str) -> MessageError:
        return MessageError(f"{self.what}: {message}")

    def take(self, n: int) -> bytes:
        end = self.pos + n
        if end > len(self.data):
            raise self.fail(f"truncated at byte {self.pos} (needs {n} more, has {len(self.data) - self.pos})")
        out = self.data[self.pos : end]
        self.pos = end
        return out

    def u8(self) -> int:
        return self.take(1)[0]

    def u32(self) -> int:
        return int(_U32.unpack(self.take(4))[0])

    def u64(self) -> int:
        return int(_U64.unpack(self.take(8))[0])

    def count(self, name: str, item_size: int, limit: int) -> int:
        n = self.u32()
        if n > limit:
            raise self.fail(f"{name} count {n} exceeds the limit {limit}")
        if n * item_size > len(self.data) - self.pos:
            raise self.fail(f"{name} count {n} exceeds the bytes that remain")
        return n

    def blob(self, name: str, minimum: int = 0) -> bytes:
        n = self.u32()
        if n > len(self.data) - self.pos:
            raise self.fail(f"{name} length {n} exceeds the bytes that remain")
        if n < minimum:
            raise self.fail(f"{name} length {n} is below {minimum}")
        return self.take(n)

    def hashes(self, name: str, limit: int, *, ascending: bool) -> tuple[bytes, ...]:
        n = self.count(name, HASH_LEN, limit)
        raw = self.take(n * HASH_LEN)
        items = tuple(raw[i : i + HASH_LEN] for i in range(0, len(raw), HASH_LEN))
        if ascending and any(items[i] >= items[i + 1] for i in range(n - 1)):
            raise self.fail(f"{name} must be strictly ascending")
        return items

    def head(self, kind: Kind, expected: int = VERSION) -> None:
        got_kind, version = self.u8(), self.u8()
        if got_kind != kind:
            raise self.fail(f"kind {got_kind}, expected {int(kind)}")
        if version != expected:
            raise self.fail(f"unknown version {version}")

    def end(self) -> None:
        if self.pos != len(self.data):
            raise self.fail(f"{len(self.data) - self.pos} trailing bytes")


def _check_bytes(obj: object, name: str, value: object, length: int | None = None) -> None:
    if not isinstance(value, bytes):
        raise TypeError(f"{type(obj).__name__}.{name} must be bytes, not {type(value).__name__}")
    if length is not None and len(value) != length:
        raise ValueError(f"{type(obj).__name__}.{name} must be {length} bytes, got {len(value)}")


def _check_int(obj: object, name: str, value: object, maximum: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{type(obj).__name__}.{name} must be an int, not {type(value).__name__}")
    if not 0 <= value <= maximum:
        raise ValueError(f"{type(obj).__name__}.{name} must be in 0..={maximum}, got {value}")


_U64_MAX = 2**64 - 1


# -- transaction finality (DESIGN §6) ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TxVote:
    """One masternode's signed batch of finality decisions at ``height`` (the masternode set of
    that height weighs it): ``accepts`` and ``rejects`` are strictly ascending, disjoint txids.

    The signature covers the two lists through their merkle roots
    (``timecoin.crypto.merkle_root``), so a certificate can carry one short proof per voter."""

    KIND: ClassVar[Kind] = Kind.TX_VOTE

    height: int
    voter: bytes
    accepts: tuple[bytes, ...]
    rejects: tuple[bytes, ...]
    signature: bytes
    _roots: tuple[bytes, bytes] | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        _check_int(self, "height", self.height, _U64_MAX)
        _check_bytes(self, "voter", self.voter, PUBLIC_KEY_LEN)
        _check_bytes(self, "signature", self.signature, SIGNATURE_LEN)
        for name in ("accepts", "rejects"):
            items = tuple(getattr(self, name))
            for txid in items:
                _check_bytes(self, name, txid, HASH_LEN)
            if any(items[i] >= items[i + 1] for i in range(len(items) - 1)):
                raise ValueError(f"TxVote.{name} must be strictly ascending")
            _set(self, name, items)
        if not self.accepts and not self.rejects:
            raise ValueError("TxVote must decide at least one txid")
        if len(self.accepts) + len(self.rejects) > LIMITS["txids_per_vote"]:
            raise ValueError(f"TxVote carries more than {LIMITS['txids_per_vote']} txids")
        if set(self.accepts) & set(self.rejects):
            raise ValueError("TxVote accepts and rejects the same txid")

    @classmethod
    def create(
        cls,
        secret_key: bytes,
        chain_id: bytes,
        height: int,
        accepts: Iterable[bytes],
        rejects: Iterable[bytes],
    ) -> TxVote:
        """A batch signed by ``secret_key`` (its public key is the voter); lists are sorted here."""
        voter = _public_key(secret_key)
        acc, rej = tuple(sorted(accepts)), tuple(sorted(rejects))
        roots = (crypto.merkle_root(list(acc)), crypto.merkle_root(list(rej)))
        message = tx_vote_signing_message(chain_id, height, voter, len(acc), roots[0], len(rej), roots[1])
        vote = cls(height, voter, acc, rej, crypto.sign(secret_key, message))
        _set(vote, "_roots", roots)
        return vote

    @property
    def roots(self) -> tuple[bytes, bytes]:
        """(merkle root of ``accepts``, merkle root of ``rejects``), computed natively once."""
        roots = self._roots
        if roots is None:
            roots = (crypto.merkle_root(list(self.accepts)), crypto.merkle_root(list(self.rejects)))
            _set(self, "_roots", roots)
        return roots

    def signing_message(self, chain_id: bytes) -> bytes:
        accept_root, reject_root = self.roots
        return tx_vote_signing_message(
            chain_id, self.height, self.voter, len(self.accepts), accept_root, len(self.rejects), reject_root
        )

    def signatures(self, chain_id: bytes) -> list[tuple[bytes, bytes, bytes]]:
        return [(self.voter, self.signing_message(chain_id), self.signature)]

    def encode(self) -> bytes:
        return b"".join(
            (
                _head(self.KIND),
                _u64(self.height),
                self.voter,
                _u32(len(self.accepts)),
                *self.accepts,
                _u32(len(self.rejects)),
                *self.rejects,
                self.signature,
            )
        )

    @classmethod
    def decode(cls, data: bytes) -> TxVote:
        r = _Reader(data, "tx vote")
        r.head(cls.KIND)
        height, voter = r.u64(), r.take(PUBLIC_KEY_LEN)
        limit = LIMITS["txids_per_vote"]
        accepts = r.hashes("accepts", limit, ascending=True)
        rejects = r.hashes("rejects", limit, ascending=True)
        signature = r.take(SIGNATURE_LEN)
        r.end()
        if not accepts and not rejects:
            raise r.fail("decides no txid")
        if len(accepts) + len(rejects) > limit:
            raise r.fail(f"carries more than {limit} txids")
        if set(accepts) & set(rejects):
            raise r.fail("accepts and rejects the same txid")
        vote = object.__new__(cls)
        for name, value in (
            ("height", height),
            ("voter", voter),
            ("accepts", accepts),
            ("rejects", rejects),
            ("signature", signature),
            ("_roots", None),
        ):
            _set(vote, name, value)
        return vote


def tx_vote_signing_message(
    chain_id: bytes,
    height: int,
    voter: bytes,
    accept_count: int,
    accept_root: bytes,
    reject_count: int,
    reject_root: bytes,
) -> bytes:
    """What a :class:`TxVote` signature covers: ``SIGNING_DOMAIN ‖ 0x01 ‖ chain_id ‖ height u64 ‖
    voter ‖ accept count u32 ‖ accept root ‖ reject count u32 ‖ reject root``."""
    return b"".join(
        (
            _prefix(Kind.TX_VOTE, chain_id),
            _u64(height),
            voter,
            _u32(accept_count),
            accept_root,
            _u32(reject_count),
            reject_root,
        )
    )


@dataclass(frozen=True, slots=True)
class CertificateEntry:
    """One voter's part of a finality certificate: what its :class:`TxVote` signed (counts and
    roots), where the txid sits among its accepts (``index``) and the merkle ``proof`` of it."""

    voter: bytes
    accept_count: int
    accept_root: bytes
    index: int
    reject_count: int
    reject_root: bytes
    proof: tuple[bytes, ...]
    signature: bytes

    MIN_LEN: ClassVar[int] = 32 + 4 + 32 + 4 + 4 + 32 + 1 + 64

    def signing_message(self, chain_id: bytes, height: int) -> bytes:
        return tx_vote_signing_message(
            chain_id,
            height,
            self.voter,
            self.accept_count,
            self.accept_root,
            self.reject_count,
            self.reject_root,
        )

    def encode(self) -> bytes:
        return b"".join(
            (
                self.voter,
                _u32(self.accept_count),
                self.accept_root,
                _u32(self.index),
                _u32(self.reject_count),
                self.reject_root,
                bytes([len(self.proof)]),
                *self.proof,
                self.signature,
            )
        )

    @classmethod
    def read(cls, r: _Reader) -> CertificateEntry:
        voter, accept_count, accept_root = r.take(PUBLIC_KEY_LEN), r.u32(), r.take(HASH_LEN)
        index, reject_count, reject_root = r.u32(), r.u32(), r.take(HASH_LEN)
        n = r.u8()
        if n > LIMITS["merkle_proof"]:
            raise r.fail(f"merkle proof of {n} hashes exceeds {LIMITS['merkle_proof']}")
        proof = tuple(r.take(HASH_LEN) for _ in range(n))
        signature = r.take(SIGNATURE_LEN)
        if not index < accept_count:
            raise r.fail(f"leaf index {index} is not below the accept count {accept_count}")
        return cls(voter, accept_count, accept_root, index, reject_count, reject_root, proof, signature)


@dataclass(frozen=True, slots=True)
class FinalityCertificate:
    """Proof that ``txid`` is final: accept votes of masternodes of the set of ``height`` (entries
    strictly ascending by voter) whose weights reach 2/3 of that set's total (DESIGN §6). Check
    it with :func:`timecoin.consensus.certificates.verify_certificate`."""

    txid: bytes
    height: int
    entries: tuple[CertificateEntry, ...]

    def signatures(self, chain_id: bytes) -> list[tuple[bytes, bytes, bytes]]:
        return [(e.voter, e.signing_message(chain_id, self.height), e.signature) for e in self.entries]

    @property
    def voters(self) -> list[bytes]:
        return [e.voter for e in self.entries]

    def encode(self) -> bytes:
        return b"".join(
            (bytes([VERSION]), self.txid, _u64(self.height), _u32(len(self.entries)))
            + tuple(e.encode() for e in self.entries)
        )

    @classmethod
    def decode(cls, data: bytes) -> FinalityCertificate:
        r = _Reader(data, "finality certificate")
        cert = cls._read(r)
        r.end()
        return cert

    @classmethod
    def _read(cls, r: _Reader) -> FinalityCertificate:
        if r.u8() != VERSION:
            raise r.fail("unknown version")
        txid, height = r.take(HASH_LEN), r.u64()
        n = r.count("entries", CertificateEntry.MIN_LEN, LIMITS["certificate_entries"])
        if n == 0:
            raise r.fail("has no entries")
        entries = tuple(CertificateEntry.read(r) for _ in range(n))
        if any(entries[i].voter >= entries[i + 1].voter for i in range(n - 1)):
            raise r.fail("entries must be strictly ascending by voter")
        return cls(txid, height, entries)


@dataclass(frozen=True, slots=True)
class TxCertificate:
    """Gossip of a final transaction: its full encoding and its finality certificate."""

    KIND: ClassVar[Kind] = Kind.TX_CERTIFICATE

    transaction: bytes
    certificate: FinalityCertificate

    def signatures(self, chain_id: bytes) -> list[tuple[bytes, bytes, bytes]]:
        return self.certificate.signatures(chain_id)

    def encode(self) -> bytes:
        cert = self.certificate.encode()
        return b"".join(
            (_head(self.KIND), _u32(len(self.transaction)), self.transaction, _u32(len(cert)), cert)
        )

    @classmethod
    def decode(cls, data: bytes) -> TxCertificate:
        r = _Reader(data, "tx certificate")
        r.head(cls.KIND)
        tx = r.blob("transaction", 25)
        cert_bytes = r.blob("certificate")
        r.end()
        return cls(tx, FinalityCertificate.decode(cert_bytes))


# -- block production (DESIGN §7) ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CompactBlock:
    """A block as its header, the txids of its transactions in block order (the coinbase first)
    and the encodings of those a receiver may lack, ``prefilled`` (the coinbase first, then any
    others in block order): DESIGN §7 phase 4, "BlockProposal {header, txids, ...}: every
    masternode already holds the final transactions". The receiver rebuilds the block from its
    own transactions (:func:`timecoin.consensus.blocks.rebuild_block`). The header's merkle root
    binds the txids and the header hash binds the root, so the rebuilt block is the one whose
    hash was signed whoever supplied each transaction's bytes: witnesses lie outside the txid,
    and any valid witness serves.

    Layout: ``header ‖ u32 count (≥ 1) ‖ txid* ‖ u32 count (1..=txids) ‖ (u32 length ‖
    transaction)*`` (:meth:`prefilled_section` is the part from the second count on)."""

    header: bytes
    txids: tuple[bytes, ...]
    prefilled: tuple[bytes, ...]

    def __post_init__(self) -> None:
        _check_bytes(self, "header", self.header, HEADER_LEN)
        if not self.txids or len(self.txids) > LIMITS["compact_txids"]:
            raise ValueError(f"CompactBlock.txids must hold 1..={LIMITS['compact_txids']} txids")
        for txid in self.txids:
            _check_bytes(self, "txids item", txid, HASH_LEN)
        if not 1 <= len(self.prefilled) <= len(self.txids):
            raise ValueError("CompactBlock.prefilled must hold the coinbase and at most every transaction")
        for raw in self.prefilled:
            _check_bytes(self, "prefilled item", raw)
            if not raw:
                raise ValueError("CompactBlock.prefilled holds an empty transaction")

    @classmethod
    def of_block(
        cls, raw: bytes, prefill: Callable[[int, bytes], bool], view: BlockView | None = None
    ) -> CompactBlock:
        """The compact form of the encoded block ``raw`` (``view``: its decoding, if at hand): the
        coinbase and every transaction for which ``prefill(index, txid)`` is true are carried
        whole. ``ValueError`` for a bad block."""
        if view is None:
            view = BlockView.decode(raw)
        txids = view.txids
        prefilled = [view.raw_transactions[0]]
        prefilled += [view.raw_transactions[i] for i in range(1, len(txids)) if prefill(i, txids[i])]
        return cls(raw[:HEADER_LEN], txids, tuple(prefilled))

    @classmethod
    def whole(cls, raw: bytes) -> CompactBlock:
        """The encoded block ``raw`` with every transaction carried whole (what a receiver needs
        nothing else for). ``ValueError`` for a bad block."""
        return cls.of_block(raw, lambda _, __: True)

    @property
    def block_hash(self) -> bytes:
        """The hash of the header."""
        return crypto.hash_block_header(self.header)

    def prefilled_section(self) -> bytes:
        return b"".join([_u32(len(self.prefilled)), *(_u32(len(t)) + t for t in self.prefilled)])

    def encode(self) -> bytes:
        return b"".join((self.header, _u32(len(self.txids)), *self.txids, self.prefilled_section()))

    def encoded_len(self) -> int:
        return encoded_compact_len(len(self.txids), [len(t) for t in self.prefilled])

    @classmethod
    def read(cls, r: _Reader) -> CompactBlock:
        header = r.take(HEADER_LEN)
        txids = r.hashes("txids", LIMITS["compact_txids"], ascending=False)
        if not txids:
            raise r.fail("a block holds at least its coinbase")
        m = r.count("prefilled", 4, len(txids))
        if m == 0:
            raise r.fail("the coinbase must be prefilled")
        prefilled = tuple(r.blob("prefilled transaction", 1) for _ in range(m))
        return cls(header, txids, prefilled)


def encoded_compact_len(txids: int, prefilled: Iterable[int]) -> int:
    """Bytes of a :class:`CompactBlock` of ``txids`` txids whose prefilled transactions have the
    lengths ``prefilled``."""
    return HEADER_LEN + 4 + HASH_LEN * txids + 4 + sum(4 + n for n in prefilled)


def proposal_signing_message(
    chain_id: bytes,
    height: int,
    round: int,
    valid_round: int | None,
    proposer: bytes,
    compact: CompactBlock,
    block_hash: bytes | None = None,
) -> bytes:
    """What a proposal's signature covers: ``SIGNING_DOMAIN ‖ 0x03 ‖ chain_id ‖ height u64 ‖
    round u32 ‖ valid_round u32 (0xffffffff = none) ‖ proposer ‖ block hash ‖ blake3(prefilled
    section)`` (``block_hash``: the compact block's, if already known)."""
    return b"".join(
        (
            _prefix(Kind.PROPOSAL, chain_id),
            _u64(height),
            _u32(round),
            _u32(NO_ROUND if valid_round is None else valid_round),
            proposer,
            compact.block_hash if block_hash is None else block_hash,
            crypto.blake3(compact.prefilled_section()),
        )
    )


@dataclass(frozen=True, slots=True)
class Proposal:
    """A round leader's signed proposal of a block at (height, round), as a :class:`CompactBlock`
    (DESIGN §7 phase 4). ``valid_round`` is the round whose 2/3 prevotes justify re-proposing a
    block (Tendermint's proof-of-lock round), or None. ``proposer`` is the round's leader, who
    signs the block hash and the prefilled transactions' bytes (so a relay cannot swap a witness
    in them); the block's header names who built it (the same key, unless it is a
    re-proposal)."""

    KIND: ClassVar[Kind] = Kind.PROPOSAL

    height: int
    round: int
    valid_round: int | None
    proposer: bytes
    compact: CompactBlock
    signature: bytes
    _hash: bytes | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        _check_int(self, "height", self.height, _U64_MAX)
        _check_int(self, "round", self.round, U32_MAX - 1)
        if self.valid_round is not None:
            _check_int(self, "valid_round", self.valid_round, self.round - 1 if self.round else -1)
        _check_bytes(self, "proposer", self.proposer, PUBLIC_KEY_LEN)
        if not isinstance(self.compact, CompactBlock):
            raise TypeError(f"Proposal.compact must be a CompactBlock, not {type(self.compact).__name__}")
        _check_bytes(self, "signature", self.signature, SIGNATURE_LEN)

    @classmethod
    def create(
        cls,
        secret_key: bytes,
        chain_id: bytes,
        height: int,
        round: int,
        valid_round: int | None,
        compact: CompactBlock,
    ) -> Proposal:
        proposer = _public_key(secret_key)
        message = proposal_signing_message(chain_id, height, round, valid_round, proposer, compact)
        return cls(height, round, valid_round, proposer, compact, crypto.sign(secret_key, message))

    @property
    def block_hash(self) -> bytes:
        """The hash of the proposed block's header."""
        h = self._hash
        if h is None:
            h = self.compact.block_hash
            _set(self, "_hash", h)
        return h

    def signing_message(self, chain_id: bytes) -> bytes:
        """:func:`proposal_signing_message` of this proposal."""
        return proposal_signing_message(
            chain_id, self.height, self.round, self.valid_round, self.proposer, self.compact, self.block_hash
        )

    def signatures(self, chain_id: bytes) -> list[tuple[bytes, bytes, bytes]]:
        return [(self.proposer, self.signing_message(chain_id), self.signature)]

    def encode(self) -> bytes:
        vr = NO_ROUND if self.valid_round is None else self.valid_round
        return b"".join(
            (
                _head(self.KIND, BLOCK_CARRIER_VERSION),
                _u64(self.height),
                _u32(self.round),
                _u32(vr),
                self.proposer,
                self.compact.encode(),
                self.signature,
            )
        )

    @classmethod
    def decode(cls, data: bytes) -> Proposal:
        r = _Reader(data, "proposal")
        r.head(cls.KIND, BLOCK_CARRIER_VERSION)
        height, round_, vr = r.u64(), r.u32(), r.u32()
        proposer = r.take(PUBLIC_KEY_LEN)
        compact = CompactBlock.read(r)
        signature = r.take(SIGNATURE_LEN)
        r.end()
        if round_ == NO_ROUND:
            raise r.fail("round 0xffffffff is reserved")
        if vr != NO_ROUND and vr >= round_:
            raise r.fail(f"valid round {vr} is not below round {round_}")
        return cls(height, round_, None if vr == NO_ROUND else vr, proposer, compact, signature)


PROPOSAL_OVERHEAD = 2 + 8 + 4 + 4 + PUBLIC_KEY_LEN + SIGNATURE_LEN
"""Bytes of an encoded :class:`Proposal` around its :class:`CompactBlock`."""


def block_vote_signing_message(
    kind: Kind, chain_id: bytes, height: int, round: int, block_hash: bytes
) -> bytes:
    """What a prevote (kind 4) or precommit (kind 5) signature covers: ``SIGNING_DOMAIN ‖ kind ‖
    chain_id ‖ height u64 ‖ round u32 ‖ block hash`` (:data:`NIL` for nil)."""
    return b"".join((_prefix(kind, chain_id), _u64(height), _u32(round), block_hash))


@dataclass(frozen=True, slots=True)
class BlockVote:
    """A signed prevote or precommit (``kind``) for ``block_hash`` at (height, round);
    ``block_hash`` :data:`NIL` is a nil vote."""

    kind: Kind
    height: int
    round: int
    block_hash: bytes
    voter: bytes
    signature: bytes

    def __post_init__(self) -> None:
        if self.kind not in (Kind.PREVOTE, Kind.PRECOMMIT):
            raise ValueError(f"BlockVote.kind must be PREVOTE or PRECOMMIT, got {self.kind!r}")
        _check_int(self, "height", self.height, _U64_MAX)
        _check_int(self, "round", self.round, U32_MAX - 1)
        _check_bytes(self, "block_hash", self.block_hash, HASH_LEN)
        _check_bytes(self, "voter", self.voter, PUBLIC_KEY_LEN)
        _check_bytes(self, "signature", self.signature, SIGNATURE_LEN)

    @classmethod
    def create(
        cls, secret_key: bytes, chain_id: bytes, kind: Kind, height: int, round: int, block_hash: bytes
    ) -> BlockVote:
        msg = block_vote_signing_message(kind, chain_id, height, round, block_hash)
        return cls(kind, height, round, block_hash, _public_key(secret_key), crypto.sign(secret_key, msg))

    @property
    def is_nil(self) -> bool:
        return self.block_hash == NIL

    def signing_message(self, chain_id: bytes) -> bytes:
        return block_vote_signing_message(self.kind, chain_id, self.height, self.round, self.block_hash)

    def signatures(self, chain_id: bytes) -> list[tuple[bytes, bytes, bytes]]:
        return [(self.voter, self.signing_message(chain_id), self.signature)]

    def encode(self) -> bytes:
        return b"".join(
            (
                _head(self.kind),
                _u64(self.height),
                _u32(self.round),
                self.block_hash,
                self.voter,
                self.signature,
            )
        )

    @classmethod
    def decode(cls, data: bytes) -> BlockVote:
        r = _Reader(data, "block vote")
        kind = r.u8()
        if kind not in (Kind.PREVOTE, Kind.PRECOMMIT):
            raise r.fail(f"kind {kind} is not a prevote or precommit")
        if r.u8() != VERSION:
            raise r.fail("unknown version")
        height, round_ = r.u64(), r.u32()
        block_hash, voter, signature = r.take(HASH_LEN), r.take(PUBLIC_KEY_LEN), r.take(SIGNATURE_LEN)
        r.end()
        if round_ == NO_ROUND:
            raise r.fail("round 0xffffffff is reserved")
        return cls(Kind(kind), height, round_, block_hash, voter, signature)


@dataclass(frozen=True, slots=True)
class CommitCertificate:
    """The precommits that committed block ``block_hash`` at (height, round): (voter,
    signature) pairs strictly ascending by voter, whose weights reach 2/3 of the whole set of
    ``height`` (DESIGN §7, "collection"). Stored beside the block; checked by
    :func:`timecoin.consensus.certificates.verify_commit_certificate`."""

    height: int
    round: int
    block_hash: bytes
    signatures_: tuple[tuple[bytes, bytes], ...]

    ITEM: ClassVar[int] = PUBLIC_KEY_LEN + SIGNATURE_LEN

    @property
    def voters(self) -> list[bytes]:
        return [v for v, _ in self.signatures_]

    def signatures(self, chain_id: bytes) -> list[tuple[bytes, bytes, bytes]]:
        msg = block_vote_signing_message(Kind.PRECOMMIT, chain_id, self.height, self.round, self.block_hash)
        return [(voter, msg, sig) for voter, sig in self.signatures_]

    def encode(self) -> bytes:
        return b"".join(
            (
                bytes([VERSION]),
                _u64(self.height),
                _u32(self.round),
                self.block_hash,
                _u32(len(self.signatures_)),
            )
            + tuple(v + s for v, s in self.signatures_)
        )

    @classmethod
    def decode(cls, data: bytes) -> CommitCertificate:
        r = _Reader(data, "commit certificate")
        if r.u8() != VERSION:
            raise r.fail("unknown version")
        height, round_, block_hash = r.u64(), r.u32(), r.take(HASH_LEN)
        n = r.count("signatures", cls.ITEM, LIMITS["certificate_entries"])
        items = tuple((r.take(PUBLIC_KEY_LEN), r.take(SIGNATURE_LEN)) for _ in range(n))
        r.end()
        if n == 0:
            raise r.fail("has no signatures")
        if block_hash == NIL:
            raise r.fail("commits the nil block hash")
        if any(items[i][0] >= items[i + 1][0] for i in range(n - 1)):
            raise r.fail("signatures must be strictly ascending by voter")
        return cls(height, round_, block_hash, items)


@dataclass(frozen=True, slots=True)
class Decision:
    """A committed block with its commit certificate (catch-up: DESIGN §7 "slot synchronization";
    unsigned: the certificate is the proof), the block as a :class:`CompactBlock`: its server
    prefills every transaction if the whole decision fits one frame, else the coinbase only, and
    the receiver takes the rest from its own transactions or, lacking some, syncs the block
    (docs/consensus.md, "Compact blocks")."""

    KIND: ClassVar[Kind] = Kind.DECISION

    certificate: CommitCertificate
    compact: CompactBlock

    def __post_init__(self) -> None:
        if not isinstance(self.compact, CompactBlock):
            raise TypeError(f"Decision.compact must be a CompactBlock, not {type(self.compact).__name__}")

    def signatures(self, chain_id: bytes) -> list[tuple[bytes, bytes, bytes]]:
        return self.certificate.signatures(chain_id)

    def encode(self) -> bytes:
        cert = self.certificate.encode()
        return b"".join(
            (_head(self.KIND, BLOCK_CARRIER_VERSION), _u32(len(cert)), cert, self.compact.encode())
        )

    @classmethod
    def decode(cls, data: bytes) -> Decision:
        r = _Reader(data, "decision")
        r.head(cls.KIND, BLOCK_CARRIER_VERSION)
        cert = r.blob("certificate")
        compact = CompactBlock.read(r)
        r.end()
        return cls(CommitCertificate.decode(cert), compact)


DECISION_OVERHEAD = 2 + 4
"""Bytes of an encoded :class:`Decision` besides its certificate and its :class:`CompactBlock`."""


@dataclass(frozen=True, slots=True)
class DecisionRequest:
    """Asks a peer for the :class:`Decision` of ``height`` (unsigned; answered point to point)."""

    KIND: ClassVar[Kind] = Kind.DECISION_REQUEST

    height: int

    def signatures(self, chain_id: bytes) -> list[tuple[bytes, bytes, bytes]]:
        return []

    def encode(self) -> bytes:
        return _head(self.KIND) + _u64(self.height)

    @classmethod
    def decode(cls, data: bytes) -> DecisionRequest:
        r = _Reader(data, "decision request")
        r.head(cls.KIND)
        height = r.u64()
        r.end()
        return cls(height)


@dataclass(frozen=True, slots=True)
class CertificateRequest:
    """Asks a peer for the finality certificates of ``txids`` (strictly ascending, at most
    ``LIMITS["certificate_request_txids"]``): unsigned, answered point to point with one
    :class:`TxCertificate` per txid the peer holds as final (DESIGN §6: a certificate is final
    everywhere; a validator fetches those of a proposal's transactions it does not hold)."""

    KIND: ClassVar[Kind] = Kind.CERTIFICATE_REQUEST

    txids: tuple[bytes, ...]

    def __post_init__(self) -> None:
        if len(self.txids) > LIMITS["certificate_request_txids"]:
            limit = LIMITS["certificate_request_txids"]
            raise ValueError(f"CertificateRequest carries more than {limit} txids")
        for txid in self.txids:
            _check_bytes(self, "txids", txid, HASH_LEN)
        if any(self.txids[i] >= self.txids[i + 1] for i in range(len(self.txids) - 1)):
            raise ValueError("CertificateRequest.txids must be strictly ascending")

    def signatures(self, chain_id: bytes) -> list[tuple[bytes, bytes, bytes]]:
        return []

    def encode(self) -> bytes:
        return b"".join((_head(self.KIND), _u32(len(self.txids)), *self.txids))

    @classmethod
    def decode(cls, data: bytes) -> CertificateRequest:
        r = _Reader(data, "certificate request")
        r.head(cls.KIND)
        txids = r.hashes("txids", LIMITS["certificate_request_txids"], ascending=True)
        r.end()
        return cls(txids)


def _status_body(height: int, tip_hash: bytes, round: int, sender: bytes) -> bytes:
    return b"".join((_u64(height), tip_hash, _u32(round), sender))


@dataclass(frozen=True, slots=True)
class Status:
    """A masternode's signed slot status: its tip (``height``, ``tip_hash``) and the round it is
    in at the next height (DESIGN §7, "slot synchronization")."""

    KIND: ClassVar[Kind] = Kind.STATUS

    height: int
    tip_hash: bytes
    round: int
    sender: bytes
    signature: bytes

    @classmethod
    def create(cls, secret_key: bytes, chain_id: bytes, height: int, tip_hash: bytes, round: int) -> Status:
        sender = _public_key(secret_key)
        message = _prefix(cls.KIND, chain_id) + _status_body(height, tip_hash, round, sender)
        return cls(height, tip_hash, round, sender, crypto.sign(secret_key, message))

    def _body(self) -> bytes:
        return _status_body(self.height, self.tip_hash, self.round, self.sender)

    def signing_message(self, chain_id: bytes) -> bytes:
        return _prefix(self.KIND, chain_id) + self._body()

    def signatures(self, chain_id: bytes) -> list[tuple[bytes, bytes, bytes]]:
        return [(self.sender, self.signing_message(chain_id), self.signature)]

    def encode(self) -> bytes:
        return _head(self.KIND) + self._body() + self.signature

    @classmethod
    def decode(cls, data: bytes) -> Status:
        r = _Reader(data, "status")
        r.head(cls.KIND)
        height, tip_hash, round_ = r.u64(), r.take(HASH_LEN), r.u32()
        sender, signature = r.take(PUBLIC_KEY_LEN), r.take(SIGNATURE_LEN)
        r.end()
        return cls(height, tip_hash, round_, sender, signature)


# -- Snowball (DESIGN §6, conflicts) ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SnowballQuery:
    """``sender`` asks which of the conflicting ``candidates`` (strictly ascending txids, 2 or
    more) spending ``outpoint`` the receiver prefers; ``query_id`` ties the answers to it."""

    KIND: ClassVar[Kind] = Kind.SNOWBALL_QUERY

    height: int
    query_id: int
    outpoint: bytes
    candidates: tuple[bytes, ...]
    sender: bytes
    signature: bytes

    @classmethod
    def create(
        cls,
        secret_key: bytes,
        chain_id: bytes,
        height: int,
        query_id: int,
        outpoint: bytes,
        candidates: Sequence[bytes],
    ) -> SnowballQuery:
        """A query signed by ``secret_key`` (its public key is the sender); candidates sorted here."""
        sender, ordered = _public_key(secret_key), tuple(sorted(candidates))
        body = cls._fields_body(height, query_id, outpoint, ordered, sender)
        sig = crypto.sign(secret_key, _prefix(cls.KIND, chain_id) + body)
        return cls(height, query_id, outpoint, ordered, sender, sig)

    @staticmethod
    def _fields_body(
        height: int, query_id: int, outpoint: bytes, candidates: tuple[bytes, ...], sender: bytes
    ) -> bytes:
        return b"".join((_u64(height), _u64(query_id), outpoint, _u32(len(candidates)), *candidates, sender))

    def _body(self) -> bytes:
        return self._fields_body(self.height, self.query_id, self.outpoint, self.candidates, self.sender)

    def signing_message(self, chain_id: bytes) -> bytes:
        return _prefix(self.KIND, chain_id) + self._body()

    def signatures(self, chain_id: bytes) -> list[tuple[bytes, bytes, bytes]]:
        return [(self.sender, self.signing_message(chain_id), self.signature)]

    def encode(self) -> bytes:
        return _head(self.KIND) + self._body() + self.signature

    @classmethod
    def decode(cls, data: bytes) -> SnowballQuery:
        r = _Reader(data, "snowball query")
        r.head(cls.KIND)
        height, query_id, outpoint = r.u64(), r.u64(), r.take(OUTPOINT_LEN)
        candidates = r.hashes("candidates", LIMITS["snowball_candidates"], ascending=True)
        sender, signature = r.take(PUBLIC_KEY_LEN), r.take(SIGNATURE_LEN)
        r.end()
        if len(candidates) < 2:
            raise r.fail("a conflict has at least two candidates")
        return cls(height, query_id, outpoint, candidates, sender, signature)


@dataclass(frozen=True, slots=True)
class SnowballResponse:
    """``responder``'s signed answer to ``querier``'s query ``query_id``: the txid it prefers for
    ``outpoint`` (None: no preference)."""

    KIND: ClassVar[Kind] = Kind.SNOWBALL_RESPONSE

    height: int
    query_id: int
    querier: bytes
    outpoint: bytes
    preference: bytes | None
    responder: bytes
    signature: bytes

    @classmethod
    def create(
        cls,
        secret_key: bytes,
        chain_id: bytes,
        query: SnowballQuery,
        preference: bytes | None,
    ) -> SnowballResponse:
        """The answer to ``query``, signed by ``secret_key`` (its public key is the responder)."""
        responder = _public_key(secret_key)
        fields = (query.height, query.query_id, query.sender, query.outpoint, preference, responder)
        sig = crypto.sign(secret_key, _prefix(cls.KIND, chain_id) + cls._fields_body(*fields))
        return cls(*fields, sig)

    @staticmethod
    def _fields_body(
        height: int,
        query_id: int,
        querier: bytes,
        outpoint: bytes,
        preference: bytes | None,
        responder: bytes,
    ) -> bytes:
        return b"".join((_u64(height), _u64(query_id), querier, outpoint, preference or NIL, responder))

    def _body(self) -> bytes:
        return self._fields_body(
            self.height, self.query_id, self.querier, self.outpoint, self.preference, self.responder
        )

    def signing_message(self, chain_id: bytes) -> bytes:
        return _prefix(self.KIND, chain_id) + self._body()

    def signatures(self, chain_id: bytes) -> list[tuple[bytes, bytes, bytes]]:
        return [(self.responder, self.signing_message(chain_id), self.signature)]

    def encode(self) -> bytes:
        return _head(self.KIND) + self._body() + self.signature

    @classmethod
    def decode(cls, data: bytes) -> SnowballResponse:
        r = _Reader(data, "snowball response")
        r.head(cls.KIND)
        height, query_id, querier = r.u64(), r.u64(), r.take(PUBLIC_KEY_LEN)
        outpoint, preference = r.take(OUTPOINT_LEN), r.take(HASH_LEN)
        responder, signature = r.take(PUBLIC_KEY_LEN), r.take(SIGNATURE_LEN)
        r.end()
        return cls(
            height,
            query_id,
            querier,
            outpoint,
            None if preference == NIL else preference,
            responder,
            signature,
        )


Message = (
    TxVote
    | TxCertificate
    | Proposal
    | BlockVote
    | Decision
    | DecisionRequest
    | CertificateRequest
    | Status
    | SnowballQuery
    | SnowballResponse
)

_DECODERS: dict[int, Any] = {
    Kind.TX_VOTE: TxVote.decode,
    Kind.TX_CERTIFICATE: TxCertificate.decode,
    Kind.PROPOSAL: Proposal.decode,
    Kind.PREVOTE: BlockVote.decode,
    Kind.PRECOMMIT: BlockVote.decode,
    Kind.DECISION: Decision.decode,
    Kind.DECISION_REQUEST: DecisionRequest.decode,
    Kind.CERTIFICATE_REQUEST: CertificateRequest.decode,
    Kind.STATUS: Status.decode,
    Kind.SNOWBALL_QUERY: SnowballQuery.decode,
    Kind.SNOWBALL_RESPONSE: SnowballResponse.decode,
}


def decode_message(data: bytes) -> Message:
    """Decodes any consensus message by its kind byte; :class:`MessageError` if it is not a
    canonical encoding of a known kind, ``TypeError`` if ``data`` is not bytes."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"message must be bytes, not {type(data).__name__}")
    if not data:
        raise MessageError("empty consensus message")
    decoder = _DECODERS.get(data[0])
    if decoder is None:
        raise MessageError(f"unknown consensus message kind {data[0]}")
    try:
        return decoder(bytes(data))  # type: ignore[no-any-return]
    except MessageError:
        raise
    except ValueError as e:  # a field check of a constructor: still an encoding fault
        raise MessageError(f"{Kind(data[0]).name.lower()}: {e}") from None
