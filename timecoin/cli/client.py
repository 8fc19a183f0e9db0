"""``timecoin-cli``: call any JSON-RPC method of a running node, as ``bitcoin-cli`` does
(DESIGN §10; docs/operator.md, "timecoin-cli").

    timecoin-cli [options] <command> [params]          call a method
    timecoin-cli [options] -named <command> [name=value]...
    timecoin-cli [options] -getinfo                    a summary of the node
    timecoin-cli [options] help [command]              the node's methods

Options come before the command, each written ``-name=value`` or ``--name=value`` (as Bitcoin
Core's), or ``-name value`` / ``--name value`` for those taking a value; flags are ``-name``,
``-name=1``/``-name=0`` or ``-noname``. The first word that does not start with ``-`` is the
command; every word after it is a parameter (``getblockhash -1`` passes ``-1``). An unknown
option is an error (exit status 1), never a command.

Parameters the method declares as strings are passed as typed; the others are parsed as JSON
(``getblockhash 0``, ``getblock <hash> 2``, ``sendrawtransactions '["00..", "01.."]'``). The
table of which is which is :mod:`timecoin.rpc.clientparams`; for a method missing from it each
word is JSON if it parses, else a string.

The node is found as ``timecoind`` finds its settings (:func:`timecoin.config.load_config`: the
data directory's ``timecoin.conf`` sets the network and ports; environment; these options), and
the credentials are ``-rpcuser``/``-rpcpassword`` (or the configured pair), else the cookie
(``-rpccookiefile``, by default ``<datadir>/.cookie``). String results print as they are, others
as JSON; on a terminal, peer and masternode lists and flat objects print as tables (``-json`` or
``-format=json`` keeps JSON). An RPC error prints its code and message to stderr and exits with
status 1.

Start-up imports only the standard library, orjson, the configuration reader and the client
(no aiohttp, no node code): a call costs the interpreter's start plus one round trip.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from timecoin.config import ConfigError, NodeConfig, load_config
from timecoin.masternode.weights import WEIGHT_UNIT
from timecoin.rpc.client import DEFAULT_TIMEOUT, JSONRPCError, RPCClient
from timecoin.rpc.clientparams import PARAMS, VARIADIC
from timecoin.rpc.cookie import COOKIE_FILE, read_cookie
from timecoin.rpc.errors import IN_WARMUP

RPCWAIT_POLL = 0.25
"""Seconds between attempts while ``-rpcwait`` waits for the node."""
PIPE_WIDTH = 200
"""Columns of a table written to a pipe or file (``-format=table`` off a terminal)."""
DEFAULT_RPCCONNECT = "127.0.0.1"
EXIT_USAGE = 1
"""Exit status of a command line that cannot be used (bitcoin-cli's too)."""
GETINFO_CALLS = ("getblockchaininfo", "getnetworkinfo", "getmempoolinfo", "getconsensusinfo")
"""The methods ``-getinfo`` combines (one batch; not atomic, as Core's ``-getinfo``)."""


class UsageError(Exception):
    """A command line that cannot be used: printed as ``error: ...``, exit status 1."""


@dataclass(frozen=True, slots=True)
class Option:
    """One ``-name`` option: ``dest`` is the field of :class:`CliArgs` it sets; a flag takes no
    value (``const`` is what ``-name`` alone sets, for flags that select a network)."""

    dest: str
    help: str
    metavar: str | None = None
    const: object = True

    @property
    def takes_value(self) -> bool:
        return self.metavar is not None


OPTIONS: dict[str, Option] = {
    "conf": Option("conf", "Configuration file (TOML) [default: <datadir>/timecoin.conf].", "FILE"),
    "datadir": Option("datadir", "The node's data directory: its timecoin.conf and cookie.", "DIR"),
    "network": Option("network", "mainnet, testnet or devnet [default: configured, else mainnet].", "NAME"),
    "chain": Option("network", "The same as -network (Bitcoin Core's name).", "NAME"),
    "mainnet": Option("network", "The same as -network=mainnet.", const="mainnet"),
    "testnet": Option("network", "The same as -network=testnet.", const="testnet"),
    "devnet": Option("network", "The same as -network=devnet.", const="devnet"),
    "rpcconnect": Option(
        "rpcconnect", f"The node's RPC address, HOST or HOST:PORT [default: {DEFAULT_RPCCONNECT}].", "HOST"
    ),
    "rpcport": Option("rpcport", "The node's RPC port [default: configured, else the network's].", "PORT"),
    "rpcuser": Option("rpcuser", "RPC user (with -rpcpassword; else the cookie).", "USER"),
    "rpcpassword": Option("rpcpassword", "RPC password.", "PASSWORD"),
    "rpccookiefile": Option(
        "rpccookiefile", "The cookie file; relative to the data directory [default: .cookie].", "FILE"
    ),
    "stdinrpcpass": Option("stdinrpcpass", "Read the RPC password from the first line of stdin."),
    "stdin": Option("stdin", "Read more parameters from stdin, one per line, after the others."),
    "named": Option("named", "Pass parameters by name: NAME=VALUE words."),
    "getinfo": Option("getinfo", "Print a summary of the node (chain, peers, mempool, consensus)."),
    "rpcwait": Option("rpcwait", "Wait for the node's RPC server to be ready."),
    "rpcwaittimeout": Option("rpcwaittimeout", "Give up waiting after this many seconds (0: never).", "SEC"),
    "rpcclienttimeout": Option("timeout", f"Seconds a call may take [default: {DEFAULT_TIMEOUT:g}].", "SEC"),
    "timeout": Option("timeout", "The same as -rpcclienttimeout.", "SEC"),
    "json": Option("fmt", "Print JSON, never a table.", const="json"),
    "format": Option("fmt", "auto (tables on a terminal), json or table [default: auto].", "FORMAT"),
    "version": Option("version", "Print the version and exit."),
    "help": Option("help", "Print this help and exit."),
    "h": Option("help", "The same as -help."),
    "?": Option("help", "The same as -help."),
}
"""Every option, by the name written after the dash(es)."""
FORMATS = ("auto", "json", "table")


@dataclass
class CliArgs:
    """A parsed command line (None: not given)."""

    conf: str | None = None
    datadir: str | None = None
    network: str | None = None
    rpcconnect: str | None = None
    rpcport: str | None = None
    rpcuser: str | None = None
    rpcpassword: str | None = None
    rpccookiefile: str | None = None
    stdinrpcpass: bool = False
    stdin: bool = False
    named: bool = False
    getinfo: bool = False
    rpcwait: bool = False
    rpcwaittimeout: float = 0.0
    timeout: float = DEFAULT_TIMEOUT
    fmt: str = "auto"
    version: bool = False
    help: bool = False
    method: str | None = None
    params: list[str] = field(default_factory=list)


def _flag_value(name: str, value: str) -> bool:
    text = value.strip().lower()
    if text in ("", "1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise UsageError(f"option -{name} is a flag: give -{name}, -{name}=1 or -{name}=0, not {value!r}")


def _seconds(name: str, value: str, positive: bool) -> float:
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if seconds != seconds or seconds < 0 or (positive and seconds == 0) or seconds == float("inf"):
        need = "a positive" if positive else "a non-negative"
        raise UsageError(f"option -{name} must be {need} number of seconds, got {value!r}")
    return seconds


def parse_args(argv: Sequence[str]) -> CliArgs:
    """The options, command and parameters of a command line (module docstring);
    :class:`UsageError` for an unknown option, a flag given a value it cannot mean, or an
    option that needs a value and has none."""
    args = CliArgs()
    i = 0
    while i < len(argv):
        word = argv[i]
        if word == "--":
            i += 1
            break
        if not word.startswith("-"):
            break
        body = word[2:] if word.startswith("--") else word[1:]
        name, eq, value = body.partition("=")
        option = OPTIONS.get(name)
        negated = False
        if option is None and name.startswith("no") and not eq:
            option = OPTIONS.get(name[2:])
            negated = option is not None and not option.takes_value and option.const is True
            if not negated:
                option = None
        if option is None:
            raise UsageError(
                f"unknown option {word.partition('=')[0]} (timecoin-cli -help lists the options)"
            )
        if option.takes_value:
            if not eq:
                if i + 1 >= len(argv):
                    raise UsageError(f"option -{name} needs a value: -{name}={option.metavar}")
                i += 1
                value = argv[i]
            setattr(args, option.dest, _option_value(name, option, value))
        elif option.const is True:
            setattr(args, option.dest, not negated and _flag_value(name, value))
        elif _flag_value(name, value):  # -testnet, -testnet=1 (Core's forms); -testnet=0 sets nothing
            setattr(args, option.dest, option.const)
        i += 1
    if i < len(argv):
        args.method = argv[i]
        args.params = list(argv[i + 1 :])
    return args


def _option_value(name: str, option: Option, value: str) -> object:
    if option.dest == "rpcwaittimeout":
        return _seconds(name, value, positive=False)
    if option.dest == "timeout":
        return _seconds(name, value, positive=True)
    if option.dest == "fmt":
        if value not in FORMATS:
            raise UsageError(f"option -{name} must be one of {', '.join(FORMATS)}, got {value!r}")
        return value
    if not value:
        raise UsageError(f"option -{name} needs a value: -{name}={option.metavar}")
    return value


def usage() -> str:
    """The ``-help`` text: the forms of the command and every option."""
    lines = [
        "TIME Coin RPC client (timecoin-cli)",
        "",
        "Usage:",
        "  timecoin-cli [options] <command> [params]          send a command to the node",
        "  timecoin-cli [options] -named <command> [name=value]...",
        "  timecoin-cli [options] -getinfo                    a summary of the node",
        "  timecoin-cli [options] help [command]              list the commands, or describe one",
        "",
        "Options (-name=value or --name=value; -name value also works for options with a value):",
    ]
    for name, option in OPTIONS.items():
        shown = f"-{name}" + (f"=<{option.metavar.lower()}>" if option.metavar else "")
        lines.append(f"  {shown:<28} {option.help}")
    return "\n".join(lines)


# -- configuration and credentials ------------------------------------------------------------------


def client_config(
    conf: str | None,
    network: str | None,
    datadir: str | None,
    rpcport: str | None,
    rpcuser: str | None,
    rpcpassword: str | None,
) -> NodeConfig:
    """The node configuration an RPC client reads (file < environment < these flags; None:
    not given), to find the node's port and cookie. ``click.UsageError`` naming a bad key (for
    the click commands that share it: ``timecoin wallet``)."""
    try:
        return _load_config(conf, network, datadir, rpcport, rpcuser, rpcpassword)
    except UsageError as e:
        import click

        raise click.UsageError(str(e)) from None


def _load_config(
    conf: str | None,
    network: str | None,
    datadir: str | None,
    rpcport: str | None,
    rpcuser: str | None,
    rpcpassword: str | None,
) -> NodeConfig:
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
        raise UsageError(str(e)) from None


def _endpoint(rpcconnect: str | None, config: NodeConfig, rpcport_given: bool) -> tuple[str, int]:
    """(host, port) to dial: ``-rpcconnect`` is HOST, HOST:PORT, [V6] or [V6]:PORT (a bare IPv6
    address too); its port is used unless ``-rpcport`` is given (Core's rule), else the
    configured port. :class:`UsageError` for a malformed one."""
    host, port = rpcconnect or DEFAULT_RPCCONNECT, config.rpcport
    if rpcconnect and rpcconnect.startswith("[") and rpcconnect.endswith("]"):
        host = rpcconnect[1:-1]
    elif rpcconnect and (rpcconnect.startswith("[") or rpcconnect.count(":") == 1):
        from timecoin.config import parse_host_port

        try:
            host, connect_port = parse_host_port(rpcconnect)
        except ValueError as e:
            raise UsageError(f"option -rpcconnect: {e}") from None
        if not rpcport_given:
            port = connect_port
    return host, port


# -- calling ------------------------------------------------------------------------------------------


def convert_params(method: str, args: Sequence[str]) -> list[Any]:
    """Command-line words → JSON-RPC positional params, by the method's parameter kinds
    (:mod:`timecoin.rpc.clientparams`). :class:`UsageError` for a word a JSON parameter cannot
    parse."""
    declared = PARAMS.get(method)
    out: list[Any] = []
    for i, arg in enumerate(args):
        if declared is None:
            out.append(_json_or_string(arg))
            continue
        if i < len(declared):
            name, as_string = declared[i]
        elif method in VARIADIC and declared:
            name, as_string = declared[-1]
        else:
            out.append(_json_or_string(arg))  # too many: the node says so (-32602)
            continue
        out.append(arg if as_string else _json(method, i + 1, name, arg))
    return out


def convert_named(method: str, args: Sequence[str]) -> dict[str, Any]:
    """``-named`` words (``NAME=VALUE``) → JSON-RPC named params, by kind as
    :func:`convert_params`. :class:`UsageError` for a word without ``=``, a name given twice or
    a value its JSON parameter cannot parse."""
    declared = dict(PARAMS.get(method, ()))
    out: dict[str, Any] = {}
    for position, arg in enumerate(args, 1):
        name, eq, value = arg.partition("=")
        if not eq or not name:
            raise UsageError(f"-named: parameter {position} ({arg!r}) is not NAME=VALUE")
        if name in out:
            raise UsageError(f"-named: parameter {name} given twice")
        as_string = declared.get(name)
        if as_string is None:
            out[name] = _json_or_string(value)  # an unknown name: the node says so (-32602)
        else:
            out[name] = value if as_string else _json(method, position, name, value)
    return out


def _json(method: str, position: int, name: str, text: str) -> Any:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError as e:
        raise UsageError(f"parameter {position} ({name}) of {method} must be JSON: {e}") from None


def _json_or_string(text: str) -> Any:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return text


class NotReady(Exception):
    """The node is not answering yet (no cookie, connection refused, warming up)."""


@dataclass(frozen=True, slots=True)
class Target:
    """Where and how to call: address, credentials (None: read the cookie at each attempt,
    since a starting node writes it late) and the cookie's path."""

    host: str
    port: int
    user: str | None
    password: str | None
    cookie: Path
    timeout: float

    def client(self) -> RPCClient:
        user, password = self.user, self.password
        if user is None or password is None:
            try:
                user, password = read_cookie(self.cookie)
            except (OSError, ValueError) as e:
                raise NotReady(
                    f"cannot read the cookie {self.cookie} ({e}); is timecoind running with that "
                    "data directory? (-datadir, -rpccookiefile, or -rpcuser/-rpcpassword)"
                ) from None
        return RPCClient(self.host, self.port, user, password, self.timeout)

    def run(self, work: Callable[[RPCClient], Any]) -> Any:
        """``work(client)``, turning a refused connection or a warming-up node into
        :class:`NotReady` and a 401 into a plain :class:`JSONRPCError`."""
        client = self.client()
        try:
            return work(client)
        except ConnectionError as e:
            raise NotReady(
                f"cannot connect to the node at {self.host}:{self.port} ({e.strerror or e}); "
                "is timecoind running?"
            ) from None
        except OSError as e:  # unreachable host, name resolution, timeout
            raise NotReady(f"cannot reach the node at {self.host}:{self.port}: {e}") from None
        except JSONRPCError as e:
            if e.code == IN_WARMUP:
                raise NotReady(f"node is {e.message}") from None
            if e.http_status == 401:
                raise JSONRPCError(
                    None, f"the node at {self.host}:{self.port} refused the credentials (HTTP 401)", 401
                ) from None
            if e.http_status == 403:
                raise JSONRPCError(
                    None,
                    f"the node at {self.host}:{self.port} does not serve this address (HTTP 403: rpcallowip)",
                    403,
                ) from None
            raise
        finally:
            client.close()


def _target(args: CliArgs) -> Target:
    password = args.rpcpassword
    if args.stdinrpcpass:
        password = sys.stdin.readline().rstrip("\r\n")
        if args.rpcuser is None:
            raise UsageError("-stdinrpcpass needs -rpcuser")
    user = args.rpcuser
    if (user is None) != (password is None):
        raise UsageError("give -rpcuser and -rpcpassword together (or neither, for the cookie)")
    config = _load_config(args.conf, args.network, args.datadir, args.rpcport, user, password)
    host, port = _endpoint(args.rpcconnect, config, args.rpcport is not None)
    cookie = Path(args.rpccookiefile).expanduser() if args.rpccookiefile else Path(COOKIE_FILE)
    if not cookie.is_absolute():
        cookie = config.datadir / cookie
    return Target(host, port, config.rpcuser, config.rpcpassword, cookie, args.timeout)


def _with_wait(args: CliArgs, attempt: Callable[[], Any]) -> Any:
    deadline = time.monotonic() + args.rpcwaittimeout if args.rpcwaittimeout > 0 else None
    while True:
        try:
            return attempt()
        except NotReady:
            if not args.rpcwait or (deadline is not None and time.monotonic() > deadline):
                raise
            time.sleep(RPCWAIT_POLL)


# -- output -------------------------------------------------------------------------------------------


def _echo(text: str, err: bool = False) -> None:
    stream = sys.stderr if err else sys.stdout
    stream.write(text + "\n")


def _tables(fmt: str) -> bool:
    return fmt == "table" or (fmt == "auto" and sys.stdout.isatty())


def render(method: str, result: Any, fmt: str) -> None:
    """Prints a result: nothing for null, strings as they are, a table when asked or on a
    terminal (peer and masternode lists, flat objects), else JSON indented by 2."""
    if result is None:
        return
    if isinstance(result, str):
        _echo(result)
        return
    if _tables(fmt) and _print_table(method, result):
        return
    _echo(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode())


def _cell(value: Any) -> str:
    return value if isinstance(value, str) else orjson.dumps(value).decode()


def _ago(unix: object, now: float) -> str:
    if not isinstance(unix, int | float) or isinstance(unix, bool):
        return "-"
    seconds = max(0, int(now - unix))
    if seconds < 120:
        return f"{seconds} s ago"
    if seconds < 7200:
        return f"{seconds // 60} min ago"
    return f"{seconds // 3600} h ago"


def masternode_status(row: dict[str, Any]) -> str:
    """The status word of a ``masternodelist`` row in the compact table: ``ineligible`` (no
    reward share), else ``online``/``offline`` by heartbeat, ``-`` when the node tracks none."""
    if row.get("eligible") is False:
        return "ineligible"
    online = row.get("online")
    return "-" if online is None else "online" if online else "offline"


def masternode_rows(result: list[dict[str, Any]], now: float) -> list[tuple[str, str, str, str, str]]:
    """The compact ``masternodelist`` table (Dash's ``masternodelist`` default view): id (the
    public key's first 16 hex digits), tier, status, weight (in units of 1.0) and last seen
    (relative)."""
    rows = []
    for m in result:
        weight = m.get("weight")
        rows.append(
            (
                str(m.get("public_key", ""))[:16],
                str(m.get("tier", "-")),
                masternode_status(m),
                f"{weight / WEIGHT_UNIT:.2f}" if isinstance(weight, int) else "-",
                _ago(m.get("last_seen"), now),
            )
        )
    return rows


def _print_table(method: str, result: Any) -> bool:
    from rich.console import Console
    from rich.table import Table

    if method == "masternodelist" and isinstance(result, list):
        table = Table("id", "tier", "status", "weight", "last seen", title=f"{method} ({len(result)})")
        for row in masternode_rows(result, time.time()):
            table.add_row(*row)
        table.caption = "full rows: timecoin-cli -json masternodelist"
    elif method == "getpeerinfo" and isinstance(result, list):
        table = Table(
            "id", "addr", "dir", "node key", "mn", "height", "ping ms", "sent", "recv", "rep", title=method
        )
        for peer in result:
            ping = peer.get("pingtime")
            table.add_row(
                _cell(peer.get("id")),
                _cell(peer.get("addr")),
                "in" if peer.get("inbound") else "out",
                (peer.get("node_key") or "-")[:16],
                "yes" if peer.get("masternode") else "",
                _cell(peer.get("height")),
                f"{ping * 1000:.1f}" if isinstance(ping, int | float) else "-",
                _cell(peer.get("bytessent")),
                _cell(peer.get("bytesrecv")),
                _cell(peer.get("reputation")),
            )
    elif isinstance(result, list) and result and all(isinstance(r, dict) for r in result):
        columns = list(dict.fromkeys(k for r in result for k in r))
        table = Table(*columns, title=method)
        for row in result:
            table.add_row(*(_cell(row.get(c, "")) for c in columns))
    elif isinstance(result, dict) and all(not isinstance(v, dict | list) or not v for v in result.values()):
        table = Table("key", "value", title=method)
        for key, value in result.items():
            table.add_row(key, _cell(value))
    else:
        return False
    Console(width=None if sys.stdout.isatty() else PIPE_WIDTH).print(table)
    return True


def getinfo(client: RPCClient) -> dict[str, Any]:
    """The ``-getinfo`` summary from one batch of :data:`GETINFO_CALLS`: version, chain, blocks,
    headers, best block, verification progress, connections (in, out, total), mempool (size,
    bytes), masternode, production gate (null without consensus), warnings. A
    :class:`JSONRPCError` of a call other than ``getconsensusinfo`` is raised."""
    replies = client.batch([(m, []) for m in GETINFO_CALLS])
    results: dict[str, Any] = {}
    for method, reply in zip(GETINFO_CALLS, replies, strict=True):
        error = reply.get("error")
        if error is not None:
            if method == "getconsensusinfo":
                results[method] = {}
                continue
            raise JSONRPCError(error.get("code"), str(error.get("message")))
        results[method] = reply.get("result") or {}
    chain, net, mempool = results["getblockchaininfo"], results["getnetworkinfo"], results["getmempoolinfo"]
    return {
        "version": net.get("version"),
        "chain": chain.get("chain"),
        "blocks": chain.get("blocks"),
        "headers": chain.get("headers"),
        "bestblockhash": chain.get("bestblockhash"),
        "verificationprogress": chain.get("verificationprogress"),
        "connections": {
            "in": net.get("connections_in"),
            "out": net.get("connections_out"),
            "total": net.get("connections"),
        },
        "mempool": {"size": mempool.get("size"), "bytes": mempool.get("bytes")},
        "masternode": net.get("masternode"),
        "production_gate": results["getconsensusinfo"].get("production_gate"),
        "warnings": chain.get("warnings") or net.get("warnings") or "",
    }


def getinfo_text(info: dict[str, Any]) -> str:
    """The ``-getinfo`` summary as lines for a terminal (as Core's human-readable ``-getinfo``)."""
    progress = info.get("verificationprogress")
    gate = info.get("production_gate")
    if gate is None:
        gate_text = "-"
    elif gate.get("open"):
        gate_text = f"open ({gate.get('online')} of {gate.get('required')} required masternodes online)"
    else:
        gate_text = f"closed: {gate.get('reason')}"
    c, m = info["connections"], info["mempool"]
    return "\n".join(
        [
            f"Chain: {info.get('chain')}",
            f"Blocks: {info.get('blocks')}",
            f"Headers: {info.get('headers')}",
            f"Best block: {info.get('bestblockhash')}",
            "Verification progress: "
            + (f"{progress * 100:.4f}%" if isinstance(progress, int | float) else "-"),
            "",
            f"Network: in {c['in']}, out {c['out']}, total {c['total']}",
            f"Version: {info.get('version')}",
            f"Masternode: {'yes' if info.get('masternode') else 'no'}",
            f"Production gate: {gate_text}",
            f"Mempool: {m['size']} transactions, {m['bytes']} bytes",
            "",
            f"Warnings: {info.get('warnings') or '(none)'}",
        ]
    )


# -- entry point ------------------------------------------------------------------------------------


def run(argv: Sequence[str]) -> int:
    """Runs one command line; the exit status (0, or 1 for a usage error, an unreachable node or
    an RPC error, each reported on stderr)."""
    try:
        args = parse_args(argv)
        if args.help:
            _echo(usage())
            return 0
        if args.version:
            from timecoin import __version__

            _echo(f"TIME Coin RPC client version {__version__}")
            return 0
        if args.stdin:
            args.params += [line.rstrip("\r\n") for line in sys.stdin if line.rstrip("\r\n")]
        if args.getinfo:
            if args.method is not None:
                raise UsageError(f"-getinfo takes no command or parameters, got {args.method!r}")
        elif args.method is None:
            raise UsageError(
                "too few parameters: give a command (timecoin-cli help lists them, -help the options)"
            )
        method = args.method
        call_params: list[Any] | dict[str, Any] = []
        if method is not None:
            call_params = (
                convert_named(method, args.params) if args.named else convert_params(method, args.params)
            )
        target = _target(args)
    except UsageError as e:
        _echo(f"error: {e}", err=True)
        return EXIT_USAGE
    try:
        if args.getinfo:
            info = _with_wait(args, lambda: target.run(getinfo))
            if args.fmt == "json" or (args.fmt == "auto" and not sys.stdout.isatty()):
                _echo(orjson.dumps(info, option=orjson.OPT_INDENT_2).decode())
            else:
                _echo(getinfo_text(info))
            return 0
        assert method is not None
        if isinstance(call_params, dict):
            named = call_params
            result = _with_wait(args, lambda: target.run(lambda c: c.call(method, **named)))
        else:
            positional = call_params
            result = _with_wait(args, lambda: target.run(lambda c: c.call(method, *positional)))
    except NotReady as e:
        _echo(f"error: {e}", err=True)
        return 1
    except JSONRPCError as e:
        if e.code is None:
            _echo(f"error: {e.message}", err=True)
        else:
            _echo(f"error code: {e.code}\nerror message:\n{e.message}", err=True)
        return 1
    render(method, result, args.fmt)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """The ``timecoin-cli`` console script."""
    try:
        return run(sys.argv[1:] if argv is None else argv)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `timecoin-cli ... | head`
        return 0


if __name__ == "__main__":
    sys.exit(main())
