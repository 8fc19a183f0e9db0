"""Transaction finality across simulated masternodes (DESIGN §6, §12 invariants 1, 4, 5).

Each test runs real nodes (ChainState on LMDB, mempool, heartbeats, the consensus engine and its
effect runner) on a fake clock over an in-memory network with seeded latency
(``timecoin.testing.consensus_sim``): the happy path with certificates anyone can check, a
following node without a key, a final transaction surviving a restart from the store, and
conflicting spends sent to different masternodes at once, hundreds of times with seeded
interleavings.
"""

from __future__ import annotations

import dataclasses
import random
import struct

import pytest

from timecoin.consensus import CertificateError, verify_certificate, verify_commit_certificate
from timecoin.consensus.context import Outbox
from timecoin.consensus.effects import Broadcast, Persist, Reply, TransactionFinalized
from timecoin.consensus.finality import NEW_HEIGHT_REVOTE_DELAY, CertificateRefs
from timecoin.consensus.messages import CertificateRequest, FinalityCertificate, TxCertificate, TxVote
from timecoin.consensus.store import (
    CONSENSUS_DB,
    FINALIZED_DB,
    VOTES_PREFIX,
    decode_finalized_group,
    load_commit_certificate,
)
from timecoin.consensus.validators import ValidatorSet
from timecoin.core.types import Block
from timecoin.store.chainstore import ChainStore
from timecoin.testing.consensus_sim import Simulation, conflicting_pairs, signature_conflicts


@pytest.fixture
def sim(tmp_path):
    simulation = Simulation(tmp_path, 4, seed=11, observers=1).start()
    yield simulation
    simulation.close()


def node_set(node, height):
    keys, weights = node.chain.leader_set(node.chain.tip.height + 1)
    return ValidatorSet.of(height, keys, weights)


def test_happy_path_final_with_certificates_then_archived(sim):
    """Transfers submitted to different masternodes become final on every node (masternodes and
    the keyless observer) well under a second of simulated time; every certificate passes
    ``verify_certificate`` against the masternode set; the next blocks archive them with commit
    certificates that verify; every node ends on the same tip and UTXO set hash (invariant 4)."""
    assert sim.wait_height(1)
    wallet = sim.wallet()
    txs = sim.transfers(wallet, 12)
    t0 = sim.clock.now
    for i, tx in enumerate(txs):
        assert sim.nodes[i % 4].submit([tx.encode()])[0].accepted
    txids = [tx.txid for tx in txs]
    assert sim.run_until(lambda: sim.all_final(txids), timeout=5)
    for n in sim.nodes:  # what admission control bounds: the bytes waiting for a block
        finality = n.consensus.finality
        assert finality.finalized_bytes == sum(len(e.raw) for e in finality.finalized.values()) > 0
    latencies = [n.finalized_at[t] - t0 for n in sim.nodes for t in txids]
    assert max(latencies) < 1.0
    observer = sim.nodes[4]
    assert observer.secret_key is None and not observer.consensus.info()["voter"]
    chain_id = sim.genesis.hash
    for node in sim.nodes:
        for txid in txids:
            notice = node.finalized[txid]
            cert = FinalityCertificate.decode(notice.certificate_bytes())
            vset = node_set(node, cert.height)
            assert verify_certificate(notice.certificate_bytes(), txid, vset, chain_id).txid == txid
            assert verify_certificate(cert, txid, (list(vset.keys), list(vset.weights)), chain_id)
    assert sim.run_until(lambda: all(set(txids) <= n.chain_txids() for n in sim.nodes), timeout=10)
    sim.assert_consistent()
    # Archived: neither the finalized records nor the vote batches their certificates named
    # are left in any store.
    for node in sim.nodes:
        assert list(node.chain.store.items(FINALIZED_DB)) == []
        assert list(node.chain.store.items(CONSENSUS_DB, VOTES_PREFIX)) == []
    node = sim.nodes[1]
    for h in range(1, node.chain.tip.height + 1):
        cert = load_commit_certificate(node.chain.store, h)
        assert cert is not None
        verify_commit_certificate(cert, node.chain.store.block_hash(h), h, node_set(node, h), chain_id)
    assert all(not n.consensus.finality.finalized for n in sim.nodes)  # archived: pool empty
    assert all(n.consensus.finality.finalized_bytes == 0 for n in sim.nodes)
    assert all(not list(n.chain.store.items(FINALIZED_DB)) for n in sim.nodes)  # records deleted
    for n in sim.nodes:
        assert signature_conflicts(n.sent) == []


def test_transaction_only_one_masternode_holds_becomes_final(sim):
    """A transaction that reached one masternode only (gossiped before its peers connected, or
    dropped by their full mempools) is sent to every node again once it has been pending
    ``finality_revote_interval``; then the others vote and it is final everywhere. Without that
    relay one vote of four never reaches 2/3 and it would stay pending for good."""
    assert sim.wait_height(1)
    (tx,) = sim.transfers(sim.wallet(), 1)
    origin = sim.nodes[0]
    admissions, effects = origin.consensus.submit([tx.encode()], sim.clock.now)  # no relay
    assert admissions[0].accepted
    origin.runner.run(effects)
    t0 = sim.clock.now
    sim.run_for(sim.params.finality_revote_interval / 2)
    assert all(tx.txid not in n.finalized for n in sim.nodes)
    assert sim.run_until(lambda: sim.all_final([tx.txid]), timeout=5)
    assert sim.clock.now - t0 >= sim.params.finality_revote_interval


def test_a_new_height_votes_open_decisions_again_only_after_the_delay(sim):
    """At a new height a masternode votes again on the decisions it left open, but only
    ``NEW_HEIGHT_REVOTE_DELAY`` later (a flush is scheduled then), and only those still open:
    the previous height's votes in flight finish most of them first. Before, every open decision
    went out again at the very next flush, doubling the vote and tally work at every block."""
    assert sim.wait_height(1)
    held, finished = sim.transfers(sim.wallet(), 2)
    origin = sim.nodes[0]
    admissions, effects = origin.consensus.submit([held.encode(), finished.encode()], sim.clock.now)
    assert all(a.accepted for a in admissions)
    origin.runner.run(effects)  # no relay: only ``origin`` holds them, so neither becomes final
    finality = origin.consensus.finality
    sim.run_for(0.2)
    assert finality.pending[held.txid].decision is True and finality.pending[finished.txid].decision
    counters = origin.consensus.monitor.counters
    now = sim.clock.now
    out = Outbox()
    finality.new_height(out, now)
    assert [t.at for t in out.timers] == [pytest.approx(now + NEW_HEIGHT_REVOTE_DELAY, abs=1e-6)]
    signed = counters["tx_votes_signed"]
    finality.on_flush(Outbox(), now + NEW_HEIGHT_REVOTE_DELAY / 2)
    assert counters["tx_votes_signed"] == signed  # not yet
    finality._drop_pending(finished.txid, Outbox(), now)  # as if final in the previous tally
    out = Outbox()
    finality.on_flush(out, now + NEW_HEIGHT_REVOTE_DELAY)
    assert counters["tx_votes_signed"] == signed + 1
    (vote,) = [TxVote.decode(b.data) for b in out.sends if isinstance(b, Broadcast)]
    assert vote.accepts == (held.txid,) and vote.rejects == ()


def test_spread_arrivals_are_voted_in_one_batch_per_interval(sim):
    """Transactions arriving one per 5 ms for 80 ms are voted in about one batch per
    ``finality_vote_interval`` by each masternode, and the flush timers fire about as often (a
    timer an earlier flush superseded is ignored). Before, each arrival set off a flush of its
    own one interval later, and a flush scheduled a timer while an older one was pending: ~1,000
    flush timers and ~100 signed votes a second per node at 4,000 tx/s."""
    assert sim.wait_height(1)
    txs = sim.transfers(sim.wallet(), 16)
    counters = [n.consensus.monitor.counters for n in sim.nodes[:4]]
    votes = [c["tx_votes_signed"] for c in counters]
    timers = [c["timer_flush"] for c in counters]
    t0 = sim.clock.now
    for tx in txs:
        assert sim.nodes[0].submit([tx.encode()])[0].accepted
        sim.run_for(0.005)
    assert sim.run_until(lambda: sim.all_final([tx.txid for tx in txs]), timeout=5)
    batches = (sim.clock.now - t0) / sim.params.finality_vote_interval + 2
    for c, before, fired in zip(counters, votes, timers, strict=True):
        assert c["tx_votes_signed"] - before <= batches, (c["tx_votes_signed"] - before, batches)
        assert c["timer_flush"] - fired <= batches + 2, (c["timer_flush"] - fired, batches)


def test_tampered_certificates_are_refused(sim):
    """A certificate is refused with a stable code when its txid, a signature, a proof or its
    weight is wrong, or when a signer is not in the set."""
    assert sim.wait_height(1)
    tx = sim.transfers(sim.wallet(), 1)[0]
    sim.nodes[0].submit([tx.encode()])
    assert sim.run_until(lambda: sim.all_final([tx.txid]), timeout=5)
    raw = sim.nodes[0].finalized[tx.txid].certificate_bytes()
    cert = FinalityCertificate.decode(raw)
    vset = node_set(sim.nodes[0], cert.height)
    chain_id = sim.genesis.hash

    def code(certificate, txid=tx.txid, validators=vset):
        with pytest.raises(CertificateError) as e:
            verify_certificate(certificate, txid, validators, chain_id)
        return e.value.code

    assert code(raw, txid=bytes(32)) == "wrong-subject"
    assert code(raw[:-1]) == "bad-encoding"
    first = cert.entries[0]
    bad_sig = first.__class__(*[getattr(first, f) for f in first.__slots__][:-1], bytes(64))
    assert code(FinalityCertificate(cert.txid, cert.height, (bad_sig, *cert.entries[1:]))) == "bad-signature"
    bad_proof = first.__class__(
        first.voter,
        first.accept_count,
        first.accept_root,
        first.index,
        first.reject_count,
        first.reject_root,
        (*first.proof, bytes(32)),
        first.signature,
    )
    assert code(FinalityCertificate(cert.txid, cert.height, (bad_proof, *cert.entries[1:]))) == "bad-proof"
    quorum = (len(cert.entries) * 2 + 2) // 3
    few = FinalityCertificate(cert.txid, cert.height, cert.entries[: quorum - 1] if quorum > 1 else ())
    if few.entries:
        assert code(few) == "no-quorum"
    stranger = ValidatorSet.of(cert.height, [bytes([9]) * 32], [1])
    assert code(raw, validators=stranger) == "unknown-voter"


def test_final_transaction_survives_restart(sim):
    """Invariant 5 at the logic level: the finalized record is durable before the node reports
    the transaction final; a node restarted from its store right after still holds it with the
    same certificate and archives it in the next block."""
    assert sim.wait_height(1)
    node = sim.nodes[2]
    durable_when_told = []
    notice = node.runner.on_notice

    def check_then_notice(effect):
        if isinstance(effect, TransactionFinalized):
            key = node.consensus.finality.finalized[effect.txid].key
            durable_when_told.append(node.chain.store.get(FINALIZED_DB, key) is not None)
        notice(effect)

    node.runner.on_notice = check_then_notice
    tx = sim.transfers(sim.wallet(), 1)[0]
    sim.nodes[0].submit([tx.encode()])
    assert sim.run_until(lambda: tx.txid in node.finalized, timeout=5)
    assert durable_when_told == [True]
    certificate = node.finalized[tx.txid].certificate_bytes()
    height = node.chain.tip.height
    node.crash()
    node.restart()
    entry = node.consensus.finality.finalized[tx.txid]
    assert node.consensus.finality.finalized_bytes == len(tx.encode())  # counted when loaded too
    # Stored by reference (the vote batches once, the record ~45 bytes of references) and
    # rebuilt to the very bytes the node announced.
    assert isinstance(entry.certificate, CertificateRefs)
    assert entry.certificate_bytes() == certificate and node.chain.tip.height == height
    assert node.consensus.transaction_status(tx.txid)["state"] == "final"
    assert sim.run_until(lambda: tx.txid in node.chain_txids(), timeout=10)
    assert sim.wait_height(node.chain.tip.height)
    sim.assert_consistent()


def test_records_a_block_made_useless_may_be_swept_late_or_lost_in_a_crash(sim):
    """A committed block's finalized records, the vote batches they name and the signer's
    accept records of the outpoints it spent go out as a ``Sweep``, deleted after the block (a
    node's sweeper: ``timecoin.store.sweeper``), not in its store transaction. A crash between
    the block and the sweep loses the deletes: the restarted node still holds nothing of those
    transactions as final (the load drops records whose inputs a block spent), sweeps the stale
    records at start, and decides the next heights with the others."""
    assert sim.wait_height(1)
    node = sim.nodes[2]
    lost: list[tuple[bytes, bytes]] = []
    node.runner.sweep = lost.extend  # the deletes never reach the store
    txs = sim.transfers(sim.wallet(), 6)
    sim.nodes[0].submit([tx.encode() for tx in txs])
    txids = {tx.txid for tx in txs}
    assert sim.run_until(lambda: txids <= node.chain_txids(), timeout=10)
    swept = {db for db, _ in lost}
    assert swept == {FINALIZED_DB, CONSENSUS_DB}  # finalized records; vote batches, accepts
    stored = {bytes(k): bytes(v) for k, v in node.chain.store.items(FINALIZED_DB)}  # still stored
    assert {k for db, k in lost if db == FINALIZED_DB} == set(stored)
    assert {t for v in stored.values() for t, _, _ in decode_finalized_group(v)} == txids
    assert not node.consensus.finality.finalized  # but no longer held as final
    node.crash()
    node.restart()
    assert not node.consensus.finality.finalized
    assert not txids & set(node.consensus.finality.pending)
    assert list(node.chain.store.items(FINALIZED_DB)) == []  # the start swept them
    assert list(node.chain.store.items(CONSENSUS_DB, VOTES_PREFIX)) == []
    assert sim.wait_height(node.chain.tip.height + 2)
    sim.assert_consistent()


def test_a_group_made_and_archived_in_one_step_is_never_written(sim):
    """A group record is written at the end of the step that made its transactions final. If a
    block archives all of them within that same step, the group is dropped, not written then
    swept; a transaction made final after that in the step opens a group of its own (it would
    otherwise have joined the dropped group, its record deleted by the sweep)."""
    assert sim.wait_height(1)
    first, second = sim.transfers(sim.wallet(), 2)
    origin = sim.nodes[0]
    admissions, _ = origin.consensus.submit([first.encode(), second.encode()], sim.clock.now)
    assert all(a.accepted for a in admissions)  # effects not run: pending at the origin only
    finality, now, out = origin.consensus.finality, sim.clock.now, Outbox()
    finality._finalize(first.txid, b"a peer's certificate", out, now)
    key = finality.finalized[first.txid].key
    tip = origin.blocks()[-1]
    header = dataclasses.replace(tip.header, height=tip.header.height + 1)
    finality.on_block(Block(header, (tip.transactions[0], first)), out, now)
    assert FINALIZED_DB not in out.parts and (FINALIZED_DB, key) not in out.sweeps
    finality._finalize(second.txid, b"a peer's certificate", out, now)
    second_key = finality.finalized[second.txid].key
    assert second_key != key
    (persist,) = [e for e in out.effects() if isinstance(e, Persist)]
    groups = [(k, v) for db, k, v in persist.writes if db == FINALIZED_DB]
    assert [k for k, _ in groups] == [second_key]
    assert [t for t, _, _ in decode_finalized_group(groups[0][1])] == [second.txid]


def test_finalized_records_are_groups_in_finalization_order(sim):
    """The transactions one step makes final share one group record, keyed ``G`` ‖ the node's
    finalization sequence (one put and one delete per step, not per transaction), numbered on
    after the highest sequence stored when the node restarts. Records of stores written before,
    one per transaction keyed by sequence or by txid, are still read, kept final and deleted
    when a block archives their transaction."""
    assert sim.wait_height(1)
    node = sim.nodes[1]
    txs = sim.transfers(sim.wallet(), 6)
    first_batch, later_batch = txs[:4], txs[4:]
    legacy, single = first_batch[-1], first_batch[-2]
    sim.nodes[0].submit([tx.encode() for tx in first_batch])
    assert sim.run_until(lambda: all(t.txid in node.finalized for t in first_batch), timeout=5)
    assert not any(t.txid in node.chain_txids() for t in first_batch)
    records = {bytes(k): bytes(v) for k, v in node.chain.store.items(FINALIZED_DB)}
    assert all(len(k) == 9 and k[:1] == b"G" for k in records)
    entries = {t: (k, tx, proof) for k, v in records.items() for t, tx, proof in decode_finalized_group(v)}
    assert set(entries) == {t.txid for t in first_batch}
    assert len(records) < len(first_batch)  # groups: fewer records than transactions
    node.crash()
    # Rewrite two transactions as nodes of earlier versions stored them, out of their groups.
    writes: list[tuple[bytes, bytes, bytes | None]] = [(FINALIZED_DB, k, None) for k in records]
    for key in records:
        value = b"".join(
            t + struct.pack("<I", len(tx)) + tx + struct.pack("<I", len(proof)) + proof
            for t, (k, tx, proof) in entries.items()
            if k == key and t not in (legacy.txid, single.txid)
        )
        if value:
            writes.append((FINALIZED_DB, key, value))
    _, tx, proof = entries[legacy.txid]
    writes.append((FINALIZED_DB, legacy.txid, struct.pack("<I", len(tx)) + tx + proof))
    _, tx, proof = entries[single.txid]
    old_value = single.txid + struct.pack("<I", len(tx)) + tx + proof
    writes.append((FINALIZED_DB, (7).to_bytes(8, "big"), old_value))
    store = ChainStore.open(node.path)
    try:
        store.write(writes)
    finally:
        store.close()
    node.restart()
    finality = node.consensus.finality
    assert finality.finalized[legacy.txid].key == legacy.txid
    assert finality.finalized[single.txid].key == (7).to_bytes(8, "big")
    assert all(node.consensus.transaction_status(t.txid)["state"] == "final" for t in first_batch)
    keys = []
    notice = node.runner.on_notice

    def key_then_notice(effect):
        if isinstance(effect, TransactionFinalized):
            keys.append(finality.finalized[effect.txid].key)
        notice(effect)

    node.runner.on_notice = key_then_notice
    sim.nodes[0].submit([tx.encode() for tx in later_batch])
    assert sim.run_until(lambda: all(t.txid in node.finalized for t in later_batch), timeout=5)
    # Counting goes on after the highest sequence still stored: never over a record that exists.
    assert len(keys) == len(later_batch) and all(len(k) == 9 and k[:1] == b"G" for k in keys)
    assert min(int.from_bytes(k[1:], "big") for k in keys) > 7
    assert sim.run_until(lambda: not list(node.chain.store.items(FINALIZED_DB)), timeout=10)
    assert all(t.txid in node.chain_txids() for t in txs)
    sim.assert_consistent()


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_conflicting_spends_never_both_final(tmp_path, seed):
    """Invariant 1: 50 double spends per seed (200 in all), both halves of each sent at random
    instants within 50 ms to random masternodes. Conflicts are settled by votes, Snowball or a
    block; on no node are both spends of a pair final, every node agrees on each pair's outcome,
    every masternode signed at most one accept per outpoint, and the chains agree."""
    pairs_count = 50
    sim = Simulation(tmp_path, 4, seed=seed, accounts=pairs_count + 2).start()
    try:
        assert sim.wait_height(1)
        rng = random.Random(seed)
        pairs = conflicting_pairs(sim, sim.wallet(), pairs_count)
        t0 = sim.clock.now
        for a, b in pairs:
            for tx in (a, b):
                target = sim.nodes[rng.randrange(4)]
                sim.scheduler.at(t0 + rng.random() * 0.05, lambda n=target, t=tx: n.submit([t.encode()]))

        def settled():
            return sim.clock.now > t0 + 0.1 and all(
                not n.consensus.finality.pending and not n.consensus.finality.finalized for n in sim.nodes
            )

        assert sim.run_until(settled, timeout=60)
        sim.assert_consistent()
        winners = 0
        for a, b in pairs:
            views = set()
            for n in sim.nodes:
                final = set(n.finalized) | n.chain_txids()
                assert not (a.txid in final and b.txid in final), "two conflicting spends are both final"
                views.add((a.txid in final, b.txid in final))
            assert len(views) == 1, f"nodes disagree on a conflict: {views}"
            winners += any(views.pop())
        assert winners >= pairs_count * 3 // 4  # most conflicts get a winner; the rest are rejected
        inputs = {t.txid: [i.encode() for i in t.inputs] for pair in pairs for t in pair}
        for n in sim.nodes:
            assert signature_conflicts(n.sent, inputs) == []
    finally:
        sim.close()


def test_certificates_on_request_only_for_own_proposals_once_per_peer(sim):
    """A CertificateRequest is unsigned and its answer ~37 times its size: a node answers only
    txids of blocks it proposed at this height, each peer once per txid and height
    (docs/consensus.md §4, "Validation"). Before, any peer could ask for every final txid again
    and again."""
    assert sim.wait_height(1)
    a = sim.nodes[0]
    txs = sim.transfers(sim.wallet(), 2)
    a.submit([tx.encode() for tx in txs])
    # Final on ``a`` and not yet archived by a block.
    assert sim.run_until(lambda: all(tx.txid in a.consensus.finality.finalized for tx in txs), timeout=5)
    finality = a.consensus.finality
    request = CertificateRequest(tuple(sorted(tx.txid for tx in txs)))
    proposed = {txs[0].txid}

    def answers(peer, allowed):
        out = Outbox()
        finality.on_certificate_request(request, peer, allowed, out)
        return [TxCertificate.decode(r.data).transaction for r in out.sends if isinstance(r, Reply)]

    assert answers("peer-1", proposed) == [txs[0].encode()]  # not the one outside the proposal
    assert answers("peer-1", proposed) == []  # not twice
    assert answers("peer-2", proposed) == [txs[0].encode()]  # another peer may need it too
    assert answers("peer-3", set()) == []
    assert a.consensus.monitor.counters["certificates_not_sent"] == 1 + 2 + 1 + 2
    finality.new_height(Outbox(), sim.clock.now)  # a new height: a peer may ask again
    assert answers("peer-1", proposed) == [txs[0].encode()]
