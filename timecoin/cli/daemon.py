"""``timecoind``: the node daemon (DESIGN §10).

Every configuration key of :data:`timecoin.config.SETTINGS` is a flag here (``--rpcport``,
``--log-level``, ...); flags override ``TIMECOIN_*`` environment variables, which override the
configuration file. The daemon runs in the foreground on uvloop until SIGINT, SIGTERM or the
``stop`` RPC, logging to stderr (and ``--log-file``). Exit status 0 after a clean stop, 1 when
it cannot start (the reason is logged, naming the key to change).
"""

from __future__ import annotations

import logging
import logging.handlers
import sys
import time
from collections.abc import Callable
from typing import Any

import click
import orjson

import timecoin
from timecoin.config import SETTINGS, ConfigError, NodeConfig, load_config

_TEXT_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"
QUIET_LOGGERS = ("aiohttp", "asyncio")
"""Third-party loggers held at warning unless the level is debug (DESIGN §10: quiet at info)."""


_RECORD_ATTRIBUTES = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}
"""Attributes every ``LogRecord`` has; the others were given with ``extra=`` (structured fields)."""
JSON_RESERVED = ("ts", "level", "logger", "msg", "exc")
"""Keys of every JSON line; a field given with ``extra=`` under one of these names is dropped."""


class JSONFormatter(logging.Formatter):
    """One JSON object per line: ``ts`` (unix seconds), ``level``, ``logger``, ``msg``, ``exc``
    with the traceback when there is one, and every field the log call gave with ``extra=``
    (``height``, ``block``, ``peer``, ``peer_addr``, ``txid``, the summary line's numbers, ...;
    docs/operator.md "Logs"). Bytes are written as hex; values JSON cannot hold, as ``str()``."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "ts": round(record.created, 6),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _RECORD_ATTRIBUTES and key not in doc and key not in JSON_RESERVED:
                doc[key] = value.hex() if isinstance(value, (bytes, bytearray, memoryview)) else value
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(doc, default=str).decode()


def setup_logging(config: NodeConfig) -> None:
    """Logs to stderr (and ``log_file``) at ``log_level``, as text or JSON lines."""
    formatter: logging.Formatter
    if config.log_json:
        formatter = JSONFormatter()
    else:
        formatter = logging.Formatter(_TEXT_FORMAT)
        formatter.converter = time.gmtime
        formatter.default_time_format = "%Y-%m-%dT%H:%M:%S"
        formatter.default_msec_format = "%s.%03dZ"
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if config.log_file is not None:
        try:
            handlers.append(logging.handlers.WatchedFileHandler(config.log_file))
        except OSError as e:
            raise ConfigError(f"log_file: cannot open {config.log_file}: {e.strerror}") from None
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in handlers:
        handler.setFormatter(formatter)
        root.addHandler(handler)
    level = getattr(logging, config.log_level.upper())
    root.setLevel(level)
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(level if level <= logging.DEBUG else logging.WARNING)


def config_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Adds ``--conf`` and one option per configuration key (all default to "not given")."""
    for s in reversed(SETTINGS):
        if s.key == "log_json":
            fn = click.option("--log-json/--no-log-json", "log_json", default=None, help=s.help)(fn)
        else:
            fn = click.option(
                s.flag, s.key, default=None, multiple=s.is_list, metavar=s.metavar, help=s.help
            )(fn)
    return click.option("--conf", "conf", default=None, metavar="FILE", help="Configuration file (TOML).")(fn)


@click.command(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@config_options
@click.option(
    "--reindex",
    is_flag=True,
    help="Before starting, rebuild the UTXO set, masternode registry and transaction index from "
    "the stored blocks, validating each again (as `timecoin db reindex`).",
)
@click.option("--version", is_flag=True, help="Print the version and exit.")
def main(version: bool, reindex: bool, **flags: Any) -> None:
    """Run a TIME Coin node in the foreground."""
    if version:
        click.echo(f"timecoind {timecoin.__version__}")
        return
    try:
        config = load_config(flags)
        setup_logging(config)
    except ConfigError as e:
        click.echo(f"timecoind: configuration error: {e}", err=True)
        sys.exit(1)
    if reindex and not _reindex(config):
        sys.exit(1)
    import uvloop

    from timecoin.node import Node

    sys.exit(uvloop.run(Node(config).run()))


REINDEX_LOG_EVERY = 1_000
"""Blocks between the progress lines ``--reindex`` logs."""


def _reindex(config: NodeConfig) -> bool:
    """``--reindex``: :func:`timecoin.dbtools.reindex` under the data directory's lock, logged.
    False (logged) if it cannot run; a rebuild that stops below the old tip is logged and the
    node starts on it (it syncs the rest from its peers)."""
    from timecoin.dbtools import DbToolError, recover_interrupted, reindex
    from timecoin.node import CHAIN_DIR, DataDirLock, StartupError
    from timecoin.store.chainstore import DATA_FILE, StoreError

    log = logging.getLogger("timecoin.reindex")

    def progress(phase: str, done: int, total: int) -> None:
        if phase == "blocks" and (done % REINDEX_LOG_EVERY == 0 or done == total):
            log.info("reindex: %d of %d blocks", done, total)

    if not config.datadir.is_dir():
        log.info("reindex: no data directory %s yet; nothing to rebuild", config.datadir)
        return True
    lock = DataDirLock(config.datadir)
    try:
        lock.acquire()
        recover_interrupted(config.datadir)
        if not (config.datadir / CHAIN_DIR / DATA_FILE).exists():
            log.info("reindex: no chain store in %s yet; nothing to rebuild", config.datadir)
            return True
        report = reindex(config, progress)
    except (StartupError, DbToolError, StoreError) as e:
        log.error("cannot reindex: %s", e)
        return False
    finally:
        lock.release()
    log.info(
        "reindexed %d blocks (%d commit certificates verified, %d consensus and peer records kept)",
        report.blocks,
        report.certificates,
        report.carried,
    )
    if report.stopped is not None:
        log.warning(
            "reindex stopped at height %d below the old tip %d: %s; the rest comes from peers",
            report.tip.height,
            report.old_tip.height,
            report.stopped,
        )
    return True


if __name__ == "__main__":
    main()
