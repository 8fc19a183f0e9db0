"""``timecoin testnet init``: the files of a network of several machines, one masternode per host
(CometBFT's ``testnet`` command is the model; docs/operator.md, "A network of several machines").

``timecoin testnet init --hosts 10.0.0.1,10.0.0.2,10.0.0.3,10.0.0.4`` writes, in ``--output``::

    genesis.json          funded accounts + one Gold masternode per host, in --hosts order
    testnet.json          the manifest: network, genesis hash, ports, and per host its address,
                          directory, P2P/RPC/metrics endpoints and public keys
    keys/accounts.json    the funded accounts' secret seeds (mode 0600; ``timecoin loadtest
                          --funding-key``); keys/faucet.key one more for a wallet (docs/wallet.md)
    node<I>/              host I's data directory, ready to copy there:
        timecoin.conf     network, datadir, masternode_key, listen/port, connect (every other
                          host), rpcbind/rpcport/rpcallowip, metrics
        genesis.json      the genesis (the node reads ``<datadir>/genesis.json``: no --genesis)
        nodekey           the node's P2P identity seed (mode 0600)
        masternode.key    the masternode's secret seed (mode 0600): the key registered in genesis,
                          which also owns the collateral and receives the payouts
        README.md         how to install and start this host, which ports to open

The other hosts are written as ``connect`` (CometBFT's ``persistent_peers``): each stays
connected and is redialled within ``reconnect_max`` (60 s, ``timecoin.p2p.config``) after a cut.
As ``seeds`` they would wait out the address book's retry delay after failed dials, from a minute
to an hour (``timecoin.p2p.addrman``), and the genesis masternodes are a full mesh (DESIGN §8)
that must come back by itself after a partition.

Every host uses the same ports (its own address tells it apart), so hosts must be distinct IP
literals (the address book keys peers by IP, ``timecoin.p2p.addrman``). Keys are derived from
``--seed`` (tests) or from 32 random bytes that are never written. Each ``timecoin.conf`` is read
back through :func:`timecoin.config.load_config` before anything is kept; the files are written in
a temporary sibling of ``--output`` and renamed into place, so a failure leaves nothing behind, and
an ``--output`` that already holds files is refused (it would hold keys).

The command writes files only: it starts no process and opens no socket.
"""

from __future__ import annotations

import ipaddress
import os
import secrets
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
import orjson

from timecoin import crypto
from timecoin.cli.netfiles import ACCOUNTS_FILE, KEY_FILE_MODE, new_network, write_funding, write_key
from timecoin.config import CONF_NAME, ConfigError, NodeConfig, load_config
from timecoin.ledger.genesis import build_genesis
from timecoin.node import GENESIS_COPY as GENESIS_FILE
from timecoin.node import NODE_KEY_FILE
from timecoin.params import DEVNET, TESTNET, NetworkParams
from timecoin.testing.chaingen import seed_key

__all__ = [
    "MANIFEST",
    "MASTERNODE_KEY_FILE",
    "MAX_HOSTS",
    "HostFiles",
    "TestnetPlan",
    "init_testnet",
    "parse_hosts",
    "testnet",
]

NETWORKS: dict[str, NetworkParams] = {p.name: p for p in (TESTNET, DEVNET)}
"""Networks this command makes a genesis for; a mainnet genesis is not a tool's output."""
MAX_HOSTS = 100
"""Most hosts one command writes (one genesis masternode each)."""
MANIFEST = "testnet.json"
MASTERNODE_KEY_FILE = "masternode.key"
README_FILE = "README.md"
KEYS_DIR = "keys"
DIR_MODE = 0o700
"""Mode of every directory written: they hold keys."""
WILDCARD_V4, WILDCARD_V6 = "0.0.0.0", "::"
LOOPBACK = "127.0.0.1"


def parse_hosts(text: str) -> list[str]:
    """``"A,B,..."`` → the hosts' IP addresses in order (normalised: ``ip_address`` text).
    ``ValueError`` for an empty list, more than :data:`MAX_HOSTS`, a name that is not an IP
    literal, or the same address twice."""
    items = [item.strip() for item in text.split(",") if item.strip()]
    if not items:
        raise ValueError("give at least one host address")
    if len(items) > MAX_HOSTS:
        raise ValueError(f"at most {MAX_HOSTS} hosts, got {len(items)}")
    hosts: list[str] = []
    for item in items:
        try:
            address = str(ipaddress.ip_address(item.removeprefix("[").removesuffix("]")))
        except ValueError:
            raise ValueError(
                f"{item!r} is not an IP address (the address book keeps peers by IP: give each host's)"
            ) from None
        if address in hosts:
            raise ValueError(
                f"{address} is given twice: each host needs its own address (`timecoin devnet` runs "
                "several nodes on one machine)"
            )
        hosts.append(address)
    return hosts


def endpoint(host: str, port: int) -> str:
    """``host:port``, an IPv6 address in brackets (the form ``seeds`` and ``connect`` take)."""
    return f"[{host}]:{port}" if ipaddress.ip_address(host).version == 6 else f"{host}:{port}"


def _toml(value: object) -> str:
    """A TOML value of a bool, int, string or list of strings (a JSON string is a TOML basic
    string, a JSON array of strings a TOML array)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    return orjson.dumps(value).decode()


@dataclass(frozen=True)
class TestnetPlan:
    """What ``testnet init`` writes: the options, checked."""

    __test__ = False  # not a pytest test class

    output: Path
    """Absolute."""
    hosts: list[str]
    params: NetworkParams
    accounts: int
    p2p_port: int
    rpc_port: int
    metrics_port: int
    rpc_allow: tuple[str, ...] = ()
    """CIDR networks (or addresses) whose clients the RPC servers serve besides loopback."""
    rpc_bind: str | None = None
    """None: every address with ``rpc_allow``, else loopback."""
    metrics_bind: str = LOOPBACK
    listen: str | None = None
    """None: every address of the host's address family."""
    datadir: Path | None = None
    """Each host's directory on that host; None: the directory written here."""
    seed: bytes | None = None
    """None: 32 random bytes."""

    def check(self) -> None:
        """``ValueError`` naming the option that is wrong."""
        ports = {
            "--p2p-port": self.p2p_port,
            "--rpc-port": self.rpc_port,
            "--metrics-port": self.metrics_port,
        }
        for name, port in ports.items():
            if not 1 <= port <= 65535:
                raise ValueError(f"{name} must be in 1..65535, got {port}")
        if len(set(ports.values())) != len(ports):
            raise ValueError(f"the P2P, RPC and metrics ports share each host: they must differ, got {ports}")
        if self.accounts < 1:
            raise ValueError(f"--accounts must be at least 1, got {self.accounts}")
        for net in self.rpc_allow:
            try:
                ipaddress.ip_network(net, strict=False)
            except ValueError:
                raise ValueError(f"--rpc-allow {net!r} is not an IP address or CIDR network") from None
        binds = {"--metrics-bind": self.metrics_bind, "--rpc-bind": self.rpc_bind, "--listen": self.listen}
        for name, address in binds.items():
            if address is None:
                continue
            try:
                ipaddress.ip_address(address)
            except ValueError:
                raise ValueError(f"{name} must be an IP address, got {address!r}") from None
        if self.datadir is not None and not self.datadir.is_absolute():
            raise ValueError(f"--datadir must be an absolute path on the hosts, got {self.datadir}")

    def host_datadir(self, index: int) -> Path:
        """Host ``index``'s data directory as its ``timecoin.conf`` names it."""
        return self.datadir if self.datadir is not None else self.output / node_dir(index)

    def host_listen(self, host: str) -> str:
        """The P2P listen address: ``listen`` if given, else every address of the host's family."""
        if self.listen is not None:
            return self.listen
        return WILDCARD_V6 if ipaddress.ip_address(host).version == 6 else WILDCARD_V4

    def host_rpc_bind(self, host: str) -> str:
        """The RPC bind address: ``rpc_bind`` if given, else every address of the host's family
        with ``rpc_allow`` (clients elsewhere get HTTP 403), else loopback."""
        if self.rpc_bind is not None:
            return self.rpc_bind
        if not self.rpc_allow:
            return LOOPBACK
        return WILDCARD_V6 if ipaddress.ip_address(host).version == 6 else WILDCARD_V4


def node_dir(index: int) -> str:
    return f"node{index}"


@dataclass(frozen=True)
class HostFiles:
    """One host's directory as written: where, and its public keys."""

    index: int
    host: str
    directory: Path
    datadir: Path
    node_key: bytes
    """Public key (32 bytes) of ``nodekey``."""
    masternode_key: bytes
    """Public key (32 bytes) of ``masternode.key``."""


def node_conf(plan: TestnetPlan, index: int) -> str:
    """Host ``index``'s ``timecoin.conf`` (TOML; docs/operator.md, "Configuration")."""
    host = plan.hosts[index]
    name = plan.params.name
    datadir = plan.host_datadir(index)
    peers = [endpoint(h, plan.p2p_port) for i, h in enumerate(plan.hosts) if i != index]
    rpc_bind = plan.host_rpc_bind(host)
    lines = [
        f"# Written by `timecoin testnet init` for host {host} ({node_dir(index)} of {len(plan.hosts)}).",
        "# Start: timecoind --datadir " + str(datadir) + "   (README.md beside this file).",
        f"network = {_toml(name)}",
        "",
        f"[{name}]",
        f"datadir = {_toml(str(datadir))}",
        f"masternode_key = {_toml(str(datadir / MASTERNODE_KEY_FILE))}",
        "",
        "# P2P: open this port to the other hosts (docs/operator.md, 'Ports, bind addresses and seeds').",
        f"listen = {_toml(plan.host_listen(host))}",
        f"port = {plan.p2p_port}",
        "# The other masternodes (CometBFT's persistent_peers): kept connected, redialled after any",
        "# cut with backoff of at most a minute; the address book learns more peers from them.",
        f"connect = {_toml(peers)}",
        "",
        "# JSON-RPC: loopback always; other clients only from rpcallowip (HTTP 403 otherwise).",
        f"rpcbind = {_toml(rpc_bind)}",
        f"rpcport = {plan.rpc_port}",
    ]
    if plan.rpc_allow:
        lines.append(f"rpcallowip = {_toml(list(plan.rpc_allow))}")
    lines += [
        "",
        "# Prometheus /metrics for your monitoring server.",
        "metrics = true",
        f"metrics_bind = {_toml(plan.metrics_bind)}",
        f"metrics_port = {plan.metrics_port}",
        "",
    ]
    return "\n".join(lines)


def node_readme(plan: TestnetPlan, files: HostFiles, genesis_hash: bytes) -> str:
    """Host ``files.index``'s ``README.md``: what the directory holds, how to install and start
    it, which ports to open."""
    name = plan.params.name
    datadir = files.datadir
    others = ", ".join(h for h in plan.hosts if h != files.host) or "none"
    remote = f"[{files.host}]" if ipaddress.ip_address(files.host).version == 6 else files.host
    # timecoin-cli dials 127.0.0.1 unless told; an RPC server on "::" is IPv6 only.
    cli = f"timecoin-cli -datadir={datadir}" + (
        " -rpcconnect=[::1]" if plan.host_rpc_bind(files.host) == WILDCARD_V6 else ""
    )
    rpc_clients = ", ".join(plan.rpc_allow) if plan.rpc_allow else "this machine only (loopback)"
    return f"""# {node_dir(files.index)}: host {files.host} of a {len(plan.hosts)}-host {name}

Written by `timecoin testnet init`. Genesis (chain id) `{genesis_hash.hex()}`.
This directory is the data directory of the masternode on {files.host}; on that host it
belongs at `{datadir}`.

* `timecoin.conf`: network, data directory, masternode key, listen address and port, peers
  kept connected (`connect`: the other hosts), RPC bind and allowed clients, metrics.
* `{GENESIS_FILE}`: the network's genesis (the node reads it from its data directory).
* `{NODE_KEY_FILE}` (mode 0600): the node's P2P identity, public key
  `{files.node_key.hex()}`.
* `{MASTERNODE_KEY_FILE}` (mode 0600): the masternode key registered in genesis, public key
  `{files.masternode_key.hex()}`. Whoever reads it signs as this masternode.

## Install and start

Copy the directory to the host keeping its modes, owned by the user that runs the node:

```bash
rsync -a {node_dir(files.index)}/ {remote}:{datadir}/
ssh {files.host} chown -R timecoin: {datadir}
```

Start it (the configuration is found in the data directory):

```bash
timecoind --datadir {datadir}
```

Under systemd (`contrib/systemd/timecoind.service`, docs/operator.md "Running under systemd"),
install `timecoin.conf` as `/etc/timecoin/timecoin.conf` and the rest as the unit's data
directory, or point the unit's `--conf`/`--datadir` here.

## Ports

| port | what | open to |
|---|---|---|
| {plan.p2p_port}/tcp | P2P | the other hosts ({others}), and any node that should join |
| {plan.rpc_port}/tcp | JSON-RPC | {rpc_clients} |
| {plan.metrics_port}/tcp | Prometheus /metrics (bound to {plan.metrics_bind}) | your monitoring server |

## Check

```bash
{cli} getblockchaininfo   # genesis {genesis_hash.hex()[:16]}…
{cli} getpeerinfo         # the other hosts
{cli} masternodestatus
```
"""


def init_testnet(plan: TestnetPlan, timestamp: int | None = None) -> dict[str, Any]:
    """Writes the files of the module docstring for ``plan``; returns the manifest it wrote.
    ``ValueError`` for a bad plan or an ``output`` that holds files; ``OSError`` if a file cannot
    be written; :class:`timecoin.config.ConfigError` if a written ``timecoin.conf`` does not
    read back as written (nothing is kept then)."""
    plan.check()
    if plan.output.exists() and (not plan.output.is_dir() or any(plan.output.iterdir())):
        raise ValueError(f"{plan.output} already exists and is not empty: give another --output")
    seed = plan.seed if plan.seed is not None else secrets.token_bytes(32)
    keys = new_network(
        seed,
        plan.accounts,
        len(plan.hosts),
        plan.params,
        int(time.time()) if timestamp is None else timestamp,
    )
    genesis_json = keys.config.to_json()
    genesis_hash = build_genesis(keys.config).hash
    plan.output.parent.mkdir(parents=True, exist_ok=True)
    work = plan.output.with_name(f".{plan.output.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}")
    work.mkdir(mode=DIR_MODE)
    try:
        (work / GENESIS_FILE).write_bytes(genesis_json)
        write_funding(work / KEYS_DIR, keys)
        hosts = []
        for index, (host, mn_secret) in enumerate(zip(plan.hosts, keys.masternodes, strict=True)):
            directory = work / node_dir(index)
            directory.mkdir(mode=DIR_MODE)
            node_secret = seed_key(seed + b"/node", index)
            files = HostFiles(
                index,
                host,
                plan.output / node_dir(index),
                plan.host_datadir(index),
                crypto.public_key(node_secret),
                crypto.public_key(mn_secret),
            )
            write_key(directory / NODE_KEY_FILE, node_secret)
            write_key(directory / MASTERNODE_KEY_FILE, mn_secret)
            (directory / GENESIS_FILE).write_bytes(genesis_json)
            conf = directory / CONF_NAME
            conf.write_text(node_conf(plan, index))
            _check_conf(conf, plan, index)
            (directory / README_FILE).write_text(node_readme(plan, files, genesis_hash))
            hosts.append(files)
        manifest = _manifest(plan, hosts, genesis_hash)
        (work / MANIFEST).write_bytes(orjson.dumps(manifest, option=orjson.OPT_INDENT_2) + b"\n")
        if plan.output.exists():
            plan.output.rmdir()  # empty (checked above); rename needs the name free or empty
        work.rename(plan.output)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return manifest


def _check_conf(path: Path, plan: TestnetPlan, index: int) -> NodeConfig:
    """Reads ``path`` as ``timecoind --conf path`` would (no environment) and checks it says what
    the plan says; :class:`ConfigError` otherwise."""
    config = load_config({"conf": str(path)}, env={})
    host = plan.hosts[index]
    expected = {
        "network": plan.params.name,
        "datadir": plan.host_datadir(index),
        "port": plan.p2p_port,
        "rpcport": plan.rpc_port,
        "metrics_port": plan.metrics_port,
        "connect": tuple((h, plan.p2p_port) for i, h in enumerate(plan.hosts) if i != index),
        "listen": plan.host_listen(host),
        "rpcbind": plan.host_rpc_bind(host),
        "metrics": True,
    }
    for key, want in expected.items():
        if getattr(config, key) != want:
            raise ConfigError(f"{key}: {path} reads back as {getattr(config, key)!r}, written {want!r}")
    return config


def _manifest(plan: TestnetPlan, hosts: Sequence[HostFiles], genesis_hash: bytes) -> dict[str, Any]:
    def url(host: str, port: int) -> str:
        return f"http://{endpoint(host, port)}"

    return {
        "network": plan.params.name,
        "genesis": GENESIS_FILE,
        "genesis_hash": genesis_hash.hex(),
        "accounts": f"{KEYS_DIR}/{ACCOUNTS_FILE}",
        "ports": {"p2p": plan.p2p_port, "rpc": plan.rpc_port, "metrics": plan.metrics_port},
        "nodes": [
            {
                "index": h.index,
                "host": h.host,
                "directory": node_dir(h.index),
                "datadir": str(h.datadir),
                "p2p": endpoint(h.host, plan.p2p_port),
                "rpc_url": url(h.host, plan.rpc_port),
                "metrics_url": (
                    None
                    if ipaddress.ip_address(plan.metrics_bind).is_loopback
                    else url(h.host, plan.metrics_port) + "/metrics"
                ),
                "node_key": h.node_key.hex(),
                "masternode_key": h.masternode_key.hex(),
            }
            for h in hosts
        ],
    }


@click.group()
def testnet() -> None:
    """Networks of several machines (docs/operator.md, "A network of several machines")."""


@testnet.command("init")
@click.option(
    "--hosts",
    required=True,
    metavar="A,B,...",
    help="The hosts' IP addresses, comma-separated: one masternode each, node0 the first.",
)
@click.option(
    "--output",
    "-o",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("testnet"),
    show_default=True,
    help="Directory to write (must not exist or be empty).",
)
@click.option(
    "--network",
    type=click.Choice(sorted(NETWORKS)),
    default=TESTNET.name,
    show_default=True,
    help="The network's rules and address prefix (devnet: 2 s blocks, for tests).",
)
@click.option(
    "--accounts", default=64, show_default=True, help="Funded genesis accounts (keys/accounts.json)."
)
@click.option("--p2p-port", type=int, default=None, help="P2P port on every host [default: the network's].")
@click.option("--rpc-port", type=int, default=None, help="JSON-RPC port [default: the network's].")
@click.option("--metrics-port", type=int, default=None, help="/metrics port [default: the network's].")
@click.option(
    "--rpc-allow",
    multiple=True,
    metavar="NET",
    help="Clients (IP or CIDR) each node's RPC serves besides loopback; repeat. With it RPC "
    "listens on every address, without it on loopback only.",
)
@click.option("--rpc-bind", default=None, metavar="HOST", help="RPC bind address (overrides the above).")
@click.option(
    "--metrics-bind",
    default=LOOPBACK,
    show_default=True,
    metavar="HOST",
    help="Address /metrics listens on (0.0.0.0 to let a monitoring server in).",
)
@click.option(
    "--listen",
    default=None,
    metavar="HOST",
    help="P2P listen address [default: every address of the host's family].",
)
@click.option(
    "--datadir",
    type=click.Path(path_type=Path),
    default=None,
    help="Each host's data directory on that host, e.g. /var/lib/timecoind [default: the "
    "directory written here, for hosts that share this file system].",
)
@click.option("--seed", default=None, help="Derive every key from this text (reproducible; tests only).")
def init(
    hosts: str,
    output: Path,
    network: str,
    accounts: int,
    p2p_port: int | None,
    rpc_port: int | None,
    metrics_port: int | None,
    rpc_allow: tuple[str, ...],
    rpc_bind: str | None,
    metrics_bind: str,
    listen: str | None,
    datadir: Path | None,
    seed: str | None,
) -> None:
    """Write a genesis and one configuration directory per host (CometBFT's `testnet` model)."""
    params = NETWORKS[network]
    try:
        host_list = parse_hosts(hosts)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--hosts") from None
    plan = TestnetPlan(
        output=output.absolute(),
        hosts=host_list,
        params=params,
        accounts=accounts,
        p2p_port=params.p2p_port if p2p_port is None else p2p_port,
        rpc_port=params.rpc_port if rpc_port is None else rpc_port,
        metrics_port=params.metrics_port if metrics_port is None else metrics_port,
        rpc_allow=rpc_allow,
        rpc_bind=rpc_bind,
        metrics_bind=metrics_bind,
        listen=listen,
        datadir=datadir,
        seed=seed.encode() if seed is not None else None,
    )
    try:
        manifest = init_testnet(plan)
    except (ValueError, ConfigError) as e:
        raise click.UsageError(str(e)) from None
    except OSError as e:
        raise click.ClickException(f"cannot write {plan.output}: {e}") from None
    click.echo(f"{network} of {len(host_list)} hosts in {plan.output} (genesis {manifest['genesis_hash']})")
    for node in manifest["nodes"]:
        click.echo(f"  {node['directory']}: {node['host']}  P2P {node['p2p']}  RPC {node['rpc_url']}")
    click.echo(
        f"Copy each nodeI/ to its host and start it: timecoind --datadir DIR (see nodeI/{README_FILE})."
    )
    click.echo(f"Funded accounts: {plan.output / KEYS_DIR / ACCOUNTS_FILE} (mode {KEY_FILE_MODE:o}).")
