"""Test utilities: one wait primitive instead of sleeps, scaled by one global timeout factor, and
a uvloop runner for async tests (Bitcoin Core's ``wait_until`` and ``--timeout-factor``).

``TIMECOIN_TIMEOUT_FACTOR`` (a positive number, default 1) multiplies every timeout given here:
a slow machine or a debug build raises it once instead of editing tests.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

import uvloop

TIMEOUT_FACTOR_ENV = "TIMECOIN_TIMEOUT_FACTOR"

_T = TypeVar("_T")


def timeout_factor() -> float:
    """The global factor from ``TIMECOIN_TIMEOUT_FACTOR``; ``ValueError`` if it is not a
    positive number."""
    raw = os.environ.get(TIMEOUT_FACTOR_ENV, "1")
    try:
        factor = float(raw)
    except ValueError:
        factor = 0.0
    if not factor > 0:
        raise ValueError(f"{TIMEOUT_FACTOR_ENV} must be a positive number, got {raw!r}")
    return factor


def scaled(timeout: float) -> float:
    """``timeout`` seconds times the global factor."""
    return timeout * timeout_factor()


def _describe(predicate: Callable[[], object], message: str | None) -> str:
    return message or str(getattr(predicate, "__name__", repr(predicate)))


def wait_until(
    predicate: Callable[[], object],
    *,
    timeout: float = 10.0,
    interval: float = 0.05,
    message: str | None = None,
) -> None:
    """Polls ``predicate`` until it is true; ``AssertionError`` after ``timeout`` seconds (times
    the global factor). For tests that drive other processes; in a coroutine use
    :func:`wait_until_async` (this one blocks the loop)."""
    deadline = time.monotonic() + scaled(timeout)
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(
                f"wait_until timed out after {scaled(timeout):.1f} s: {_describe(predicate, message)}"
            )
        time.sleep(interval)


async def wait_until_async(
    predicate: Callable[[], object],
    *,
    timeout: float = 10.0,
    interval: float = 0.01,
    message: str | None = None,
) -> None:
    """:func:`wait_until` for coroutines: yields to the loop between polls."""
    deadline = time.monotonic() + scaled(timeout)
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(
                f"wait_until timed out after {scaled(timeout):.1f} s: {_describe(predicate, message)}"
            )
        await asyncio.sleep(interval)


async def wait_for(awaitable: Awaitable[_T], timeout: float = 10.0) -> _T:
    """``asyncio.wait_for`` with the global factor applied."""
    return await asyncio.wait_for(awaitable, scaled(timeout))


def run(coro: Coroutine[Any, Any, _T], *, timeout: float = 60.0) -> _T:
    """Runs ``coro`` to completion on a fresh uvloop event loop, failing after ``timeout``
    seconds (times the global factor)."""
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(asyncio.wait_for(coro, scaled(timeout)))
