"""The node's garbage-collector settings after start-up (``timecoin.gctune``; docs/operator.md,
"Memory"), checked in a fresh interpreter so this test process keeps its own."""

from __future__ import annotations

import subprocess
import sys

import orjson

from timecoin.gctune import GC_THRESHOLDS

PROBE = """
import gc, orjson
from timecoin import gctune
keep = [object() for _ in range(1000)]
before = gc.get_threshold()
gctune.settle()
print(orjson.dumps({"before": before, "after": gc.get_threshold(), "frozen": gc.get_freeze_count()}).decode())
"""


def test_settle_freezes_the_start_up_state_and_raises_the_thresholds():
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True).stdout
    seen = orjson.loads(out)
    assert tuple(seen["before"]) == (700, 10, 10)  # CPython's default
    assert tuple(seen["after"]) == GC_THRESHOLDS
    assert seen["frozen"] >= 1000
