"""Crash safety of the chain store (DESIGN §9, invariant 4's local half).

A real subprocess builds and commits a deterministic chain and is killed with SIGKILL: at each
failpoint between the steps of a block commit, between two transactions of a coins flush (the
stored coins then hold part of the writes of blocks after their marker), and at random moments.
On reopen the store must be at a committed block whose UTXO set (the stored coins, the blocks
after them replayed) hashes to what a reference replay of the same chain has at that height, and
it must accept the next block of the reference chain.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from timecoin.ledger.chain import ChainState
from timecoin.ledger.genesis import build_genesis
from timecoin.testing import chainwriter
from timecoin.testing.chaingen import Wallet, devnet_genesis, grow_chain

BLOCKS, TXS = 150, 16


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """(genesis, set hash per height, encoded block per height) of a clean run."""
    config, accounts, _ = devnet_genesis()
    genesis = build_genesis(config)
    chain = ChainState.open(tmp_path_factory.mktemp("reference"), config.params, genesis)
    hashes, blocks = [chain.utxos.set_hash()], [genesis.encoded]
    for raw in grow_chain(chain, Wallet.from_genesis(chain, accounts), BLOCKS, TXS):
        hashes.append(chain.utxos.set_hash())
        blocks.append(raw)
    chain.close()
    return genesis, hashes, blocks


def _writer(datadir: Path, failpoint: str | None = None) -> subprocess.Popen:
    env = dict(os.environ)
    env.pop("TIMECOIN_FAILPOINT", None)
    if failpoint:
        env["TIMECOIN_FAILPOINT"] = failpoint
    return subprocess.Popen(
        [sys.executable, "-m", "timecoin.testing.chainwriter", str(datadir), str(BLOCKS), str(TXS)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _check_recovered(datadir: Path, reference) -> int:
    genesis, hashes, blocks = reference
    chain = ChainState.open(datadir, genesis.config.params, genesis)
    try:
        height = chain.tip.height
        assert chain.utxos.set_hash() == hashes[height]
        assert chain.store.block_hash(height) == chain.tip.block_hash
        if height < BLOCKS:
            chain.connect_block(blocks[height + 1])
            assert chain.utxos.set_hash() == hashes[height + 1]
        return height
    finally:
        chain.close()


@pytest.mark.parametrize(
    "failpoint,expected_height",
    [
        ("store.commit_block.after_block:3", 2),
        ("store.commit_block.after_undo:3", 2),
        ("store.commit_block.after_extra:3", 2),
        ("store.commit_block.before_commit:3", 2),
        ("store.commit_block.after_commit:3", 3),
    ],
)
def test_crash_at_each_commit_step(tmp_path, reference, failpoint, expected_height):
    proc = _writer(tmp_path, failpoint)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == -signal.SIGKILL, err
    # The third commit never reports back; after_commit crashes once it is durable.
    assert out.splitlines()[-1:] == ["committed 2"]
    assert _check_recovered(tmp_path, reference) == expected_height


@pytest.mark.parametrize("hit", [1, 3, 7])
def test_crash_in_the_middle_of_a_coins_flush(tmp_path, reference, hit):
    """Killed between two transactions of the coins flush after block 4 (or 8): the stored coins
    are those of genesis (or block 4) with part of the flush written, and the start replays."""
    proc = _writer(tmp_path, f"store.coins.after_chunk:{hit}")
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == -signal.SIGKILL, err
    height = int(out.splitlines()[-1].split()[1])
    assert height % chainwriter.FLUSH_EVERY == 0
    assert _check_recovered(tmp_path, reference) == height


def test_sigkill_at_random_moments(tmp_path, reference):
    rng = random.Random(2026)
    heights = []
    for attempt in range(4):
        datadir = tmp_path / str(attempt)
        proc = _writer(datadir)
        # Wait for the first commit so the kill lands during block work, then a random delay.
        assert proc.stdout is not None
        proc.stdout.readline()
        time.sleep(rng.uniform(0.0, 0.4))
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        heights.append(_check_recovered(datadir, reference))
    assert all(1 <= h <= BLOCKS for h in heights)
    assert any(h < BLOCKS for h in heights), f"no kill landed mid-chain: {heights}"
