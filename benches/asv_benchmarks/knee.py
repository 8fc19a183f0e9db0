"""The devnet's saturation knee (tx/s) as a tracked value (docs/benchmarks.md "History and the
regression gate"): ``timecoin devnet --load --sweep`` of the commit under test, run only when
``TIMECOIN_BENCH_KNEE`` gives the rates (``START:STOP:STEP`` or ``R1,R2,...``; it takes minutes)
and skipped otherwise. ``TIMECOIN_BENCH_KNEE_DURATION`` sets the seconds per run (default
:data:`DURATION`), ``TIMECOIN_BENCH_KNEE_REPEAT`` the runs per rate (default 1). Higher is
better, so ``.ci/bench`` draws it and never gates on it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

RATES_VAR = "TIMECOIN_BENCH_KNEE"
DURATION = 20.0
"""Seconds of load per run, unless ``TIMECOIN_BENCH_KNEE_DURATION`` says otherwise."""
TIMEOUT = 3600.0
"""Seconds the whole sweep may take."""


class DevnetKnee:
    unit = "tx/s"
    timeout = TIMEOUT
    number = 1
    repeat = 1

    def setup(self) -> None:
        if not os.environ.get(RATES_VAR):
            raise NotImplementedError(f"set {RATES_VAR}=START:STOP:STEP to run the devnet sweep")

    def track_devnet_knee(self) -> float:
        """The knee of a 4-masternode devnet sweep (0 when no rate is within its bounds)."""
        with tempfile.TemporaryDirectory(prefix="asv-knee-") as tmp:
            command = [
                sys.executable,
                "-m",
                "timecoin.cli.main",
                "devnet",
                "--workdir",
                tmp,
                "--load",
                "--sweep",
                os.environ[RATES_VAR],
                "--duration",
                os.environ.get("TIMECOIN_BENCH_KNEE_DURATION", str(DURATION)),
                "--repeat",
                os.environ.get("TIMECOIN_BENCH_KNEE_REPEAT", "1"),
            ]
            subprocess.run(command, check=True, timeout=TIMEOUT, stdout=subprocess.DEVNULL)
            knee = json.loads((Path(tmp) / "sweep.json").read_bytes())["knee"]
        return float(knee or 0.0)
