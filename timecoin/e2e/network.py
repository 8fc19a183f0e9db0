"""The masternode processes of one e2e run, laid out as ``timecoin devnet`` lays out a devnet
(:class:`timecoin.cli.devnet.Devnet`: genesis, keys, ``node<i>/`` data directories, ports
base+3i, full mesh) and started one by one, each in its own cgroup when the run partitions.

Kill (SIGKILL), restart on the same data directory, pause (SIGSTOP) and resume (SIGCONT) act on
the one process of a node and never on anything this object did not start.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import orjson

from timecoin.cli.devnet import Devnet, DevnetNode
from timecoin.e2e.perturb import Cgroups
from timecoin.ledger.genesis import GenesisConfig
from timecoin.loadtest.submitter import Endpoint
from timecoin.rpc.client import JSONRPCError, RPCClient, cookie_auth
from timecoin.rpc.errors import IN_WARMUP

__all__ = ["DEVNET_SEED", "START_TIMEOUT", "E2ENetwork", "NodeUnavailable"]

START_TIMEOUT = 90.0
"""Seconds a node gets to answer RPC after it is (re)started, and the network to form its full
mesh at the start: generous, the hosts that run this are shared."""
READY_POLL = 0.2
"""Seconds between two readiness probes."""
DEVNET_SEED = b"timecoin-e2e"
"""Seed of every key of an e2e devnet (:func:`timecoin.testing.chaingen.devnet_genesis`)."""
HTTP_UNAUTHORIZED = 401


class NodeUnavailable(RuntimeError):
    """A node exited, or did not answer RPC or join the mesh in time; the message has its log tail."""


class E2ENetwork:
    """``masternodes`` nodes over ``workdir`` (``accounts`` funded genesis accounts)."""

    def __init__(
        self, workdir: Path, masternodes: int, accounts: int, base_port: int, cgroups: Cgroups | None
    ) -> None:
        self.devnet = Devnet(workdir, masternodes, base_port, accounts, DEVNET_SEED)
        self.cgroups = cgroups
        self.config: GenesisConfig | None = None

    @property
    def nodes(self) -> list[DevnetNode]:
        return self.devnet.nodes

    @property
    def workdir(self) -> Path:
        return self.devnet.workdir

    def create(self) -> GenesisConfig:
        """Writes genesis and keys (:meth:`Devnet.create`); the genesis configuration."""
        self.config = self.devnet.create()
        return self.config

    def account_keys(self) -> list[bytes]:
        """The funded accounts' 32-byte seeds, in genesis order."""
        return [bytes.fromhex(k) for k in orjson.loads((self.devnet.keys_dir / "accounts.json").read_bytes())]

    def masternode_key(self, index: int) -> bytes:
        """Masternode ``index``'s 32-byte secret seed."""
        return bytes.fromhex((self.devnet.keys_dir / f"mn{index}.key").read_text().strip())

    def endpoints(self) -> list[Endpoint]:
        """Every node's RPC endpoint (cookie credentials, re-read after a restart)."""
        return [Endpoint.from_datadir(n.datadir, n.rpc_port) for n in self.nodes]

    # -- processes -----------------------------------------------------------------------------------

    def _command(self, node: DevnetNode) -> list[str]:
        args = self.devnet.args(node)
        if self.cgroups is None:
            return args
        # The shell joins the node's cgroup, then becomes the daemon (same pid): every socket
        # the node opens belongs to that group from the first.
        return [
            "/bin/sh",
            "-c",
            'echo 0 > "$0" && exec "$@"',
            str(self.cgroups.procs_file(node.index)),
            *args,
        ]

    def start(self, index: int) -> None:
        """Starts node ``index`` (own session, stderr appended to ``node<i>/stderr.log``)."""
        node = self.nodes[index]
        if node.process is not None and node.process.poll() is None:
            raise RuntimeError(f"node {index} is already running")
        node.datadir.mkdir(parents=True, exist_ok=True)
        node._rpc = None
        env = {k: v for k, v in os.environ.items() if not k.startswith("TIMECOIN_")}
        with (node.datadir / "stderr.log").open("ab") as stderr:
            node.process = subprocess.Popen(
                self._command(node), stdout=subprocess.DEVNULL, stderr=stderr, env=env, start_new_session=True
            )

    def log_tail(self, index: int, chars: int = 3000) -> str:
        path = self.nodes[index].datadir / "stderr.log"
        return path.read_text(errors="replace")[-chars:] if path.exists() else ""

    def client(self, index: int, timeout: float = 10.0) -> RPCClient:
        """A new RPC client of node ``index`` (reads its current cookie; ``OSError`` if none)."""
        node = self.nodes[index]
        user, password = cookie_auth(node.datadir)
        return RPCClient("127.0.0.1", node.rpc_port, user, password, timeout)

    def _answers(self, index: int) -> bool:
        node = self.nodes[index]
        if node.process is None or node.process.poll() is not None:
            code = None if node.process is None else node.process.returncode
            raise NodeUnavailable(f"node {index} exited with status {code}:\n{self.log_tail(index)}")
        try:
            client = self.client(index, timeout=5.0)
        except (OSError, ValueError):
            return False
        try:
            client.getblockcount()
            return True
        except (OSError, ValueError):
            return False
        except JSONRPCError as e:
            if e.code == IN_WARMUP or e.http_status == HTTP_UNAUTHORIZED:  # warming up, or an old cookie
                return False
            raise
        finally:
            client.close()

    def wait_ready(self, index: int, timeout: float = START_TIMEOUT) -> None:
        """Waits until node ``index`` answers RPC; :class:`NodeUnavailable` if it exits first or
        ``timeout`` s pass."""
        deadline = time.monotonic() + timeout
        while not self._answers(index):
            if time.monotonic() > deadline:
                raise NodeUnavailable(f"node {index} did not answer RPC within {timeout:.0f} s")
            time.sleep(READY_POLL)

    def start_all(self) -> None:
        """Starts every node, each once the ones it dials answer, then waits for the full mesh."""
        for i in range(len(self.nodes)):
            self.start(i)
            self.wait_ready(i)
        self.devnet.write_manifest()
        deadline = time.monotonic() + START_TIMEOUT
        peers = len(self.nodes) - 1
        for i in range(len(self.nodes)):
            while True:
                client = self.client(i)
                try:
                    if client.getconnectioncount() >= peers:
                        break
                finally:
                    client.close()
                if time.monotonic() > deadline:
                    raise NodeUnavailable(
                        f"node {i} did not connect to its {peers} peers within {START_TIMEOUT:.0f} s"
                    )
                time.sleep(READY_POLL)

    def running(self, index: int) -> bool:
        process = self.nodes[index].process
        return process is not None and process.poll() is None

    def kill(self, index: int) -> None:
        """SIGKILL node ``index`` and reap it: no shutdown at all (DESIGN §12.5)."""
        process = self.nodes[index].process
        if process is None or process.poll() is not None:
            raise RuntimeError(f"node {index} is not running")
        process.kill()
        process.wait()

    def restart(self, index: int) -> None:
        """Starts a killed node again on its data directory and waits for its RPC."""
        self.start(index)
        self.wait_ready(index)
        self.devnet.write_manifest()

    def pause(self, index: int) -> None:
        """SIGSTOP: the process keeps its sockets and state but runs nothing."""
        self._signal(index, signal.SIGSTOP)

    def resume(self, index: int) -> None:
        """SIGCONT after :meth:`pause`."""
        self._signal(index, signal.SIGCONT)

    def _signal(self, index: int, sig: signal.Signals) -> None:
        process = self.nodes[index].process
        if process is None or process.poll() is not None:
            raise RuntimeError(f"node {index} is not running")
        process.send_signal(sig)

    def stop(self) -> list[int | None]:
        """SIGCONT (a paused node could not stop), then :meth:`Devnet.stop` (SIGTERM, wait,
        SIGKILL the rest); the exit statuses."""
        for node in self.nodes:
            if node.process is not None and node.process.poll() is None:
                node.process.send_signal(signal.SIGCONT)
        return self.devnet.stop()
