"""``timecoin wallet`` against a live ``timecoind`` (DESIGN §10): a wallet is created with the
CLI, funded by a block built offline (two coins to its two addresses) and written into the
node's data directory before it starts; then ``balance`` shows the coins, ``send`` pays another
address through ``sendrawtransaction`` (the transaction enters the mempool and locks its coin),
a second send spends the other coin instead of conflicting, and balances add up. Bad addresses
and insufficient funds fail with clear errors. ``getbalance``/``listunspent`` are checked over
RPC too.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from timecoin.core.address import decode_address, encode_address
from timecoin.core.types import Transaction, TxOut
from timecoin.ledger.blockbuilder import assemble_block
from timecoin.ledger.chain import ChainState
from timecoin.params import COIN, DEVNET, TESTNET
from timecoin.rpc import errors
from timecoin.testing.node import (
    TestNode,
    assert_raises_rpc_error,
    build_devnet_chain,
    default_port_seed,
    write_chain,
)

FUNDS = (10 * COIN, 3 * COIN)
"""The wallet's two coins, sat (to its first and second address)."""
OTHER = encode_address(bytes([0x42]) * 32, DEVNET)


def wallet_cli(
    node: TestNode, passphrase_file, *args: str, check: bool = True
) -> subprocess.CompletedProcess[str]:
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
        "--passphrase-file",
        str(passphrase_file),
        *args,
    ]
    done = subprocess.run(command, capture_output=True, text=True, env=node.environment())
    if check and done.returncode != 0:
        raise AssertionError(f"{args} failed ({done.returncode}): {done.stderr}")
    return done


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("wallet_cli")
    chain = build_devnet_chain(root, 1, 2)
    node = TestNode(0, root, chain.genesis_file, port_seed=default_port_seed() + 11)
    passphrase = root / "passphrase"
    passphrase.write_text("wallet test passphrase\n")
    wallet_cli(node, passphrase, "create", "--keys", "2", "--kdf-limits", "interactive")
    addresses = wallet_cli(node, passphrase, "address").stdout.split()
    assert len(addresses) == 2
    # Fund both addresses in block 2, built on the offline chain.
    builder = ChainState.open(root / "builder", chain.genesis.config.params, chain.genesis)
    try:
        (outpoint, (value, secret)), *_ = chain.wallet.coins.items()
        paid = [TxOut(v, decode_address(a, DEVNET)) for v, a in zip(FUNDS, addresses, strict=True)]
        rest = value - sum(FUNDS) - DEVNET.min_fee(value)
        funding = Transaction.transfer([outpoint], [*paid, TxOut(rest, bytes(32))]).signed_with(
            [secret], chain.genesis.hash, int(DEVNET.network)
        )
        block = assemble_block(builder, [funding], builder.tip_header.timestamp + 2).encode()
        builder.connect_block(block)
    finally:
        builder.close()
    chain.blocks.append(block)
    write_chain(node.datadir, chain, 2)
    node.start_and_wait()
    yield node, passphrase, addresses
    if node.running:
        node.stop()
    node.cleanup()


def test_getbalance_and_listunspent(setup):
    node, _, addresses = setup
    balance = node.rpc.getbalance(*addresses)
    assert balance["balance_sat"] == sum(FUNDS) and balance["balance"] == 13.0
    assert balance["available_sat"] == sum(FUNDS) and balance["locked_sat"] == 0
    assert balance["coins"] == 2 and balance["height"] == 2
    assert [a["balance_sat"] for a in balance["addresses"]] == list(FUNDS)
    assert node.rpc.getbalance(addresses[1])["balance_sat"] == FUNDS[1]
    assert node.rpc.getbalance(OTHER)["balance_sat"] == 0
    coins = node.rpc.listunspent(1, addresses)
    assert sorted((c["address"], c["amount_sat"], c["amount"], c["height"]) for c in coins) == sorted(
        [(addresses[0], FUNDS[0], 10.0, 2), (addresses[1], FUNDS[1], 3.0, 2)]
    )
    assert all(c["confirmations"] == 1 and not c["locked"] and len(c["txid"]) == 64 for c in coins)
    assert node.rpc.listunspent(2, addresses) == []
    assert_raises_rpc_error(
        errors.INVALID_ADDRESS_OR_KEY, "bad characters, length or checksum", node.rpc.getbalance, "dtime1xyz"
    )
    testnet = encode_address(bytes(32), TESTNET)
    assert_raises_rpc_error(
        errors.INVALID_ADDRESS_OR_KEY, "is a testnet address", node.rpc.listunspent, 1, [testnet]
    )
    assert_raises_rpc_error(errors.INVALID_PARAMETER, "at least one address", node.rpc.listunspent, 1, [])
    assert_raises_rpc_error(errors.INVALID_PARAMETER, "minconf", node.rpc.listunspent, -1, addresses)
    cli = node.cli("getbalance", addresses[0], addresses[1])
    assert json.loads(cli.stdout)["balance_sat"] == sum(FUNDS)


def test_wallet_balance_send_and_lock(setup):
    node, passphrase, addresses = setup
    shown = wallet_cli(node, passphrase, "balance").stdout
    assert "13.00000000 TIME" in shown and "2 coins" in shown

    # A single node that is no masternode cannot finalize: --wait reports the status the node
    # gives after the timeout and exits 1 (a node without the method: finality is unknown).
    first = wallet_cli(node, passphrase, "send", OTHER, "4", "--wait", "--wait-timeout", "0.5", check=False)
    assert first.returncode == 1, first.stderr
    txid, _, status = first.stdout.partition("\n")
    if "waittransactionfinality" in node.rpc.help():
        assert json.loads(status)["status"] == "pending"
    else:
        assert "has no waittransactionfinality" in first.stderr
    assert txid in node.rpc.getrawmempool()
    tx = Transaction.decode(bytes.fromhex(node.rpc.getrawtransaction(txid)))
    assert len(tx.inputs) == 1 and tx.outputs[0] == TxOut(4 * COIN, decode_address(OTHER, DEVNET))
    change = tx.outputs[1].value
    fee = FUNDS[0] - 4 * COIN - change
    assert fee == DEVNET.min_fee(4 * COIN + change) and f"fee {fee} sat" in first.stderr

    after = json.loads(wallet_cli(node, passphrase, "balance", "--json").stdout)
    assert after["balance_sat"] == sum(FUNDS)  # nothing committed yet
    assert after["locked_sat"] == FUNDS[0] and after["available_sat"] == FUNDS[1]
    shown = {c["amount_sat"]: c["locked"] for c in node.rpc.listunspent(1, addresses, True)}
    assert shown == {FUNDS[0]: True, FUNDS[1]: False}
    assert [c["amount_sat"] for c in node.rpc.listunspent(1, addresses)] == [FUNDS[1]]

    # The second send spends the unlocked coin: no conflict with the first.
    second = wallet_cli(node, passphrase, "send", addresses[0], "100000000", "--sat")
    assert sorted(node.rpc.getrawmempool()) == sorted([txid, second.stdout.strip()])
    assert json.loads(wallet_cli(node, passphrase, "balance", "--json").stdout)["available_sat"] == 0

    broke = wallet_cli(node, passphrase, "send", OTHER, "1", check=False)
    assert (
        broke.returncode == 1 and "insufficient funds" in broke.stderr and "0 sat spendable" in broke.stderr
    )


def test_wallet_errors(setup, tmp_path):
    node, passphrase, _ = setup
    bad = wallet_cli(node, passphrase, "send", "dtime1notanaddress", "1", check=False)
    assert bad.returncode == 1 and "invalid address" in bad.stderr
    wrong = tmp_path / "wrong"
    wrong.write_text("not the passphrase\n")
    refused = wallet_cli(node, wrong, "send", OTHER, "1", check=False)
    assert refused.returncode == 1 and "wrong passphrase" in refused.stderr
    again = wallet_cli(node, passphrase, "create", check=False)
    assert again.returncode == 1 and "refusing to overwrite" in again.stderr
    dust = wallet_cli(node, passphrase, "send", OTHER, "0.000001", check=False)
    assert dust.returncode == 1 and "below the dust limit" in dust.stderr
    for done in (bad, refused, again, dust):
        assert "Traceback" not in done.stderr and done.stderr.startswith("Error: ")
