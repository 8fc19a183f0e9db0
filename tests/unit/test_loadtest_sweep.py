"""The saturation sweep's rules, the report's timeline and the node sampler's readers (issue 15
items 4-5; docs/loadtest.md "Saturation sweep", "Plots").

The sweep is driven here by a function returning load-test reports of chosen figures, to pin the
stepping rules (repeats, stop past the knee, a step within the knee only if every run is); the
functional tests run it on real nodes. The sampler's readers run on this process's own
``/proc`` entry and on a Prometheus registry's real exposition.
"""

from __future__ import annotations

import os

import orjson
import pytest
from prometheus_client import CollectorRegistry, Gauge, ProcessCollector, generate_latest
from rich.console import Console

from timecoin.loadtest.report import plot_title, timeline
from timecoin.loadtest.sampler import CPU_METRIC, MEMPOOL_METRIC, parse_metrics, proc_cpu_seconds
from timecoin.loadtest.sweep import KNEE_P99_MS, knee_of, parse_rates, run_row, run_sweep, step_row


def report(rate: float, tps: float | None = None, p99: float | None = 300.0, lost: int = 0) -> dict:
    return {
        "rate": rate,
        "finalized_tps": rate if tps is None else tps,
        "finality_ms": {"p50": 50.0, "p95": 200.0, "p99": p99, "max": p99},
        "overloaded": 0,
        "rejected": 0,
        "lost": lost,
        "nodes_agree": True,
    }


def test_rates_as_a_list_or_a_range():
    assert parse_rates("300, 100,200,100") == [100, 200, 300]
    assert parse_rates("1000:3000:500") == [1000, 1500, 2000, 2500, 3000]
    assert parse_rates("1000:2900:1000") == [1000, 2000]
    for bad, words in (
        ("fast", "neither"),
        ("100,-5", "positive"),
        ("100:50:10", "START <= STOP"),
        ("100:200:0", "STEP > 0"),
        ("1:1000:1", "more than"),
        ("", "at least one"),
    ):
        with pytest.raises(ValueError, match=words):
            parse_rates(bad)


def test_a_step_is_within_the_knee_only_if_every_run_is():
    good, slow = run_row(report(1000)), run_row(report(1000, p99=KNEE_P99_MS + 1))
    assert good["within_knee"] and not slow["within_knee"]
    step = step_row([good, slow, good])
    assert step["repeats"] == 3 and not step["within_knee"]
    assert step["p99_ms"] == 300.0  # the median run's figure
    assert [r["p99_ms"] for r in step["runs"]] == [300.0, KNEE_P99_MS + 1, 300.0]
    assert step_row([good, good])["within_knee"]
    assert not run_row(report(1000, tps=940))["within_knee"]  # below 95 % finalized
    assert not run_row(report(1000, lost=1))["within_knee"]
    assert not run_row(report(1000, p99=None))["within_knee"]  # nothing finalized


def test_the_knee_is_the_last_passing_step_before_the_first_failing_one():
    rows = [step_row([run_row(report(r, p99=p))]) for r, p in ((100, 10), (200, 2000), (300, 10))]
    assert knee_of(rows) == 100  # 300 passing after 200 failed is past the knee all the same
    assert knee_of(rows[1:]) is None


def test_sweep_repeats_each_rate_and_stops_past_the_knee(tmp_path):
    calls: list[tuple[float, int]] = []

    def run(rate: float, k: int) -> dict:
        calls.append((rate, k))
        return report(rate, p99=400.0 if rate <= 200 else 1500.0)

    result = run_sweep(
        [100, 200, 300, 400],
        2,
        run,
        tmp_path,
        Console(file=open(os.devnull, "w")),
        {"nodes": 4, "duration_s": 5},
    )
    assert calls == [(100, 0), (100, 1), (200, 0), (200, 1), (300, 0), (300, 1)]  # 400 never run
    assert result["knee"] == 200 and result["stopped_at"] == 300 and not result["knee_is_lower_bound"]
    assert [r["rate"] for r in result["rows"]] == [100, 200, 300]
    assert [r["repeats"] for r in result["rows"]] == [2, 2, 2]
    saved = orjson.loads((tmp_path / "sweep.json").read_bytes())
    assert saved["knee"] == 200 and saved["meta"]["parameters"]["repeat"] == 2
    assert saved["meta"]["parameters"]["rates"] == [100, 200, 300, 400]
    assert (tmp_path / "sweep.png").read_bytes().startswith(b"\x89PNG")


def test_sweep_interrupted_keeps_the_steps_done(tmp_path):
    def run(rate: float, k: int) -> dict:
        if rate > 100:
            raise KeyboardInterrupt
        return report(rate)

    result = run_sweep(
        [100, 200], 1, run, tmp_path, Console(file=open(os.devnull, "w")), {"nodes": 1, "duration_s": 1}
    )
    assert result["interrupted"] and result["knee"] == 100 and result["stopped_at"] is None
    assert result["knee_is_lower_bound"]  # nothing past it was run


def test_a_sweep_that_never_passes_the_knee_says_its_knee_is_a_lower_bound(tmp_path):
    result = run_sweep(
        [100, 200],
        1,
        lambda rate, k: report(rate),
        tmp_path,
        Console(file=open(os.devnull, "w")),
        {"nodes": 1},
    )
    assert result["knee"] == 200 and result["stopped_at"] is None and result["knee_is_lower_bound"]


def test_latency_is_binned_by_submission_second_and_the_last_second_is_partial():
    start = 100.0
    # a sent at 0.2 s, final 0.3 s later; b sent at 0.5 s, final at 2.4 s (a backlog): both are
    # latencies of second 0 (submitted then), though b became final in second 2.
    sent = {"a": 100.2, "b": 100.5, "c": 101.1}
    final_at = {"a": 100.5, "b": 102.4, "c": 101.2}
    final = {t: final_at[t] - sent[t] for t in sent}
    line = timeline(start, sent, final, final_at)
    assert line["second"] == [0, 1, 2]
    assert line["finalized"] == [1, 1, 1]
    assert line["p99_ms"][0] == pytest.approx(1900.0) and line["p50_ms"][0] == pytest.approx(300.0)
    assert line["p50_ms"][1] == pytest.approx(100.0) and line["p50_ms"][2] is None
    assert line["last_second_s"] == pytest.approx(0.4)
    assert timeline(start, {}, {}, {})["last_second_s"] is None


def test_metrics_and_proc_readers():
    registry = CollectorRegistry()
    ProcessCollector(registry=registry)
    Gauge(MEMPOOL_METRIC.removeprefix("timecoin_"), "pending", namespace="timecoin", registry=registry).set(
        42
    )
    values = parse_metrics(generate_latest(registry).decode())
    assert values[MEMPOOL_METRIC] == 42 and values[CPU_METRIC] > 0
    with pytest.raises(ValueError):
        parse_metrics("this is { not the exposition format")
    mine = proc_cpu_seconds(os.getpid())
    assert mine is not None and mine > 0
    sum(i * i for i in range(300_000))  # some CPU
    assert proc_cpu_seconds(os.getpid()) >= mine
    assert proc_cpu_seconds(2**22 + 12345) is None  # above pid_max: no such process


def test_plot_titles_carry_commit_host_and_parameters():
    meta = {
        "git": {"commit": "0123456789abcdef" * 2 + "01234567", "dirty": True},
        "host": {"name": "box", "cpu_model": "AMD EPYC", "cpu_count": 2},
        "started_at": "2026-12-06T10:00:00+00:00",
    }
    title = plot_title(meta, "4 nodes, offered 3000 tx/s")
    assert "4 nodes, offered 3000 tx/s" in title and "commit 0123456789+dirty" in title
    assert "box, AMD EPYC x2" in title and "2026-12-06T10:00:00" in title
    assert "commit unknown" in plot_title({}, "x")
