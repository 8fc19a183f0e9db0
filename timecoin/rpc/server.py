"""The JSON-RPC 2.0 server over HTTP (aiohttp + orjson; DESIGN §10).

* ``POST /`` with one request object or a batch (an array); a request without ``id`` under
  ``"jsonrpc": "2.0"`` is a notification and gets no response; requests without ``jsonrpc``
  (Bitcoin Core's 1.0 style) get the 1.0 response shape (``result``, ``error``, ``id``).
  JSON-RPC outcomes are HTTP 200; transport failures are not: 401 without valid credentials,
  405 for another HTTP method, 413 for a body over ``rpcmaxrequest``, 503 when overloaded.
* **Authentication**: HTTP Basic. The cookie ``<datadir>/.cookie`` (``__cookie__:<64 hex>``,
  mode 0600, random per start, removed at stop) always works; ``rpcuser``/``rpcpassword`` too
  when configured. Comparisons are constant-time.
* **Bounded concurrency**: at most ``rpcthreads`` requests are worked on at once and
  ``rpcworkqueue`` more may wait; beyond that the answer is HTTP 503 with error
  ``SERVER_OVERLOADED`` at once, so a flood cannot queue unbounded work.
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
import logging
import os
import secrets
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
from aiohttp import web

from timecoin.config import NodeConfig
from timecoin.rpc.errors import (
    IN_WARMUP,
    INTERNAL_ERROR,
    INVALID_REQUEST,
    METHOD_NOT_FOUND,
    PARSE_ERROR,
    SERVER_OVERLOADED,
    RPCError,
)
from timecoin.rpc.methods import Method, load_methods

if TYPE_CHECKING:
    from timecoin.node import Node

log = logging.getLogger(__name__)

COOKIE_FILE = ".cookie"
COOKIE_USER = "__cookie__"
SHUTDOWN_GRACE = 5.0
"""Seconds in-flight requests get to finish when the server stops."""


def write_cookie(path: Path) -> str:
    """Writes a fresh random cookie (``__cookie__:<64 hex>``) atomically, mode 0600, and returns
    the password part."""
    password = secrets.token_hex(32)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(f"{COOKIE_USER}:{password}")
    tmp.replace(path)
    return password


def read_cookie(path: Path) -> tuple[str, str]:
    """(user, password) from a cookie file; ``OSError`` if unreadable, ``ValueError`` if malformed."""
    user, sep, password = path.read_text().strip().partition(":")
    if not sep or not password:
        raise ValueError(f"{path} is not a cookie file")
    return user, password


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
        threads: int,
        work_queue: int,
        max_request: int,
    ) -> None:
        self.node = node
        self.methods: dict[str, Method] = load_methods()
        self._bind = bind
        self._port = port
        self._cookie_path = cookie_path
        self._credentials: list[bytes] = []
        if user is not None and password is not None:
            self._credentials.append(f"{user}:{password}".encode())
        self._threads = threads
        self._work_queue = work_queue
        self._max_request = max_request
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
            threads=config.rpcthreads,
            work_queue=config.rpcworkqueue,
            max_request=config.rpcmaxrequest,
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
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=SHUTDOWN_GRACE)
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
        return ok

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        if not self._authorized(request):
            return web.Response(
                status=401,
                text="authorization required\n",
                headers={"WWW-Authenticate": 'Basic realm="jsonrpc"'},
            )
        if request.method != "POST":
            return web.Response(status=405, text="JSON-RPC takes POST requests\n", headers={"Allow": "POST"})
        length = request.content_length
        if length is not None and length > self._max_request:
            return _error_response(
                413,
                INVALID_REQUEST,
                f"request of {length} bytes exceeds the limit of {self._max_request} bytes",
            )
        if self._pending >= self._threads + self._work_queue:
            return _error_response(
                503,
                SERVER_OVERLOADED,
                f"server overloaded: {self._pending} requests in progress or waiting "
                f"(rpcthreads={self._threads}, rpcworkqueue={self._work_queue}); retry later",
            )
        self._pending += 1
        try:
            async with self._slots:
                try:
                    body = await request.read()
                except web.HTTPRequestEntityTooLarge:
                    return _error_response(
                        413, INVALID_REQUEST, f"request exceeds the limit of {self._max_request} bytes"
                    )
                reply = await self.process(body)
        finally:
            self._pending -= 1
        if reply is None:
            return web.Response(status=204)
        return web.Response(body=reply, content_type="application/json")

    # -- JSON-RPC -------------------------------------------------------------------------------------

    async def process(self, body: bytes) -> bytes | None:
        """The encoded response to a request body (``None``: notifications only, no response)."""
        try:
            doc = orjson.loads(body)
        except orjson.JSONDecodeError as e:
            return orjson.dumps(_reply(True, None, error=RPCError(PARSE_ERROR, f"parse error: {e}")))
        if isinstance(doc, list):
            if not doc:
                return orjson.dumps(_reply(True, None, error=RPCError(INVALID_REQUEST, "empty batch")))
            replies = []
            for item in doc:
                reply = await self._call(item)
                if reply is not None:
                    replies.append(reply)
            return _encode(replies) if replies else None
        reply = await self._call(doc)
        return _encode(reply) if reply is not None else None

    async def _call(self, req: object) -> dict[str, Any] | None:
        if not isinstance(req, dict):
            return _reply(True, None, error=RPCError(INVALID_REQUEST, "a request must be a JSON object"))
        v2 = "jsonrpc" in req
        req_id = req.get("id")
        if v2 and req.get("jsonrpc") != "2.0":
            return _reply(True, None, error=RPCError(INVALID_REQUEST, 'jsonrpc must be "2.0"'))
        if req_id is not None and (isinstance(req_id, bool) or not isinstance(req_id, (str, int, float))):
            return _reply(v2, None, error=RPCError(INVALID_REQUEST, "id must be a string, a number or null"))
        notification = v2 and "id" not in req
        name = req.get("method")
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
            return None if notification else _reply(v2, req_id, error=e)
        except Exception:
            log.exception("RPC method %s failed", name)
            err = RPCError(INTERNAL_ERROR, f"internal error in {name}; see the node's log")
            return None if notification else _reply(v2, req_id, error=err)
        return None if notification else _reply(v2, req_id, result=result)


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
