"""A Byzantine proposer against real ``timecoind`` processes (DESIGN §7, §12 invariant 8;
docs/consensus.md §3–4). Three honest masternodes of the devnet genesis run as processes; the
fourth masternode's key is held by a raw P2P peer (:class:`Liar`) that keeps its own copy of the
chain, waits for a round it leads, and proposes a block it built itself:

* **a block stamped before its slot** (``parent + 1`` s, slots of 2 s): nobody prevotes it, so
  every height keeps at least one slot between timestamps (no faster emission by a lying
  leader); on 8074c1d the honest nodes committed it;
* **a split lock**: with the third honest node stopped, the liar proposes and prevotes towards
  the other two only, then falls silent. Its prevote and theirs make 3/4, so those two lock on
  its block and precommit it; nobody else does. When the third node returns it never saw that
  polka: the lock resolves because a later proposer re-proposes its valid value with its
  proof-of-lock round and re-sends the prevotes behind it. On 8074c1d the height never
  committed (rounds from 3 on had no proposer, and nobody re-sent the votes of past rounds).
"""

from __future__ import annotations

import asyncio
import math
import time

import pytest

from timecoin import crypto
from timecoin.consensus.blocks import build_block
from timecoin.consensus.messages import BlockVote, CompactBlock, Kind, Proposal
from timecoin.core.types import Block
from timecoin.ledger.blockbuilder import Election, assemble_block
from timecoin.ledger.chain import ChainState
from timecoin.masternode import leader
from timecoin.p2p import messages as m
from timecoin.p2p.messages import MessageType
from timecoin.testing.mininode import MiniNode
from timecoin.testing.node import build_devnet_chain, default_port_seed, masternode_network, wait_until
from timecoin.testing.util import run, scaled

LIAR = 3
"""Index of the genesis masternode whose key the raw peer holds."""
POLL = 0.05
"""Seconds between two looks at a node's round state."""


class Liar:
    """The liar's key, its P2P connections and a copy of the honest nodes' chain."""

    def __init__(self, chain, root) -> None:
        self.secret = chain.masternode_keys[LIAR]
        self.key = crypto.public_key(self.secret)
        self.chain_id = chain.genesis.hash
        self.params = chain.config.params
        self.state = ChainState.open(root, chain.config.params, chain.genesis)
        self.peers: list[MiniNode] = []

    async def connect(self, nodes) -> None:
        for node in nodes:
            peer = MiniNode(self.params, self.chain_id, masternode_secret=self.secret)
            await peer.connect("127.0.0.1", node.p2p_port)
            self.peers.append(peer)

    def close(self) -> None:
        for peer in self.peers:
            peer.close()
        self.state.close()

    def sync(self, node) -> None:
        """Connects the node's blocks this copy lacks."""
        for height in range(self.state.tip.height + 1, node.rpc.getblockcount() + 1):
            self.state.connect_block(bytes.fromhex(node.rpc.getblock(node.rpc.getblockhash(height), 0)))

    def election(self, height: int, round_: int) -> Election:
        proof, output = leader.prove_eligibility(
            self.secret, self.state.tip_header.vrf_output, height, round_
        )
        return Election(self.key, proof, output)

    def propose(self, block: Block, round_: int) -> None:
        """Sends ``block`` as this round's proposal, and the liar's prevote for it, to every peer."""
        height = self.state.tip.height + 1
        compact = CompactBlock.whole(block.encode())
        proposal = Proposal.create(self.secret, self.chain_id, height, round_, None, compact)
        prevote = BlockVote.create(self.secret, self.chain_id, Kind.PREVOTE, height, round_, block.hash)
        items = m.encode_items([proposal.encode(), prevote.encode()])
        for peer in self.peers:
            peer.send_message(MessageType.VOTE_BATCH, items)


async def led_round(liar: Liar, nodes, tried: set[tuple[int, int]]) -> tuple[int, int] | None:
    """The (height, round) every node in ``nodes`` is in, if the liar leads it and it was not
    tried yet; None otherwise."""
    states = [(await asyncio.to_thread(n.rpc.getconsensusinfo))["round_state"] for n in nodes]
    where = {(s["height"], s["round"]) for s in states}
    if len(where) != 1 or any(s["leader"] != liar.key.hex() for s in states):
        return None
    height, round_ = where.pop()
    return None if (height, round_) in tried else (height, round_)


def block_times(node) -> list[int]:
    return [
        node.rpc.getblockheader(node.rpc.getblockhash(h))["time"] for h in range(node.rpc.getblockcount() + 1)
    ]


@pytest.fixture
def chain(tmp_path):
    return build_devnet_chain(tmp_path / "chain", 0, 0, accounts=16)


def test_block_stamped_before_its_slot_gets_no_votes(chain, tmp_path):
    early: list[bytes] = []

    with masternode_network(chain, 3, default_port_seed() + 150) as nodes:
        wait_until(lambda: all(n.rpc.getblockcount() >= 2 for n in nodes), timeout=90)
        liar = Liar(chain, tmp_path / "liar")

        async def scenario() -> None:
            await liar.connect(nodes)
            tried: set[tuple[int, int]] = set()
            deadline = time.monotonic() + scaled(120)
            while len(early) < 3 and time.monotonic() < deadline:
                where = await led_round(liar, nodes, tried)
                if where is not None:
                    tried.add(where)
                    height, round_ = where
                    await asyncio.to_thread(liar.sync, nodes[0])
                    if liar.state.tip.height + 1 == height:
                        stamp = liar.state.tip_header.timestamp + 1
                        block = assemble_block(
                            liar.state, [], stamp, election=liar.election(height, round_), round=round_
                        )
                        liar.propose(block, round_)
                        early.append(block.hash)
                await asyncio.sleep(POLL)

        try:
            run(scenario())
        finally:
            liar.close()
        assert len(early) == 3, "the liar led too few rounds"
        last = max(n.rpc.getblockcount() for n in nodes)
        wait_until(lambda: all(n.rpc.getblockcount() >= last + 2 for n in nodes), timeout=90)

        slot = math.ceil(chain.config.params.block_slot)
        for node in nodes:
            times = block_times(node)
            gaps = [b - a for a, b in zip(times[1:], times[2:], strict=False)]
            assert all(g >= slot for g in gaps), (node, gaps)
            chain_hashes = {node.rpc.getblockhash(h) for h in range(node.rpc.getblockcount() + 1)}
            assert not chain_hashes & {h.hex() for h in early}
        for block_hash in early:
            assert any(
                f"block {block_hash.hex()} rejected" in n.log_text() and "bad-timestamp" in n.log_text()
                for n in nodes
            )


def test_split_lock_resolves(chain, tmp_path):
    with masternode_network(chain, 3, default_port_seed() + 160) as nodes:
        wait_until(lambda: all(n.rpc.getblockcount() >= 2 for n in nodes), timeout=90)
        a, b, c = nodes
        c.stop()  # a and b hold 2/4 of the weight: no quorum, rounds go by on timeouts
        liar = Liar(chain, tmp_path / "liar")
        locked: dict[str, int] = {}

        async def scenario() -> None:
            await liar.connect([a, b])
            tried: set[tuple[int, int]] = set()
            proposed: set[str] = set()
            deadline = time.monotonic() + scaled(120)
            while not locked and time.monotonic() < deadline:
                where = await led_round(liar, [a, b], tried)
                if where is not None:
                    tried.add(where)
                    height, round_ = where
                    await asyncio.to_thread(liar.sync, a)
                    if liar.state.tip.height + 1 == height:
                        raw = build_block(liar.state, liar.secret, liar.key, round_, [], time.time())
                        block = Block.decode(raw)
                        liar.propose(block, round_)
                        proposed.add(block.hash.hex())
                states = [(await asyncio.to_thread(n.rpc.getconsensusinfo))["round_state"] for n in (a, b)]
                locks = {(s["height"], s["locked"]["block"]) if s["locked"] else None for s in states}
                if len(locks) == 1 and None not in locks:
                    height, block_hash = locks.pop()
                    if block_hash in proposed:
                        locked[block_hash] = height
                await asyncio.sleep(POLL)

        try:
            run(scenario())  # the liar falls silent: it neither precommits nor comes back
        finally:
            liar.close()
        assert locked, "a and b never locked on the liar's block"
        ((block_hash, height),) = locked.items()
        assert a.rpc.getblockcount() == height - 1  # two precommits of four: nothing committed

        c.start_and_wait()
        wait_until(lambda: all(n.rpc.getblockcount() >= height + 1 for n in nodes), timeout=90)
        assert len({n.rpc.getblockhash(height) for n in nodes}) == 1
        assert a.rpc.getblockhash(height) == block_hash  # the locked value is what committed
