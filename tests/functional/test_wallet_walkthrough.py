"""The walk-through of docs/wallet.md ("Walk-through on a devnet"), run as written (issue 16).

The two ``sh`` blocks of that section are read from the document itself, so the document cannot
drift from what works. The first (``timecoin devnet``) runs in the background in a temporary
directory, as in the reader's first terminal; once its four masternodes see each other online,
the second block runs in ``bash -eu`` in the same directory, as in the reader's second terminal,
with ``timecoin`` the installed console script. The only differences from a reader's shell are in
the environment, all documented: ``TIMECOIN_WALLET_PASSPHRASE`` answers the passphrase prompts
and ``TIMECOIN_DEVNET_BASE_PORT`` moves the devnet to this test's ports. Then the output is
checked (the faucet's 1,000,000 TIME, the send final and in a block, both balances as the
comments say) and, over RPC, the fee: exactly 1,000 sat + 0.1 % of 1 TIME, the change back to
the faucet's address. A few sends the walk-through does not make follow on the same devnet:
``--all``, ``--subtract-fee``, ``--sat`` output, ``--certificate``, and the confirmation a fee
over 1 TIME needs. The devnet is stopped with SIGTERM, as Ctrl-C would, and must exit 0.

A fresh devnet makes its first block ~15 s after the start; the module takes about a minute.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import orjson
import pytest

from timecoin.core.address import decode_address, pubkey_hash
from timecoin.core.types import Transaction
from timecoin.crypto import public_key
from timecoin.params import COIN, DEVNET
from timecoin.rpc.client import JSONRPCError, RPCClient, cookie_auth
from timecoin.testing.node import TestNode, default_port_seed, p2p_port, wait_until
from timecoin.testing.util import scaled

DOC = Path(__file__).resolve().parents[2] / "docs" / "wallet.md"
SECTION = "## Walk-through on a devnet"
SEED_OFFSET = 97
PASSPHRASE = "walk-through passphrase"


def walkthrough_blocks() -> tuple[str, str]:
    """The ``sh`` blocks of the walk-through section: (terminal 1, terminal 2)."""
    text = DOC.read_text()
    start = text.index(SECTION) + len(SECTION)
    end = text.find("\n## ", start)
    blocks = re.findall(r"```sh\n(.*?)```", text[start : end if end >= 0 else None], re.DOTALL)
    assert len(blocks) == 2, f"{DOC}: the walk-through has {len(blocks)} sh blocks, not 2"
    return blocks[0], blocks[1]


@pytest.fixture(scope="module")
def walked(tmp_path_factory):
    """Runs the walk-through; (workdir, node 0's RPC client, the second block's result, env)."""
    first, second = walkthrough_blocks()
    work = tmp_path_factory.mktemp("walkthrough")
    scripts = Path(sys.executable).parent
    env = TestNode.environment(
        {
            "PATH": f"{scripts}{os.pathsep}{os.environ['PATH']}",
            "TIMECOIN_WALLET_PASSPHRASE": PASSPHRASE,
            "TIMECOIN_DEVNET_BASE_PORT": str(p2p_port(0, default_port_seed() + SEED_OFFSET)),
        }
    )
    commands = [line.split("#")[0].strip() for line in first.splitlines()]
    commands = [c for c in commands if c]
    assert len(commands) == 1, f"the first terminal runs one command, not {commands}"
    log = (work / "devnet.out").open("wb")
    # exec: the devnet itself gets the signal that stands for the reader's Ctrl-C.
    devnet = subprocess.Popen(
        ["bash", "-euc", f"exec {commands[0]}"], cwd=work, env=env, stdout=log, stderr=subprocess.STDOUT
    )
    try:
        manifest = work / "devnet" / "devnet.json"

        def node0() -> RPCClient | None:
            if devnet.poll() is not None:
                raise AssertionError(
                    f"devnet exited {devnet.returncode}: {(work / 'devnet.out').read_text()}"
                )
            if not manifest.exists():
                return None
            node = orjson.loads(manifest.read_bytes())["nodes"][0]
            if node["pid"] is None or not (Path(node["datadir"]) / ".cookie").exists():
                return None
            return RPCClient("127.0.0.1", node["rpc_port"], *cookie_auth(Path(node["datadir"])), timeout=30)

        rpc = wait_until(node0, 120, what="the devnet's node 0 answers")

        def all_online() -> bool:
            try:
                return sum(row["online"] for row in rpc.masternodelist()) == 4
            except (OSError, JSONRPCError):  # not up yet, or warming up
                return False

        wait_until(all_online, 60, what="every masternode online")
        done = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", second],
            cwd=work,
            env=env,
            capture_output=True,
            text=True,
            timeout=scaled(300),
        )
        yield work, rpc, done, env
    finally:
        if devnet.poll() is None:
            devnet.send_signal(signal.SIGTERM)
        try:
            status = devnet.wait(scaled(90))
        except subprocess.TimeoutExpired:
            devnet.kill()
            status = devnet.wait()
        log.close()
        assert status == 0, (work / "devnet.out").read_text()[-3000:]


def balance_line(output: str) -> list[Decimal]:
    return [Decimal(m) for m in re.findall(r"^balance +([0-9.]+) TIME", output, re.MULTILINE)]


def test_walkthrough_runs_as_written(walked):
    work, rpc, done, _ = walked
    assert done.returncode == 0, f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    assert "Traceback" not in done.stderr
    out = done.stdout
    # Your wallet's first address, the faucet's address, then the balances before and after.
    faucet_secret = bytes.fromhex((work / "devnet" / "keys" / "faucet.key").read_text())
    faucet = pubkey_hash(public_key(faucet_secret))
    lines = out.splitlines()
    assert lines[0].startswith("dtime1") and decode_address(lines[1], DEVNET) == faucet
    assert balance_line(out) == [Decimal(1_000_000), Decimal("999998.99899"), Decimal(1)]
    txid = next(line for line in lines if re.fullmatch("[0-9a-f]{64}", line))
    after = lines[lines.index(txid) + 1 :]
    assert re.fullmatch(r"final in \d+ ms", after[0]) and re.fullmatch(r"in block \d+", after[1]), after
    assert "sent 1.00000000 TIME to dtime1" in done.stderr and "fee 0.00101000 TIME" in done.stderr
    # The fee over RPC: 1,000 sat + 0.1 % of 1 TIME; the change back to the faucet's address.
    tx = Transaction.decode(bytes.fromhex(rpc.getrawtransaction(txid)))
    assert len(tx.outputs) == 2 and tx.outputs[0].value == COIN
    assert tx.outputs[1].pubkey_hash == faucet
    genesis_value = 1_000_000 * COIN
    assert genesis_value - sum(o.value for o in tx.outputs) == 1_000 + COIN // 1000 == 101_000
    assert rpc.gettransactionfinality(txid)["status"] == "final"


def wallet(work: Path, env: dict[str, str], *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    """``timecoin wallet ARGS`` in the walk-through's directory and environment (node 0)."""
    return subprocess.run(
        ["timecoin", "wallet", "--datadir", "devnet/node0", *args],
        cwd=work,
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=scaled(120),
    )


def test_large_fees_are_confirmed_and_the_send_options(walked):
    work, rpc, done, env = walked
    assert done.returncode == 0
    bob = wallet(work, env, "--wallet", "bob.json", "address").stdout.split()[0]
    # 5,000 TIME costs 5 TIME + 1,000 sat: over 1 TIME, refused without a terminal or --yes.
    cursor = rpc.getfinalityfeed()["cursor"]
    refused = wallet(work, env, "send", bob, "5000")
    assert refused.returncode == 1 and "pass --yes" in refused.stderr and "5.00001000 TIME" in refused.stderr
    page = rpc.getfinalityfeed(cursor, 0)
    assert (page["final"], page["rejected"]) == ([], [])
    sent = wallet(
        work,
        env,
        "send",
        bob,
        "5000",
        "--yes",
        "--wait",
        "--wait-timeout",
        "60",
        "--certificate",
        "--wait-block",
    )
    assert sent.returncode == 0, sent.stderr
    txid, final, *rest = sent.stdout.splitlines()
    assert re.fullmatch("[0-9a-f]{64}", txid) and re.fullmatch(r"final in \d+ ms", final)
    # The certificate's hex when node 0 holds one (else a note on stderr), then the block.
    assert re.fullmatch(r"in block \d+", rest[-1]), rest
    if len(rest) == 2:
        assert re.fullmatch("[0-9a-f]+", rest[0])
    else:
        assert "holds no finality certificate" in sent.stderr
    assert "fee 5.00001000 TIME" in sent.stderr

    # --subtract-fee, amounts in sat: Bob receives 2 TIME less 1,000 sat + 0.1 % of what he gets.
    sub = wallet(
        work, env, "send", bob, str(2 * COIN), "--sat", "--subtract-fee", "--wait", "--wait-block",
        "--wait-timeout", "60",
    )  # fmt: skip
    assert sub.returncode == 0, sub.stderr
    tx = Transaction.decode(bytes.fromhex(rpc.getrawtransaction(sub.stdout.split()[0])))
    got = tx.outputs[0].value
    assert got + DEVNET.min_fee(got) <= 2 * COIN < got + 1 + DEVNET.min_fee(got + 1)
    assert f"sent {got} sat to {bob}, fee {2 * COIN - got} sat" in sub.stderr

    # --all: Bob moves every coin to a fresh address of his (not one the coins belong to).
    bob2 = wallet(work, env, "--wallet", "bob.json", "address", "--new").stdout.strip()
    before = rpc.getbalance(bob)["available_sat"]
    sweep = wallet(
        work,
        env,
        "--wallet",
        "bob.json",
        "send",
        bob2,
        "--all",
        "--yes",
        "--wait",
        "--wait-block",
        "--wait-timeout",
        "60",
    )
    assert sweep.returncode == 0, sweep.stderr
    tx = Transaction.decode(bytes.fromhex(rpc.getrawtransaction(sweep.stdout.split()[0])))
    assert len(tx.outputs) == 1 and tx.outputs[0].pubkey_hash == decode_address(bob2, DEVNET)
    fee = before - tx.outputs[0].value
    assert fee >= DEVNET.min_fee(tx.outputs[0].value) and fee < DEVNET.min_fee(tx.outputs[0].value + 1) + 1
    shown = wallet(work, env, "--wallet", "bob.json", "balance", "--sat").stdout
    assert f"balance   {tx.outputs[0].value} sat" in shown
    assert rpc.getbalance(bob)["balance_sat"] == 0
