"""Atheris harness: arbitrary bytes as what a peer sends on a connection (docs/p2p.md): the
frame stream (timecoin/p2p/framing.py) and every payload decoder a frame's type reaches
(timecoin/p2p/messages.py), down to the items inside (consensus messages, heartbeats,
transactions, block headers, commit certificates).

The input's first byte picks the mode:

* below 0x80, **stream**: the rest is the byte stream of one connection, fed to a
  :class:`FrameDecoder` in pieces whose sizes the first byte seeds; each frame completed goes to
  its type's decoders. Feeding the stream whole must give the same frames (or fail with the same
  ``FrameError`` code) as feeding it in pieces.
* 0x80 and above, **payload**: the rest is one payload of message type ``first byte - 0x80``
  (modulo the types), given straight to that type's decoders.

The contract (docs/fuzzing.md) is the peer's (timecoin/p2p/peer.py): a payload decoder returns
or raises ``ValueError`` or ``struct.error`` (the peer is penalized for a bad payload); framing
raises only ``FrameError`` (the connection is dropped). Anything else is a crash: the node would
log an internal error and drop a connection for its own bug.

Run: ``python tests/fuzz/fuzz_p2p_messages.py [libFuzzer flags] [corpus dirs]``; ``check_input``
is importable without atheris.
"""

from __future__ import annotations

import contextlib
import struct
import sys
from collections.abc import Callable

with (
    contextlib.nullcontext()
    if __name__ != "__main__"
    else __import__("atheris").instrument_imports(include=["timecoin"])
):
    import timecoin_native

    from timecoin.consensus.messages import CommitCertificate, decode_message
    from timecoin.core.types import HEADER_LEN, BlockHeader
    from timecoin.masternode.heartbeat import Heartbeat
    from timecoin.p2p import messages as m
    from timecoin.p2p.framing import FrameDecoder, FrameError
    from timecoin.p2p.messages import MessageType
    from timecoin.p2p.ratelimit import frame_cost
    from timecoin.params import DEVNET

MAX_TX_SIZE = DEVNET.max_tx_size
"""The item bound TX_BATCH and TRANSACTIONS decode with (``timecoin.p2p.gossip``)."""
PAYLOAD_MODE = 0x80
"""First bytes from here on select payload mode (module docstring)."""
BAD_PAYLOAD = (ValueError, struct.error)
"""What a payload decoder may raise: the peer's fault (timecoin/p2p/peer.py)."""


def _items(payload: bytes, mtype: MessageType, decode_item: Callable[[bytes], object]) -> None:
    max_items, max_item = m.ITEM_LIMITS[mtype]
    for item in m.decode_items(payload, max_items, max_item, mtype.name):
        try:
            decode_item(item)
        except BAD_PAYLOAD:
            pass


def _transactions(payload: bytes, name: str) -> None:
    items = m.decode_items(payload, m.MAX_TX_BATCH_ITEMS, MAX_TX_SIZE, name)
    txids = timecoin_native.txids(items)
    assert len(txids) == len(items)


def _block(height: int, certificate: bytes, raw: bytes) -> None:
    del height
    if certificate:
        with contextlib.suppress(*BAD_PAYLOAD):
            CommitCertificate.decode(certificate)
    if len(raw) >= HEADER_LEN:
        BlockHeader.decode(raw[:HEADER_LEN])


def _chunk(payload: bytes) -> None:
    chunk = m.BlockChunk.decode(payload)
    assert chunk.encode() == payload
    if chunk.index == 0:
        _, header = m.certified_block_header(chunk.data)
        BlockHeader.decode(header)


def _round_trip(cls: type[m.Hello] | type[m.Auth]) -> Callable[[bytes], None]:
    def decode(payload: bytes) -> None:
        assert cls.decode(payload).encode() == payload, f"{cls.__name__} does not re-encode"

    return decode


def _getaddr(payload: bytes) -> None:
    if payload:
        raise AssertionError("the frame decoder let a GETADDR payload through")


DECODERS: dict[MessageType, Callable[[bytes], object]] = {
    MessageType.HELLO: _round_trip(m.Hello),
    MessageType.AUTH: _round_trip(m.Auth),
    MessageType.PING: lambda p: m.decode_u64(p, "PING"),
    MessageType.PONG: lambda p: m.decode_u64(p, "PONG"),
    MessageType.GETADDR: _getaddr,
    MessageType.ADDR: m.decode_addr,
    MessageType.TX_BATCH: lambda p: _transactions(p, "TX_BATCH"),
    MessageType.VOTE_BATCH: lambda p: _items(p, MessageType.VOTE_BATCH, decode_message),
    MessageType.HEARTBEAT_BATCH: lambda p: _items(p, MessageType.HEARTBEAT_BATCH, Heartbeat.decode),
    MessageType.BLOCK_ANNOUNCE: m.decode_announce,
    MessageType.GETBLOCKS: m.decode_getblocks,
    MessageType.BLOCK: lambda p: _block(*m.decode_block_message(p)),
    MessageType.BLOCK_CHUNK: _chunk,
    MessageType.NOTFOUND: lambda p: m.decode_u64(p, "NOTFOUND"),
    MessageType.LARGE_VOTE: lambda p: _items(p, MessageType.LARGE_VOTE, decode_message),
    MessageType.GET_TRANSACTIONS: m.decode_txids,
    MessageType.TRANSACTIONS: lambda p: _transactions(p, "TRANSACTIONS"),
}
"""Per message type, what the node runs on its payload (connman, gossip, sync and the consumers
of gossip items)."""
TYPES = sorted(DECODERS)


def _payload(mtype: int, payload: bytes) -> None:
    spec = m.SPECS[MessageType(mtype)]
    assert frame_cost(spec.rate_class, payload) >= 1
    try:
        DECODERS[MessageType(mtype)](payload)
    except BAD_PAYLOAD:
        pass


def _frames(stream: bytes, sizes: list[int]) -> tuple[list[tuple[int, bytes]], str | None, int]:
    """(frames, FrameError code or None, bytes buffered) of ``stream`` fed in pieces of
    ``sizes`` (cycled); a stop at the first FrameError."""
    decoder = FrameDecoder(DEVNET.magic, m.FRAME_LIMITS)
    frames: list[tuple[int, bytes]] = []
    pos = i = 0
    try:
        while pos < len(stream):
            n = sizes[i % len(sizes)]
            frames += decoder.feed(stream[pos : pos + n])
            pos += n
            i += 1
    except FrameError as e:
        return frames, e.code, decoder.buffered
    return frames, None, decoder.buffered


def check_input(data: bytes) -> None:
    if not data:
        return
    first, rest = data[0], data[1:]
    if first >= PAYLOAD_MODE:
        picked = TYPES[(first - PAYLOAD_MODE) % len(TYPES)]
        if len(rest) <= m.FRAME_LIMITS[picked]:  # else the frame decoder refuses it first
            _payload(picked, rest)
        return
    whole, whole_error, whole_buffered = _frames(rest, [max(len(rest), 1)])
    sizes = [1 + (first * (k + 1)) % 23 for k in range(4)] if first else [1]
    pieces, pieces_error, pieces_buffered = _frames(rest, sizes)
    assert whole_error == pieces_error, f"whole stream: {whole_error}, in pieces: {pieces_error}"
    if whole_error is None:
        assert [(t, bytes(p)) for t, p in whole] == [(t, bytes(p)) for t, p in pieces]
        assert whole_buffered == pieces_buffered
    for mtype, payload in pieces:
        assert len(payload) <= m.FRAME_LIMITS[mtype]
        _payload(mtype, bytes(payload))


def main() -> None:
    import atheris  # type: ignore[import-untyped]

    atheris.Setup(sys.argv, check_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
