"""Transaction and mempool RPC methods on a live single node (DESIGN §4, §10, §12 invariant 6).

A devnet chain of 3 blocks is written into the node's data directory before it starts. New
transfers signed offline go through ``sendrawtransaction`` / ``sendrawtransactions``; every
rejection must carry Bitcoin Core's error code and the ledger's reject code and leave the
mempool as it was.
"""

from __future__ import annotations

import dataclasses

import pytest

from timecoin.core.types import Block, OutPoint, Transaction, TxOut, Witness
from timecoin.rpc import errors
from timecoin.testing.node import (
    TestNode,
    assert_raises_rpc_error,
    build_devnet_chain,
    default_port_seed,
    write_chain,
)

BLOCKS, TXS = 3, 4


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    return build_devnet_chain(tmp_path_factory.mktemp("rpc_rawtx"), BLOCKS, TXS)


@pytest.fixture(scope="module")
def node(chain):
    n = TestNode(0, chain.genesis_file.parent, chain.genesis_file, port_seed=default_port_seed() + 2)
    write_chain(n.datadir, chain, BLOCKS)
    n.start_and_wait()
    yield n
    if n.running:
        n.stop()
    n.cleanup()


def test_getrawtransaction_of_committed_transactions(node, chain):
    block = Block.decode(chain.blocks[2])
    tx = block.transactions[3]
    assert node.rpc.getrawtransaction(tx.txid.hex()) == tx.encode().hex()
    verbose = node.rpc.getrawtransaction(tx.txid.hex(), True)
    assert verbose["hex"] == tx.encode().hex()
    assert verbose["txid"] == tx.txid.hex()
    assert verbose["blockhash"] == block.hash.hex() and verbose["height"] == 2
    assert verbose["confirmations"] == BLOCKS - 2 + 1
    assert verbose["blocktime"] == block.header.timestamp
    assert node.rpc.getrawtransaction(tx.txid.hex(), 1, block.hash.hex())["height"] == 2
    other_block = Block.decode(chain.blocks[1]).hash.hex()
    assert_raises_rpc_error(
        errors.INVALID_ADDRESS_OR_KEY,
        "No such in block",
        node.rpc.getrawtransaction,
        tx.txid.hex(),
        0,
        other_block,
    )
    assert_raises_rpc_error(
        errors.INVALID_ADDRESS_OR_KEY,
        "Block hash not found",
        node.rpc.getrawtransaction,
        tx.txid.hex(),
        0,
        "00" * 32,
    )
    # The genesis block is indexed too (the index caught up on start).
    genesis_coinbase = chain.genesis.block.transactions[0]
    assert node.rpc.getrawtransaction(genesis_coinbase.txid.hex()) == genesis_coinbase.encode().hex()
    assert_raises_rpc_error(
        errors.INVALID_ADDRESS_OR_KEY, "No such mempool or blockchain", node.rpc.getrawtransaction, "00" * 32
    )
    assert_raises_rpc_error(errors.INVALID_PARAMETER, "of length 64", node.rpc.getrawtransaction, "00")


def test_decoderawtransaction(node, chain):
    tx = Block.decode(chain.blocks[1]).transactions[1]
    decoded = node.rpc.decoderawtransaction(tx.encode().hex())
    assert decoded["txid"] == tx.txid.hex()
    assert decoded["kind"] == "transfer" and decoded["size"] == len(tx.encode())
    assert [o["value_sat"] for o in decoded["vout"]] == [o.value for o in tx.outputs]
    assert_raises_rpc_error(
        errors.DESERIALIZATION_ERROR, "TX decode failed", node.rpc.decoderawtransaction, "00ff"
    )
    assert_raises_rpc_error(
        errors.DESERIALIZATION_ERROR,
        "TX decode failed",
        node.rpc.decoderawtransaction,
        tx.encode().hex() + "00",
    )
    assert_raises_rpc_error(errors.INVALID_PARAMETER, "hexadecimal", node.rpc.decoderawtransaction, "xyz")
    assert_raises_rpc_error(
        errors.INVALID_PARAMS, "must be a hex string", node.rpc.decoderawtransaction, ["00"]
    )


def test_sendrawtransaction_and_rejections(node, chain):
    params = chain.config.params
    (tx,) = chain.transfers(1)
    assert node.rpc.sendrawtransaction(tx.encode().hex()) == tx.txid.hex()
    assert node.rpc.getrawmempool() == [tx.txid.hex()]
    assert node.rpc.sendrawtransaction(tx.encode().hex()) == tx.txid.hex()  # already pending: no error
    info = node.rpc.getmempoolinfo()
    assert info["size"] == 1 and info["bytes"] == len(tx.encode())
    assert info["maxmempooltxs"] == params.mempool_max_txs
    from_mempool = node.rpc.getrawtransaction(tx.txid.hex(), True)
    assert from_mempool["hex"] == tx.encode().hex() and "blockhash" not in from_mempool

    # gettxout sees the pending spend and the pending outputs.
    spent = tx.inputs[0]
    assert node.rpc.gettxout(spent.txid.hex(), spent.vout) is None
    assert node.rpc.gettxout(spent.txid.hex(), spent.vout, False)["value_sat"] > 0
    pending = node.rpc.gettxout(tx.txid.hex(), 1)
    assert pending["confirmations"] == 0 and pending["value_sat"] == tx.outputs[1].value
    assert node.rpc.gettxout(tx.txid.hex(), 1, False) is None

    before = node.rpc.getrawmempool()
    network = int(params.network)
    # A conflicting spend of the same input.
    conflict = Transaction.transfer([spent], [TxOut(tx.outputs[0].value, tx.outputs[0].pubkey_hash)])
    key = chain.wallet.coins[OutPoint(tx.txid, 0)][1]
    conflict = conflict.signed_with([key], chain.genesis.hash, network)
    # Consensus admission keeps a valid conflicting spend beside the mempool so every masternode
    # learns both sides (docs/consensus.md §2): accepted, pending in conflict, not in the mempool.
    assert node.rpc.sendrawtransaction(conflict.encode().hex()) == conflict.txid.hex()
    status = node.rpc.gettransactionfinality(conflict.txid.hex())
    assert status["status"] == "pending" and status["conflicted"] is True
    assert conflict.txid.hex() not in node.rpc.getrawmempool()
    # A spend of a coin that does not exist.
    missing = Transaction.transfer([OutPoint(b"\x01" * 32, 0)], [TxOut(10_000, tx.outputs[0].pubkey_hash)])
    missing = missing.signed_with([key], chain.genesis.hash, network)
    assert_raises_rpc_error(
        errors.VERIFY_ERROR, "missing-input", node.rpc.sendrawtransaction, missing.encode().hex()
    )
    # A transaction a committed block already holds.
    committed = Block.decode(chain.blocks[2]).transactions[1]
    assert_raises_rpc_error(
        errors.VERIFY_ALREADY_IN_CHAIN,
        "already in block chain",
        node.rpc.sendrawtransaction,
        committed.encode().hex(),
    )
    # A bad signature.
    (fresh,) = chain.transfers(1)
    witness = fresh.witnesses[0]
    forged = dataclasses.replace(
        fresh,
        witnesses=(Witness(witness.public_key, bytes([witness.signature[0] ^ 1]) + witness.signature[1:]),),
    )
    assert_raises_rpc_error(
        errors.VERIFY_REJECTED, "bad-signature", node.rpc.sendrawtransaction, forged.encode().hex()
    )
    # A fee below the minimum: all of the input as output.
    coin = node.rpc.gettxout(fresh.inputs[0].txid.hex(), fresh.inputs[0].vout)
    greedy = Transaction.transfer([fresh.inputs[0]], [TxOut(coin["value_sat"], fresh.outputs[0].pubkey_hash)])
    greedy = greedy.signed_with([chain.wallet.coins[OutPoint(fresh.txid, 0)][1]], chain.genesis.hash, network)
    assert_raises_rpc_error(
        errors.VERIFY_REJECTED, "insufficient-fee", node.rpc.sendrawtransaction, greedy.encode().hex()
    )
    assert_raises_rpc_error(
        errors.DESERIALIZATION_ERROR, "TX decode failed", node.rpc.sendrawtransaction, "0102"
    )
    assert node.rpc.getrawmempool() == before
    # The honest version of ``fresh`` still goes in.
    assert node.rpc.sendrawtransaction(fresh.encode().hex()) == fresh.txid.hex()


def test_sendrawtransactions_batch(node, chain):
    before = set(node.rpc.getrawmempool())
    # The mempool admits spends of committed coins only: drop the wallet's pending outputs.
    for outpoint in [o for o in chain.wallet.coins if o.txid.hex() in before]:
        del chain.wallet.coins[outpoint]
    batch = chain.transfers(20)
    bad = "00ff"
    results = node.rpc.sendrawtransactions(
        [tx.encode().hex() for tx in batch[:10]] + [bad] + [tx.encode().hex() for tx in batch[10:]]
    )
    assert len(results) == 21
    ok = results[:10] + results[11:]
    assert [r["reject"] for r in ok] == [None] * 20 and all(r["accepted"] for r in ok)
    assert [r["txid"] for r in ok] == [tx.txid.hex() for tx in batch]
    assert results[10]["accepted"] is False and results[10]["reject"]["code"] == errors.DESERIALIZATION_ERROR
    pool = node.rpc.getrawmempool(True)
    assert set(pool) == before | {tx.txid.hex() for tx in batch}
    entry = pool[batch[0].txid.hex()]
    assert entry["size"] == len(batch[0].encode()) and entry["fee_sat"] > 0
    assert node.rpc.getmempoolinfo()["size"] == len(pool)
    assert_raises_rpc_error(
        errors.INVALID_PARAMETER, "hexstrings[1]", node.rpc.sendrawtransactions, ["00", 5]
    )
    assert_raises_rpc_error(errors.INVALID_PARAMS, "must be an array", node.rpc.sendrawtransactions, "00")
