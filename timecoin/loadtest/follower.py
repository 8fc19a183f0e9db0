"""Follows the finality of submitted transactions through each node's finality feed
(``getfinalityfeed``, a long poll: one call returns every decision the node made since the
last one), so following N transactions costs the nodes O(N) in all, not O(N) per poll.

A transaction's finality latency is the time from the start of its submission call (the binary
``POST /rawtransactions`` in the load phase, docs/operator.md) to the arrival of the feed page
that first reports it ``final`` by the node it was sent to: an upper bound, late by at most one
feed round trip. A decision can arrive before the send's reply (finality is quick); it is kept
until the reply says which node the transaction went to. A node's feed is in memory and restarts
at 0 with the node: a node found behind the follower's cursor has restarted, and is followed
again from its first decision. This module changes nothing on the nodes.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import aiohttp

from timecoin.loadtest.submitter import AsyncRPC, Submission
from timecoin.rpc.client import JSONRPCError
from timecoin.rpc.errors import INVALID_PARAMETER

__all__ = ["FEED_METHOD", "FEED_WAIT_MS", "Finality", "FinalityBook", "Follower"]

FEED_METHOD = "getfinalityfeed"
FEED_WAIT_MS = 200
"""Milliseconds a feed call waits on the node when there is no new decision (then the follower
checks whether it is done and asks again)."""


@dataclass(slots=True)
class Finality:
    """Outcome per txid: seconds from send to final (``final``), the rejected ones, and errors."""

    final: dict[str, float] = field(default_factory=dict)
    final_at: dict[str, float] = field(default_factory=dict)
    """``time.monotonic()`` when each was seen final."""
    rejected: set[str] = field(default_factory=set)
    errors: list[str] = field(default_factory=list)
    missed: int = 0
    """Decisions the nodes no longer kept when asked (a follower far behind)."""
    restarts: int = 0
    """Times a node's feed was found behind the cursor (the node restarted) and followed from 0."""


class FinalityBook:
    """The bookkeeping of finality decisions, with no I/O (shared by :class:`Follower` and the
    Locust workers of :mod:`.locustfile`): a decision counts when it comes from the node the
    transaction was sent to; one that arrives before the send's reply is kept until then.
    ``on_decided(txid, final, latency)`` is called once per counted decision (latency in s)."""

    def __init__(
        self, submission: Submission, on_decided: Callable[[str, bool, float], None] | None = None
    ) -> None:
        self.submission = submission
        self.result = Finality()
        self.on_decided = on_decided
        self._early: dict[str, list[tuple[int, bool, float]]] = {}
        """Decisions on txids whose send reply has not come yet: (node, final, seen at)."""

    def done(self) -> int:
        """Accepted txids final or rejected so far."""
        return len(self.result.final) + len(self.result.rejected)

    def record(self, node: int, txid: str, final: bool, seen: float) -> None:
        """Node ``node`` decided ``txid`` (``final`` or rejected), seen at ``seen``
        (``time.monotonic()``, the clock of ``submission.sent_at``)."""
        sent_to = self.submission.node_of.get(txid)
        if sent_to is None:
            self._early.setdefault(txid, []).append((node, final, seen))
        elif sent_to == node and txid not in self.result.final and txid not in self.result.rejected:
            latency = seen - self.submission.sent_at[txid]
            if final:
                self.result.final[txid] = latency
                self.result.final_at[txid] = seen
            else:
                self.result.rejected.add(txid)
            if self.on_decided is not None:
                self.on_decided(txid, final, latency)

    def settle_early(self) -> None:
        """Counts the early decisions whose send reply has come since."""
        for txid in [t for t in self._early if t in self.submission.node_of]:
            for node, final, seen in self._early.pop(txid):
                self.record(node, txid, final, seen)


class Follower:
    """Follows the decisions on the accepted transactions of a :class:`Submission`."""

    def __init__(self, nodes: list[AsyncRPC], submission: Submission) -> None:
        self.nodes = nodes
        self.submission = submission
        self.book = FinalityBook(submission)
        self.result = self.book.result
        self._cursors: list[int | None] = [None] * len(nodes)

    async def start(self) -> None:
        """Takes every node's current feed cursor: decisions made before are not followed.
        Call before submitting."""
        pages = await asyncio.gather(*(node.call(FEED_METHOD) for node in self.nodes))
        self._cursors = [page["cursor"] for page in pages]

    def done(self) -> int:
        """Accepted txids final or rejected so far."""
        return self.book.done()

    async def _follow(self, node: int) -> None:
        cursor = self._cursors[node]
        if cursor is None:
            raise RuntimeError("Follower.start() was not called")
        try:
            page = await self.nodes[node].call(FEED_METHOD, cursor, FEED_WAIT_MS)
        except (JSONRPCError, aiohttp.ClientError, OSError) as e:
            self.result.errors.append(f"node {node}: {e}")
            if isinstance(e, JSONRPCError) and e.code == INVALID_PARAMETER and await self._restarted(node):
                return
            await asyncio.sleep(FEED_WAIT_MS / 1000)
            return
        seen = time.monotonic()
        self._cursors[node] = page["cursor"]
        self.result.missed += page["missed"]
        for txid in page["final"]:
            self.book.record(node, txid, True, seen)
        for txid in page["rejected"]:
            self.book.record(node, txid, False, seen)

    async def _restarted(self, node: int) -> bool:
        """Whether node ``node``'s feed head is behind the cursor (the node restarted since); if
        so, follows it from 0 again."""
        try:
            head = (await self.nodes[node].call(FEED_METHOD))["cursor"]
        except (JSONRPCError, aiohttp.ClientError, OSError):
            return False
        cursor = self._cursors[node]
        if cursor is None or head >= cursor:
            return False
        self._cursors[node] = 0
        self.result.restarts += 1
        return True

    async def run(
        self,
        until: Callable[[], bool],
        drain_timeout: float,
        progress: Callable[[int], None] | None = None,
    ) -> Finality:
        """Follows every node's feed until ``until()`` is true (submission over) and every
        accepted transaction is decided, or ``drain_timeout`` seconds after ``until()`` first was
        true. Each node's feed is read by its own task, all cancelled on return."""
        reported = 0

        async def follow_forever(node: int) -> None:
            while True:
                await self._follow(node)

        tasks = [asyncio.create_task(follow_forever(n)) for n in range(len(self.nodes))]
        try:
            drain_deadline: float | None = None
            while True:
                await asyncio.sleep(FEED_WAIT_MS / 1000)
                for task in tasks:
                    if task.done():
                        task.result()  # a follower task died: raise its error
                self.book.settle_early()
                if progress is not None:
                    progress(self.done() - reported)
                    reported = self.done()
                if until():
                    now = time.monotonic()
                    drain_deadline = drain_deadline or now + drain_timeout
                    if self.done() >= len(self.submission.sent_at) or now > drain_deadline:
                        return self.result
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
