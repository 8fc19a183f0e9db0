"""The dashboard's HTTP side: ``GET /ui/`` (the page and its static files) and ``GET /ui/events``
(server-sent events: the snapshots of :class:`~timecoin.dashboard.state.DashboardState`), served
by the node's JSON-RPC server when ``dashboard`` is on (docs/operator.md, "Dashboard").

Read-only and without credentials, so it is kept to the machine itself:

* **loopback clients only**: a client address outside 127.0.0.0/8 and ::1 is answered 403,
  whatever ``rpcbind`` and ``rpcallowip`` allow the JSON-RPC side (reach it from elsewhere
  through an SSH tunnel);
* **loopback Host only** (DNS rebinding): the ``Host`` header must name ``localhost`` or a
  loopback address, else 403, so a page of another site whose name was made to resolve to
  127.0.0.1 cannot read it;
* **no cross-site requests** (CSRF, and streams opened by other sites' pages): a request whose
  ``Sec-Fetch-Site`` is other than ``same-origin`` or ``none``, or whose ``Origin`` is not the
  page's own, is answered 403;
* **a strict Content-Security-Policy** (:data:`CSP`) on every answer: scripts, styles and
  connections from the same origin only, no inline script or style, no frames; the static files
  are the package's own (uPlot vendored under ``static/vendor``, see its README), held in memory.

At most :data:`MAX_STREAMS` event streams are open at once (more get 503 with ``Retry-After``);
a stream whose client takes no message for :data:`SEND_TIMEOUT` seconds is closed. Every stream
ends when the server stops, and the sampler task with it.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from importlib import resources
from typing import TYPE_CHECKING

import orjson
from aiohttp import hdrs, web

from timecoin.dashboard.state import SAMPLE_INTERVAL, DashboardState
from timecoin.rpc.server import client_allowed

if TYPE_CHECKING:
    from timecoin.node import Node

log = logging.getLogger(__name__)

__all__ = ["CSP", "EVENTS_PATH", "MAX_STREAMS", "PREFIX", "SEND_TIMEOUT", "Dashboard", "add_dashboard"]

PREFIX = "/ui"
EVENTS_PATH = PREFIX + "/events"
MAX_STREAMS = 8
"""Event streams served at once (each browser tab holds one)."""
SEND_TIMEOUT = 10.0
"""Seconds a stream's client has to take one message (ten snapshots' time) before the stream is
closed: a stalled tab holds no slot for long."""
RETRY_MS = 2000
"""Milliseconds a browser waits before it reconnects a lost stream (the SSE ``retry`` field)."""
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
    "object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
"""The Content-Security-Policy of every dashboard answer (W3C CSP Level 3): same-origin files
only, no inline script or style (no ``'unsafe-inline'``), no plugins, no framing."""
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
}
ALLOWED_FETCH_SITES = ("same-origin", "none")
"""``Sec-Fetch-Site`` values served (Fetch Metadata): the page's own requests, and a navigation
typed or bookmarked by the operator."""
STATIC_FILES = {
    PREFIX: ("index.html", "text/html"),
    PREFIX + "/": ("index.html", "text/html"),
    PREFIX + "/dashboard.js": ("dashboard.js", "text/javascript"),
    PREFIX + "/dashboard.css": ("dashboard.css", "text/css"),
    PREFIX + "/favicon.svg": ("favicon.svg", "image/svg+xml"),
    PREFIX + "/vendor/uPlot.iife.js": ("vendor/uPlot.iife.js", "text/javascript"),
    PREFIX + "/vendor/uPlot.min.css": ("vendor/uPlot.min.css", "text/css"),
}
"""URL path → (file under ``static/``, content type)."""


def loopback_host(host: str | None) -> bool:
    """Whether a ``Host`` header names this machine: ``localhost`` or a loopback address, with or
    without a port (``127.0.0.1:24301``, ``[::1]:24301``, ``localhost``)."""
    if not host:
        return False
    host = host.strip()
    if host.startswith("["):
        name, sep, rest = host[1:].partition("]")
        if not sep or (rest and not (rest.startswith(":") and rest[1:].isdigit())):
            return False
    else:
        name, sep, port = host.rpartition(":")
        if not sep:
            name = port
        elif not port.isdigit():
            return False
    if name.lower().rstrip(".") == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


class Dashboard:
    """The routes, the event streams and the sampler task of one node's dashboard."""

    def __init__(self, node: Node) -> None:
        self.state = DashboardState(node)
        root = resources.files("timecoin.dashboard") / "static"
        self._files = {
            path: (root.joinpath(*name.split("/")).read_bytes(), content_type)
            for path, (name, content_type) in STATIC_FILES.items()
        }
        self._streams = 0
        self._closing = False
        self._sampler: asyncio.Task[None] | None = None

    @property
    def streams(self) -> int:
        """Event streams open now."""
        return self._streams

    def register(self, app: web.Application) -> None:
        """Adds the routes to ``app`` and ties the sampler to its start and shutdown."""
        for path in self._files:
            app.router.add_get(path, self._static)
        app.router.add_get(EVENTS_PATH, self._events)
        app.on_startup.append(self._start)
        app.on_shutdown.append(self._shutdown)

    async def _start(self, app: web.Application) -> None:
        self._closing = False
        self._sampler = asyncio.create_task(self.state.run(), name="dashboard sampler")
        log.info("dashboard at %s/ on the RPC port (loopback clients only)", PREFIX)

    async def _shutdown(self, app: web.Application) -> None:
        """Ends every stream (so the server's shutdown does not wait on them) and the sampler."""
        self._closing = True
        self.state.wake()
        if self._sampler is not None:
            self._sampler.cancel()
            await asyncio.gather(self._sampler, return_exceptions=True)
            self._sampler = None

    # -- requests ------------------------------------------------------------------------------------

    def _refused(self, request: web.Request) -> web.Response | None:
        """403 for a request from another machine, naming another host or sent by another site;
        None when it may be served (module docstring)."""
        if not client_allowed(request.remote, ()):
            reason = "the dashboard serves loopback clients only (use an SSH tunnel)"
        elif not loopback_host(request.headers.get(hdrs.HOST)):
            reason = "the dashboard answers only to localhost or a loopback address in the Host header"
        elif request.headers.get("Sec-Fetch-Site", "none") not in ALLOWED_FETCH_SITES:
            reason = "cross-site requests to the dashboard are refused"
        elif hdrs.ORIGIN in request.headers and request.headers[hdrs.ORIGIN] != f"http://{request.host}":
            reason = "cross-origin requests to the dashboard are refused"
        else:
            return None
        log.debug("dashboard request %s from %s refused: %s", request.path, request.remote, reason)
        return web.Response(status=403, text=reason + "\n", headers=SECURITY_HEADERS)

    async def _static(self, request: web.Request) -> web.Response:
        refused = self._refused(request)
        if refused is not None:
            return refused
        body, content_type = self._files[request.path]
        return web.Response(
            body=body,
            content_type=content_type,
            charset="utf-8",
            headers={**SECURITY_HEADERS, "Cache-Control": "no-cache"},
        )

    async def _events(self, request: web.Request) -> web.StreamResponse:
        """The event stream: ``history`` (the charts' samples so far) once, then a ``snapshot``
        at each sample (``SAMPLE_INTERVAL``), each a JSON object in one ``data`` line."""
        refused = self._refused(request)
        if refused is not None:
            return refused
        if request.method == hdrs.METH_HEAD:  # the headers a stream would have, and no stream
            return web.Response(
                content_type="text/event-stream", headers={**SECURITY_HEADERS, hdrs.CACHE_CONTROL: "no-store"}
            )
        if self._closing:
            return web.Response(status=503, text="the node is stopping\n", headers=SECURITY_HEADERS)
        if self._streams >= MAX_STREAMS:
            return web.Response(
                status=503,
                text=f"{MAX_STREAMS} dashboard streams are open already; close one\n",
                headers={**SECURITY_HEADERS, "Retry-After": str(round(SAMPLE_INTERVAL * 5))},
            )
        self._streams += 1
        response = web.StreamResponse(
            headers={
                **SECURITY_HEADERS,
                hdrs.CONTENT_TYPE: "text/event-stream; charset=utf-8",
                hdrs.CACHE_CONTROL: "no-store",
            }
        )
        try:
            await response.prepare(request)
            history = orjson.dumps(list(self.state.history))
            first = b"retry: %d\nevent: history\ndata: %s\n\n" % (RETRY_MS, history)
            if not await self._send(request, response, first):
                return response
            while not self._closing:
                changed = self.state.changed()
                frame = b"event: snapshot\ndata: " + self.state.snapshot + b"\n\n"
                if not await self._send(request, response, frame):
                    return response
                await changed.wait()
        except (ConnectionError, RuntimeError) as e:
            # RuntimeError: aiohttp's "cannot write to closing transport".
            log.debug("dashboard stream to %s ended: %r", request.remote, e)
        finally:
            self._streams -= 1
        return response

    async def _send(self, request: web.Request, response: web.StreamResponse, frame: bytes) -> bool:
        """Writes one frame within ``SEND_TIMEOUT``; False (and the connection closed) if the
        client did not take it in time."""
        try:
            async with asyncio.timeout(SEND_TIMEOUT):
                await response.write(frame)
        except TimeoutError:
            log.debug(
                "dashboard stream to %s closed: no message taken in %.0f s", request.remote, SEND_TIMEOUT
            )
            if request.transport is not None:
                request.transport.close()
            return False
        return True


def add_dashboard(app: web.Application, node: Node) -> Dashboard:
    """Serves ``node``'s dashboard from ``app`` (the JSON-RPC server's application) under
    :data:`PREFIX`; the sampler runs from the app's start to its shutdown."""
    dashboard = Dashboard(node)
    dashboard.register(app)
    return dashboard
