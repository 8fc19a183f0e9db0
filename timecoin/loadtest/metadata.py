"""What a load-test report says about the run itself (issue 15 item 3; docs/loadtest.md "The
report"): the commit and versions under test, the host (CPU model and count, memory), the
parameters, and the start time, so that two reports can be compared or a regression traced.

Read from this process's own environment (git, ``/proc``, package metadata), never from a node.
A fact that cannot be read here (no git checkout, no ``/proc/cpuinfo``) is null, never guessed.
"""

from __future__ import annotations

import datetime
import os
import platform
import shutil
import socket
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

import timecoin

__all__ = ["GIT_TIMEOUT", "cpu_model", "git_commit", "run_metadata"]

GIT_TIMEOUT = 10.0
"""Seconds ``git`` may take to describe the checkout."""
PACKAGES = ("timecoin-native", "aiohttp", "orjson", "locust")
"""Distributions whose installed versions the report names beside timecoin's own."""


def git_commit(source: Path | None = None) -> dict[str, Any] | None:
    """``{"commit": sha, "dirty": bool}`` of the git checkout holding ``source`` (default: this
    package's source); None when it is not a checkout or git is not installed."""
    where = source or Path(timecoin.__file__).resolve().parent
    git = shutil.which("git")
    if git is None:
        return None
    try:
        sha = subprocess.run(
            [git, "-C", str(where), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=GIT_TIMEOUT,
            check=True,
        ).stdout.strip()
        status = subprocess.run(
            [git, "-C", str(where), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=GIT_TIMEOUT,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return {"commit": sha, "dirty": bool(status.strip())}


def cpu_model(cpuinfo: Path = Path("/proc/cpuinfo")) -> str | None:
    """The CPU's model name (Linux ``/proc/cpuinfo`` ``model name``; else what ``platform``
    says), None if neither knows."""
    try:
        for line in cpuinfo.read_text().splitlines():
            key, sep, value = line.partition(":")
            if sep and key.strip() in ("model name", "Model", "cpu model"):
                return value.strip()
    except OSError:
        pass
    return platform.processor() or None


def _memory_bytes() -> int | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def _versions() -> dict[str, str | None]:
    import timecoin_native

    versions: dict[str, str | None] = {
        "timecoin": timecoin.__version__,
        "python": platform.python_version(),
        "native_build": str(timecoin_native.build_profile),
    }
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def run_metadata(parameters: dict[str, Any], started: datetime.datetime | None = None) -> dict[str, Any]:
    """The report's ``meta`` object: ``started_at`` (ISO 8601 UTC), ``git`` (:func:`git_commit`),
    ``versions``, ``host`` (``name``, ``cpu_model``, ``cpu_count``, ``memory_bytes``, ``os``) and
    ``parameters`` as given (no credentials: the caller passes what may be published)."""
    started = started or datetime.datetime.now(datetime.UTC)
    return {
        "started_at": started.isoformat(timespec="seconds"),
        "git": git_commit(),
        "versions": _versions(),
        "host": {
            "name": socket.gethostname(),
            "cpu_model": cpu_model(),
            "cpu_count": os.cpu_count(),
            "memory_bytes": _memory_bytes(),
            "os": platform.platform(),
        },
        "parameters": parameters,
    }
