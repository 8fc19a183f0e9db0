"""Control RPC methods (Bitcoin Core's "control" category): help, stop, uptime, getruntimeinfo."""

from __future__ import annotations

import asyncio
import gc
import time
from typing import TYPE_CHECKING, Any

from timecoin.looplag import MAX_WINDOW
from timecoin.rpc import errors
from timecoin.rpc.methods import METHODS, Param, rpc_method

if TYPE_CHECKING:
    from timecoin.node import Node

CATEGORY = "Control"


@rpc_method(CATEGORY, Param("command", "str", "A method to describe.", False, None), warmup_ok=True)
def help(node: Node, command: str | None) -> str:  # noqa: A001 - the Bitcoin Core method name
    """Lists every method by category, or describes one."""
    if command is not None:
        method = METHODS.get(command)
        return method.help_text() if method is not None else f"help: unknown command: {command}"
    lines: list[str] = []
    for category in sorted({m.category for m in METHODS.values()}):
        if lines:
            lines.append("")
        lines.append(f"== {category} ==")
        lines += [
            f"{m.usage():<48} {m.summary}"
            for m in sorted(METHODS.values(), key=lambda m: m.name)
            if m.category == category
        ]
    return "\n".join(lines)


@rpc_method(CATEGORY, warmup_ok=True)
def stop(node: Node) -> str:
    """Stops the node cleanly (as SIGTERM does), after answering."""
    asyncio.get_running_loop().call_soon(node.request_stop, "stop RPC")
    return "TIME Coin server stopping"


@rpc_method(CATEGORY, warmup_ok=True)
def uptime(node: Node) -> int:
    """Seconds since the node started."""
    return int(time.time() - node.started_at)


@rpc_method(
    CATEGORY,
    Param("window", "int", f"Seconds of event-loop samples to summarize, up to {MAX_WINDOW:g}.", False, 60),
)
def getruntimeinfo(node: Node, window: int) -> dict[str, Any]:
    """The process's health: event-loop lag over the last ``window`` seconds in milliseconds
    (``samples``, ``p50``, ``p99``, ``max``, ``max_since_start``; docs/operator.md, "Event-loop
    lag") and the garbage collector (thresholds, frozen objects, collections per generation)."""
    try:
        lag = node.loop_lag.summary(window)
    except ValueError as e:
        raise errors.RPCError(errors.INVALID_PARAMETER, str(e)) from None
    return {
        "loop_lag_ms": lag,
        "gc": {
            "thresholds": list(gc.get_threshold()),
            "frozen": gc.get_freeze_count(),
            "collections": [g["collections"] for g in gc.get_stats()],
        },
    }
