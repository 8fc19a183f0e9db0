"""The binary submission format (``POST /rawtransactions``, :mod:`timecoin.rpc.rawbatch`):
request bodies round-trip and every malformed one is refused before anything is allocated past
the body; replies round-trip and expand to exactly ``sendrawtransactions``' verdicts."""

from __future__ import annotations

import struct

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from timecoin.p2p import messages
from timecoin.rpc import rawbatch
from timecoin.rpc.errors import INVALID_PARAMETER, MEMPOOL_OVERLOADED, RPCError
from timecoin.rpc.rawtransactions import MAX_BATCH, check_batch_length

U32 = struct.Struct("<I")
transactions = st.lists(st.binary(min_size=1, max_size=300), min_size=1, max_size=40)


@given(transactions)
def test_batch_round_trip(raws: list[bytes]) -> None:
    body = rawbatch.encode_batch(raws)
    assert body == messages.encode_items(raws)  # the P2P TX_BATCH layout, not a second codec
    assert len(body) == 4 + sum(4 + len(r) for r in raws)
    assert rawbatch.decode_batch(body, len(raws)) == raws


@given(transactions, st.data())
def test_every_truncation_is_refused(raws: list[bytes], data: st.DataObject) -> None:
    body = rawbatch.encode_batch(raws)
    cut = data.draw(st.integers(0, len(body) - 1))
    with pytest.raises(ValueError):
        rawbatch.decode_batch(body[:cut], MAX_BATCH)


@given(transactions, st.binary(min_size=1, max_size=8))
def test_trailing_bytes_are_refused(raws: list[bytes], tail: bytes) -> None:
    with pytest.raises(ValueError, match="trailing"):
        rawbatch.decode_batch(rawbatch.encode_batch(raws) + tail, MAX_BATCH)


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (b"", "no count"),
        (b"\x01\x00", "no count"),
        (U32.pack(0), "count 0"),
        (U32.pack(2) + U32.pack(1) + b"x", "past the payload"),  # two declared, one there
        (U32.pack(1) + U32.pack(5) + b"abc", "past the payload"),  # length beyond the body
        (U32.pack(1) + U32.pack(0xFFFFFFFF) + b"abc", "past the payload"),
        (U32.pack(1) + U32.pack(0), "length 0"),  # an empty transaction
        (U32.pack(1) + U32.pack(1) + b"xy", "trailing"),
    ],
)
def test_malformed_bodies(body: bytes, fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        rawbatch.decode_batch(body, MAX_BATCH)


def test_count_over_the_limit_is_refused_before_decoding() -> None:
    # A count far beyond the body: refused by the limit, named, before any item is looked at.
    with pytest.raises(rawbatch.BatchTooLong) as info:
        rawbatch.decode_batch(U32.pack(MAX_BATCH + 1), MAX_BATCH)
    assert info.value.count == MAX_BATCH + 1
    # Well framed, one over the limit: the same refusal, with sendrawtransactions' message.
    body = rawbatch.encode_batch([b"t"] * 11)
    with pytest.raises(rawbatch.BatchTooLong, match="11 transactions exceed the batch limit of 10"):
        rawbatch.decode_batch(body, 10)
    assert rawbatch.decode_batch(body, 11) == [b"t"] * 11
    with pytest.raises(RPCError) as rpc_info:
        check_batch_length(MAX_BATCH + 1)
    assert rpc_info.value.code == INVALID_PARAMETER
    assert rpc_info.value.message == str(rawbatch.BatchTooLong(MAX_BATCH + 1, MAX_BATCH))
    check_batch_length(MAX_BATCH)


def test_encode_refuses_what_the_server_would() -> None:
    with pytest.raises(ValueError):
        rawbatch.encode_batch([])
    with pytest.raises(ValueError):
        rawbatch.encode_batch([b"tx", b""])


verdicts = st.lists(
    st.one_of(
        st.tuples(st.binary(min_size=32, max_size=32).map(bytes.hex), st.none()),
        st.tuples(
            st.one_of(st.none(), st.binary(min_size=32, max_size=32).map(bytes.hex)),
            st.tuples(st.integers(-32768, 0), st.text(max_size=40)),
        ),
    ),
    max_size=50,
)


@given(verdicts)
def test_reply_round_trip(items: list[tuple[str | None, tuple[int, str] | None]]) -> None:
    txids = [t for t, _ in items]
    rejects = [(i, r[0], r[1]) for i, (_, r) in enumerate(items) if r is not None]
    body = rawbatch.encode_reply(txids, rejects)
    got_txids, got_rejects = rawbatch.decode_reply(body, len(items))
    assert got_txids == txids
    assert got_rejects == {i: (c, m) for i, c, m in rejects}
    expanded = rawbatch.expand_reply(got_txids, got_rejects)
    assert expanded == [
        {
            "txid": t,
            "accepted": r is None,
            "reject": None if r is None else {"code": r[0], "reason": r[1]},
        }
        for t, r in items
    ]


def test_reply_is_compact_for_accepted_transactions() -> None:
    txid = "ab" * 32
    compact = rawbatch.encode_reply([txid] * 1000, [])
    verbose = orjson.dumps([{"txid": txid, "accepted": True, "reject": None}] * 1000)
    assert len(compact) < 0.75 * len(verbose)


@pytest.mark.parametrize(
    ("body", "count"),
    [
        (b"not json", 1),
        (b"[]", 0),
        (b'{"txids": ["aa"]}', 1),
        (b'{"txids": ["aa"], "rejects": []}', 2),  # another length
        (b'{"txids": [null], "rejects": []}', 1),  # accepted without a txid
        (b'{"txids": ["aa"], "rejects": [[1, -26, "x"]]}', 1),  # index out of range
        (b'{"txids": [null, null], "rejects": [[0, -26, "x"], [0, -26, "y"]]}', 2),  # twice
        (b'{"txids": [null], "rejects": [[0, "-26", "x"]]}', 1),
        (b'{"txids": [null], "rejects": [[0, -26]]}', 1),
    ],
)
def test_malformed_replies(body: bytes, count: int) -> None:
    with pytest.raises(ValueError):
        rawbatch.decode_reply(body, count)


def test_overloaded_rows_expand_like_sendrawtransactions() -> None:
    reason = "mempool-overloaded: 10 transactions pending; retry later"
    body = rawbatch.encode_reply(["aa" * 32, None], [(1, MEMPOOL_OVERLOADED, reason)])
    assert rawbatch.expand_reply(*rawbatch.decode_reply(body, 2)) == [
        {"txid": "aa" * 32, "accepted": True, "reject": None},
        {"txid": None, "accepted": False, "reject": {"code": MEMPOOL_OVERLOADED, "reason": reason}},
    ]
