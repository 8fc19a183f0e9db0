"""One e2e run, start to finish (docs/e2e.md):

1. **setup**: the manifest's seeded schedule; if it partitions or delays, a probe that this host can
   (:func:`timecoin.e2e.perturb.partition_support`) and one cgroup per node; a fresh devnet
   under ``<out>/network`` (genesis, keys, data directories; :mod:`.network`);
2. **start**: every node, then the full mesh; a sampler records every node's height each
   ``sample_interval`` seconds until the end;
3. **load + perturb**: the real load test (:func:`timecoin.loadtest.runner.run_loadtest`) at the
   manifest's rate for its duration; beside it (the load test's ``during_load`` hook) the faults
   run one at a time: ``warmup`` s after the load starts the first, and after each heal the
   runner waits until every node holds a new block (or ``liveness_bound`` s pass), then ``gap``
   s, then the next. Every fault is healed before the hook returns, so the load test's settle
   phase sees a whole network;
4. **check**: the history checker over RPC (:mod:`.checker`), then the report and the timeline
   plot (:mod:`.report`);
5. **cleanup**, on every exit path (failure and Ctrl-C included): the nodes stopped (SIGTERM,
   then SIGKILL), the nftables table and the cgroups removed.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import os
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from rich.console import Console

from timecoin.e2e.byzantine import ByzantineActor, DoubleSpend
from timecoin.e2e.checker import Check, FaultRecord, Sample, check_history, check_liveness, recovery_seconds
from timecoin.e2e.manifest import MAX_MASTERNODES, FaultKind, Manifest
from timecoin.e2e.network import E2ENetwork
from timecoin.e2e.perturb import Cgroups, Partitioner, PerturbationUnavailable, partition_support
from timecoin.e2e.relay import DelayRelay
from timecoin.e2e.report import PLOT_FILE, REPORT_FILE, write_plot, write_report
from timecoin.e2e.schedule import Fault, build_schedule
from timecoin.ledger.genesis import build_genesis
from timecoin.loadtest.follower import Follower
from timecoin.loadtest.runner import LoadTestConfig, run_loadtest
from timecoin.loadtest.submitter import AsyncRPC

__all__ = ["BYZANTINE_ACCOUNTS", "RunResult", "choose_base_port", "run_e2e"]

BYZANTINE_ACCOUNTS = 2
"""Funded genesis accounts kept from the load for the Byzantine actor's double spends."""
PORT_MIN = 30_000
"""Lowest base port a run picks by itself: above the test harness's ports (20000-29999,
``timecoin.testing.node``) and below Linux's ephemeral range (32768+)."""
PORT_MAX = 32_700
PORTS_PER_RUN = 3 * MAX_MASTERNODES
SAMPLE_TIMEOUT = 2.0
"""Seconds one height sample waits for a node (a paused node answers nothing)."""
MIN_SETTLE = 60.0
"""Seconds the checker waits at least for the nodes to agree and to archive."""
NETWORK_DIR = "network"
LOAD_DIR = "loadtest"


@dataclass
class RunResult:
    """A finished run: whether every check passed, and the report it wrote."""

    passed: bool
    report: dict[str, Any]
    report_path: Path
    plot_path: Path


def _ports_free(base: int, count: int) -> bool:
    for port in range(base, base + count):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                return False
    return True


def choose_base_port(nodes: int, seed: int | None = None) -> int:
    """A base port whose ``3 × nodes`` ports are free on 127.0.0.1 now, from a block picked by
    ``seed`` (default: this process's pid) in [PORT_MIN, PORT_MAX). ``RuntimeError`` if none is."""
    blocks = (PORT_MAX - PORT_MIN) // PORTS_PER_RUN
    first = (os.getpid() if seed is None else seed) % blocks
    for i in range(blocks):
        base = PORT_MIN + ((first + i) % blocks) * PORTS_PER_RUN
        if _ports_free(base, 3 * nodes):
            return base
    raise RuntimeError(f"no free block of {3 * nodes} ports in {PORT_MIN}..{PORT_MAX}")


@dataclass
class _Run:
    """The state one run shares between the sampler, the fault driver and the checker."""

    manifest: Manifest
    schedule: tuple[Fault, ...]
    network: E2ENetwork
    partitioner: Partitioner | None
    console: Console
    relay: DelayRelay | None = None
    t0: float = field(default_factory=time.monotonic)
    samples: list[Sample] = field(default_factory=list)
    records: list[FaultRecord] = field(default_factory=list)
    pairs: list[DoubleSpend] = field(default_factory=list)
    followers: list[Follower] = field(default_factory=list)
    load_span: tuple[float, float] | None = None
    errors: list[str] = field(default_factory=list)
    byzantine_keys: list[bytes] = field(default_factory=list)

    def now(self) -> float:
        return time.monotonic() - self.t0

    # -- sampling ------------------------------------------------------------------------------------

    async def sample(self, nodes: list[AsyncRPC]) -> None:
        async def height(node: AsyncRPC) -> int | None:
            try:
                return int(await asyncio.wait_for(node.call("getblockcount"), SAMPLE_TIMEOUT))
            except Exception:  # noqa: BLE001 - down, paused, warming up or refusing: no answer
                return None

        while True:
            at = self.now()
            heights = await asyncio.gather(*(height(n) for n in nodes))
            self.samples.append((at, list(heights)))
            await asyncio.sleep(max(0.0, self.manifest.sample_interval - (self.now() - at)))

    # -- faults -----------------------------------------------------------------------------------------

    def quorum(self, fault: Fault) -> tuple[int, ...]:
        """Nodes the fault leaves untouched, if they hold 2/3 of the (equal) masternodes (DESIGN §7
        quorum), else ()."""
        n = self.manifest.nodes
        if fault.kind == FaultKind.PARTITION:
            sides = [g for g in fault.groups if 3 * len(g) >= 2 * n]
            return sides[0] if sides else ()
        untouched = tuple(i for i in range(n) if i not in fault.nodes)
        return untouched if 3 * len(untouched) >= 2 * n else ()

    async def perturb(self, follower: Follower) -> None:
        """The ``during_load`` hook: runs the schedule (module docstring, step 3)."""
        self.followers.append(follower)
        load_start = self.now()
        self.load_span = (load_start, load_start + self.manifest.duration)
        await asyncio.sleep(self.manifest.warmup)
        for fault in self.schedule:
            record = FaultRecord(fault, quorum=self.quorum(fault))
            self.records.append(record)
            record.under_load = self.now() < self.load_span[1]
            self.console.print(f"[bold]fault[/] {fault.describe()} at {self.now():.1f} s")
            try:
                await self.apply(fault, record, follower)
            except Exception as e:  # noqa: BLE001 - recorded, reported and the schedule stops
                record.error = f"{type(e).__name__}: {e}"
                self.errors.append(f"{fault.describe()}: {record.error}")
                self.console.print(f"[red]fault failed[/] {fault.describe()}: {record.error}")
                await self.heal_everything()
                return
            await self.wait_recovery(record)
            await asyncio.sleep(self.manifest.gap)

    async def apply(self, fault: Fault, record: FaultRecord, follower: Follower) -> None:
        network = self.network
        target = fault.nodes[0]
        record.started_at = self.now()
        if fault.kind == FaultKind.KILL:
            await asyncio.to_thread(network.kill, target)
            await asyncio.sleep(fault.duration)
            record.healed_at = self.now()
            await asyncio.to_thread(network.restart, target)
        elif fault.kind == FaultKind.PAUSE:
            network.pause(target)
            await asyncio.sleep(fault.duration)
            record.healed_at = self.now()
            network.resume(target)
        elif fault.kind in (FaultKind.PARTITION, FaultKind.OUTAGE):
            assert self.partitioner is not None
            groups = fault.groups or ((target,), tuple(i for i in range(self.manifest.nodes) if i != target))
            await asyncio.to_thread(self.partitioner.cut, groups)
            await asyncio.sleep(fault.duration)
            record.healed_at = self.now()
            await asyncio.to_thread(self.partitioner.heal)
        elif fault.kind == FaultKind.DELAY:
            assert self.partitioner is not None and self.relay is not None
            relay = self.relay
            links, carried = relay.stats.links, relay.stats.bytes
            relay.set_delay(fault.delay_ms, fault.jitter_ms)
            await asyncio.to_thread(self.partitioner.delay, target, relay.port)
            try:
                await asyncio.sleep(fault.duration)
            finally:
                record.healed_at = self.now()
                await asyncio.to_thread(self.partitioner.undelay)
                relay.close_links()
                relay.set_delay(0, 0)
                record.relayed = {"links": relay.stats.links - links, "bytes": relay.stats.bytes - carried}
        elif fault.kind == FaultKind.BYZANTINE:
            config = network.config
            assert config is not None
            actor = ByzantineActor(
                config.params,
                build_genesis(config).hash,
                network.masternode_key(target),
                target,
                [n.p2p_port for n in network.nodes],
                follower.nodes,
                self.byzantine_keys,
                fault.behaviours,
            )
            try:
                await actor.run(fault.duration)
            finally:
                record.healed_at = self.now()
                record.byzantine = actor.stats.to_json()
                self.pairs.extend(actor.stats.pairs)
        else:  # pragma: no cover - every kind is handled above
            raise AssertionError(f"unhandled fault kind {fault.kind}")

    async def heal_everything(self) -> None:
        """After a failed fault: lift any partition, resume and restart what is down."""
        if self.partitioner is not None:
            with contextlib.suppress(PerturbationUnavailable):
                await asyncio.to_thread(self.partitioner.heal)
                await asyncio.to_thread(self.partitioner.undelay)
        if self.relay is not None:
            self.relay.close_links()
        for i in range(self.manifest.nodes):
            if self.network.running(i):
                self.network.resume(i)
            else:
                with contextlib.suppress(Exception):
                    await asyncio.to_thread(self.network.restart, i)

    async def wait_recovery(self, record: FaultRecord) -> None:
        """Waits until every node holds a block no node held at the heal, or the bound passes."""
        assert record.healed_at is not None
        deadline = record.healed_at + self.manifest.liveness_bound
        while self.now() <= deadline:
            seconds = recovery_seconds(self.samples, record.healed_at)
            if seconds is not None:
                record.recovered_at = record.healed_at + seconds
                self.console.print(f"  recovered {seconds:.1f} s after the heal")
                return
            await asyncio.sleep(self.manifest.sample_interval)
        self.console.print(f"  [red]not recovered[/] within {self.manifest.liveness_bound:g} s of the heal")


def _load_summary(report: dict[str, Any]) -> dict[str, Any]:
    keys = (
        "rate",
        "duration_s",
        "submitted",
        "accepted",
        "finalized",
        "rejected",
        "reject_reasons",
        "finalized_tps",
        "finality_ms",
        "lost",
        "blocks",
        "nodes_agree",
        "notes",
    )
    return {k: report.get(k) for k in keys}


async def _drive(run: _Run, load_keys: list[bytes], out: Path) -> dict[str, Any]:
    """Steps 3 (load + perturb) with the sampler beside it; the load test's report."""
    network, manifest = run.network, run.manifest
    config = network.config
    assert config is not None
    timeout = aiohttp.ClientTimeout(total=SAMPLE_TIMEOUT * 2)
    if any(f.kind == FaultKind.DELAY for f in run.schedule):
        run.relay = DelayRelay(manifest.seed)
        await run.relay.start()
    async with aiohttp.ClientSession(timeout=timeout) as session:
        nodes = [AsyncRPC(session, e) for e in network.endpoints()]
        sampler = asyncio.create_task(run.sample(nodes))
        try:
            load = LoadTestConfig(
                config,
                load_keys,
                network.endpoints(),
                manifest.load.rate,
                manifest.duration,
                out / LOAD_DIR,
                during_load=run.perturb,
            )
            report = await run_loadtest(load, run.console)
            # A last stretch of samples after the load settled, for the plot.
            await asyncio.sleep(manifest.sample_interval * 2)
            return report
        finally:
            sampler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sampler
            if run.relay is not None:
                await run.relay.stop()


def run_e2e(manifest: Manifest, out: Path, console: Console | None = None, source: str = "") -> RunResult:
    """Runs ``manifest`` (module docstring), writing everything under ``out`` (which must not
    hold an earlier run's network). Returns the result (``passed`` is False when a check
    failed). :class:`PerturbationUnavailable` before anything starts if the schedule partitions
    and this host cannot; ``FileExistsError`` if ``out/network`` exists."""
    console = console or Console(stderr=True)
    out = out.absolute()
    schedule = build_schedule(manifest)
    run_id = str(os.getpid())
    rules = any(f.kind in (FaultKind.PARTITION, FaultKind.OUTAGE, FaultKind.DELAY) for f in schedule)
    cgroups: Cgroups | None = None
    if rules:
        reason = partition_support(run_id)
        if reason is not None:
            raise PerturbationUnavailable(
                f"the schedule partitions or delays the network, but this host cannot: {reason}. "
                "Partitions and delays need nftables with `socket cgroupv2` matching and nat, and a "
                "writable cgroup v2 hierarchy (as root); the network-namespace fallback is not built"
            )
        cgroups = Cgroups(run_id, manifest.nodes)
    workdir = out / NETWORK_DIR
    if workdir.exists():
        raise FileExistsError(f"{workdir} exists (an earlier run): give another --out or remove it")
    byzantine = any(f.kind == FaultKind.BYZANTINE for f in schedule)
    accounts = manifest.network.accounts + (BYZANTINE_ACCOUNTS if byzantine else 0)
    base_port = manifest.network.base_port or choose_base_port(manifest.nodes)
    network = E2ENetwork(workdir, manifest.nodes, accounts, base_port, cgroups)
    partitioner: Partitioner | None = None
    started = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    run: _Run | None = None
    load_report: dict[str, Any] = {}
    checks: list[Check] = []
    try:
        out.mkdir(parents=True, exist_ok=True)
        network.create()
        keys = network.account_keys()
        if cgroups is not None:
            cgroups.create()
            partitioner = Partitioner(run_id, cgroups, [n.p2p_port for n in network.nodes])
            partitioner.install()
        run = _Run(manifest, schedule, network, partitioner, console)
        run.byzantine_keys = keys[manifest.network.accounts :]
        console.print(
            f"e2e {manifest.name}: {manifest.nodes} masternodes from port {base_port}, seed {manifest.seed}"
        )
        for fault in schedule:
            console.print(f"  planned at {fault.planned_start:6.1f} s: {fault.describe()}")
        network.start_all()
        run.t0 = time.monotonic()
        load_report = asyncio.run(_drive(run, keys[: manifest.network.accounts], out))
        console.print("checking the history over RPC")
        clients = [network.client(i, timeout=60.0) for i in range(manifest.nodes)]
        try:
            reported = sorted(set().union(*(f.result.final for f in run.followers))) if run.followers else []
            settle = max(MIN_SETTLE, manifest.liveness_bound)
            checks = check_history(clients, reported, run.pairs, settle)
        except Exception as e:  # noqa: BLE001 - reported as a failed check, the report is still written
            checks = [
                Check("history", False, f"the checker could not read the nodes: {type(e).__name__}: {e}")
            ]
        finally:
            for c in clients:
                c.close()
        checks.append(check_liveness(run.records, run.samples, manifest.liveness_bound))
    finally:
        statuses = network.stop() if any(n.process is not None for n in network.nodes) else []
        problems: list[str] = []
        if partitioner is not None and (problem := partitioner.remove()) is not None:
            problems.append(problem)
        if cgroups is not None:
            problems.extend(cgroups.remove())
        for problem in problems:
            console.print(f"[red]cleanup:[/] {problem}")
    if run is None:  # pragma: no cover - an exception above left the finally block
        raise AssertionError("unreachable")
    if load_report.get("notes"):
        run.errors.extend(f"load test: {n}" for n in load_report["notes"])
    passed = bool(checks) and all(c.passed for c in checks) and not any(r.error for r in run.records)
    report: dict[str, Any] = {
        "manifest": {
            "name": manifest.name,
            "file": source,
            "seed": manifest.seed,
            "masternodes": manifest.nodes,
            "duration_s": manifest.duration,
            "rate": manifest.load.rate,
            "liveness_bound_s": manifest.liveness_bound,
            "warmup_s": manifest.warmup,
            "gap_s": manifest.gap,
        },
        "started": started,
        "passed": passed,
        "checks": [c.to_json() for c in checks],
        "schedule": [f.to_json() for f in schedule],
        "faults": [r.to_json() for r in run.records],
        "load": _load_summary(load_report),
        "load_span_s": list(run.load_span) if run.load_span else None,
        "exit_statuses": statuses,
        "errors": run.errors,
        "timeline": {"t": [round(t, 3) for t, _ in run.samples], "heights": [h for _, h in run.samples]},
    }
    report_path, plot_path = out / REPORT_FILE, out / PLOT_FILE
    write_report(report, report_path)
    verdict = "passed" if passed else "FAILED"
    write_plot(
        run.samples,
        run.records,
        plot_path,
        f"e2e {manifest.name} (seed {manifest.seed}): {verdict}",
        run.load_span,
    )
    return RunResult(passed, report, report_path, plot_path)
