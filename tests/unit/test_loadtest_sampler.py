"""The load test's node sampler (``timecoin.loadtest.sampler``) cancelled in the middle of a sample,
as the load phase's end cancels it: the report's ``nodes_sampled`` is still built.

The node is a real HTTP server on loopback speaking JSON-RPC over aiohttp (``getblockcount``,
``getmempoolinfo``); its second ``getblockcount`` never answers, so the second sample is in
flight when the task is cancelled. Seen on ``timecoin loadtest --rpc`` against four nodes in
network namespaces (tests/functional/test_feature_testnet_netns.py), where each sample is two
RPC round trips: the sample's time was recorded before its readings, the cancelled sample left
one time without readings, and ``Sampler.result`` raised ``IndexError`` after a run that had
otherwise passed.

A node whose pid is known (a devnet's) is read over JSON-RPC and ``/proc`` even when it serves
``/metrics``: before, every sample scraped and parsed its ~500 series.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson
from aiohttp import web

from timecoin.loadtest.sampler import CPU_METRIC, HEIGHT_METRIC, MEMPOOL_METRIC, NodeProbe, Sampler
from timecoin.loadtest.submitter import AsyncRPC, Endpoint

HEIGHT = 7
MEMPOOL = 3


@contextlib.asynccontextmanager
async def serving(app: web.Application) -> AsyncIterator[int]:
    """``app`` served on a free loopback port (yielded) until the block ends."""
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    finally:
        await runner.cleanup()


async def _sampler_cancelled_mid_sample() -> tuple[Sampler, dict[str, Any]]:
    calls = {"getblockcount": 0}
    second_sample_started = asyncio.Event()
    never = asyncio.Event()

    async def handle(request: web.Request) -> web.Response:
        body = orjson.loads(await request.read())
        method = body["method"]
        if method == "getblockcount":
            calls[method] += 1
            if calls[method] > 1:
                second_sample_started.set()
                await never.wait()
            result: object = HEIGHT
        else:
            result = {"size": MEMPOOL}
        return web.Response(
            body=orjson.dumps({"jsonrpc": "2.0", "id": body["id"], "result": result}),
            content_type="application/json",
        )

    app = web.Application()
    app.router.add_post("/", handle)
    async with serving(app) as port, aiohttp.ClientSession() as session:
        try:
            node = AsyncRPC(session, Endpoint("127.0.0.1", port, "user", "password"))
            sampler = Sampler(session, [node])
            task = asyncio.create_task(sampler.run(interval=0.01))
            await asyncio.wait_for(second_sample_started.wait(), 10)
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass
            return sampler, sampler.result(time.monotonic())
        finally:
            never.set()  # before the server's cleanup, which waits for its handlers


def test_result_after_cancel_mid_sample_has_one_reading_per_time() -> None:
    sampler, result = asyncio.run(_sampler_cancelled_mid_sample())
    (node,) = result["nodes"]
    assert len(result["t_s"]) == 1 == len(sampler.times)
    assert node["height"] == [HEIGHT] and node["mempool"] == [MEMPOOL]
    assert len(node["cpu_percent"]) == 1


async def _sample_local_node_with_metrics() -> tuple[dict[str, Any], dict[str, int]]:
    """One sample of a node that serves both JSON-RPC and ``/metrics`` and whose pid is known
    (this process): which endpoints did the sampler call?"""
    hits = {"rpc": 0, "metrics": 0}

    async def rpc(request: web.Request) -> web.Response:
        hits["rpc"] += 1
        body = orjson.loads(await request.read())
        result: object = HEIGHT if body["method"] == "getblockcount" else {"size": MEMPOOL}
        return web.Response(
            body=orjson.dumps({"jsonrpc": "2.0", "id": body["id"], "result": result}),
            content_type="application/json",
        )

    async def metrics(request: web.Request) -> web.Response:
        hits["metrics"] += 1
        text = f"{HEIGHT_METRIC} {HEIGHT}\n{MEMPOOL_METRIC} {MEMPOOL}\n{CPU_METRIC} 1.5\n"
        return web.Response(text=text)

    app = web.Application()
    app.router.add_post("/", rpc)
    app.router.add_get("/metrics", metrics)
    async with serving(app) as port, aiohttp.ClientSession() as session:
        node = AsyncRPC(session, Endpoint("127.0.0.1", port, "user", "password"))
        probe = NodeProbe(f"http://127.0.0.1:{port}/metrics", os.getpid())
        sampler = Sampler(session, [node], [probe])
        await sampler.sample()
        return sampler.result(time.monotonic()), hits


def test_a_local_node_is_read_over_rpc_and_proc_not_scraped() -> None:
    """A node whose pid is known is not scraped (a scrape renders and parses every series, on
    the cores under test): height and mempool over JSON-RPC, CPU from /proc."""
    result, hits = asyncio.run(_sample_local_node_with_metrics())
    (node,) = result["nodes"]
    assert hits == {"rpc": 2, "metrics": 0}
    assert node["height"] == [HEIGHT] and node["mempool"] == [MEMPOOL]
    assert node["cpu_source"] == "proc"
