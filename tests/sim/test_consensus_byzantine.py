"""Byzantine masternodes and crashes at the worst moment (DESIGN §7, §12 invariants 2 and 3).

Real nodes on a fake clock and an in-memory network (``timecoin.testing.consensus_sim``). The
Byzantine ones are real nodes whose outgoing messages are rewritten with their own keys: a
leader sending two different proposals for one round, a voter sending a conflicting prevote,
precommit and finality vote after each real one. The crash tests stop a masternode after it
persisted a signature and before the message left, restart it from its store, and check it never
signs anything conflicting afterwards.
"""

from __future__ import annotations

import pytest

from timecoin.consensus.messages import BlockVote, Kind, Proposal
from timecoin.consensus.signer import SignerState, Step
from timecoin.consensus.store import load_signer_records
from timecoin.testing.consensus_sim import (
    Simulation,
    double_voter,
    equivocating_leader,
    retimed,
    signature_conflicts,
)


@pytest.fixture
def sim(tmp_path):
    simulation = Simulation(tmp_path, 4, seed=21).start()
    yield simulation
    simulation.close()


def test_equivocating_leader_never_splits_the_chain(sim):
    """One masternode proposes two different blocks in every round it leads, to different nodes.
    No height ever gets two committed blocks (invariant 2); the node that received both keeps
    the two signed proposals as evidence; the chain keeps growing."""
    assert sim.wait_height(1)
    byzantine = sim.nodes[0]
    byzantine.outgoing = equivocating_leader(sim)
    start = sim.nodes[1].chain.tip.height
    assert sim.wait_height(start + 8, timeout=120)
    sim.assert_consistent()
    evidence = [e for n in sim.nodes[1:] for e in n.evidence if e.kind == "double-proposal"]
    assert evidence and all(e.masternode == byzantine.public_key for e in evidence)
    first, second = (Proposal.decode(m) for m in evidence[0].messages)
    assert (first.height, first.round) == (
        second.height,
        second.round,
    ) and first.block_hash != second.block_hash
    for node in sim.nodes[1:]:
        assert signature_conflicts(node.sent) == []


def test_double_voting_masternode_is_ignored_and_recorded(sim):
    """One masternode follows every prevote, precommit and finality vote with a conflicting one.
    Each receiver counts only the first of the two, keeps both as evidence (invariant 3 for the
    others), and blocks and finality go on with the honest 3/4."""
    assert sim.wait_height(1)
    byzantine = sim.nodes[3]
    byzantine.outgoing = double_voter(sim)
    txs = sim.transfers(sim.wallet(), 4)
    for tx in txs:
        sim.nodes[0].submit([tx.encode()])
    start = sim.nodes[0].chain.tip.height
    assert sim.run_until(lambda: sim.all_final([t.txid for t in txs]), timeout=10)
    assert sim.wait_height(start + 3)
    sim.assert_consistent()
    for node in sim.nodes[:3]:
        kinds = {e.kind for e in node.evidence if e.masternode == byzantine.public_key}
        assert {"double-prevote", "double-precommit", "contradictory-tx-vote"} <= kinds
        assert node.consensus.monitor.evidence["double-prevote"] > 0
        assert signature_conflicts(node.sent) == []
    assert signature_conflicts(byzantine.sent)  # the detector does see the Byzantine node's


def test_restart_between_signing_and_sending_block_vote(sim):
    """A masternode persists its prevote for the round-0 block of height 3 and dies before sending
    it. Restarted from its store (and cut off for a moment), it re-sends exactly that prevote,
    and when the (Byzantine) leader then shows it a different block for the same round, its
    signer refuses: no two conflicting signatures ever leave it, and the chain commits one
    block."""
    assert sim.wait_height(2)
    leader = sim.by_key[sim.nodes[0].chain.leader_order(3)[0]]
    victim = next(n for n in sim.nodes if n is not leader)
    victim.crash_after_persist = b"signer/"
    assert sim.run_until(lambda: not victim.online, timeout=10)
    signer = SignerState.load(load_signer_records_of(victim))
    # the prevote, and the precommit too if the others' prevotes were already in
    assert signer.last is not None and signer.last[:2] == (3, 0) and signer.last[2] >= Step.PREVOTE
    persisted = signer.signed_at(3)
    assert BlockVote.decode(persisted[0]).kind == Kind.PREVOTE
    assert not set(persisted) & set(victim.sent)
    others = [n for n in sim.nodes if n is not victim]
    sim.network.partition = [{victim.index}, {n.index for n in others}]
    victim.open()
    for node in others:  # what it would hear before its slot; the gate needs 3 masternodes
        victim.receive_heartbeat(node.heartbeat())
    victim.send_heartbeat()
    victim.start()
    assert set(persisted) <= set(victim.sent)  # re-sent, the same bytes
    proposal = Proposal.decode(
        leader.sent[-1]
        if leader.sent[-1][0] == Kind.PROPOSAL
        else next(m for m in reversed(leader.sent) if m[0] == Kind.PROPOSAL)
    )
    second = Proposal.create(leader.secret_key, sim.genesis.hash, 3, 0, None, retimed(proposal.compact))
    victim.deliver(leader, second.encode())  # only the victim sees the second block
    sim.run_for(0.5)
    assert victim.consensus.monitor.counters["signatures_refused"] >= 1
    sim.network.partition = None
    assert sim.wait_height(4)
    sim.assert_consistent()
    assert signature_conflicts(victim.sent) == []
    prevotes = [BlockVote.decode(m) for m in victim.sent if m[0] == Kind.PREVOTE]
    assert {v.block_hash for v in prevotes if (v.height, v.round) == (3, 0)} == {proposal.block_hash}


def test_restart_between_signing_and_sending_finality_accept(sim):
    """A masternode cut off from the others accepts transaction A, persists the accept and dies
    before its vote leaves. Restarted, it is shown B, a double spend of A's coin: it rejects B,
    because its persisted record says it accepted A for that outpoint, ever."""
    assert sim.wait_height(1)
    victim = sim.nodes[1]
    sim.network.partition = [{1}, {0, 2, 3}]
    from timecoin.testing.consensus_sim import conflicting_pairs

    a, b = conflicting_pairs(sim, sim.wallet(), 1)[0]
    victim.crash_after_persist = b"accept/"
    victim.submit([a.encode()])
    assert sim.run_until(lambda: not victim.online, timeout=5)
    victim.restart()
    victim.submit([b.encode()])
    sim.run_for(1)
    inputs = {t.txid: [i.encode() for i in t.inputs] for t in (a, b)}
    assert signature_conflicts(victim.sent, inputs) == []
    rejected = {t for m in victim.sent if m[0] == Kind.TX_VOTE for t in _tx_vote(m).rejects}
    accepted = {t for m in victim.sent if m[0] == Kind.TX_VOTE for t in _tx_vote(m).accepts}
    assert b.txid in rejected and b.txid not in accepted
    assert victim.consensus.ctx.signer.accepted(a.inputs[0].encode()) == a.txid
    sim.network.partition = None
    for node in sim.nodes:
        node.submit([a.encode(), b.encode()])
    assert sim.run_until(lambda: sim.all_final([a.txid]), timeout=10)
    assert all(b.txid not in n.finalized for n in sim.nodes)


def _tx_vote(data):
    from timecoin.consensus.messages import TxVote

    return TxVote.decode(data)


def load_signer_records_of(node):
    """The signer records a crashed node left in its store (opened read-only for the check)."""
    from timecoin.store.chainstore import ChainStore

    store = ChainStore.open(node.path)
    try:
        return load_signer_records(store)
    finally:
        store.close()
