"""The e2e fault runner end to end on the CI schedule, ``e2e/manifests/ci.toml`` (DESIGN §12,
§13; docs/e2e.md).

``timecoin.e2e.runner.run_e2e`` starts four real ``timecoind`` masternodes on loopback, each in
its own cgroup, runs the real load test against them for 62 s and, beside it, a seeded schedule
of one SIGKILL and restart, one SIGSTOP/SIGCONT, one 2|2 partition (nftables rules matching the
nodes' cgroups), one node's P2P traffic delayed 150 ± 100 ms through the runner's relay, and one
Byzantine actor holding a masternode's real key (lying statuses, forged decisions, equivocating
proposals and votes, double spends with split votes). Then its history checker reads every node
over RPC.

Asserted: every check passes (one chain, no double spend, no double spend of the actor final
twice, every transaction reported final is final and archived everywhere, liveness back within
the bound after each heal); every fault ran under load, healed and recovered; the delayed node's
connections went through the relay; the partition
really stopped the chain while it lasted (two sides of two: neither holds 2/3); the actor sent
each kind of misbehaviour and settled some double spends; the report and the timeline plot
exist; and the run left no nftables table or cgroup behind.

Skipped, saying why, on a host where partitions cannot be made (not root, no nft, no cgroup v2).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import orjson
import pytest
from rich.console import Console

from timecoin.e2e.manifest import parse_manifest
from timecoin.e2e.perturb import CGROUP_PREFIX, NFT_TABLE_PREFIX, cgroup2_root, partition_support
from timecoin.e2e.runner import run_e2e

MANIFEST = Path(__file__).resolve().parents[2] / "e2e" / "manifests" / "ci.toml"
"""The schedule CI runs (docs/e2e.md)."""


@pytest.fixture(scope="module")
def partitions_supported():
    reason = partition_support(f"probe-{os.getpid()}")
    if reason is not None:
        pytest.skip(f"this host cannot partition: {reason}")


def test_short_manifest_passes_every_check(tmp_path, partitions_supported):
    manifest = parse_manifest(MANIFEST.read_text(), str(MANIFEST))
    assert manifest.duration <= 90
    result = run_e2e(manifest, tmp_path / "run", Console(quiet=True), str(MANIFEST))
    report = result.report
    checks = {c["name"]: c for c in report["checks"]}
    assert set(checks) == {"one-chain", "no-double-spend", "no-conflicting-final", "final-kept", "liveness"}
    failed = {name: c["summary"] for name, c in checks.items() if not c["passed"]}
    assert failed == {}, (failed, report["errors"])
    assert result.passed and report["passed"] is True

    faults = report["faults"]
    assert sorted(f["kind"] for f in faults) == ["byzantine", "delay", "kill", "partition", "pause"]
    for fault in faults:
        assert fault["error"] is None, fault
        assert fault["under_load"], fault
        assert fault["started_at_s"] < fault["healed_at_s"] <= fault["recovered_at_s"], fault
    assert checks["final-kept"]["details"]["reported_final"] > 0
    assert checks["final-kept"]["details"]["lost_count"] == 0

    # While the 2|2 partition lasted no side held 2/3 of the weight: nothing was committed after
    # the cut had taken hold (one block may still complete as the rules go in).
    (partition,) = [f for f in faults if f["kind"] == "partition"]
    line = report["timeline"]
    cut_from, cut_to = partition["started_at_s"] + 1.0, partition["healed_at_s"]
    during = [
        max(h for h in heights if h is not None)
        for t, heights in zip(line["t"], line["heights"], strict=True)
        if cut_from <= t <= cut_to and any(h is not None for h in heights)
    ]
    assert during and max(during) - min(during) <= 1, during

    # The delayed node's links really went through the relay: every peer's, both ways.
    (delay,) = [f for f in faults if f["kind"] == "delay"]
    assert delay["relayed"]["links"] >= manifest.nodes - 1 and delay["relayed"]["bytes"] > 0, delay

    (byzantine,) = [f for f in faults if f["kind"] == "byzantine"]
    sent = byzantine["byzantine"]["sent"]
    for kind in ("lying-status", "forged-decision", "equivocating-vote", "split-tx-vote"):
        assert sent.get(kind, 0) > 0, sent
    assert checks["no-conflicting-final"]["details"]["double_spends"] > 0

    assert result.report_path.exists() and result.plot_path.exists()
    assert result.plot_path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert orjson.loads(result.report_path.read_bytes())["passed"] is True

    # Nothing left behind: no table of this run, no cgroup of this run.
    tables = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True, check=True).stdout
    assert f"{NFT_TABLE_PREFIX}{os.getpid()}" not in tables
    root = cgroup2_root()
    assert root is not None and not (root / f"{CGROUP_PREFIX}{os.getpid()}").exists()
