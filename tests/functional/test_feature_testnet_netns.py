"""Four hosts with their own addresses: ``timecoin testnet init`` directories run in four network
namespaces, under load, through a partition of one host (issue 14 item 2; DESIGN §13 "Many
machines"; docs/operator.md, "A network of several machines").

How: ``timecoin testnet init --network devnet --hosts 10.77.N.1,...,4 --rpc-allow 10.77.N.0/24``
writes the genesis and one directory per host. The test (root only) makes a bridge in the root
namespace holding 10.77.N.254, four namespaces, and a veth pair per namespace with one end on the
bridge and the other in the namespace holding that host's address; names carry a random run id
and N is a /24 no interface uses yet, so parallel or leftover runs do not collide. Each node is
``timecoind --datadir nodeI`` run with ``ip netns exec``: its configuration, keys and genesis come
from the directory alone, as on a real host, and its peers are the other hosts' addresses (no
loopback anywhere). From the root namespace, over the bridge:

1. every node is connected to exactly the other three hosts, by their addresses, each proven as
   its genesis masternode, and runs the node key written for it;
2. ``timecoin loadtest --rpc`` (the four nodes' RPC URLs, their cookies) runs load across them:
   every transaction sent is final, nothing is lost, the four agree;
3. host 3's bridge port is taken down (its cable pulled): the other three keep committing
   blocks and finalize a second load run sent to them, while host 3, asked from inside its own
   namespace, stays behind;
4. the link comes back: all four reach the same tip with the same UTXO set hash, and every node
   stops cleanly.

Everything the test creates (processes, namespaces, veth pairs, bridge) is removed in ``finally``
even when a step fails.
"""

from __future__ import annotations

import functools
import ipaddress
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import orjson
import pytest

from timecoin.rpc.client import JSONRPCError, RPCClient, cookie_auth
from timecoin.rpc.errors import IN_WARMUP
from timecoin.testing.node import TestNode, wait_until

pytestmark = [
    pytest.mark.skipif(
        not hasattr(os, "geteuid") or os.geteuid() != 0,
        reason="needs root: it creates network namespaces, veth pairs and a bridge",
    ),
    pytest.mark.skipif(shutil.which("ip") is None, reason="needs iproute2's `ip` (apt-get install iproute2)"),
]

HOSTS = 4
PARTITIONED = 3
"""The host whose link goes down."""
SUBNET_PREFIX = "10.77"
"""Hosts get SUBNET_PREFIX.N.1..4, the bridge SUBNET_PREFIX.N.254."""
BRIDGE_HOST = 254
LOAD_RATE = 40
"""tx/s offered by each load run: the test shows the path, not throughput."""
LOAD_SECONDS = 3
BLOCKS_WHILE_PARTITIONED = 2
"""Blocks (2 s devnet slots) the three must commit while host 3 is cut off."""
IP_TIMEOUT = 20.0
STOP_TIMEOUT = 30.0
LOAD_TIMEOUT = 150.0


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Runs ``ip ARGS``; ``AssertionError`` with ip's message if it fails and ``check``."""
    done = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=IP_TIMEOUT)
    if check and done.returncode != 0:
        raise AssertionError(f"ip {' '.join(args)}: {done.stderr.strip()}")
    return done


def free_subnet() -> int:
    """A third octet N such that no interface address or route of the root namespace is in
    SUBNET_PREFIX.N.0/24, picked at random so that parallel runs rarely try the same one."""
    used = ip("-o", "-4", "addr", "show").stdout + ip("-4", "route", "show", "table", "all").stdout
    candidates = [n for n in range(256) if f"{SUBNET_PREFIX}.{n}." not in used]
    if not candidates:
        raise AssertionError(f"every {SUBNET_PREFIX}.N.0/24 is in use on this host")
    return secrets.choice(candidates)


class NamespaceNet:
    """A bridge in the root namespace and one namespace per host joined to it by a veth pair."""

    def __init__(self, hosts: int) -> None:
        run = secrets.token_hex(3)
        self.subnet = free_subnet()
        self.bridge = f"tc{run}br"
        self.namespaces = [f"timecoin-{run}-h{i}" for i in range(hosts)]
        self.host_ends = [f"tc{run}h{i}" for i in range(hosts)]  # on the bridge; <= 15 chars
        self.ns_ends = [f"tc{run}n{i}" for i in range(hosts)]  # inside namespace i
        self.addresses = [f"{SUBNET_PREFIX}.{self.subnet}.{i + 1}" for i in range(hosts)]
        self.bridge_address = f"{SUBNET_PREFIX}.{self.subnet}.{BRIDGE_HOST}"
        self.network = str(ipaddress.ip_network(f"{self.bridge_address}/24", strict=False))

    def create(self) -> None:
        ip("link", "add", self.bridge, "type", "bridge")
        # Bridged frames skip the host's iptables (br_netfilter): a FORWARD policy of DROP, as
        # container hosts set, would otherwise cut the hosts off from each other.
        ip("link", "set", self.bridge, "type", "bridge", "nf_call_iptables", "0")
        ip("addr", "add", f"{self.bridge_address}/24", "dev", self.bridge)
        ip("link", "set", self.bridge, "up")
        for ns, host_end, ns_end, address in zip(
            self.namespaces, self.host_ends, self.ns_ends, self.addresses, strict=True
        ):
            ip("netns", "add", ns)
            ip("link", "add", host_end, "type", "veth", "peer", "name", ns_end)
            ip("link", "set", ns_end, "netns", ns)
            ip("link", "set", host_end, "master", self.bridge)
            ip("link", "set", host_end, "up")
            ip("-n", ns, "addr", "add", f"{address}/24", "dev", ns_end)
            ip("-n", ns, "link", "set", ns_end, "up")
            ip("-n", ns, "link", "set", "lo", "up")

    def exec_args(self, index: int, argv: list[str]) -> list[str]:
        """``argv`` run inside host ``index``'s namespace (``ip netns exec`` execs it: same pid)."""
        return ["ip", "netns", "exec", self.namespaces[index], *argv]

    def set_link(self, index: int, up: bool) -> None:
        """Host ``index``'s bridge port up or down: its cable plugged in or pulled."""
        ip("link", "set", self.host_ends[index], "up" if up else "down")

    def remove(self) -> list[str]:
        """Deletes everything :meth:`create` made (whatever of it exists); ip's complaints."""
        errors = []
        for name in self.host_ends:
            done = ip("link", "del", name, check=False)  # takes the namespace end with it
            if done.returncode != 0 and "Cannot find device" not in done.stderr:
                errors.append(done.stderr.strip())
        for ns in self.namespaces:
            done = ip("netns", "del", ns, check=False)
            if done.returncode != 0 and "No such file" not in done.stderr:
                errors.append(done.stderr.strip())
        done = ip("link", "del", self.bridge, check=False)
        if done.returncode != 0 and "Cannot find device" not in done.stderr:
            errors.append(done.stderr.strip())
        return errors


class Host:
    """One node: its ``testnet init`` directory, its address, and its process once started."""

    def __init__(self, index: int, directory: Path, address: str, rpc_port: int) -> None:
        self.index, self.directory, self.address, self.rpc_port = index, directory, address, rpc_port
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://{self.address}:{self.rpc_port}"

    def rpc(self, timeout: float = 10.0) -> RPCClient:
        """A new RPC client over the bridge (the node's current cookie)."""
        return RPCClient(self.address, self.rpc_port, *cookie_auth(self.directory), timeout=timeout)

    def call(self, method: str, *params: object) -> Any:
        client = self.rpc()
        try:
            return client.call(method, *params)
        finally:
            client.close()

    def log_tail(self) -> str:
        path = self.directory / "stderr.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""

    def answers(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(f"node {self.index} exited ({self.process.returncode}):\n{self.log_tail()}")
        try:
            self.call("getblockcount")
        except (OSError, ValueError):
            return False
        except JSONRPCError as e:
            if e.code == IN_WARMUP:
                return False
            raise
        return True


def start(net: NamespaceNet, host: Host) -> None:
    """``timecoind --datadir DIR`` in the host's namespace: what a real host runs."""
    argv = [sys.executable, "-m", "timecoin.cli.daemon", "--datadir", str(host.directory)]
    with (host.directory / "stderr.log").open("ab") as stderr:
        host.process = subprocess.Popen(
            net.exec_args(host.index, argv),
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            env=TestNode.environment(),
            start_new_session=True,
        )


def stop(hosts: list[Host]) -> list[int | None]:
    """SIGTERM every running node, wait, SIGKILL what is left; the exit statuses."""
    for host in hosts:
        if host.process is not None and host.process.poll() is None:
            host.process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT
    statuses: list[int | None] = []
    for host in hosts:
        if host.process is None:
            statuses.append(None)
            continue
        try:
            statuses.append(host.process.wait(max(0.0, deadline - time.monotonic())))
        except subprocess.TimeoutExpired:
            host.process.kill()
            statuses.append(host.process.wait())
    return statuses


def loadtest(targets: list[Host], out: Path, accounts: Path) -> dict[str, object]:
    """``timecoin loadtest --rpc URL --rpc-cookie FILE ...`` from the root namespace; its report.
    ``AssertionError`` with its output unless it exits 0 (every threshold met: nothing lost, the
    targets agree)."""
    argv = [sys.executable, "-m", "timecoin.cli.main", "loadtest"]
    for host in targets:
        argv += ["--rpc", host.url, "--rpc-cookie", str(host.directory / ".cookie")]
    argv += ["--funding-key", str(accounts), "--rate", str(LOAD_RATE), "--duration", str(LOAD_SECONDS)]
    argv += ["--out", str(out)]
    done = subprocess.run(
        argv, capture_output=True, text=True, timeout=LOAD_TIMEOUT, env=TestNode.environment()
    )
    assert done.returncode == 0, (
        f"loadtest exited {done.returncode}:\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
    )
    report: dict[str, object] = orjson.loads((out / "loadtest.json").read_bytes())
    return report


def cli_in_namespace(net: NamespaceNet, host: Host, *args: str) -> str:
    """``timecoin-cli -datadir=DIR ARGS`` inside the host's own namespace (over its loopback)."""
    argv = [sys.executable, "-m", "timecoin.cli.client", f"-datadir={host.directory}", *args]
    done = subprocess.run(
        net.exec_args(host.index, argv),
        capture_output=True,
        text=True,
        timeout=60,
        env=TestNode.environment(),
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def tip_and_utxos(host: Host) -> tuple[str, str]:
    info = host.call("gettxoutsetinfo")
    assert isinstance(info, dict)
    return info["bestblock"], info["utxosethash"]


def test_four_hosts_in_namespaces_load_partition_heal(tmp_path: Path) -> None:
    net = NamespaceNet(HOSTS)
    out = tmp_path / "testnet"
    init = subprocess.run(
        [
            sys.executable,
            "-m",
            "timecoin.cli.main",
            "testnet",
            "init",
            "--network",
            "devnet",
            "--hosts",
            ",".join(net.addresses),
            "--rpc-allow",
            net.network,
            "--accounts",
            "8",
            "--output",
            str(out),
            "--seed",
            "timecoin-netns",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env=TestNode.environment(),
    )
    assert init.returncode == 0, init.stderr
    manifest = orjson.loads((out / "testnet.json").read_bytes())
    hosts = [
        Host(n["index"], out / n["directory"], n["host"], manifest["ports"]["rpc"]) for n in manifest["nodes"]
    ]
    assert [h.address for h in hosts] == net.addresses
    try:
        net.create()
        for host in hosts:
            start(net, host)
        for host in hosts:
            wait_until(
                host.answers, 90, interval=0.2, what=f"node {host.index} answering RPC over the bridge"
            )

        # 1. A full mesh over the hosts' own addresses, each peer proven as its genesis masternode.
        masternode_of = {n["host"]: n["masternode_key"] for n in manifest["nodes"]}

        def meshed(host: Host) -> bool:
            peers = host.call("getpeerinfo")
            assert isinstance(peers, list)
            seen = {p["addr"].rpartition(":")[0]: p.get("masternode") for p in peers if p["established"]}
            expected = {h.address: masternode_of[h.address] for h in hosts if h is not host}
            return seen == expected

        for host in hosts:
            wait_until(
                functools.partial(meshed, host), 60, interval=0.2, what=f"node {host.index}'s full mesh"
            )
            info = host.call("getnetworkinfo")
            assert isinstance(info, dict)
            assert info["node_key"] == manifest["nodes"][host.index]["node_key"]
            assert info["masternode"] is True

        # 2. Load across the four.
        accounts = out / manifest["accounts"]
        report = loadtest(hosts, tmp_path / "load-all", accounts)
        assert report["submitted"] and report["finalized"] == report["submitted"], report
        assert report["lost"] == 0 and report["nodes_agree"] is True

        # 3. Host 3's cable pulled: the other three keep committing and finalizing.
        majority = [h for h in hosts if h.index != PARTITIONED]
        isolated = hosts[PARTITIONED]
        net.set_link(PARTITIONED, False)
        cut_at = max(int(h.call("getblockcount")) for h in majority)
        report = loadtest(majority, tmp_path / "load-partitioned", accounts)
        assert report["submitted"] and report["finalized"] == report["submitted"], report
        assert report["lost"] == 0 and report["nodes_agree"] is True
        wait_until(
            lambda: all(int(h.call("getblockcount")) >= cut_at + BLOCKS_WHILE_PARTITIONED for h in majority),
            60,
            interval=0.2,
            what=f"{BLOCKS_WHILE_PARTITIONED} blocks on the three while host {PARTITIONED} is cut off",
        )
        behind = int(cli_in_namespace(net, isolated, "getblockcount"))
        ahead = min(int(h.call("getblockcount")) for h in majority)
        assert behind < ahead, (
            f"host {PARTITIONED} at {behind} kept up with the others at {ahead} while cut off"
        )

        # 4. Heal: one tip and one UTXO set hash on all four.
        net.set_link(PARTITIONED, True)

        def agree() -> bool:
            try:  # the first calls over the restored link may time out
                states = {tip_and_utxos(h) for h in hosts}
                return len(states) == 1 and int(isolated.call("getblockcount")) > ahead
            except OSError:
                return False

        wait_until(agree, 90, interval=0.3, what="the four hosts on one tip and UTXO set hash after the heal")
        statuses = stop(hosts)
        assert statuses == [0] * HOSTS, [(s, h.log_tail()) for s, h in zip(statuses, hosts, strict=True)]
    finally:
        stop(hosts)
        errors = net.remove()
    assert not errors, errors
