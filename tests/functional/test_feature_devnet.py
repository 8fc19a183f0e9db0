"""``timecoin devnet`` and its load test, end to end (DESIGN §10, §11).

The command runs as a subprocess, as an operator would run it: four masternode ``timecoind``
processes on deterministic loopback ports (one test port seed block). A short ``--duration`` run
must start them, show the table, stop them cleanly (exit 0 each) and leave no process behind.
A ``--load`` run must write a report with every field and a plot, submit transactions and end
with every node on one tip and one UTXO set hash. Finality assertions apply only when the
nodes serve consensus (``getconsensusinfo``); the report says which.
"""

from __future__ import annotations

import os
import subprocess
import sys

import orjson
import pytest

from timecoin.loadtest.sweep import knee_of
from timecoin.testing.node import TestNode, default_port_seed, p2p_port
from timecoin.testing.util import scaled

SEED_OFFSET = 33
NODES = 4
REPORT_FIELDS = (
    "finalized_tps",
    "submitted",
    "accepted",
    "finalized",
    "rejected",
    "finality_ms",
    "blocks",
    "duration_s",
    "nodes_agree",
    "tips",
    "generator",
    "fanout",
    "timeline",
    "lost",
)


def run_devnet(workdir, *args, timeout=120.0):
    command = [
        sys.executable,
        "-m",
        "timecoin.cli.main",
        "devnet",
        "--nodes",
        str(NODES),
        "--accounts",
        "8",
        "--workdir",
        str(workdir),
        "--base-port",
        str(p2p_port(0, default_port_seed() + SEED_OFFSET)),
        *args,
    ]
    return subprocess.run(
        command, capture_output=True, text=True, timeout=scaled(timeout), env=TestNode.environment()
    )


def assert_all_stopped(workdir):
    manifest = orjson.loads((workdir / "devnet.json").read_bytes())
    assert len(manifest["nodes"]) == NODES
    for node in manifest["nodes"]:
        with pytest.raises(ProcessLookupError):
            os.kill(node["pid"], 0)
        log = (workdir / f"node{node['index']}" / "stderr.log").read_text()
        assert "node ready" in log and log.rstrip().endswith("stopped")


def test_devnet_starts_and_stops_cleanly(tmp_path):
    result = run_devnet(tmp_path, "--duration", "2")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "exit statuses 0, 0, 0, 0" in result.stdout
    assert "masternodes" in result.stdout and "height" in result.stdout
    assert_all_stopped(tmp_path)
    for i in range(NODES):
        key = tmp_path / "keys" / f"mn{i}.key"
        assert len(bytes.fromhex(key.read_text())) == 32 and key.stat().st_mode & 0o077 == 0


def test_devnet_load_report(tmp_path):
    workdir = tmp_path
    result = run_devnet(workdir, "--load", "--duration", "2", "--rate", "300", timeout=180)
    assert result.returncode == 0, result.stdout + result.stderr
    assert_all_stopped(workdir)
    report = orjson.loads((workdir / "loadtest" / "loadtest.json").read_bytes())
    assert (workdir / "loadtest" / "loadtest.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    for field in REPORT_FIELDS:
        assert field in report, field
    assert set(report["finality_ms"]) >= {"p50", "p95", "p99"}
    assert report["nodes_agree"] is True
    assert len({(t["tip"], t["utxosethash"]) for t in report["tips"]}) == 1 and len(report["tips"]) == NODES
    assert report["fanout"]["submitted"] > 0 and report["fanout"]["accepted"] == report["fanout"]["submitted"]
    assert report["generator"]["tps"] > 0
    if not report["consensus_available"]:
        # No block production: the fan-out cannot commit, so the load phase cannot run.
        assert report["submitted"] == 0 and report["notes"]
        return
    assert report["submitted"] == 600 and report["accepted"] == 600, report["notes"]
    assert report["blocks"] >= 1
    if report["finality_available"]:
        assert report["finalized"] == 600 and report["rejected"] == 0
        # No lost transaction: every one reported final is final on every node.
        assert report["lost"] == 0 and report["feed_missed"] == 0
        p = report["finality_ms"]
        assert 0 < p["p50"] <= p["p95"] <= p["p99"]
        assert report["finalized_tps"] > 0
        assert sum(report["timeline"]["finalized"]) == 600

    # The same command again on the same working directory (the devnet and its chains are
    # reused): the load spends what the accounts hold now, not the spent genesis allocations.
    again = run_devnet(workdir, "--load", "--duration", "1", "--rate", "200", timeout=180)
    assert again.returncode == 0, again.stdout + again.stderr
    second = orjson.loads((workdir / "loadtest" / "loadtest.json").read_bytes())
    assert second["notes"] == [] and second["fanout"]["submitted"] == 0  # enough coins already
    assert second["submitted"] == second["finalized"] == 200 and second["lost"] == 0
    assert second["nodes_agree"] is True and second["tips"][0]["height"] >= report["tips"][0]["height"]


def test_devnet_load_sweep(tmp_path):
    """``--load --sweep``: a fresh devnet per run, a row per rate (stopping past the knee), the
    knee, ``sweep.json`` with its metadata, the saturation plot; each run's report has the
    nodes' height, mempool and CPU samples (CPU from /metrics or the nodes' /proc entries)."""
    # 5 s of load per rate: at 2 s block slots every run spans block commits to sample.
    result = run_devnet(tmp_path, "--load", "--sweep", "150,50", "--duration", "5", timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    sweep = orjson.loads((tmp_path / "sweep.json").read_bytes())
    rates = [r["rate"] for r in sweep["rows"]]
    assert rates in ([50, 150], [50])  # sorted; a step past the knee ends the sweep
    assert sweep["stopped_at"] == (
        None if rates == [50, 150] and sweep["rows"][1]["within_knee"] else rates[-1]
    )
    for row in sweep["rows"]:
        assert row["lost"] == 0 and row["nodes_agree"] is True, row
        assert 0 < row["p50_ms"] <= row["p95_ms"] <= row["p99_ms"], row
        assert 0 <= row["loop_lag_ms"]["p99"] <= row["loop_lag_ms"]["max"], row
        assert row["repeats"] == 1 and len(row["runs"]) == 1
        run_dir = tmp_path / f"sweep-{row['rate']:g}"
        report = orjson.loads((run_dir / "loadtest" / "loadtest.json").read_bytes())
        sampled = report["nodes_sampled"]
        assert len(sampled["nodes"]) == NODES and sampled["t_s"]
        assert all(n["cpu_source"] in ("metrics", "proc") for n in sampled["nodes"]), sampled["cpu_note"]
        assert any(v is not None and v > 0 for n in sampled["nodes"] for v in n["cpu_percent"])
        assert len(sampled["block_commits_s"]) >= 1
        assert report["timeline"]["last_second_s"] is not None
        assert_all_stopped(run_dir)
    assert sweep["knee"] in (None, 50, 150)
    assert sweep["knee"] == knee_of(sweep["rows"])
    assert sweep["meta"]["parameters"]["rates"] == [50, 150] and sweep["meta"]["host"]["cpu_count"]
    assert (tmp_path / "sweep.png").read_bytes().startswith(b"\x89PNG")
    assert "knee:" in result.stdout


def test_sweep_knee_needs_every_bound():
    from timecoin.cli.devnet import sweep_row

    good = {
        "rate": 1000.0,
        "finalized_tps": 990.0,
        "finality_ms": {"p50": 80.0, "p95": 400.0, "p99": 700.0},
        "overloaded": 0,
        "lost": 0,
        "nodes_agree": True,
    }
    assert sweep_row(good)["within_knee"]
    for change in (
        {"finalized_tps": 900.0},  # below 95 % of the offered rate (refused as overloaded)
        {"finality_ms": {"p50": 80.0, "p95": 400.0, "p99": 1000.0}},
        {"lost": 1},
        {"nodes_agree": False},
        {"finality_ms": {"p50": None, "p95": None, "p99": None}},
    ):
        assert not sweep_row({**good, **change})["within_knee"], change
