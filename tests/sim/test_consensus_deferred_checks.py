"""Block checks off the consensus step (``Context.defer_checks``; docs/consensus.md, "Block
checks off the loop"): the engine asks its driver to check a proposed block (``CheckBlock``)
and goes on handling votes; the verdict comes back as an input of its own.

Real consensus on a fake clock and an in-memory network (``timecoin.testing.consensus_sim``),
each check taking simulated seconds as a node's worker thread does:

* blocks commit and transactions finalize when every check is slow, and when one node checks
  so slowly that the others commit before its verdict is back;
* a verdict for a height already decided, or for a block the engine did not ask about, changes
  nothing; a check that raised something other than ``BlockRejected`` fails the step that
  receives it, as it would have failed the step that ran it;
* a leader's invalid blocks are refused through the deferred verdict too.
"""

from __future__ import annotations

import pytest

from timecoin.consensus.blocks import BlockRejected, CheckedBlock
from timecoin.consensus.effects import CheckBlock
from timecoin.ledger.blockbuilder import Election, assemble_block
from timecoin.masternode import leader

SEEDS = [1, 2, 3]


def _transfers_final(sim, count):
    txs = sim.transfers(sim.wallet(), count)
    sim.nodes[0].submit([tx.encode() for tx in txs])
    txids = [tx.txid for tx in txs]
    assert sim.run_until(lambda: sim.all_final(txids), timeout=20)
    assert sim.run_until(lambda: all(n.chain_txids() >= set(txids) for n in sim.nodes), timeout=30)


@pytest.mark.parametrize("seed", SEEDS)
def test_blocks_commit_when_every_check_is_slow(make_sim, seed):
    """Every check takes 0.6 s (vote latency is 5-30 ms): each node prevotes once its verdict is
    back, the chain grows, transfers are final and archived everywhere, and the nodes agree."""
    sim = make_sim(4, seed=seed, check_delay=0.6)
    assert sim.wait_height(2)
    _transfers_final(sim, 16)
    start = max(n.chain.tip.height for n in sim.nodes)
    assert sim.wait_height(start + 3, timeout=60)
    sim.assert_consistent()
    assert all(n.checks_done > 0 for n in sim.nodes)


@pytest.mark.parametrize("seed", SEEDS)
def test_a_node_that_checks_slower_than_the_others_commit_keeps_up(make_sim, seed):
    """One node's checks take 2.5 s, longer than the others take to commit a block (their checks
    take 0.2 s): it gets 2/3 precommits while its own check runs, and still commits every
    block the others do, the same ones."""
    sim = make_sim(4, seed=seed, check_delay=0.2)
    slow = sim.nodes[3]
    slow.check_delay = 2.5
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
    sim = make_sim(4, seed=5, check_delay=0.3)
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


def test_an_invalid_proposal_gets_nil_prevotes_from_the_deferred_verdict(make_sim):
    """A leader whose blocks are stamped one second after their parent (before the slot starts)
    gets them refused by every honest node once their verdicts are back (``bad-timestamp``):
    none of its blocks commits, and the other leaders' blocks do."""
    sim = make_sim(4, seed=7, check_delay=0.3)
    assert sim.wait_height(1)
    liar = sim.nodes[0]
    liar.consensus.bft._build = _stamping_early(liar.consensus.bft)
    start = max(n.chain.tip.height for n in sim.nodes)
    assert sim.wait_height(start + 4, timeout=120)
    sim.assert_consistent()
    honest = sim.nodes[1:]
    assert all(n.consensus.monitor.ignored["block-bad-timestamp"] > 0 for n in honest)
    blocks = honest[0].blocks()[start + 1 :]
    assert blocks and all(b.header.proposer != liar.public_key for b in blocks)


def _stamping_early(bft):
    """A ``BftEngine._build`` that stamps the block ``parent + 1`` (invalid: before its slot)."""

    def build(round, now):
        ctx = bft.ctx
        chain = ctx.chain
        height = chain.tip.height + 1
        proof, output = leader.prove_eligibility(ctx.secret_key, chain.tip_header.vrf_output, height, round)
        election = Election(ctx.public_key, proof, output)
        block = assemble_block(chain, [], chain.tip_header.timestamp + 1, election=election, round=round)
        raw = block.encode()
        bft.verdicts[block.hash] = CheckedBlock(block, raw)
        bft.raw_blocks[block.hash] = raw
        return bft._compact(raw)

    return build
