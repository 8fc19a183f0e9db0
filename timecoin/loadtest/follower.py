"""Follows the finality of submitted transactions with ``gettransactionfinality`` (DESIGN §6,
§10): every :data:`POLL_INTERVAL` seconds, one JSON-RPC batch per node asks about the
transactions still pending that were sent to it (at most :data:`MAX_POLL` per batch), the
batches to all nodes in parallel.

A transaction's finality latency is the time from its ``sendrawtransactions`` call to the poll
that first saw it ``final``: an upper bound, late by at most one poll interval plus the poll's
round trip (the report says so). This module changes nothing on the nodes.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import aiohttp

from timecoin.loadtest.submitter import AsyncRPC, Submission
from timecoin.rpc.client import JSONRPCError

__all__ = ["FINALITY_METHOD", "MAX_POLL", "POLL_INTERVAL", "Finality", "Follower"]

FINALITY_METHOD = "gettransactionfinality"
POLL_INTERVAL = 0.05
"""Seconds between polls; the latency resolution."""
MAX_POLL = 4000
"""Transactions asked about per batch and node."""


@dataclass(slots=True)
class Finality:
    """Outcome per txid: seconds from send to final (``final``), the rejected ones, and the
    heights the nodes gave."""

    final: dict[str, float] = field(default_factory=dict)
    final_at: dict[str, float] = field(default_factory=dict)
    """``time.monotonic()`` when each was seen final."""
    rejected: set[str] = field(default_factory=set)
    errors: list[str] = field(default_factory=list)


class Follower:
    """Polls the finality of the accepted transactions of a :class:`Submission`."""

    def __init__(self, nodes: list[AsyncRPC], submission: Submission) -> None:
        self.nodes = nodes
        self.submission = submission
        self.result = Finality()

    def pending(self) -> list[str]:
        """Accepted txids not yet final or rejected."""
        done, rejected = self.result.final, self.result.rejected
        return [t for t in self.submission.sent_at if t not in done and t not in rejected]

    async def _poll_node(self, node: int, txids: list[str]) -> None:
        try:
            replies = await self.nodes[node].batch(FINALITY_METHOD, [[t] for t in txids])
        except (JSONRPCError, aiohttp.ClientError, OSError) as e:
            self.result.errors.append(f"node {node}: {e}")
            return
        now = time.monotonic()
        for txid, reply in zip(txids, replies, strict=True):
            result = reply.get("result")
            if not isinstance(result, dict):
                continue
            status = result.get("status")
            if status == "final":
                self.result.final[txid] = now - self.submission.sent_at[txid]
                self.result.final_at[txid] = now
            elif status == "rejected":
                self.result.rejected.add(txid)

    async def poll_once(self) -> None:
        """One round of batches to every node, in parallel."""
        by_node: dict[int, list[str]] = {}
        for txid in self.pending():
            by_node.setdefault(self.submission.node_of[txid], []).append(txid)
        await asyncio.gather(*(self._poll_node(n, txids[:MAX_POLL]) for n, txids in by_node.items()))

    async def run(
        self,
        until: Callable[[], bool],
        drain_timeout: float,
        progress: Callable[[int], None] | None = None,
    ) -> Finality:
        """Polls until ``until()`` is true (submission over) and nothing is pending, or
        ``drain_timeout`` seconds after ``until()`` first was true."""
        drain_deadline: float | None = None
        while True:
            before = len(self.result.final) + len(self.result.rejected)
            await self.poll_once()
            if progress is not None:
                progress(len(self.result.final) + len(self.result.rejected) - before)
            if until():
                now = time.monotonic()
                drain_deadline = drain_deadline or now + drain_timeout
                if not self.pending() or now > drain_deadline:
                    return self.result
            await asyncio.sleep(POLL_INTERVAL)
