"""P2P gossip (DESIGN §8): batches of transactions and votes reach every node of a 4-node mesh
of in-process services over loopback, each node relays each item once (the seen-cache), and
items travel many per frame. A raw mininode peer watches what one node sends it.
"""

from __future__ import annotations

import asyncio
import itertools

from timecoin.p2p import messages as m
from timecoin.p2p.gossip import GossipKind
from timecoin.p2p.messages import MessageType
from timecoin.testing.chaingen import devnet_genesis
from timecoin.testing.mininode import MiniNode
from timecoin.testing.p2pnet import ChainNode, devnet_node
from timecoin.testing.util import run, wait_until_async

TXS = 300


async def mesh(nodes: list[ChainNode], **config) -> None:
    """Starts the nodes, each dialing all the ones before it, and waits for the full mesh."""
    for i, node in enumerate(nodes):
        await node.start(connect=tuple(("127.0.0.1", n.port) for n in nodes[:i]), **config)
    await wait_until_async(
        lambda: all(sum(p["established"] for p in n.p2p.peer_info()) == len(nodes) - 1 for n in nodes)
    )


async def stop_all(nodes: list[ChainNode]) -> None:
    for node in nodes:
        await node.stop()
        node.close()


def test_transactions_reach_every_mempool_once(tmp_path):
    async def scenario():
        nodes = [devnet_node(tmp_path / str(i), split=TXS // 16 + 1) for i in range(4)]
        try:
            await mesh(nodes)
            watcher = await MiniNode(nodes[0].chain.params, nodes[0].chain.genesis.hash).connect(
                "127.0.0.1", nodes[3].port
            )
            origin = nodes[0]
            txs = [tx.encode() for tx in origin.wallet.transfers(TXS, origin.chain)]
            verdicts = origin.submit_transactions(txs)
            assert all(code == "" for _, code in verdicts)
            origin.p2p.broadcast_transactions(txs)

            await wait_until_async(lambda: all(len(n.mempool) == TXS for n in nodes))
            txids = {txid for txid, _ in verdicts}
            for node in nodes:
                assert {e.txid for e in node.mempool.entries()} == txids
            # Each node relays each transaction once, whatever number of peers sent it.
            await wait_until_async(lambda: all(n.p2p.gossip.relayed[GossipKind.TX] == TXS for n in nodes))
            # The watcher hears each transaction exactly once, many to a frame.
            await wait_until_async(
                lambda: sum(_count(p) for p in watcher.received(MessageType.TX_BATCH)) >= TXS
            )
            frames = watcher.received(MessageType.TX_BATCH)
            heard = list(itertools.chain.from_iterable(_items(p) for p in frames))
            assert sorted(heard) == sorted(txs)
            assert len(frames) < TXS // 10
            # Meshes do deliver duplicates; the seen-cache dropped them before validation.
            assert sum(n.p2p.gossip.duplicates[GossipKind.TX] for n in nodes) > 0
        finally:
            await stop_all(nodes)

    run(scenario())


def test_transactions_cross_each_masternode_link_once(tmp_path):
    """Among masternodes (a full mesh) the node a transaction was submitted to sends it to every
    masternode itself, so a masternode does not send it on to the others: each masternode
    receives each transaction once, with no duplicate. A peer that is no masternode (the
    watcher) is still sent everything."""

    async def scenario():
        _, _, masternode_keys = devnet_genesis()
        nodes = [devnet_node(tmp_path / str(i), split=TXS // 16 + 1) for i in range(4)]
        try:
            for i, node in enumerate(nodes):
                await node.start(
                    connect=tuple(("127.0.0.1", n.port) for n in nodes[:i]),
                    masternode_secret=masternode_keys[i],
                )
            await wait_until_async(
                lambda: all(
                    sum(p["masternode"] is not None for p in n.p2p.peer_info()) == len(nodes) - 1
                    for n in nodes
                )
            )
            watcher = await MiniNode(nodes[0].chain.params, nodes[0].chain.genesis.hash).connect(
                "127.0.0.1", nodes[3].port
            )
            origin = nodes[0]
            txs = [tx.encode() for tx in origin.wallet.transfers(TXS, origin.chain)]
            assert all(code == "" for _, code in origin.submit_transactions(txs))
            origin.p2p.broadcast_transactions(txs)
            await wait_until_async(lambda: all(len(n.mempool) == TXS for n in nodes))
            await wait_until_async(
                lambda: sum(_count(p) for p in watcher.received(MessageType.TX_BATCH)) >= TXS
            )
            await asyncio.sleep(0.2)  # any duplicate would be on its way by now (gossip_interval 10 ms)
            for node in nodes[1:]:
                assert node.p2p.gossip.received[GossipKind.TX] == TXS
                assert node.p2p.gossip.duplicates[GossipKind.TX] == 0
            heard = list(
                itertools.chain.from_iterable(_items(p) for p in watcher.received(MessageType.TX_BATCH))
            )
            assert sorted(heard) == sorted(txs)
        finally:
            await stop_all(nodes)

    run(scenario())


def test_pending_transactions_reach_a_peer_that_connects_later(tmp_path):
    """Transactions gossiped while a node had no peers reach each peer when it connects (one
    push of the mempool per connection), so a masternode that was offline still votes on them."""

    async def scenario():
        early, late = devnet_node(tmp_path / "early", split=4), devnet_node(tmp_path / "late", split=4)
        try:
            await early.start()
            txs = [tx.encode() for tx in early.wallet.transfers(40, early.chain)]
            assert all(code == "" for _, code in early.submit_transactions(txs))
            early.p2p.broadcast_transactions(txs)
            await wait_until_async(lambda: early.p2p.gossip.relayed[GossipKind.TX] == len(txs))  # to nobody
            await late.start(connect=(("127.0.0.1", early.port),))
            await wait_until_async(lambda: len(late.mempool) == len(txs))
            assert [e.raw for e in late.mempool.entries()] == txs  # in the sender's arrival order
            # The late node relays them on as new, and nothing comes back to the early node as new.
            assert late.p2p.gossip.received[GossipKind.TX] == len(txs)
        finally:
            await stop_all([early, late])

    run(scenario())


def test_votes_reach_every_masternode_once(tmp_path):
    async def scenario():
        _, _, masternode_keys = devnet_genesis()
        nodes = [devnet_node(tmp_path / str(i)) for i in range(4)]
        got: list[list[bytes]] = [[] for _ in nodes]

        def handler(i):
            def on_votes(peer, items):
                got[i].extend(items)
                return [True] * len(items)

            return on_votes

        try:
            for i, node in enumerate(nodes):
                await node.start(
                    connect=tuple(("127.0.0.1", n.port) for n in nodes[:i]),
                    masternode_secret=masternode_keys[i],
                )
                node.p2p.register_handler(GossipKind.VOTE, handler(i))
            await wait_until_async(
                lambda: all(
                    sum(p["masternode"] is not None for p in n.p2p.peer_info()) == len(nodes) - 1
                    for n in nodes
                )
            )
            votes = [f"vote {i}".encode() * 10 for i in range(50)]
            nodes[0].p2p.broadcast_votes(votes)
            await wait_until_async(lambda: all(len(g) == len(votes) for g in got[1:]))
            for g in got[1:]:
                assert sorted(g) == sorted(votes)
            assert got[0] == []  # our own votes never come back to us
        finally:
            await stop_all(nodes)

    run(scenario())


def _count(payload: bytes) -> int:
    return int.from_bytes(payload[:4], "little")


def _items(payload: bytes) -> list[bytes]:
    return m.decode_items(payload, m.MAX_TX_BATCH_ITEMS, 1_000_000, "TX_BATCH")
