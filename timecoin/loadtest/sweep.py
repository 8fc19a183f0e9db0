"""The saturation sweep (issue 15 item 4; docs/loadtest.md "Saturation sweep"): the offered rate
is stepped up, each step run ``repeat`` times, until a step falls outside the knee's bounds; the
knee is the highest rate before it. ``timecoin loadtest --sweep`` runs the steps against a
running network, ``timecoin devnet --load --sweep`` on a fresh devnet per run; both go through
:func:`run_sweep`.

A run is within the knee's bounds (DESIGN §11: final in under a second, nothing lost) when it
finalized at least :data:`KNEE_SHARE` of the offered rate, its p99 finality is under
:data:`KNEE_P99_MS`, it lost nothing and every node agreed at the end. A step is within them
when every one of its runs is (near the knee single runs differ several-fold, so one lucky run
does not make a knee). The sweep stops after the first step that is not: past the knee.

Output (in the sweep's directory): ``sweep.json`` (``meta``: commit, host, parameters as in a
load-test report; ``rows``: one per step with the median of its runs' figures and every run;
``knee``; ``stopped_at``: the first rate past the knee, null if none was reached, and then
``knee_is_lower_bound``: the knee is only known to be at least the highest rate run) and
``sweep.png`` (:func:`write_sweep_plot`: offered against finalized, finality percentiles against
offered, refusals against offered).
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
from rich.console import Console
from rich.table import Table

from timecoin.loadtest.metadata import run_metadata
from timecoin.loadtest.report import plot_title

__all__ = [
    "KNEE_P99_MS",
    "KNEE_SHARE",
    "SWEEP_FILE",
    "SWEEP_PLOT",
    "knee_of",
    "parse_rates",
    "run_row",
    "run_sweep",
    "step_row",
    "write_sweep_plot",
]

KNEE_P99_MS = 1000.0
"""A run within the knee: p99 finality below this many milliseconds (DESIGN §11: final in under a
second)."""
KNEE_SHARE = 0.95
"""A run within the knee: finalized tx/s at least this share of the offered rate."""
MAX_STEPS = 100
"""Rates one sweep may step through (a typo in a range should not mean hours of load)."""
SWEEP_FILE = "sweep.json"
SWEEP_PLOT = "sweep.png"
_MEDIAN_FIELDS = ("finalized_tps", "p50_ms", "p95_ms", "p99_ms", "overloaded", "rejected")


def parse_rates(text: str) -> list[float]:
    """Offered rates (tx/s, ascending, distinct) from ``"R1,R2,..."`` or ``"START:STOP:STEP"``
    (STOP included when the steps reach it). ``ValueError`` saying what is wrong: not numbers,
    a rate that is not positive, a step that is not, more than :data:`MAX_STEPS` rates."""
    text = text.strip()
    try:
        if ":" in text:
            start, stop, step = (float(x) for x in text.split(":"))
            if step <= 0 or start <= 0 or stop < start:
                raise ValueError(f"{text!r}: START:STOP:STEP needs 0 < START <= STOP and STEP > 0")
            count = int((stop - start) / step + 1e-9) + 1
            if count > MAX_STEPS:
                raise ValueError(f"{text!r} is {count} rates, more than {MAX_STEPS}")
            rates = [start + k * step for k in range(count)]
        else:
            rates = [float(r) for r in text.split(",") if r.strip()]
    except ValueError as e:
        if "START" in str(e) or "more than" in str(e):
            raise
        raise ValueError(f"{text!r} is neither R1,R2,... nor START:STOP:STEP (tx/s)") from None
    if not rates or any(r <= 0 for r in rates):
        raise ValueError("give at least one rate, every rate positive")
    if len(set(rates)) > MAX_STEPS:
        raise ValueError(f"{len(set(rates))} rates, more than {MAX_STEPS}")
    return sorted(set(rates))


def run_row(report: dict[str, Any]) -> dict[str, Any]:
    """One run's figures from its load-test report: offered and finalized tx/s, finality
    percentiles (ms), refusals, lost, agreement, whether it is within the knee's bounds, and
    the worst node's loop lag when the report has it (a devnet's)."""
    f = report["finality_ms"]
    ok = (
        report["finalized_tps"] >= KNEE_SHARE * report["rate"]
        and f["p99"] is not None
        and f["p99"] < KNEE_P99_MS
        and report["lost"] == 0
        and bool(report["nodes_agree"])
    )
    row = {
        "rate": report["rate"],
        "finalized_tps": report["finalized_tps"],
        "p50_ms": f["p50"],
        "p95_ms": f["p95"],
        "p99_ms": f["p99"],
        "overloaded": report["overloaded"],
        "rejected": report.get("rejected", report["overloaded"]),
        "lost": report["lost"],
        "nodes_agree": report["nodes_agree"],
        "within_knee": ok,
    }
    if "loop_lag_ms" in report:
        row["loop_lag_ms"] = report["loop_lag_ms"]
    return row


def _median(values: list[Any]) -> float | None:
    known = [v for v in values if v is not None]
    return round(statistics.median(known), 2) if known else None


def step_row(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One step's row from its runs (:func:`run_row`, same rate): the median of each figure,
    ``lost`` summed, ``nodes_agree`` and ``within_knee`` true only if true in every run, the
    worst loop lag, and the runs themselves."""
    row: dict[str, Any] = {"rate": runs[0]["rate"], "repeats": len(runs)}
    for key in _MEDIAN_FIELDS:
        row[key] = _median([r[key] for r in runs])
    row["lost"] = sum(r["lost"] for r in runs)
    row["nodes_agree"] = all(r["nodes_agree"] for r in runs)
    row["within_knee"] = all(r["within_knee"] for r in runs)
    lags = [r["loop_lag_ms"] for r in runs if "loop_lag_ms" in r]
    if lags:
        row["loop_lag_ms"] = {
            stat: max((lag[stat] for lag in lags if lag[stat] is not None), default=None)
            for stat in ("p99", "max")
        }
    row["runs"] = runs
    return row


def knee_of(rows: list[dict[str, Any]]) -> float | None:
    """The highest rate of the steps within the knee's bounds before the first that is not."""
    knee = None
    for row in sorted(rows, key=lambda r: r["rate"]):
        if not row["within_knee"]:
            break
        knee = row["rate"]
    return knee


def run_sweep(
    rates: list[float],
    repeat: int,
    run: Callable[[float, int], dict[str, Any]],
    out: Path,
    console: Console,
    parameters: dict[str, Any],
    interrupts: tuple[type[BaseException], ...] = (KeyboardInterrupt,),
) -> dict[str, Any]:
    """Runs ``run(rate, i)`` (a load-test report) ``repeat`` times per rate, ascending, until a
    step is past the knee (or ``interrupts`` stops it: the steps done are kept); prints the
    table and the knee, writes ``out/sweep.json`` and ``out/sweep.png``; returns the result.
    ``ValueError`` for no rate or ``repeat`` < 1."""
    if not rates or repeat < 1:
        raise ValueError("a sweep needs at least one rate and one run per rate")
    meta = run_metadata({**parameters, "rates": rates, "repeat": repeat})
    rows: list[dict[str, Any]] = []
    stopped_at: float | None = None
    interrupted = False
    try:
        for rate in sorted(rates):
            runs = []
            for i in range(repeat):
                console.print(f"[bold]sweep[/]: {rate:g} tx/s, run {i + 1}/{repeat}", highlight=False)
                runs.append(run_row(run(rate, i)))
            rows.append(step_row(runs))
            if not rows[-1]["within_knee"]:
                stopped_at = rate
                break
    except interrupts:
        console.print("interrupted: the steps done so far are reported")
        interrupted = True
    result = {
        "meta": meta,
        "nodes": parameters.get("nodes"),
        "duration_s": parameters.get("duration_s"),
        "repeat": repeat,
        "bounds": {"min_share": KNEE_SHARE, "max_p99_ms": KNEE_P99_MS, "lost": 0, "nodes_agree": True},
        "rows": rows,
        "knee": knee_of(rows),
        "knee_is_lower_bound": stopped_at is None and bool(rows),
        "stopped_at": stopped_at,
        "interrupted": interrupted,
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / SWEEP_FILE).write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2))
    write_sweep_plot(result, out / SWEEP_PLOT)
    console.print(_table(result))
    knee = result["knee"]
    console.print(f"knee: {knee:g} tx/s" if knee is not None else "knee: none of the rates", highlight=False)
    if stopped_at is not None:
        console.print(f"stopped past the knee at {stopped_at:g} tx/s", highlight=False)
    elif result["knee_is_lower_bound"]:
        console.print(
            f"no rate was past the knee: it is at least {knee:g} tx/s (give higher rates to find it)",
            highlight=False,
        )
    console.print(f"sweep: {out / SWEEP_FILE}, plot: {out / SWEEP_PLOT}", highlight=False)
    return result


def _table(result: dict[str, Any]) -> Table:
    rows = result["rows"]
    lag = any("loop_lag_ms" in r for r in rows)
    table = Table(
        title=f"sweep: {result['nodes']} nodes, {result['duration_s'] or '?'} s per run, "
        f"{result['repeat']} run(s) per rate (medians)"
    )
    columns = ["offered", "finalized tx/s", "p50 ms", "p95 ms", "p99 ms", "overloaded", "lost", "agree"]
    for column in columns + (["loop lag p99 / max ms"] if lag else []):
        table.add_column(column, justify="right")
    for r in rows:
        cells = [
            f"{r['rate']:g}",
            f"{r['finalized_tps']:.0f}" if r["finalized_tps"] is not None else "-",
            *(str(r[k]) for k in ("p50_ms", "p95_ms", "p99_ms", "overloaded", "lost", "nodes_agree")),
        ]
        if lag:
            cells.append(
                f"{r['loop_lag_ms']['p99']} / {r['loop_lag_ms']['max']}" if "loop_lag_ms" in r else "-"
            )
        table.add_row(*cells, style="bold" if r["rate"] == result["knee"] else None)
    return table


def write_sweep_plot(result: dict[str, Any], path: Path) -> None:
    """The saturation plot: finalized against offered tx/s (each run a dot, the medians a line,
    the ideal y = x and the knee's :data:`KNEE_SHARE` dashed); p50/p95/p99 finality against
    offered (log scale, the :data:`KNEE_P99_MS` bound dashed); transactions refused (overloaded)
    and rejected against offered. The knee is a vertical line; the title carries commit, host
    and parameters."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = result["rows"]
    rates = [r["rate"] for r in rows]
    fig, (tps, lat, refused) = plt.subplots(3, 1, figsize=(9, 11), sharex=True)
    top = max(rates, default=1.0)
    tps.plot([0, top], [0, top], "--", color="tab:gray", lw=1, label="offered (ideal)")
    tps.plot(
        [0, top], [0, KNEE_SHARE * top], ":", color="tab:gray", lw=1, label=f"{KNEE_SHARE:.0%} of offered"
    )
    tps.plot(rates, [r["finalized_tps"] for r in rows], "-o", color="tab:green", label="finalized (median)")
    runs = [run for r in rows for run in r["runs"]]
    tps.plot(
        [x["rate"] for x in runs], [x["finalized_tps"] for x in runs], ".", color="k", alpha=0.5, label="runs"
    )
    tps.set_ylabel("finalized tx/s")
    for key, color in (("p50_ms", "tab:blue"), ("p95_ms", "tab:orange"), ("p99_ms", "tab:red")):
        xs = [r["rate"] for r in rows if r[key] is not None]
        lat.plot(
            xs, [r[key] for r in rows if r[key] is not None], "-o", color=color, label=key.removesuffix("_ms")
        )
        pts = [(x["rate"], x[key]) for x in runs if x[key] is not None]
        lat.plot([p[0] for p in pts], [p[1] for p in pts], ".", color=color, alpha=0.4)
    lat.axhline(KNEE_P99_MS, ls="--", color="tab:red", lw=1, label=f"p99 bound {KNEE_P99_MS:g} ms")
    if any(r["p50_ms"] for r in rows):
        lat.set_yscale("log")
    lat.set_ylabel("finality latency (ms)")
    refused.plot(
        rates, [r["overloaded"] for r in rows], "-o", color="tab:purple", label="refused: overloaded"
    )
    refused.plot(
        rates, [r["rejected"] for r in rows], "-x", color="tab:brown", label="rejected (all reasons)"
    )
    refused.plot(rates, [r["lost"] for r in rows], "-s", color="k", label="lost (summed)")
    refused.set_ylabel("transactions per run")
    refused.set_xlabel("offered tx/s")
    for ax in (tps, lat, refused):
        if result["knee"] is not None:
            ax.axvline(result["knee"], color="tab:green", alpha=0.5, lw=2)
        ax.legend(fontsize=8)
    knee = f"knee {result['knee']:g} tx/s" if result["knee"] is not None else "no knee"
    what = (
        f"saturation: {result['nodes']} nodes, {result['duration_s'] or '?'} s per run, "
        f"{result['repeat']} run(s) per rate: {knee}"
    )
    fig.suptitle(plot_title(result.get("meta"), what), fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
