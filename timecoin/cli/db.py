"""``timecoin db``: the node's chain store, offline (docs/operator.md "Storage integrity").

    timecoin db check [--network NAME] [--datadir DIR] [--conf FILE]

``check`` takes the data directory's lock (the node must be stopped), then

1. walks the LMDB file's structure without mapping it (py-lmdb's offline verifier,
   :func:`lmdb.verify.verify`: meta pages, every B-tree page, free list, file size), so a damaged
   file is reported instead of crashing the check the way LMDB itself would;
2. opens ``<datadir>/chain`` read-only and verifies every stored block against its hash and merkle
   root, the links between consecutive blocks, the tip, genesis and undo records, and the UTXO
   set against the tip header's ``utxo_set_hash`` (:func:`timecoin.store.integrity.check_store`).

It prints one line per problem and a summary; exit status 0 for an intact store, 1 for a damaged
or unreadable one (the summary names the first damaged height), 2 for a usage error.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import NoReturn

import click
import lmdb.verify

from timecoin.config import ConfigError, load_config
from timecoin.store.chainstore import DATA_FILE, ChainStore, StoreDamaged, StoreError
from timecoin.store.integrity import CheckReport, check_store

CHECK_FAILED = 1
"""Exit status of ``db check`` for a damaged or unreadable store."""
STRUCTURE_PROBLEMS_SHOWN = 20
"""Problems of the LMDB structure printed one per line; the rest are counted."""
_RESYNC = "resync: stop the node, remove {path} and start it again (it fetches the chain from its peers)"


@click.group()
def db() -> None:
    """The node's chain store."""


@db.command()
@click.option("--conf", default=None, metavar="FILE", help="Configuration file (TOML).")
@click.option("--network", default=None, metavar="NAME", help="mainnet, testnet or devnet.")
@click.option("--datadir", default=None, metavar="DIR", help="The node's data directory.")
def check(conf: str | None, network: str | None, datadir: str | None) -> None:
    """Verify the LMDB file, every stored block (hash, merkle root, linkage) and the UTXO set."""
    from timecoin.node import CHAIN_DIR, DataDirLock, StartupError

    try:
        config = load_config({"conf": conf, "network": network, "datadir": datadir})
    except ConfigError as e:
        raise click.UsageError(str(e)) from None
    path: Path = config.datadir / CHAIN_DIR
    if not (path / DATA_FILE).exists():
        _fail(f"no chain store at {path} (no {DATA_FILE}); is --datadir (or --network) right?")
    lock = DataDirLock(config.datadir)
    try:
        lock.acquire()
    except StartupError as e:
        _fail(f"{e} (the check needs the node stopped)")
    try:
        _check_structure(path)
        # The report prints every damaged block itself; the store's own error log would repeat it.
        logging.getLogger("timecoin.store").setLevel(logging.CRITICAL)
        try:
            store = ChainStore.open(path, readonly=True)
        except StoreError as e:
            _fail(str(e))
        try:
            report = check_store(store)
        except StoreDamaged as e:
            _fail(str(e))
        finally:
            store.close()
    finally:
        lock.release()
    _print(path, report)


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


def _print(path: Path, report: CheckReport) -> None:
    for damage in report.damage:
        where = f"height {damage.height}" if damage.height is not None else "store"
        click.echo(f"damaged: {where}: {damage.what}", err=True)
    for note in report.notes:
        click.echo(f"note: {note}", err=True)
    tip = report.tip
    tip_text = f"tip {tip.height} {tip.block_hash.hex()}" if tip is not None else "no tip"
    if report.damage:
        first = report.first_damaged_height
        at = f"first damaged height {first}" if first is not None else "damage outside the blocks"
        _fail(
            f"chain store {path} is damaged: {len(report.damage)} problem(s), {at} "
            f"({report.blocks} blocks checked, {tip_text}); {_RESYNC.format(path=path)}"
        )
    utxo_text = f", UTXO set of {report.utxos} coins matches the tip" if report.utxos is not None else ""
    click.echo(f"chain store {path} is intact: {report.blocks} blocks checked, {tip_text}{utxo_text}")


def _fail(message: str) -> NoReturn:
    click.echo(f"timecoin db check: {message}", err=True)
    raise SystemExit(CHECK_FAILED)
