"""``timecoin loadtest``: the load test of DESIGN §11 against any running network
(docs/loadtest.md).

Targets are RPC URLs (``--rpc``, credentials in the URL, a ``--rpc-cookie`` file or
``--rpc-user``/``--rpc-password``), nodes' data directories or ``timecoin.conf`` files
(``--node``), or a running ``timecoin devnet`` (``--devnet``, the default when no target is given:
its manifest names the nodes, the genesis and the funded account keys). The load is funded by
``--funding-key`` files or a ``--wallet`` (a devnet funds it with its accounts).

One process generates the load, or Locust does with ``--workers N`` (a master and N local worker
processes; workers on other machines join with ``--worker --master-host``: :mod:`.distributed`).
Thresholds (``--min-tps``, ``--max-p99-ms``, ``--require-agree``, ``--max-lost``) decide the exit
status (:mod:`.thresholds`). ``--sweep RATES`` steps the offered rate instead (``--repeat`` runs
each) until past the knee (:mod:`.sweep`); it exits 1 when no rate is within the knee's bounds.
``--metrics URL`` (per ``--rpc`` target, in order) names the nodes' ``/metrics`` for the plot's
mempool and CPU panels (a devnet's and a ``--node`` with metrics on are found by themselves).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import click
from rich.console import Console

from timecoin.loadtest.generator import DEFAULT_BATCH, MAX_FANOUT
from timecoin.loadtest.report import write_report
from timecoin.loadtest.sampler import NodeProbe
from timecoin.loadtest.submitter import Endpoint
from timecoin.loadtest.sweep import parse_rates, run_sweep
from timecoin.loadtest.targets import (
    Funding,
    TargetError,
    devnet_probes,
    devnet_targets,
    endpoint_from_node,
    endpoint_from_url,
    node_probe,
    read_key_file,
    wallet_keys,
)
from timecoin.loadtest.thresholds import EXIT_MISSED, Thresholds, check

DEFAULT_DEVNET = Path("devnet")
"""The devnet working directory aimed at when no target is given (``timecoin devnet``'s default)."""
DEFAULT_OUT = Path("loadtest")
"""The report directory when the targets are not a devnet (a devnet's is ``<workdir>/loadtest``)."""
DEFAULT_DRAIN = 10.0
"""Seconds finality is followed after the last submission (``LoadTestConfig.drain_timeout``)."""

_PATH = click.Path(dir_okay=False, exists=True, path_type=Path)


def resolve_targets(
    devnet: Path | None,
    rpc: tuple[str, ...],
    rpc_cookie: tuple[Path, ...],
    rpc_user: str | None,
    rpc_password: str | None,
    node: tuple[Path, ...],
) -> tuple[list[Endpoint], Funding | None, Path | None]:
    """The endpoints, the devnet's funding (if the targets are a devnet) and the devnet working
    directory; ``click.UsageError`` / ``click.ClickException`` saying what is wrong."""
    if devnet is not None and (rpc or node):
        raise click.UsageError("give --devnet, or --rpc/--node targets, not both")
    if (rpc_user is None) != (rpc_password is None):
        raise click.UsageError("give --rpc-user and --rpc-password together")
    if rpc_cookie and len(rpc_cookie) not in (1, len(rpc)):
        raise click.UsageError(
            f"give one --rpc-cookie for every --rpc URL or one per URL in order "
            f"({len(rpc_cookie)} cookies, {len(rpc)} URLs)"
        )
    try:
        if not rpc and not node:
            workdir = devnet if devnet is not None else DEFAULT_DEVNET
            endpoints, funding = devnet_targets(workdir)
            return endpoints, funding, workdir
        cookies: list[Path | None] = [None] * len(rpc)
        if rpc_cookie:
            cookies = [*(rpc_cookie * len(rpc) if len(rpc_cookie) == 1 else rpc_cookie)]
        endpoints = [
            endpoint_from_url(url, cookie, rpc_user, rpc_password)
            for url, cookie in zip(rpc, cookies, strict=True)
        ]
        endpoints += [endpoint_from_node(path) for path in node]
    except TargetError as e:
        raise click.ClickException(str(e)) from None
    return endpoints, None, None


def resolve_probes(
    devnet: Path | None, metrics: tuple[str, ...], rpc: int, node: tuple[Path, ...]
) -> list[NodeProbe]:
    """Where each target's ``/metrics`` (and, for a devnet, process) is, in target order: a
    devnet's manifest; else the ``--metrics`` URLs for the ``--rpc`` targets in order, then each
    ``--node``'s configuration. ``click.UsageError`` for more URLs than ``--rpc`` targets."""
    if len(metrics) > rpc:
        raise click.UsageError(
            f"{len(metrics)} --metrics URLs for {rpc} --rpc targets: one per --rpc, in order"
        )
    try:
        if devnet is not None:
            return devnet_probes(devnet)
        probes = [NodeProbe(url) for url in metrics] + [NodeProbe()] * (rpc - len(metrics))
        return probes + [node_probe(path) for path in node]
    except TargetError as e:
        raise click.ClickException(str(e)) from None


def resolve_funding(
    funding_key: tuple[Path, ...], wallet: Path | None, passphrase_file: Path | None, devnet: Funding | None
) -> Funding:
    """The secret keys that fund the run: ``--funding-key`` files, else the ``--wallet``, else the
    devnet's accounts; ``click.UsageError`` when there are none."""
    if wallet is not None and passphrase_file is None:
        raise click.UsageError("--wallet needs --passphrase-file (the load test does not prompt)")
    try:
        keys = [k for path in funding_key for k in read_key_file(path)]
        if wallet is not None and passphrase_file is not None:
            keys += wallet_keys(wallet, passphrase_file)
    except TargetError as e:
        raise click.ClickException(str(e)) from None
    if keys:
        return Funding(list(dict.fromkeys(keys)), devnet.genesis if devnet is not None else None)
    if devnet is not None:
        return devnet
    raise click.UsageError("give --funding-key FILE or --wallet FILE: nothing funds the load")


def gate(report: dict[str, Any], thresholds: Thresholds, out: Path, console: Console) -> bool:
    """Checks the thresholds, adds them to the report (rewritten in ``out``), prints a line per
    missed one; whether every one passed."""
    rows = check(report, thresholds)
    report["thresholds"] = rows
    write_report(report, out / "loadtest.json")
    for row in rows:
        if not row["passed"]:
            console.print(
                f"threshold missed: {row['name']} (limit {row['limit']}, got {row['value']})", highlight=False
            )
    return all(row["passed"] for row in rows)


@click.command()
@click.option(
    "--devnet",
    "devnet",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    default=None,
    help=f"Working directory of a running `timecoin devnet` [default: {DEFAULT_DEVNET} when no "
    "--rpc/--node is given].",
)
@click.option("--rpc", multiple=True, metavar="URL", help="A node's JSON-RPC: http://[user:pass@]host:port.")
@click.option(
    "--rpc-cookie",
    multiple=True,
    type=_PATH,
    metavar="FILE",
    help="Cookie file for the --rpc URLs: one for all, or one per URL in order.",
)
@click.option("--rpc-user", default=None, help="RPC user for --rpc URLs without credentials.")
@click.option("--rpc-password", default=None, help="RPC password (with --rpc-user).")
@click.option(
    "--node",
    multiple=True,
    type=click.Path(exists=True, path_type=Path),
    metavar="PATH",
    help="A node's data directory or timecoin.conf (port and credentials from there).",
)
@click.option(
    "--metrics",
    multiple=True,
    metavar="URL",
    help="The /metrics URL of each --rpc target, in order (mempool and CPU in the plot).",
)
@click.option(
    "--funding-key",
    multiple=True,
    type=_PATH,
    metavar="FILE",
    help="Secret seeds (hex, one per line, or a JSON list) whose coins fund the load.",
)
@click.option("--wallet", type=_PATH, default=None, help="A wallet keystore whose keys fund the load.")
@click.option("--passphrase-file", type=_PATH, default=None, help="The wallet's passphrase (first line).")
@click.option("--rate", type=float, default=1000.0, show_default=True, help="Target, tx/s (open loop).")
@click.option("--duration", type=float, default=10.0, show_default=True, help="Seconds of load.")
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help=f"Report directory [default: DEVNET/loadtest, else ./{DEFAULT_OUT}].",
)
@click.option(
    "--batch", default=DEFAULT_BATCH, show_default=True, help="Transactions per native signing call."
)
@click.option("--max-fanout", default=MAX_FANOUT, show_default=True, help="Outputs per fan-out transaction.")
@click.option(
    "--drain-timeout",
    type=float,
    default=DEFAULT_DRAIN,
    show_default=True,
    help="Seconds finality is followed after the last submission.",
)
@click.option("--min-tps", type=float, default=None, help="Fail unless finalized tx/s >= this.")
@click.option("--max-p99-ms", type=float, default=None, help="Fail unless p99 finality (ms) <= this.")
@click.option(
    "--require-agree/--no-require-agree",
    default=True,
    show_default=True,
    help="Fail unless every node ends on one tip and UTXO set hash.",
)
@click.option(
    "--max-lost",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Fail if more transactions reported final are not final everywhere.",
)
@click.option(
    "--workers",
    type=click.IntRange(min=0),
    default=None,
    help="Run on Locust: a master and this many local worker processes (0: the master only).",
)
@click.option(
    "--expect-workers",
    type=click.IntRange(min=1),
    default=None,
    help="With --workers: workers the master waits for, local and remote [default: --workers].",
)
@click.option(
    "--master-bind-host",
    default="127.0.0.1",
    show_default=True,
    help="With --workers: the address the Locust master listens on for workers (0.0.0.0: all).",
)
@click.option("--master-port", default=5557, show_default=True, help="The Locust master's port.")
@click.option(
    "--worker", is_flag=True, help="Run only a Locust worker for a master at --master-host (another machine)."
)
@click.option("--master-host", default="127.0.0.1", show_default=True, help="With --worker: the master.")
@click.option(
    "--sweep",
    metavar="RATES",
    default=None,
    help="Step the offered rate (R1,R2,... or START:STOP:STEP tx/s, --duration s each) until past "
    "the knee (>= 95 % finalized, p99 < 1 s, nothing lost, nodes agreeing); writes OUT/sweep.json "
    "and sweep.png; exits 1 when no rate is within those bounds.",
)
@click.option(
    "--repeat",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="With --sweep: runs per rate (a rate is within the knee only if every run is).",
)
def loadtest(
    devnet: Path | None,
    rpc: tuple[str, ...],
    rpc_cookie: tuple[Path, ...],
    rpc_user: str | None,
    rpc_password: str | None,
    node: tuple[Path, ...],
    metrics: tuple[str, ...],
    funding_key: tuple[Path, ...],
    wallet: Path | None,
    passphrase_file: Path | None,
    rate: float,
    duration: float,
    out: Path | None,
    batch: int,
    max_fanout: int,
    drain_timeout: float,
    min_tps: float | None,
    max_p99_ms: float | None,
    require_agree: bool,
    max_lost: int,
    workers: int | None,
    expect_workers: int | None,
    master_bind_host: str,
    master_port: int,
    worker: bool,
    master_host: str,
    sweep: str | None,
    repeat: int,
) -> None:
    """Submit pre-signed transfers at --rate for --duration s; report finality (JSON + PNG).

    The report is always printed and written; the exit status is 1 when a threshold is missed
    (by default: transactions reported final were lost, or the nodes do not agree at the end or
    could not be checked), else 0. docs/loadtest.md."""
    if rate <= 0 or duration <= 0:
        raise click.BadParameter("--rate and --duration must be positive")
    endpoints, devnet_funding, workdir = resolve_targets(
        devnet, rpc, rpc_cookie, rpc_user, rpc_password, node
    )
    funding = resolve_funding(funding_key, wallet, passphrase_file, devnet_funding)
    out = out or (workdir / "loadtest" if workdir is not None else DEFAULT_OUT)
    console = Console()
    thresholds = Thresholds(min_tps, max_p99_ms, require_agree, max_lost)
    if worker:
        from timecoin.loadtest.distributed import run_worker

        raise SystemExit(run_worker(endpoints, funding, master_host, master_port, out, console))
    if workers is None and expect_workers is not None:
        raise click.UsageError("--expect-workers goes with --workers")
    if repeat != 1 and sweep is None:
        raise click.UsageError("--repeat goes with --sweep")
    if workers == 0 and expect_workers is None:
        raise click.UsageError(
            "--workers 0 runs no local worker: say how many remote ones with --expect-workers"
        )
    probes = resolve_probes(workdir, metrics, len(rpc), node)

    def run(rate: float, out: Path) -> dict[str, Any]:
        if workers is not None:
            from timecoin.loadtest.distributed import DistributedConfig, run_distributed

            config = DistributedConfig(
                funding.genesis,
                funding.keys,
                endpoints,
                rate,
                duration,
                out,
                batch,
                max_fanout,
                drain_timeout,
                workers,
                expect_workers or workers,
                master_bind_host,
                master_port,
                probes=probes,
            )
            return asyncio.run(run_distributed(config, console))
        from timecoin.loadtest.runner import LoadTestConfig, run_loadtest

        return asyncio.run(
            run_loadtest(
                LoadTestConfig(
                    funding.genesis,
                    funding.keys,
                    endpoints,
                    rate,
                    duration,
                    out,
                    batch,
                    max_fanout,
                    drain_timeout,
                    probes=probes,
                ),
                console,
            )
        )

    if sweep is not None:
        if min_tps is not None or max_p99_ms is not None:
            raise click.UsageError("--sweep has its own bounds (the knee's): drop --min-tps and --max-p99-ms")
        try:
            rates = parse_rates(sweep)
        except ValueError as e:
            raise click.BadParameter(str(e), param_hint="--sweep") from None
        parameters = {
            "nodes": len(endpoints),
            "duration_s": duration,
            "targets": [e.url for e in endpoints],
            "workers": workers or 0,
            "batch": batch,
        }

        from timecoin.loadtest.runner import summary_lines

        def step(rate: float, k: int) -> dict[str, Any]:
            report = run(rate, out / "sweep" / f"{rate:g}-{k + 1}")
            for line in summary_lines(report):
                console.print(line, highlight=False)
            return report

        result = run_sweep(rates, repeat, step, out, console, parameters)
        if result["knee"] is None:
            raise SystemExit(EXIT_MISSED)
        return
    report = run(rate, out)
    from timecoin.loadtest.runner import summary_lines

    for line in summary_lines(report):
        console.print(line, highlight=False)
    passed = gate(report, thresholds, out, console)
    console.print(f"report: {out / 'loadtest.json'}, plot: {out / 'loadtest.png'}")
    if not passed:
        raise SystemExit(EXIT_MISSED)
