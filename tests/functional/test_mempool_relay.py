"""Three ``timecoind`` processes connected in a line over loopback (node0 – node1 – node2): a
transaction sent by RPC to one end reaches every mempool (relayed through the middle node), a
block submitted to one end reaches every chain, and the network RPC methods describe the
connections (DESIGN §8, §10).
"""

from __future__ import annotations

import orjson
import pytest

from timecoin.rpc import errors
from timecoin.testing.node import (
    TestNode,
    assert_raises_rpc_error,
    build_devnet_chain,
    default_port_seed,
    wait_until,
    write_chain,
)

BLOCKS, TXS = 2, 4


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    return build_devnet_chain(tmp_path_factory.mktemp("mempool_relay"), BLOCKS, TXS)


@pytest.fixture(scope="module")
def nodes(chain):
    root, seed = chain.genesis_file.parent, default_port_seed() + 4
    line: list[TestNode] = []
    for i in range(3):
        connect = ["--connect", f"127.0.0.1:{line[-1].p2p_port}"] if line else []
        node = TestNode(i, root, chain.genesis_file, port_seed=seed, extra_args=connect)
        write_chain(node.datadir, chain, BLOCKS - 1)
        line.append(node)
    try:
        for node in line:  # each listening before the next dials it (no redial backoff)
            node.start()
            node.wait_for_rpc_connection()
        for node, peers in zip(line, (1, 2, 1), strict=True):
            wait_until(lambda n=node, k=peers: n.rpc.getconnectioncount() == k, 20, what=f"{node} peers")
        yield line
        for node in line:
            node.stop()
    finally:
        for node in line:
            node.cleanup()


def test_network_info_describes_the_line(nodes):
    middle = nodes[1]
    peers = middle.rpc.getpeerinfo()
    assert sorted(p["inbound"] for p in peers) == [False, True]
    keys = {p["node_key"] for p in peers}
    assert keys == {nodes[0].rpc.getnetworkinfo()["node_key"], nodes[2].rpc.getnetworkinfo()["node_key"]}
    info = middle.rpc.getnetworkinfo()
    assert info["connections"] == 2 and info["connections_in"] == 1 and info["connections_out"] == 1
    assert info["localaddresses"] == [{"address": "127.0.0.1", "port": middle.p2p_port}]
    assert all(p["height"] == BLOCKS - 1 for p in peers)
    out = middle.cli("--format", "json", "getpeerinfo")
    assert len(orjson.loads(out.stdout)) == 2
    table = middle.cli("--format", "table", "getpeerinfo").stdout
    assert "node key" in table and "127.0.0.1" in table


def test_transaction_reaches_every_mempool(nodes, chain):
    (tx,) = chain.transfers(1)
    assert nodes[0].rpc.sendrawtransaction(tx.encode().hex()) == tx.txid.hex()
    for node in nodes:
        wait_until(lambda n=node: n.rpc.getrawmempool() == [tx.txid.hex()], 20, what=f"tx in {node} mempool")
    assert nodes[2].rpc.getrawtransaction(tx.txid.hex()) == tx.encode().hex()
    # A batch from the other end travels the other way.
    batch = chain.transfers(8)
    results = nodes[2].rpc.sendrawtransactions([t.encode().hex() for t in batch])
    assert all(r["accepted"] for r in results)
    expected = {tx.txid.hex()} | {t.txid.hex() for t in batch}
    for node in nodes:
        wait_until(lambda n=node: set(n.rpc.getrawmempool()) == expected, 20, what=f"batch in {node} mempool")


def test_block_reaches_every_chain(nodes, chain):
    block = chain.blocks[BLOCKS]
    # With its commit certificate, so that the other nodes can sync it (docs/p2p.md).
    assert nodes[2].rpc.submitblock(block.hex(), chain.certificate(BLOCKS).hex()) is None
    tip = nodes[2].rpc.getbestblockhash()
    for node in nodes:
        wait_until(lambda n=node: n.rpc.getbestblockhash() == tip, 20, what=f"block at {node}")
        info = node.rpc.getblockchaininfo()
        assert info["blocks"] == BLOCKS and info["sync"]["height"] == BLOCKS
    assert_raises_rpc_error(errors.INVALID_PARAMS, None, nodes[0].rpc.getpeerinfo, 1)
