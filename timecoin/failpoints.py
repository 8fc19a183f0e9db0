"""Failpoints: deterministic crash-at-step-N for crash tests (CometBFT ``libs/fail`` is the model).

Code calls :func:`hit` with a stable name at each point where a crash must leave consistent
state. Nothing happens unless the environment variable ``TIMECOIN_FAILPOINT`` names that point,
optionally as ``name:N`` to crash on its N-th hit (1-based); then the process kills itself with
SIGKILL on the spot: no ``finally``, no ``atexit``, no flush, exactly like a power cut for
everything not yet durable. ``name:N:raise`` raises :class:`FailpointError` at the N-th hit
instead (once), for tests of what survives an exception at that point.
"""

from __future__ import annotations

import os
import signal

ENV = "TIMECOIN_FAILPOINT"


ACTIONS = ("kill", "raise")


class FailpointError(RuntimeError):
    """Raised by an armed ``name:N:raise`` failpoint."""


def _parse(spec: str | None) -> tuple[str, int, str] | None:
    if not spec:
        return None
    name, _, rest = spec.partition(":")
    count, _, action = rest.partition(":")
    action = action or "kill"
    if action not in ACTIONS:
        raise ValueError(f"{ENV}: unknown failpoint action {action!r} (known: {', '.join(ACTIONS)})")
    return name, int(count) if count else 1, action


_armed = _parse(os.environ.get(ENV))
_hits = 0


def hit(name: str) -> None:
    """Crash here if the armed failpoint is ``name`` and this is its N-th hit (or raise
    :class:`FailpointError`, for a ``raise`` failpoint)."""
    global _hits
    if _armed is None or _armed[0] != name:
        return
    _hits += 1
    if _armed[2] == "raise":
        if _hits == _armed[1]:
            raise FailpointError(f"failpoint {name} hit {_hits} time(s)")
    elif _hits >= _armed[1]:
        os.kill(os.getpid(), signal.SIGKILL)
