"""The transport end of one connection: asyncio's Protocol API (on uvloop), the Noise
encryption, framing and flow control (DESIGN §8; docs/p2p.md "Transport").

:class:`FrameProtocol` first runs the Noise XX handshake (:class:`~timecoin.p2p.handshake.
NoiseSession`; the dialing side initiates) and tells its :class:`FrameSink` (the
:class:`~timecoin.p2p.peer.Peer`) whom it proved (``on_secured``) or why it failed
(``on_handshake_error``). From then on every received chunk is decrypted natively in one call
(GIL released) and the plaintext decoded into frames, handed in order to ``on_frames``. A
message that fails to authenticate, like a framing error, reaches the sink as ``on_frame_error``
(code ``decrypt-failed``) before anything of that chunk is handed on, and the protocol reads
nothing more. Frames sent are queued and encrypted together once per event-loop iteration (one
native call per flush); frames queued before the handshake finishes go out once it does. A peer
that lets more than :data:`SEND_BUFFER_LIMIT` bytes pile up unsent is too slow to keep and is
closed. This module does no message interpretation and no awaiting.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Protocol, cast

import timecoin_native

from timecoin.p2p.framing import HEADER, FrameDecoder, FrameError
from timecoin.p2p.handshake import HandshakeError, LocalIdentity, NoiseSession, PeerIdentity

log = logging.getLogger(__name__)

_HEADER_LEN = HEADER.size

SEND_BUFFER_LIMIT = 128 * 1024 * 1024
"""Bytes queued to one peer beyond which it is disconnected as too slow."""
WRITE_HIGH_WATER = 4 * 1024 * 1024
"""Transport high-water mark: above it the protocol reports itself not writable."""


class FrameSink(Protocol):
    def on_connected(self, protocol: FrameProtocol) -> None: ...
    def on_secured(self, peer: PeerIdentity) -> None: ...
    def on_handshake_error(self, error: HandshakeError) -> None: ...
    def on_frames(self, frames: list[tuple[int, bytes]]) -> None: ...
    def on_frame_error(self, error: FrameError) -> None: ...
    def on_closed(self, reason: str) -> None: ...


class FrameProtocol(asyncio.Protocol):
    """Encrypted frames over one TCP connection for one sink. ``initiator``: we dialed.
    ``identity`` replaces our Noise identity payload (tests that break it)."""

    def __init__(
        self,
        magic: bytes,
        limits: tuple[int, ...],
        sink: FrameSink,
        local: LocalIdentity,
        *,
        initiator: bool,
        identity: bytes | None = None,
    ) -> None:
        self._magic = magic
        self._decoder = FrameDecoder(magic, limits)
        self._sink = sink
        self._noise: NoiseSession | None = NoiseSession(local, magic, initiator=initiator, identity=identity)
        self._cipher: timecoin_native.NoiseTransport | None = None
        self.peer_identity: PeerIdentity | None = None
        """Whom the Noise handshake proved, once it finished."""
        self.transport: asyncio.Transport | None = None
        self.bytes_received = 0
        self.bytes_sent = 0
        """Bytes on the wire (handshake and ciphertext included)."""
        self.close_reason = ""
        self._closing = False
        self._writable = True
        self._reading_paused = False
        self._pending: list[bytes] = []
        """Plaintext queued for the next flush."""
        self._pending_len = 0
        self._flush_handle: asyncio.Handle | None = None

    # asyncio callbacks

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's TCPTransport implements asyncio.Transport without subclassing it.
        self.transport = transport = cast(asyncio.Transport, transport)
        transport.set_write_buffer_limits(high=WRITE_HIGH_WATER)
        self._sink.on_connected(self)
        if self._noise is not None and not self._closing:
            self._write(self._noise.start())

    def data_received(self, data: bytes) -> None:
        if self._closing:
            return
        self.bytes_received += len(data)
        cipher = self._cipher
        if cipher is None:
            noise = self._noise
            assert noise is not None
            try:
                self._write(noise.feed(data))
            except HandshakeError as e:
                self._sink.on_handshake_error(e)
                self.close(f"handshake: {e}")
                return
            if noise.peer is None:
                return
            cipher = self._secured(noise)
            data = noise.leftover
            if self._closing or not data:
                return
        try:
            plaintext = cipher.decrypt(data)
        except ValueError as e:
            error = FrameError("decrypt-failed", str(e))
            self._sink.on_frame_error(error)
            self.close(f"framing: {error}")
            return
        if not plaintext:
            return
        try:
            frames = self._decoder.feed(plaintext)
        except FrameError as e:
            self._sink.on_frame_error(e)
            self.close(f"framing: {e}")
            return
        if frames:
            self._sink.on_frames(frames)

    def _secured(self, noise: NoiseSession) -> timecoin_native.NoiseTransport:
        """The handshake finished: keep its transport, tell the sink, send what was queued."""
        assert noise.transport is not None and noise.peer is not None
        self._cipher = noise.transport
        self._noise = None
        self.peer_identity = noise.peer
        self._sink.on_secured(noise.peer)
        self._flush()
        return self._cipher

    def eof_received(self) -> bool:
        self.close("peer closed the connection")
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.close_reason:
            self.close_reason = f"connection lost: {exc}" if exc else "connection closed"
        self._closing = True
        self._drop_pending()
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

    @property
    def secured(self) -> bool:
        """The Noise handshake finished: frames are encrypted both ways."""
        return self._cipher is not None

    def send(self, message_type: int, payload: bytes) -> None:
        """Queues one frame (encrypted at the next flush); closes the connection instead if the
        peer is too far behind."""
        transport = self.transport
        if self._closing or transport is None:
            return
        if self._pending_len + transport.get_write_buffer_size() > SEND_BUFFER_LIMIT:
            self.close(f"send buffer over {SEND_BUFFER_LIMIT} bytes: peer too slow")
            return
        pending = self._pending
        pending.append(HEADER.pack(self._magic, message_type, len(payload)))
        pending.append(payload)
        self._pending_len += _HEADER_LEN + len(payload)
        if self._flush_handle is None and self._cipher is not None:
            self._flush_handle = asyncio.get_running_loop().call_soon(self._flush)

    def send_raw(self, data: bytes) -> None:
        """Queues plaintext bytes as they are, encrypted like frames (the test harness uses this
        to break the framing inside the encrypted channel)."""
        if self._closing or self.transport is None:
            return
        self._pending.append(data)
        self._pending_len += len(data)
        if self._flush_handle is None and self._cipher is not None:
            self._flush_handle = asyncio.get_running_loop().call_soon(self._flush)

    def send_wire(self, data: bytes) -> None:
        """Writes bytes to the socket unencrypted (the test harness uses this to break the
        transport itself)."""
        if not self._closing:
            self._write(data)

    def _flush(self) -> None:
        """Encrypts everything queued in one native call and writes it."""
        self._flush_handle = None
        cipher = self._cipher
        if not self._pending or cipher is None or self._closing:
            return
        plaintext = b"".join(self._pending)
        self._pending.clear()
        self._pending_len = 0
        try:
            wire = cipher.encrypt(plaintext)
        except ValueError as e:  # a nonce that would wrap: never reused
            self.abort(f"encrypt failed: {e}")
            return
        self._write(wire)

    def _write(self, data: bytes) -> None:
        if data and self.transport is not None:
            self.transport.write(data)
            self.bytes_sent += len(data)

    def _drop_pending(self) -> None:
        self._pending.clear()
        self._pending_len = 0
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None

    def pause_reading(self) -> None:
        if self.transport is not None and not self._reading_paused and not self._closing:
            self._reading_paused = True
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        if self.transport is not None and self._reading_paused and not self._closing:
            self._reading_paused = False
            self.transport.resume_reading()

    def close(self, reason: str) -> None:
        """Closes the connection after the queued frames are encrypted and written; the first
        reason sticks."""
        if self._closing:
            return
        self._flush()
        self._drop_pending()
        self._closing = True
        self.close_reason = reason
        if self.transport is not None:
            self.transport.close()

    def abort(self, reason: str) -> None:
        """Closes at once, dropping queued bytes."""
        if not self.close_reason:
            self.close_reason = reason
        self._closing = True
        self._drop_pending()
        if self.transport is not None:
            self.transport.abort()
