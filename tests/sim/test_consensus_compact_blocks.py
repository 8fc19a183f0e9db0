"""Compact blocks (DESIGN §7 phase 4; docs/consensus.md, "Compact blocks"): a proposal names the
final transactions by txid and carries whole only what others may lack; a masternode rebuilds
the block from its own transactions, fetches the certificates of those it lacks from the
proposer, and a masternode behind rebuilds a decided block from a decision that carries the
coinbase only, fetching the rest from the certificate's signers.

Real nodes on a fake clock and an in-memory network (``timecoin.testing.consensus_sim``).
"""

from __future__ import annotations

from dataclasses import replace

from timecoin.consensus.engine import FAULTS
from timecoin.consensus.messages import (
    BlockVote,
    CommitCertificate,
    CompactBlock,
    Decision,
    Kind,
    Proposal,
    decode_message,
)
from timecoin.consensus.store import load_commit_certificate
from timecoin.testing.consensus_sim import Simulation


def _proposals(node) -> list[Proposal]:
    return [Proposal.decode(m) for m in node.sent if m[0] == Kind.PROPOSAL]


def _block_with(sim, txids) -> int:
    """The height of the block that archives ``txids`` on every node (all in one block)."""
    node = sim.nodes[0]
    for h in range(1, node.chain.tip.height + 1):
        block = node.chain.block(h)
        if set(txids) <= {tx.txid for tx in block.transactions}:
            return h
    raise AssertionError("no block holds the transactions")


def test_a_proposal_names_final_transactions_and_carries_only_the_coinbase(tmp_path):
    """Every masternode holds the final transactions, so the leader's proposal carries their
    txids (32 bytes each) and the coinbase whole; each node rebuilds the block, votes for it and
    commits the same block."""
    sim = Simulation(tmp_path, 4, seed=31, accounts=32).start()
    try:
        assert sim.wait_height(1)
        txs = sim.transfers(sim.wallet(), 30)
        sim.nodes[0].submit([tx.encode() for tx in txs])
        txids = [tx.txid for tx in txs]
        assert sim.run_until(lambda: sim.all_final(txids), timeout=10)
        assert sim.run_until(lambda: all(n.chain_txids() >= set(txids) for n in sim.nodes), timeout=30)
        height = _block_with(sim, txids)
        committed = sim.nodes[0].chain.block(height)
        proposal = next(
            p
            for n in sim.nodes
            for p in _proposals(n)
            if p.height == height and p.block_hash == committed.hash
        )
        assert proposal.compact.txids == tuple(tx.txid for tx in committed.transactions)
        assert proposal.compact.prefilled == (committed.transactions[0].encode(),)
        assert len(proposal.encode()) < len(committed.encode()) / 4
        for node in sim.nodes:
            prevotes = [BlockVote.decode(m) for m in node.sent if m[0] == Kind.PREVOTE]
            assert any(v.height == height and v.block_hash == committed.hash for v in prevotes)
        sim.assert_consistent()
    finally:
        sim.close()


def test_a_masternode_lacking_a_final_transaction_fetches_its_certificate(tmp_path):
    """A masternode that never received the transactions (its transaction gossip is cut) cannot
    rebuild the proposal from its own: it asks the proposer for their certificates (each with
    its transaction), makes them final, rebuilds the block and commits it in its own rounds, not
    through a decision from a peer."""
    sim = Simulation(tmp_path, 4, seed=32).start()
    try:
        assert sim.wait_height(1)
        victim = sim.nodes[3]
        victim.receive_transactions = lambda raws: None  # type: ignore[method-assign]
        txs = sim.transfers(sim.wallet(), 5)
        for node in sim.nodes[:3]:  # the three others reach 2/3 alone
            admissions, effects = node.consensus.submit([tx.encode() for tx in txs], sim.clock.now)
            assert all(a.accepted for a in admissions)
            node.runner.run(effects)
        txids = [tx.txid for tx in txs]
        assert sim.run_until(lambda: all(n.chain_txids() >= set(txids) for n in sim.nodes), timeout=30)
        counters = victim.consensus.monitor.counters
        assert counters["certificate_requests"] >= 1
        assert counters["tx_finalized"] >= len(txs)  # by the certificates it fetched
        assert counters["decisions_synced"] == 0
        sim.assert_consistent()
    finally:
        sim.close()


def test_a_masternode_behind_syncs_a_decided_block_it_cannot_rebuild(tmp_path):
    """A masternode down while a block of transactions it never saw was decided restarts behind.
    The decisions it is served do not fit one message whole (a 6,000-byte bound here), so they
    carry the block's coinbase only and it cannot rebuild the block from its own transactions:
    it fetches the certified block by block sync from the peer that served the decision, and
    ends on the same chain, voting again."""
    sim = Simulation(tmp_path, 4, seed=33, accounts=48, max_message_bytes=6_000).start()
    try:
        assert sim.wait_height(1)
        late = sim.nodes[3]
        late.crash()
        txs = sim.transfers(sim.wallet(), 40)
        sim.nodes[0].submit([tx.encode() for tx in txs])
        txids = [tx.txid for tx in txs]
        others = sim.nodes[:3]
        assert sim.run_until(lambda: all(n.chain_txids() >= set(txids) for n in others), timeout=30)
        height = _block_with(sim, txids)
        assert len(sim.nodes[0].chain.block(height).encode()) > 6_000  # a whole decision cannot fit
        served = []
        late.restart()
        original = late.deliver

        def deliver(source, data):
            if data[0] == Kind.DECISION:
                served.append(decode_message(data))
            original(source, data)

        late.deliver = deliver  # type: ignore[method-assign]
        assert sim.wait_height(height + 1)
        assert late.chain.block(height).hash == sim.nodes[0].chain.block(height).hash
        decisions = [d for d in served if isinstance(d, Decision) and d.certificate.height == height]
        assert decisions and all(len(d.compact.prefilled) == 1 for d in decisions)
        assert late.consensus.monitor.counters["decisions_to_sync"] >= 1
        assert late.synced_blocks >= 1
        sim.assert_consistent()
        signed = late.consensus.monitor.counters["block_votes_signed"]
        sim.run_for(sim.params.heartbeat_interval)
        assert sim.wait_height(late.chain.tip.height + 2)
        assert late.consensus.monitor.counters["block_votes_signed"] > signed
    finally:
        sim.close()


def test_a_decision_whose_block_fails_is_charged_to_its_sender_and_not_remembered(tmp_path):
    """A decision is unsigned but for its commit certificate, so a masternode with a valid key
    can serve a genuine certificate with a witness changed in the prefilled transactions. The
    rebuilt block fails the ledger check: the decision's verdict is ``bad-decision`` (a fault:
    the P2P layer charges the sender, ``engine.FAULTS``), nothing is committed, and the genuine
    decision of the same block, served next, is checked afresh and committed."""
    sim = Simulation(tmp_path, 4, seed=34, accounts=16).start()
    try:
        assert sim.wait_height(1)
        late = sim.nodes[3]
        sim.network.partition = [{3}, {0, 1, 2}]
        height = late.chain.tip.height + 1
        txs = sim.transfers(sim.wallet(), 6)
        for node in sim.nodes[:3]:
            admissions, effects = node.consensus.submit([tx.encode() for tx in txs], sim.clock.now)
            node.runner.run(effects)
        assert sim.wait_height(height, nodes=sim.nodes[:3])
        server = sim.nodes[0]
        raw = server.chain.store.block(server.chain.store.block_hash(height))
        certificate = CommitCertificate.decode(load_commit_certificate(server.chain.store, height))
        genuine = Decision(certificate, CompactBlock.whole(raw))
        assert len(genuine.compact.prefilled) > 1  # the block holds transfers
        tampered_tx = bytearray(genuine.compact.prefilled[1])
        tampered_tx[-1] ^= 1  # the last byte of its witness signature: the txid is unchanged
        prefilled = (genuine.compact.prefilled[0], bytes(tampered_tx), *genuine.compact.prefilled[2:])
        tampered = Decision(certificate, replace(genuine.compact, prefilled=prefilled))
        assert late.chain.tip.height == height - 1
        effects, verdicts = late.consensus.receive([(server.public_key, tampered.encode())], sim.clock.now)
        late.runner.run(effects)
        assert verdicts == ["bad-decision"] and "bad-decision" in FAULTS
        assert late.chain.tip.height == height - 1
        effects, verdicts = late.consensus.receive([(server.public_key, genuine.encode())], sim.clock.now)
        late.runner.run(effects)
        assert verdicts == [""]
        assert late.chain.tip.height == height and late.chain.tip.block_hash == genuine.compact.block_hash
    finally:
        sim.close()
