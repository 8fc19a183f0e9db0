"""The native codec against its pure-Python twin (differential, property-based).

Random valid values encode to identical bytes in both and round-trip; random bytes and
mutations of valid encodings (bit flips, overwritten counts, splices, truncations, extensions)
are accepted or rejected by both alike, decoded to the same value when accepted, and never
crash. Whatever decodes is canonical: it re-encodes to exactly the input.
"""

from __future__ import annotations

import dataclasses
import struct

import pytest
import timecoin_native as native
from hypothesis import given
from hypothesis import strategies as st

from timecoin.core.types import Block, Transaction
from timecoin.reference import codec as reference

PAYLOAD_LEN = {0: 0, 1: 8, 2: 100, 3: 36, 4: 68}

u32 = st.integers(min_value=0, max_value=2**32 - 1)
u64 = st.integers(min_value=0, max_value=2**64 - 1)
hashes = st.binary(min_size=32, max_size=32)
outpoints = st.tuples(hashes, u32)
tx_outs = st.tuples(u64, hashes)
witnesses = st.tuples(hashes, st.binary(min_size=64, max_size=64))


@st.composite
def transactions(draw: st.DrawFn) -> tuple:
    kind = draw(st.integers(min_value=0, max_value=4))
    return (
        draw(u32),
        kind,
        tuple(draw(st.lists(outpoints, max_size=4))),
        tuple(draw(st.lists(tx_outs, max_size=4))),
        draw(u32),
        draw(st.binary(min_size=PAYLOAD_LEN[kind], max_size=PAYLOAD_LEN[kind])),
        tuple(draw(st.lists(witnesses, max_size=4))),
    )


headers = st.tuples(
    u32,
    u64,
    hashes,
    hashes,
    hashes,
    u64,
    hashes,
    st.binary(min_size=80, max_size=80),
    st.binary(min_size=64, max_size=64),
    u32,
)
blocks = st.tuples(headers, st.lists(transactions(), max_size=5).map(tuple))


def outcome(decode, data):
    """``("ok", value)`` or ``("error", None)``; anything but ValueError propagates (a crash)."""
    try:
        return "ok", decode(data)
    except ValueError:
        return "error", None


# -- valid values ---------------------------------------------------------------------------------


@given(transactions())
def test_transactions_encode_identically_and_round_trip(tx):
    enc = native.encode_transaction(tx)
    assert enc == reference.encode_transaction(tx)
    assert native.decode_transaction(enc) == reference.decode_transaction(enc) == tx
    assert native.txid(enc) == reference.txid(enc)
    unsigned = native.encode_transaction(tx[:6] + ((),))
    assert native.txid(unsigned) == native.txid(enc)  # witnesses are not part of the txid
    typed = Transaction.decode(enc)
    assert typed.encode() == enc and typed.txid == native.txid(enc)
    rebuilt = Transaction(*(getattr(typed, f.name) for f in dataclasses.fields(typed) if f.init))
    assert rebuilt == typed and rebuilt.txid == typed.txid  # validated construction accepts it


@given(blocks)
def test_blocks_encode_identically_and_round_trip(block):
    enc = native.encode_block(block)
    assert enc == reference.encode_block(block)
    assert native.decode_block(enc) == reference.decode_block(enc) == block
    assert native.decode_block_with_txids(enc) == reference.decode_block_with_txids(enc)
    head, raws, txids = native.split_block(enc)
    (ref_head, ref_txs), ref_txids = reference.decode_block_with_txids(enc)
    assert head == ref_head and txids == ref_txids
    assert [reference.decode_transaction(r) for r in raws] == list(ref_txs)
    header = enc[:296]
    assert native.block_hash(header) == reference.block_hash(header)
    typed = Block.decode(enc)
    assert typed.encode() == enc
    assert typed.txids == native.txids([native.encode_transaction(tx) for tx in block[1]])


@given(hashes, st.integers(min_value=0, max_value=255), hashes, u32)
def test_sighash_agrees(chain_id, network, txid, index):
    assert native.sighash(chain_id, network, txid, index) == reference.sighash(chain_id, network, txid, index)


@given(
    st.lists(st.tuples(transactions(), st.lists(st.binary(min_size=32, max_size=32), max_size=3)), max_size=4)
)
def test_batch_signer_agrees(items):
    encs = [native.encode_transaction(tx) for tx, _ in items]
    args = (
        b"".join(encs),
        struct.pack(f"<{len(encs)}I", *map(len, encs)),
        b"".join(k for _, keys in items for k in keys),
        struct.pack(f"<{len(items)}I", *(len(keys) for _, keys in items)),
        b"\7" * 32,
        2,
    )
    signed = native.sign_transactions(*args)
    assert signed == reference.sign_transactions(*args)
    assert [native.txid(s) for s in signed] == [native.txid(e) for e in encs]


# -- malformed bytes ------------------------------------------------------------------------------

DECODERS = [
    "decode_transaction",
    "decode_block",
    "decode_block_header",
    "decode_coin",
    "decode_outpoint",
    "decode_tx_out",
    "decode_witness",
]
ENCODERS = {
    "decode_transaction": "encode_transaction",
    "decode_block": "encode_block",
    "decode_block_header": "encode_block_header",
    "decode_coin": "encode_coin",
    "decode_outpoint": "encode_outpoint",
    "decode_tx_out": "encode_tx_out",
    "decode_witness": "encode_witness",
}


def agree(decoder: str, data: bytes) -> None:
    got = outcome(getattr(native, decoder), data)
    assert got == outcome(getattr(reference, decoder), data), (decoder, data.hex())
    if got[0] == "ok":
        assert getattr(native, ENCODERS[decoder])(got[1]) == data  # canonical


@pytest.mark.parametrize("decoder", DECODERS)
@given(data=st.binary(max_size=400))
def test_random_bytes(decoder, data):
    agree(decoder, data)


@st.composite
def mutated(draw: st.DrawFn, valid: st.SearchStrategy[bytes]) -> bytes:
    data = bytearray(draw(valid))
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        op = draw(st.sampled_from(["flip", "byte", "count", "cut", "extend", "splice"]))
        if not data:
            data += draw(st.binary(max_size=8))
            continue
        i = draw(st.integers(min_value=0, max_value=len(data) - 1))
        if op == "flip":
            data[i] ^= 1 << draw(st.integers(min_value=0, max_value=7))
        elif op == "byte":
            data[i] = draw(st.integers(min_value=0, max_value=255))
        elif op == "count":
            value = draw(st.sampled_from([0, 1, 2, 5, 255, 2**16, 2**31, 2**32 - 1]))
            data[i : i + 4] = struct.pack("<I", value)
        elif op == "cut":
            del data[i:]
        elif op == "extend":
            data += draw(st.binary(min_size=1, max_size=8))
        else:
            j = draw(st.integers(min_value=i, max_value=len(data)))
            data[i:j] = draw(st.binary(max_size=8))
    return bytes(data)


valid_txs = transactions().map(native.encode_transaction)
valid_blocks = blocks.map(native.encode_block)


@given(mutated(valid_txs))
def test_mutated_transactions(data):
    agree("decode_transaction", data)
    txid = outcome(native.txid, data)
    assert txid == outcome(reference.txid, data)


@given(mutated(valid_blocks))
def test_mutated_blocks(data):
    agree("decode_block", data)
    assert outcome(native.decode_block_with_txids, data) == outcome(reference.decode_block_with_txids, data)
    # split_block fails exactly where decoding fails, with the same message.
    split, full = outcome(native.split_block, data), outcome(native.decode_block_with_txids, data)
    assert split[0] == full[0]
    if full[0] == "ok":
        (head, raws, txids), ((full_head, txs), full_txids) = split[1], full[1]
        assert head == full_head and txids == full_txids
        assert [native.decode_transaction(r) for r in raws] == list(txs)


@given(blocks, u64)
def test_transaction_spans_and_index_entries_agree(block, height):
    enc = native.encode_block(block)
    _, txids = native.decode_block_with_txids(enc)
    spans = native.transaction_spans(enc)
    assert spans == reference.transaction_spans(enc)
    assert b"".join(enc[o : o + n] for o, n in spans) == b"".join(map(native.encode_transaction, block[1]))
    entries = native.index_entries(enc, txids, height)
    assert entries == reference.index_entries(enc, txids, height)
    assert [t for t, _ in entries] == sorted(txids)
    for bad in (txids[:-1], [*txids, bytes(32)], [t[:31] for t in txids]):
        if bad != txids:  # one txid per transaction, 32 bytes each, or a ValueError from both
            assert outcome(lambda d, b=bad: native.index_entries(d, b, height), enc) == ("error", None)
            assert outcome(lambda d, b=bad: reference.index_entries(d, b, height), enc) == ("error", None)
    if txids:
        for index_entries in (native.index_entries, reference.index_entries):
            with pytest.raises(TypeError, match=r"txids\[0\] must be bytes"):
                index_entries(enc, [bytearray(t) for t in txids], height)


@given(mutated(valid_blocks), u64)
def test_mutated_blocks_index_alike(data, height):
    spans = outcome(native.transaction_spans, data)
    assert spans == outcome(reference.transaction_spans, data)
    assert spans[0] == outcome(native.decode_block, data)[0]  # spans fail exactly where decoding fails
    if spans[0] == "ok":
        _, txids = native.decode_block_with_txids(data)
        assert native.index_entries(data, txids, height) == reference.index_entries(data, txids, height)


@given(mutated(valid_txs))
def test_typed_decode_agrees_with_the_tuple_codec(data):
    got = outcome(Transaction.decode, data)
    want = outcome(reference.decode_transaction, data)
    assert got[0] == want[0]
    if got[0] == "ok":
        assert got[1].encode() == data
