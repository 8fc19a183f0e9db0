"""Block work off the consensus step (``Context.offload_blocks``; docs/consensus.md, "Block
work off the loop"): the engine asks its driver to check a proposed block (``CheckBlock``) or to
build its own (``BuildBlock``) and goes on handling votes; the result comes back as an input of
its own.

Real consensus on a fake clock and an in-memory network (``timecoin.testing.consensus_sim``),
each piece of work taking simulated seconds as on a node's worker thread:

* blocks commit and transactions finalize when every check and build is slow, and when one
  node works so slowly that the others commit before its verdict is back (it leads rounds too,
  its builds taking 2.5 s of the 3-s propose timeout);
* a result for a height or round already left, or for a block the engine did not ask about,
  changes nothing; work that raised something other than ``BlockRejected`` fails the step that
  receives it, as it would have failed the step that ran it;
* a leader's invalid blocks are refused through the offloaded verdict too;
* a leader flooding its rounds with distinct signed proposals costs a node no more checks than
  an honest one: one per round it saw, and a block 2/3 voted for.
"""

from __future__ import annotations

from collections import Counter

import pytest

from timecoin.consensus.blocks import BlockRejected, build_elected, election
from timecoin.consensus.effects import BuildBlock, CheckBlock
from timecoin.consensus.messages import Kind
from timecoin.consensus.signer import Step
from timecoin.ledger.blockbuilder import assemble_block
from timecoin.testing.consensus_sim import flooding_leader

SEEDS = [1, 2, 3]


def _transfers_final(sim, count):
    txs = sim.transfers(sim.wallet(), count)
    sim.nodes[0].submit([tx.encode() for tx in txs])
    txids = [tx.txid for tx in txs]
    assert sim.run_until(lambda: sim.all_final(txids), timeout=20)
    assert sim.run_until(lambda: all(n.chain_txids() >= set(txids) for n in sim.nodes), timeout=30)


@pytest.mark.parametrize("seed", SEEDS)
def test_blocks_commit_when_every_check_and_build_is_slow(make_sim, seed):
    """Every check and build takes 0.6 s (vote latency is 5-30 ms): each leader proposes once its
    block is built, each node prevotes once its verdict is back, the chain grows, transfers are
    final and archived everywhere, and the nodes agree."""
    sim = make_sim(4, seed=seed, work_delay=0.6)
    assert sim.wait_height(2)
    _transfers_final(sim, 16)
    start = max(n.chain.tip.height for n in sim.nodes)
    assert sim.wait_height(start + 3, timeout=60)
    sim.assert_consistent()
    assert all(n.checks_done > 0 and n.builds_done > 0 for n in sim.nodes)


@pytest.mark.parametrize("seed", SEEDS)
def test_a_node_that_checks_slower_than_the_others_commit_keeps_up(make_sim, seed):
    """One node's checks and builds take 2.5 s, longer than the others take to commit a block
    (theirs take 0.2 s): it gets 2/3 precommits while its own check runs, and still commits
    every block the others do, the same ones."""
    sim = make_sim(4, seed=seed, work_delay=0.2)
    slow = sim.nodes[3]
    slow.work_delay = 2.5
    assert sim.wait_height(2)
    _transfers_final(sim, 10)
    start = max(n.chain.tip.height for n in sim.nodes)
    assert sim.wait_height(start + 4, timeout=90)
    sim.assert_consistent()
    assert slow.checks_done > 0


def test_a_verdict_out_of_turn_changes_nothing(make_sim):
    """A verdict for a height already decided or for a block never asked about is ignored; a
    check that raised something other than ``BlockRejected`` is raised by the step that
    receives it (a failed step), unless the height has passed."""
    sim = make_sim(4, seed=5, work_delay=0.3)
    assert sim.wait_height(2)
    node = sim.nodes[1]
    engine = node.consensus
    bft = engine.bft
    before = (bft.height, bft.round, dict(bft.verdicts), set(bft.checking))
    keys, weights = tuple(bft.ctx.vset.keys), tuple(bft.ctx.vset.weights)
    old = CheckBlock(bft.height - 1, b"\x01" * 32, b"", keys, weights)
    unasked = CheckBlock(bft.height, b"\x02" * 32, b"", keys, weights)
    rejected = BlockRejected("bad-merkle", "made up")
    now = sim.clock.now
    assert engine.on_block_checked(old, rejected, now) == []
    assert engine.on_block_checked(unasked, rejected, now) == []
    assert engine.on_block_checked(old, RuntimeError("a bug in the check"), now) == []
    assert (bft.height, bft.round, dict(bft.verdicts), set(bft.checking)) == before

    bft.checking.add(unasked.block_hash)
    with pytest.raises(RuntimeError, match="a bug in the check"):
        engine.on_block_checked(unasked, RuntimeError("a bug in the check"), now)


def test_a_build_out_of_turn_is_dropped(make_sim):
    """A block built for a round the engine has left (or never asked for) is not proposed; a
    build that raised is raised by the step that receives it only while the engine waits for
    that build."""
    sim = make_sim(4, seed=6, work_delay=0.3)
    assert sim.wait_height(2)
    node = sim.nodes[2]
    engine = node.consensus
    bft = engine.bft
    chain = node.chain
    round_ = bft.round + 1
    request = BuildBlock(
        bft.height, round_, election(chain, node.secret_key, node.public_key, round_), (), sim.clock.now
    )
    raw = build_elected(chain, request.election, round_, (), sim.clock.now)
    proposals = len([m for m in node.sent if m[0] == Kind.PROPOSAL])
    assert engine.on_block_built(request, raw, sim.clock.now) == []
    assert engine.on_block_built(request, RuntimeError("a bug in the build"), sim.clock.now) == []
    assert len([m for m in node.sent if m[0] == Kind.PROPOSAL]) == proposals

    bft.round, bft.step, bft.building = round_, Step.PROPOSE, (round_, 0.0)
    with pytest.raises(RuntimeError, match="a bug in the build"):
        engine.on_block_built(request, RuntimeError("a bug in the build"), sim.clock.now)


def test_an_invalid_block_is_refused_through_the_offloaded_verdict(make_sim):
    """A leader whose blocks are stamped one second after their parent (before the slot starts)
    gets them refused by every honest node once their verdicts are back (``bad-timestamp``):
    none of its blocks commits, and the other leaders' blocks do."""
    sim = make_sim(4, seed=7, work_delay=0.3)
    assert sim.wait_height(1)
    liar = sim.nodes[0]
    liar.consensus.bft.on_built = _stamping_early(liar.consensus.bft)
    start = max(n.chain.tip.height for n in sim.nodes)
    assert sim.wait_height(start + 4, timeout=120)
    sim.assert_consistent()
    honest = sim.nodes[1:]
    assert all(n.consensus.monitor.ignored["block-bad-timestamp"] > 0 for n in honest)
    blocks = honest[0].blocks()[start + 1 :]
    assert blocks and all(b.header.proposer != liar.public_key for b in blocks)


def _stamping_early(bft):
    """A ``BftEngine.on_built`` that proposes, instead of the block built, one stamped
    ``parent + 1`` (invalid: before its slot)."""
    on_built = bft.on_built

    def built(request, raw, out, now):
        chain = bft.ctx.chain
        block = assemble_block(
            chain, [], chain.tip_header.timestamp + 1, election=request.election, round=request.round
        )
        on_built(request, block.encode(), out, now)

    return built


def test_a_leader_flooding_its_rounds_costs_no_checks(make_sim):
    """The Byzantine leader follows each of its proposals with 30 more for the same (height,
    round), distinct blocks signed with its key, to everyone. A node keeps the first proposal
    per round and signer and holds the rest as evidence, so it asks its worker to check at most
    one block per round plus one that 2/3 voted for: never more than three at a height here,
    where the flood offered 31 per round the Byzantine node led. The chain grows and agrees."""
    sim = make_sim(4, seed=5, work_delay=0.2)
    assert sim.wait_height(1)
    byzantine = sim.nodes[0]
    byzantine.outgoing = flooding_leader(sim, 30)
    start = max(sim.heights())
    assert sim.wait_height(start + 8, timeout=120)
    sim.assert_consistent()
    for node in sim.nodes[1:]:
        flooded = [e for e in node.evidence if e.kind == "double-proposal"]
        assert flooded and all(e.masternode == byzantine.public_key for e in flooded)
        per_height = Counter(height for height, _ in node.checked if height > start)
        assert per_height and max(per_height.values()) <= 3, per_height
        assert len(set(node.checked)) == len(node.checked), "a block checked twice"
