"""Framing and message codecs of the P2P layer (DESIGN §8): frames split anywhere decode the
same, bad headers are refused before their payload is buffered, and every payload decoder is
strict (round trips, wrong lengths, counts over their limits, trailing bytes)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from timecoin.core.types import HEADER_LEN as BLOCK_HEADER_LEN
from timecoin.p2p import messages as m
from timecoin.p2p.framing import HEADER, HEADER_LEN, FrameDecoder, FrameError, encode_frame
from timecoin.p2p.messages import MessageType

MAGIC = b"TEST"


def decoder() -> FrameDecoder:
    return FrameDecoder(MAGIC, m.FRAME_LIMITS)


frames_st = st.lists(
    st.tuples(
        st.sampled_from([MessageType.PING, MessageType.TX_BATCH, MessageType.GETADDR]),
        st.binary(max_size=300),
    ),
    max_size=8,
).map(
    lambda fs: [
        (t, b"" if t == MessageType.GETADDR else (p[:8].ljust(8, b"\0") if t == MessageType.PING else p))
        for t, p in fs
    ]
)


@given(frames_st, st.lists(st.integers(min_value=0, max_value=4000), max_size=10))
def test_any_split_decodes_the_same_frames(frames, cuts):
    stream = b"".join(encode_frame(MAGIC, t, p) for t, p in frames)
    points = sorted({c % (len(stream) + 1) for c in cuts} | {0, len(stream)})
    d = decoder()
    out = []
    for a, b in zip(points, points[1:], strict=False):
        out.extend(d.feed(stream[a:b]))
    assert [(int(t), p) for t, p in frames] == [(t, bytes(p)) for t, p in out]
    assert d.buffered == 0


def test_byte_by_byte():
    stream = encode_frame(MAGIC, MessageType.PING, b"12345678") * 3
    d = decoder()
    out = [f for i in range(len(stream)) for f in d.feed(stream[i : i + 1])]
    assert out == [(MessageType.PING, b"12345678")] * 3


@pytest.mark.parametrize(
    "header,code",
    [
        (HEADER.pack(b"XXXX", MessageType.PING, 8), "bad-magic"),
        (HEADER.pack(MAGIC, 0, 0), "unknown-type"),
        (HEADER.pack(MAGIC, 999, 0), "unknown-type"),
        (HEADER.pack(MAGIC, MessageType.PING, 9), "oversized"),
        (HEADER.pack(MAGIC, MessageType.TX_BATCH, m.MAX_FRAME_PAYLOAD + 1), "oversized"),
        (HEADER.pack(MAGIC, MessageType.HELLO, 2**32 - 1), "oversized"),
    ],
)
def test_bad_header_is_refused_before_its_payload(header, code):
    # Whole, or header first then payload: either way the header alone decides.
    with pytest.raises(FrameError) as e:
        decoder().feed(header + b"\0" * 64)
    assert e.value.code == code
    d = decoder()
    d.feed(header[:5])
    with pytest.raises(FrameError):
        d.feed(header[5:])
    assert d.buffered <= HEADER_LEN


def test_partial_frame_is_held_not_delivered():
    frame = encode_frame(MAGIC, MessageType.TX_BATCH, b"x" * 100)
    d = decoder()
    assert d.feed(frame[:-1]) == []
    assert d.buffered == len(frame) - 1
    assert d.feed(frame[-1:]) == [(MessageType.TX_BATCH, b"x" * 100)]


def test_every_type_has_a_limit_within_the_frame_maximum():
    for t in MessageType:
        assert 0 <= m.FRAME_LIMITS[t] <= m.MAX_FRAME_PAYLOAD
    assert m.SPECS[MessageType.BLOCK_CHUNK].max_payload <= m.MAX_FRAME_PAYLOAD
    assert m.BLOCK_CHUNK_SIZE <= 2_000_000


# -- payload codecs -------------------------------------------------------------------------------


def test_hello_auth_round_trip_and_strict_length():
    hello = m.Hello(1, 2, b"g" * 32, 7, b"t" * 32, b"k" * 32, b"n" * 32, 24300, 1)
    assert m.Hello.decode(hello.encode()) == hello
    auth = m.Auth(b"s" * 64, b"m" * 32, b"z" * 64)
    assert m.Auth.decode(auth.encode()) == auth
    for bad in (hello.encode()[:-1], hello.encode() + b"\0"):
        with pytest.raises(ValueError):
            m.Hello.decode(bad)
    with pytest.raises(ValueError):
        m.Auth.decode(auth.encode()[1:])


@given(st.lists(st.binary(min_size=1, max_size=50), min_size=1, max_size=20))
def test_items_round_trip(items):
    assert m.decode_items(m.encode_items(items), 20, 50, "X") == items


@pytest.mark.parametrize(
    "payload",
    [
        b"",
        b"\0\0\0",
        m.encode_items([b"a"])[:-1],
        m.encode_items([b"a"]) + b"\0",
        (0).to_bytes(4, "little"),
        (3).to_bytes(4, "little") + (1).to_bytes(4, "little") + b"a",
        (2**32 - 1).to_bytes(4, "little"),
        (1).to_bytes(4, "little") + (0).to_bytes(4, "little"),
        (1).to_bytes(4, "little") + (2**32 - 1).to_bytes(4, "little") + b"abc",
        m.encode_items([b"x" * 51]),
        m.encode_items([b"x"] * 21),
    ],
)
def test_items_bad(payload):
    with pytest.raises(ValueError):
        m.decode_items(payload, 20, 50, "X")


def test_getblocks_limits():
    assert m.decode_getblocks(m.encode_getblocks(5, 10)) == (5, 10)
    for count in (0, m.MAX_BLOCKS_PER_REQUEST + 1):
        with pytest.raises(ValueError):
            m.decode_getblocks(m.encode_getblocks(5, count))


def test_addr_round_trip_and_limits():
    entries = [("127.0.0.1", 24300, 5), ("::1", 1, 6), ("2001:db8::7", 65535, 2**40)]
    assert m.decode_addr(m.encode_addr(entries)) == entries
    with pytest.raises(ValueError):
        m.decode_addr(m.encode_addr(entries)[:-1])
    with pytest.raises(ValueError):
        m.decode_addr(m.encode_addr([("127.0.0.1", 0, 1)]))
    with pytest.raises(ValueError):
        m.encode_addr([("127.0.0.1", 1, 1)] * (m.MAX_ADDR_ITEMS + 1))
    with pytest.raises(ValueError):
        m.decode_addr((m.MAX_ADDR_ITEMS + 1).to_bytes(4, "little") + b"\0" * 26 * (m.MAX_ADDR_ITEMS + 1))


def test_block_chunks_split_and_check():
    raw = bytes(range(256)) * (m.BLOCK_CHUNK_SIZE // 256 * 2 + 10)
    chunks = [m.BlockChunk.decode(p) for p in m.split_block(3, b"h" * 32, raw)]
    assert len(chunks) == 3 and b"".join(c.data for c in chunks) == raw
    assert all(
        len(p) <= m.SPECS[MessageType.BLOCK_CHUNK].max_payload for p in m.split_block(3, b"h" * 32, raw)
    )
    good = chunks[0]
    for bad in (
        m.BlockChunk(3, good.block_hash, good.total_len, 0, 2, good.data),  # wrong count
        m.BlockChunk(3, good.block_hash, good.total_len, 3, 3, good.data),  # index past count
        m.BlockChunk(3, good.block_hash, good.total_len, 0, 3, good.data[:-1]),  # short chunk
        m.BlockChunk(3, good.block_hash, 100, 0, 1, b"x" * 100),  # fits one BLOCK
    ):
        with pytest.raises(ValueError):
            m.BlockChunk.decode(bad.encode())
    with pytest.raises(ValueError):
        m.encode_block_message(1, b"certificate", raw)


def test_certified_block_record_round_trip_and_limits():
    header = bytes(range(256)) + bytes(BLOCK_HEADER_LEN - 256)
    block, certificate = header + b"transactions", b"c" * 100
    payload = m.encode_block_message(7, certificate, block)
    assert m.decode_block_message(payload) == (7, certificate, block)
    assert m.certified_block_header(payload[8:]) == (100, header)
    assert m.decode_block_message(m.encode_block_message(7, b"", block)) == (7, b"", block)  # refused later
    for bad in (
        b"\x01\x00",  # no certificate length
        (200).to_bytes(4, "little") + certificate + block,  # certificate length past the record
        (100).to_bytes(4, "little") + certificate + header[:-1],  # ends inside the header
        (m.MAX_SYNC_CERTIFICATE + 1).to_bytes(4, "little") + certificate + block,  # over the limit
    ):
        with pytest.raises(ValueError):
            m.decode_certified_block(bad)
    with pytest.raises(ValueError):
        m.encode_certified_block(b"c" * (m.MAX_SYNC_CERTIFICATE + 1), block)
    # The largest certificate still leaves the header inside the first chunk.
    assert 4 + m.MAX_SYNC_CERTIFICATE + BLOCK_HEADER_LEN <= m.BLOCK_CHUNK_SIZE
