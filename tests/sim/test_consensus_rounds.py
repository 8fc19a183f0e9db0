"""Block production and its fallbacks across simulated masternodes (DESIGN §5 production gate,
§7 rounds and fallback, §12 invariants 2 and 4).

Real nodes on a fake clock and an in-memory network (``timecoin.testing.consensus_sim``): a
crashed leader (rotation), two crashed leaders (reward-only block), proposals that never arrive
(emergency block), a 2/2 partition (no commit, then progress once healed), the heartbeat gate,
and the monitoring record of rounds.
"""

from __future__ import annotations

from timecoin.consensus.blocks import EMERGENCY_ROUND, emergency_block
from timecoin.consensus.messages import Kind, decode_message
from timecoin.consensus.monitor import PHASES
from timecoin.params import REWARD_ONLY_ROUND


def test_leader_offline_rotates_to_the_next_leader(make_sim):
    """The round-0 leader of height 3 is down: after ``leader_timeout`` the others prevote nil,
    move to round 1, and commit the block of the second leader in the VRF order."""
    sim = make_sim(4, seed=2)
    assert sim.wait_height(2)
    order = sim.nodes[0].chain.leader_order(3)
    sim.by_key[order[0]].crash()
    assert sim.wait_height(3)
    block = sim.online()[0].chain.block(3)
    assert block.header.round == 1 and block.header.proposer == order[1]
    sim.assert_consistent()
    info = sim.online()[0].consensus.info()
    assert info["counters"]["fallback_rounds"] >= 1
    rounds = [r for r in info["rounds"] if r["height"] == 3]
    assert [r["round"] for r in rounds] == [0, 1]
    assert rounds[0]["outcome"] == "timeout" and rounds[1]["outcome"] == "committed full block"
    assert set(rounds[1]["phases"]) <= set(PHASES) and "voting" in rounds[1]["phases"]
    assert sim.wait_height(5)  # the next heights still work around the dead node
    sim.assert_consistent()


def test_two_leaders_offline_give_a_reward_only_block(make_sim):
    """Seven masternodes, the first two leaders of height 3 down: rounds 0 and 1 time out, and
    the third leader's reward-only block (coinbase only) is committed in round 2."""
    sim = make_sim(7, seed=3)
    assert sim.wait_height(2)
    order = sim.nodes[0].chain.leader_order(3)
    for key in order[:2]:
        sim.by_key[key].crash()
    assert sim.wait_height(3)
    block = sim.online()[0].chain.block(3)
    assert block.header.round == REWARD_ONLY_ROUND and block.header.proposer == order[2]
    assert len(block.transactions) == 1
    assert sim.online()[0].consensus.monitor.counters["reward-only_blocks"] == 1
    sim.assert_consistent()


def test_no_proposal_arrives_emergency_block(make_sim):
    """The proposals of the full and reward-only rounds are all lost on the wire: the leader of
    the first emergency round proposes the emergency block, which every node has built itself
    from the chain (the same bytes); all commit it, and the network then carries on normally."""
    sim = make_sim(4, seed=4)
    assert sim.wait_height(2)

    def lose_early_proposals(node, data):
        if data[0] == Kind.PROPOSAL and decode_message(data).round <= REWARD_ONLY_ROUND:
            return []
        return [(None, data)]

    for node in sim.nodes:
        node.outgoing = lose_early_proposals
    expected = emergency_block(sim.nodes[0].chain)
    assert sim.wait_height(3)
    block = sim.nodes[0].chain.block(3)
    assert block.header.round == EMERGENCY_ROUND and block.header.proposer == bytes(32)
    assert block.encode() == expected.encode() and len(block.transactions) == 1
    assert all(n.consensus.monitor.counters["emergency_blocks"] == 1 for n in sim.nodes)
    sim.assert_consistent()
    for node in sim.nodes:
        node.outgoing = None
    assert sim.wait_height(5)
    assert sim.nodes[0].chain.block(5).header.round < EMERGENCY_ROUND
    sim.assert_consistent()


def test_no_value_nobody_proposed_is_voted(make_sim):
    """Every proposal is lost: no node prevotes a block of its own choosing (not even the
    emergency block), so nothing commits; once proposals arrive again, blocks resume."""
    sim = make_sim(4, seed=4)
    assert sim.wait_height(2)
    for node in sim.nodes:
        node.outgoing = lambda node, data: [] if data[0] == Kind.PROPOSAL else [(None, data)]
    before = sim.heights()
    sim.run_for(60)
    assert sim.heights() == before
    for node in sim.nodes:
        node.outgoing = None
    assert sim.wait_height(before[0] + 2, timeout=60)
    sim.assert_consistent()


def test_partition_of_two_halts_then_heals(make_sim):
    """Two against two: neither half holds 2/3, so nothing commits and no transaction becomes
    final, however long it lasts; once healed, the rounds meet again and blocks and finality
    resume on every node."""
    sim = make_sim(4, seed=5)
    assert sim.wait_height(2)
    sim.network.partition = [{0, 1}, {2, 3}]
    before = sim.heights()
    txs = sim.transfers(sim.wallet(), 2)
    sim.nodes[0].submit([txs[0].encode()])
    sim.nodes[3].submit([txs[1].encode()])
    sim.run_for(20)
    assert sim.heights() == before
    assert all(not n.finalized for n in sim.nodes)
    sim.network.partition = None
    for node in sim.nodes:  # clients resend what the partition kept from half the network
        node.submit([tx.encode() for tx in txs])
    assert sim.wait_height(before[0] + 2, timeout=60)
    assert sim.run_until(lambda: sim.all_final([tx.txid for tx in txs]), timeout=10)
    sim.assert_consistent()


def test_production_gate_follows_heartbeats(make_sim):
    """With fewer than three masternodes heard from (heartbeats stop arriving), no node starts a
    round: the chain stops. When the heartbeats come back, production resumes."""
    sim = make_sim(4, seed=6)
    assert sim.wait_height(2)
    for node in sim.nodes[2:]:
        node.heartbeats = False
    sim.run_for(sim.params.heartbeat_expiry + 5)
    stopped = max(sim.heights())
    assert all(not n.tracker.can_produce() for n in sim.nodes)
    sim.run_for(30)
    assert max(sim.heights()) == stopped
    assert sim.nodes[0].consensus.monitor.counters["gate_closed"] > 0
    for node in sim.nodes[2:]:
        node.heartbeats = True
        node.send_heartbeat()
    assert sim.wait_height(stopped + 2, timeout=60)
    sim.assert_consistent()


def test_consensus_info_is_a_plain_dict(make_sim):
    """``info()`` (getconsensusinfo) is JSON-ready: round state, finality, signer, counters and
    round records with per-phase durations."""
    import json

    sim = make_sim(4, seed=7)
    assert sim.wait_height(2)
    info = sim.nodes[0].consensus.info()
    assert json.loads(json.dumps(info)) == info
    assert info["round_state"]["height"] == 3 and info["set"]["size"] == 4
    assert info["counters"]["blocks_committed"] == 2
    committed = [r for r in info["rounds"] if r["outcome"].startswith("committed")]
    assert committed and all(r["prevotes"] >= 3 and r["precommit_weight"] > 0 for r in committed)


def test_restarted_masternode_catches_up_by_decisions(make_sim):
    """A masternode down for several heights restarts from its store, learns from the others'
    statuses that it is behind, stops voting, fetches each missing block with its commit
    certificate (checked against the set and the ledger) and then takes part again."""
    sim = make_sim(4, seed=8)
    assert sim.wait_height(1)
    late = sim.nodes[3]
    late.crash()
    assert sim.wait_height(6, nodes=sim.nodes[:3])
    assert late.chain.tip.height < 6  # its store kept what it had
    late.restart()
    assert sim.wait_height(8)
    assert late.consensus.monitor.counters["decisions_synced"] >= 4
    sim.assert_consistent()
    # once the heartbeats reach its fresh tracker (the production gate), it votes again
    sim.run_for(sim.params.heartbeat_interval)
    assert sim.wait_height(late.chain.tip.height + 2)
    assert late.consensus.monitor.counters["block_votes_signed"] > 0
    sim.assert_consistent()
