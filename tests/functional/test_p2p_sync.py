"""P2P block sync (DESIGN §8): a fresh node catches up with peers holding a 50-block chain of
real transfers, fetching ranges from several peers in parallel, and ends at the same tip with
the same UTXO set hash (invariant 4); a block over one frame travels as ordered chunks; a peer
serving an invalid block (with a valid commit certificate for its header) is banned and dropped
and the node syncs from an honest one. Nodes are in-process services over loopback; every block
is stored with a commit certificate of the genesis masternodes; the bad server is a raw mininode.
"""

from __future__ import annotations

from timecoin.core.types import Block
from timecoin.ledger.blockbuilder import assemble_block
from timecoin.p2p import messages as m
from timecoin.p2p.banman import key_target
from timecoin.p2p.messages import MessageType
from timecoin.testing.chaingen import certified_writes
from timecoin.testing.mininode import MiniNode
from timecoin.testing.p2pnet import ChainNode, devnet_node
from timecoin.testing.util import run, wait_until_async

BLOCKS, TXS = 50, 8


async def stop_all(nodes: list[ChainNode]) -> None:
    for node in nodes:
        await node.stop()
        node.close()


def same_state(a: ChainNode, b: ChainNode) -> bool:
    return a.chain.tip == b.chain.tip and a.chain.utxos.set_hash() == b.chain.utxos.set_hash()


def test_fresh_node_syncs_from_several_peers(tmp_path):
    async def scenario():
        servers = [devnet_node(tmp_path / f"s{i}") for i in range(3)]
        reference = devnet_node(tmp_path / "ref", BLOCKS, TXS)
        raws = [reference.block(reference.block_hash(h)) for h in range(1, BLOCKS + 1)]
        fresh = devnet_node(tmp_path / "fresh")
        nodes = [*servers, fresh, reference]
        try:
            await fresh.start(sync_blocks_per_request=8)
            for s in servers:
                await s.start(connect=(("127.0.0.1", fresh.port),))
            await wait_until_async(lambda: sum(p["established"] for p in fresh.p2p.peer_info()) == 3)
            # The servers get the chain behind the P2P layer's back, then all announce at once:
            # the fresh node learns three peers have it and spreads its requests over them.
            for s in servers:
                for h, raw in enumerate(raws, 1):
                    s.chain.connect_block(raw, certified_writes(h, reference.commit_certificate(h)))
            for s in servers:
                s.p2p.announce_block(*s.chain_tip())
            await wait_until_async(lambda: fresh.chain.tip.height == BLOCKS)
            assert same_state(fresh, reference)
            assert len(fresh.p2p.sync.served) >= 2, fresh.p2p.sync.served
            status = fresh.p2p.sync_status()
            assert status["height"] == status["target"] == BLOCKS and not status["syncing"]
            assert status["blocks_per_s"] > 0
        finally:
            await stop_all(nodes)

    run(scenario())


def test_sync_from_scratch_over_a_static_peer(tmp_path):
    async def scenario():
        server = devnet_node(tmp_path / "server", BLOCKS, TXS)
        fresh = devnet_node(tmp_path / "fresh")
        try:
            await server.start()
            await fresh.start(connect=(("127.0.0.1", server.port),))
            await wait_until_async(lambda: fresh.chain.tip.height == BLOCKS)
            assert same_state(fresh, server)
            # New blocks after the sync arrive by announcement.
            block = assemble_block(
                server.chain, server.wallet.transfers(4, server.chain), server.chain.tip_header.timestamp + 2
            )
            server.connect_block(block.encode(), server.certify(block.encode()))
            await wait_until_async(lambda: fresh.chain.tip.height == BLOCKS + 1)
            assert same_state(fresh, server)
        finally:
            await stop_all([server, fresh])

    run(scenario())


def test_block_over_one_frame_travels_in_chunks(tmp_path):
    async def scenario():
        server = devnet_node(tmp_path / "server", split=640)
        chain = server.chain
        big = assemble_block(
            chain, server.wallet.transfers(10_240, chain, fanout=1), chain.tip_header.timestamp + 2
        )
        raw = big.encode()
        assert len(raw) > m.BLOCK_CHUNK_SIZE
        server.connect_block(raw, server.certify(raw))
        fresh = devnet_node(tmp_path / "fresh")
        try:
            await server.start()
            await fresh.start(connect=(("127.0.0.1", server.port),))
            await wait_until_async(lambda: fresh.chain.tip.height == 2, timeout=20)
            assert same_state(fresh, server)
            assert fresh.chain.block(2).hash == big.hash
        finally:
            await stop_all([server, fresh])

    run(scenario())


def test_peer_serving_an_invalid_block_is_banned(tmp_path):
    async def scenario():
        reference = devnet_node(tmp_path / "ref", 5, TXS)
        raws = {h: reference.block(reference.block_hash(h)) for h in range(1, 6)}
        fresh = devnet_node(tmp_path / "fresh")
        honest = devnet_node(tmp_path / "honest", 5, TXS)
        try:
            await fresh.start()
            bad = MiniNode(
                fresh.chain.params, fresh.chain.genesis.hash, height=5, tip_hash=reference.chain_tip()[1]
            )

            def serve(payload: bytes) -> None:
                start, count = m.decode_getblocks(payload)
                for h in range(start, start + count):
                    block = raws[h]
                    if h == start:
                        # Flip a bit of the last witness signature: txids and merkle root are
                        # unchanged (witnesses are outside the txid), the signature is not.
                        block = block[:-1] + bytes([block[-1] ^ 1])
                    certificate = reference.commit_certificate(h)
                    bad.send_message(MessageType.BLOCK, m.encode_block_message(h, certificate, block))

            bad.on_getblocks = serve
            await bad.connect("127.0.0.1", fresh.port)
            await bad.wait_for_disconnect()
            assert fresh.chain.tip.height == 0
            assert fresh.p2p.banman.is_banned(key_target(bad.node_key))
            assert "invalid block" in fresh.p2p.recent_disconnects()[-1]["reason"]
            assert Block.decode(raws[1]).hash == reference.block_hash(1)

            await honest.start(connect=(("127.0.0.1", fresh.port),))
            await wait_until_async(lambda: fresh.chain.tip.height == 5)
            assert same_state(fresh, reference)
        finally:
            await stop_all([fresh, honest, reference])

    run(scenario())
