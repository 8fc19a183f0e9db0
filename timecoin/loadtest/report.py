"""The load test's report: a JSON document and a PNG plot, from what the submitter, the follower
and the sampler (:mod:`.sampler`) recorded (docs/loadtest.md "Plots").

Fields (DESIGN §11): ``finalized_tps`` (finalized transactions over the seconds from the first
send to the last finality), ``submitted``, ``accepted``, ``finalized``, ``rejected`` (mempool
and finality rejections), ``reject_reasons``, ``finality_ms`` (``p50``, ``p95``, ``p99``,
``max``; null when nothing was finalized), ``blocks`` (committed during the run),
``duration_s``, ``nodes_agree`` (same tip hash and UTXO set hash everywhere at the end),
``finality_available`` (whether the nodes serve ``gettransactionfinality``), plus the generator's
own rate, a per-second ``timeline`` and, when sampled, ``nodes_sampled``. This module reads no node.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import orjson

__all__ = ["percentile", "plot_title", "timeline", "write_plot", "write_report"]


def percentile(sorted_values: list[float], p: float) -> float | None:
    """Nearest-rank percentile ``p`` (0..100) of ascending values; None if there are none."""
    if not sorted_values:
        return None
    rank = max(1, math.ceil(p / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


def timeline(
    start: float, sent_at: dict[str, float], final: dict[str, float], final_at: dict[str, float]
) -> dict[str, Any]:
    """Per second since ``start`` (the first send, on the clock of ``sent_at``/``final_at``):
    ``finalized``, the transactions that became final in that second (throughput), and
    ``p50_ms``/``p95_ms``/``p99_ms``, the finality latency (ms) of the transactions *submitted*
    in that second (what a transaction sent then went through: a backlog shows at the second
    that built it, not when it drains). ``last_second_s``: how much of the last second the run
    covered (its bucket is partial: plots mark it instead of drawing it as a collapse); null
    when nothing was finalized."""
    if not final_at:
        return {
            "second": [],
            "finalized": [],
            "p50_ms": [],
            "p95_ms": [],
            "p99_ms": [],
            "last_second_s": None,
        }
    last = max(max(final_at.values()), max((sent_at[t] for t in final if t in sent_at), default=start))
    seconds = int(last - start) + 1
    done = [0] * seconds
    by_sent: list[list[float]] = [[] for _ in range(seconds)]
    for txid, at in final_at.items():
        done[max(0, int(at - start))] += 1
        sent = sent_at.get(txid, at - final[txid])
        by_sent[min(seconds - 1, max(0, int(sent - start)))].append(final[txid] * 1000)
    for b in by_sent:
        b.sort()
    return {
        "second": list(range(seconds)),
        "finalized": done,
        "p50_ms": [percentile(b, 50) for b in by_sent],
        "p95_ms": [percentile(b, 95) for b in by_sent],
        "p99_ms": [percentile(b, 99) for b in by_sent],
        "last_second_s": round(last - start - (seconds - 1), 3),
    }


def write_report(report: dict[str, Any], path: Path) -> None:
    """Writes the report as indented JSON."""
    path.write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS))


def plot_title(meta: dict[str, Any] | None, what: str) -> str:
    """The title lines every plot carries: ``what`` (the run's parameters and result), the commit
    under test (``+dirty`` for local changes) and the host (name, CPU model and count), from the
    report's ``meta`` (:mod:`.metadata`); "unknown" for what it does not know."""
    meta = meta or {}
    git = meta.get("git") or {}
    commit = (git.get("commit") or "unknown")[:10] + ("+dirty" if git.get("dirty") else "")
    host = meta.get("host") or {}
    cpu = f"{host.get('cpu_model') or 'unknown CPU'} x{host.get('cpu_count') or '?'}"
    name = host.get("name") or "unknown host"
    return f"{what}\ncommit {commit} · {name}, {cpu} · {meta.get('started_at', '')}"


def _parameters(report: dict[str, Any]) -> str:
    p = (report.get("meta") or {}).get("parameters") or {}
    workers = p.get("workers") or 0
    return (
        f"{report['nodes']} nodes, offered {report['rate']:g} tx/s for {p.get('duration_s', '?')} s, "
        f"batch {p.get('batch', '?')}, " + (f"{workers} Locust workers" if workers else "one process")
    )


def write_plot(report: dict[str, Any], path: Path) -> None:
    """Four panels over seconds since the first send (docs/loadtest.md "Plots"): submitted and
    finalized per second with the block commits marked; finality p50/p95/p99 by submission
    second; each node's mempool size; each node's CPU (or why it is not drawn). The last,
    partial second is drawn apart (hollow markers, "partial"), never as part of the line. The
    title carries the commit, host and parameters (:func:`plot_title`)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    line = report["timeline"]
    sampled = report.get("nodes_sampled") or {"t_s": [], "nodes": [], "block_commits_s": []}
    fig, (tps, lat, pool, cpu) = plt.subplots(4, 1, figsize=(10, 12), sharex=True)
    partial = (line.get("last_second_s") or 1.0) < 1.0
    sent = report.get("submitted_per_second", [])
    planned = ((report.get("meta") or {}).get("parameters") or {}).get("duration_s") or report["duration_s"]
    sent_partial = len(sent) > planned  # the last second runs past the planned end: part of a second
    for name, ys, cut, color in (
        ("submitted", sent, sent_partial, "tab:gray"),
        ("finalized", line["finalized"], partial, "tab:green"),
    ):
        full = ys[:-1] if cut else ys
        if full:
            tps.stairs(
                full, range(len(full) + 1), baseline=None, label=f"{name} (per second)", color=color, lw=1.5
            )
        if cut and ys:
            tps.plot(
                [len(ys) - 0.5], ys[-1:], "o", mfc="none", color=color, label=f"{name}: last, partial second"
            )
    for k, at in enumerate(sampled["block_commits_s"]):
        tps.axvline(at, color="tab:purple", alpha=0.35, lw=1, label="block committed" if k == 0 else None)
    tps.set_ylabel("transactions / s")
    tps.set_title(
        f"finalized {report['finalized_tps']:.0f} tx/s, p99 {report['finality_ms'].get('p99')} ms, "
        f"{report.get('blocks')} blocks, lost {report.get('lost')}",
        fontsize=10,
    )
    tps.legend(fontsize=8, loc="upper right")
    for key, color in (("p50_ms", "tab:blue"), ("p95_ms", "tab:orange"), ("p99_ms", "tab:red")):
        xs = [s + 0.5 for s, v in zip(line["second"], line[key], strict=True) if v is not None]
        ys = [v for v in line[key] if v is not None]
        lat.plot(xs, ys, label=key.removesuffix("_ms"), color=color, marker=".")
    lat.set_ylabel("finality latency (ms)\nby second submitted")
    if not line["second"]:
        lat.text(0.5, 0.5, "no transaction finalized", ha="center", transform=lat.transAxes)
    else:
        lat.legend(fontsize=8)
    t = sampled["t_s"]
    for i, node in enumerate(sampled["nodes"]):
        pool.plot(t, [v if v is not None else float("nan") for v in node["mempool"]], label=f"node {i}")
    pool.set_ylabel("mempool (transactions)")
    if sampled["nodes"]:
        pool.legend(fontsize=8)
    else:
        pool.text(0.5, 0.5, "nodes not sampled", ha="center", transform=pool.transAxes)
    drawn = [i for i, n in enumerate(sampled["nodes"]) if n["cpu_source"] is not None]
    for i in drawn:
        node = sampled["nodes"][i]
        cpu.plot(t, [v if v is not None else float("nan") for v in node["cpu_percent"]], label=f"node {i}")
    cpu.set_ylabel("CPU (% of one core)")
    if drawn:
        cpu.legend(fontsize=8)
    if len(drawn) < len(sampled["nodes"]) or not sampled["nodes"]:
        cpu.text(
            0.5,
            0.5,
            "CPU not available for nodes "
            + ", ".join(str(i) for i, n in enumerate(sampled["nodes"]) if n["cpu_source"] is None)
            + " (no process_cpu_seconds_total in /metrics, no local pid)"
            if sampled["nodes"]
            else "nodes not sampled",
            ha="center",
            transform=cpu.transAxes,
            fontsize=9,
        )
    cpu.set_xlabel("seconds since the first submission")
    fig.suptitle(plot_title(report.get("meta"), _parameters(report)), fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
