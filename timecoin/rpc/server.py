"""The JSON-RPC server over HTTP (aiohttp + orjson; DESIGN §10): JSON-RPC 2.0 and 1.0, as
Bitcoin Core serves them.

* ``POST /`` with one request object or a batch (an array). A request with ``"jsonrpc": "2.0"``
  gets a 2.0 response (``jsonrpc``, then ``result`` or ``error``, ``id``); one without ``id`` is a
  notification and gets none. A request without ``jsonrpc`` or with ``"jsonrpc": "1.0"`` (what
  Bitcoin-derived clients send) gets the 1.0 shape (``result``, ``error``, ``id``, both of the
  first two always present) and always an answer. Any other ``jsonrpc`` is ``INVALID_REQUEST``.
  JSON-RPC outcomes are HTTP 200; transport failures are not: 401 without valid credentials,
  403 for a client address outside ``rpcallowip``, 405 for another HTTP method, 408 for a body
  not sent in time, 413 for a body over ``rpcmaxrequest``, 503 when overloaded.
* **Authentication**: HTTP Basic. The cookie ``<datadir>/.cookie`` (``__cookie__:<64 hex>``,
  mode 0600, random per start, removed at stop) always works; ``rpcuser``/``rpcpassword`` too
  when configured, and every ``rpcauth`` entry (``USER:SALT$HASH``, the salted HMAC-SHA256 of
  Bitcoin Core's rpcauth.py; :mod:`timecoin.rpc.cookie`). Comparisons are constant-time.
* **Client addresses**: loopback clients and those in an ``rpcallowip`` network (CIDR) are
  served; any other is answered 403 before its credentials are looked at (Core's rule).
* **Bounded concurrency**: at most ``rpcthreads`` requests are worked on at once and
  ``rpcworkqueue`` more may wait; beyond that the answer is HTTP 503 with error
  ``SERVER_OVERLOADED`` at once, so a flood cannot queue unbounded work.
* **Limits that keep the server from being locked** (DESIGN §13 "RPC limits"):

  - the body must arrive within :data:`BODY_READ_TIMEOUT` of the headers (else HTTP 408 and the
    connection is closed), and a request takes its slot only once its body is in, so stalled
    uploads hold no slot;
  - a client that hangs up cancels its request (aiohttp's ``handler_cancellation``): a
    ``waitfornewblock`` or ``waittransactionfinality`` whose caller went away releases its slot
    at once. Handlers must therefore be cancellation-safe: every ``await`` in a method is a point
    where it may stop, so a method awaits only before it changes state, never in between (the
    requests of a batch that already ran stay done);
  - a batch holds at most :data:`MAX_BATCH_REQUESTS` requests (else one ``INVALID_REQUEST``
    error, nothing run), its replies stop at :data:`MAX_BATCH_REPLY_BYTES` (every later request
    answers ``RESPONSE_TOO_LARGE`` and is not run), and it yields the event loop every
    :data:`BATCH_CHUNK` requests, so P2P and consensus keep running beside it;
  - a client that goes away is logged at debug: it is no error of the node.
* **Binary submission**: ``POST /rawtransactions`` on the same port takes a batch of encoded
  transactions as raw bytes (``application/octet-stream``, the layout of
  :mod:`timecoin.rpc.rawbatch`) and answers the verdicts of ``sendrawtransactions`` in compact
  JSON: the load generator's path, with no hex or JSON to parse. Same authentication, body size
  and body timeout, slots and queue; the same batch cap and admission function
  (:func:`~timecoin.rpc.rawtransactions.submit_raw_transactions`); it yields the event loop
  between decoding and admission. Its refusals are HTTP errors with a JSON-RPC error body (see
  :meth:`RPCServer.submit_raw`); 415 for another content type.
* **Metrics**: every call is counted by method (the server's own method names, or ``unknown``;
  ``/rawtransactions`` for the binary endpoint) and outcome, with its latency, and every HTTP
  refusal by status, in plain counters (:attr:`RPCServer.stats`) that ``/metrics`` exports
  (:mod:`timecoin.metrics`; docs/operator.md "Metrics").
* Bound to ``rpcbind`` (127.0.0.1 by default). Until the node is ready every method but
  ``help`` answers ``IN_WARMUP`` (-28) with what the node is doing.

Bad requests never change state and never stop the server: a handler's unexpected exception is
logged and answered ``INTERNAL_ERROR``.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import inspect
import ipaddress
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import orjson
from aiohttp import hdrs, web
from aiohttp.http_exceptions import HttpProcessingError

from timecoin.config import IPNetwork, NodeConfig
from timecoin.counters import RequestStats
from timecoin.rpc import rawbatch, rawtransactions
from timecoin.rpc.cookie import COOKIE_FILE, COOKIE_USER, RPCAuth, read_cookie, write_cookie
from timecoin.rpc.errors import (
    IN_WARMUP,
    INTERNAL_ERROR,
    INVALID_PARAMETER,
    INVALID_REQUEST,
    MEMPOOL_OVERLOADED,
    METHOD_NOT_FOUND,
    PARSE_ERROR,
    RESPONSE_TOO_LARGE,
    SERVER_OVERLOADED,
    RPCError,
)
from timecoin.rpc.methods import Method, load_methods

if TYPE_CHECKING:
    from timecoin.node import Node

log = logging.getLogger(__name__)
_T = TypeVar("_T")

__all__ = ["COOKIE_FILE", "COOKIE_USER", "RPCServer", "read_cookie", "write_cookie"]

SHUTDOWN_GRACE = 5.0
"""Seconds in-flight requests get to finish when the server stops."""
BODY_READ_TIMEOUT = 30.0
"""Seconds a client has, once its headers are in, to send its whole request body; then the
answer is HTTP 408 and the connection is closed. Bitcoin Core's ``-rpcservertimeout`` default
(``DEFAULT_HTTP_SERVER_TIMEOUT``, ``src/httpserver.h``): ample for a 64 MB body over loopback or
a LAN, short enough that a stalled upload is dropped well before anyone waits on it. No request
slot is held while the body arrives."""
MAX_BATCH_REQUESTS = 10_000
"""Most requests in one JSON-RPC batch; a longer batch is answered with one ``INVALID_REQUEST``
error and none of it runs. geth caps batches the same way (``--rpc.batch-request-limit``, 1,000);
ours leaves room for the load test's 5,000-call ``gettransactionfinality`` batches
(``timecoin.loadtest.runner.STATUS_BATCH``). Without a cap a 4 MB body of two million ``{}``
made a 190 MB reply."""
MAX_BATCH_REPLY_BYTES = 32 * 1024 * 1024
"""Most bytes of encoded replies one batch collects (32 MiB). The request that passes it still
gets its result; every later request is answered ``RESPONSE_TOO_LARGE`` and not run. geth's
``--rpc.batch-response-max-size`` (25 MB) is the model; 32 MiB holds the load test's 5,000
finality statuses on a devnet (four-signer certificates, about 1 kB each) or about 5,000 ``help``
texts, while a network of many masternodes has longer certificates and wants fewer statuses per
batch. A single (non-batch) reply is bounded by its method's own limits (block size,
``MAX_FEED_PAGE``, the mempool's size)."""
BATCH_CHUNK = 16
"""Requests of a batch run between two yields to the event loop: the loop is never held for
more than 16 calls (a few milliseconds), whatever the batch's length (DESIGN §11: no block
may stall the event loop; consensus and P2P share it)."""

RPC_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
"""Seconds: upper bounds of the per-method latency histogram
(``timecoin_rpc_request_duration_seconds``): sub-millisecond for the reads a load test batches by
thousands; the waits (``waitfornewblock``, ``waittransactionfinality``), which end by their own
timeout, fall mostly in ``+Inf``."""
RAW_METHOD = rawbatch.PATH
"""The ``method`` label of ``POST /rawtransactions`` calls in the RPC metrics."""

_RAW_STATUS = {MEMPOOL_OVERLOADED: 503, IN_WARMUP: 503}
"""HTTP status of ``POST /rawtransactions`` answers by error code (others are 400): the
retryable refusals are 503, as ``SERVER_OVERLOADED`` is."""


LOOPBACK: tuple[IPNetwork, ...] = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"))
"""Client networks always served (Bitcoin Core's default ``rpcallowip``)."""
JSONRPC_VERSIONS = ("1.0", "2.0")
"""``jsonrpc`` values served: "1.0" (as no ``jsonrpc`` member: Core's legacy shape) and "2.0"."""


def client_allowed(remote: str | None, allowed: Sequence[IPNetwork]) -> bool:
    """Whether a client at ``remote`` (aiohttp's ``request.remote``: an IP address, an IPv4-mapped
    IPv6 one counting as its IPv4) is loopback or in one of the ``allowed`` networks."""
    if remote is None:
        return False
    try:
        address: ipaddress.IPv4Address | ipaddress.IPv6Address = ipaddress.ip_address(remote.split("%")[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return any(address in net for net in (*LOOPBACK, *allowed))


class RPCServer:
    """The JSON-RPC server of one node. :meth:`start` binds and writes the cookie, :meth:`stop`
    stops accepting, lets in-flight requests finish and removes the cookie."""

    def __init__(
        self,
        node: Node,
        *,
        bind: str,
        port: int,
        cookie_path: Path,
        user: str | None = None,
        password: str | None = None,
        rpcauth: Sequence[RPCAuth] = (),
        allowip: Sequence[IPNetwork] = (),
        threads: int,
        work_queue: int,
        max_request: int,
        dashboard: bool = False,
    ) -> None:
        self.node = node
        self.methods: dict[str, Method] = load_methods()
        self.stats = RequestStats([*self.methods, RAW_METHOD], RPC_LATENCY_BUCKETS)
        """Calls by method and outcome, their latencies, and HTTP refusals (read by the metrics)."""
        self._bind = bind
        self._port = port
        self._cookie_path = cookie_path
        self._credentials: list[bytes] = []
        if user is not None and password is not None:
            self._credentials.append(f"{user}:{password}".encode())
        self._rpcauth = tuple(rpcauth)
        self._allowip = tuple(allowip)
        self._threads = threads
        self._work_queue = work_queue
        self._max_request = max_request
        self._dashboard = dashboard
        self._slots = asyncio.Semaphore(threads)
        self._pending = 0
        self._runner: web.AppRunner | None = None
        self._bound_port = 0

    @classmethod
    def from_config(cls, node: Node, config: NodeConfig) -> RPCServer:
        return cls(
            node,
            bind=config.rpcbind,
            port=config.rpcport,
            cookie_path=config.datadir / COOKIE_FILE,
            user=config.rpcuser,
            password=config.rpcpassword,
            rpcauth=config.rpcauth,
            allowip=config.rpcallowip,
            threads=config.rpcthreads,
            work_queue=config.rpcworkqueue,
            max_request=config.rpcmaxrequest,
            dashboard=config.dashboard,
        )

    @property
    def bound_port(self) -> int:
        return self._bound_port

    async def start(self) -> None:
        """Writes the cookie and starts listening. ``StartupError`` if the address is taken."""
        from timecoin.node import StartupError

        cookie = write_cookie(self._cookie_path)
        self._credentials.append(f"{COOKIE_USER}:{cookie}".encode())
        app = web.Application(client_max_size=self._max_request)
        app.router.add_route("*", "/", self._handle)
        app.router.add_route("*", rawbatch.PATH, self._handle_raw)
        if self._dashboard:  # read-only web dashboard at /ui, loopback clients only (docs/operator.md)
            from timecoin.dashboard import add_dashboard

            add_dashboard(app, self.node)
        # handler_cancellation: a client that hangs up cancels its request (and frees its slot).
        self._runner = web.AppRunner(
            app, access_log=None, shutdown_timeout=SHUTDOWN_GRACE, handler_cancellation=True
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._bind, self._port, reuse_address=True)
        try:
            await site.start()
        except OSError as e:
            await self._runner.cleanup()
            self._runner = None
            self._remove_cookie()
            raise StartupError(f"rpcport: cannot listen on {self._bind}:{self._port}: {e.strerror}") from None
        server = site._server
        sockets = getattr(server, "sockets", None) or []
        self._bound_port = sockets[0].getsockname()[1] if sockets else self._port
        if self._bind not in ("127.0.0.1", "::1", "localhost"):
            log.warning("RPC server listens on %s: reachable from other hosts", self._bind)
        log.info("RPC server on %s:%d (cookie %s)", self._bind, self._bound_port, self._cookie_path)

    async def stop(self) -> None:
        """Stops accepting, lets in-flight requests finish (up to ``SHUTDOWN_GRACE`` seconds) and
        removes the cookie."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        self._remove_cookie()

    def _remove_cookie(self) -> None:
        try:
            self._cookie_path.unlink()
        except FileNotFoundError:
            pass

    # -- HTTP -----------------------------------------------------------------------------------------

    def _authorized(self, request: web.Request) -> bool:
        header = request.headers.get("Authorization", "")
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            given = base64.b64decode(value.strip(), validate=True)
        except (binascii.Error, ValueError):
            return False
        ok = False
        for expected in self._credentials:
            ok |= hmac.compare_digest(given, expected)
        if self._rpcauth:
            user, sep, password = given.decode(errors="replace").partition(":")
            for entry in self._rpcauth:
                ok |= bool(sep) and entry.matches(user, password)
        return ok

    def _refuse_early(self, request: web.Request, what: str) -> web.Response | None:
        """The answer that ends a request before its body is read (403 for a client address
        neither loopback nor in ``rpcallowip``, 401 without valid credentials, 405 for another
        HTTP method, 413 for a declared length over ``rpcmaxrequest``), or None. ``what`` names
        the endpoint in the 405 text."""
        if not client_allowed(request.remote, self._allowip):
            log.debug("RPC client %s refused: not in rpcallowip", request.remote)
            return web.Response(status=403, text="client address not allowed (rpcallowip)\n")
        if not self._authorized(request):
            return web.Response(
                status=401,
                text="authorization required\n",
                headers={"WWW-Authenticate": 'Basic realm="jsonrpc"'},
            )
        if request.method != "POST":
            return web.Response(status=405, text=f"{what} takes POST requests\n", headers={"Allow": "POST"})
        length = request.content_length
        if length is not None and length > self._max_request:
            return _error_response(
                413,
                INVALID_REQUEST,
                f"request of {length} bytes exceeds the limit of {self._max_request} bytes",
            )
        return None

    def _queue_full(self) -> web.Response | None:
        """HTTP 503 ``SERVER_OVERLOADED`` when ``rpcthreads`` requests are worked on and
        ``rpcworkqueue`` more wait; None while there is room."""
        if self._pending < self._threads + self._work_queue:
            return None
        return _error_response(
            503,
            SERVER_OVERLOADED,
            f"server overloaded: {self._pending} requests in progress or waiting "
            f"(rpcthreads={self._threads}, rpcworkqueue={self._work_queue}); retry later",
        )

    async def _in_slot(self, request: web.Request, work: Callable[[], Awaitable[_T]]) -> _T:
        """``work()`` awaited in one of the ``rpcthreads`` slots (waiting for one if needed),
        counted as pending from now until it ends; a client that hangs up cancels it."""
        self._pending += 1
        try:
            async with self._slots:
                return await work()
        except asyncio.CancelledError:
            log.debug("RPC request from %s cancelled: client gone or server stopping", request.remote)
            raise
        finally:
            self._pending -= 1

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        refused = self._refuse_early(request, "JSON-RPC")
        if refused is not None:
            self.stats.refuse(refused.status)
            return refused
        body = await self._body_with_room(request)
        if isinstance(body, web.StreamResponse):
            self.stats.refuse(body.status)
            return body
        reply = await self._in_slot(request, lambda: self.process(body))
        if reply is None:
            return web.Response(status=204)
        return web.Response(body=reply, content_type="application/json")

    async def _handle_raw(self, request: web.Request) -> web.StreamResponse:
        """``POST /rawtransactions``: the JSON-RPC path's authentication, limits and slots,
        then :meth:`submit_raw`. 415 unless the body is declared ``application/octet-stream``."""
        refused = self._refuse_early(request, f"POST {rawbatch.PATH}")
        if refused is None and (
            hdrs.CONTENT_TYPE not in request.headers or request.content_type != rawbatch.CONTENT_TYPE
        ):
            given = request.headers.get(hdrs.CONTENT_TYPE, "none")
            refused = _error_response(
                415,
                INVALID_REQUEST,
                f"{rawbatch.PATH} takes {rawbatch.CONTENT_TYPE} bodies, not {given[:100]}",
            )
        if refused is not None:
            self.stats.refuse(refused.status)
            return refused
        body = await self._body_with_room(request)
        if isinstance(body, web.StreamResponse):
            self.stats.refuse(body.status)
            return body
        return await self._in_slot(request, lambda: self._timed_raw(body))

    async def _timed_raw(self, body: bytes) -> web.Response:
        started = time.perf_counter()
        response = await self.submit_raw(body)
        self.stats.record(RAW_METHOD, response.status == 200, time.perf_counter() - started)
        return response

    async def _body_with_room(self, request: web.Request) -> bytes | web.StreamResponse:
        """The body (:meth:`_read_body`), if the request queue has room for it once read; else
        the response that ends the request."""
        body = await self._read_body(request)
        if isinstance(body, web.StreamResponse):
            return body
        refused = self._queue_full()
        return body if refused is None else refused

    async def _read_body(self, request: web.Request) -> bytes | web.StreamResponse:
        """The whole body, read within ``BODY_READ_TIMEOUT`` and without a slot; or the response
        that ends the request: 413 over ``rpcmaxrequest``, 408 (and the connection closed) when
        the body is late, 400 when it is malformed or the client went away (that one is never
        delivered)."""
        try:
            async with asyncio.timeout(BODY_READ_TIMEOUT):
                return await request.read()
        except asyncio.CancelledError:
            # aiohttp's handler_cancellation: the client hung up mid-body (or the server stops).
            log.debug("RPC client %s hung up before sending its whole body", request.remote)
            raise
        except web.HTTPRequestEntityTooLarge:
            return _error_response(
                413, INVALID_REQUEST, f"request exceeds the limit of {self._max_request} bytes"
            )
        except TimeoutError:
            log.debug("RPC client %s sent no whole body within %.0f s", request.remote, BODY_READ_TIMEOUT)
            response = _error_response(
                408, INVALID_REQUEST, f"request body not received within {BODY_READ_TIMEOUT:.0f} s"
            )
            response.force_close()
            await response.prepare(request)
            await response.write_eof()
            # Close now: aiohttp would otherwise linger reading a body that is not coming.
            request.protocol.force_close()
            return response
        except (ConnectionError, HttpProcessingError) as e:
            log.debug("RPC client %s went away or sent a broken body: %r", request.remote, e)
            return _error_response(400, INVALID_REQUEST, f"request body not received: {e}")

    # -- JSON-RPC -------------------------------------------------------------------------------------

    async def process(self, body: bytes) -> bytes | None:
        """The encoded response to a request body (``None``: notifications only, no response)."""
        try:
            doc = orjson.loads(body)
        except orjson.JSONDecodeError as e:
            return orjson.dumps(_reply(True, None, error=RPCError(PARSE_ERROR, f"parse error: {e}")))
        if isinstance(doc, list):
            return await self._batch(doc)
        reply = await self._call(doc)
        return _encode(reply) if reply is not None else None

    async def submit_raw(self, body: bytes) -> web.Response:
        """The HTTP answer to a ``POST /rawtransactions`` body (:mod:`timecoin.rpc.rawbatch`):
        200 with the compact verdicts of
        :func:`~timecoin.rpc.rawtransactions.submit_raw_transactions` (the admission path of
        ``sendrawtransactions``); else an error body as JSON-RPC's, ``{"error": {"code",
        "message"}}``, with 400 for a malformed body (-32600) or more than ``MAX_BATCH``
        transactions (-8), 503 while warming up (-28) or when the admission limit leaves no room
        (-32001, retryable), 500 for an unexpected failure (logged). Nothing is admitted unless
        the answer is 200. The event loop is yielded between decoding and admission."""
        warmup = self.node.warmup
        if warmup is not None:
            return _error_response(503, IN_WARMUP, f"warming up: {warmup}")
        try:
            raws = rawbatch.decode_batch(body, rawtransactions.MAX_BATCH)
        except rawbatch.BatchTooLong as e:
            return _error_response(400, INVALID_PARAMETER, str(e))
        except ValueError as e:
            return _error_response(400, INVALID_REQUEST, f"malformed {rawbatch.PATH} body: {e}")
        await asyncio.sleep(0)  # decoding a large body took a while: let P2P and consensus run
        try:
            verdicts = rawtransactions.submit_raw_transactions(self.node, raws)
        except RPCError as e:
            return _error_response(_RAW_STATUS.get(e.code, 400), e.code, e.message)
        except Exception:
            log.exception("binary transaction submission failed")
            return _error_response(
                500, INTERNAL_ERROR, f"internal error in {rawbatch.PATH}; see the node's log"
            )
        txids: list[str | None] = []
        rejects: list[tuple[int, int, str]] = []
        for i, v in enumerate(verdicts):
            txids.append(v.txid.hex() if v.txid is not None else None)
            if v.reject is not None:
                rejects.append((i, v.reject.code, v.reject.message))
        return web.Response(body=rawbatch.encode_reply(txids, rejects), content_type="application/json")

    async def _batch(self, requests: list[object]) -> bytes | None:
        """A batch's encoded reply (``None``: notifications only): the requests run in order,
        yielding the event loop every ``BATCH_CHUNK``; once the replies pass
        ``MAX_BATCH_REPLY_BYTES``, the rest answer ``RESPONSE_TOO_LARGE`` without running."""
        if not requests:
            return orjson.dumps(_reply(True, None, error=RPCError(INVALID_REQUEST, "empty batch")))
        if len(requests) > MAX_BATCH_REQUESTS:
            message = (
                f"batch of {len(requests)} requests exceeds the limit of {MAX_BATCH_REQUESTS}; "
                "split it (nothing was run)"
            )
            return orjson.dumps(_reply(True, None, error=RPCError(INVALID_REQUEST, message)))
        parts: list[bytes] = []
        size = 0
        for i, req in enumerate(requests):
            if i and i % BATCH_CHUNK == 0:
                await asyncio.sleep(0)
            if size > MAX_BATCH_REPLY_BYTES:
                reply = _refusal(req, RPCError(RESPONSE_TOO_LARGE, _TOO_LARGE_MESSAGE))
            else:
                reply = await self._call(req)
            if reply is not None:
                part = _encode(reply)
                parts.append(part)
                size += len(part) + 1
        return b"[" + b",".join(parts) + b"]" if parts else None

    async def _call(self, req: object) -> dict[str, Any] | None:
        envelope = _envelope(req)
        if isinstance(envelope, dict):
            return envelope
        v2, req_id, notification = envelope
        assert isinstance(req, dict)
        name = req.get("method")
        started = time.perf_counter()
        label = self.stats.label(name)
        try:
            if not isinstance(name, str):
                raise RPCError(INVALID_REQUEST, "method must be a string")
            params = req.get("params")
            if params is not None and not isinstance(params, (list, dict)):
                raise RPCError(INVALID_REQUEST, "params must be an array or an object")
            method = self.methods.get(name)
            if method is None:
                raise RPCError(METHOD_NOT_FOUND, f"Method not found: {name[:100]}")
            warmup = self.node.warmup
            if warmup is not None and not method.warmup_ok:
                raise RPCError(IN_WARMUP, f"warming up: {warmup}")
            args = method.bind(params)
            result = method.handler(self.node, *args)
            if inspect.isawaitable(result):
                result = await result
        except RPCError as e:
            self.stats.record(label, False, time.perf_counter() - started)
            return None if notification else _reply(v2, req_id, error=e)
        except Exception:
            self.stats.record(label, False, time.perf_counter() - started)
            log.exception("RPC method %s failed", name)
            err = RPCError(INTERNAL_ERROR, f"internal error in {name}; see the node's log")
            return None if notification else _reply(v2, req_id, error=err)
        self.stats.record(label, True, time.perf_counter() - started)
        return None if notification else _reply(v2, req_id, result=result)


_TOO_LARGE_MESSAGE = (
    f"response too large: the batch's replies passed {MAX_BATCH_REPLY_BYTES} bytes before this "
    "request, which was not run; send it again in a smaller batch"
)


def _envelope(req: object) -> tuple[bool, object, bool] | dict[str, Any]:
    """``(v2, id, notification)`` of a request object, or the ``INVALID_REQUEST`` reply to a
    malformed one (not an object, a ``jsonrpc`` other than "1.0" or "2.0", an ``id`` of the wrong
    type). Version 1.0 is no ``jsonrpc`` member or ``"1.0"`` (Bitcoin Core's rule)."""
    if not isinstance(req, dict):
        return _reply(True, None, error=RPCError(INVALID_REQUEST, "a request must be a JSON object"))
    version = req.get("jsonrpc", "1.0")
    if version not in JSONRPC_VERSIONS:
        return _reply(
            True, None, error=RPCError(INVALID_REQUEST, 'JSON-RPC version not supported: use "2.0" or "1.0"')
        )
    v2 = version == "2.0"
    req_id = req.get("id")
    if req_id is not None and (isinstance(req_id, bool) or not isinstance(req_id, (str, int, float))):
        return _reply(v2, None, error=RPCError(INVALID_REQUEST, "id must be a string, a number or null"))
    return v2, req_id, v2 and "id" not in req


def _refusal(req: object, error: RPCError) -> dict[str, Any] | None:
    """The reply that refuses ``req`` without running it (``None`` for a notification)."""
    envelope = _envelope(req)
    if isinstance(envelope, dict):
        return envelope
    v2, req_id, notification = envelope
    return None if notification else _reply(v2, req_id, error=error)


def _reply(
    v2: bool, req_id: object, *, result: object = None, error: RPCError | None = None
) -> dict[str, Any]:
    if v2:
        if error is not None:
            return {"jsonrpc": "2.0", "error": error.to_json(), "id": req_id}
        return {"jsonrpc": "2.0", "result": result, "id": req_id}
    return {"result": result, "error": error.to_json() if error is not None else None, "id": req_id}


def _encode(reply: object) -> bytes:
    try:
        return orjson.dumps(reply)
    except orjson.JSONEncodeError:
        log.exception("RPC result is not JSON-serializable")
        return orjson.dumps(
            _reply(True, None, error=RPCError(INTERNAL_ERROR, "internal error: result not serializable"))
        )


def _error_response(status: int, code: int, message: str) -> web.Response:
    body = orjson.dumps(_reply(True, None, error=RPCError(code, message)))
    return web.Response(status=status, body=body, content_type="application/json")
