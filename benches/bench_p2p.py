"""P2P throughput (DESIGN §8, §11), measured on real loopback sockets in one uvloop process.

* ``frames``: frames per second through one node's event loop: a raw masternode peer pushes
  vote batches (one opaque item each, so the cost is per frame, not per item; votes are the
  consensus hot path) at a masternode that decodes, dispatches, dedups and relays each to a
  second raw peer; timed until the second peer has them all. The correctness check: every item
  arrives exactly once.
* ``gossip``: transactions per second gossiped across 4 in-process nodes in a full mesh: one
  node admits a batch of signed transfers and broadcasts it; timed until every mempool holds all
  of them (each node validates them natively on admission: all four share one core here).
* ``framing``: the frame decoder alone, compiled (when setup.py builds it) against its
  pure-Python source, on the same bytes; recorded as a ratio.

Run with ``pytest benches/bench_p2p.py --benchmark-enable``; numbers are in docs/p2p.md, the
compiled hot modules' ratios in docs/benchmarks.md ("Cython", ``benches/bench_cython.py``).
"""

from __future__ import annotations

import asyncio
import os

import pytest

import timecoin.p2p.framing as framing
from timecoin.p2p import messages as m
from timecoin.p2p.gossip import GossipKind
from timecoin.p2p.messages import MessageType
from timecoin.testing.chaingen import devnet_genesis
from timecoin.testing.mininode import MiniNode
from timecoin.testing.p2pnet import devnet_node
from timecoin.testing.pure import is_compiled, load_pure
from timecoin.testing.util import run, wait_until_async

FRAMES = 10_000
"""The VOTE class's burst (RATE_LIMITS): the sender stays within its budget."""
GOSSIP_TXS = 2_000


def _pure_framing():
    """The framing module loaded from its .py source, whatever the build compiled."""
    return load_pure(framing)


def test_frames_through_one_node(benchmark, tmp_path):
    _, _, masternode_keys = devnet_genesis()
    node = devnet_node(tmp_path)
    items = [os.urandom(64) + i.to_bytes(4, "little") for i in range(FRAMES)]
    stream = b"".join(
        framing.encode_frame(node.chain.params.magic, MessageType.VOTE_BATCH, m.encode_items([item]))
        for item in items
    )

    async def scenario():
        await node.start(gossip_interval=0.002, masternode_secret=masternode_keys[0])
        try:
            node.p2p.register_handler(GossipKind.VOTE, lambda peer, got: [True] * len(got))
            params, genesis = node.chain.params, node.chain.genesis.hash
            sender = MiniNode(params, genesis, masternode_secret=masternode_keys[1])
            await sender.connect("127.0.0.1", node.port)
            receiver = await MiniNode(params, genesis).connect("127.0.0.1", node.port)
            loop = asyncio.get_running_loop()
            start = loop.time()
            sender.send_raw(stream)  # one write: the sender's cost stays out of the figure
            await wait_until_async(
                lambda: sum(_count(p) for p in receiver.received(MessageType.VOTE_BATCH)) >= FRAMES,
                timeout=60,
                interval=0.001,
            )
            elapsed = loop.time() - start
            return elapsed, [i for p in receiver.received(MessageType.VOTE_BATCH) for i in _items(p)]
        finally:
            await node.stop()
            node.close()

    seconds, relayed = benchmark.pedantic(lambda: run(scenario()), rounds=1, iterations=1)
    benchmark.extra_info["frames"] = FRAMES
    benchmark.extra_info["frames_per_s"] = FRAMES / seconds
    benchmark.extra_info["each_exactly_once"] = sorted(relayed) == sorted(items)
    assert benchmark.extra_info["each_exactly_once"]


def test_transactions_gossiped_across_four_nodes(benchmark, tmp_path):
    nodes = [devnet_node(tmp_path / str(i), split=GOSSIP_TXS // 16 + 1) for i in range(4)]
    txs = [tx.encode() for tx in nodes[0].wallet.transfers(GOSSIP_TXS, nodes[0].chain)]

    async def scenario():
        try:
            for i, node in enumerate(nodes):
                await node.start(connect=tuple(("127.0.0.1", n.port) for n in nodes[:i]))
            await wait_until_async(
                lambda: all(sum(p["established"] for p in n.p2p.peer_info()) == 3 for n in nodes)
            )
            loop = asyncio.get_running_loop()
            start = loop.time()
            verdicts = nodes[0].submit_transactions(txs)
            nodes[0].p2p.broadcast_transactions(txs)
            await wait_until_async(
                lambda: all(len(n.mempool) == GOSSIP_TXS for n in nodes), timeout=60, interval=0.001
            )
            elapsed = loop.time() - start
            same = all({e.txid for e in n.mempool.entries()} == {t for t, _ in verdicts} for n in nodes)
            return elapsed, same
        finally:
            for node in nodes:
                await node.stop()
                node.close()

    seconds, same = benchmark.pedantic(lambda: run(scenario()), rounds=1, iterations=1)
    benchmark.extra_info["transactions"] = GOSSIP_TXS
    benchmark.extra_info["tx_per_s"] = GOSSIP_TXS / seconds
    benchmark.extra_info["all_mempools_equal"] = same
    assert same


@pytest.mark.parametrize("build", ["installed", "pure"])
def test_frame_decoder(benchmark, build):
    module = framing if build == "installed" else _pure_framing()
    magic = b"DTME"
    frame = module.encode_frame(magic, MessageType.HEARTBEAT_BATCH, m.encode_items([os.urandom(100)]))
    stream = frame * 20_000
    chunks = [stream[i : i + 65536] for i in range(0, len(stream), 65536)]

    def decode():
        decoder = module.FrameDecoder(magic, m.FRAME_LIMITS)
        return sum(len(decoder.feed(c)) for c in chunks)

    frames = benchmark(decode)
    benchmark.extra_info["compiled"] = is_compiled(module)
    benchmark.extra_info["frames"] = frames
    assert frames == 20_000


def _count(payload: bytes) -> int:
    return int.from_bytes(payload[:4], "little")


def _items(payload: bytes) -> list[bytes]:
    return m.decode_items(payload, m.MAX_VOTE_BATCH_ITEMS, m.MAX_VOTE_ITEM, "VOTE_BATCH")
