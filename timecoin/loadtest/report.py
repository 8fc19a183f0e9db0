"""The load test's report: a JSON document and a PNG plot (finalized TPS over time; finality
latency percentiles per second), from what the submitter and the follower recorded.

Fields (DESIGN §11): ``finalized_tps`` (finalized transactions over the seconds from the first
send to the last finality), ``submitted``, ``accepted``, ``finalized``, ``rejected`` (mempool
and finality rejections), ``reject_reasons``, ``finality_ms`` (``p50``, ``p95``, ``p99``,
``max``; null when nothing was finalized), ``blocks`` (committed during the run),
``duration_s``, ``nodes_agree`` (same tip hash and UTXO set hash everywhere at the end),
``finality_available`` (whether the nodes serve ``gettransactionfinality``), plus the generator's
own rate and a per-second ``timeline``. This module reads no node.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import orjson

__all__ = ["percentile", "timeline", "write_plot", "write_report"]


def percentile(sorted_values: list[float], p: float) -> float | None:
    """Nearest-rank percentile ``p`` (0..100) of ascending values; None if there are none."""
    if not sorted_values:
        return None
    rank = max(1, math.ceil(p / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


def timeline(
    start: float, sent_at: dict[str, float], final: dict[str, float], final_at: dict[str, float]
) -> dict[str, list[Any]]:
    """Per second since ``start`` (``time.monotonic()``): transactions finalized, and the p50,
    p95, p99 finality latency (ms) of those finalized in that second."""
    if not final_at:
        return {"second": [], "finalized": [], "p50_ms": [], "p95_ms": [], "p99_ms": []}
    seconds = int(max(final_at.values()) - start) + 1
    buckets: list[list[float]] = [[] for _ in range(seconds)]
    for txid, at in final_at.items():
        buckets[max(0, int(at - start))].append(final[txid] * 1000)
    for b in buckets:
        b.sort()
    return {
        "second": list(range(seconds)),
        "finalized": [len(b) for b in buckets],
        "p50_ms": [percentile(b, 50) for b in buckets],
        "p95_ms": [percentile(b, 95) for b in buckets],
        "p99_ms": [percentile(b, 99) for b in buckets],
    }


def write_report(report: dict[str, Any], path: Path) -> None:
    """Writes the report as indented JSON."""
    path.write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS))


def write_plot(report: dict[str, Any], path: Path) -> None:
    """Two panels over time: submitted and finalized TPS; finality latency p50/p95/p99 (ms)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    line = report["timeline"]
    fig, (tps, lat) = plt.subplots(2, 1, figsize=(9, 7), sharex=True)
    sent = report.get("submitted_per_second", [])
    tps.plot(range(len(sent)), sent, label="submitted", color="tab:gray")
    tps.plot(line["second"], line["finalized"], label="finalized", color="tab:green")
    tps.set_ylabel("transactions / s")
    tps.set_title(
        f"{report['nodes']} nodes, offered {report['rate']:.0f} tx/s: "
        f"finalized {report['finalized_tps']:.0f} tx/s"
    )
    tps.legend()
    for key, color in (("p50_ms", "tab:blue"), ("p95_ms", "tab:orange"), ("p99_ms", "tab:red")):
        xs = [s for s, v in zip(line["second"], line[key], strict=True) if v is not None]
        ys = [v for v in line[key] if v is not None]
        lat.plot(xs, ys, label=key.removesuffix("_ms"), color=color)
    lat.set_ylabel("finality latency (ms)")
    lat.set_xlabel("seconds since the first submission")
    if not line["second"]:
        lat.text(0.5, 0.5, "no transaction finalized", ha="center", transform=lat.transAxes)
    else:
        lat.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
