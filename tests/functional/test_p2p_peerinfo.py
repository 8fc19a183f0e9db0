"""``getpeerinfo`` stays true while masternodes make blocks (issue 16, "RPC": heights went stale
and ``pingtime`` stayed null).

Four ``timecoind`` masternodes (the devnet genesis's four Gold keys) in a full mesh on loopback
make blocks; masternodes learn blocks from consensus and announce none to each other, so a
peer's handshake height alone would stay where it was. Within seconds of the mesh forming,
every peer of node 0 must show a measured ping time, and once a few blocks are committed every
peer's height must follow the chain (at most one block behind node 0's tip).
"""

from __future__ import annotations

from timecoin.testing.node import build_devnet_chain, default_port_seed, masternode_network, wait_until

SEED_OFFSET = 217
N = 4
BLOCKS = 4


def test_peer_heights_and_ping_times_stay_fresh(tmp_path):
    chain = build_devnet_chain(tmp_path / "chain", 0, 0)
    with masternode_network(chain, N, default_port_seed() + SEED_OFFSET) as nodes:
        rpc = nodes[0].rpc
        wait_until(lambda: len(rpc.getpeerinfo()) == N - 1, 30, what="node 0 connected to every peer")
        wait_until(
            lambda: all(p["pingtime"] is not None for p in rpc.getpeerinfo()),
            10,
            what="a ping time for every peer",
        )
        assert all(0 <= p["pingtime"] < 5 for p in rpc.getpeerinfo())
        wait_until(lambda: rpc.getblockcount() >= BLOCKS, 120, what=f"{BLOCKS} blocks")

        def fresh() -> bool:
            tip = rpc.getblockcount()
            return all(p["height"] >= tip - 1 for p in rpc.getpeerinfo())

        wait_until(fresh, 20, what="every peer's height within a block of node 0's tip")
        peers = rpc.getpeerinfo()
        assert all(p["masternode"] for p in peers) and min(p["height"] for p in peers) >= BLOCKS - 1
