"""The benchmark gate's measure (issue 15 item 6; docs/benchmarks.md "History and the regression
gate"): ``benches/callgrind.py`` counts the instructions of a native hot path under valgrind's
callgrind in a child Python process, counting only inside the pyo3 entry point.

* two counts of one workload on one build agree within 0.1 % (so a 5 % gate does not flake) and
  are of the workload's size (256 signature verifications: millions of instructions, not the
  interpreter's start-up, which is excluded);
* ``benches/asv_build.py`` names the native crate by its git tree, the key under which asv's
  builds share one native wheel.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import asv_build
import callgrind
import pytest

ROOT = Path(__file__).resolve().parents[2]
GATE_NOISE = 0.001
"""Relative difference two counts of one build may show (the gate's factor is 1.05)."""


@pytest.mark.skipif(
    shutil.which("valgrind") is None, reason="valgrind is not installed (.ci/run installs it)"
)
def test_instruction_counts_repeat_and_exclude_start_up():
    first = callgrind.instructions("verify_batch_256")
    second = callgrind.instructions("verify_batch_256")
    assert abs(first - second) <= GATE_NOISE * first, (first, second)
    # ~50k instructions per ZIP-215 batch-verified signature; Python's start-up alone is ~10^8
    assert 256 * 20_000 < first < 256 * 1_000_000, first


def test_native_wheels_are_keyed_by_the_crate_tree():
    if not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    expected = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "HEAD:native"], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert asv_build.native_tree(ROOT) == expected and len(expected) == 40
