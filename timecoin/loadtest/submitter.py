"""Open-loop submission (aiohttp): transactions go out in batches at a target rate, round-robin
over the nodes, without waiting for earlier batches to be answered (an open loop, so a slow node
shows up as latency instead of a lower offered load). A batch is one binary ``POST
/rawtransactions`` (:mod:`timecoin.rpc.rawbatch`: raw bytes, no hex or JSON to encode and parse
on either side) or, for a :class:`Submitter` made with ``binary=False``, one
``sendrawtransactions`` JSON-RPC call; both reach the node's one admission path and are
accounted alike.

Also the small asynchronous JSON-RPC client the load test shares (:class:`AsyncRPC`). This module
never signs or builds transactions.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from timecoin.rpc import rawbatch
from timecoin.rpc.client import JSONRPCError, cookie_auth, raw_reply
from timecoin.rpc.errors import MEMPOOL_OVERLOADED, METHOD_NOT_FOUND
from timecoin.rpc.server import read_cookie

__all__ = [
    "NETWORK_ERRORS",
    "OVERLOADED",
    "RPC_ERROR",
    "AsyncRPC",
    "Endpoint",
    "Submission",
    "Submitter",
    "TICK",
    "basic_auth",
]

NETWORK_ERRORS = (JSONRPCError, aiohttp.ClientError, OSError)
"""What a call to a node can fail with when the node is overloaded, restarting or gone
(``ClientOSError``, ``ServerDisconnectedError``, timeouts — ``TimeoutError`` is an ``OSError`` —,
refused connections, an error object): the load test records these and goes on."""
OVERLOADED = "mempool-overloaded"
"""Reject reason of transactions a node refused with ``MEMPOOL_OVERLOADED`` (-32001): never
admitted, counted as refused (``Submission.overloaded``), not lost."""
RPC_ERROR = "rpc-error"
"""Reject reason of transactions whose submission call failed (connection lost, timeout, another
error): no node said it accepted them."""
UNKNOWN = "unknown"
"""Reject reason of a transaction a ``sendrawtransactions`` reply marks not accepted without
saying why."""

TICK = 0.05
"""Seconds between batches of the open loop: rate × TICK transactions go out per tick."""


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where a node's JSON-RPC server is: host, port and the credentials (cookie by default)."""

    host: str
    port: int
    user: str
    password: str
    cookie_dir: Path | None = None
    """The node's data directory when the credentials are its cookie, which is random per node
    start: a client re-reads it when the node refuses them (HTTP 401: the node restarted)."""
    cookie_file: Path | None = None
    """A cookie file given by path (any name): re-read like ``cookie_dir``'s ``.cookie``."""

    @classmethod
    def from_datadir(cls, datadir: Path, port: int, host: str = "127.0.0.1") -> Endpoint:
        """Credentials from ``<datadir>/.cookie``; ``OSError`` if the node has not written it."""
        user, password = cookie_auth(datadir)
        return cls(host, port, user, password, datadir)

    @classmethod
    def from_cookie(cls, cookie: Path, port: int, host: str) -> Endpoint:
        """Credentials from the cookie file ``cookie``; ``OSError`` if it cannot be read,
        ``ValueError`` if it is not a cookie file."""
        user, password = read_cookie(cookie)
        return cls(host, port, user, password, cookie_file=cookie)

    @property
    def url(self) -> str:
        """``http://host:port`` (no credentials: safe to print and report)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def fresh_credentials(self) -> tuple[str, str] | None:
        """(user, password) read again from the cookie (a restarted node wrote a new one); None
        for fixed credentials or a cookie that cannot be read now."""
        try:
            if self.cookie_dir is not None:
                return cookie_auth(self.cookie_dir)
            if self.cookie_file is not None:
                return read_cookie(self.cookie_file)
        except (OSError, ValueError):
            pass
        return None


def basic_auth(user: str, password: str) -> dict[str, str]:
    """The ``Authorization`` header of HTTP Basic authentication (RFC 7617)."""
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


_JSON_TYPE = {"Content-Type": "application/json"}
_RAW_TYPE = {"Content-Type": rawbatch.CONTENT_TYPE}


class AsyncRPC:
    """JSON-RPC 2.0 calls to one node over a shared aiohttp session, and binary submission
    (:meth:`send_raw`)."""

    def __init__(self, session: aiohttp.ClientSession, endpoint: Endpoint) -> None:
        self.endpoint = endpoint
        self._session = session
        self._url = f"http://{endpoint.host}:{endpoint.port}/"
        self._raw_url = f"http://{endpoint.host}:{endpoint.port}{rawbatch.PATH}"
        self._auth = basic_auth(endpoint.user, endpoint.password)
        self._ids = itertools.count(1)

    async def _send(self, url: str, data: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
        async with self._session.post(url, data=data, headers=headers) as r:
            return r.status, await r.read()

    def _reauthenticate(self) -> dict[str, str]:
        """After a 401: re-reads the cookie of a cookie endpoint (a restarted node wrote a new
        one); the authorization header to use from now on."""
        if (fresh := self.endpoint.fresh_credentials()) is not None:
            self._auth = basic_auth(*fresh)
        return self._auth

    async def _exchange(self, url: str, data: bytes, content_type: dict[str, str]) -> tuple[int, bytes]:
        """(HTTP status, body) of one POST; sent again once with a fresh cookie after a 401."""
        auth = self._auth
        status, body = await self._send(url, data, auth | content_type)
        if status == 401 and (fresh := self._reauthenticate()) != auth:
            status, body = await self._send(url, data, fresh | content_type)
        return status, body

    async def _post(self, payload: object) -> Any:
        status, body = await self._exchange(self._url, orjson.dumps(payload), _JSON_TYPE)
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError:
            raise JSONRPCError(None, f"HTTP {status}: {body[:200]!r}", status) from None

    async def send_raw(self, raws: list[bytes]) -> tuple[list[str | None], dict[int, tuple[int, str]]]:
        """One binary ``POST /rawtransactions`` of encoded transactions ``raws`` (the admission
        of ``sendrawtransactions``): (txid hex or None per transaction, {index: (RPC error code,
        reason)} of those not accepted). :class:`JSONRPCError` with the node's code for a refused
        call (-32001 when nothing fits) or a reply that is not one; ``ValueError`` for an empty
        list or an empty transaction."""
        status, body = await self._exchange(self._raw_url, rawbatch.encode_batch(raws), _RAW_TYPE)
        return raw_reply(status, body, len(raws))

    async def call(self, method: str, *params: Any) -> Any:
        """The result, or :class:`JSONRPCError` with the node's code."""
        doc = await self._post({"jsonrpc": "2.0", "id": next(self._ids), "method": method, "params": params})
        if not isinstance(doc, dict):
            raise JSONRPCError(None, f"unexpected response {doc!r:.200}")
        error = doc.get("error")
        if error:
            raise JSONRPCError(error.get("code"), str(error.get("message")))
        return doc["result"]

    async def batch(self, method: str, params: list[list[Any]]) -> list[dict[str, Any]]:
        """One JSON-RPC batch of ``method`` calls; the response objects in request order."""
        first = next(self._ids)
        self._ids = itertools.count(first + len(params))
        payload = [
            {"jsonrpc": "2.0", "id": first + i, "method": method, "params": p} for i, p in enumerate(params)
        ]
        doc = await self._post(payload)
        if not isinstance(doc, list):
            error = doc.get("error") if isinstance(doc, dict) else None
            raise JSONRPCError((error or {}).get("code"), str((error or {}).get("message", doc)))
        return sorted(doc, key=lambda r: r.get("id") or 0)

    async def has_method(self, method: str) -> bool:
        """Whether the node knows ``method``, from ``help <method>`` (which calls nothing)."""
        try:
            text = await self.call("help", method)
        except JSONRPCError as e:
            if e.code == METHOD_NOT_FOUND:
                return False
            raise
        return not str(text).lower().startswith("help: unknown command")


@dataclass(slots=True)
class Submission:
    """What happened to the submitted transactions: send time (``time.monotonic()``) and node
    index per accepted txid, and rejections by reject reason (``mempool-overloaded`` and
    ``rpc-error`` among them)."""

    sent_at: dict[str, float] = field(default_factory=dict)
    node_of: dict[str, int] = field(default_factory=dict)
    submitted: int = 0
    rejected: dict[str, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    per_second: list[int] = field(default_factory=list)
    """Transactions sent in each second of the run."""
    overloaded: int = 0
    """Transactions refused with the retryable ``MEMPOOL_OVERLOADED`` (-32001): not admitted."""

    def refuse(self, reason: str, count: int = 1) -> None:
        self.rejected[reason] = self.rejected.get(reason, 0) + count
        if reason == OVERLOADED:
            self.overloaded += count


class Submitter:
    """Sends pre-signed transactions open-loop at ``rate`` per second over ``nodes``: binary
    ``POST /rawtransactions`` batches if ``binary``, else ``sendrawtransactions`` calls."""

    def __init__(
        self, nodes: list[AsyncRPC], submission: Submission | None = None, *, binary: bool = False
    ) -> None:
        if not nodes:
            raise ValueError("no nodes to submit to")
        self.nodes = nodes
        self.result = submission or Submission()
        self.binary = binary
        self._pending: set[asyncio.Task[list[bytes]]] = set()
        self._started = time.monotonic()

    async def _submit(
        self, node: int, raws: list[bytes]
    ) -> tuple[list[str | None], dict[int, tuple[int | None, str]]]:
        """(txid hex or None per transaction, {index: (RPC error code, reason)} of those not
        accepted) from node ``node``, by the submitter's endpoint."""
        if self.binary:
            txids, rejects = await self.nodes[node].send_raw(raws)
            return txids, dict(rejects)
        verdicts = await self.nodes[node].call("sendrawtransactions", [r.hex() for r in raws])
        if not isinstance(verdicts, list) or len(verdicts) != len(raws):
            raise JSONRPCError(
                None, f"sendrawtransactions answered {len(raws)} transactions with {verdicts!r:.200}"
            )
        out_txids: list[str | None] = []
        out_rejects: dict[int, tuple[int | None, str]] = {}
        for i, v in enumerate(verdicts):
            if v["accepted"] and not isinstance(v["txid"], str):
                raise JSONRPCError(
                    None, f"sendrawtransactions accepted a transaction without a txid: {v!r:.200}"
                )
            out_txids.append(v["txid"])
            if not v["accepted"]:
                reject = v.get("reject")
                out_rejects[i] = (
                    (reject.get("code"), str(reject.get("reason"))) if reject else (None, UNKNOWN)
                )
        return out_txids, out_rejects

    async def send(self, node: int, raws: list[bytes]) -> list[bytes]:
        """One batch to node ``node``; records every verdict. A node that answers overloaded
        (-32001, for the call or per transaction) refused those transactions
        (``mempool-overloaded``); a failed call (connection lost, timeout, another error) is
        recorded as ``rpc-error`` for all of them. Never raises those. Returns the transactions
        refused as overloaded, for a caller that retries them."""
        sent = time.monotonic()
        result = self.result
        result.submitted += len(raws)
        second = int(sent - self._started)
        while len(result.per_second) <= second:
            result.per_second.append(0)
        result.per_second[second] += len(raws)
        try:
            txids, rejects = await self._submit(node, raws)
        except NETWORK_ERRORS as e:
            if isinstance(e, JSONRPCError) and e.code == MEMPOOL_OVERLOADED:
                result.refuse(OVERLOADED, len(raws))
                return raws
            result.errors.append(f"node {node}: {type(e).__name__}: {e}")
            result.refuse(RPC_ERROR, len(raws))
            return []
        overloaded = []
        for i, (raw, txid) in enumerate(zip(raws, txids, strict=True)):
            reject = rejects.get(i)
            if reject is None:
                assert txid is not None  # raw_reply and _submit refuse an accepted one without
                result.sent_at[txid] = sent
                result.node_of[txid] = node
            elif reject[0] == MEMPOOL_OVERLOADED:
                result.refuse(OVERLOADED)
                overloaded.append(raw)
            else:
                result.refuse(reject[1].split(":")[0])
        return overloaded

    async def run(
        self, raws: list[bytes], rate: float, progress: Callable[[int], None] | None = None
    ) -> Submission:
        """Sends ``raws`` at ``rate`` tx/s (open loop, one batch per node per :data:`TICK` at
        most), then waits for every answer. What a node refuses as overloaded stays refused
        (counted): retries would raise the offered load."""
        if rate <= 0:
            raise ValueError(f"rate must be > 0 tx/s, got {rate}")
        self._started = time.monotonic()
        sent, turn = 0, 0
        tick = 0
        while sent < len(raws):
            tick += 1
            due = min(len(raws), int(rate * TICK * tick))
            batch, sent = raws[sent:due], due
            if batch:
                share = -(-len(batch) // len(self.nodes))
                for i in range(0, len(batch), share):
                    task = asyncio.create_task(self.send(turn % len(self.nodes), batch[i : i + share]))
                    self._pending.add(task)
                    task.add_done_callback(self._pending.discard)
                    turn += 1
                if progress is not None:
                    progress(len(batch))
            delay = self._started + TICK * tick - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
        if self._pending:
            await asyncio.gather(*self._pending)
        return self.result
