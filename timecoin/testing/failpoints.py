"""Failpoints: deterministic crash-at-step-N for crash tests (CometBFT ``libs/fail`` is the model).

Code calls :func:`hit` with a stable name at each point where a crash must leave consistent
state. Nothing happens unless the environment variable ``TIMECOIN_FAILPOINT`` names that point,
optionally as ``name:N`` to crash on its N-th hit (1-based); then the process kills itself with
SIGKILL on the spot: no ``finally``, no ``atexit``, no flush, exactly like a power cut for
everything not yet durable.
"""

from __future__ import annotations

import os
import signal

ENV = "TIMECOIN_FAILPOINT"


def _parse(spec: str | None) -> tuple[str, int] | None:
    if not spec:
        return None
    name, _, count = spec.partition(":")
    return name, int(count) if count else 1


_armed = _parse(os.environ.get(ENV))
_hits = 0


def hit(name: str) -> None:
    """Crash here if the armed failpoint is ``name`` and this is its N-th hit."""
    global _hits
    if _armed is None or _armed[0] != name:
        return
    _hits += 1
    if _hits >= _armed[1]:
        os.kill(os.getpid(), signal.SIGKILL)
