"""``timecoin db backup`` beside a running node under load, then a restore, ``db rollback`` and
``timecoind --reindex`` on the restored node, each ending in agreement (issue 14 item 3; DESIGN
§9, §10; docs/operator.md "Backup and restore", "Rolling back and reindexing").

Node A, a real ``timecoind`` on a certified devnet chain, is fed blocks through ``submitblock``
by a thread (each with its commit certificate) while ``timecoin db backup`` copies its store in
another process: every ``submitblock`` during the copy must succeed (the node keeps serving),
and the copy must be a state in between, checked intact. The backup is restored into the data
directory of node B, which starts from it, connects to A and syncs to A's tip. B is then stopped,
rolled back a few blocks with ``timecoin db rollback``, started, and syncs to A's tip again;
then stopped and started with ``timecoind --reindex``, which rebuilds its state from its blocks
and starts on the same tip.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from timecoin.testing.node import TestNode, build_devnet_chain, default_port_seed, wait_until, write_chain
from timecoin.testing.util import scaled

SEED = default_port_seed() + 213
START, BLOCKS, TXS = 4, 40, 6
ROLLBACK = 5
PACE = 0.1
"""Seconds between blocks fed while the backup runs."""


def timecoin(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(Path(sys.executable).parent / "timecoin"), *args],
        capture_output=True,
        text=True,
        timeout=scaled(120),
        env=TestNode.environment(),
    )


@pytest.fixture
def nodes(tmp_path):
    chain = build_devnet_chain(tmp_path / "chain", BLOCKS, TXS)
    a = TestNode(0, tmp_path, chain.genesis_file, port_seed=SEED)
    b = TestNode(1, tmp_path, chain.genesis_file, port_seed=SEED)
    write_chain(a.datadir, chain, START)
    yield chain, a, b
    a.cleanup()
    b.cleanup()


def test_backup_under_load_restores_rolls_back_and_reindexes_to_agreement(nodes, tmp_path):
    chain, a, b = nodes
    a.start_and_wait()
    failures: list[BaseException] = []
    backing_up = threading.Event()
    backup_done = threading.Event()
    during: list[int] = []
    """Heights A committed while the backup process ran."""

    def feed() -> None:
        try:
            rpc = a.new_rpc()
            for height in range(START + 1, BLOCKS + 1):
                assert rpc.submitblock(chain.blocks[height].hex(), chain.certificate(height).hex()) is None
                if backing_up.is_set() and not backup_done.is_set():
                    during.append(height)
                    backup_done.wait(PACE)  # spread the load over the copy
        except BaseException as e:  # reported by the test below
            failures.append(e)

    feeder = threading.Thread(target=feed, name="feed blocks")
    dest = tmp_path / "backup"
    backup = subprocess.Popen(
        [str(Path(sys.executable).parent / "timecoin"), "db", "backup", str(dest), "--network", "devnet"]
        + ["--datadir", str(a.datadir)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=TestNode.environment(),
    )
    backing_up.set()
    feeder.start()
    out, err = backup.communicate(timeout=scaled(120))
    backup_done.set()
    feeder.join(scaled(120))
    assert backup.returncode == 0, err
    assert not feeder.is_alive() and not failures, failures
    assert during, "no block was committed while the backup ran"
    assert "checked intact" in out
    backed_up = int(out.split(": tip ")[1].split()[0])
    assert START <= backed_up <= BLOCKS
    assert a.rpc.getblockcount() == BLOCKS  # it kept serving and committing throughout
    tip = a.rpc.getbestblockhash()

    # Restore into B's data directory (as docs/operator.md says), start it, and it agrees.
    shutil.copytree(dest / "chain", b.datadir / "chain")
    shutil.copy2(dest / "genesis.json", b.datadir / "genesis.json")
    connect = ["--connect", f"127.0.0.1:{a.p2p_port}"]
    b.start_and_wait(connect)
    wait_until(lambda: b.rpc.getbestblockhash() == tip, scaled(60), what="the restored node syncs to A")
    b.stop()

    done = timecoin(
        "db", "rollback", str(BLOCKS - ROLLBACK), "--yes", "--network", "devnet", "--datadir", str(b.datadir)
    )
    assert done.returncode == 0, done.stderr
    assert f"rolled back {ROLLBACK} blocks: tip {BLOCKS - ROLLBACK}" in done.stdout
    b.start_and_wait(connect)
    assert b.rpc.getblockcount() >= BLOCKS - ROLLBACK
    wait_until(lambda: b.rpc.getbestblockhash() == tip, scaled(60), what="the rolled-back node resyncs")
    b.stop()

    b.start_and_wait([*connect, "--reindex"])
    assert b.rpc.getbestblockhash() == tip
    assert "reindexed 40 blocks (40 commit certificates verified" in b.log_text()
    txid = b.rpc.getblock(tip)["tx"][-1]
    assert b.rpc.getrawtransaction(txid)  # the rebuilt transaction index answers
    b.stop()
    assert timecoin("db", "check", "--network", "devnet", "--datadir", str(b.datadir)).returncode == 0
