"""The RPC method table: each method's name, parameters (with their JSON types), help text and
handler, declared once with :func:`rpc_method` in the module of its area.

The server binds a request's positional or named ``params`` against the declared parameters
(wrong count, unknown name or wrong JSON type: ``INVALID_PARAMS``); the handler then checks
values (``INVALID_PARAMETER`` and the like). ``timecoin-cli`` knows which command-line arguments
are JSON and which are plain strings from :mod:`timecoin.rpc.clientparams`, a copy of these
declarations it can import without the server (Bitcoin Core keeps that table by hand in
``src/rpc/client.cpp``); a unit test fails when the copy drifts from them.

Handlers take the node first, then the bound arguments, and return a JSON-ready value (or an
awaitable of one). They run on the event loop that owns the chain (see :mod:`timecoin.node`).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from timecoin.rpc.errors import INVALID_PARAMETER, INVALID_PARAMS, RPCError

HASH_HEX_LEN = 64

_KINDS: dict[str, tuple[tuple[type, ...], str]] = {
    "int": ((int,), "an integer"),
    "str": ((str,), "a string"),
    "hex": ((str,), "a hex string"),
    "bool": ((bool,), "a boolean"),
    "array": ((list,), "an array"),
    "object": ((dict,), "an object"),
    "int_or_bool": ((int, bool), "an integer or a boolean"),
}
STRING_KINDS = frozenset({"str", "hex"})
"""Parameter kinds a command line passes as they are; every other kind is parsed as JSON."""


@dataclass(frozen=True, slots=True)
class Param:
    """A declared parameter. ``kind``: int, str, hex, bool, array, object, int_or_bool. A
    ``variadic`` parameter (only the last) takes every remaining positional value, each of its
    kind, and reaches the handler as a list (``getbalance address [address...]``); named, it is
    one value or an array of them."""

    name: str
    kind: str
    help: str
    required: bool = True
    default: Any = None
    variadic: bool = False

    def __post_init__(self) -> None:
        if self.kind not in _KINDS:
            raise ValueError(f"unknown parameter kind {self.kind!r}")

    def check(self, method: str, value: object) -> object:
        types, what = _KINDS[self.kind]
        ok = isinstance(value, types) and (
            self.kind in ("bool", "int_or_bool") or not isinstance(value, bool)
        )
        if not ok:
            raise RPCError(
                INVALID_PARAMS,
                f"{method}: parameter {self.name} must be {what}, got {_json_type(value)}",
            )
        return value


@dataclass(frozen=True, slots=True)
class Method:
    """A registered RPC method."""

    name: str
    category: str
    params: tuple[Param, ...]
    handler: Callable[..., Any]
    summary: str
    doc: str
    warmup_ok: bool

    def bind(self, params: object) -> list[object]:
        """The handler's arguments from a request's ``params`` (list, dict or absent)."""
        if params is None:
            params = []
        variadic = self.params[-1] if self.params and self.params[-1].variadic else None
        if isinstance(params, list) and variadic is not None and len(params) >= len(self.params):
            fixed = len(self.params) - 1
            params = [*params[:fixed], [v for v in params[fixed:] if v is not None] or None]
        elif isinstance(params, dict) and variadic is not None and variadic.name in params:
            value = params[variadic.name]
            values = value if isinstance(value, list) else [value]
            params = dict(params) | {variadic.name: [v for v in values if v is not None] or None}
        if isinstance(params, list):
            if len(params) > len(self.params):
                raise RPCError(
                    INVALID_PARAMS,
                    f"{self.name} takes at most {len(self.params)} parameters ({self.usage()}), "
                    f"got {len(params)}",
                )
            given = {p.name: v for p, v in zip(self.params, params, strict=False)}
        elif isinstance(params, dict):
            names = {p.name for p in self.params}
            unknown = [k for k in params if k not in names]
            if unknown:
                raise RPCError(
                    INVALID_PARAMS, f"{self.name}: unknown parameter {unknown[0]!r} ({self.usage()})"
                )
            given = dict(params)
        else:
            raise RPCError(INVALID_PARAMS, "params must be an array or an object")
        args = []
        for p in self.params:
            value = given.get(p.name)
            if value is None:
                if p.required:
                    raise RPCError(
                        INVALID_PARAMS, f"{self.name}: missing parameter {p.name} ({self.usage()})"
                    )
                args.append(p.default)
            elif p.variadic:
                args.append([p.check(self.name, v) for v in value])
            else:
                args.append(p.check(self.name, value))
        return args

    def usage(self) -> str:
        parts = [
            f"{p.name} [{p.name}...]" if p.variadic else p.name if p.required else f"( {p.name} )"
            for p in self.params
        ]
        return " ".join([self.name, *parts])

    def help_text(self) -> str:
        lines = [self.usage(), "", self.doc]
        if self.params:
            lines += ["", "Arguments:"]
            for i, p in enumerate(self.params, 1):
                need = "required" if p.required else f"optional, default={p.default!r}"
                lines.append(f"{i}. {p.name:<16} ({p.kind}, {need}) {p.help}")
        return "\n".join(lines)


METHODS: dict[str, Method] = {}
"""Every registered method by name (filled by importing the area modules; see
:func:`load_methods`)."""


def rpc_method(
    category: str, *params: Param, warmup_ok: bool = False
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Registers the decorated ``handler(node, *args)`` under its function name. Its docstring's
    first paragraph is the summary ``help`` lists; the whole docstring is its ``help <method>``."""

    def register(handler: Callable[..., Any]) -> Callable[..., Any]:
        name = handler.__name__
        if name in METHODS:
            raise ValueError(f"RPC method {name} registered twice")
        doc = inspect.cleandoc(handler.__doc__ or "").replace("``", "")
        METHODS[name] = Method(
            name, category, params, handler, " ".join(doc.split("\n\n", 1)[0].split()), doc, warmup_ok
        )
        return handler

    return register


def load_methods() -> dict[str, Method]:
    """Imports every area module (registering its methods) and returns the table."""
    from timecoin.rpc import (  # noqa: F401
        blockchain,
        consensus,
        control,
        masternode,
        mempool,
        network,
        rawtransactions,
        util,
        wallet,
    )

    return METHODS


# -- value checks shared by the areas --------------------------------------------------------------


def parse_hex(name: str, value: str) -> bytes:
    """Bytes of a hex string (hex digits only, two per byte, as Bitcoin Core's ``IsHex``);
    ``INVALID_PARAMETER`` naming ``name`` otherwise."""
    try:
        out = bytes.fromhex(value)
        # fromhex skips whitespace: "00 ... 00  " would be a 31-byte "hash" of 64 characters.
        if 2 * len(out) != len(value):
            raise ValueError("whitespace")
        return out
    except ValueError:
        shown = value if len(value) <= 32 else value[:32] + "…"
        raise RPCError(INVALID_PARAMETER, f"{name} must be a hexadecimal string (not {shown!r})") from None


def parse_hash(name: str, value: str) -> bytes:
    """A 32-byte hash from 64 hex digits; ``INVALID_PARAMETER`` naming ``name`` otherwise."""
    if len(value) != HASH_HEX_LEN:
        shown = value if len(value) <= 80 else value[:80] + "…"
        raise RPCError(
            INVALID_PARAMETER, f"{name} must be of length {HASH_HEX_LEN} (not {len(value)}, for {shown!r})"
        )
    return parse_hex(name, value)


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"
