"""The P2P network between real ``timecoind`` processes (DESIGN §8): four nodes, three fresh
ones dialing the one that holds a 50-block chain of real transfers; the fresh ones sync from
scratch to the same tip and UTXO set (``gettxoutsetinfo``: hash, count, amount), a batch of
transactions sent to one node reaches every mempool, and a node killed with SIGKILL is
reconnected by its static peers once it is back, then relays again.
"""

from __future__ import annotations

import pytest

from timecoin.testing.node import TestNode, build_devnet_chain, default_port_seed, wait_until, write_chain

BLOCKS, TXS = 50, 4
BATCH = 64


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    return build_devnet_chain(tmp_path_factory.mktemp("p2p_nodes"), BLOCKS, TXS)


@pytest.fixture(scope="module")
def nodes(chain):
    root, seed = chain.genesis_file.parent, default_port_seed() + 9
    hub = TestNode(0, root, chain.genesis_file, port_seed=seed)
    write_chain(hub.datadir, chain, BLOCKS)
    spokes = [
        TestNode(
            i, root, chain.genesis_file, port_seed=seed, extra_args=["--connect", f"127.0.0.1:{hub.p2p_port}"]
        )
        for i in (1, 2, 3)
    ]
    everyone = [hub, *spokes]
    try:
        for node in everyone:
            node.start()
        for node in everyone:
            node.wait_for_rpc_connection()
        yield everyone
        for node in everyone:
            node.stop()
    finally:
        for node in everyone:
            node.cleanup()


def utxo_set(node: TestNode) -> dict:
    info = node.rpc.gettxoutsetinfo()
    return {k: info[k] for k in ("height", "bestblock", "txouts", "total_amount_sat", "utxosethash")}


def test_fresh_nodes_sync_to_the_same_utxo_set(nodes):
    hub, *spokes = nodes
    for node in spokes:
        wait_until(lambda n=node: n.rpc.getblockcount() == BLOCKS, 60, what=f"{node} synced")
    expected = utxo_set(hub)
    assert expected["height"] == BLOCKS
    for node in spokes:
        assert utxo_set(node) == expected
        assert node.rpc.getblockchaininfo()["sync"]["syncing"] is False


def test_transaction_batch_reaches_every_mempool(nodes, chain):
    hub = nodes[0]
    wait_until(lambda: hub.rpc.getconnectioncount() >= 3, 30, what="hub connected to all spokes")
    batch = chain.transfers(BATCH)
    results = nodes[1].rpc.sendrawtransactions([t.encode().hex() for t in batch])
    assert all(r["accepted"] for r in results)
    expected = {t.txid.hex() for t in batch}
    for node in nodes:
        wait_until(lambda n=node: set(n.rpc.getrawmempool()) == expected, 30, what=f"batch in {node}")


def test_killed_node_is_reconnected_and_relays(nodes, chain):
    hub, *spokes = nodes
    hub_key = hub.rpc.getnetworkinfo()["node_key"]

    def has_hub(node: TestNode) -> bool:
        return any(p["node_key"] == hub_key for p in node.rpc.getpeerinfo())

    hub.kill()
    # (The spokes may also have found each other through the hub's address book.)
    for node in spokes:
        wait_until(lambda n=node: not has_hub(n), 30, what=f"{node} saw the hub go")
    hub.start()
    hub.wait_for_rpc_connection()
    for node in spokes:
        wait_until(lambda n=node: has_hub(n), 60, what=f"{node} redialed the hub")
    (tx,) = chain.transfers(1)
    nodes[3].rpc.sendrawtransaction(tx.encode().hex())
    wait_until(lambda: tx.txid.hex() in hub.rpc.getrawmempool(), 30, what="relay to the restarted hub")
    wait_until(lambda: tx.txid.hex() in nodes[2].rpc.getrawmempool(), 30, what="relay on to the others")
