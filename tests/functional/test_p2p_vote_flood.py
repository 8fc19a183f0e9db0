"""Finality votes and consensus items from a Byzantine masternode (DESIGN §8, §12 invariant 9,
§13 "Bounded work per source"; docs/p2p.md "Gossip", docs/consensus.md §2).

One real ``timecoind`` runs masternode 0 of a devnet genesis (alone: nothing here needs finality
or blocks). Raw P2P peers (:class:`~timecoin.testing.mininode.MiniNode`) connect holding the keys
of the genesis's other registered masternodes, so the node takes their consensus items as a
member's, with real signatures:

* **flood**: one peer sends signed ``TxVote`` batches naming 8,000 random txids each (200 of
  them, 1.6 million txids). The node's resident memory (``VmRSS``) grows by less than
  :data:`FLOOD_RSS_BOUND_MB` (docs/p2p.md: the VOTE burst in flight plus the parked votes of one
  voter, ``MAX_PARKED_PER_VOTER`` txids per height), and the peer is banned (its node key is
  refused on reconnect). Before issue 12 the node grew by ~900 MB and the voter kept
  reputation 0.
* **fetch**: a vote naming transactions the node lacks makes it ask the voter for them
  (GET_TRANSACTIONS); the one the voter sends is admitted, and for the ones it never sends it
  loses reputation.
* **bad items**: undecodable and badly signed consensus items are not relayed to a second
  masternode peer (a valid item sent after them is) and cost the sender reputation. Before
  issue 12 any item whose first byte was a relayed kind went to every masternode, for free.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
from pathlib import Path

import pytest

from timecoin.consensus.messages import LIMITS, Kind, Status, TxVote
from timecoin.p2p import messages as m
from timecoin.p2p.gossip import PENALTY_NOT_SERVED, TX_REQUEST_TIMEOUT
from timecoin.p2p.messages import MessageType
from timecoin.testing.mininode import MiniNode
from timecoin.testing.node import build_devnet_chain, default_port_seed, masternode_network
from timecoin.testing.util import run, wait_until_async

FLOOD_BATCHES = 200
FLOOD_RSS_BOUND_MB = 100
"""Growth of the node's resident memory allowed under the flood (docs/p2p.md, "Bounded work per
source"): the VOTE bucket's burst (32 MB of frames) queued, one voter's parked votes and the
allocator's slack. Before issue 12 the same flood cost ~900 MB."""


@pytest.fixture(scope="module")
def net(tmp_path_factory):
    chain = build_devnet_chain(tmp_path_factory.mktemp("vote_flood"), 0, 0)
    with masternode_network(chain, 1, default_port_seed() + 70) as nodes:
        yield chain, nodes[0]


def rss_mb(pid: int) -> float:
    """Resident memory of process ``pid`` (``VmRSS`` of ``/proc/<pid>/status``), MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmRSS for process {pid}")


def random_txids(n: int) -> list[bytes]:
    blob = os.urandom(32 * n)
    return [blob[i : i + 32] for i in range(0, len(blob), 32)]


def peer_of(node, mini: MiniNode) -> dict | None:
    return next((p for p in node.rpc.getpeerinfo() if p["node_key"] == mini.node_key.hex()), None)


async def masternode_peer(chain, node, index: int, secret: bytes | None = None) -> MiniNode:
    """A raw peer proving genesis masternode ``index``'s key, once the node counts it as one."""
    mini = MiniNode(
        chain.config.params, chain.genesis.hash, secret, masternode_secret=chain.masternode_keys[index]
    )
    await mini.connect("127.0.0.1", node.p2p_port)
    await wait_until_async(lambda: (peer_of(node, mini) or {}).get("masternode") is not None, timeout=20)
    return mini


def vote_items(payload: bytes) -> list[bytes]:
    return m.decode_items(payload, m.MAX_VOTE_BATCH_ITEMS, m.MAX_VOTE_ITEM, "VOTE_BATCH")


def test_vote_flood_is_bounded_and_banned(net):
    chain, node = net

    async def scenario():
        height = node.rpc.getblockcount() + 1
        before = rss_mb(node.process.pid)
        secret = os.urandom(32)
        flooder = await masternode_peer(chain, node, 1, secret)
        key = chain.masternode_keys[1]
        for _ in range(FLOOD_BATCHES):
            vote = TxVote.create(key, chain.genesis.hash, height, random_txids(LIMITS["txids_per_vote"]), [])
            if flooder.disconnected.is_set():
                break
            flooder.send_message(MessageType.VOTE_BATCH, m.encode_items([vote.encode()]))
            await asyncio.sleep(0)
        # Whatever the node took of the flood is handled once a later peer's ping is answered.
        witness = await masternode_peer(chain, node, 2)
        await witness.ping(timeout=120)
        grown = rss_mb(node.process.pid) - before
        assert grown < FLOOD_RSS_BOUND_MB, f"the node grew by {grown:.0f} MB under the vote flood"
        await flooder.wait_for_disconnect(timeout=30)
        assert peer_of(node, flooder) is None
        # Banned: a new connection with the same node key is closed once its key is proven.
        assert f"banned key:{flooder.node_key.hex()}" in node.log_text()
        again = MiniNode(chain.config.params, chain.genesis.hash, secret, masternode_secret=key)
        try:
            await again.connect("127.0.0.1", node.p2p_port)
        except ConnectionError:
            pass  # closed before its handshake completed on our side
        await again.wait_for_disconnect(timeout=20)
        assert peer_of(node, again) is None
        witness.close()

    run(scenario(), timeout=180)


def test_unknown_txids_are_fetched_from_the_voter(net):
    chain, node = net

    async def scenario():
        height = node.rpc.getblockcount() + 1
        voter = await masternode_peer(chain, node, 3)
        tx = chain.transfers(1)[0]
        missing = random_txids(3)
        vote = TxVote.create(chain.masternode_keys[3], chain.genesis.hash, height, [tx.txid, *missing], [])
        await voter.send_and_ping(MessageType.VOTE_BATCH, m.encode_items([vote.encode()]))
        asked = m.decode_txids(await voter.wait_for_message(MessageType.GET_TRANSACTIONS, timeout=20))
        assert sorted(asked) == sorted([tx.txid, *missing])
        # The voter sends the one it has: the node admits it.
        await voter.send_and_ping(MessageType.TRANSACTIONS, m.encode_items([tx.encode()]))
        await wait_until_async(lambda: tx.txid.hex() in node.rpc.getrawmempool(False), timeout=20)
        served = peer_of(node, voter)["reputation"]
        assert served >= 0
        # The others never come: after the request timeout the voter pays for them.
        await wait_until_async(
            lambda: peer_of(node, voter)["reputation"] <= served - PENALTY_NOT_SERVED,
            timeout=TX_REQUEST_TIMEOUT + 20,
        )
        voter.close()

    run(scenario(), timeout=120)


def test_bad_consensus_items_are_not_relayed_and_cost_the_sender(net):
    chain, node = net

    async def scenario():
        height = node.rpc.getblockcount() + 1
        observer = await masternode_peer(chain, node, 2)
        sender = await masternode_peer(chain, node, 3)
        key, chain_id = chain.masternode_keys[3], chain.genesis.hash
        vote = TxVote.create(key, chain_id, height, random_txids(4), [])
        forged = dataclasses.replace(vote, signature=bytes(64)).encode()
        garbage = [bytes([Kind.TX_VOTE]) + os.urandom(200), bytes([Kind.PREVOTE]) + os.urandom(150)]
        bad = [*garbage, forged]
        await sender.send_and_ping(MessageType.VOTE_BATCH, m.encode_items(bad))
        # A valid item sent after them crosses the node to the observer: anything the node
        # relayed of the bad ones came before it on that connection.
        status = Status.create(key, chain_id, height - 1, chain.genesis.hash, 0).encode()
        await sender.send_and_ping(MessageType.VOTE_BATCH, m.encode_items([status]))
        await observer.wait_for_message(MessageType.VOTE_BATCH, lambda p: status in vote_items(p), timeout=20)
        relayed = {item for p in observer.received(MessageType.VOTE_BATCH) for item in vote_items(p)}
        assert not relayed & set(bad), "bad consensus items were relayed"
        assert peer_of(node, sender)["reputation"] < 0
        observer.close()
        sender.close()

    run(scenario(), timeout=120)
