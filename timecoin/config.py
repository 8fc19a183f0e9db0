"""Node configuration: defaults < ``timecoin.conf`` < ``TIMECOIN_*`` environment < command line
(DESIGN §10).

The configuration file is TOML. Top-level keys apply to every network; a section named after a
network (``[mainnet]``, ``[testnet]``, ``[devnet]``) applies only to it and overrides the top
level::

    log_level = "info"

    [devnet]
    genesis = "/etc/timecoin/devnet-genesis.json"
    connect = ["10.0.0.2:24300", "10.0.0.3:24300"]
    rpcport = 24301

The file is ``--conf`` (or ``TIMECOIN_CONF``); without it, ``<datadir>/timecoin.conf`` when the
data directory was given on the command line or in the environment, else
``~/.timecoin/timecoin.conf``; a missing default file is no error. Every key of
:data:`SETTINGS` is also ``TIMECOIN_<KEY>`` in the environment (lists comma-separated) and
``--<key>`` on the command line (``_`` written ``-``).

A bad value is a :class:`ConfigError` that names the key and where the value came from. This
module reads files and the environment only; it opens no socket and starts nothing.
"""

from __future__ import annotations

import ipaddress
import os
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from timecoin import params as network_params
from timecoin.params import NetworkParams

ENV_PREFIX = "TIMECOIN_"
CONF_NAME = "timecoin.conf"
BASE_DIR_NAME = ".timecoin"
"""The base data directory under the home directory: ``~/.timecoin/<network>/`` per network."""

LOG_LEVELS = ("debug", "info", "warning", "error")


class ConfigError(ValueError):
    """A configuration value that cannot be used; the message names the key and its source."""


# -- value parsers: each takes a value from TOML (typed) or a string (env, flags) -----------------


def _str(value: object) -> str:
    if not isinstance(value, str):
        raise ValueError(f"must be a string, got {type(value).__name__}")
    if not value:
        raise ValueError("must not be empty")
    return value


def _int_range(low: int, high: int) -> Callable[[object], int]:
    def parse(value: object) -> int:
        if isinstance(value, bool):
            raise ValueError(f"must be an integer in {low}..{high}, got a boolean")
        if isinstance(value, str):
            try:
                value = int(value.strip(), 10)
            except ValueError:
                raise ValueError(f"must be an integer in {low}..{high}, got {value!r}") from None
        if not isinstance(value, int):
            raise ValueError(f"must be an integer in {low}..{high}, got {type(value).__name__}")
        if not low <= value <= high:
            raise ValueError(f"must be an integer in {low}..{high}, got {value}")
        return value

    return parse


_port = _int_range(1, 65535)


def _bool(value: object) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("1", "true", "yes", "on"):
        return True
    if isinstance(value, str) and value.strip().lower() in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"must be true or false, got {value!r}")


def _choice(options: Sequence[str]) -> Callable[[object], str]:
    def parse(value: object) -> str:
        text = _str(value).strip().lower()
        if text not in options:
            raise ValueError(f"must be one of {', '.join(options)}, got {value!r}")
        return text

    return parse


def _path(value: object) -> Path:
    return Path(_str(value)).expanduser()


def _host(value: object) -> str:
    text = _str(value).strip()
    if any(c.isspace() for c in text) or "/" in text:
        raise ValueError(f"must be a host name or IP address, got {value!r}")
    return text


def parse_host_port(text: str) -> tuple[str, int]:
    """``"host:port"`` or ``"[v6]:port"`` → (host, port); ``ValueError`` otherwise."""
    text = text.strip()
    if text.startswith("["):
        host, sep, port = text[1:].partition("]:")
        if not sep:
            raise ValueError(f"expected [address]:port, got {text!r}")
        ipaddress.IPv6Address(host)
    else:
        host, sep, port = text.rpartition(":")
        if not sep or not host:
            raise ValueError(f"expected host:port, got {text!r}")
    return _host(host), _port(port)


def _endpoints(value: object) -> tuple[tuple[str, int], ...]:
    if isinstance(value, str):
        items: list[object] = [p for p in value.split(",") if p.strip()]
    elif isinstance(value, (list, tuple)):
        items = list(value)
    else:
        raise ValueError(f"must be a list of host:port, got {type(value).__name__}")
    out = []
    for item in items:
        if not isinstance(item, str):
            raise ValueError(
                f"must be a list of host:port strings, got an item of type {type(item).__name__}"
            )
        out.append(parse_host_port(item))
    return tuple(out)


IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def _str_list(value: object) -> list[str]:
    if isinstance(value, str):
        return [p.strip() for p in value.split(",") if p.strip()]
    if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        return [v.strip() for v in value if v.strip()]
    raise ValueError(f"must be a list of strings, got {type(value).__name__}")


def _rpcauth(value: object) -> tuple[Any, ...]:
    from timecoin.rpc.cookie import RPCAuth

    return tuple(RPCAuth.parse(item) for item in _str_list(value))


def _networks(value: object) -> tuple[IPNetwork, ...]:
    out = []
    for item in _str_list(value):
        try:
            out.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise ValueError(f"must be IP addresses or networks (CIDR), got {item!r}") from None
    return tuple(out)


def _network(value: object) -> str:
    name = _str(value).strip().lower()
    network_params.by_name(name)  # ValueError naming the known networks
    return name


# -- the settings table ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Setting:
    """One configuration key: its parser, its default (``None``: none, or computed from the
    network; see :func:`load_config`) and its help text."""

    key: str
    parse: Callable[[object], Any]
    default: object
    help: str
    is_list: bool = False
    secret: bool = False
    metavar: str = "VALUE"

    @property
    def flag(self) -> str:
        return "--" + self.key.replace("_", "-")

    @property
    def env(self) -> str:
        return ENV_PREFIX + self.key.upper()


DEFAULT_LOG_SUMMARY_INTERVAL = 60
"""Seconds between the summary lines a node logs at info (DESIGN §10: quiet at info in steady
state, one periodic summary; docs/operator.md "Logs")."""
DEFAULT_RPC_THREADS = 16
"""Requests the RPC server works on at once (Bitcoin Core's ``-rpcthreads`` default)."""
DEFAULT_RPC_WORK_QUEUE = 64
"""Requests that may wait for a worker before the server answers "overloaded" (HTTP 503)."""
DEFAULT_RPC_MAX_REQUEST = 64 * 1024 * 1024
"""Largest RPC request body, bytes: room for a ``sendrawtransactions`` batch of many max-size
transactions in hex (a 1 MB transaction is 2 MB of hex, DESIGN §4)."""

SETTINGS: tuple[Setting, ...] = (
    Setting("network", _network, "mainnet", "Network: mainnet, testnet or devnet.", metavar="NAME"),
    Setting(
        "datadir",
        _path,
        None,
        "Data directory of this network [default: ~/.timecoin/<network>].",
        metavar="DIR",
    ),
    Setting(
        "genesis",
        _path,
        None,
        "Genesis file (docs/genesis.md). Required on first start; later the copy in the data "
        "directory is used.",
        metavar="FILE",
    ),
    Setting("listen", _host, "0.0.0.0", "Address the P2P server listens on.", metavar="HOST"),
    Setting("port", _port, None, "P2P port [default: the network's].", metavar="PORT"),
    Setting(
        "connect",
        _endpoints,
        (),
        "Peers to keep connected (host:port; repeat the flag, comma-separate in the environment).",
        is_list=True,
        metavar="HOST:PORT",
    ),
    Setting("seeds", _endpoints, (), "Peers tried at start (host:port).", is_list=True, metavar="HOST:PORT"),
    Setting("rpcbind", _host, "127.0.0.1", "Address the JSON-RPC server listens on.", metavar="HOST"),
    Setting("rpcport", _port, None, "JSON-RPC port [default: the network's].", metavar="PORT"),
    Setting(
        "rpcuser",
        _str,
        None,
        "JSON-RPC user (with rpcpassword); the cookie file works regardless.",
        metavar="USER",
    ),
    Setting("rpcpassword", _str, None, "JSON-RPC password (with rpcuser).", secret=True, metavar="PASSWORD"),
    Setting(
        "rpcauth",
        _rpcauth,
        (),
        "JSON-RPC user with a salted password hash, USER:SALT$HASH (`timecoin rpcauth USER` makes "
        "one; repeat for more users).",
        is_list=True,
        secret=True,
        metavar="USER:SALT$HASH",
    ),
    Setting(
        "rpcallowip",
        _networks,
        (),
        "Client addresses (IP or CIDR network) the JSON-RPC server serves besides loopback; "
        "others get HTTP 403.",
        is_list=True,
        metavar="NET",
    ),
    Setting(
        "rpcthreads",
        _int_range(1, 1024),
        DEFAULT_RPC_THREADS,
        "JSON-RPC requests served at once.",
        metavar="N",
    ),
    Setting(
        "rpcworkqueue",
        _int_range(0, 65536),
        DEFAULT_RPC_WORK_QUEUE,
        "JSON-RPC requests that may wait; beyond, the server answers 'overloaded' (HTTP 503).",
        metavar="N",
    ),
    Setting(
        "rpcmaxrequest",
        _int_range(1024, 1 << 31),
        DEFAULT_RPC_MAX_REQUEST,
        "Largest JSON-RPC request body, bytes.",
        metavar="BYTES",
    ),
    Setting(
        "admission_max_pending",
        _int_range(1, 10_000_000),
        None,
        "Pending transactions at which sendrawtransaction(s) answer 'overloaded' (error -32001) "
        "[default: half the network's mempool limit].",
        metavar="N",
    ),
    Setting(
        "admission_max_final_bytes",
        _int_range(1, 2**40),
        None,
        "Bytes of final transactions no block holds yet at which sendrawtransaction(s) answer "
        "'overloaded' (error -32001) [default: the network's mempool byte limit].",
        metavar="BYTES",
    ),
    Setting(
        "block_slot",
        _int_range(1, 86_400),
        None,
        "Devnet only: seconds per block slot, the same on every node of the devnet "
        "(docs/operator.md) [default: the network's, 2 on a devnet].",
        metavar="SECONDS",
    ),
    Setting(
        "block_work_thread",
        _bool,
        True,
        "Check proposed blocks and build this masternode's blocks on a worker thread while the "
        "event loop goes on with votes (docs/consensus.md, Block work off the loop). Turn it off "
        "where the node has less than a core of its own (timecoin devnet does when its nodes "
        "outnumber the cores): the thread then costs more than it saves.",
        metavar="BOOL",
    ),
    Setting(
        "masternode_key",
        _path,
        None,
        "File holding this masternode's 32-byte secret key seed, in hex.",
        metavar="FILE",
    ),
    Setting(
        "log_level", _choice(LOG_LEVELS), "info", "Log level: debug, info, warning or error.", metavar="LEVEL"
    ),
    Setting("log_json", _bool, False, "Log one JSON object per line (for machines).", metavar="BOOL"),
    Setting(
        "log_summary_interval",
        _int_range(1, 86_400),
        DEFAULT_LOG_SUMMARY_INTERVAL,
        "Seconds between the info-level summary lines (docs/operator.md, Logs).",
        metavar="SECONDS",
    ),
    Setting(
        "metrics", _bool, False, "Serve Prometheus /metrics (docs/operator.md, Metrics).", metavar="BOOL"
    ),
    Setting("metrics_bind", _host, "127.0.0.1", "Address the /metrics server listens on.", metavar="HOST"),
    Setting("metrics_port", _port, None, "/metrics port [default: the network's].", metavar="PORT"),
    Setting(
        "log_file", _path, None, "Also log to this file (reopened after logrotate moves it).", metavar="FILE"
    ),
    Setting(
        "dashboard",
        _bool,
        False,
        "Serve the read-only web dashboard at /ui on the JSON-RPC port, to loopback clients only "
        "(docs/operator.md, Dashboard).",
        metavar="BOOL",
    ),
)

SETTINGS_BY_KEY = {s.key: s for s in SETTINGS}


@dataclass(frozen=True, slots=True)
class NodeConfig:
    """The effective configuration of a node; ``sources`` says where each key's value came from
    (``default``, ``<file>``, ``<file> [devnet]``, ``environment TIMECOIN_X``, ``command line --x``)."""

    network: str
    datadir: Path
    genesis: Path | None
    listen: str
    port: int
    connect: tuple[tuple[str, int], ...]
    seeds: tuple[tuple[str, int], ...]
    rpcbind: str
    rpcport: int
    rpcuser: str | None
    rpcpassword: str | None
    rpcauth: tuple[Any, ...]
    """``timecoin.rpc.cookie.RPCAuth`` entries."""
    rpcallowip: tuple[IPNetwork, ...]
    rpcthreads: int
    rpcworkqueue: int
    rpcmaxrequest: int
    masternode_key: Path | None
    log_level: str
    log_json: bool
    log_file: Path | None
    log_summary_interval: int = DEFAULT_LOG_SUMMARY_INTERVAL
    metrics: bool = False
    metrics_bind: str = "127.0.0.1"
    metrics_port: int = 0
    """The network's ``metrics_port`` unless set (:func:`load_config`)."""
    dashboard: bool = False
    """Serve ``/ui`` on the RPC server (:mod:`timecoin.dashboard`)."""
    admission_max_pending: int | None = None
    """None: the default share of the network's mempool limit (``ledger.mempool.AdmissionLimit``)."""
    admission_max_final_bytes: int | None = None
    """None: the network's mempool byte limit (``ledger.mempool.AdmissionLimit``)."""
    block_slot: int | None = None
    """A devnet's block slot, seconds (None: the network's)."""
    block_work_thread: bool = True
    """Block checks and builds on a worker thread (``ConsensusService``'s ``offload_blocks``)."""
    conf: Path | None = None
    """The configuration file read, if any."""
    sources: Mapping[str, str] = field(default_factory=dict)

    @property
    def params(self) -> NetworkParams:
        """The network's parameters, with ``block_slot`` if set (a devnet's)."""
        params = network_params.by_name(self.network)
        if self.block_slot is not None:
            params = replace(params, block_slot=float(self.block_slot))
        return params

    def describe(self) -> list[tuple[str, str, str]]:
        """(key, value, source) of every setting, secrets masked: what the node logs at start."""
        rows = []
        for s in SETTINGS:
            value = getattr(self, s.key)
            if s.secret and value not in (None, ()):
                shown = "****"
            elif s.is_list:
                shown = ",".join(f"{v[0]}:{v[1]}" if isinstance(v, tuple) else str(v) for v in value) or "-"
            else:
                shown = "-" if value is None else str(value)
            rows.append((s.key, shown, self.sources.get(s.key, "default")))
        return rows


def default_base_dir(home: Path | None = None) -> Path:
    """``~/.timecoin``."""
    return (home if home is not None else Path.home()) / BASE_DIR_NAME


def _read_conf(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"conf: {path} is not valid TOML: {e}") from None
    except OSError as e:
        raise ConfigError(f"conf: cannot read {path}: {e.strerror}") from None


def _check_keys(table: Mapping[str, Any], where: str, allow_sections: bool) -> None:
    for key, value in table.items():
        if allow_sections and key in network_params.NETWORKS:
            if not isinstance(value, dict):
                raise ConfigError(f"{key}: in {where} must be a [{key}] section")
            if "network" in value:
                raise ConfigError(f"network: may not be set inside the [{key}] section of {where}")
            _check_keys(value, f"{where} [{key}]", False)
            continue
        if key not in SETTINGS_BY_KEY:
            raise ConfigError(f"{key}: unknown key in {where} (known: {', '.join(SETTINGS_BY_KEY)})")


def load_config(
    flags: Mapping[str, object] | None = None,
    env: Mapping[str, str] | None = None,
    home: Path | None = None,
) -> NodeConfig:
    """The effective configuration from ``flags`` (key → value given on the command line; a
    ``conf`` key names the file), ``env`` (default: ``os.environ``) and the configuration file.

    Raises :class:`ConfigError` naming the key and source of the first bad value.
    """
    flags = {k: v for k, v in (flags or {}).items() if v is not None and v != ()}
    env = os.environ if env is None else env
    for key in flags:
        if key != "conf" and key not in SETTINGS_BY_KEY:
            raise ConfigError(f"{key}: unknown setting")

    # Where is the configuration file? From flags or environment only.
    conf_path: Path | None = None
    conf_explicit = False
    if "conf" in flags:
        conf_path, conf_explicit = _parse("conf", _path, flags["conf"], "command line --conf"), True
    elif ENV_PREFIX + "CONF" in env:
        conf_path, conf_explicit = (
            _parse("conf", _path, env[ENV_PREFIX + "CONF"], "environment TIMECOIN_CONF"),
            True,
        )
    raw_datadir = flags.get("datadir", env.get(SETTINGS_BY_KEY["datadir"].env))
    if conf_path is None:
        if raw_datadir is not None:
            conf_path = _path(raw_datadir) / CONF_NAME
        else:
            conf_path = default_base_dir(home) / CONF_NAME
    file_values: dict[str, Any] = {}
    if conf_path.exists() or conf_explicit:
        file_values = _read_conf(conf_path)
        _check_keys(file_values, str(conf_path), True)
    else:
        conf_path = None

    def lookup(key: str, network: str | None) -> tuple[object, str] | None:
        s = SETTINGS_BY_KEY[key]
        if key in flags:
            value = flags[key]
            if s.is_list and isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
                value = ",".join(value)
            return value, f"command line {s.flag}"
        if s.env in env:
            return env[s.env], f"environment {s.env}"
        section = file_values.get(network) if network else None
        if isinstance(section, dict) and key in section:
            return section[key], f"{conf_path} [{network}]"
        if key in file_values:
            return file_values[key], str(conf_path)
        return None

    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    found = lookup("network", None)
    network = _parse("network", _network, found[0], found[1]) if found else "mainnet"
    values["network"], sources["network"] = network, found[1] if found else "default"
    params = network_params.by_name(network)
    computed_defaults: dict[str, object] = {
        "datadir": default_base_dir(home) / network,
        "port": params.p2p_port,
        "rpcport": params.rpc_port,
        "metrics_port": params.metrics_port,
    }
    for s in SETTINGS:
        if s.key == "network":
            continue
        found = lookup(s.key, network)
        if found is None:
            values[s.key] = computed_defaults.get(s.key, s.default)
            sources[s.key] = "default"
        else:
            values[s.key] = _parse(s.key, s.parse, found[0], found[1])
            sources[s.key] = found[1]
    if values["block_slot"] is not None and network != "devnet":
        raise ConfigError(
            f"block_slot: only a devnet's block slot can be set, not {network}'s "
            f"(from {sources['block_slot']})"
        )
    if (values["rpcuser"] is None) != (values["rpcpassword"] is None):
        given = "rpcuser" if values["rpcuser"] is not None else "rpcpassword"
        raise ConfigError(
            f"{given}: set rpcuser and rpcpassword together (only {given} is set, from {sources[given]})"
        )
    return NodeConfig(**values, conf=conf_path, sources=sources)


def _parse(key: str, parse: Callable[[object], Any], value: object, source: str) -> Any:
    try:
        return parse(value)
    except ValueError as e:
        raise ConfigError(f"{key}: {e} (from {source})") from None
