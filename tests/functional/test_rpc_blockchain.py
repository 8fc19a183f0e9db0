"""Blockchain RPC methods on a live single node (DESIGN §10).

A deterministic devnet chain of 4 blocks is built offline; blocks 1–3 are written into the node's
data directory before ``timecoind`` starts (its transaction index catches up on start), block 4
is held back for ``submitblock``. Every method is checked against the offline chain, with bad
parameters getting the right error code while the node keeps serving.
"""

from __future__ import annotations

import threading

import pytest

from timecoin.core.address import encode_address, pubkey_hash
from timecoin.core.types import HEADER_LEN, Block, BlockHeader, OutPoint, Transaction, TxOut
from timecoin.crypto import public_key
from timecoin.ledger.chain import ChainState
from timecoin.rpc import errors
from timecoin.testing.node import (
    TestNode,
    assert_raises_rpc_error,
    build_devnet_chain,
    default_port_seed,
    write_chain,
)

BLOCKS, TXS = 4, 4


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    return build_devnet_chain(tmp_path_factory.mktemp("rpc_blockchain"), BLOCKS, TXS)


@pytest.fixture(scope="module")
def node(chain):
    n = TestNode(0, chain.genesis_file.parent, chain.genesis_file, port_seed=default_port_seed() + 1)
    write_chain(n.datadir, chain, BLOCKS - 1)
    n.start_and_wait()
    yield n
    if n.running:
        n.stop()
    n.cleanup()


def _hash(raw: bytes) -> str:
    return BlockHeader.decode(raw[:HEADER_LEN]).hash.hex()


def test_tip_and_block_hashes(node, chain):
    assert node.rpc.getblockcount() == BLOCKS - 1
    assert node.rpc.getbestblockhash() == _hash(chain.blocks[BLOCKS - 1])
    for height in range(BLOCKS):
        assert node.rpc.getblockhash(height) == _hash(chain.blocks[height])
    assert_raises_rpc_error(errors.INVALID_PARAMETER, "out of range", node.rpc.getblockhash, BLOCKS)
    assert_raises_rpc_error(errors.INVALID_PARAMETER, "out of range", node.rpc.getblockhash, -1)
    assert_raises_rpc_error(errors.INVALID_PARAMS, "must be an integer", node.rpc.getblockhash, "1")
    assert_raises_rpc_error(errors.INVALID_PARAMS, "must be an integer", node.rpc.getblockhash, 1.5)
    assert_raises_rpc_error(errors.INVALID_PARAMS, "missing parameter height", node.rpc.getblockhash)
    assert_raises_rpc_error(errors.INVALID_PARAMS, "at most 1", node.rpc.getblockhash, 1, 2)
    assert node.rpc.getblockhash(height=0) == chain.genesis.hash.hex()
    assert_raises_rpc_error(errors.INVALID_PARAMS, "unknown parameter", node.rpc.getblockhash, hight=0)


def test_getblockchaininfo(node, chain):
    info = node.rpc.getblockchaininfo()
    tip = BlockHeader.decode(chain.blocks[BLOCKS - 1][:HEADER_LEN])
    assert info["chain"] == "devnet"
    assert info["blocks"] == BLOCKS - 1
    assert info["bestblockhash"] == tip.hash.hex()
    assert info["utxosethash"] == tip.utxo_set_hash.hex()
    assert info["genesis"] == chain.genesis.hash.hex()
    assert info["time"] == tip.timestamp
    assert info["size_on_disk"] > 0
    assert info["verificationprogress"] == 1.0


def test_getblock_every_verbosity(node, chain):
    raw = chain.blocks[2]
    block = Block.decode(raw)
    block_hash = block.hash.hex()
    assert node.rpc.getblock(block_hash, 0) == raw.hex()
    one = node.rpc.getblock(block_hash)
    assert one == node.rpc.getblock(block_hash, 1) == node.rpc.getblock(block_hash, True)
    assert one["hash"] == block_hash and one["height"] == 2 and one["size"] == len(raw)
    assert one["tx"] == [t.hex() for t in block.txids]
    assert one["nTx"] == len(block.transactions) == TXS + 1
    assert one["confirmations"] == BLOCKS - 1 - 2 + 1
    assert one["previousblockhash"] == _hash(chain.blocks[1])
    assert one["nextblockhash"] == _hash(chain.blocks[3])
    assert one["merkleroot"] == block.header.merkle_root.hex()
    two = node.rpc.getblock(block_hash, 2)
    assert [t["txid"] for t in two["tx"]] == one["tx"]
    coinbase = two["tx"][0]
    assert coinbase["kind"] == "coinbase" and coinbase["payload"] == {"height": 2} and coinbase["vin"] == []
    transfer = two["tx"][1]
    tx = block.transactions[1]
    assert transfer["size"] == len(tx.encode())
    assert transfer["vin"] == [{"txid": i.txid.hex(), "vout": i.vout} for i in tx.inputs]
    assert [o["value_sat"] for o in transfer["vout"]] == [o.value for o in tx.outputs]
    assert transfer["vout"][0]["address"] == encode_address(tx.outputs[0].pubkey_hash, chain.config.params)
    assert transfer["witnesses"][0]["public_key"] == tx.witnesses[0].public_key.hex()
    assert node.rpc.getblock(chain.genesis.hash.hex())["height"] == 0
    assert_raises_rpc_error(errors.INVALID_PARAMETER, "must be 0, 1 or 2", node.rpc.getblock, block_hash, 3)
    assert_raises_rpc_error(errors.INVALID_PARAMETER, "of length 64", node.rpc.getblock, "abcd")
    assert_raises_rpc_error(errors.INVALID_PARAMETER, "hexadecimal", node.rpc.getblock, "zz" * 32)
    assert_raises_rpc_error(errors.INVALID_ADDRESS_OR_KEY, "Block not found", node.rpc.getblock, "00" * 32)
    assert_raises_rpc_error(errors.INVALID_PARAMS, "must be a hex string", node.rpc.getblock, 5)


def test_getblockheader(node, chain):
    raw = chain.blocks[1]
    header = BlockHeader.decode(raw[:HEADER_LEN])
    assert node.rpc.getblockheader(header.hash.hex(), False) == raw[:HEADER_LEN].hex()
    verbose = node.rpc.getblockheader(header.hash.hex())
    assert verbose["utxosethash"] == header.utxo_set_hash.hex() and verbose["height"] == 1
    assert_raises_rpc_error(
        errors.INVALID_ADDRESS_OR_KEY, "Block not found", node.rpc.getblockheader, "11" * 32
    )


def test_gettxout(node, chain):
    params = chain.config.params
    coinbase = chain.genesis.block.transactions[0]
    allocations = len(chain.config.allocations)
    collateral = node.rpc.gettxout(coinbase.txid.hex(), allocations)  # first masternode collateral
    out = coinbase.outputs[allocations]
    assert collateral["value_sat"] == out.value
    assert collateral["address"] == encode_address(out.pubkey_hash, params)
    assert collateral["coinbase"] is True and collateral["height"] == 0
    assert collateral["confirmations"] == BLOCKS and collateral["bestblock"] == node.rpc.getbestblockhash()
    spent_by_block_1 = Block.decode(chain.blocks[1]).transactions[1].inputs[0]
    assert node.rpc.gettxout(spent_by_block_1.txid.hex(), spent_by_block_1.vout) is None
    assert node.rpc.gettxout(coinbase.txid.hex(), 10_000) is None
    assert node.rpc.gettxout("00" * 32, 0) is None
    assert_raises_rpc_error(
        errors.INVALID_PARAMETER, "n must be in", node.rpc.gettxout, coinbase.txid.hex(), -1
    )
    assert_raises_rpc_error(errors.INVALID_PARAMETER, "of length 64", node.rpc.gettxout, "ab", 0)
    assert_raises_rpc_error(
        errors.INVALID_PARAMS, "missing parameter n", node.rpc.gettxout, coinbase.txid.hex()
    )


def test_gettxoutsetinfo_matches_a_reference_chain(node, chain, tmp_path):
    reference = tmp_path / "reference"
    write_chain(reference, chain, BLOCKS - 1)
    from timecoin.node import CHAIN_DIR

    state = ChainState.open(reference / CHAIN_DIR, chain.config.params, chain.genesis)
    try:
        count, set_hash = len(state.utxos), state.utxos.set_hash()
    finally:
        state.close()
    info = node.rpc.gettxoutsetinfo()
    assert info["height"] == BLOCKS - 1
    assert info["txouts"] == count
    assert info["utxosethash"] == set_hash.hex()
    genesis_total = sum(o.value for o in chain.genesis.block.transactions[0].outputs)
    # Fees move to the masternodes inside each coinbase; only the block reward adds coins.
    assert info["total_amount_sat"] == genesis_total + (BLOCKS - 1) * chain.config.params.block_reward


def _conflict_with(node, chain, tx: Transaction) -> Transaction:
    """Another valid transfer spending ``tx``'s first input (paying a higher fee)."""
    spent = tx.inputs[0]
    coin = node.rpc.gettxout(spent.txid.hex(), spent.vout)
    keys = {pubkey_hash(public_key(k)): k for k in chain.account_keys}
    owner = tx.outputs[0].pubkey_hash
    value = coin["value_sat"] - 2 * chain.config.params.min_fee(coin["value_sat"])
    conflict = Transaction.transfer([OutPoint(spent.txid, spent.vout)], [TxOut(value, owner)])
    return conflict.signed_with([keys[owner]], chain.genesis.hash, int(chain.config.params.network))


def test_submitblock_connects_and_cleans_the_mempool(node, chain):
    block4 = Block.decode(chain.blocks[4])
    included, other = block4.transactions[1], block4.transactions[2]
    conflict = _conflict_with(node, chain, other)
    assert node.rpc.sendrawtransaction(included.encode().hex()) == included.txid.hex()
    assert node.rpc.sendrawtransaction(conflict.encode().hex()) == conflict.txid.hex()
    assert set(node.rpc.getrawmempool()) == {included.txid.hex(), conflict.txid.hex()}

    waiter_result = {}
    waiter = threading.Thread(
        target=lambda: waiter_result.update(node.new_rpc().waitforblockheight(BLOCKS, 20_000)), daemon=True
    )
    waiter.start()
    assert node.rpc.submitblock(chain.blocks[4].hex()) is None
    waiter.join(20)
    assert waiter_result == {"hash": block4.hash.hex(), "height": BLOCKS}
    assert node.rpc.getblockcount() == BLOCKS
    assert node.rpc.getrawmempool() == []  # included one removed, its conflict too
    assert node.rpc.getrawtransaction(included.txid.hex(), True)["height"] == BLOCKS
    assert node.rpc.submitblock(chain.blocks[4].hex()) == "duplicate"
    assert node.rpc.submitblock(chain.blocks[2].hex()) == "duplicate"

    # Same block with another timestamp: a new hash, but it builds on block 3.
    header = block4.header
    moved = BlockHeader(
        header.version,
        header.height,
        header.prev_hash,
        header.merkle_root,
        header.utxo_set_hash,
        header.timestamp + 1,
        header.proposer,
        header.vrf_proof,
        header.vrf_output,
        header.round,
    )
    stale = moved.encode() + chain.blocks[4][HEADER_LEN:]
    assert node.rpc.submitblock(stale.hex()) == "bad-prevblk"
    assert_raises_rpc_error(errors.INVALID_PARAMETER, "hexadecimal", node.rpc.submitblock, "zz")
    assert_raises_rpc_error(errors.DESERIALIZATION_ERROR, "Block decode failed", node.rpc.submitblock, "00")
    assert node.rpc.getblockcount() == BLOCKS


def test_waitfornewblock_times_out_at_the_tip(node):
    tip = node.rpc.getbestblockhash()
    assert node.rpc.waitfornewblock(100) == {"hash": tip, "height": node.rpc.getblockcount()}
    assert node.rpc.waitforblockheight(1, 0)["hash"] == tip
    assert_raises_rpc_error(errors.INVALID_PARAMETER, "timeout", node.rpc.waitfornewblock, -5)
