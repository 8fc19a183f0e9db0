"""Frames on the wire (DESIGN §8): magic (4 bytes) ‖ message type (u16 LE) ‖ payload length
(u32 LE) ‖ payload.

:class:`FrameDecoder` turns the byte stream of one connection into ``(type, payload)`` frames.
The header is checked the moment its 10 bytes are in: wrong magic, an unknown type or a length
over that type's maximum raise :class:`FrameError` before a single payload byte is kept, so a
peer can never make the node buffer more than one frame of the largest size its type allows.
Complete frames inside one read are sliced straight from the read (no copy into the buffer);
only a trailing partial frame is kept.

This module is the per-message hot path of the node (DESIGN §2), compiled by Cython in pure
Python mode (setup.py ``HOT_MODULES``; ``framing.pxd`` gives the C types): the ``.py`` stays
valid Python and is the reference. Compiled, a header is read straight from the buffer instead of
through ``struct`` (:func:`_u16`, :func:`_u32`). It never interprets a payload.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

import cython

HEADER = struct.Struct("<4sHI")
"""magic, message type, payload length."""
_HEADER_LEN = cython.declare(cython.Py_ssize_t, HEADER.size)
HEADER_LEN = _HEADER_LEN
"""Bytes of :data:`HEADER` (10)."""
_TYPE_AT = cython.declare(cython.Py_ssize_t, 4)
_LENGTH_AT = cython.declare(cython.Py_ssize_t, 6)
"""Offsets of the message type and the payload length in :data:`HEADER`."""
_U16 = struct.Struct("<H")
_U32 = struct.Struct("<I")


def _u16(p: bytes | bytearray, pos: int) -> int:
    """The little-endian u16 at ``p[pos]``: ``struct`` interpreted, two byte loads compiled."""
    if not cython.compiled:
        return _U16.unpack_from(p, pos)[0]  # type: ignore[no-any-return]
    return p[pos] | (p[pos + 1] << 8)


def _u32(p: bytes | bytearray, pos: int) -> int:
    """The little-endian u32 at ``p[pos]``: ``struct`` interpreted, four byte loads compiled."""
    if not cython.compiled:
        return _U32.unpack_from(p, pos)[0]  # type: ignore[no-any-return]
    return p[pos] | (p[pos + 1] << 8) | (p[pos + 2] << 16) | (p[pos + 3] << 24)


class FrameError(Exception):
    """The stream broke the framing rules; the connection cannot continue.

    ``code`` is stable: ``bad-magic``, ``unknown-type`` or ``oversized``.
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code


def encode_frame(magic: bytes, message_type: int, payload: bytes) -> bytes:
    """One frame. ``ValueError`` if the payload does not fit a u32 length."""
    if len(payload) > 0xFFFFFFFF:
        raise ValueError(f"payload of {len(payload)} bytes does not fit a frame")
    return HEADER.pack(magic, message_type, len(payload)) + payload


class FrameDecoder:
    """Incremental frame decoder for one connection.

    ``limits[t]`` is the largest payload (bytes) message type ``t`` may carry, or ``-1`` for a
    type that does not exist; types past the end of ``limits`` do not exist either.
    """

    def __init__(self, magic: bytes, limits: Sequence[int]) -> None:
        if len(magic) != 4:
            raise ValueError(f"magic must be 4 bytes, got {len(magic)}")
        self._magic = bytes(magic)
        self._magic_word = _u32(self._magic, 0)
        """The magic read as a u32, as headers are read."""
        self._limits = tuple(int(x) for x in limits)
        self._buf = bytearray()
        self._need = 0
        """Total length (header + payload) of the partial frame in ``_buf``; 0 until its header
        is in."""
        self._type = 0

    @property
    def buffered(self) -> int:
        """Bytes of a partial frame held, waiting for the rest."""
        return len(self._buf)

    def _check(self, p: bytes | bytearray, pos: int) -> tuple[int, int]:
        """(message type, payload length) of the header at ``p[pos]`` (10 bytes there)."""
        magic = _u32(p, pos)
        mtype = _u16(p, pos + _TYPE_AT)
        length = _u32(p, pos + _LENGTH_AT)
        if magic != self._magic_word:
            raise FrameError(
                "bad-magic", f"frame starts with {_U32.pack(magic).hex()}, not {self._magic.hex()}"
            )
        limits = self._limits
        if mtype >= len(limits) or limits[mtype] < 0:
            raise FrameError("unknown-type", f"message type {mtype} does not exist")
        limit = limits[mtype]
        if length > limit:
            raise FrameError(
                "oversized", f"message type {mtype} declares {length} bytes, its maximum is {limit}"
            )
        return mtype, length

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        """The frames completed by ``data``, in order. Raises :class:`FrameError` at the first
        bad header; the frames before it in the same ``data`` are lost with the connection."""
        frames: list[tuple[int, bytes]] = []
        n = len(data)
        pos = 0
        buf = self._buf
        if buf:
            if len(buf) < _HEADER_LEN:
                take = _HEADER_LEN - len(buf)
                if take > n:
                    take = n
                buf += data[:take]
                pos = take
                if len(buf) < _HEADER_LEN:
                    return frames
                mtype, length = self._check(buf, 0)
                self._type = mtype
                self._need = _HEADER_LEN + length
            take = self._need - len(buf)
            if take > n - pos:
                take = n - pos
            buf += data[pos : pos + take]
            pos += take
            if len(buf) < self._need:
                return frames
            frames.append((self._type, bytes(buf[_HEADER_LEN:])))
            buf.clear()
            self._need = 0
        p = data  # compiled: a pointer into data (framing.pxd)
        while n - pos >= _HEADER_LEN:
            mtype, length = self._check(p, pos)
            end = pos + _HEADER_LEN + length
            if end > n:
                break
            frames.append((mtype, data[pos + _HEADER_LEN : end]))
            pos = end
        if pos < n:
            buf += data[pos:]
            if len(buf) >= _HEADER_LEN:
                mtype, length = self._check(buf, 0)
                self._type = mtype
                self._need = _HEADER_LEN + length
        return frames
