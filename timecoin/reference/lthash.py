"""Pure-Python twin of the native LtHash16 (native/src/lthash.rs, docs/encoding.md "UTXO set
hash"): the test oracle for the UTXO set commitment.

Each element ``outpoint ‖ coin`` (85 bytes) expands by the ``blake3`` package's XOF in the
``utxo_element`` domain to 2,048 bytes, read as 1,024 little-endian u16 lanes; a set's state is
the lane-wise sum mod 2^16 of its elements (Lewi et al., "Securing Update Propagation with
Homomorphic Hashing", 2019). The digest is ``hash_in("utxo_set", state)``.
"""

from __future__ import annotations

from array import array

from blake3 import blake3 as _blake3

from timecoin.crypto import HASH_DOMAINS

LANES = 1024
"""u16 lanes of the state."""
STATE_LEN = 2 * LANES
"""Bytes of the state and of one element's expansion."""
ELEMENT_LEN = 36 + 49
"""Bytes of one set element: outpoint (36) ‖ coin (49)."""

_MASK = 0xFFFF

if array("H").itemsize != 2:  # pragma: no cover - every platform CPython supports today
    raise ImportError("timecoin.reference.lthash needs a 2-byte array('H')")


def expand(element: bytes) -> list[int]:
    """The 1,024 lanes of one 85-byte element."""
    if len(element) != ELEMENT_LEN:
        raise ValueError(f"element must be {ELEMENT_LEN} bytes, got {len(element)}")
    data = _blake3(element, derive_key_context=HASH_DOMAINS["utxo_element"]).digest(length=STATE_LEN)
    lanes = array("H", data)
    if array("H", b"\x01\x00")[0] != 1:  # pragma: no cover - big-endian hosts
        lanes.byteswap()
    return lanes.tolist()


class LtHash:
    """A multiset hash state: lanes mod 2^16."""

    __slots__ = ("lanes",)

    def __init__(self, lanes: list[int] | None = None) -> None:
        self.lanes = list(lanes) if lanes is not None else [0] * LANES

    @classmethod
    def from_bytes(cls, state: bytes) -> LtHash:
        if len(state) != STATE_LEN:
            raise ValueError(f"state must be {STATE_LEN} bytes, got {len(state)}")
        return cls([int.from_bytes(state[i : i + 2], "little") for i in range(0, STATE_LEN, 2)])

    def copy(self) -> LtHash:
        return LtHash(self.lanes)

    def insert(self, element: bytes) -> None:
        self.lanes = [(a + b) & _MASK for a, b in zip(self.lanes, expand(element), strict=True)]

    def remove(self, element: bytes) -> None:
        self.lanes = [(a - b) & _MASK for a, b in zip(self.lanes, expand(element), strict=True)]

    def to_bytes(self) -> bytes:
        return b"".join(lane.to_bytes(2, "little") for lane in self.lanes)

    def digest(self) -> bytes:
        return _blake3(self.to_bytes(), derive_key_context=HASH_DOMAINS["utxo_set"]).digest()

    def __eq__(self, other: object) -> bool:
        return isinstance(other, LtHash) and self.lanes == other.lanes

    __hash__ = None  # type: ignore[assignment]
