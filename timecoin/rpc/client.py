"""A synchronous JSON-RPC client over HTTP (``timecoin-cli``, the test harness, scripts).

``RPCClient(host, port, user, password).call("getblockhash", 0)`` or, as a proxy,
``client.getblockhash(0)``. One persistent HTTP connection per client: not thread-safe; make one
client per thread. A JSON-RPC error raises :class:`JSONRPCError` with Bitcoin Core's code.
:meth:`RPCClient.sendrawtransactions_binary` submits encoded transactions through the binary
endpoint (``POST /rawtransactions``, :mod:`timecoin.rpc.rawbatch`) instead of hex JSON-RPC.

Standard library and orjson only (the binary endpoint's codec is imported when first used):
``timecoin-cli`` starts without aiohttp or the node's modules.
"""

from __future__ import annotations

import base64
import http.client
import itertools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from timecoin.rpc.cookie import COOKIE_FILE, read_cookie

DEFAULT_TIMEOUT = 60.0
"""Seconds an RPC call may take before the client gives up."""


class JSONRPCError(Exception):
    """The server answered with a JSON-RPC error (``code``, ``message``) or an HTTP error
    (``http_status``; ``code`` is None when the body held no JSON-RPC error)."""

    def __init__(self, code: int | None, message: str, http_status: int = 200) -> None:
        super().__init__(f"{message} (code {code})" if code is not None else message)
        self.code = code
        self.message = message
        self.http_status = http_status


def http_error(status: int, body: bytes) -> JSONRPCError:
    """The :class:`JSONRPCError` of a non-200 answer: the code and message of its JSON-RPC error
    body when it has one (every error of ``POST /rawtransactions``, JSON-RPC's 408, 413 and 503),
    else ``code`` None and the start of the body (401, 405)."""
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        doc = None
    error = doc.get("error") if isinstance(doc, dict) else None
    if isinstance(error, dict):
        return JSONRPCError(error.get("code"), str(error.get("message")), status)
    return JSONRPCError(None, f"HTTP {status}: {body[:200].decode(errors='replace').strip()}", status)


def raw_reply(status: int, body: bytes, count: int) -> tuple[list[str | None], dict[int, tuple[int, str]]]:
    """The decoded answer of ``POST /rawtransactions`` to ``count`` transactions
    (:func:`timecoin.rpc.rawbatch.decode_reply`); :class:`JSONRPCError` for an HTTP error
    (:func:`http_error`) or a reply that is not one."""
    from timecoin.rpc import rawbatch

    if status != 200:
        raise http_error(status, body)
    try:
        return rawbatch.decode_reply(body, count)
    except ValueError as e:
        raise JSONRPCError(None, str(e), status) from None


def cookie_auth(datadir: Path) -> tuple[str, str]:
    """(user, password) from ``<datadir>/.cookie``; ``OSError`` if the node has not written it."""
    return read_cookie(datadir / COOKIE_FILE)


class RPCClient:
    """A JSON-RPC 2.0 client of one node."""

    def __init__(
        self, host: str, port: int, user: str, password: str, timeout: float = DEFAULT_TIMEOUT
    ) -> None:
        self.host, self.port, self.timeout = host, port, timeout
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        self._headers = {"Authorization": f"Basic {token}", "Content-Type": "application/json"}
        self._authorization = f"Basic {token}"
        self._ids = itertools.count(1)
        self._conn: http.client.HTTPConnection | None = None

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def post(self, body: bytes, headers: dict[str, str] | None = None, path: str = "/") -> tuple[int, bytes]:
        """Sends a raw body to ``path`` (JSON-RPC's ``/`` by default) with ``headers`` (the
        client's JSON-RPC headers by default); (HTTP status, response body). Reconnects once on a
        dropped keep-alive connection."""
        for attempt in (0, 1):
            if self._conn is None:
                self._conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
            try:
                self._conn.request(
                    "POST", path, body=body, headers=headers if headers is not None else self._headers
                )
                response = self._conn.getresponse()
                return response.status, response.read()
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                self.close()
                if attempt:
                    raise
            except BaseException:
                # A timeout (or anything else) mid-exchange leaves the connection waiting for a
                # response that belongs to no call: the next call must start a new one.
                self.close()
                raise
        raise AssertionError("unreachable")

    def _request(self, payload: object) -> tuple[Any, int]:
        status, body = self.post(orjson.dumps(payload))
        if status == 204:
            return None, status
        try:
            doc = orjson.loads(body)
        except orjson.JSONDecodeError:
            raise JSONRPCError(
                None, f"HTTP {status}: {body[:200].decode(errors='replace').strip()}", status
            ) from None
        if status != 200 and not (isinstance(doc, dict) and isinstance(doc.get("error"), dict)):
            raise JSONRPCError(None, f"HTTP {status}", status)
        return doc, status

    def call(self, method: str, *params: Any, **named: Any) -> Any:
        """Calls ``method`` with positional or named parameters; the result, or
        :class:`JSONRPCError`."""
        if params and named:
            raise TypeError("give positional or named parameters, not both")
        payload = {"jsonrpc": "2.0", "id": next(self._ids), "method": method, "params": named or list(params)}
        doc, status = self._request(payload)
        if not isinstance(doc, dict):
            raise JSONRPCError(None, f"unexpected response: {str(doc)[:200]}", status)
        error = doc.get("error")
        if error is not None:
            raise JSONRPCError(error.get("code"), str(error.get("message")), status)
        return doc.get("result")

    def batch(self, calls: list[tuple[str, list[Any]]]) -> list[dict[str, Any]]:
        """Sends ``[(method, params), ...]`` as one batch; the response objects, in request order."""
        first = next(self._ids)
        payload = [
            {"jsonrpc": "2.0", "id": first + i, "method": m, "params": p} for i, (m, p) in enumerate(calls)
        ]
        self._ids = itertools.count(first + len(calls))
        doc, status = self._request(payload)
        if not isinstance(doc, list):
            error = doc.get("error") if isinstance(doc, dict) else None
            if isinstance(error, dict):
                raise JSONRPCError(error.get("code"), str(error.get("message")), status)
            raise JSONRPCError(None, f"unexpected response: {str(doc)[:200]}", status)
        return sorted(doc, key=lambda r: r.get("id") or 0)

    def sendrawtransactions_binary(self, raws: list[bytes]) -> list[dict[str, Any]]:
        """``sendrawtransactions`` of encoded transactions through the binary endpoint (``POST
        /rawtransactions``): the same verdicts, ``{"txid", "accepted", "reject": {"code",
        "reason"} | None}`` per transaction in order. :class:`JSONRPCError` with the node's code
        and the HTTP status for a refused call (-32001 ``mempool-overloaded`` with HTTP 503 when
        nothing fits; -8 over the batch limit); ``ValueError`` for no transaction or an empty one
        (:func:`timecoin.rpc.rawbatch.encode_batch`)."""
        from timecoin.rpc import rawbatch

        headers = {"Authorization": self._authorization, "Content-Type": rawbatch.CONTENT_TYPE}
        status, body = self.post(rawbatch.encode_batch(raws), headers, rawbatch.PATH)
        return rawbatch.expand_reply(*raw_reply(status, body, len(raws)))

    def __getattr__(self, method: str) -> Callable[..., Any]:
        if method.startswith("_"):
            raise AttributeError(method)
        return lambda *params, **named: self.call(method, *params, **named)
