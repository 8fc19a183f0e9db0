"""The transport end of one connection: asyncio's Protocol API (on uvloop), framing and flow
control (DESIGN §8).

:class:`FrameProtocol` decodes frames from ``data_received`` and hands them, in order, to its
:class:`FrameSink` (the :class:`~timecoin.p2p.peer.Peer`); it writes frames, counts bytes, and
closes with a reason. A framing error reaches the sink as ``on_frame_error`` and the protocol
reads nothing more. A peer that lets more than :data:`SEND_BUFFER_LIMIT` bytes pile up unsent is
too slow to keep and is closed. This module does no message interpretation and no awaiting.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Protocol, cast

from timecoin.p2p.framing import HEADER, FrameDecoder, FrameError

log = logging.getLogger(__name__)

SEND_BUFFER_LIMIT = 128 * 1024 * 1024
"""Bytes queued to one peer beyond which it is disconnected as too slow."""
WRITE_HIGH_WATER = 4 * 1024 * 1024
"""Transport high-water mark: above it the protocol reports itself not writable."""


class FrameSink(Protocol):
    def on_connected(self, protocol: FrameProtocol) -> None: ...
    def on_frames(self, frames: list[tuple[int, bytes]]) -> None: ...
    def on_frame_error(self, error: FrameError) -> None: ...
    def on_closed(self, reason: str) -> None: ...


class FrameProtocol(asyncio.Protocol):
    """Frames over one TCP connection for one sink."""

    def __init__(self, magic: bytes, limits: tuple[int, ...], sink: FrameSink) -> None:
        self._magic = magic
        self._decoder = FrameDecoder(magic, limits)
        self._sink = sink
        self.transport: asyncio.Transport | None = None
        self.bytes_received = 0
        self.bytes_sent = 0
        self.close_reason = ""
        self._closing = False
        self._writable = True
        self._reading_paused = False

    # asyncio callbacks

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's TCPTransport implements asyncio.Transport without subclassing it.
        self.transport = transport = cast(asyncio.Transport, transport)
        transport.set_write_buffer_limits(high=WRITE_HIGH_WATER)
        self._sink.on_connected(self)

    def data_received(self, data: bytes) -> None:
        if self._closing:
            return
        self.bytes_received += len(data)
        try:
            frames = self._decoder.feed(data)
        except FrameError as e:
            self._sink.on_frame_error(e)
            self.close(f"framing: {e}")
            return
        if frames:
            self._sink.on_frames(frames)

    def eof_received(self) -> bool:
        self.close("peer closed the connection")
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.close_reason:
            self.close_reason = f"connection lost: {exc}" if exc else "connection closed"
        self._closing = True
        self._sink.on_closed(self.close_reason)

    def pause_writing(self) -> None:
        self._writable = False

    def resume_writing(self) -> None:
        self._writable = True

    # for the peer

    @property
    def closing(self) -> bool:
        return self._closing

    @property
    def writable(self) -> bool:
        """Below the transport's high-water mark."""
        return self._writable and not self._closing

    def send(self, message_type: int, payload: bytes) -> None:
        """Queues one frame; closes the connection instead if the peer is too far behind."""
        transport = self.transport
        if self._closing or transport is None:
            return
        if transport.get_write_buffer_size() > SEND_BUFFER_LIMIT:
            self.close(f"send buffer over {SEND_BUFFER_LIMIT} bytes: peer too slow")
            return
        transport.writelines((HEADER.pack(self._magic, message_type, len(payload)), payload))
        self.bytes_sent += len(payload) + HEADER.size

    def send_raw(self, data: bytes) -> None:
        """Writes bytes as they are (the test harness uses this to break the framing)."""
        if self.transport is not None and not self._closing:
            self.transport.write(data)
            self.bytes_sent += len(data)

    def pause_reading(self) -> None:
        if self.transport is not None and not self._reading_paused and not self._closing:
            self._reading_paused = True
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        if self.transport is not None and self._reading_paused and not self._closing:
            self._reading_paused = False
            self.transport.resume_reading()

    def close(self, reason: str) -> None:
        """Closes the connection after the queued bytes are written; the first reason sticks."""
        if self._closing:
            return
        self._closing = True
        self.close_reason = reason
        if self.transport is not None:
            self.transport.close()

    def abort(self, reason: str) -> None:
        """Closes at once, dropping queued bytes."""
        if not self.close_reason:
            self.close_reason = reason
        self._closing = True
        if self.transport is not None:
            self.transport.abort()
