"""The walk-through of docs/masternodes.md ("Registering a masternode"), run as written on a real
devnet (issue 14 item 4).

The two ``sh`` blocks of that section are read from the document itself. The first
(``timecoin devnet``: four masternodes on loopback) runs in the background in a temporary
directory; once its masternodes see each other online, the second runs in ``bash -eu`` in the
same directory with the installed ``timecoin`` and ``timecoin-cli``: a wallet imports the faucet
key, makes a Bronze collateral, ``timecoin masternode genkey``, ``register``, ``status``,
``set-payout`` and ``deregister``. The environment differs from a reader's only in
``TIMECOIN_WALLET_PASSPHRASE`` (answers the passphrase prompts) and
``TIMECOIN_DEVNET_BASE_PORT`` (this test's ports).

Then, over RPC on every node: the registration, payout change and deregistration are in blocks;
every node's chain paid the masternode's reward to the owner's address from the block after the
registration and to the new address after the payout change (each node validated those
coinbases against its own registry); after the deregistration no node lists it and its
collateral is an ordinary unspent coin. Registering again from the freed collateral with a new
key, every node's ``masternodelist`` shows the masternode and its ``last_paid_height`` once a
block has paid it. Rules the commands enforce before sending, and an online ``db backup`` of the
running devnet whose check verifies every commit certificate, follow. The devnet is stopped with
SIGTERM and must exit 0.
"""

from __future__ import annotations

import http.client
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from timecoin.core.address import decode_address
from timecoin.core.types import Transaction, TxKind
from timecoin.crypto import public_key
from timecoin.params import COIN, DEVNET, TIER_COLLATERAL, Tier
from timecoin.rpc.client import JSONRPCError, RPCClient, cookie_auth
from timecoin.testing.node import TestNode, default_port_seed, p2p_port, wait_until
from timecoin.testing.util import scaled

DOC = Path(__file__).resolve().parents[2] / "docs" / "masternodes.md"
SECTION = "## 6. Registering a masternode"
SEED_OFFSET = 227
PASSPHRASE = "masternode passphrase"


def section_blocks() -> tuple[str, str]:
    text = DOC.read_text()
    start = text.index(SECTION) + len(SECTION)
    end = text.find("\n## ", start)
    blocks = re.findall(r"```sh\n(.*?)```", text[start : end if end >= 0 else None], re.DOTALL)
    assert len(blocks) == 2, f"{DOC}: the walk-through has {len(blocks)} sh blocks, not 2"
    return blocks[0], blocks[1]


@pytest.fixture(scope="module")
def walked(tmp_path_factory):
    """Runs the walk-through; (workdir, RPC clients of every node, the second block's result)."""
    first, second = section_blocks()
    work = tmp_path_factory.mktemp("mnwalk")
    scripts = Path(sys.executable).parent
    env = TestNode.environment(
        {
            "PATH": f"{scripts}{os.pathsep}{os.environ['PATH']}",
            "TIMECOIN_WALLET_PASSPHRASE": PASSPHRASE,
            "TIMECOIN_DEVNET_BASE_PORT": str(p2p_port(0, default_port_seed() + SEED_OFFSET)),
        }
    )
    commands = [c for c in (line.split("#")[0].strip() for line in first.splitlines()) if c]
    assert len(commands) == 1, f"the first terminal runs one command, not {commands}"
    log = (work / "devnet.out").open("wb")
    devnet = subprocess.Popen(
        ["bash", "-euc", f"exec {commands[0]}"], cwd=work, env=env, stdout=log, stderr=subprocess.STDOUT
    )
    try:
        manifest = work / "devnet" / "devnet.json"

        def clients() -> list[RPCClient] | None:
            if devnet.poll() is not None:
                raise AssertionError(
                    f"devnet exited {devnet.returncode}: {(work / 'devnet.out').read_text()}"
                )
            if not manifest.exists():
                return None
            nodes = orjson.loads(manifest.read_bytes())["nodes"]
            if any(n["pid"] is None or not (Path(n["datadir"]) / ".cookie").exists() for n in nodes):
                return None
            return [
                RPCClient("127.0.0.1", n["rpc_port"], *cookie_auth(Path(n["datadir"])), timeout=30)
                for n in nodes
            ]

        rpcs = wait_until(clients, scaled(120), what="every devnet node answers")

        def all_online() -> bool:
            try:
                return sum(row["online"] for row in rpcs[0].masternodelist()) == len(rpcs)
            except (OSError, JSONRPCError, http.client.HTTPException):  # not up yet, warming up, or a
                return False  # call that timed out on a busy machine (its connection is then reset)

        wait_until(all_online, scaled(60), what="every masternode online")
        done = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", second],
            cwd=work,
            env=env,
            capture_output=True,
            text=True,
            timeout=scaled(400),
        )
        yield work, rpcs, done
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


def _coinbase_payees(rpc: RPCClient, height: int) -> set[bytes]:
    block = rpc.getblock(rpc.getblockhash(height), 0)
    from timecoin.core.types import Block

    return {o.pubkey_hash for o in Block.decode(bytes.fromhex(block)).transactions[0].outputs}


def test_register_set_payout_deregister_as_written(walked):
    work, rpcs, done = walked
    assert done.returncode == 0, f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    assert "Traceback" not in done.stderr
    out = done.stdout.splitlines()
    mn_key = public_key(bytes.fromhex((work / "mn.key").read_text().strip()))
    assert oct((work / "mn.key").stat().st_mode & 0o777) == "0o600"
    # 64 hex digits: genkey's public key, then the three txids (the collateral's went into $TXID).
    hexes = [line for line in out if re.fullmatch("[0-9a-f]{64}", line)]
    assert hexes[0] == mn_key.hex() and len(hexes) == 4, out
    reg_txid, payout_txid, dereg_txid = hexes[1:]
    heights = [int(m) for m in re.findall(r"^in block (\d+)$", done.stdout, re.MULTILINE)]
    assert len(heights) == 3, done.stdout  # the collateral's went into $TXID with its txid
    reg_height, payout_height, dereg_height = heights
    assert reg_height < payout_height < dereg_height

    rpc = rpcs[0]
    kinds = {
        reg_txid: TxKind.MASTERNODE_REGISTER,
        payout_txid: TxKind.MASTERNODE_PAYOUT,
        dereg_txid: TxKind.MASTERNODE_DEREGISTER,
    }
    for txid, kind in kinds.items():
        assert Transaction.decode(bytes.fromhex(rpc.getrawtransaction(txid))).kind is kind
    reg = Transaction.decode(bytes.fromhex(rpc.getrawtransaction(reg_txid))).masternode_registration
    assert reg.masternode_key == mn_key and reg.collateral.vout == 0
    collateral_txid = reg.collateral.txid.hex()
    collateral = Transaction.decode(bytes.fromhex(rpc.getrawtransaction(collateral_txid))).outputs[0]
    assert collateral.value == TIER_COLLATERAL[Tier.BRONZE] == 1_000 * COIN
    owner = collateral.pubkey_hash
    new_payout = Transaction.decode(
        bytes.fromhex(rpc.getrawtransaction(payout_txid))
    ).masternode_payout_change
    assert new_payout.payout_pubkey_hash != owner

    # status (after register) printed the registered Bronze masternode, its payout the owner.
    statuses = [orjson.loads(m) for m in re.findall(r"^\{\n.*?^\}$", done.stdout, re.MULTILINE | re.DOTALL)]
    first = next(s for s in statuses if s["public_key"] == mn_key.hex())
    assert first["registered"] and first["tier"] == "bronze"
    assert decode_address(first["payout_address"], DEVNET) == owner
    assert statuses[-1] == {**statuses[-1], "registered": False}  # after deregister

    for node in rpcs:
        # Every node: the same blocks; the masternode paid to the owner from the block after its
        # registration, to the new address from the block after the payout change, and not
        # after its deregistration.
        wait_until(lambda n=node: n.getblockcount() >= dereg_height + 1, scaled(60), what="the blocks")
        assert node.getblockhash(dereg_height) == rpc.getblockhash(dereg_height)
        assert owner in _coinbase_payees(node, reg_height + 1)
        assert new_payout.payout_pubkey_hash in _coinbase_payees(node, payout_height + 1)
        assert new_payout.payout_pubkey_hash not in _coinbase_payees(node, dereg_height + 1)
        assert all(row["public_key"] != mn_key.hex() for row in node.masternodelist())
        assert node.masternodestatus(mn_key.hex())["registered"] is False
    # The collateral is an ordinary coin again: unspent, not locked.
    coins = rpc.listunspent(1, [first["owner_address"]])
    assert any(c["txid"] == collateral_txid and c["vout"] == 0 and not c["locked"] for c in coins)


def test_the_owner_and_the_rules_are_enforced(walked):
    """What the node refuses, through the same commands: a second registration of the same key,
    and a payout change of a masternode that is gone."""
    work, rpcs, done = walked
    assert done.returncode == 0
    env = TestNode.environment(
        {
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
            "TIMECOIN_WALLET_PASSPHRASE": PASSPHRASE,
        }
    )
    reg_txid = re.findall(r"^([0-9a-f]{64})$", done.stdout, re.MULTILINE)[1]
    reg = Transaction.decode(bytes.fromhex(rpcs[0].getrawtransaction(reg_txid))).masternode_registration
    txid = reg.collateral.txid.hex()

    def mn(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["timecoin", "masternode", "--datadir", "devnet/node0", *args],
            cwd=work,
            env=env,
            capture_output=True,
            text=True,
            timeout=scaled(120),
        )

    gone = mn("set-payout", rpcs[0].masternodelist()[0]["payout_address"], "--collateral", f"{txid}:0")
    assert gone.returncode == 1 and "no registered masternode has collateral" in gone.stderr
    exists = mn("genkey", "mn.key")
    assert exists.returncode == 1 and "not overwritten" in exists.stderr
    spent = mn("register", "--collateral", f"{txid}:1", "--key", "mn.key", "--no-wait")
    # Output 1 was the faucet's change, the largest coin: the registration's fee spent it.
    assert spent.returncode == 1 and "not an unspent coin of this wallet" in spent.stderr
    assert rpcs[0].getrawmempool() == []  # nothing was sent


def test_online_backup_of_the_devnet_checks_every_certificate(walked, tmp_path):
    """``timecoin db backup`` of node 0 while the devnet runs: the copy's check verifies the
    commit certificate of every block consensus made, across the registration, payout change and
    deregistration (the masternode sets of those heights differ), and finds nothing damaged."""
    work, rpcs, done = walked
    assert done.returncode == 0
    tip = rpcs[0].getblockcount()
    backup = subprocess.run(
        ["timecoin", "db", "backup", str(tmp_path / "b"), "--datadir", "devnet/node0"],
        cwd=work,
        env=TestNode.environment({"PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}),
        capture_output=True,
        text=True,
        timeout=scaled(120),
    )
    assert backup.returncode == 0, backup.stderr
    assert "checked intact" in backup.stdout
    check = subprocess.run(
        ["timecoin", "db", "check", "--datadir", str(tmp_path / "b"), "--network", "devnet"],
        env=TestNode.environment(),
        capture_output=True,
        text=True,
        timeout=scaled(120),
    )
    assert check.returncode == 0, check.stderr
    verified = int(re.search(r"(\d+) commit certificates verified", check.stdout).group(1))
    height = int(re.search(r"tip (\d+) ", check.stdout).group(1))
    assert height >= tip and verified == height, check.stdout + check.stderr


def test_registered_masternode_is_listed_and_paid_on_every_node(walked):
    """The issue's "done when": a masternode registered with these commands appears in
    ``masternodelist`` on every node and receives rewards (its collateral is the one the
    walk-through freed again with ``deregister``)."""
    work, rpcs, done = walked
    assert done.returncode == 0
    env = TestNode.environment(
        {
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
            "TIMECOIN_WALLET_PASSPHRASE": PASSPHRASE,
        }
    )
    reg_txid = re.findall(r"^([0-9a-f]{64})$", done.stdout, re.MULTILINE)[1]
    reg = Transaction.decode(bytes.fromhex(rpcs[0].getrawtransaction(reg_txid))).masternode_registration

    def mn(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["timecoin", "masternode", "--datadir", "devnet/node0", *args],
            cwd=work,
            env=env,
            capture_output=True,
            text=True,
            timeout=scaled(120),
        )

    made = mn("genkey", "mn2.key")
    assert made.returncode == 0, made.stderr
    key = made.stdout.strip()
    fresh = subprocess.run(
        ["timecoin", "wallet", "--datadir", "devnet/node0", "address", "--new"],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=scaled(120),
    )
    assert fresh.returncode == 0, fresh.stderr
    payout = fresh.stdout.strip()  # never paid before: last_paid_height is this masternode's
    sent = mn(
        "register", "--collateral", f"{reg.collateral.txid.hex()}:0", "--key", "mn2.key", "--payout", payout
    )
    assert sent.returncode == 0, sent.stderr
    height = int(re.search(r"^in block (\d+)$", sent.stdout, re.MULTILINE).group(1))
    for node in rpcs:

        def paid(n: RPCClient = node) -> dict | None:
            row = next((r for r in n.masternodelist() if r["public_key"] == key), None)
            return row if row is not None and row["last_paid_height"] is not None else None

        row = wait_until(paid, scaled(60), what=f"{key[:8]} listed and paid")
        assert row["tier"] == "bronze" and row["registered_height"] == height
        assert row["payout_address"] == payout
        assert row["last_paid_height"] > height
