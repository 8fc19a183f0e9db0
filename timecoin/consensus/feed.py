"""The finality feed: this node's finality decisions (final or rejected txids) in the order it
made them, numbered, for clients that follow many transactions at once (``getfinalityfeed``,
the load test's follower). One long-poll call returns every decision after a cursor, so following
N transactions costs O(N) in total instead of O(N) per poll.

Kept in memory only, bounded to :data:`FEED_CAPACITY` decisions: a client whose cursor fell out
of the window is told how many it missed (``missed``) and can ask ``gettransactionfinality``
about those. Owned by the event loop thread (the consensus service appends, RPC reads).
"""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass

__all__ = ["FEED_CAPACITY", "FeedPage", "FinalityFeed"]

FEED_CAPACITY = 1_000_000
"""Decisions kept (≈ 100 s at 10,000 tx/s; 41 bytes each plus list overhead, ~100 MB at most)."""


@dataclass(frozen=True, slots=True)
class FeedPage:
    """Decisions numbered ``cursor - len(final) - len(rejected) ...`` up to ``cursor`` (exclusive),
    split by outcome; ``missed``: decisions after the asked cursor that are no longer kept."""

    final: list[bytes]
    rejected: list[bytes]
    cursor: int
    missed: int


class FinalityFeed:
    """Numbered finality decisions (see the module docstring). Decision ``n`` is the ``n``-th
    made since the node started (0-based); :attr:`head` is the number the next one gets."""

    def __init__(self, capacity: int = FEED_CAPACITY) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        self._capacity = capacity
        # Two flat sequences, not a (txid, outcome) tuple per decision: bytes and a bytearray
        # are no work for the cyclic collector, and a million tuples kept for minutes were
        # (docs/operator.md, "Memory").
        self._txids: list[bytes] = []
        self._finals = bytearray()
        """1 where the decision of the same position in ``_txids`` is final, 0 rejected."""
        self._first = 0
        self._grown = asyncio.Event()

    @property
    def head(self) -> int:
        """The number of the next decision (= decisions made so far)."""
        return self._first + len(self._txids)

    def append(self, txid: bytes, final: bool) -> None:
        """Records one decision: ``final`` True for final, False for rejected."""
        self._txids.append(txid)
        self._finals.append(1 if final else 0)
        if len(self._txids) >= 2 * self._capacity:
            drop = len(self._txids) - self._capacity
            del self._txids[:drop]
            del self._finals[:drop]
            self._first += drop
        if not self._grown.is_set():
            self._grown.set()

    def since(self, cursor: int, limit: int) -> FeedPage:
        """Up to ``limit`` decisions from number ``cursor`` on. ``ValueError`` for a negative
        cursor, one past :attr:`head`, or a ``limit`` below 1."""
        if cursor < 0 or cursor > self.head:
            raise ValueError(f"cursor must be in 0..{self.head}, got {cursor}")
        if limit < 1:
            raise ValueError(f"limit must be >= 1, got {limit}")
        missed = max(0, self._first - cursor)
        start = cursor + missed - self._first
        txids = self._txids[start : start + limit]
        finals = self._finals[start : start + limit]
        return FeedPage(
            list(itertools.compress(txids, finals)),
            [t for t, final in zip(txids, finals, strict=True) if not final],
            cursor + missed + len(txids),
            missed,
        )

    async def wait(self, cursor: int, timeout: float) -> None:
        """Returns once a decision numbered ``cursor`` or later exists, or after ``timeout``
        seconds."""
        if self.head > cursor or timeout <= 0:
            return
        self._grown.clear()
        try:
            async with asyncio.timeout(timeout):
                while self.head <= cursor:
                    await self._grown.wait()
                    self._grown.clear()
        except TimeoutError:
            pass
