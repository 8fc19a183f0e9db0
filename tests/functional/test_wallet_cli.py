"""``timecoin wallet`` end to end on a devnet of four ``timecoind`` masternodes (DESIGN §6, §7, §10;
docs/wallet.md): the genesis's Gold masternodes, full mesh over loopback, 2 s slots.

Two wallets are created with the CLI (encrypted keystores, Argon2id "interactive" limits). A key
funded by the genesis pays wallet A two coins (10 and 3 TIME) in a signed transfer submitted with
``timecoin-cli sendrawtransaction``; it becomes final and is archived in a block on every node,
and ``getbalance``/``listunspent``/``wallet balance`` show it. Then ``wallet send --wait`` pays
wallet B 4 TIME: the CLI exits 0 with status ``final``, every node's ``gettransactionfinality``
says final, at least one holds a finality certificate and each verifies against the masternode
set, and a block archives it on every node. A second send, through another node, pays B 1 TIME
from the first send's change. Then the balances add up to the sat on every node and in the CLI:
B holds exactly what was sent, A what it had less the payments and the two fees, each fee being
exactly DESIGN §4's minimum on the value sent to others (the payment: the change goes back to
the address spent from and costs nothing).
Bad addresses and amounts, a wrong passphrase, dust and insufficient funds fail with clear
errors and reach no node.

The first block comes about 15 s after the start (the production gate, closed until the
masternodes see each other online, is asked again after half a heartbeat interval), so the
module takes about 30 s.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import pytest

from timecoin import crypto
from timecoin.consensus import verify_certificate
from timecoin.core.address import decode_address, encode_address, pubkey_hash
from timecoin.core.types import OutPoint, Transaction, TxOut
from timecoin.ledger.chain import ChainState
from timecoin.params import COIN, DEVNET, TESTNET
from timecoin.rpc import errors
from timecoin.rpc.client import RPCClient, cookie_auth
from timecoin.testing.node import (
    TestNode,
    assert_raises_rpc_error,
    build_devnet_chain,
    default_port_seed,
    masternode_network,
    wait_until,
)
from timecoin.wallet import NodeWallet

N = 4
SEED_OFFSET = 11
FUNDS = (10 * COIN, 3 * COIN)
"""Wallet A's two coins from the genesis key, sat (to its first and second address)."""
FIRST, SECOND = 4 * COIN, 1 * COIN
"""What A pays B in its two sends, sat."""
OTHER = encode_address(bytes([0x42]) * 32, DEVNET)


@dataclass
class CliWallet:
    """A keystore file driven through ``timecoin wallet`` and its addresses."""

    path: Path
    passphrase: Path
    addresses: list[str]


def wallet_cli(
    node: TestNode, wallet: CliWallet, *args: str, passphrase: Path | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """Runs ``timecoin wallet --wallet <file> ... args`` against ``node``."""
    command = [
        sys.executable,
        "-m",
        "timecoin.cli.main",
        "wallet",
        "--network",
        "devnet",
        "--datadir",
        str(node.datadir),
        "--rpcport",
        str(node.rpc_port),
        "--wallet",
        str(wallet.path),
        "--passphrase-file",
        str(passphrase or wallet.passphrase),
        *args,
    ]
    done = subprocess.run(command, capture_output=True, text=True, env=node.environment())
    if check and done.returncode != 0:
        raise AssertionError(f"{args} failed ({done.returncode}): {done.stderr}")
    return done


def create_wallet(node: TestNode, root: Path, name: str, keys: int) -> CliWallet:
    wallet = CliWallet(root / f"{name}.json", root / f"{name}.passphrase", [])
    wallet.passphrase.write_text(f"passphrase of wallet {name}\n")
    first = wallet_cli(node, wallet, "create", "--keys", str(keys), "--kdf-limits", "interactive")
    wallet.addresses = wallet_cli(node, wallet, "address").stdout.split()
    assert len(wallet.addresses) == keys and wallet.addresses[0] == first.stdout.strip()
    return wallet


def wait_final(nodes: list[TestNode], txid: str, timeout: float = 30) -> list[dict]:
    """Waits until ``txid`` is final on every node; each node's status."""

    def final(node: TestNode) -> dict | None:
        status = node.rpc.waittransactionfinality(txid, 2000)
        assert status["status"] != "rejected", status
        return status if status["status"] == "final" else None

    return [wait_until(lambda n=n: final(n), timeout, what=f"{txid[:16]} final on {n}") for n in nodes]


def wait_archived(nodes: list[TestNode], txid: str, timeout: float = 30) -> int:
    """Waits until ``txid`` is in a committed block on every node; that block's height."""
    heights = {
        wait_until(
            lambda n=n: n.rpc.gettransactionfinality(txid)["height"],
            timeout,
            what=f"{txid[:16]} archived on {n}",
        )
        for n in nodes
    }
    assert len(heights) == 1, heights
    return heights.pop()


@pytest.fixture(scope="module")
def net(tmp_path_factory):
    chain = build_devnet_chain(tmp_path_factory.mktemp("wallet_cli"), 0, 0)
    with masternode_network(chain, N, default_port_seed() + SEED_OFFSET) as nodes:
        for node in nodes:
            wait_until(
                lambda n=node: sum(row["online"] for row in n.rpc.masternodelist()) == N,
                30,
                what=f"{node} sees every masternode online",
            )
        yield chain, nodes


@pytest.fixture(scope="module")
def wallets(net):
    """Wallets A (two keys, funded from the genesis, archived) and B (one key, empty); the
    funding transaction's txid and block height."""
    chain, nodes = net
    root = chain.genesis_file.parent
    a = create_wallet(nodes[0], root, "a", 2)
    b = create_wallet(nodes[0], root, "b", 1)
    (outpoint, (value, secret)), *_ = chain.wallet.coins.items()
    # All the genesis coin to A's two addresses and back to its owner, at exactly the minimum fee
    # (on what A receives: the rest goes back to the address spent from).
    params = chain.config.params
    total = value - params.min_fee(sum(FUNDS))
    paid = [TxOut(v, decode_address(addr, DEVNET)) for v, addr in zip(FUNDS, a.addresses, strict=True)]
    back = TxOut(total - sum(FUNDS), pubkey_hash(crypto.public_key(secret)))
    funding = Transaction.transfer([outpoint], [*paid, back]).signed_with(
        [secret], chain.genesis.hash, int(params.network)
    )
    txid = nodes[1].cli("sendrawtransaction", funding.encode().hex()).stdout.strip()
    assert txid == funding.txid.hex()
    wait_final(nodes, txid)
    height = wait_archived(nodes, txid)
    return a, b, txid, height


def validator_set(chain):
    """(keys, weights) of the genesis masternode set (no registration changes on this chain)."""
    state = ChainState.open(chain.genesis_file.parent / "verifier", chain.config.params, chain.genesis)
    try:
        return state.leader_set(1)
    finally:
        state.close()


def test_funded_from_genesis(net, wallets):
    _, nodes = net
    a, b, funding, height = wallets
    for node in nodes:
        balance = node.rpc.getbalance(*a.addresses)
        assert balance["balance_sat"] == sum(FUNDS) and balance["balance"] == 13.0
        assert balance["available_sat"] == sum(FUNDS) and balance["locked_sat"] == 0
        assert balance["coins"] == 2 and balance["height"] >= height
        assert [row["balance_sat"] for row in balance["addresses"]] == list(FUNDS)
        assert node.rpc.getbalance(*b.addresses)["balance_sat"] == 0
    node = nodes[0]
    assert node.rpc.getbalance(a.addresses[1])["balance_sat"] == FUNDS[1]
    assert node.rpc.getbalance(OTHER)["balance_sat"] == 0
    coins = node.rpc.listunspent(1, a.addresses)
    assert sorted(
        (c["txid"], c["vout"], c["address"], c["amount_sat"], c["amount"], c["height"]) for c in coins
    ) == [
        (funding, 0, a.addresses[0], FUNDS[0], 10.0, height),
        (funding, 1, a.addresses[1], FUNDS[1], 3.0, height),
    ]
    assert all(c["confirmations"] >= 1 and not c["locked"] and not c["coinbase"] for c in coins)
    assert node.rpc.listunspent(10**6, a.addresses) == []
    assert_raises_rpc_error(
        errors.INVALID_ADDRESS_OR_KEY, "bad characters, length or checksum", node.rpc.getbalance, "dtime1xyz"
    )
    testnet = encode_address(bytes(32), TESTNET)
    assert_raises_rpc_error(
        errors.INVALID_ADDRESS_OR_KEY, "is a testnet address", node.rpc.listunspent, 1, [testnet]
    )
    assert_raises_rpc_error(errors.INVALID_PARAMETER, "at least one address", node.rpc.listunspent, 1, [])
    assert_raises_rpc_error(errors.INVALID_PARAMETER, "minconf", node.rpc.listunspent, -1, a.addresses)
    assert json.loads(node.cli("getbalance", *a.addresses).stdout)["balance_sat"] == sum(FUNDS)

    shown = wallet_cli(nodes[2], a, "balance").stdout
    assert "balance   13.00000000 TIME (2 coins" in shown and "available 13.00000000 TIME" in shown
    assert "locked" not in shown


def test_send_final_and_balances_add_up(net, wallets):
    chain, nodes = net
    a, b, funding, _ = wallets
    keys, weights = validator_set(chain)
    # Every coin A had or made: outpoint → value (sat), to price the inputs of its sends.
    known = {OutPoint(bytes.fromhex(funding), vout): value for vout, value in enumerate(FUNDS)}

    def send_final(node: TestNode, *args: str) -> tuple[Transaction, subprocess.CompletedProcess[str]]:
        """``wallet send ... --wait`` through ``node``: the CLI reports final (exit 0), every node
        says final, at least one holds a certificate and each verifies against the masternode
        set; then archived in one block on every node. The transaction, and the CLI's output."""
        done = wallet_cli(node, a, "send", *args, "--wait", "--wait-timeout", "30")
        txid, reported = done.stdout.splitlines()
        assert re.fullmatch(r"final in \d+ ms", reported), reported
        per_node = wait_final(nodes, txid)
        certificates = {s["certificate"] for s in per_node if s["certificate"]}
        assert certificates, f"no node holds a finality certificate for {txid}"
        for cert in certificates:
            decoded = verify_certificate(
                bytes.fromhex(cert), bytes.fromhex(txid), (keys, weights), chain.genesis.hash
            )
            assert 3 * sum(weights[keys.index(v)] for v in decoded.voters) >= 2 * sum(weights)
        wait_archived(nodes, txid)
        tx = Transaction.decode(bytes.fromhex(nodes[3].rpc.getrawtransaction(txid)))
        assert tx.txid.hex() == txid
        known.update({OutPoint(tx.txid, vout): out.value for vout, out in enumerate(tx.outputs)})
        return tx, done

    def fee_of(tx: Transaction) -> int:
        """The fee, checked against the wallet's rule: exactly the minimum on the value sent to
        others (the payment; the change pays the address spent from)."""
        total_in = sum(known[op] for op in tx.inputs)
        total_out = sum(out.value for out in tx.outputs)
        assert total_in - total_out == DEVNET.min_fee(tx.outputs[0].value)
        return total_in - total_out

    b_hash, a_hash = decode_address(b.addresses[0], DEVNET), decode_address(a.addresses[0], DEVNET)
    tx1, first = send_final(nodes[0], b.addresses[0], "4")
    # Largest first: the 10 TIME coin pays; B's output first, the change to A's first address.
    assert tx1.inputs == (OutPoint(bytes.fromhex(funding), 0),)
    assert len(tx1.outputs) == 2 and tx1.outputs[0] == TxOut(FIRST, b_hash)
    assert tx1.outputs[1].pubkey_hash == a_hash
    fee1 = fee_of(tx1)
    fee_time, change_time = (f"{Decimal(v) / COIN:.8f} TIME" for v in (fee1, tx1.outputs[1].value))
    assert f"fee {fee_time}, change {change_time}, 1 input\n" in first.stderr

    # Through another node: the change (about 6 TIME, committed now) is the largest coin.
    tx2, second = send_final(nodes[2], b.addresses[0], str(SECOND), "--sat")
    assert tx2.inputs == (OutPoint(tx1.txid, 1),)
    assert len(tx2.outputs) == 2 and tx2.outputs[0] == TxOut(SECOND, b_hash)
    assert tx2.outputs[1].pubkey_hash == a_hash
    fee2 = fee_of(tx2)
    assert f"sent {SECOND} sat to {b.addresses[0]}, fee {fee2} sat" in second.stderr

    # The balances add up to the sat on every node and in the CLI.
    left = sum(FUNDS) - FIRST - SECOND - fee1 - fee2
    for node in nodes:
        got_a, got_b = node.rpc.getbalance(*a.addresses), node.rpc.getbalance(*b.addresses)
        assert (got_a["balance_sat"], got_a["locked_sat"], got_a["coins"]) == (left, 0, 2)
        assert [row["balance_sat"] for row in got_a["addresses"]] == [tx2.outputs[1].value, FUNDS[1]]
        assert (got_b["balance_sat"], got_b["locked_sat"], got_b["coins"]) == (FIRST + SECOND, 0, 2)
        assert got_a["balance_sat"] + got_b["balance_sat"] + fee1 + fee2 == sum(FUNDS)
    shown_a = json.loads(wallet_cli(nodes[1], a, "balance", "--json").stdout)
    assert (shown_a["balance_sat"], shown_a["available_sat"]) == (left, left)
    shown_b = wallet_cli(nodes[3], b, "balance").stdout
    assert "balance   5.00000000 TIME (2 coins" in shown_b and "available 5.00000000 TIME" in shown_b


def test_wallet_errors(net, wallets, tmp_path):
    _, nodes = net
    a, b, _, _ = wallets
    node = nodes[0]
    cursor = node.rpc.getfinalityfeed()["cursor"]
    broke = wallet_cli(node, a, "send", OTHER, "100", check=False)
    assert broke.returncode == 1 and "insufficient funds" in broke.stderr and "sat spendable" in broke.stderr
    bad = wallet_cli(node, a, "send", "dtime1notanaddress", "1", check=False)
    assert bad.returncode == 1 and "invalid address" in bad.stderr
    wrong = tmp_path / "wrong"
    wrong.write_text("not the passphrase\n")
    refused = wallet_cli(node, a, "send", OTHER, "1", passphrase=wrong, check=False)
    assert refused.returncode == 1 and "wrong passphrase" in refused.stderr
    again = wallet_cli(node, b, "create", check=False)
    assert again.returncode == 1 and "refusing to overwrite" in again.stderr
    (tmp_path / "file").write_text("")
    unwritable = CliWallet(tmp_path / "file" / "wallet.json", a.passphrase, [])
    nowhere = wallet_cli(node, unwritable, "create", "--kdf-limits", "interactive", check=False)
    assert nowhere.returncode == 1 and "cannot write the wallet" in nowhere.stderr
    dust = wallet_cli(node, a, "send", OTHER, "0.000001", check=False)
    assert dust.returncode == 1 and "below the dust limit" in dust.stderr
    for done in (broke, bad, refused, again, nowhere, dust):
        assert "Traceback" not in done.stderr and done.stderr.startswith("Error: "), done.stderr
    for amount, message in (
        ("Infinity", "is not an amount"),
        ("1e999999999", "is not an amount"),
        ("1.000000001", "at most 8 decimals"),
        ("184467440737.09551616", "over the largest amount"),
    ):
        done = wallet_cli(node, a, "send", OTHER, amount, check=False)
        assert done.returncode == 2 and message in done.stderr and "Traceback" not in done.stderr, done.stderr
    # None of them reached consensus: no finality decision since.
    page = node.rpc.getfinalityfeed(cursor, 0)
    assert (page["final"], page["rejected"], page["cursor"]) == ([], [], cursor)


def test_wait_outlasts_the_rpc_timeout(net):
    """A finality wait longer than the RPC client's timeout is split into shorter calls (it used
    to be one call that the HTTP read timed out)."""
    _, nodes = net
    node = nodes[1]
    wallet = NodeWallet(
        RPCClient("127.0.0.1", node.rpc_port, *cookie_auth(node.datadir), timeout=0.4), DEVNET
    )
    started = time.monotonic()
    status = wallet.wait_final("ab" * 32, 1.5)
    assert status["status"] == "unknown" and time.monotonic() - started >= 1.5
    with pytest.raises(ValueError, match="must be >= 0"):
        wallet.wait_final("ab" * 32, -1)
