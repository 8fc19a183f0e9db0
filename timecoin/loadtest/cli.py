"""``timecoin loadtest``: the load test of DESIGN §11 against a running ``timecoin devnet``
(its manifest names the nodes, the genesis and the funded account keys)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import click
import orjson
from rich.console import Console

from timecoin.ledger.genesis import GenesisConfig
from timecoin.loadtest.generator import DEFAULT_BATCH, MAX_FANOUT
from timecoin.loadtest.runner import LoadTestConfig, run_loadtest, summary_lines
from timecoin.loadtest.submitter import Endpoint


@click.command()
@click.option(
    "--devnet",
    "workdir",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    default=Path("devnet"),
    show_default=True,
    help="Working directory of a running `timecoin devnet`.",
)
@click.option("--rate", type=float, default=1000.0, show_default=True, help="Target, tx/s (open loop).")
@click.option("--duration", type=float, default=10.0, show_default=True, help="Seconds of load.")
@click.option(
    "--out", type=click.Path(file_okay=False, path_type=Path), default=None, help="Report directory."
)
@click.option(
    "--batch", default=DEFAULT_BATCH, show_default=True, help="Transactions per native signing call."
)
@click.option("--max-fanout", default=MAX_FANOUT, show_default=True, help="Outputs per fan-out transaction.")
def loadtest(
    workdir: Path, rate: float, duration: float, out: Path | None, batch: int, max_fanout: int
) -> None:
    """Submit pre-signed transfers at --rate for --duration s; report finality (JSON + PNG).

    The report is always printed; the exit status is 1 when transactions reported final were
    lost or the nodes do not agree at the end (or could not be checked), else 0."""
    from timecoin.cli.devnet import load_manifest

    manifest = load_manifest(workdir)
    genesis = GenesisConfig.from_json(Path(manifest["genesis"]).read_bytes())
    keys = [bytes.fromhex(k) for k in orjson.loads(Path(manifest["accounts"]).read_bytes())]
    try:
        endpoints = [Endpoint.from_datadir(Path(n["datadir"]), n["rpc_port"]) for n in manifest["nodes"]]
    except OSError as e:
        raise click.ClickException(f"the devnet in {workdir} is not running (no RPC cookie: {e})") from None
    out = out or workdir / "loadtest"
    console = Console()
    config = LoadTestConfig(genesis, keys, endpoints, rate, duration, out, batch, max_fanout)
    report = asyncio.run(run_loadtest(config, console))
    for line in summary_lines(report):
        console.print(line)
    console.print(f"report: {out / 'loadtest.json'}, plot: {out / 'loadtest.png'}")
    if report["lost"] or not report["nodes_agree"]:
        raise SystemExit(1)
