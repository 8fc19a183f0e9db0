"""Instruction counts of the hot paths under callgrind (valgrind): the measure ``.ci/bench``
gates on where wall time on a shared 2-core machine is too noisy (docs/benchmarks.md "History and
the regression gate").

For a workload of :data:`workloads.CALLGRIND` a child Python process builds the inputs, then makes
the call :data:`REPEAT` times under ``valgrind --tool=callgrind --collect-atstart=no
--toggle-collect=PATTERN``: only instructions executed inside the functions matching the
workload's pattern (the native crate's pyo3 entry point, or the Cython method) and what they
call are counted, so interpreter start-up, imports and input building are not. The count is
the total (``summary:``) divided by :data:`REPEAT`. ``PYTHONHASHSEED`` is fixed; the paths are
single-threaded. Two runs of one build agree to well under 0.1 %.

Run alone: ``python benches/callgrind.py [NAME ...]`` prints ``NAME INSTRUCTIONS`` per workload.
:func:`instructions` raises ``NotImplementedError`` when valgrind is not installed (asv then
reports the benchmark as skipped), ``RuntimeError`` with valgrind's output when the run fails
or counts nothing (a pattern that matches no function).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

BENCHES = Path(__file__).resolve().parent
REPEAT = 3
"""Calls counted per workload (the count reported is per call)."""
TIMEOUT = 600.0
"""Seconds one workload may take under valgrind (~50x slower than native)."""
_SUMMARY = re.compile(rb"^(?:summary|totals):\s+(\d+)", re.MULTILINE)

_CHILD = """
import sys
sys.path.insert(0, {benches!r})
import workloads
call = workloads.CALLGRIND[{name!r}][1]()
for _ in range({repeat}):
    call()
"""


def instructions(name: str, python: str | None = None) -> int:
    """Instructions per call of workload ``name`` (see the module docstring)."""
    import workloads

    pattern, _ = workloads.CALLGRIND[name]
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        raise NotImplementedError("valgrind is not installed (apt-get install valgrind)")
    with tempfile.TemporaryDirectory(prefix="callgrind-") as tmp:
        out = Path(tmp) / "callgrind.out"
        command = [
            valgrind,
            "--tool=callgrind",
            f"--callgrind-out-file={out}",
            "--collect-atstart=no",
            f"--toggle-collect={pattern}",
            python or sys.executable,
            "-c",
            _CHILD.format(benches=str(BENCHES), name=name, repeat=REPEAT),
        ]
        env = {**os.environ, "PYTHONHASHSEED": "0", "RAYON_NUM_THREADS": "1"}
        done = subprocess.run(command, capture_output=True, env=env, timeout=TIMEOUT)
        if done.returncode != 0 or not out.exists():
            raise RuntimeError(f"callgrind {name}: exit {done.returncode}\n{done.stderr.decode()[-3000:]}")
        match = _SUMMARY.search(out.read_bytes())
        if match is None or int(match.group(1)) == 0:
            raise RuntimeError(f"callgrind {name}: nothing counted inside {pattern!r}")
        return int(match.group(1)) // REPEAT


def main(names: list[str]) -> None:
    sys.path.insert(0, str(BENCHES))
    import workloads

    for name in names or sorted(workloads.CALLGRIND):
        print(name, instructions(name), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
