"""Consensus message encodings (docs/encoding.md, "Consensus messages"; DESIGN §3, §12 invariant
6): every kind round-trips, decoding is strict (truncation, trailing bytes, unknown kind or
version, unsorted or overlapping lists, bad counts all raise ``MessageError`` and nothing else),
random and mutated bytes never raise anything but ``MessageError``, and a signature of one kind
never verifies as another kind."""

from __future__ import annotations

import hashlib
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from timecoin import crypto
from timecoin.consensus.messages import (
    LIMITS,
    NIL,
    BlockVote,
    CertificateEntry,
    CommitCertificate,
    CompactBlock,
    Decision,
    DecisionRequest,
    FinalityCertificate,
    Kind,
    MessageError,
    Proposal,
    SnowballQuery,
    SnowballResponse,
    Status,
    TxCertificate,
    TxVote,
    decode_message,
)

CHAIN = hashlib.sha256(b"chain").digest()
SK = hashlib.sha256(b"masternode").digest()
PK = crypto.public_key(SK)
TXIDS = sorted(hashlib.sha256(bytes([i])).digest() for i in range(5))
HEADER_BYTES = bytes(296)


COINBASE = bytes(25)


def compact() -> CompactBlock:
    """A compact block of three transactions: the coinbase and one more carried whole."""
    return CompactBlock(HEADER_BYTES, (TXIDS[0], TXIDS[1], TXIDS[2]), (COINBASE, b"\x07" * 40))


def samples() -> list:
    vote = TxVote.create(SK, CHAIN, 7, TXIDS[:3], TXIDS[3:])
    entry = CertificateEntry(
        PK, 3, vote.roots[0], 1, 2, vote.roots[1], (bytes(32), bytes([1]) * 32), bytes(64)
    )
    cert = FinalityCertificate(TXIDS[1], 7, (entry,))
    commit = CommitCertificate(7, 2, bytes([3]) * 32, ((PK, bytes(64)),))
    query = SnowballQuery.create(SK, CHAIN, 7, 99, bytes(36), TXIDS[:2])
    return [
        vote,
        TxCertificate(bytes(25), cert),
        Proposal.create(SK, CHAIN, 7, 2, 1, compact()),
        Proposal.create(SK, CHAIN, 7, 0, None, compact()),
        BlockVote.create(SK, CHAIN, Kind.PREVOTE, 7, 2, bytes([3]) * 32),
        BlockVote.create(SK, CHAIN, Kind.PRECOMMIT, 7, 2, NIL),
        Decision(commit, compact()),
        DecisionRequest(7),
        Status.create(SK, CHAIN, 6, bytes([4]) * 32, 1),
        query,
        SnowballResponse.create(SK, CHAIN, query, TXIDS[0]),
        SnowballResponse.create(SK, CHAIN, query, None),
    ]


@pytest.mark.parametrize("msg", samples(), ids=lambda m: type(m).__name__)
def test_round_trip_and_strictness(msg):
    data = msg.encode()
    assert decode_message(data) == msg
    assert decode_message(data).encode() == data
    for cut in range(len(data)):
        with pytest.raises(MessageError):
            decode_message(data[:cut])
    with pytest.raises(MessageError, match="trailing"):
        decode_message(data + b"\0")
    with pytest.raises(MessageError):
        decode_message(data[:1] + bytes([99]) + data[2:])  # unknown version


@pytest.mark.parametrize(
    "msg", [m for m in samples() if hasattr(m, "signing_message")], ids=lambda m: type(m).__name__
)
def test_signatures_verify_and_are_bound_to_kind_and_chain(msg):
    for key, signed, sig in msg.signatures(CHAIN):
        assert crypto.verify(key, signed, sig)
        assert signed.startswith(b"TIME Coin 2026-11-21 consensus v1\x00" + bytes([msg.encode()[0]]) + CHAIN)
    assert not any(crypto.verify(k, m, s) for k, m, s in msg.signatures(bytes(32)))


def test_prevote_signature_is_not_a_precommit():
    prevote = BlockVote.create(SK, CHAIN, Kind.PREVOTE, 5, 0, bytes([1]) * 32)
    forged = BlockVote(Kind.PRECOMMIT, 5, 0, prevote.block_hash, PK, prevote.signature)
    assert not crypto.verify(PK, forged.signing_message(CHAIN), forged.signature)


def test_tx_vote_rules():
    with pytest.raises(ValueError, match="at least one"):
        TxVote(1, PK, (), (), bytes(64))
    with pytest.raises(ValueError, match="ascending"):
        TxVote(1, PK, (TXIDS[1], TXIDS[0]), (), bytes(64))
    with pytest.raises(ValueError, match="same txid"):
        TxVote(1, PK, (TXIDS[0],), (TXIDS[0],), bytes(64))
    good = TxVote.create(SK, CHAIN, 1, [TXIDS[0]], [TXIDS[1]]).encode()
    # swap the two txids: accept and reject overlap only if equal; make both lists hold TXIDS[0]
    overlap = good.replace(TXIDS[1], TXIDS[0])
    with pytest.raises(MessageError, match="same txid"):
        decode_message(overlap)
    unsorted = TxVote.create(SK, CHAIN, 1, TXIDS[:2], []).encode()
    swapped = unsorted[:46] + TXIDS[1] + TXIDS[0] + unsorted[110:]
    with pytest.raises(MessageError, match="ascending"):
        decode_message(swapped)
    too_many = good[:42] + struct.pack("<I", LIMITS["txids_per_vote"] + 1) + good[46:]
    with pytest.raises(MessageError, match="limit"):
        decode_message(too_many)
    huge_count = good[:42] + struct.pack("<I", 2**32 - 1) + good[46:]
    with pytest.raises(MessageError):
        decode_message(huge_count)


def test_proposal_and_vote_rules():
    with pytest.raises(ValueError):
        Proposal(1, 0, 0, PK, compact(), bytes(64))  # valid round must be below round
    with pytest.raises(TypeError):
        Proposal(1, 0, None, PK, b"short", bytes(64))  # type: ignore[arg-type]
    data = Proposal.create(SK, CHAIN, 1, 3, None, compact()).encode()
    bad_vr = data[:14] + struct.pack("<I", 3) + data[18:]
    with pytest.raises(MessageError, match="valid round"):
        decode_message(bad_vr)
    reserved = data[:10] + struct.pack("<I", 2**32 - 1) + data[14:]
    with pytest.raises(MessageError):
        decode_message(reserved)
    with pytest.raises(ValueError):
        BlockVote(Kind.STATUS, 1, 0, NIL, PK, bytes(64))


def test_compact_block_rules():
    """A compact block names at least its coinbase, carries the coinbase and at most every
    transaction whole, and its prefilled bytes are under the proposer's signature: a relay that
    swaps a witness in them breaks the signature."""
    with pytest.raises(ValueError, match="txids"):
        CompactBlock(HEADER_BYTES, (), (COINBASE,))
    with pytest.raises(ValueError, match="prefilled"):
        CompactBlock(HEADER_BYTES, (TXIDS[0],), ())
    with pytest.raises(ValueError, match="prefilled"):
        CompactBlock(HEADER_BYTES, (TXIDS[0],), (COINBASE, COINBASE))
    with pytest.raises(ValueError, match="empty"):
        CompactBlock(HEADER_BYTES, (TXIDS[0], TXIDS[1]), (COINBASE, b""))
    proposal = Proposal.create(SK, CHAIN, 1, 0, None, compact())
    data = proposal.encode()
    # prefilled count 0: the coinbase must travel
    at = 2 + 8 + 4 + 4 + 32 + 296 + 4 + 3 * 32
    with pytest.raises(MessageError, match="coinbase"):
        decode_message(data[:at] + struct.pack("<I", 0) + data[-64:])
    # more prefilled than txids
    with pytest.raises(MessageError, match="prefilled"):
        decode_message(data[:at] + struct.pack("<I", 4) + data[at + 4 :])
    tampered = bytearray(data)
    tampered[-65] ^= 1  # the last byte of the last prefilled transaction
    forged = decode_message(bytes(tampered))
    assert forged.block_hash == proposal.block_hash
    ((key, signed, signature),) = forged.signatures(CHAIN)
    assert not crypto.verify(key, signed, signature)
    assert len(data) == 2 + 8 + 4 + 4 + 32 + proposal.compact.encoded_len() + 64


def test_certificate_rules():
    entry = CertificateEntry(PK, 2, bytes(32), 0, 0, bytes(32), (), bytes(64))
    other = CertificateEntry(bytes(32), 2, bytes(32), 0, 0, bytes(32), (), bytes(64))
    unsorted = FinalityCertificate(TXIDS[0], 1, (entry, other)).encode()
    with pytest.raises(MessageError, match="ascending"):
        FinalityCertificate.decode(unsorted)
    bad_index = FinalityCertificate(
        TXIDS[0], 1, (CertificateEntry(PK, 2, bytes(32), 2, 0, bytes(32), (), bytes(64)),)
    )
    with pytest.raises(MessageError, match="index"):
        FinalityCertificate.decode(bad_index.encode())
    empty = FinalityCertificate(TXIDS[0], 1, ()).encode()
    with pytest.raises(MessageError, match="no entries"):
        FinalityCertificate.decode(empty)
    nil_commit = CommitCertificate(1, 0, NIL, ((PK, bytes(64)),)).encode()
    with pytest.raises(MessageError, match="nil"):
        CommitCertificate.decode(nil_commit)
    with pytest.raises(MessageError, match="candidates"):
        query = SnowballQuery.create(SK, CHAIN, 1, 1, bytes(36), TXIDS[:2]).encode()
        decode_message(query[:54] + struct.pack("<I", 1) + query[58:90] + query[122:])


def test_unknown_kind_and_non_bytes():
    with pytest.raises(MessageError, match="unknown"):
        decode_message(b"\x63\x01")
    with pytest.raises(MessageError):
        decode_message(b"")
    with pytest.raises(TypeError):
        decode_message("text")  # type: ignore[arg-type]


@given(st.binary(max_size=400))
def test_random_bytes_only_raise_message_error(data):
    try:
        decode_message(data)
    except MessageError:
        pass


@given(st.sampled_from([m.encode() for m in samples()]), st.integers(0, 10_000), st.integers(0, 255))
def test_mutated_messages_only_raise_message_error(data, position, value):
    mutated = bytearray(data)
    mutated[position % len(mutated)] = value
    try:
        msg = decode_message(bytes(mutated))
    except MessageError:
        return
    assert msg.encode() == bytes(mutated)  # whatever decodes is canonical
