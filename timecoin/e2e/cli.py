"""``timecoin e2e MANIFEST [--out DIR]``: one end-to-end fault run (docs/e2e.md). Exits 0 when
every check passed, 1 when one failed (the report says which), and with a usage error for a bad
manifest or a host that cannot perform a fault the schedule needs."""

from __future__ import annotations

import signal
from pathlib import Path
from types import FrameType

import click
from rich.console import Console

__all__ = ["e2e"]


class _Terminate(Exception):
    """SIGTERM reached the command: unwind so the runner cleans up."""


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise _Terminate


@click.command()
@click.argument("manifest", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Run directory (network, load test, e2e.json, timeline.png). Default: e2e-<name>.",
)
def e2e(manifest: Path, out: Path | None) -> None:
    """Run a manifest of masternodes and faults under load, then check the history (docs/e2e.md)."""
    from timecoin.e2e.manifest import ManifestError, load_manifest
    from timecoin.e2e.network import NodeUnavailable
    from timecoin.e2e.perturb import PerturbationUnavailable
    from timecoin.e2e.runner import run_e2e

    try:
        parsed = load_manifest(manifest)
    except ManifestError as e:
        raise click.UsageError(str(e)) from None
    out = out or Path(f"e2e-{parsed.name}")
    console = Console()
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        result = run_e2e(parsed, out, console, str(manifest))
    except (PerturbationUnavailable, FileExistsError) as e:
        raise click.UsageError(str(e)) from None
    except NodeUnavailable as e:
        raise click.ClickException(f"{e} (the nodes were stopped; see {out}/network)") from None
    except (KeyboardInterrupt, _Terminate):
        raise click.ClickException("interrupted: the nodes were stopped and the rules removed") from None
    finally:
        signal.signal(signal.SIGTERM, previous)
    for check in result.report["checks"]:
        mark = "[green]pass[/]" if check["passed"] else "[red]FAIL[/]"
        console.print(f"{mark} {check['name']}: {check['summary']}")
    for line in result.report["errors"]:
        console.print(f"[red]error[/] {line}")
    console.print(f"report: {result.report_path}, plot: {result.plot_path}")
    if not result.passed:
        raise SystemExit(1)
