"""Control RPC methods (Bitcoin Core's "control" category): help, stop, uptime."""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

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
