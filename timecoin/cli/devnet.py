"""``timecoin devnet``: a local devnet of N masternode ``timecoind`` processes on loopback
(DESIGN §10, §11).

The working directory holds everything (reused when it already has a genesis)::

    genesis.json          funded accounts + N Gold masternodes (timecoin.cli.netfiles)
    keys/accounts.json    the accounts' 32-byte secret seeds, hex (mode 0600; the load test spends them)
    keys/faucet.key       one more funded account (1,000,000 TIME) the load test never spends, for
                          ``timecoin wallet import-key`` (docs/wallet.md)
    keys/mnI.key          masternode I's secret seed, hex (mode 0600)
    nodeI/                node I's data directory (stderr.log inside; timecoin.conf: its network and
                          ports, so ``timecoin-cli -datadir=nodeI`` reaches it)
    devnet.json           the manifest: ports, data directories, pids (``timecoin loadtest --devnet``)

Node I listens on ``base_port + 3I`` (P2P), ``+1`` (RPC, with the web dashboard on at
``/ui/``), ``+2`` (metrics, on), all on 127.0.0.1, and connects to every node before it (a full
mesh). The devnet's block slot is
``DEVNET.block_slot`` (2 s). The command shows a live table until Ctrl-C, SIGTERM or
``--duration``, or with ``--load`` runs the load test and prints its summary; then it stops every
node with SIGTERM, waits, and SIGKILLs what is left. It never touches a node it did not start.

``--load --sweep 1000,2000,4000`` (or ``1000:8000:500``) runs one fresh devnet per run (in
``<workdir>/sweep-<rate>``, ``sweep-<rate>-<k>`` for the k-th of ``--repeat`` runs, so no run
inherits another's backlog or spent coins), each loaded for ``--duration`` s, stepping up the
rate until a step is past the knee, with the worst node's event-loop lag (p99 and max over the
run, ``getruntimeinfo``) beside each rate; the sweep itself (bounds of the knee, table,
``<workdir>/sweep.json``, ``sweep.png``) is :mod:`timecoin.loadtest.sweep`, shared with
``timecoin loadtest --sweep`` (docs/loadtest.md).
"""

from __future__ import annotations

import asyncio
import http.client
import math
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

import click
import orjson
from rich.console import Console
from rich.live import Live
from rich.table import Table

from timecoin.cli.netfiles import FAUCET_KEY, new_network, write_funding, write_key
from timecoin.config import CONF_NAME
from timecoin.ledger.genesis import GenesisConfig
from timecoin.loadtest.sweep import parse_rates, run_sweep
from timecoin.loadtest.sweep import run_row as sweep_row
from timecoin.looplag import MAX_WINDOW
from timecoin.params import DEVNET
from timecoin.rpc.client import JSONRPCError, RPCClient, cookie_auth
from timecoin.rpc.errors import IN_WARMUP

__all__ = ["FAUCET_KEY", "Devnet", "DevnetNode", "PORTS_PER_NODE", "devnet", "load_manifest", "sweep_row"]


PORTS_PER_NODE = 3
"""P2P, RPC, metrics."""
MAX_NODES = 16
STOP_TIMEOUT = 20.0
"""Seconds the nodes get to stop after SIGTERM before SIGKILL."""
START_TIMEOUT = 60.0
"""Seconds a node gets to answer RPC after it is started."""
REFRESH = 1.0
"""Seconds between refreshes of the live table."""
MANIFEST = "devnet.json"
FINALIZED_METRIC = "timecoin_finality_transactions_finalized_total"


@dataclass
class DevnetNode:
    """One node of the devnet: its index, data directory and ports, and the process once started."""

    index: int
    datadir: Path
    p2p_port: int
    rpc_port: int
    metrics_port: int
    process: subprocess.Popen[bytes] | None = None
    _rpc: RPCClient | None = None

    def rpc(self) -> RPCClient:
        if self._rpc is None:
            user, password = cookie_auth(self.datadir)
            self._rpc = RPCClient("127.0.0.1", self.rpc_port, user, password, timeout=30)
        return self._rpc

    def finalized(self) -> int | None:
        """``timecoin_finality_transactions_finalized_total`` from /metrics, None if unreadable."""
        conn = http.client.HTTPConnection("127.0.0.1", self.metrics_port, timeout=2)
        try:
            conn.request("GET", "/metrics")
            text = conn.getresponse().read().decode()
        except OSError:
            return None
        finally:
            conn.close()
        for line in text.splitlines():
            if line.startswith(FINALIZED_METRIC + " "):
                return int(float(line.split()[1]))
        return None


def block_work_thread(nodes: int, cores: int | None = None) -> bool:
    """Whether the devnet's nodes check and build blocks on a worker thread (the node setting
    ``block_work_thread``): only if each has a core of its own, ``cores`` being those this
    process may run on (default: its CPU affinity). With four nodes on two cores the thread
    contends with the loops for the GIL and the cores, and the saturated devnet's finality tail
    grew (docs/benchmarks.md, "a block's check and build off the event loop")."""
    available = len(os.sched_getaffinity(0)) if cores is None else cores
    return nodes <= available


class Devnet:
    """The N processes of one devnet over one working directory."""

    def __init__(self, workdir: Path, nodes: int, base_port: int, accounts: int, seed: bytes) -> None:
        if not 1 <= nodes <= MAX_NODES:
            raise click.BadParameter(f"--nodes must be in 1..{MAX_NODES}, got {nodes}")
        if not 1024 <= base_port <= 65535 - PORTS_PER_NODE * nodes:
            raise click.BadParameter(f"--base-port {base_port} leaves no room for {nodes} nodes")
        self.workdir = workdir
        self.seed, self.accounts = seed, accounts
        self.nodes = [
            DevnetNode(
                i,
                workdir / f"node{i}",
                base_port + PORTS_PER_NODE * i,
                base_port + PORTS_PER_NODE * i + 1,
                base_port + PORTS_PER_NODE * i + 2,
            )
            for i in range(nodes)
        ]
        self.genesis_file = workdir / "genesis.json"
        self.keys_dir = workdir / "keys"

    # -- files -------------------------------------------------------------------------------------

    def create(self) -> GenesisConfig:
        """Writes the genesis and the keys, unless the working directory already has them."""
        self.keys_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        if self.genesis_file.exists():
            config = GenesisConfig.from_json(self.genesis_file.read_bytes())
            if len(config.masternodes) != len(self.nodes):
                raise click.UsageError(
                    f"{self.genesis_file} registers {len(config.masternodes)} masternodes, "
                    f"--nodes is {len(self.nodes)}: give another --workdir"
                )
            return config
        keys = new_network(self.seed, self.accounts, len(self.nodes), DEVNET, int(time.time()))
        write_funding(self.keys_dir, keys)
        for i, key in enumerate(keys.masternodes):
            write_key(self.keys_dir / f"mn{i}.key", key)
        self.genesis_file.write_bytes(keys.config.to_json())
        return keys.config

    def write_manifest(self) -> None:
        doc = {
            "genesis": str(self.genesis_file),
            "accounts": str(self.keys_dir / "accounts.json"),
            "nodes": [
                {
                    "index": n.index,
                    "datadir": str(n.datadir),
                    "p2p_port": n.p2p_port,
                    "rpc_port": n.rpc_port,
                    "metrics_port": n.metrics_port,
                    "pid": n.process.pid if n.process is not None else None,
                }
                for n in self.nodes
            ],
        }
        (self.workdir / MANIFEST).write_bytes(orjson.dumps(doc, option=orjson.OPT_INDENT_2))

    # -- processes -----------------------------------------------------------------------------------

    def args(self, node: DevnetNode) -> list[str]:
        connect = [a for n in self.nodes[: node.index] for a in ("--connect", f"127.0.0.1:{n.p2p_port}")]
        return [
            sys.executable,
            "-m",
            "timecoin.cli.daemon",
            "--network",
            DEVNET.name,
            "--datadir",
            str(node.datadir),
            "--genesis",
            str(self.genesis_file),
            "--listen",
            "127.0.0.1",
            "--port",
            str(node.p2p_port),
            "--rpcbind",
            "127.0.0.1",
            "--rpcport",
            str(node.rpc_port),
            "--masternode-key",
            str(self.keys_dir / f"mn{node.index}.key"),
            "--metrics",
            "true",
            "--metrics-port",
            str(node.metrics_port),
            "--dashboard",
            "true",
            "--block-work-thread",
            "true" if block_work_thread(len(self.nodes)) else "false",
            *connect,
        ]

    def start(self) -> None:
        """Starts every node (own session: a terminal's Ctrl-C reaches only this command, which
        then stops them in order) and waits for their RPC servers and then for the full mesh
        (each node connected to every other), so nothing submitted next misses a peer.
        ``click.ClickException`` if a node exits or either wait passes :data:`START_TIMEOUT`."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("TIMECOIN_")}
        for node in self.nodes:
            node.datadir.mkdir(parents=True, exist_ok=True)
            write_node_conf(node)
            with (node.datadir / "stderr.log").open("ab") as stderr:
                node.process = subprocess.Popen(
                    self.args(node), stdout=subprocess.DEVNULL, stderr=stderr, env=env, start_new_session=True
                )
        self.write_manifest()
        deadline = time.monotonic() + START_TIMEOUT
        for node in self.nodes:
            while not self._ready(node):
                if time.monotonic() > deadline:
                    raise click.ClickException(
                        f"node {node.index} did not answer RPC within {START_TIMEOUT:.0f} s"
                    )
                time.sleep(0.1)
        peers = len(self.nodes) - 1
        for node in self.nodes:
            while not self._ready(node) or node.rpc().getconnectioncount() < peers:
                if time.monotonic() > deadline:
                    raise click.ClickException(
                        f"node {node.index} did not connect to its {peers} peers within {START_TIMEOUT:.0f} s"
                    )
                time.sleep(0.1)

    def _ready(self, node: DevnetNode) -> bool:
        assert node.process is not None
        if node.process.poll() is not None:
            tail = (node.datadir / "stderr.log").read_text(errors="replace")[-2000:]
            raise click.ClickException(
                f"node {node.index} exited with status {node.process.returncode}:\n{tail}"
            )
        try:
            node.rpc().getblockcount()
        except (OSError, ValueError):
            node._rpc = None
            return False
        except JSONRPCError as e:
            if e.code == IN_WARMUP:
                return False
            raise
        return True

    def stop(self) -> list[int | None]:
        """SIGTERM to every running node, wait up to :data:`STOP_TIMEOUT` s, SIGKILL the rest.
        The exit statuses (negative: killed by that signal; None: never started)."""
        for node in self.nodes:
            if node._rpc is not None:
                node._rpc.close()
                node._rpc = None
            if node.process is not None and node.process.poll() is None:
                node.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT
        statuses: list[int | None] = []
        for node in self.nodes:
            if node.process is None:
                statuses.append(None)
                continue
            try:
                statuses.append(node.process.wait(max(0.0, deadline - time.monotonic())))
            except subprocess.TimeoutExpired:
                node.process.kill()
                statuses.append(node.process.wait())
        return statuses

    # -- status ---------------------------------------------------------------------------------------

    def table(self) -> Table:
        table = Table(title=f"devnet: {len(self.nodes)} masternodes ({self.workdir})")
        for column in ("node", "height", "tip", "peers", "mempool", "finalized", "masternodes online"):
            table.add_column(column, justify="left" if column == "tip" else "right")
        for node in self.nodes:
            try:
                rpc = node.rpc()
                info = rpc.getblockchaininfo()
                row = [
                    str(info["blocks"]),
                    info["bestblockhash"][:16] + "…",
                    str(rpc.getconnectioncount()),
                    str(rpc.getmempoolinfo()["size"]),
                    str(finalized) if (finalized := node.finalized()) is not None else "-",
                    f"{sum(1 for m in rpc.masternodelist() if m['online'])}/{len(self.nodes)}",
                ]
            except (OSError, JSONRPCError) as e:
                node._rpc = None
                row = ["-", f"unreachable: {e}"[:40], "-", "-", "-", "-"]
            table.add_row(str(node.index), *row)
        return table


def write_node_conf(node: DevnetNode) -> None:
    """Writes ``<datadir>/timecoin.conf`` with the node's network and ports (the flags it is
    started with say the same), so ``timecoin-cli -datadir=<datadir>`` and the wallet find it
    as they find any node: by its data directory (docs/operator.md)."""
    (node.datadir / CONF_NAME).write_text(
        "# Written by `timecoin devnet` (rewritten at each start): how tools reach this node.\n"
        f'network = "{DEVNET.name}"\n\n'
        f"[{DEVNET.name}]\n"
        f"port = {node.p2p_port}\n"
        f"rpcport = {node.rpc_port}\n"
        f"metrics_port = {node.metrics_port}\n"
    )


def load_manifest(workdir: Path) -> dict[str, Any]:
    """The manifest a running ``timecoin devnet`` wrote; ``click.UsageError`` if there is none."""
    path = workdir / MANIFEST
    try:
        doc: dict[str, Any] = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError) as e:
        raise click.UsageError(f"{path}: no devnet manifest ({e})") from None
    return doc


class _Terminate(Exception):
    """SIGTERM reached the devnet command."""


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise _Terminate


@click.command()
@click.option("--nodes", "-n", default=4, show_default=True, help="Masternodes (one process each).")
@click.option("--accounts", default=64, show_default=True, help="Funded genesis accounts.")
@click.option(
    "--workdir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("devnet"),
    show_default=True,
    help="Working directory (genesis, keys, data directories); reused if it has a genesis.",
)
@click.option(
    "--base-port",
    default=DEVNET.p2p_port,
    show_default=True,
    envvar="TIMECOIN_DEVNET_BASE_PORT",
    show_envvar=True,
    help="Node I uses base+3I .. base+3I+2.",
)
@click.option("--seed", default="timecoin-dev", show_default=True, help="Seed of every key of a new devnet.")
@click.option("--duration", type=float, default=None, help="Seconds to run (default: until Ctrl-C).")
@click.option(
    "--load", is_flag=True, help="Run the load test (--rate for --duration s), print its summary, stop."
)
@click.option("--rate", type=float, default=1000.0, show_default=True, help="Load test target, tx/s.")
@click.option(
    "--sweep",
    metavar="RATES",
    default=None,
    help="With --load: step the offered rate (R1,R2,... or START:STOP:STEP tx/s), a fresh devnet "
    "per run, each loaded for --duration s, until past the knee (highest rate finalized at >= 95 % "
    "with p99 < 1 s, nothing lost, nodes agreeing); writes WORKDIR/sweep.json and sweep.png "
    "(docs/loadtest.md).",
)
@click.option(
    "--repeat",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="With --sweep: runs per rate (a rate is within the knee only if every run is).",
)
def devnet(
    nodes: int,
    accounts: int,
    workdir: Path,
    base_port: int,
    seed: str,
    duration: float | None,
    load: bool,
    rate: float,
    sweep: str | None,
    repeat: int,
) -> None:
    """Run a local devnet of N masternodes, optionally under load (docs/devnet.md, docs/loadtest.md)."""
    console = Console()
    if repeat != 1 and sweep is None:
        raise click.UsageError("--repeat goes with --sweep")
    if sweep is not None:
        if not load:
            raise click.UsageError("--sweep needs --load")
        try:
            rates = parse_rates(sweep)
        except ValueError as e:
            raise click.BadParameter(str(e), param_hint="--sweep") from None
        _sweep(workdir.absolute(), nodes, base_port, accounts, seed, rates, repeat, duration or 30.0, console)
        return
    net = Devnet(workdir.absolute(), nodes, base_port, accounts, seed.encode())
    config = net.create()
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    failure = None
    try:
        console.print(f"starting {nodes} nodes in {net.workdir} (ports from {base_port})")
        net.start()
        console.print(f"dashboard: http://127.0.0.1:{net.nodes[0].rpc_port}/ui/ (docs/devnet.md)")
        if load:
            failure = load_failure(_run_load(net, config, rate, duration or 10.0, console))
        else:
            deadline = None if duration is None else time.monotonic() + duration
            with Live(net.table(), console=console, refresh_per_second=2) as live:
                while deadline is None or time.monotonic() < deadline:
                    time.sleep(min(REFRESH, max(0.0, deadline - time.monotonic())) if deadline else REFRESH)
                    live.update(net.table())
    except (KeyboardInterrupt, _Terminate):
        console.print("interrupted")
    finally:
        statuses = net.stop()
        signal.signal(signal.SIGTERM, previous)
        net.write_manifest()
        console.print("stopped: exit statuses " + ", ".join(str(s) for s in statuses))
    if any(s not in (0, None) for s in statuses):
        raise click.ClickException("a node did not stop cleanly (see its stderr.log)")
    if failure is not None:
        raise click.ClickException(failure)


def load_failure(report: dict[str, Any]) -> str | None:
    """Why a load test's ``report`` is a failure of the network, not a measurement: transactions
    lost (accepted, then neither final nor rejected) or nodes that do not agree on the chain
    (DESIGN §12); ``None`` otherwise. Speed and refusals under overload are results, never
    failures (docs/loadtest.md)."""
    problems = []
    if report.get("lost"):
        problems.append(f"{report['lost']} transactions lost")
    if not report.get("nodes_agree"):
        problems.append("the nodes do not agree on the chain")
    return "load test failed: " + "; ".join(problems) if problems else None


def _run_load(
    net: Devnet, config: GenesisConfig, rate: float, duration: float, console: Console
) -> dict[str, Any]:
    from timecoin.loadtest.runner import LoadTestConfig, run_loadtest, summary_lines
    from timecoin.loadtest.sampler import NodeProbe
    from timecoin.loadtest.submitter import Endpoint

    keys = [bytes.fromhex(k) for k in orjson.loads((net.keys_dir / "accounts.json").read_bytes())]
    endpoints = [Endpoint.from_datadir(n.datadir, n.rpc_port) for n in net.nodes]
    probes = [
        NodeProbe(f"http://127.0.0.1:{n.metrics_port}/metrics", n.process.pid if n.process else None)
        for n in net.nodes
    ]
    out = net.workdir / "loadtest"
    report = asyncio.run(
        run_loadtest(LoadTestConfig(config, keys, endpoints, rate, duration, out, probes=probes), console)
    )
    for line in summary_lines(report):
        console.print(line)
    console.print(f"report: {out / 'loadtest.json'}, plot: {out / 'loadtest.png'}")
    return report


def _loop_lag(net: Devnet, seconds: float) -> dict[str, float | None]:
    """The worst node's event-loop lag p99 and max (ms) over the last ``seconds`` (the run)."""
    window = max(1, min(int(MAX_WINDOW), math.ceil(seconds)))
    lags = [n.rpc().getruntimeinfo(window)["loop_lag_ms"] for n in net.nodes]
    worst = {}
    for stat in ("p99", "max"):
        values = [lag[stat] for lag in lags if lag[stat] is not None]
        worst[stat] = max(values) if values else None
    return worst


def _sweep(
    workdir: Path,
    nodes: int,
    base_port: int,
    accounts: int,
    seed: str,
    rates: list[float],
    repeat: int,
    duration: float,
    console: Console,
) -> None:
    def run(rate: float, k: int) -> dict[str, Any]:
        name = f"sweep-{rate:g}" + (f"-{k + 1}" if k else "")
        net = Devnet(workdir / name, nodes, base_port, accounts, seed.encode())
        config = net.create()
        previous = signal.signal(signal.SIGTERM, _on_sigterm)
        try:
            console.print(f"{nodes} nodes in {net.workdir}, {duration:g} s of load")
            net.start()
            started = time.monotonic()
            report = _run_load(net, config, rate, duration, console)
            report["loop_lag_ms"] = _loop_lag(net, time.monotonic() - started)
            return report
        finally:
            net.stop()
            signal.signal(signal.SIGTERM, previous)
            net.write_manifest()

    parameters = {"nodes": nodes, "duration_s": duration, "engine": "devnet", "accounts": accounts}
    run_sweep(rates, repeat, run, workdir, console, parameters, interrupts=(KeyboardInterrupt, _Terminate))
