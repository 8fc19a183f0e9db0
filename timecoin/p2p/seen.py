"""The gossip seen-cache (DESIGN §8): a hash of each item's full bytes, remembered in two
generations, so nothing is handled or relayed twice.

Every item of every gossip batch passes through :meth:`SeenCache.add_items` as its frame
arrives, so this is per-item work on the message path (DESIGN §2): Cython compiles it in pure
Python mode (setup.py ``HOT_MODULES``; ``seen.pxd`` gives the C types); the ``.py`` stays valid
Python and is the reference. :mod:`timecoin.p2p.gossip` owns the capacities.
"""

from __future__ import annotations

import hashlib

KEY_BYTES = 16
"""Bytes of a seen-cache key (BLAKE2b-128): collisions need ~2^64 items."""
_blake2b = hashlib.blake2b


def item_key(item: bytes) -> bytes:
    """The seen-cache key of an item: BLAKE2b-128 of its bytes (hashlib; no consensus use).
    Keyed by the full bytes (witnesses included), so a copy with a broken witness cannot shadow
    the real transaction."""
    return _blake2b(item, digest_size=KEY_BYTES).digest()


class SeenCache:
    """Remembers at least the last ``capacity`` keys: two generations of ``capacity`` keys,
    the older dropped whole when the newer fills (O(1) per key, no per-key eviction)."""

    __slots__ = ("_capacity", "_current", "_previous")

    def __init__(self, capacity: int) -> None:
        self._capacity = capacity
        self._current: set[bytes] = set()
        self._previous: set[bytes] = set()

    def __contains__(self, key: object) -> bool:
        return key in self._current or key in self._previous

    def add(self, key: bytes) -> bool:
        """Adds ``key``; whether it was new."""
        if key in self._current or key in self._previous:
            return False
        if len(self._current) >= self._capacity:
            self._previous = self._current
            self._current = set()
        self._current.add(key)
        return True

    def add_items(self, items: list[bytes]) -> list[bytes]:
        """Adds the key (:func:`item_key`) of each of ``items``; the items that were new, in
        order (an item twice in ``items`` is new once)."""
        new: list[bytes] = []
        for item in items:
            if self.add(item_key(item)):
                new.append(item)
        return new

    def discard(self, key: bytes) -> None:
        """Forgets ``key`` (so it counts as new when seen again)."""
        self._current.discard(key)
        self._previous.discard(key)

    def __len__(self) -> int:
        return len(self._current) + len(self._previous)
