"""The load test's settle checks (``timecoin.loadtest.runner``) against real JSON-RPC servers on
loopback: each node is asked about every transaction reported final, all nodes at once, and a
node that cannot be asked is reported without hiding what the others said."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import aiohttp
import orjson
from aiohttp import web

from timecoin.loadtest.runner import _committed_everywhere, _lost
from timecoin.loadtest.submitter import AsyncRPC, Endpoint

TXIDS = [f"{i:064x}" for i in range(3)]


class _Node:
    """A JSON-RPC server answering ``gettransactionfinality`` batches: ``final`` (in a block)
    for every txid but those in ``pending``. Every handler holds its answer until ``live``
    nodes have a request in flight at once, so nodes asked one after another never answer
    (each fails after 5 s instead)."""

    def __init__(self, in_flight: dict[str, Any], live: int, pending: set[str]) -> None:
        self.in_flight, self.live, self.pending = in_flight, live, pending

    async def handle(self, request: web.Request) -> web.Response:
        calls = orjson.loads(await request.read())
        self.in_flight["count"] += 1
        if self.in_flight["count"] >= self.live:
            self.in_flight["all"].set()
        async with asyncio.timeout(5):  # asked alone: a 500, and the node counts as unreachable
            await self.in_flight["all"].wait()
        replies = []
        for call in calls:
            txid = call["params"][0]
            result = {"status": "pending"} if txid in self.pending else {"status": "final", "height": 3}
            replies.append({"jsonrpc": "2.0", "id": call["id"], "result": result})
        return web.Response(body=orjson.dumps(replies), content_type="application/json")


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _ask(pendings: list[set[str]], check: Any) -> Any:
    in_flight: dict[str, Any] = {"count": 0, "all": asyncio.Event()}
    runners, endpoints = [], []
    for pending in pendings:
        app = web.Application()
        app.router.add_post("/", _Node(in_flight, len(pendings), pending).handle)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        runners.append(runner)
        endpoints.append(Endpoint("127.0.0.1", runner.addresses[0][1], "u", "p"))
    endpoints.append(Endpoint("127.0.0.1", _closed_port(), "u", "p"))  # a node that is down
    try:
        async with aiohttp.ClientSession() as session:
            nodes = [AsyncRPC(session, e) for e in endpoints]
            async with asyncio.timeout(20):
                return await check(nodes)
    finally:
        for runner in runners:
            await runner.cleanup()


def test_every_node_is_asked_at_once_and_each_ones_answer_is_kept():
    pendings = [set(), {TXIDS[1]}, {TXIDS[1], TXIDS[2]}]
    lost, unreachable = asyncio.run(_ask(pendings, lambda n: _lost(n, TXIDS)))
    assert lost == {TXIDS[1]: {1: "pending", 2: "pending"}, TXIDS[2]: {2: "pending"}}
    assert list(unreachable) == [3] and "Connect" in unreachable[3]


def test_committed_everywhere_only_when_every_node_answers_committed():
    assert not asyncio.run(_ask([set(), set()], lambda n: _committed_everywhere(n, TXIDS)))  # one is down
    assert asyncio.run(_ask([set(), set()], lambda n: _committed_everywhere(n[:2], TXIDS)))
    assert not asyncio.run(_ask([set(), {TXIDS[0]}], lambda n: _committed_everywhere(n[:2], TXIDS)))
