"""BFT liveness under lies, lost votes and long outages (DESIGN §7, §12 invariant 8, §13).

Real consensus on a fake clock and an in-memory network (``timecoin.testing.consensus_sim``),
one test per finding of the liveness issue, each seeded and run for several seeds:

* a masternode with 1/4 of the weight signs a Status claiming height 2^64-1, then leaves: the
  honest 3/4 keep committing (a claim from at most 1/3 is a hint, never "behind");
* a Decision at tip+1000 whose certificate is signed by a key outside the set stops nobody;
* round-0 prevotes reach only half the set, which locks: the split lock resolves (a proposer in
  every round re-proposes its valid value with its proof-of-lock prevotes), also when the locked
  nodes crash and restart (lock, valid value and its prevotes persisted together);
* two of four masternodes down for longer than the round window: after they return, the chain
  commits again (votes of any later round from more than 1/3 make a node jump there);
* a block stamped before its slot starts is refused (no faster emission by a lying leader);
* a voter that accepts a transaction towards one node and rejects it towards the others leaves
  it final there and rejected elsewhere: the others fetch its certificate from the proposer of
  the block that carries it, make it final too, and the block commits (it is archived);
* a node that receives both sides of such a voter's contradiction records the evidence, stops
  counting that voter on the txid and re-sends what it holds of both sides to every peer;
* an owner's two spends of one coin split evenly by a partition freeze that coin, as designed
  (docs/consensus.md §3): never final twice, nothing else stops.
"""

from __future__ import annotations

import pytest

from timecoin import crypto
from timecoin.consensus.blocks import BlockRejected, check_block
from timecoin.consensus.messages import (
    BlockVote,
    CommitCertificate,
    CompactBlock,
    Decision,
    Kind,
    Status,
    TxVote,
    decode_message,
)
from timecoin.core.address import pubkey_hash
from timecoin.core.types import Transaction, TxOut, sign_transactions
from timecoin.ledger.blockbuilder import Election, assemble_block
from timecoin.masternode import leader
from timecoin.testing.consensus_sim import Simulation, conflicting_pairs

SEEDS = list(range(1, 13))


@pytest.mark.parametrize("seed", SEEDS)
def test_lying_status_from_a_quarter_of_the_weight_stops_nobody(make_sim, seed):
    sim = make_sim(4, seed=seed)
    assert sim.wait_height(2)
    liar = sim.nodes[3]
    status = Status.create(liar.secret_key, liar.chain.genesis.hash, 2**64 - 1, b"\x07" * 32, 0)
    liar.broadcast(status.encode())
    sim.run_for(0.5)
    liar.crash()
    honest = sim.nodes[:3]
    start = max(n.chain.tip.height for n in honest)
    assert sim.wait_height(start + 3, timeout=60, nodes=honest)
    txs = sim.transfers(sim.wallet(), 3)
    honest[0].submit([tx.encode() for tx in txs])
    assert sim.run_until(lambda: sim.all_final([tx.txid for tx in txs], nodes=honest), timeout=10)
    assert all(not n.consensus.ctx.behind for n in honest)
    sim.assert_consistent()


@pytest.mark.parametrize("seed", SEEDS)
def test_forged_decision_far_ahead_stops_nobody(make_sim, seed):
    sim = make_sim(4, seed=seed)
    assert sim.wait_height(2)
    sender = sim.nodes[3]
    outsider = b"\x42" * 32  # an Ed25519 seed whose key is in no set
    assert crypto.public_key(outsider) not in sim.by_key
    height = sender.chain.tip.height + 1000
    block_hash = b"\x09" * 32
    vote = BlockVote.create(outsider, sender.chain.genesis.hash, Kind.PRECOMMIT, height, 0, block_hash)
    certificate = CommitCertificate(height, 0, block_hash, ((vote.voter, vote.signature),))
    tip_raw = sender.chain.store.block(sender.chain.tip.block_hash)
    forged = Decision(certificate, CompactBlock.whole(tip_raw)).encode()
    for target in (0, 1):  # half the weight
        sim.network.deliver(sender, sim.nodes[target], forged)
    start = max(sim.heights())
    assert sim.wait_height(start + 3, timeout=60)
    sim.assert_consistent()


def _drop_round0_prevotes_to(sim: Simulation, height: int, victims: set[int]):
    def drop(src, dst, data):
        if dst.index not in victims or data[0] != Kind.PREVOTE:
            return False
        vote = decode_message(data)
        return vote.height == height and vote.round == 0

    return drop


def _split_lock(sim: Simulation) -> int:
    """Makes nodes 0 and 1 lock at round 0 of the next height while 2 and 3 see no polka."""
    assert sim.wait_height(2)
    height = max(sim.heights()) + 1
    sim.network.drop = _drop_round0_prevotes_to(sim, height, {2, 3})
    assert sim.run_until(
        lambda: (
            all(n.consensus.bft.height == height and n.consensus.bft.round >= 1 for n in sim.nodes)
            or max(sim.heights()) >= height
        ),
        timeout=30,
    )
    return height


@pytest.mark.parametrize("seed", SEEDS)
def test_split_lock_resolves(make_sim, seed):
    sim = make_sim(4, seed=seed)
    height = _split_lock(sim)
    sim.network.drop = None
    locked = [n.index for n in sim.nodes if n.consensus.bft.locked is not None]
    assert sim.wait_height(height + 2, timeout=120), (locked, [n.consensus.bft.info() for n in sim.nodes])
    sim.assert_consistent()


@pytest.mark.parametrize("seed", SEEDS)
def test_split_lock_resolves_after_the_locked_nodes_restart(make_sim, seed):
    sim = make_sim(4, seed=seed)
    height = _split_lock(sim)
    sim.network.drop = None
    if max(sim.heights()) >= height:
        pytest.skip("this seed committed before the split formed")
    for node in sim.nodes:  # crash-only: everyone restarts from its store
        node.crash()
    for node in sim.nodes:
        node.restart()
    assert sim.wait_height(height + 2, timeout=180), [n.consensus.bft.info() for n in sim.nodes]
    sim.assert_consistent()


@pytest.mark.parametrize("seed", SEEDS)
def test_outage_longer_than_the_round_window_heals(make_sim, seed):
    sim = make_sim(4, seed=seed)
    assert sim.wait_height(2)
    away = sim.nodes[2:]
    for node in away:
        node.crash()
    sim.run_for(500)  # the two left keep stepping rounds: well over 64 of them
    survivors = sim.nodes[:2]
    assert min(n.consensus.bft.round for n in survivors) > 64
    start = max(sim.heights())
    for node in away:
        node.restart()
    assert sim.wait_height(start + 2, timeout=90), [n.consensus.bft.info() for n in sim.nodes]
    sim.assert_consistent()


def test_block_stamped_before_its_slot_is_refused(make_sim):
    """A leader that stamps ``parent + 1`` (slots of 2 s) gets no votes, so every height advances
    the chain's clock by at least one slot; honest blocks keep that spacing."""
    sim = make_sim(4, seed=4)
    assert sim.wait_height(3)
    blocks = sim.nodes[0].blocks()
    gaps = [b.header.timestamp - a.header.timestamp for a, b in zip(blocks[1:], blocks[2:], strict=False)]
    assert gaps and all(g >= sim.params.block_slot for g in gaps)
    chain = sim.nodes[0].chain
    height = chain.tip.height + 1
    proposer = chain.leader_order(height)[0]
    proof, output = leader.prove_eligibility(
        sim.by_key[proposer].secret_key, chain.tip_header.vrf_output, height, 0
    )
    early = assemble_block(
        chain, [], chain.tip_header.timestamp + 1, election=Election(proposer, proof, output), round=0
    )
    keys, weights = chain.leader_set(height)
    with pytest.raises(BlockRejected) as e:
        check_block(chain, early.encode(), keys, weights)
    assert e.value.code == "bad-timestamp"


@pytest.mark.parametrize("seed", SEEDS[:6])
def test_certificate_makes_a_split_transaction_final_everywhere(make_sim, seed):
    sim = make_sim(4, seed=seed)
    assert sim.wait_height(2)
    a, b, c, d = sim.nodes
    spend, double = conflicting_pairs(sim, sim.wallet(), 1)[0]

    def byzantine(node, data):
        if data[0] in (Kind.PROPOSAL, Kind.PREVOTE, Kind.PRECOMMIT):
            return []  # silent on blocks: the three honest nodes must all agree
        if data[0] != Kind.TX_VOTE:
            return [(None, data)]
        vote = TxVote.decode(data)
        if spend.txid not in vote.accepts + vote.rejects:
            return [(None, data)]
        accepts = set(vote.accepts) - {spend.txid}
        rejects = set(vote.rejects) - {spend.txid}
        chain_id = sim.genesis.hash
        towards_a = TxVote.create(node.secret_key, chain_id, vote.height, accepts | {spend.txid}, rejects)
        towards_bc = TxVote.create(node.secret_key, chain_id, vote.height, accepts, rejects | {spend.txid})
        return [([a.index], towards_a.encode()), ([b.index, c.index], towards_bc.encode())]

    d.outgoing = byzantine
    sim.network.partition = [{a.index, b.index, d.index}, {c.index}]
    a.submit([spend.encode()])
    c.submit([double.encode()])
    assert sim.run_until(lambda: spend.txid in a.finalized, timeout=10)
    sim.network.partition = None
    assert sim.run_until(lambda: spend.txid in b.rejected or spend.txid in c.rejected, timeout=30)
    honest = [a, b, c]
    assert sim.run_until(lambda: all(spend.txid in n.chain_txids() for n in honest), timeout=120), [
        n.consensus.bft.info() for n in honest
    ]
    assert not any(double.txid in n.chain_txids() for n in honest)
    assert all(double.txid not in n.finalized for n in honest)
    assert all(n.consensus.finality.status(spend.txid) is None for n in honest)  # archived, not "rejected"
    sim.assert_consistent()


@pytest.mark.parametrize("seed", SEEDS[:6])
def test_contradicting_voter_is_caught_everywhere(make_sim, seed):
    sim = make_sim(4, seed=seed)
    assert sim.wait_height(2)
    a, b, c, d = sim.nodes
    tx = sim.transfers(sim.wallet(), 1)[0]

    def contradict(node, data):
        if data[0] != Kind.TX_VOTE:
            return [(None, data)]
        vote = TxVote.decode(data)
        if tx.txid not in vote.accepts + vote.rejects:
            return [(None, data)]
        rest_a = set(vote.accepts) - {tx.txid}
        rest_r = set(vote.rejects) - {tx.txid}
        accept = TxVote.create(node.secret_key, sim.genesis.hash, vote.height, rest_a | {tx.txid}, rest_r)
        reject = TxVote.create(node.secret_key, sim.genesis.hash, vote.height, rest_a, rest_r | {tx.txid})
        # accept towards a, reject towards b and c; b also gets the accept (as a relay would bring it)
        return [([a.index, b.index], accept.encode()), ([b.index, c.index], reject.encode())]

    d.outgoing = contradict
    a.submit([tx.encode()])
    honest = [a, b, c]

    def caught(node):
        return node.consensus.monitor.evidence["contradictory-tx-vote"] >= 1

    # b holds both sides; the side it re-sends is the one a or c lacks, so two honest nodes catch
    # it whatever the order (a side whose batch b already compacted cannot be re-sent)
    assert sim.run_until(lambda: caught(b) and (caught(a) or caught(c)), timeout=10), [
        n.consensus.monitor.evidence for n in honest
    ]
    for node in honest:
        if caught(node):
            assert any(e.masternode == d.public_key for e in node.evidence)
            assert d.public_key not in dict(node.consensus.finality.tally.decisions(tx.txid))
    assert sim.run_until(lambda: sim.all_final([tx.txid], nodes=honest), timeout=10)
    sim.assert_consistent()


@pytest.mark.parametrize("seed", SEEDS[:4])
def test_double_spend_split_evenly_freezes_only_that_coin(make_sim, seed):
    """Finding 7 of the liveness issue, kept as designed (docs/consensus.md §3, "Why no block
    unfreezes such a coin"): an owner's two spends of one coin, each accepted by one side of a
    2|2 partition, can never be settled safely (a Byzantine member of either side could hold a
    valid certificate for its side). After the heal neither spend is final or archived anywhere
    and a third spend of the coin is refused; the coin stays in the UTXO set, blocks keep
    committing and the owner's other coins stay spendable."""
    sim = make_sim(4, seed=seed)
    assert sim.wait_height(2)
    a, b, c, d = sim.nodes
    wallet = sim.wallet()
    coin, (value, key) = min(wallet.coins.items(), key=lambda kv: (kv[0].txid, kv[0].vout))
    first, second = conflicting_pairs(sim, wallet, 1)[0]
    assert first.inputs == (coin,)
    sim.network.partition = [{a.index, b.index}, {c.index, d.index}]
    a.submit([first.encode()])
    c.submit([second.encode()])
    sim.run_for(5)
    sim.network.partition = None
    start = max(sim.heights())
    assert sim.wait_height(start + 3, timeout=120)
    for node in sim.nodes:
        done = set(node.finalized) | node.chain_txids()
        assert first.txid not in done and second.txid not in done
        assert node.chain.utxos.get(coin.encode()) is not None  # not lost: locked
    owner = pubkey_hash(crypto.public_key(key))
    (third,) = sign_transactions(
        [Transaction.transfer([coin], [TxOut(value // 3, owner)])],
        [[key]],
        sim.genesis.hash,
        int(sim.params.network),
    )
    a.submit([third.encode()])
    other = sim.transfers(wallet, 1)[0]
    a.submit([other.encode()])
    assert sim.run_until(lambda: sim.all_final([other.txid]), timeout=10)
    assert sim.run_until(lambda: all(third.txid in n.rejected for n in sim.nodes), timeout=10)
    assert all(first.txid in n.rejected and second.txid in n.rejected for n in sim.nodes)
    sim.assert_consistent()
