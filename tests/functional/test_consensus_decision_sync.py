"""A decided block a masternode cannot rebuild is fetched by block sync from the peer that served
its decision (DESIGN §4: block bodies travel in chunks; §7 phase 4; docs/consensus.md, "Compact
blocks").

A decision too large for one message whole carries its block's coinbase only, and the receiver
takes the other transactions from its own. One ``timecoind`` masternode of a devnet genesis
(key 0) starts at height 1 of a chain built offline; alone it cannot commit (the production gate
needs three masternodes). A raw peer holding masternode key 3 connects claiming height 1, no
more, and sends the decision of height 2 (its commit certificate signed by all four genesis
masternodes) with the coinbase alone. The node never saw the block's transfers, so it cannot
rebuild it: it raises the peer's claim and block sync asks the peer for height 2 (GETBLOCKS),
which the peer answers with the block and its certificate; the node is then at height 2.
"""

from __future__ import annotations

from timecoin.consensus.messages import CommitCertificate, CompactBlock, Decision
from timecoin.core.types import HEADER_LEN, BlockHeader
from timecoin.p2p import messages as m
from timecoin.p2p.messages import MessageType
from timecoin.testing.mininode import MiniNode
from timecoin.testing.node import TestNode, build_devnet_chain, default_port_seed, write_chain
from timecoin.testing.util import run, wait_until_async

SEED_OFFSET = 73
SENDER = 3
"""Index of the genesis masternode whose key the raw peer holds."""


def test_a_decision_that_cannot_be_rebuilt_is_synced_from_its_sender(tmp_path):
    chain = build_devnet_chain(tmp_path / "chain", 2, 20, accounts=32)
    key_file = tmp_path / "mn0.key"
    key_file.write_text(chain.masternode_keys[0].hex())
    node = TestNode(
        0,
        tmp_path,
        chain.genesis_file,
        port_seed=default_port_seed() + SEED_OFFSET,
        extra_args=["--masternode-key", str(key_file)],
    )
    write_chain(node.datadir, chain, 1)
    block1 = BlockHeader.decode(chain.blocks[1][:HEADER_LEN])
    block2 = BlockHeader.decode(chain.blocks[2][:HEADER_LEN])
    compact = CompactBlock.of_block(chain.blocks[2], lambda _, __: False)
    assert len(compact.txids) == 21 and len(compact.prefilled) == 1
    decision = Decision(CommitCertificate.decode(chain.certificate(2)), compact)

    async def scenario():
        peer = MiniNode(
            chain.config.params,
            chain.genesis.hash,
            masternode_secret=chain.masternode_keys[SENDER],
            height=1,
            tip_hash=block1.hash,
        )
        await peer.connect("127.0.0.1", node.p2p_port)
        await peer.ping()
        assert not peer.received(MessageType.GETBLOCKS)  # its claim gives the node nothing to fetch
        peer.send_message(MessageType.VOTE_BATCH, m.encode_items([decision.encode()]))
        request = await peer.wait_for_message(MessageType.GETBLOCKS, timeout=20)
        assert m.decode_getblocks(request)[0] == 2
        peer.send_block(2, chain.certificate(2), chain.blocks[2])
        await wait_until_async(lambda: node.rpc.getblockcount() == 2, timeout=20, message="height 2")
        peer.close()

    try:
        node.start_and_wait()
        assert node.rpc.getblockcount() == 1
        run(scenario())
        assert node.rpc.getblockhash(2) == block2.hash.hex()
        node.stop()
    finally:
        node.cleanup()
