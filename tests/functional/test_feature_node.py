"""The ``timecoind`` process: data directory lock, clean shutdown on SIGTERM, restart after
SIGKILL, configuration precedence and start-up errors that name the bad key (DESIGN §9, §10).

Each test drives real daemon processes on a devnet chain written into their data directories
beforehand.
"""

from __future__ import annotations

import signal
import subprocess
import sys

import orjson
import pytest

from timecoin.gctune import GC_THRESHOLDS
from timecoin.ledger.chain import ChainState
from timecoin.node import CHAIN_DIR
from timecoin.rpc import errors
from timecoin.rpc.client import JSONRPCError, RPCClient, cookie_auth
from timecoin.rpc.errors import IN_WARMUP
from timecoin.testing.node import (
    TestNode,
    assert_raises_rpc_error,
    build_devnet_chain,
    default_port_seed,
    wait_until,
    write_chain,
)

BLOCKS, TXS = 3, 2
SEED = default_port_seed() + 5


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    return build_devnet_chain(tmp_path_factory.mktemp("feature_node"), BLOCKS, TXS)


@pytest.fixture
def node(chain, tmp_path):
    n = TestNode(0, tmp_path, chain.genesis_file, port_seed=SEED)
    write_chain(n.datadir, chain, BLOCKS - 1)
    yield n
    n.cleanup()


def _daemon(
    args: list[str], env: dict[str, str] | None = None, timeout: float = 30
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "timecoin.cli.daemon", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=TestNode.environment(env),
    )


def test_second_instance_on_a_datadir_is_refused(node):
    node.start_and_wait()
    other = TestNode(1, node.datadir.parent, node.genesis_file, port_seed=SEED)
    result = _daemon(
        [
            "--network",
            "devnet",
            "--datadir",
            str(node.datadir),
            "--port",
            str(other.p2p_port),
            "--rpcport",
            str(other.rpc_port),
            "--listen",
            "127.0.0.1",
        ]
    )
    assert result.returncode == 1
    assert "in use by another timecoind" in result.stderr and str(node.process.pid) in result.stderr
    assert node.rpc.getblockcount() == BLOCKS - 1  # the first one is unharmed, cookie included
    node.stop()


def test_sigterm_shuts_down_cleanly_and_the_store_reopens_at_the_tip(node, chain):
    node.start_and_wait()
    assert node.rpc.submitblock(chain.blocks[BLOCKS].hex()) is None
    tip = node.rpc.getbestblockhash()
    assert node.signal(signal.SIGTERM) == 0
    log = node.log_text()
    assert (
        "stop requested (signal SIGTERM)" in log
        and "chain closed at height 3" in log
        and log.rstrip().endswith("stopped")
    )
    assert f"start-up objects frozen, thresholds {GC_THRESHOLDS}" in log  # docs/operator.md, "Memory"
    assert not (node.datadir / ".cookie").exists()
    state = ChainState.open(node.datadir / CHAIN_DIR, chain.config.params, chain.genesis)
    try:
        assert state.tip.height == BLOCKS and state.tip.block_hash.hex() == tip
    finally:
        state.close()
    node.start_and_wait()  # the lock was released; the copy of the genesis file is used
    assert node.rpc.getbestblockhash() == tip
    assert node.rpc.getrawtransaction(chain.genesis.block.transactions[0].txid.hex())
    node.stop()


def test_sigkill_then_restart_recovers_the_tip(node, chain):
    node.start_and_wait()
    assert node.rpc.submitblock(chain.blocks[BLOCKS].hex()) is None
    tip = node.rpc.getbestblockhash()
    node.kill()
    node.start_and_wait()  # stale lock file and cookie from the killed process are no obstacle
    assert node.rpc.getbestblockhash() == tip
    block_tx = node.rpc.getblock(tip)["tx"][1]
    assert node.rpc.getrawtransaction(block_tx, True)["height"] == BLOCKS
    node.stop()


def test_getruntimeinfo_reports_loop_lag_and_the_collector(node):
    """docs/operator.md, "Event-loop lag" and "Memory"."""
    node.start_and_wait()
    wait_until(lambda: node.rpc.getruntimeinfo(5)["loop_lag_ms"]["samples"] >= 50, timeout=30)
    info = node.rpc.getruntimeinfo()
    lag = info["loop_lag_ms"]
    assert lag["window_s"] == 60 and 0 <= lag["p50"] <= lag["p99"] <= lag["max"] <= lag["max_since_start"]
    assert info["gc"]["thresholds"] == list(GC_THRESHOLDS) and info["gc"]["frozen"] > 0
    assert len(info["gc"]["collections"]) == 3
    for bad in (0, 601):
        assert_raises_rpc_error(errors.INVALID_PARAMETER, "window", node.rpc.getruntimeinfo, bad)
    node.stop()


def test_config_precedence_file_env_flags(node):
    ports = [TestNode(i, node.datadir.parent, node.genesis_file, port_seed=SEED).rpc_port for i in (2, 3, 4)]
    (node.datadir / "timecoin.conf").write_text(
        f'rpcport = 1\nlisten = "127.0.0.1"\nport = {node.p2p_port}\nlog_json = true\n'
        f"[devnet]\nrpcport = {ports[0]}\n"
    )
    base = ["--network", "devnet", "--datadir", str(node.datadir), "--genesis", str(node.genesis_file)]

    def run_until_ready(args: list[str], env: dict[str, str], port: int) -> str:
        process = subprocess.Popen(
            [sys.executable, "-m", "timecoin.cli.daemon", *args],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env=TestNode.environment(env),
        )
        try:

            def ready() -> bool:
                assert process.poll() is None, process.stderr.read() if process.stderr else ""
                try:
                    return (
                        RPCClient("127.0.0.1", port, *cookie_auth(node.datadir)).getblockcount() == BLOCKS - 1
                    )
                except (OSError, ValueError):
                    return False
                except JSONRPCError as e:
                    if e.code == IN_WARMUP:
                        return False
                    raise

            wait_until(ready, 30, what=f"RPC on port {port}")
            process.send_signal(signal.SIGTERM)
            _, stderr = process.communicate(timeout=30)
            assert process.returncode == 0, stderr
            return stderr
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()

    # The [devnet] section beats the top level; log_json from the file applies.
    stderr = run_until_ready(base, {}, ports[0])
    lines = [orjson.loads(line) for line in stderr.splitlines()]
    configured = {line["msg"] for line in lines if line["msg"].startswith("config rpcport")}
    assert configured == {f"config rpcport = {ports[0]} ({node.datadir / 'timecoin.conf'} [devnet])"}
    # The environment beats the file; a flag beats the environment.
    run_until_ready(base, {"TIMECOIN_RPCPORT": str(ports[1])}, ports[1])
    stderr = run_until_ready(
        [*base, "--rpcport", str(ports[2]), "--no-log-json"], {"TIMECOIN_RPCPORT": str(ports[1])}, ports[2]
    )
    assert f"config rpcport = {ports[2]} (command line --rpcport)" in stderr


def test_bad_values_name_the_key_and_source(node):
    base = ["--network", "devnet", "--datadir", str(node.datadir)]
    result = _daemon(base, {"TIMECOIN_RPCTHREADS": "many"})
    assert result.returncode == 1
    assert "rpcthreads" in result.stderr and "environment TIMECOIN_RPCTHREADS" in result.stderr
    result = _daemon([*base, "--rpcport", "70000"])
    assert result.returncode == 1 and "rpcport" in result.stderr and "command line --rpcport" in result.stderr
    (node.datadir / "timecoin.conf").write_text('[devnet]\nconnect = ["nohostport"]\n')
    result = _daemon(base)
    assert result.returncode == 1 and "connect" in result.stderr and "timecoin.conf [devnet]" in result.stderr
    (node.datadir / "timecoin.conf").unlink()
    result = _daemon(
        [*base, "--rpcport", str(node.rpc_port), "--port", str(node.p2p_port), "--listen", "127.0.0.1"]
    )
    assert result.returncode == 1 and "genesis: no genesis file for devnet" in result.stderr
    assert not (node.datadir / ".cookie").exists()
    other = build_devnet_chain(node.datadir.parent / "other", 0, 0, seed=b"another network")
    result = _daemon(
        [
            *base,
            "--genesis",
            str(other.genesis_file),
            "--port",
            str(node.p2p_port),
            "--rpcport",
            str(node.rpc_port),
        ]
    )
    assert (
        result.returncode == 1
        and "cannot start: store at" in result.stderr
        and "Traceback" not in result.stderr
    )


def test_cli_rpcwait_waits_for_a_starting_node(node):
    node.start()
    waited = node.cli("-rpcwait", "--rpcwaittimeout", "60", "getblockcount")
    assert waited.stdout.strip() == str(BLOCKS - 1)
    node.wait_for_rpc_connection()
    node.stop()
    gone = node.cli("getblockcount", check=False)
    assert gone.returncode == 1 and "is timecoind running" in gone.stderr
