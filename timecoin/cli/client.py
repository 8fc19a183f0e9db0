"""``timecoin-cli``: call any JSON-RPC method of a running node (DESIGN §10).

    timecoin-cli [OPTIONS] METHOD [PARAMS]...

Parameters are positional. Those the method declares as strings (see ``timecoin-cli help
METHOD``) are passed as typed; the others are parsed as JSON (``getblockhash 0``,
``getblock <hash> 2``, ``sendrawtransactions '["00..", "01.."]'``). For a method this client
does not know, each parameter is JSON if it parses, else a string.

Credentials come from the cookie in the data directory (the same ``--datadir``/``--network``/
``--conf`` rules as ``timecoind``) unless ``--rpcuser``/``--rpcpassword`` are given. String
results print as they are, others as JSON; on a terminal, peer lists and flat objects print as
tables (``--format json`` to keep JSON). An RPC error prints its code and message to stderr and
exits with status 1.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import click
import orjson

from timecoin.config import ConfigError, NodeConfig, load_config
from timecoin.rpc.client import DEFAULT_TIMEOUT, JSONRPCError, RPCClient, cookie_auth
from timecoin.rpc.errors import IN_WARMUP
from timecoin.rpc.methods import STRING_KINDS, load_methods

RPCWAIT_POLL = 0.25
"""Seconds between attempts while ``--rpcwait`` waits for the node."""
PIPE_WIDTH = 200
"""Columns of a table written to a pipe or file (``--format table`` off a terminal)."""


def client_config(
    conf: str | None,
    network: str | None,
    datadir: str | None,
    rpcport: str | None,
    rpcuser: str | None,
    rpcpassword: str | None,
) -> NodeConfig:
    """The node configuration an RPC client reads (file < environment < these flags; None:
    not given), to find the node's port and cookie. ``click.UsageError`` naming a bad key."""
    try:
        return load_config(
            {
                "conf": conf,
                "network": network,
                "datadir": datadir,
                "rpcport": rpcport,
                "rpcuser": rpcuser,
                "rpcpassword": rpcpassword,
            }
        )
    except ConfigError as e:
        raise click.UsageError(str(e)) from None


def convert_params(method: str, args: tuple[str, ...]) -> list[Any]:
    """Command-line words → JSON-RPC params, by the method's declared parameter kinds."""
    declared = load_methods().get(method)
    out: list[Any] = []
    for i, arg in enumerate(args):
        param = declared.params[i] if declared is not None and i < len(declared.params) else None
        if param is not None and param.kind in STRING_KINDS:
            out.append(arg)
            continue
        try:
            out.append(orjson.loads(arg))
        except orjson.JSONDecodeError as e:
            if param is None:
                out.append(arg)
            else:
                raise click.UsageError(
                    f"parameter {i + 1} ({param.name}) of {method} must be JSON: {e}"
                ) from None
    return out


def _render(method: str, result: Any, fmt: str) -> None:
    if result is None:
        return
    if isinstance(result, str):
        click.echo(result)
        return
    table = fmt == "table" or (fmt == "auto" and sys.stdout.isatty())
    if table and _print_table(method, result):
        return
    click.echo(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode())


def _print_table(method: str, result: Any) -> bool:
    from rich.console import Console
    from rich.table import Table

    def cell(value: Any) -> str:
        return value if isinstance(value, str) else orjson.dumps(value).decode()

    if method == "getpeerinfo" and isinstance(result, list):
        table = Table(
            "id", "addr", "dir", "node key", "mn", "height", "ping ms", "sent", "recv", "rep", title=method
        )
        for peer in result:
            ping = peer.get("pingtime")
            table.add_row(
                cell(peer.get("id")),
                cell(peer.get("addr")),
                "in" if peer.get("inbound") else "out",
                (peer.get("node_key") or "-")[:16],
                "yes" if peer.get("masternode") else "",
                cell(peer.get("height")),
                f"{ping * 1000:.1f}" if isinstance(ping, (int, float)) else "-",
                cell(peer.get("bytessent")),
                cell(peer.get("bytesrecv")),
                cell(peer.get("reputation")),
            )
    elif isinstance(result, list) and result and all(isinstance(r, dict) for r in result):
        columns = list(dict.fromkeys(k for r in result for k in r))
        table = Table(*columns, title=method)
        for row in result:
            table.add_row(*(cell(row.get(c, "")) for c in columns))
    elif isinstance(result, dict) and all(not isinstance(v, (dict, list)) or not v for v in result.values()):
        table = Table("key", "value", title=method)
        for key, value in result.items():
            table.add_row(key, cell(value))
    else:
        return False
    Console(width=None if sys.stdout.isatty() else PIPE_WIDTH).print(table)
    return True


@click.command(
    context_settings={
        "help_option_names": ["-h", "--help"],
        "max_content_width": 110,
        "ignore_unknown_options": True,
    }
)
@click.option("--conf", default=None, metavar="FILE", help="Configuration file (TOML).")
@click.option("--network", default=None, metavar="NAME", help="mainnet, testnet or devnet.")
@click.option("--datadir", default=None, metavar="DIR", help="The node's data directory (for the cookie).")
@click.option(
    "--rpcconnect", default="127.0.0.1", show_default=True, metavar="HOST", help="Node's RPC address."
)
@click.option("--rpcport", default=None, metavar="PORT", help="Node's RPC port [default: configured].")
@click.option("--rpcuser", default=None, metavar="USER", help="RPC user (else the cookie).")
@click.option("--rpcpassword", default=None, metavar="PASSWORD", help="RPC password.")
@click.option(
    "-rpcwait", "--rpcwait", "rpcwait", is_flag=True, help="Wait for the node's RPC server to be ready."
)
@click.option(
    "--rpcwaittimeout",
    default=0.0,
    type=float,
    metavar="SECONDS",
    help="Give up waiting after this long (0: never).",
)
@click.option("--timeout", default=DEFAULT_TIMEOUT, type=float, show_default=True, help="Seconds per call.")
@click.option(
    "--format", "fmt", type=click.Choice(["auto", "json", "table"]), default="auto", show_default=True
)
@click.argument("method")
@click.argument("params", nargs=-1)
def main(
    conf: str | None,
    network: str | None,
    datadir: str | None,
    rpcconnect: str,
    rpcport: str | None,
    rpcuser: str | None,
    rpcpassword: str | None,
    rpcwait: bool,
    rpcwaittimeout: float,
    timeout: float,
    fmt: str,
    method: str,
    params: tuple[str, ...],
) -> None:
    """Call METHOD on a running timecoind (``timecoin-cli help`` lists the methods)."""
    config = client_config(conf, network, datadir, rpcport, rpcuser, rpcpassword)
    call_params = convert_params(method, params)
    deadline = time.monotonic() + rpcwaittimeout if rpcwaittimeout > 0 else None
    while True:
        try:
            result = _call(
                config.datadir,
                rpcconnect,
                config.rpcport,
                config.rpcuser,
                config.rpcpassword,
                timeout,
                method,
                call_params,
            )
            break
        except _NotReady as e:
            if not rpcwait or (deadline is not None and time.monotonic() > deadline):
                click.echo(f"error: {e}", err=True)
                sys.exit(1)
            time.sleep(RPCWAIT_POLL)
        except JSONRPCError as e:
            if e.code is None:
                click.echo(f"error: {e.message}", err=True)
            else:
                click.echo(f"error code: {e.code}\nerror message:\n{e.message}", err=True)
            sys.exit(1)
    _render(method, result, fmt)


class _NotReady(Exception):
    """The node is not answering yet (no cookie, connection refused, warming up)."""


def _call(
    datadir: Path,
    host: str,
    port: int,
    user: str | None,
    password: str | None,
    timeout: float,
    method: str,
    params: list[Any],
) -> Any:
    if user is None or password is None:
        try:
            user, password = cookie_auth(datadir)
        except (OSError, ValueError) as e:
            raise _NotReady(
                f"cannot read the cookie in {datadir} ({e}); is timecoind running there?"
            ) from None
    client = RPCClient(host, port, user, password, timeout)
    try:
        return client.call(method, *params)
    except ConnectionError as e:
        raise _NotReady(
            f"cannot connect to the node at {host}:{port} ({e.strerror or e}); is timecoind running?"
        ) from None
    except JSONRPCError as e:
        if e.code == IN_WARMUP:
            raise _NotReady(f"node is {e.message}") from None
        if e.http_status == 401:
            raise JSONRPCError(
                None, f"the node at {host}:{port} refused the credentials (HTTP 401)", 401
            ) from None
        raise
    finally:
        client.close()


if __name__ == "__main__":
    main()
