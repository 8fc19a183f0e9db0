"""Repair of a damaged stored block from peers (DESIGN §13 "Storage integrity"; docs/operator.md),
with real ``timecoind`` processes on loopback.

A devnet chain of 6 blocks is written offline into the data directories of node 0 and node 1;
in node 0's ``data.mdb`` one byte of the last witness signature of block 3 is flipped (every copy
of the block in the file): only the digest stored with the block covers that byte, not its hash
or merkle root. Node 0 starts (its transaction index's catch-up reads block 3 and finds it
damaged, leaving its transactions out) and serves no block 3.

* A raw peer (:class:`MiniNode`) claiming the chain connects to node 0: node 0 asks it for block 3
  alone (GETBLOCKS 3, 1), and it answers with another witness byte flipped and a valid commit
  certificate (same block hash, same merkle root, not the bytes node 0 validated): node 0 charges
  it 20 reputation points, keeps it connected and still serves no block 3.
* Node 1 (intact) connects: within a timeout node 0 serves block 3 again with the original bytes,
  ``getrawtransaction`` finds its last transaction again, ``timecoin_store_repaired_blocks_total``
  is 1 and one log line says so.
* Node 2, fresh, syncs from node 0 alone: it gets the whole chain and never penalizes node 0.

Before (8074c1d and the integrity change): node 0 never asked any peer for block 3, so it never
served it again, and node 2 stopped at height 2 with node 0 charged for the NOTFOUND.
"""

from __future__ import annotations

import asyncio

import pytest
import timecoin_native

from timecoin.core.types import HEADER_LEN, BlockHeader
from timecoin.p2p import messages as m
from timecoin.p2p.messages import MessageType
from timecoin.p2p.sync import PENALTY_BAD_REPAIR
from timecoin.rpc.errors import DATABASE_ERROR, INVALID_ADDRESS_OR_KEY
from timecoin.store.txindex import transaction_spans
from timecoin.testing.mininode import MiniNode
from timecoin.testing.node import (
    TestNode,
    assert_raises_rpc_error,
    build_devnet_chain,
    default_port_seed,
    metrics_port,
    scrape_metrics,
    wait_until,
    write_chain,
)
from timecoin.testing.util import run

BLOCKS, TXS = 6, 4
DAMAGED = 3
SEED_OFFSET = 53


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    return build_devnet_chain(tmp_path_factory.mktemp("repair"), BLOCKS, TXS)


def block_hash(raw: bytes) -> bytes:
    return BlockHeader.decode(raw[:HEADER_LEN]).hash


def flipped(raw: bytes, offset: int) -> bytes:
    at = offset % len(raw)
    return raw[:at] + bytes([raw[at] ^ 1]) + raw[at + 1 :]


def flip_in_file(node: TestNode, raw: bytes, offset: int) -> None:
    """Flips bit 0 of byte ``offset`` of every copy of ``raw`` in the node's ``data.mdb``."""
    path = node.datadir / "chain" / "data.mdb"
    data = bytearray(path.read_bytes())
    at = data.find(raw)
    assert at >= 0, "block bytes not found in data.mdb"
    while at >= 0:
        data[at + offset % len(raw)] ^= 1
        at = data.find(raw, at + 1)
    path.write_bytes(bytes(data))


def peer_with_key(node_rpc, node_key: bytes) -> dict | None:
    return next((p for p in node_rpc.getpeerinfo() if p["node_key"] == node_key.hex()), None)


def test_damaged_block_is_repaired_from_a_peer_and_served_again(chain):
    seed = default_port_seed() + SEED_OFFSET
    port = metrics_port(0, seed)
    nodes = [TestNode(i, chain.genesis_file.parent, chain.genesis_file, port_seed=seed) for i in range(3)]
    damaged = chain.blocks[DAMAGED]
    damaged_hash = block_hash(damaged)
    offset, length = transaction_spans(damaged)[-1]
    last_tx = damaged[offset : offset + length]
    last_txid = timecoin_native.txid(last_tx)
    for node in nodes[:2]:
        write_chain(node.datadir, chain, BLOCKS)
    flip_in_file(nodes[0], damaged, -1)

    async def scenario() -> None:
        node0, node1, node2 = nodes
        await asyncio.to_thread(node0.start_and_wait, ["--metrics", "true", "--metrics-port", str(port)])
        rpc0 = node0.new_rpc()
        await asyncio.to_thread(
            assert_raises_rpc_error, DATABASE_ERROR, "is damaged", rpc0.getblock, damaged_hash.hex()
        )
        await asyncio.to_thread(
            assert_raises_rpc_error,
            INVALID_ADDRESS_OR_KEY,
            "No such",
            rpc0.getrawtransaction,
            last_txid.hex(),
        )

        # A peer that answers with another encoding of the block is charged and not believed.
        liar = MiniNode(
            chain.genesis.config.params,
            chain.genesis.hash,
            height=BLOCKS,
            tip_hash=block_hash(chain.blocks[-1]),
        )

        def serve_garbage(payload: bytes) -> None:
            if m.decode_getblocks(payload) == (DAMAGED, 1):
                liar.send_block(DAMAGED, chain.certificate(DAMAGED), flipped(damaged, -2))

        liar.on_getblocks = serve_garbage  # type: ignore[method-assign]
        await liar.connect("127.0.0.1", node0.p2p_port)
        try:
            asked = await liar.wait_for_message(MessageType.GETBLOCKS, timeout=60)
            assert m.decode_getblocks(asked) == (DAMAGED, 1)

            def charged() -> bool:
                info = peer_with_key(rpc0, liar.node_key)
                return info is not None and info["reputation"] <= -PENALTY_BAD_REPAIR

            await asyncio.to_thread(wait_until, charged, 60, 0.2, "the liar charged")
            assert not liar.disconnected.is_set(), liar.close_reason
            await asyncio.to_thread(
                assert_raises_rpc_error, DATABASE_ERROR, "is damaged", rpc0.getblock, damaged_hash.hex()
            )

            # An honest peer's copy repairs it.
            await asyncio.to_thread(node1.start_and_wait, ["--connect", f"127.0.0.1:{node0.p2p_port}"])

            def repaired() -> bool:
                try:
                    return rpc0.getblock(damaged_hash.hex(), 0) == damaged.hex()
                except Exception:
                    return False

            await asyncio.to_thread(wait_until, repaired, 120, 0.2, "block 3 served again by node 0")
            # The repaired block goes out over P2P too, byte for byte.
            served = await liar.get_blocks(DAMAGED, 1, timeout=30)
            assert [(h, raw) for h, _, raw in served] == [(DAMAGED, damaged)]
        finally:
            liar.close()

        assert await asyncio.to_thread(rpc0.getrawtransaction, last_txid.hex()) == last_tx.hex()
        metrics = await asyncio.to_thread(scrape_metrics, port)
        assert metrics["timecoin_store_repaired_blocks_total"] == 1
        assert metrics["timecoin_store_damaged_blocks_total"] == 1
        lines = [line for line in node0.log_text().splitlines() if "repaired with the copy of peer" in line]
        assert len(lines) == 1 and damaged_hash.hex() in lines[0], lines

        # A fresh node syncing from node 0 alone gets every block and has nothing to charge.
        await asyncio.to_thread(node2.start_and_wait, ["--connect", f"127.0.0.1:{node0.p2p_port}"])
        rpc2 = node2.new_rpc()
        await asyncio.to_thread(
            wait_until, lambda: rpc2.getblockcount() == BLOCKS, 120, 0.2, "node 2 synced from node 0"
        )
        for h in range(1, BLOCKS + 1):
            assert (
                await asyncio.to_thread(rpc2.getblock, block_hash(chain.blocks[h]).hex(), 0)
                == chain.blocks[h].hex()
            )
        node0_key = bytes.fromhex((await asyncio.to_thread(rpc0.getnetworkinfo))["node_key"])
        info = await asyncio.to_thread(peer_with_key, rpc2, node0_key)
        assert info is not None and info["established"] and info["reputation"] >= 0, info
        rpc0.close()
        rpc2.close()

    try:
        run(scenario(), timeout=600)
        for node in nodes:
            node.stop()
    finally:
        for node in nodes:
            node.cleanup()
