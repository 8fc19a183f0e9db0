"""``timecoin loadtest`` aimed at a running network by RPC URL and a funding key, on one process
and on Locust (issue 15 items 1-3; docs/loadtest.md).

Four ``timecoind`` masternodes (the devnet genesis's Gold masternodes, full mesh on loopback,
2 s slots) run from the test harness: no ``devnet.json`` exists, so the command can only reach
them through what it is given: ``--rpc`` URLs with ``--rpc-cookie`` files, one ``--node`` data
directory, and a ``--funding-key`` file holding three of the genesis accounts' seeds. The command
runs as a subprocess with stdout on a pipe, as in a CI job:

* a run with the default thresholds exits 0 and writes the report with every transaction
  finalized, nothing lost, the nodes agreeing, and its metadata (commit, versions, host CPU
  model and count, parameters without credentials, start time); its log has plain progress
  lines while it runs;
* the same command with ``--min-tps`` and ``--max-p99-ms`` out of reach exits 1, names the
  missed thresholds, and the report lists every threshold with its verdict;
* ``--workers 2`` runs a Locust master and two worker processes: both workers submit, and the
  merged counts (Locust's own CSV stats and the report) equal what node 0's finality feed says
  the nodes finalized during the run, less the run's fan-out; Locust's CSV and HTML reports
  exist;
* ``--sweep 50,100`` steps the offered rate on the same nodes (2 s per run): a report per run,
  each with the nodes' mempool sampled from their ``/metrics`` (``--metrics`` URLs) or JSON-RPC,
  block commits marked, and ``sweep.json`` with the knee, the bounds and the metadata, and the
  saturation plot.
"""

from __future__ import annotations

import csv
import subprocess
import sys

import orjson
import pytest

from timecoin.loadtest.sweep import knee_of
from timecoin.testing.node import (
    TestNode,
    build_devnet_chain,
    default_port_seed,
    masternode_network,
    metrics_port,
    p2p_port,
)
from timecoin.testing.util import scaled

SEED_OFFSET = 55
N = 4
ACCOUNTS = 8
FUNDING = 3
"""Genesis accounts in the funding key file (the others are never spent)."""
RATE = 150.0
DURATION = 2.0
LOAD = int(RATE * DURATION)
LOCUST_PORT_NODE = 7
"""The Locust master's port is a P2P port of the test port block that no node takes (below the
ephemeral range): nodes 0-3 take P2P indexes 0-3 and their metrics servers 11-8."""


@pytest.fixture(scope="module")
def network(tmp_path_factory):
    root = tmp_path_factory.mktemp("loadtest-network")
    chain = build_devnet_chain(root / "chain", 0, 0, accounts=ACCOUNTS)
    seed = default_port_seed() + SEED_OFFSET
    key_file = root / "funding.key"
    key_file.write_text("\n".join(k.hex() for k in chain.account_keys[:FUNDING]) + "\n")
    with masternode_network(chain, N, seed, metrics=True) as nodes:
        for node in nodes:
            node.wait_for_rpc_connection()
        # The fourth node is named by its data directory: its timecoin.conf gives network and port.
        (nodes[3].datadir / "timecoin.conf").write_text(
            f'network = "devnet"\n[devnet]\nrpcport = {nodes[3].rpc_port}\n'
        )
        yield nodes, key_file, seed


def loadtest(nodes, key_file, out, *args, timeout=240.0):
    targets = []
    for node in nodes[:3]:
        targets += [
            "--rpc",
            f"http://127.0.0.1:{node.rpc_port}",
            "--rpc-cookie",
            str(node.datadir / ".cookie"),
        ]
    command = [
        sys.executable,
        "-m",
        "timecoin.cli.main",
        "loadtest",
        *targets,
        "--node",
        str(nodes[3].datadir),
        "--funding-key",
        str(key_file),
        "--rate",
        str(RATE),
        "--duration",
        str(DURATION),
        "--out",
        str(out),
        *args,
    ]
    return subprocess.run(
        command, capture_output=True, text=True, timeout=scaled(timeout), env=TestNode.environment()
    )


def test_loadtest_by_url_and_funding_key(network, tmp_path):
    nodes, key_file, _ = network
    result = loadtest(nodes, key_file, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    report = orjson.loads((tmp_path / "loadtest.json").read_bytes())
    assert report["notes"] == [], report["notes"]
    assert report["nodes"] == N and report["consensus_available"] and report["finality_available"]
    assert report["submitted"] == report["accepted"] == report["finalized"] == LOAD
    assert report["lost"] == 0 and report["nodes_agree"] is True and report["blocks"] >= 1
    assert [t["passed"] for t in report["thresholds"]] == [True, True]  # agreement, nothing lost

    meta = report["meta"]
    assert meta["host"]["cpu_count"] >= 1 and meta["host"]["cpu_model"]
    assert meta["versions"]["timecoin"] and meta["versions"]["timecoin-native"]
    assert meta["started_at"].endswith("+00:00")
    git = meta["git"]
    assert git is None or len(git["commit"]) == 40
    parameters = meta["parameters"]
    assert parameters["rate"] == RATE and parameters["duration_s"] == DURATION
    assert parameters["targets"] == [f"http://127.0.0.1:{n.rpc_port}" for n in nodes]
    assert parameters["funding_keys"] == FUNDING
    assert "__cookie__" not in (tmp_path / "loadtest.json").read_text()  # no credentials

    # Plain progress lines, as a CI log shows them: the phases, then the counts while it runs.
    lines = result.stdout.splitlines()
    assert any(line.startswith("loadtest: pre-signing") for line in lines), result.stdout
    progress = [line for line in lines if line.startswith("loadtest:") and "submitted" in line]
    assert progress and progress[-1].rstrip().endswith(f"finalized {LOAD}/{LOAD}"), result.stdout


def test_missed_thresholds_exit_nonzero(network, tmp_path):
    nodes, key_file, _ = network
    result = loadtest(nodes, key_file, tmp_path, "--min-tps", "1000000", "--max-p99-ms", "0.001")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "threshold missed: min_tps" in result.stdout and "threshold missed: max_p99_ms" in result.stdout
    report = orjson.loads((tmp_path / "loadtest.json").read_bytes())
    assert report["finalized"] == LOAD and report["lost"] == 0  # the run itself was fine
    verdicts = {t["name"]: t["passed"] for t in report["thresholds"]}
    assert verdicts == {"min_tps": False, "max_p99_ms": False, "require_agree": True, "max_lost": True}


def _feed_final(rpc, cursor):
    final = []
    while True:
        page = rpc.getfinalityfeed(cursor, 0)
        if not page["final"] and not page["rejected"]:
            return final, page["cursor"]
        final += page["final"]
        cursor = page["cursor"]


def test_locust_master_and_two_workers(network, tmp_path):
    nodes, key_file, seed = network
    rpc = nodes[0].rpc
    cursor = rpc.getfinalityfeed()["cursor"]
    master_port = p2p_port(LOCUST_PORT_NODE, seed)
    result = loadtest(
        nodes, key_file, tmp_path, "--workers", "2", "--master-port", str(master_port), timeout=300
    )
    assert result.returncode == 0, result.stdout + result.stderr
    report = orjson.loads((tmp_path / "loadtest.json").read_bytes())
    assert report["notes"] == [], report["notes"]
    assert report["meta"]["parameters"]["workers"] == 2 and report["locust"]["exit_status"] == 0

    # What the nodes finalized during the run: node 0's feed since before it, less the fan-out.
    final, _ = _feed_final(rpc, cursor)
    load_final = len(final) - report["fanout"]["accepted"]
    with open(tmp_path / "locust" / "locust_stats.csv", newline="") as f:
        rows = {(r["Type"], r["Name"]): r for r in csv.DictReader(f)}
    locust_final = int(rows[("finality", "final")]["Request Count"])
    assert locust_final == report["finalized"] == load_final == LOAD, (
        locust_final,
        report["finalized"],
        load_final,
    )
    assert report["submitted"] == report["accepted"] == LOAD and report["lost"] == 0
    assert report["nodes_agree"] is True
    assert int(rows[("POST", "/rawtransactions")]["Failure Count"]) == 0
    p = report["finality_ms"]
    assert 0 < p["p50"] <= p["p95"] <= p["p99"] <= p["max"]

    # Both workers took part, on disjoint coins (their final txids do not overlap).
    workers = orjson.loads((tmp_path / "locust" / "results.json").read_bytes())["workers"]
    assert len(workers) == 2 and all(w["accepted"] > 0 for w in workers)
    txids = [{t for t, _, _ in w["final"]} for w in workers]
    assert not txids[0] & txids[1] and len(txids[0]) + len(txids[1]) == LOAD
    assert (tmp_path / "locust" / "locust.html").read_text().lower().startswith("<!doctype html")
    assert not (tmp_path / "locust" / "worker-plan.json").exists()  # credentials and seeds removed


def test_sweep_steps_the_rate_and_reports_the_knee(network, tmp_path):
    nodes, key_file, seed = network
    urls = [a for i in range(3) for a in ("--metrics", f"http://127.0.0.1:{metrics_port(i, seed)}/metrics")]
    result = loadtest(nodes, key_file, tmp_path, "--sweep", "100,50", *urls, timeout=300)
    sweep = orjson.loads((tmp_path / "sweep.json").read_bytes())
    assert result.returncode == (0 if sweep["knee"] is not None else 1), result.stdout + result.stderr
    rates = [r["rate"] for r in sweep["rows"]]
    assert rates in ([50, 100], [50]), rates  # ascending; a step past the knee ends it
    assert sweep["knee"] == knee_of(sweep["rows"]) and "knee:" in result.stdout
    assert sweep["bounds"] == {"min_share": 0.95, "max_p99_ms": 1000.0, "lost": 0, "nodes_agree": True}
    assert sweep["meta"]["parameters"]["rates"] == [50, 100] and sweep["meta"]["parameters"]["nodes"] == N
    for row in sweep["rows"]:
        assert row["repeats"] == 1 and row["lost"] == 0 and row["nodes_agree"] is True, row
        report = orjson.loads((tmp_path / "sweep" / f"{row['rate']:g}-1" / "loadtest.json").read_bytes())
        assert report["rate"] == row["rate"] and report["finalized"] == report["submitted"] == 2 * row["rate"]
        sampled = report["nodes_sampled"]
        assert len(sampled["nodes"]) == N and len(sampled["t_s"]) >= 2
        for node in sampled["nodes"]:
            assert len(node["mempool"]) == len(sampled["t_s"]) and any(v is not None for v in node["mempool"])
        assert sampled["nodes"][3]["cpu_source"] is None and "3" in sampled["cpu_note"]  # no metrics, no pid
        assert (tmp_path / "sweep" / f"{row['rate']:g}-1" / "loadtest.png").exists()
    assert (tmp_path / "sweep.png").read_bytes().startswith(b"\x89PNG")
