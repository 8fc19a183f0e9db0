"""Batches of opaque items, the payload of TX_BATCH, VOTE_BATCH, HEARTBEAT_BATCH, LARGE_VOTE and
TRANSACTIONS (DESIGN §8; docs/p2p.md): count u32 ‖ (length u32 ‖ item)*, little-endian.

Every gossip frame is split into its items here, so this is per-item work on the message path
(DESIGN §2): Cython compiles it in pure Python mode (setup.py ``HOT_MODULES``; ``items.pxd``
gives the C types). The ``.py`` stays valid Python and is the reference; compiled, the lengths are read
straight from the payload instead of through ``struct`` (:func:`_u32`). The limits come from the
caller (:mod:`timecoin.p2p.messages` owns them).
"""

from __future__ import annotations

import struct

import cython

_U32 = struct.Struct("<I")
_LEN = cython.declare(cython.Py_ssize_t, _U32.size)
"""Bytes of a count or a length prefix (u32)."""


def _u32(p: bytes, pos: int) -> int:
    """The little-endian u32 at ``p[pos]``: ``struct`` interpreted, four byte loads compiled."""
    if not cython.compiled:
        return _U32.unpack_from(p, pos)[0]  # type: ignore[no-any-return]
    return p[pos] | (p[pos + 1] << 8) | (p[pos + 2] << 16) | (p[pos + 3] << 24)


def encode_items(items: list[bytes]) -> bytes:
    """A batch: count u32 ‖ (length u32 ‖ item)*."""
    pack = _U32.pack
    parts = [pack(len(items))]
    for item in items:
        parts.append(pack(len(item)))
        parts.append(item)
    return b"".join(parts)


def decode_items(data: bytes, max_items: int, max_item: int, name: str) -> list[bytes]:
    """The items of a batch (slices of ``data``); ``ValueError`` naming the message ``name`` for
    a count of 0 or over ``max_items``, an empty item or one over ``max_item`` bytes, a length
    past the end, or trailing bytes."""
    n = len(data)
    if n < _LEN:
        raise ValueError(f"{name} payload of {n} bytes has no count")
    p = data  # compiled: a pointer into data (items.pxd)
    count = _u32(p, 0)
    if count == 0 or count > max_items or _LEN + _LEN * count > n:
        raise ValueError(f"{name} count {count} is out of 1..={max_items} or past the payload")
    items: list[bytes] = []
    pos = _LEN
    for _i in range(count):
        if pos + _LEN > n:
            raise ValueError(f"{name} item {len(items)} runs past the payload")
        length = _u32(p, pos)
        pos += _LEN
        end = pos + length
        if length == 0 or length > max_item or end > n:
            raise ValueError(
                f"{name} item {len(items)} has length {length} (max {max_item}) past the payload"
            )
        items.append(data[pos:end])
        pos = end
    if pos != n:
        raise ValueError(f"{name} has {n - pos} trailing bytes")
    return items
