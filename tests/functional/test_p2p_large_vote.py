"""Consensus items over ``MAX_VOTE_ITEM`` (a proposal or decision carrying a block of thousands
of transactions, docs/consensus.md §9): ``broadcast_votes`` sends them one per LARGE_VOTE frame,
they reach every masternode of a 4-node ring (relayed on by each) and the handler sees them
whole; ``send_votes`` reaches the named masternode's connection; an item over
``MAX_LARGE_VOTE_ITEM`` is refused.
"""

from __future__ import annotations

import pytest

from timecoin import crypto
from timecoin.p2p import messages as m
from timecoin.p2p.gossip import GossipKind
from timecoin.testing.chaingen import devnet_genesis
from timecoin.testing.p2pnet import ChainNode, devnet_node
from timecoin.testing.util import run, wait_until_async


async def _ring(nodes: list[ChainNode], keys: list[bytes], got: list[list[bytes]]) -> None:
    def handler(i):
        def on_votes(peer, items):
            got[i].extend(items)
            return [True] * len(items)

        return on_votes

    for i, node in enumerate(nodes):
        connect = (("127.0.0.1", nodes[i - 1].port),) if i else ()
        await node.start(connect=connect, masternode_secret=keys[i])
        node.p2p.register_handler(GossipKind.VOTE, handler(i))
        node.p2p.register_handler(GossipKind.LARGE_VOTE, handler(i))
    await wait_until_async(
        lambda: all(
            sum(p["masternode"] is not None for p in n.p2p.peer_info()) == (1 if i in (0, 3) else 2)
            for i, n in enumerate(nodes)
        )
    )


def test_large_items_cross_a_ring(tmp_path):
    async def scenario():
        _, _, keys = devnet_genesis()
        nodes = [devnet_node(tmp_path / str(i)) for i in range(4)]
        got: list[list[bytes]] = [[] for _ in nodes]
        try:
            await _ring(nodes, keys, got)
            small = b"s" * 100
            large = [bytes([i]) * (m.MAX_VOTE_ITEM + 1 + i * 500_000) for i in range(3)]
            nodes[0].p2p.broadcast_votes([small, *large])
            await wait_until_async(lambda: all(len(g) == 4 for g in got[1:]))
            for g in got[1:]:
                assert sorted(g) == sorted([small, *large])
            assert got[0] == []
            for n in nodes[1:]:
                assert n.p2p.gossip.received[GossipKind.LARGE_VOTE] == 3

            # Point to point: send_votes reaches the connection of the named masternode.
            pub = [crypto.public_key(k) for k in keys]
            peers = nodes[1].p2p.masternode_peers()
            # its ring neighbours (address gossip may have added a connection to node 3 since)
            assert {pub[0], pub[2]} <= set(peers)
            direct = b"d" * (m.MAX_VOTE_ITEM + 10)
            nodes[1].p2p.send_votes(peers[pub[0]], [direct])
            await wait_until_async(lambda: direct in got[0])

            with pytest.raises(ValueError, match="exceeds"):
                nodes[0].p2p.broadcast_votes([b"x" * (m.MAX_LARGE_VOTE_ITEM + 1)])
        finally:
            for node in nodes:
                await node.stop()
                node.close()

    run(scenario())
