"""The e2e report (docs/e2e.md, "Report"): ``e2e.json`` (the manifest's schedule, what each fault
did and when, every check's verdict, the load test's summary, the sampled heights) and
``timeline.png`` (height per node over time, each fault interval shaded and labelled, the
load's span marked). This module reads no node.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson

from timecoin.e2e.checker import FaultRecord, Sample
from timecoin.e2e.manifest import FaultKind

__all__ = ["FAULT_COLORS", "REPORT_FILE", "PLOT_FILE", "write_plot", "write_report"]

REPORT_FILE = "e2e.json"
PLOT_FILE = "timeline.png"
FAULT_COLORS = {
    FaultKind.KILL: "tab:red",
    FaultKind.PAUSE: "tab:orange",
    FaultKind.OUTAGE: "tab:brown",
    FaultKind.PARTITION: "tab:purple",
    FaultKind.DELAY: "tab:cyan",
    FaultKind.BYZANTINE: "tab:olive",
}
"""Shade of each fault kind in the plot."""


def _height(value: int | None) -> float:
    """A sampled height for the plot: NaN (a gap in the line) where the node did not answer."""
    return float("nan") if value is None else float(value)


def write_report(report: dict[str, Any], path: Path) -> None:
    """Writes the report as indented JSON (sorted keys)."""
    path.write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS))


def write_plot(
    samples: Sequence[Sample],
    records: Sequence[FaultRecord],
    path: Path,
    title: str,
    load_span: tuple[float, float] | None = None,
) -> None:
    """Height of every node over time (seconds since the run started; gaps where a node did
    not answer), each fault from its start to its heal shaded in its kind's colour, the heal-to-
    recovery stretch hatched, and the load's span as dashed lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(11, 5.5))
    nodes = len(samples[0][1]) if samples else 0
    for n in range(nodes):
        xs = [t for t, _ in samples]
        ys = [_height(h[n]) for _, h in samples]
        # Earlier nodes drawn wider, so nodes at one height stay visible under each other.
        width = 1.0 + 1.2 * (nodes - 1 - n)
        ax.plot(xs, ys, label=f"node {n}", linewidth=width, drawstyle="steps-post")
    labelled: set[FaultKind] = set()
    for r in records:
        if r.started_at is None or r.healed_at is None:
            continue
        kind = r.fault.kind
        ax.axvspan(
            r.started_at,
            r.healed_at,
            color=FAULT_COLORS[kind],
            alpha=0.2,
            label=str(kind) if kind not in labelled else None,
        )
        labelled.add(kind)
        if r.recovered_at is not None:
            ax.axvspan(
                r.healed_at,
                r.recovered_at,
                facecolor="none",
                edgecolor=FAULT_COLORS[kind],
                hatch="//",
                alpha=0.4,
            )
        ax.annotate(
            f"#{r.fault.index}",
            xy=(r.started_at, 1.0),
            xycoords=("data", "axes fraction"),
            fontsize=8,
            va="bottom",
        )
    if load_span is not None:
        for x in load_span:
            ax.axvline(x, color="gray", linestyle="--", linewidth=0.8)
    ax.set_xlabel("seconds since the nodes started")
    ax.set_ylabel("height")
    ax.set_title(title, pad=14)
    if nodes:
        ax.legend(loc="upper left", fontsize=8, ncol=2)
    else:
        ax.text(0.5, 0.5, "no height sampled", ha="center", transform=ax.transAxes)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
