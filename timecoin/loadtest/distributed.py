"""The load test on Locust's distributed mode, driven from ``timecoin loadtest --workers N``
(issue 15 item 2; DESIGN §13 "Many machines"; docs/loadtest.md). Locust coordinates the run;
this module only prepares it, starts the processes and reads what they leave:

1. set-up and fan-out as in the single-process run (:func:`.runner.prepare`), in this process;
2. the fan-out's coins go to a file, and a plan for the master (:mod:`.plan`); a ``locust
   --master --headless`` process starts with ``--csv`` and ``--html`` reports, and N ``locust
   --worker`` processes on this machine (more may join from other machines: ``timecoin loadtest
   --worker --master-host``, :func:`run_worker`); the master hands each worker its coins and
   they sign before the clock starts (:mod:`.locustfile`);
3. when the master exits, its merged results give the final transactions of every worker;
   the settle checks run as in the single-process run (:func:`.runner.verify`) and the report
   is written with the same fields, finality percentiles from Locust's merged stats.

This process never imports Locust (which monkey-patches with gevent on import): the Locust
processes are children, each in its own session, ended when the run ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import importlib.util
import math
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import orjson
from rich.console import Console

from timecoin.ledger.genesis import GenesisConfig
from timecoin.loadtest.metadata import run_metadata
from timecoin.loadtest.plan import (
    FINAL,
    FINALITY,
    PLAN_OPTION,
    MasterPlan,
    WorkerPlan,
    encode_coins,
    write_plan,
)
from timecoin.loadtest.progress import PROGRESS_INTERVAL, phase
from timecoin.loadtest.report import timeline, write_plot, write_report
from timecoin.loadtest.runner import Preparation, Verification, common_fields, prepare, verify
from timecoin.loadtest.sampler import NodeProbe, Sampler
from timecoin.loadtest.submitter import AsyncRPC, Endpoint
from timecoin.loadtest.targets import Funding

__all__ = ["DistributedConfig", "locustfile_path", "merge_results", "run_distributed", "run_worker"]

LOCUST_DIR = "locust"
"""Subdirectory of the report directory with Locust's reports, logs and the plans."""
CSV_PREFIX = "locust"
"""Locust's ``--csv`` prefix: ``locust_stats.csv``, ``locust_failures.csv``, ... ."""
HTML_REPORT = "locust.html"
SETUP_MARGIN = 900.0
"""Seconds, beyond the load and the drain, the Locust master may take to start its workers, hand
out the coins and let them sign, and to finish (generous: a worker signs ~30k tx/s per core)."""
RUN_TIME_MARGIN = 120.0
"""Seconds past the load and the drain after which Locust's own ``--run-time`` stops the master
(a safety net: it normally quits as soon as every worker's results are in)."""
LISTEN_TIMEOUT = 60.0
"""Seconds the Locust master gets to start listening for workers."""
STOP_TIMEOUT = 20.0
"""Seconds the local workers get to exit after the master before SIGTERM, then SIGKILL."""


def locustfile_path() -> Path:
    """The path of :mod:`.locustfile`, found without importing it."""
    spec = importlib.util.find_spec("timecoin.loadtest.locustfile")
    if spec is None or spec.origin is None:
        raise RuntimeError("timecoin.loadtest.locustfile is not installed")
    return Path(spec.origin)


def _locust(*args: str) -> list[str]:
    return [sys.executable, "-m", "locust", "-f", str(locustfile_path()), *args]


@dataclass(frozen=True, slots=True)
class DistributedConfig:
    """A distributed run: what :class:`.runner.LoadTestConfig` says, plus ``workers`` local
    worker processes, ``expect_workers`` in all (local and remote), and where the master listens."""

    genesis: GenesisConfig | None
    account_keys: list[bytes]
    endpoints: list[Endpoint]
    rate: float
    duration: float
    out_dir: Path
    batch_size: int
    max_fanout: int
    drain_timeout: float
    workers: int
    expect_workers: int
    master_bind_host: str = "127.0.0.1"
    master_port: int = 5557
    probes: list[NodeProbe] = field(default_factory=list)
    """Where each node's ``/metrics`` and process are (:mod:`.sampler`), in endpoint order."""


def _start(args: list[str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            args, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )


def _stop(processes: list[subprocess.Popen[bytes]]) -> None:
    """SIGTERM to those still running, up to :data:`STOP_TIMEOUT` s, SIGKILL the rest."""
    deadline = time.monotonic() + STOP_TIMEOUT
    for p in processes:
        if p.poll() is None:
            try:
                p.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.send_signal(signal.SIGTERM)
    for p in processes:
        try:
            p.wait(5.0)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def locust_stats(prefix: Path) -> dict[tuple[str, str], dict[str, str]]:
    """Locust's merged stats (``<prefix>_stats.csv``) by (type, name); empty if not written."""
    try:
        with open(f"{prefix}_stats.csv", newline="") as f:
            return {(row["Type"], row["Name"]): row for row in csv.DictReader(f)}
    except OSError:
        return {}


def _ms(row: dict[str, str] | None, column: str) -> float | None:
    if row is None or int(row.get("Request Count") or 0) == 0:
        return None
    value = row.get(column)
    return None if value in (None, "", "N/A") else float(value)


async def _watch(
    master: subprocess.Popen[bytes],
    workers: list[subprocess.Popen[bytes]],
    prefix: Path,
    console: Console,
    timeout: float,
) -> int | None:
    """Waits for the master to exit, printing a progress line from its CSV stats every
    :data:`PROGRESS_INTERVAL` seconds; None after ``timeout`` s or when a local worker failed
    (the master would wait for it in vain)."""
    started = time.monotonic()
    while master.poll() is None:
        if time.monotonic() - started > timeout:
            return None
        if any(w.poll() not in (None, 0) for w in workers):
            return None
        await asyncio.sleep(PROGRESS_INTERVAL)
        stats = locust_stats(prefix)
        final = stats.get((FINALITY, FINAL))
        posts = sum(int(r["Request Count"]) for (kind, _), r in stats.items() if kind == "POST")
        if stats:
            console.print(
                f"loadtest: {time.monotonic() - started:6.1f} s  locust: {posts} batches posted, "
                f"{final['Request Count'] if final else 0} finalized (p99 {_ms(final, '99%')} ms)",
                highlight=False,
            )
        else:
            console.print(
                f"loadtest: {time.monotonic() - started:6.1f} s  locust: workers preparing", highlight=False
            )
    return master.returncode


async def _listening(master: subprocess.Popen[bytes], host: str, port: int) -> bool:
    """Waits until the master accepts connections on ``port`` (workers start after it: a worker
    dialing a port nobody listens on yet may take it for its own end, RFC 793's simultaneous
    open) for up to :data:`LISTEN_TIMEOUT` s; False if it exits or does not listen in time."""
    deadline = time.monotonic() + LISTEN_TIMEOUT
    while master.poll() is None and time.monotonic() < deadline:
        try:
            _, writer = await asyncio.open_connection(host, port)
        except OSError:
            await asyncio.sleep(0.2)
            continue
        writer.close()
        return True
    return False


_COUNTS = ("submitted", "accepted", "overloaded", "finality_rejected", "feed_missed", "feed_restarts")


def _well_formed(w: object) -> bool:
    """Whether a worker's results have the shape :meth:`.locustfile._Worker.results` gives (the
    master's port is unauthenticated: what arrives there is checked before it is counted)."""
    if not isinstance(w, dict):
        return False
    try:
        return (
            all(isinstance(w[k], int) and w[k] >= 0 for k in _COUNTS)
            and all(
                isinstance(t, str) and isinstance(lat, float | int) and isinstance(at, float | int)
                for t, lat, at in w["final"]
            )
            and all(isinstance(r, str) and isinstance(n, int) for r, n in w["reject_reasons"].items())
            and all(isinstance(n, int) for n in w["sent_per_second"].values())
            and all(int(sec) >= 0 for sec in w["sent_per_second"])
            and all(isinstance(w[k], float | int | None) for k in ("first_send", "last_send"))
            and isinstance(w["errors"], list)
            and all(isinstance(w["generator"][k], float | int) for k in ("transactions", "seconds"))
            and isinstance(w["presign_s"], float | int)
        )
    except (KeyError, TypeError, ValueError, AttributeError):
        return False


def merge_results(workers: list[Any]) -> dict[str, Any]:
    """The workers' results added up; malformed or missing ones are counted (``missing``)."""
    missing = sum(not _well_formed(w) for w in workers)
    workers = [w for w in workers if _well_formed(w)]
    merged: dict[str, Any] = {
        "final": {},
        "final_at": {},
        "submitted": 0,
        "accepted": 0,
        "overloaded": 0,
        "finality_rejected": 0,
        "reject_reasons": {},
        "errors": [],
        "feed_missed": 0,
        "feed_restarts": 0,
        "sent_per_second": {},
        "first_send": None,
        "last_send": None,
        "generator": {"transactions": 0, "seconds": 0.0},
        "presign_s": 0.0,
        "missing": missing,
    }
    for w in workers:
        for txid, latency, at in w["final"]:
            merged["final"][txid] = latency
            merged["final_at"][txid] = at
        for key in _COUNTS:
            merged[key] += w[key]
        for reason, n in w["reject_reasons"].items():
            merged["reject_reasons"][reason] = merged["reject_reasons"].get(reason, 0) + n
        for second, n in w["sent_per_second"].items():
            merged["sent_per_second"][int(second)] = merged["sent_per_second"].get(int(second), 0) + n
        merged["errors"] += w["errors"]
        if w["last_send"] is not None:
            merged["last_send"] = max(w["last_send"], merged["last_send"] or w["last_send"])
        if w["first_send"] is not None:
            merged["first_send"] = min(w["first_send"], merged["first_send"] or w["first_send"])
        merged["generator"]["transactions"] += w["generator"]["transactions"]
        merged["generator"]["seconds"] = max(merged["generator"]["seconds"], w["generator"]["seconds"])
        # workers sign at once, on their own cores: together, their rate is the sum / the longest
        merged["presign_s"] = max(merged["presign_s"], w["presign_s"])
    return merged


async def run_distributed(config: DistributedConfig, console: Console) -> dict[str, Any]:
    """Runs the test on Locust; returns the report (also written to ``out_dir/loadtest.json``,
    ``loadtest.png``; Locust's CSV and HTML reports in ``out_dir/locust/``)."""
    if config.rate <= 0 or config.duration <= 0:
        raise ValueError("rate and duration must be positive")
    meta = run_metadata(
        {
            "rate": config.rate,
            "duration_s": config.duration,
            "batch": config.batch_size,
            "max_fanout": config.max_fanout,
            "drain_timeout_s": config.drain_timeout,
            "targets": [e.url for e in config.endpoints],
            "funding_keys": len(config.account_keys),
            "workers": config.workers,
            "expect_workers": config.expect_workers,
            "engine": "locust",
        }
    )
    total = math.ceil(config.rate * config.duration)
    locust_dir = config.out_dir / LOCUST_DIR
    locust_dir.mkdir(parents=True, exist_ok=True)
    prefix = locust_dir / CSV_PREFIX
    for stale in locust_dir.glob(f"{CSV_PREFIX}_*.csv"):
        stale.unlink()
    results_file = locust_dir / "results.json"
    results_file.unlink(missing_ok=True)
    async with aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=64), timeout=aiohttp.ClientTimeout(total=120)
    ) as session:
        nodes = [AsyncRPC(session, e) for e in config.endpoints]
        prep = await prepare(
            nodes, config.genesis, config.account_keys, total, config.batch_size, config.max_fanout, console
        )
        merged = merge_results([])
        sampler = Sampler(session, nodes, config.probes, clock=time.time)  # workers' times are wall-clock
        exit_status: int | None = None
        if prep.load_ready and prep.generator is not None and prep.params is not None:
            if not prep.finality:
                prep.notes.append("Locust workers need the finality feed: the load phase did not run")
            else:
                sampling = asyncio.create_task(sampler.run())
                try:
                    exit_status = await _run_locust(
                        config, prep, total, locust_dir, prefix, results_file, console
                    )
                finally:
                    sampling.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await sampling
                if results_file.exists():
                    doc = orjson.loads(results_file.read_bytes())
                    merged = merge_results(doc.get("workers", []) if isinstance(doc, dict) else [])
                    if merged["missing"]:
                        prep.notes.append(f"{merged['missing']} workers sent no (well-formed) results")
                else:
                    prep.notes.append(f"the Locust master wrote no results (exit status {exit_status})")
        checked = await verify(nodes, list(merged["final"]), prep, prep.finality, console)
    report = _report(config, meta, prep, checked, merged, prefix, exit_status)
    report["nodes_sampled"] = sampler.result(float(int(merged["first_send"] or 0)))
    write_report(report, config.out_dir / "loadtest.json")
    write_plot(report, config.out_dir / "loadtest.png")
    return report


async def _run_locust(
    config: DistributedConfig,
    prep: Preparation,
    total: int,
    locust_dir: Path,
    prefix: Path,
    results_file: Path,
    console: Console,
) -> int | None:
    """Writes the plans and the coins, runs the master and the local workers, waits for the
    master; its exit status (None if it had to be stopped)."""
    assert prep.generator is not None and prep.params is not None and prep.chain_id is not None
    coins_file = locust_dir / "coins.bin"
    coins_file.write_bytes(encode_coins(prep.generator.coins[:total]))
    master_plan, worker_plan = locust_dir / "master-plan.json", locust_dir / "worker-plan.json"
    write_plan(
        master_plan,
        MasterPlan(
            coins_file,
            config.rate,
            config.duration,
            config.drain_timeout,
            prep.params.name,
            prep.chain_id.hex(),
            config.batch_size,
            results_file,
            config.expect_workers,
        ),
    )
    write_plan(worker_plan, WorkerPlan(config.endpoints, config.account_keys))
    users = config.expect_workers * len(config.endpoints)
    run_time = math.ceil(config.duration + config.drain_timeout + RUN_TIME_MARGIN)
    phase(
        console,
        f"locust: master and {config.workers} local workers ({config.expect_workers} expected), "
        f"{users} users, {config.rate:g} tx/s for {config.duration:g} s",
    )
    processes: list[subprocess.Popen[bytes]] = []
    try:
        master = _start(
            _locust(
                "--master",
                "--headless",
                "--expect-workers",
                str(config.expect_workers),
                "--master-bind-host",
                config.master_bind_host,
                "--master-bind-port",
                str(config.master_port),
                "-u",
                str(users),
                "-r",
                str(users),
                "--run-time",
                f"{run_time}s",
                "--csv",
                str(prefix),
                "--html",
                str(locust_dir / HTML_REPORT),
                "--only-summary",
                "--exit-code-on-error",  # refusals are results: the thresholds judge the run
                "0",
                PLAN_OPTION,
                str(master_plan),
            ),
            locust_dir / "master.log",
        )
        processes.append(master)
        connect = "127.0.0.1" if config.master_bind_host in ("0.0.0.0", "", "*") else config.master_bind_host
        if config.workers and not await _listening(master, connect, config.master_port):
            prep.notes.append(f"the Locust master did not listen on port {config.master_port}")
            return master.poll()
        for i in range(config.workers):
            processes.append(
                _start(
                    _locust(
                        "--worker",
                        "--master-host",
                        connect,
                        "--master-port",
                        str(config.master_port),
                        PLAN_OPTION,
                        str(worker_plan),
                    ),
                    locust_dir / f"worker-{i}.log",
                )
            )
        status = await _watch(
            master, processes[1:], prefix, console, config.duration + config.drain_timeout + SETUP_MARGIN
        )
        failed = {i: w.returncode for i, w in enumerate(processes[1:]) if w.poll() not in (None, 0)}
        if failed:
            prep.notes.append(f"local Locust workers failed (exit statuses {failed}; see their logs)")
        if status is None:
            master.terminate()
            prep.notes.append("the Locust master did not finish and was stopped")
        elif status != 0:
            tail = (locust_dir / "master.log").read_text(errors="replace")[-1500:]
            prep.notes.append(f"the Locust master exited with status {status}: {tail}")
        return status
    finally:
        await asyncio.to_thread(_stop, processes)
        worker_plan.unlink(missing_ok=True)


def _report(
    config: DistributedConfig,
    meta: dict[str, Any],
    prep: Preparation,
    checked: Verification,
    merged: dict[str, Any],
    prefix: Path,
    exit_status: int | None,
) -> dict[str, Any]:
    stats = locust_stats(prefix)
    final_row = stats.get((FINALITY, FINAL))
    locust_final = int(final_row["Request Count"]) if final_row else 0
    finalized = len(merged["final"])
    if locust_final != finalized:
        prep.notes.append(f"Locust counted {locust_final} final events, the workers reported {finalized}")
    first = merged["first_send"]
    finished = list(merged["final_at"].values())
    span = (max(finished) - first) if finished and first is not None else 0.0
    base = int(first) if first is not None else 0
    seconds = sorted(merged["sent_per_second"])
    generated = merged["generator"]
    per_second = (
        [merged["sent_per_second"].get(s, 0) for s in range(base, seconds[-1] + 1)] if seconds else []
    )
    return {
        "meta": meta,
        "nodes": len(config.endpoints),
        "rate": config.rate,
        "duration_s": round(max([merged["last_send"] or 0.0, *finished]) - first, 3)
        if first is not None
        else 0.0,
        "submitted": merged["submitted"],
        "accepted": merged["accepted"],
        "finalized": finalized,
        "rejected": sum(merged["reject_reasons"].values()) + merged["finality_rejected"],
        "overloaded": merged["overloaded"],
        "reject_reasons": {
            **merged["reject_reasons"],
            **({"finality": merged["finality_rejected"]} if merged["finality_rejected"] else {}),
        },
        "finalized_tps": round(finalized / span, 1) if span > 0 else 0.0,
        "finality_ms": {
            key: _ms(final_row, column)
            for key, column in (("p50", "50%"), ("p95", "95%"), ("p99", "99%"), ("max", "100%"))
        },
        "lost": len(checked.lost),
        "feed_missed": merged["feed_missed"],
        "feed_restarts": merged["feed_restarts"],
        "finality_available": prep.finality,
        "consensus_available": prep.consensus,
        **common_fields(prep, checked, merged["presign_s"]),
        "submitted_per_second": per_second,
        "timeline": timeline(
            float(base),
            {t: at - merged["final"][t] for t, at in merged["final_at"].items()},  # sent = final - latency
            merged["final"],
            merged["final_at"],
        ),
        "generator": {
            "transactions": generated["transactions"],
            "seconds": round(generated["seconds"], 3),
            "tps": round(generated["transactions"] / generated["seconds"], 1)
            if generated["seconds"] > 0
            else 0.0,
            "presign_s": round(merged["presign_s"], 3),
        },
        "errors": (prep.fanout.errors + merged["errors"])[:20],
        "notes": prep.notes,
        "locust": {
            "workers": config.expect_workers,
            "exit_status": exit_status,
            "final_events": locust_final,
            "csv": f"{prefix}_stats.csv",
            "html": str(prefix.parent / HTML_REPORT),
        },
    }


def run_worker(
    endpoints: list[Endpoint],
    funding: Funding,
    master_host: str,
    master_port: int,
    out: Path,
    console: Console,
) -> int:
    """Runs one Locust worker for the master at ``master_host:master_port`` (another machine's
    ``timecoin loadtest --workers``), submitting to ``endpoints`` and signing with the funding
    keys; returns its exit status. Its plan (credentials and seeds, mode 0600) is removed after."""
    plan = out / LOCUST_DIR / f"worker-{os.getpid()}-plan.json"
    write_plan(plan, WorkerPlan(endpoints, funding.keys))
    phase(console, f"locust worker for the master at {master_host}:{master_port}, {len(endpoints)} nodes")
    try:
        return subprocess.run(
            _locust(
                "--worker",
                "--master-host",
                master_host,
                "--master-port",
                str(master_port),
                PLAN_OPTION,
                str(plan),
            ),
            stdin=subprocess.DEVNULL,
        ).returncode
    finally:
        plan.unlink(missing_ok=True)
