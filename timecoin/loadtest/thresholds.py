"""Pass or fail of a load-test run against stated bounds (issue 15 item 3; docs/loadtest.md
"Thresholds"): what a CI job gates on. A run that misses any bound makes ``timecoin loadtest``
exit with :data:`EXIT_MISSED`; the report lists every bound with its value and verdict.

Bounds: ``min_tps`` (finalized tx/s, the report's ``finalized_tps``), ``max_p99_ms`` (p99
finality latency; a run that finalized nothing misses it), ``require_agree`` (every node on one
tip and UTXO set hash at the end: ``nodes_agree``), ``max_lost`` (transactions reported final
that some node does not hold as final: ``lost``). This module reads only the report.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["EXIT_MISSED", "Thresholds", "check"]

EXIT_MISSED = 1
"""Exit status of a run that missed a threshold (click uses 2 for a usage error)."""


@dataclass(frozen=True, slots=True)
class Thresholds:
    """The bounds a run must meet; None (or False) leaves one unchecked. The defaults are what
    ``timecoin loadtest`` always required: nodes agreeing and nothing lost."""

    min_tps: float | None = None
    max_p99_ms: float | None = None
    require_agree: bool = True
    max_lost: int | None = 0


def check(report: dict[str, Any], thresholds: Thresholds) -> list[dict[str, Any]]:
    """One row per bound checked: ``{"name", "limit", "value", "passed"}``, in a fixed order."""
    rows: list[dict[str, Any]] = []
    if thresholds.min_tps is not None:
        tps = report["finalized_tps"]
        rows.append(
            {
                "name": "min_tps",
                "limit": thresholds.min_tps,
                "value": tps,
                "passed": tps >= thresholds.min_tps,
            }
        )
    if thresholds.max_p99_ms is not None:
        p99 = report["finality_ms"]["p99"]
        rows.append(
            {
                "name": "max_p99_ms",
                "limit": thresholds.max_p99_ms,
                "value": p99,
                "passed": p99 is not None and p99 <= thresholds.max_p99_ms,
            }
        )
    if thresholds.require_agree:
        agree = bool(report["nodes_agree"])
        rows.append({"name": "require_agree", "limit": True, "value": agree, "passed": agree})
    if thresholds.max_lost is not None:
        lost = report["lost"]
        rows.append(
            {
                "name": "max_lost",
                "limit": thresholds.max_lost,
                "value": lost,
                "passed": lost <= thresholds.max_lost,
            }
        )
    return rows
