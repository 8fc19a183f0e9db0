"""``timecoin db``: the node's chain store (docs/operator.md "Storage integrity", "Backup and
restore", "Rolling back and reindexing").

    timecoin db check    [--network NAME] [--datadir DIR] [--conf FILE]
    timecoin db backup   DEST [--network NAME] [--datadir DIR] [--conf FILE]
    timecoin db rollback HEIGHT [--yes] [--network NAME] [--datadir DIR] [--conf FILE] [--genesis FILE]
    timecoin db reindex  [--network NAME] [--datadir DIR] [--conf FILE] [--genesis FILE]

``check`` takes the data directory's lock (the node must be stopped), then

1. walks the LMDB file's structure without mapping it (py-lmdb's offline verifier,
   :func:`lmdb.verify.verify`: meta pages, every B-tree page, free list, file size), so a damaged
   file is reported instead of crashing the check the way LMDB itself would;
2. opens ``<datadir>/chain`` read-only and verifies every stored block against its hash and merkle
   root, the links between consecutive blocks, the tip, genesis and undo records, the UTXO set
   against the tip header's ``utxo_set_hash``, and every stored commit certificate against the
   masternode set of its height (:func:`timecoin.store.integrity.check_store`), with a progress
   bar on stderr.

It prints one line per problem and a summary; exit status 0 for an intact store, 1 for a damaged
or unreadable one (the summary names the first damaged height and what to do), 2 for a usage
error.

``backup`` runs beside a running node (an online, consistent LMDB copy, then checked);
``rollback`` and ``reindex`` take the lock, so the node must be stopped (:mod:`timecoin.dbtools`).
Each exits 1 when it fails, with a message saying what to do.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn

import click
import lmdb.verify
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from timecoin.config import ConfigError, NodeConfig, load_config
from timecoin.dbtools import DbToolError
from timecoin.dbtools import backup as take_backup
from timecoin.dbtools import reindex as rebuild
from timecoin.dbtools import rollback as roll_back
from timecoin.params import NetworkParams, by_id
from timecoin.store.chainstore import DATA_FILE, ChainStore, StoreDamaged, StoreError
from timecoin.store.integrity import CheckReport, check_store

CHECK_FAILED = 1
"""Exit status of ``db check`` for a damaged or unreadable store (and of the other commands when
they fail)."""
STRUCTURE_PROBLEMS_SHOWN = 20
"""Problems of the LMDB structure printed one per line; the rest are counted."""
_RESYNC = "resync: stop the node, remove {path} and start it again (it fetches the chain from its peers)"
_REBUILD = (
    "or, if only the UTXO set, the registry or certificates are wrong and the blocks are intact, "
    "`timecoin db reindex`"
)


@click.group()
def db() -> None:
    """The node's chain store: check, back up, roll back, reindex."""


def _node_options(genesis: bool = False) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``--conf``, ``--network``, ``--datadir`` (and ``--genesis``), read as ``timecoind`` reads them."""

    def add(fn: Callable[..., Any]) -> Callable[..., Any]:
        if genesis:
            fn = click.option(
                "--genesis",
                default=None,
                metavar="FILE",
                help="Genesis file [default: DATADIR/genesis.json].",
            )(fn)
        fn = click.option("--datadir", default=None, metavar="DIR", help="The node's data directory.")(fn)
        fn = click.option("--network", default=None, metavar="NAME", help="mainnet, testnet or devnet.")(fn)
        return click.option("--conf", default=None, metavar="FILE", help="Configuration file (TOML).")(fn)

    return add


def _config(**flags: str | None) -> NodeConfig:
    try:
        return load_config(flags)
    except ConfigError as e:
        raise click.UsageError(str(e)) from None


@contextmanager
def progress_bar() -> Iterator[Callable[[str, int, int], None]]:
    """A rich progress bar on stderr, one line per phase; yields the ``(phase, done, total)``
    callback the store tools take (:data:`timecoin.store.integrity.Progress`)."""
    bar = Progress(
        TextColumn("{task.description:<12}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=Console(stderr=True),
    )
    tasks: dict[str, Any] = {}

    def tell(phase: str, done: int, total: int) -> None:
        if phase not in tasks:
            tasks[phase] = bar.add_task(phase, total=total)
        bar.update(tasks[phase], completed=done, total=total)

    with bar:
        yield tell


@contextmanager
def _stopped_node(config: NodeConfig, command: str) -> Iterator[None]:
    """Holds the data directory's lock (the node must be stopped) for the body."""
    from timecoin.node import DataDirLock, StartupError

    lock = DataDirLock(config.datadir)
    try:
        lock.acquire()
    except StartupError as e:
        _fail(f"{e} ({command} needs the node stopped)", command)
    try:
        yield
    finally:
        lock.release()


@db.command()
@_node_options()
def check(conf: str | None, network: str | None, datadir: str | None) -> None:
    """Verify the LMDB file, every stored block (hash, merkle root, linkage), its commit
    certificate, and the UTXO set against the tip."""
    from timecoin.node import CHAIN_DIR

    config = _config(conf=conf, network=network, datadir=datadir)
    path: Path = config.datadir / CHAIN_DIR
    if not (path / DATA_FILE).exists():
        _fail(f"no chain store at {path} (no {DATA_FILE}); is --datadir (or --network) right?")
    with _stopped_node(config, "check"):
        _check_structure(path)
        # The report prints every damaged block itself; the store's own error log would repeat it.
        # Quieted for the check only: the command also runs inside other processes (tests).
        store_log = logging.getLogger("timecoin.store")
        level = store_log.level
        store_log.setLevel(logging.CRITICAL)
        try:
            report = _check(path, config.params)
        finally:
            store_log.setLevel(level)
    _print(path, report)


def _check(path: Path, default_params: NetworkParams) -> CheckReport:
    try:
        store = ChainStore.open(path, readonly=True)
    except StoreError as e:
        _fail(str(e))
    try:
        try:
            params = by_id(store.network() or 0)
        except ValueError:
            params = default_params  # an unknown network id: the rest of the check still runs
        with progress_bar() as tell:
            return check_store(store, params, tell)
    except StoreDamaged as e:
        _fail(str(e))
    finally:
        store.close()


def _check_structure(path: Path) -> None:
    """py-lmdb's offline verifier over ``data.mdb`` (reads, never maps); fails on any problem."""
    try:
        problems: list[str] = lmdb.verify.verify(str(path), subdir=True)  # type: ignore[no-untyped-call]
    except (lmdb.verify.VerifyError, OSError) as e:
        _fail(f"chain store {path / DATA_FILE} is damaged: {e}; {_RESYNC.format(path=path)}")
    if problems:
        for problem in problems[:STRUCTURE_PROBLEMS_SHOWN]:
            click.echo(f"damaged: LMDB structure: {problem}", err=True)
        more = len(problems) - STRUCTURE_PROBLEMS_SHOWN
        if more > 0:
            click.echo(f"damaged: LMDB structure: ... and {more} more", err=True)
        _fail(
            f"chain store {path / DATA_FILE} is damaged: {len(problems)} problem(s) in its LMDB "
            f"structure; {_RESYNC.format(path=path)}"
        )


def _print_damage(report: CheckReport) -> None:
    for damage in report.damage:
        where = f"height {damage.height}" if damage.height is not None else "store"
        click.echo(f"damaged: {where}: {damage.what}", err=True)


def _print(path: Path, report: CheckReport) -> None:
    _print_damage(report)
    for note in report.notes:
        click.echo(f"note: {note}", err=True)
    tip = report.tip
    tip_text = f"tip {tip.height} {tip.block_hash.hex()}" if tip is not None else "no tip"
    if report.damage:
        first = report.first_damaged_height
        at = f"first damaged height {first}" if first is not None else "damage outside the blocks"
        _fail(
            f"chain store {path} is damaged: {len(report.damage)} problem(s), {at} "
            f"({report.blocks} blocks checked, {tip_text}); {_RESYNC.format(path=path)}; {_REBUILD}"
        )
    utxo_text = f", UTXO set of {report.utxos} coins matches the tip" if report.utxos is not None else ""
    cert_text = (
        f", {report.certificates} commit certificates verified" if report.certificates is not None else ""
    )
    click.echo(
        f"chain store {path} is intact: {report.blocks} blocks checked, {tip_text}{utxo_text}{cert_text}"
    )


def _fail(message: str, command: str = "check") -> NoReturn:
    click.echo(f"timecoin db {command}: {message}", err=True)
    raise SystemExit(CHECK_FAILED)


@db.command()
@click.argument("dest", type=click.Path(file_okay=False, path_type=Path))
@_node_options()
def backup(dest: Path, conf: str | None, network: str | None, datadir: str | None) -> None:
    """Copy the chain store to DEST (a new or empty directory), also while the node runs: a
    consistent, compacted LMDB snapshot of the last committed block, then checked. DEST holds
    chain/ and genesis.json; to restore, stop the node and put them in its data directory."""
    config = _config(conf=conf, network=network, datadir=datadir)
    try:
        with progress_bar() as tell:
            report = take_backup(config.datadir, dest, config.params, tell)
    except (DbToolError, StoreError) as e:
        _fail(str(e), "backup")
    _print_damage(report.check)
    tip = report.tip
    tip_text = f"tip {tip.height} {tip.block_hash.hex()}" if tip is not None else "no tip"
    if report.check.damage:
        _fail(
            f"the copy in {dest} is damaged ({len(report.check.damage)} problem(s)), so the node's "
            "store is too: stop the node and run `timecoin db check`",
            "backup",
        )
    click.echo(f"backup in {dest}: {tip_text}, {report.size} bytes, checked intact")


@db.command()
@click.argument("height", type=click.IntRange(min=0))
@click.option("--yes", "assume_yes", is_flag=True, help="Do not ask for confirmation.")
@_node_options(genesis=True)
def rollback(
    height: int,
    assume_yes: bool,
    conf: str | None,
    network: str | None,
    datadir: str | None,
    genesis: str | None,
) -> None:
    """Roll the stopped node's chain back to HEIGHT (at most the network's reorg limit below the
    tip) through the undo records, as a reorganisation does; on its next start the node syncs
    the blocks after HEIGHT from its peers."""
    config = _config(conf=conf, network=network, datadir=datadir, genesis=genesis)
    if not assume_yes and not click.confirm(
        f"Roll the chain in {config.datadir} back to height {height}?", err=True
    ):
        _fail("nothing changed", "rollback")
    with _stopped_node(config, "rollback"):
        try:
            before, after = roll_back(config, height)
        except (DbToolError, StoreError) as e:
            _fail(str(e), "rollback")
    click.echo(
        f"rolled back {before.height - after.height} blocks: tip {after.height} "
        f"{after.block_hash.hex()} (was {before.height})"
    )


@db.command()
@_node_options(genesis=True)
def reindex(conf: str | None, network: str | None, datadir: str | None, genesis: str | None) -> None:
    """Rebuild the stopped node's UTXO set, masternode registry and transaction index from its
    stored blocks, each validated again from genesis (as `timecoind --reindex`)."""
    config = _config(conf=conf, network=network, datadir=datadir, genesis=genesis)
    with _stopped_node(config, "reindex"):
        try:
            with progress_bar() as tell:
                report = rebuild(config, tell)
        except (DbToolError, StoreError) as e:
            _fail(str(e), "reindex")
    tip = report.tip
    click.echo(
        f"reindexed {report.blocks} blocks ({report.certificates} commit certificates verified, "
        f"{report.carried} consensus and peer records kept): tip {tip.height} {tip.block_hash.hex()}"
    )
    if report.stopped is not None:
        _fail(
            f"stopped below the old tip {report.old_tip.height}: {report.stopped}; when the node "
            "starts it fetches the blocks after the new tip from its peers",
            "reindex",
        )
