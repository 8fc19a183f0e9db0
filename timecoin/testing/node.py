"""Test harness for real node processes, in the shape of Bitcoin Core's ``test_framework``
(DESIGN §2, STYLE "Tests of a real node").

* :class:`TestNode` runs ``timecoind`` as a subprocess with its own data directory and
  deterministic ports derived from a port seed (:func:`p2p_port`, :func:`rpc_port`), waits for
  its RPC server, and offers an RPC proxy (``node.rpc.getblockcount()``), ``timecoin-cli``
  (``node.cli("getblockcount")``), clean stop, SIGTERM, SIGKILL and restart.
* :func:`assert_raises_rpc_error` checks both the error code and the message.
* :func:`wait_until` waits without bare sleeps, scaled by the global timeout factor.
* :func:`build_devnet_chain` and :func:`write_chain` make a deterministic chain offline and put
  it into a data directory before a node starts (nothing produces blocks in a running node until
  the consensus service exists).
"""

from __future__ import annotations

import http.client
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from timecoin.core.types import HEADER_LEN, BlockHeader, Transaction
from timecoin.ledger.chain import ChainState
from timecoin.ledger.genesis import Genesis, GenesisConfig, build_genesis
from timecoin.params import DEVNET, NetworkParams
from timecoin.rpc.client import JSONRPCError, RPCClient, cookie_auth
from timecoin.rpc.errors import IN_WARMUP
from timecoin.testing.chaingen import Wallet, certified_writes, commit_certificate, devnet_genesis, grow_chain
from timecoin.testing.util import scaled

PORT_MIN = 20_000
"""Lowest port a test node uses: below Linux's ephemeral range (32768+), so outgoing
connections of other programs never take a test port."""
PORT_RANGE = 5_000
"""P2P ports in [PORT_MIN, PORT_MIN + PORT_RANGE), RPC ports in the next PORT_RANGE."""
MAX_NODES = 12
"""Most nodes one test runs: the ports of one seed."""


def default_port_seed() -> int:
    """``TIMECOIN_TEST_PORT_SEED``, else this process's pid: concurrent test runs get disjoint ports."""
    return int(os.environ.get("TIMECOIN_TEST_PORT_SEED", os.getpid()))


def p2p_port(n: int, seed: int) -> int:
    """P2P port of node ``n`` (< MAX_NODES) under port seed ``seed``."""
    if not 0 <= n < MAX_NODES:
        raise ValueError(f"node index {n} outside 0..{MAX_NODES - 1}")
    return PORT_MIN + n + (MAX_NODES * seed) % (PORT_RANGE - 1 - MAX_NODES)


def rpc_port(n: int, seed: int) -> int:
    """RPC port of node ``n`` under port seed ``seed``."""
    return p2p_port(n, seed) + PORT_RANGE


def metrics_port(n: int, seed: int) -> int:
    """Metrics port of node ``n`` (< MAX_NODES // 2) under port seed ``seed``: the P2P port of
    an index from the top of the seed's block, which tests with that many nodes leave free."""
    if not 0 <= n < MAX_NODES // 2:
        raise ValueError(f"node index {n} outside 0..{MAX_NODES // 2 - 1}")
    return p2p_port(MAX_NODES - 1 - n, seed)


def scrape_metrics(port: int) -> dict[str, float]:
    """``GET /metrics`` on 127.0.0.1:``port``: sample name (with labels as ``name{k=v,...}``)
    → value. ``AssertionError`` unless the answer is 200 with Prometheus text."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", "/metrics")
        response = conn.getresponse()
        assert response.status == 200
        assert response.getheader("Content-Type", "").startswith("text/plain")
        text = response.read().decode()
    finally:
        conn.close()
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
            out[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
    return out


def wait_until(
    predicate: Callable[[], Any], timeout: float = 30.0, interval: float = 0.05, what: str = ""
) -> Any:
    """Polls ``predicate`` until it returns a truthy value (returned) or ``timeout`` seconds times
    the global factor (``TIMECOIN_TIMEOUT_FACTOR``, :mod:`timecoin.testing.util`) pass
    (``AssertionError`` naming ``what``). The value-returning, positional form of
    :func:`timecoin.testing.util.wait_until`."""
    deadline = time.monotonic() + scaled(timeout)
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {scaled(timeout):.1f} s waiting for {what or predicate}")
        time.sleep(interval)


def assert_raises_rpc_error(
    code: int | None, message: str | None, fn: Callable[..., Any], *args: Any, **kwargs: Any
) -> JSONRPCError:
    """Calls ``fn`` and asserts it raises :class:`JSONRPCError` with ``code`` (unless None) and a
    message containing ``message`` (unless None). Returns the error."""
    try:
        fn(*args, **kwargs)
    except JSONRPCError as e:
        if code is not None and e.code != code:
            raise AssertionError(f"expected error code {code}, got {e.code}: {e.message}") from e
        if message is not None and message not in e.message:
            raise AssertionError(f"expected {message!r} in the error message, got {e.message!r}") from e
        return e
    raise AssertionError(f"no JSON-RPC error raised (expected code {code}, {message!r})")


class TestNode:
    """One ``timecoind`` process of a test."""

    __test__ = False  # not a pytest test class

    def __init__(
        self,
        index: int,
        root: Path,
        genesis_file: Path,
        *,
        port_seed: int | None = None,
        network: str = "devnet",
        extra_args: list[str] | None = None,
    ) -> None:
        self.index = index
        self.datadir = root / f"node{index}"
        self.genesis_file = genesis_file
        self.network = network
        seed = default_port_seed() if port_seed is None else port_seed
        self.p2p_port = p2p_port(index, seed)
        self.rpc_port = rpc_port(index, seed)
        self.extra_args = list(extra_args or [])
        self.process: subprocess.Popen[bytes] | None = None
        self._rpc: RPCClient | None = None
        self.datadir.mkdir(parents=True, exist_ok=True)
        self.stderr_path = self.datadir / "stderr.log"

    def __repr__(self) -> str:
        return f"TestNode({self.index}, rpc {self.rpc_port}, p2p {self.p2p_port})"

    # -- process ---------------------------------------------------------------------------------------

    def args(self, extra_args: list[str] | None = None) -> list[str]:
        """The full ``timecoind`` command line of this node."""
        return [
            sys.executable,
            "-m",
            "timecoin.cli.daemon",
            "--network",
            self.network,
            "--datadir",
            str(self.datadir),
            "--genesis",
            str(self.genesis_file),
            "--listen",
            "127.0.0.1",
            "--port",
            str(self.p2p_port),
            "--rpcbind",
            "127.0.0.1",
            "--rpcport",
            str(self.rpc_port),
            *self.extra_args,
            *(extra_args or []),
        ]

    @staticmethod
    def environment(extra: dict[str, str] | None = None) -> dict[str, str]:
        """This process's environment without ``TIMECOIN_*`` settings (a developer's own must not
        leak into a test), plus ``extra``."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("TIMECOIN_")}
        env.update(extra or {})
        return env

    def start(self, extra_args: list[str] | None = None, env: dict[str, str] | None = None) -> None:
        """Starts the process (stderr to ``<datadir>/stderr.log``); does not wait for it."""
        if self.running:
            raise RuntimeError(f"{self} is already running")
        with self.stderr_path.open("ab") as stderr:
            self.process = subprocess.Popen(
                self.args(extra_args), stdout=subprocess.DEVNULL, stderr=stderr, env=self.environment(env)
            )

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log_text(self) -> str:
        """Everything the node wrote to stderr so far."""
        return self.stderr_path.read_text(errors="replace") if self.stderr_path.exists() else ""

    def wait_for_rpc_connection(self, timeout: float = 30.0) -> None:
        """Waits until the RPC server answers (not warming up). ``AssertionError`` with the log
        tail if the process exits first or the timeout passes."""

        def ready() -> bool:
            if self.process is None or self.process.poll() is not None:
                code = self.process.returncode if self.process is not None else None
                raise AssertionError(
                    f"{self} exited with status {code} while starting:\n{self.log_text()[-3000:]}"
                )
            try:
                client = self._client()
                client.getblockcount()
            except (OSError, ValueError):
                return False
            except JSONRPCError as e:
                if e.code == IN_WARMUP:
                    return False
                raise
            self._rpc = client
            return True

        wait_until(ready, timeout, what=f"{self} RPC")

    def start_and_wait(self, extra_args: list[str] | None = None, env: dict[str, str] | None = None) -> None:
        self.start(extra_args, env)
        self.wait_for_rpc_connection()

    def _client(self, timeout: float = 60.0) -> RPCClient:
        user, password = cookie_auth(self.datadir)
        return RPCClient("127.0.0.1", self.rpc_port, user, password, scaled(timeout))

    @property
    def rpc(self) -> RPCClient:
        """The RPC proxy (``node.rpc.getblockcount()``); valid after :meth:`wait_for_rpc_connection`."""
        if self._rpc is None:
            raise RuntimeError(f"{self} has no RPC connection; start it and wait for RPC first")
        return self._rpc

    def new_rpc(self, timeout: float = 60.0) -> RPCClient:
        """A fresh RPC client (one per thread: clients are not thread-safe)."""
        return self._client(timeout)

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Runs ``timecoin-cli`` against this node; ``CalledProcessError`` on failure if ``check``."""
        command = [
            sys.executable,
            "-m",
            "timecoin.cli.client",
            "--network",
            self.network,
            "--datadir",
            str(self.datadir),
            "--rpcport",
            str(self.rpc_port),
            *args,
        ]
        return subprocess.run(command, capture_output=True, text=True, check=check, env=self.environment())

    def wait_until_stopped(self, timeout: float = 30.0) -> int:
        """Waits for the process to exit; its status."""
        assert self.process is not None
        try:
            return self.process.wait(scaled(timeout))
        except subprocess.TimeoutExpired:
            raise AssertionError(
                f"{self} did not exit within {timeout} s:\n{self.log_text()[-3000:]}"
            ) from None
        finally:
            self._drop_rpc()

    def stop(self, timeout: float = 30.0) -> None:
        """Stops the node with the ``stop`` RPC and asserts a clean exit (status 0)."""
        self.rpc.stop()
        status = self.wait_until_stopped(timeout)
        assert status == 0, f"{self} exited with status {status}:\n{self.log_text()[-3000:]}"

    def signal(self, sig: signal.Signals, timeout: float = 30.0) -> int:
        """Sends ``sig`` and waits for the exit; the status."""
        assert self.process is not None
        self.process.send_signal(sig)
        return self.wait_until_stopped(timeout)

    def kill(self) -> None:
        """SIGKILL: no shutdown at all (crash tests)."""
        self.signal(signal.SIGKILL)

    def restart(self, extra_args: list[str] | None = None) -> None:
        """Clean stop, then start again and wait for RPC."""
        if self.running:
            self.stop()
        self.start_and_wait(extra_args)

    def cleanup(self) -> None:
        """Kills the process if it still runs (test teardown)."""
        if self.running:
            assert self.process is not None
            self.process.kill()
            self.process.wait()
        self._drop_rpc()

    def _drop_rpc(self) -> None:
        if self._rpc is not None:
            self._rpc.close()
            self._rpc = None


# -- offline chains ---------------------------------------------------------------------------------


@dataclass
class DevnetChain:
    """A deterministic devnet chain built offline: the genesis file, every encoded block
    (``blocks[h]`` is height h, genesis included), and the keys and coins behind it."""

    genesis_file: Path
    genesis: Genesis
    blocks: list[bytes]
    wallet: Wallet
    """Spendable coins after the last block."""
    account_keys: list[bytes]
    masternode_keys: list[bytes]
    builder: ChainState
    """The (closed) chain the blocks were built on: its params and chain id sign new transfers."""

    @property
    def config(self) -> GenesisConfig:
        return self.genesis.config

    def transfers(self, count: int, fanout: int = 2) -> list[Transaction]:
        """``count`` new signed transfers spending the wallet's coins (:meth:`Wallet.transfers`)."""
        return self.wallet.transfers(count, self.builder, fanout)

    def certificate(self, height: int) -> bytes:
        """The commit certificate of ``blocks[height]`` signed by every genesis masternode
        (:func:`~timecoin.testing.chaingen.commit_certificate`): what ``submitblock`` and
        :func:`write_chain` store with it so that peers can sync it."""
        block_hash = BlockHeader.decode(self.blocks[height][:HEADER_LEN]).hash
        return commit_certificate(self.genesis.hash, height, block_hash, self.masternode_keys)


def build_devnet_chain(
    root: Path,
    blocks: int,
    txs_per_block: int,
    seed: bytes = b"timecoin-dev",
    accounts: int = 16,
    params: NetworkParams = DEVNET,
) -> DevnetChain:
    """Builds ``blocks`` blocks of ``txs_per_block`` transfers on the devnet genesis of ``seed``
    (with the devnet parameters ``params``, e.g. another block slot; in ``root/builder``), writes
    the genesis file to ``root/genesis.json``."""
    config, account_keys, mn_keys = devnet_genesis(seed, accounts=accounts, params=params)
    genesis = build_genesis(config)
    root.mkdir(parents=True, exist_ok=True)
    genesis_file = root / "genesis.json"
    genesis_file.write_bytes(config.to_json())
    chain = ChainState.open(root / "builder", config.params, genesis)
    try:
        wallet = Wallet.from_genesis(chain, account_keys)
        raws = [genesis.encoded, *grow_chain(chain, wallet, blocks, txs_per_block)]
    finally:
        chain.close()
    return DevnetChain(genesis_file, genesis, raws, wallet, account_keys, mn_keys, chain)


def write_chain(datadir: Path, chain: DevnetChain, upto: int) -> None:
    """Commits ``chain.blocks[1..upto]`` with their commit certificates into the node data
    directory ``datadir`` (before the node starts), exactly as the node lays out its store."""
    from timecoin.node import CHAIN_DIR

    state = ChainState.open(datadir / CHAIN_DIR, chain.genesis.config.params, chain.genesis)
    try:
        for height in range(state.tip.height + 1, upto + 1):
            state.connect_block(chain.blocks[height], certified_writes(height, chain.certificate(height)))
    finally:
        state.close()


def truncate_data_file(env_dir: Path) -> Path:
    """Cuts the ``data.mdb`` in LMDB environment directory ``env_dir`` to half the pages in use
    (the way a lost tail damages it; a devnet's file is as long as its sparse map, so half the
    file would cut nothing in use). Returns the file's path."""
    from timecoin.store.chainstore import DATA_FILE, ChainStore

    store = ChainStore.open(env_dir, readonly=True)
    used = store.size_bytes()
    store.close()
    data = env_dir / DATA_FILE
    with data.open("r+b") as f:
        f.truncate(used // 2 // 4096 * 4096)
    return data


@contextmanager
def masternode_network(
    chain: DevnetChain,
    count: int,
    port_seed: int,
    *,
    mesh: bool = True,
    metrics: bool = False,
    extra_args: list[str] | None = None,
    env: dict[int, dict[str, str]] | None = None,
) -> Iterator[list[TestNode]]:
    """``count`` ``timecoind`` processes running the genesis masternode keys of ``chain``
    (``mn<i>.key`` files beside its genesis file), connected in a full mesh (each dials every
    earlier node) or, with ``mesh=False``, a line (each dials the previous one); with
    ``metrics``, each serves ``/metrics`` on :func:`metrics_port`; ``extra_args`` go to every
    node's command line, ``env[i]`` into node ``i``'s environment. Started and RPC-ready on
    entry; stopped (those still running) and cleaned up on exit."""
    root = chain.genesis_file.parent
    nodes: list[TestNode] = []
    for i in range(count):
        key_file = root / f"mn{i}.key"
        key_file.write_text(chain.masternode_keys[i].hex())
        args = ["--masternode-key", str(key_file), *(extra_args or [])]
        if metrics:
            args += ["--metrics", "true", "--metrics-port", str(metrics_port(i, port_seed))]
        for other in nodes if mesh else nodes[-1:]:
            args += ["--connect", f"127.0.0.1:{other.p2p_port}"]
        nodes.append(TestNode(i, root, chain.genesis_file, port_seed=port_seed, extra_args=args))
    try:
        for node in nodes:  # each listening before the later ones dial it (no redial backoff)
            node.start(env=(env or {}).get(node.index))
            node.wait_for_rpc_connection()
        yield nodes
        for node in nodes:
            if node.running:
                node.stop()
    finally:
        for node in nodes:
            node.cleanup()
