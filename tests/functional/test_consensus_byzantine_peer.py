"""A Byzantine masternode against real ``timecoind`` processes (DESIGN §7, §12 invariant 8, §13;
docs/consensus.md §4): three honest masternodes of the devnet genesis (3/4 of the weight) run as
processes in a full mesh; the fourth masternode's key is held by a raw P2P peer (``MiniNode``)
that lies with valid signatures:

* a signed ``Status`` claiming height 2^64-1, sent to every honest node, after which the liar
  leaves: a claim from 1/4 of the weight is a hint, so nobody stops voting and blocks and
  finality go on;
* a ``Decision`` at tip + 1000 whose certificate is signed by a key outside the set, sent to two
  of the three: it proves nothing, so they keep voting.

Both stopped the chain on 8074c1d (every honest node set ``behind`` and stayed so).
"""

from __future__ import annotations

import asyncio

import pytest

from timecoin.consensus.messages import BlockVote, CommitCertificate, CompactBlock, Decision, Kind, Status
from timecoin.crypto import public_key
from timecoin.p2p import messages as m
from timecoin.p2p.messages import MessageType
from timecoin.testing.mininode import MiniNode
from timecoin.testing.node import build_devnet_chain, default_port_seed, masternode_network, wait_until
from timecoin.testing.util import run, wait_until_async

HONEST = 3
LIAR = 3
"""Index of the genesis masternode whose key the raw peer holds."""


@pytest.fixture(scope="module")
def net(tmp_path_factory):
    chain = build_devnet_chain(tmp_path_factory.mktemp("byzantine_peer"), 0, 0, accounts=16)
    with masternode_network(chain, HONEST, default_port_seed() + 140) as nodes:
        wait_until(lambda: all(n.rpc.getblockcount() >= 2 for n in nodes), timeout=90)
        yield chain, nodes


async def liar_peer(chain, node) -> MiniNode:
    mini = MiniNode(chain.config.params, chain.genesis.hash, masternode_secret=chain.masternode_keys[LIAR])
    await mini.connect("127.0.0.1", node.p2p_port)
    key = public_key(chain.masternode_keys[LIAR]).hex()
    await wait_until_async(
        lambda: any(p.get("masternode") == key for p in node.rpc.getpeerinfo()), timeout=20
    )
    return mini


def send_to(chain, nodes, item: bytes) -> None:
    async def scenario():
        peers = [await liar_peer(chain, node) for node in nodes]
        for peer in peers:
            peer.send_message(MessageType.VOTE_BATCH, m.encode_items([item]))
        for peer in peers:
            await peer.ping()
            peer.close()
        await asyncio.sleep(0.2)

    run(scenario())


def assert_live(chain, nodes, blocks: int = 3) -> None:
    """Blocks keep coming on every honest node, no node is behind, and transfers become final."""
    start = max(n.rpc.getblockcount() for n in nodes)
    wait_until(lambda: all(n.rpc.getblockcount() >= start + blocks for n in nodes), timeout=90)
    assert all(not n.rpc.getconsensusinfo()["round_state"]["behind"] for n in nodes)
    raws = [tx.encode().hex() for tx in chain.transfers(2)]
    results = nodes[0].rpc.sendrawtransactions(raws)
    assert all(r["accepted"] for r in results), results
    for node in nodes:
        for r in results:
            wait_until(
                lambda n=node, t=r["txid"]: n.rpc.gettransactionfinality(t)["status"] == "final", timeout=30
            )


def test_lying_status_from_a_quarter_of_the_weight(net):
    chain, nodes = net
    tip = nodes[0].rpc.getbestblockhash()
    lie = Status.create(chain.masternode_keys[LIAR], chain.genesis.hash, 2**64 - 1, bytes.fromhex(tip), 0)
    send_to(chain, nodes, lie.encode())
    assert_live(chain, nodes)


def test_forged_decision_far_ahead(net):
    chain, nodes = net
    outsider = b"\x42" * 32
    height = nodes[0].rpc.getblockcount() + 1000
    block_hash = b"\x09" * 32
    vote = BlockVote.create(outsider, chain.genesis.hash, Kind.PRECOMMIT, height, 0, block_hash)
    certificate = CommitCertificate(height, 0, block_hash, ((vote.voter, vote.signature),))
    tip_raw = bytes.fromhex(nodes[0].rpc.getblock(nodes[0].rpc.getbestblockhash(), 0))
    forged = Decision(certificate, CompactBlock.whole(tip_raw)).encode()
    send_to(chain, nodes[:2], forged)
    assert_live(chain, nodes)
