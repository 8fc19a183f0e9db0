"""Bounded work per vote source (DESIGN §8, §12 invariant 9, §13; docs/consensus.md §2): votes
for transactions a node does not hold are parked per voter within ``MAX_PARKED_PER_VOTER``
txids (newest batches kept, oldest dropped), counted once the transaction arrives, and fetched
from the voter; ``Consensus.receive`` says per message whether it decoded and verified, so the
P2P layer relays only those and charges the sender for the others; a vote frame costs its
txids, not one token, in the sender's rate bucket.

Everything is real: signed ``TxVote``s (Ed25519 through the native module), a devnet chain in
LMDB under ``tmp_path``, the real engine, mempool and token buckets.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os

import pytest

from timecoin import crypto
from timecoin.consensus import verify_certificate
from timecoin.consensus.effects import FetchTransactions, TransactionFinalized
from timecoin.consensus.engine import FAULTS, MAX_FUTURE_BYTES_PER_PEER, Consensus
from timecoin.consensus.messages import LIMITS, Status, TxVote
from timecoin.consensus.tally import MAX_PARKED_PER_VOTER, Tally, VoteRecord
from timecoin.consensus.validators import ValidatorSet
from timecoin.ledger.chain import ChainState
from timecoin.ledger.genesis import build_genesis
from timecoin.ledger.mempool import Mempool
from timecoin.p2p import messages as m
from timecoin.p2p.messages import RATE_LIMITS, MessageType, RateClass
from timecoin.p2p.ratelimit import PeerLimits, frame_cost
from timecoin.params import DEVNET
from timecoin.testing.chaingen import Wallet, devnet_genesis

CHAIN = hashlib.sha256(b"vote bounds").digest()
SEEDS = [hashlib.sha256(b"voter" + bytes([i])).digest() for i in range(4)]
KEYS = [crypto.public_key(s) for s in SEEDS]
FULL = LIMITS["txids_per_vote"]


def random_txids(n: int) -> list[bytes]:
    blob = os.urandom(32 * n)
    return [blob[i : i + 32] for i in range(0, len(blob), 32)]


def record(voter: int, accepts, rejects=(), height: int = 5, weight: int = 1) -> VoteRecord:
    return VoteRecord(TxVote.create(SEEDS[voter], CHAIN, height, accepts, rejects), weight)


def test_votes_for_unknown_txids_are_parked_then_counted_when_the_transaction_arrives():
    vset = ValidatorSet.of(5, KEYS, [1, 1, 1, 1])
    tally = Tally(vset)
    target, other, refused = random_txids(3)
    held: set[bytes] = set()
    for voter in range(3):
        final, rejected, contradictions, fetch = tally.count(record(voter, [target], [refused]), held)
        assert (final, rejected, contradictions) == ([], [], [])
        assert fetch == [target]  # accepted and unknown: fetch it; a reject is not fetched
    assert tally.weights(target) == (0, 0) and target not in tally
    assert tally.is_parked(target, KEYS[0]) and tally.parked == 6
    # A repeat changes nothing; a contradiction is reported and the voter stops counting there.
    assert tally.count(record(0, [target]), held) == ([], [], [], [])
    assert tally.count(record(0, [], [target]), held)[2] == [target]
    # Held txids are counted at once.
    held.add(other)
    assert tally.count(record(3, [other]), held)[3] == []
    assert tally.weights(other) == (1, 0)

    tally.admit(target)
    assert tally.weights(target) == (2, 0) and not tally.is_final(target)  # voter 0 is out
    assert tally.count(record(3, [target]), held)[0] == [target]  # tallied now: counted at once
    assert tally.weights(target) == (3, 0) and tally.is_final(target)
    assert tally.is_rejected(refused) is False and tally.parked == 3  # the rejects stay parked
    cert = tally.certificate(target)
    assert verify_certificate(cert.encode(), target, vset, CHAIN) == cert
    tally.admit(refused)
    assert tally.is_rejected(refused) and tally.parked == 0


def test_parked_votes_are_bounded_per_voter_newest_kept():
    """A voter flooding full batches of txids nobody holds keeps at most MAX_PARKED_PER_VOTER
    txids' worth of its newest batches; its oldest are dropped; another voter's parked vote is
    untouched; the whole tally stays within (set size × bound)."""
    vset = ValidatorSet.of(5, KEYS, [1, 1, 1, 1])
    tally = Tally(vset)
    held: frozenset[bytes] = frozenset()
    quiet = random_txids(1)
    tally.count(record(1, quiet), held)
    batches = [random_txids(FULL) for _ in range(MAX_PARKED_PER_VOTER // FULL + 3)]
    for txids in batches:
        fetch = tally.count(record(0, txids), held)[3]
        assert sorted(fetch) == sorted(txids)
        assert tally.parked_txids(KEYS[0]) <= MAX_PARKED_PER_VOTER
    kept = MAX_PARKED_PER_VOTER // FULL
    for txids in batches[-kept:]:  # the newest batches
        assert all(tally.is_parked(t, KEYS[0]) for t in txids)
    for txids in batches[:-kept]:  # the oldest, dropped
        assert not any(tally.is_parked(t) for t in txids)
    assert tally.parked == kept * FULL + 1
    assert tally.is_parked(quiet[0], KEYS[1])
    assert tally.parked <= len(vset) * MAX_PARKED_PER_VOTER
    assert len(tally) == 0  # nothing was tallied


def test_a_dropped_repeat_keeps_the_newer_decision():
    """A voter naming the same unknown txid again moves its decision to the newer batch: when
    the older batch is dropped, the decision survives."""
    tally = Tally(ValidatorSet.of(5, KEYS, [1, 1, 1, 1]))
    held: frozenset[bytes] = frozenset()
    again = random_txids(1)[0]
    tally.count(record(0, [again, *random_txids(FULL - 1)]), held)
    for _ in range(MAX_PARKED_PER_VOTER // FULL):
        tally.count(record(0, [again, *random_txids(FULL - 1)]), held)
    assert tally.parked_txids(KEYS[0]) <= MAX_PARKED_PER_VOTER
    assert tally.is_parked(again, KEYS[0])
    tally.admit(again)
    assert tally.weights(again) == (1, 0)


@pytest.fixture
def engine(tmp_path):
    """A follower's engine (no key) on a 4-masternode devnet chain, and the chain's wallet and
    masternode seeds."""
    config, account_keys, mn_keys = devnet_genesis(masternodes=4)
    chain = ChainState.open(tmp_path / "chain", DEVNET, build_genesis(config))
    now = float(config.timestamp + 10)
    mempool = Mempool(DEVNET, chain.utxos, chain.rules, lambda: now, chain.check_masternode_transaction)
    consensus = Consensus(chain, mempool, secret_key=None, production_gate=lambda: False)
    consensus.start(now)
    yield consensus, Wallet.from_genesis(chain, account_keys), mn_keys, now
    chain.close()


def test_receive_reports_each_message_and_votes_outrun_their_transaction(engine):
    consensus, wallet, mn_keys, now = engine
    chain_id, height = consensus.ctx.chain_id, consensus.ctx.height
    tx = wallet.transfers(1, consensus.ctx.chain)[0]
    votes = [TxVote.create(k, chain_id, height, [tx.txid], []) for k in mn_keys[1:]]
    good = votes[0].encode()
    forged = dataclasses.replace(votes[0], signature=bytes(64)).encode()
    stranger = TxVote.create(os.urandom(32), chain_id, height, [tx.txid], []).encode()
    late = TxVote.create(mn_keys[1], chain_id, height + 5, [tx.txid], []).encode()
    status = Status.create(mn_keys[2], chain_id, height, bytes(32), 0).encode()
    items = [b"\x01garbage", good, forged, stranger, late, status, b""]
    effects, verdicts = consensus.receive([("peer", item) for item in items], now)
    assert verdicts == [
        "bad-encoding",
        "",
        "bad-signature",
        "unknown-voter",
        "wrong-height",
        "",
        "bad-encoding",
    ]
    assert {v for v in verdicts if v} <= FAULTS | {"unknown-voter", "wrong-height"}
    fetch = [e for e in effects if isinstance(e, FetchTransactions)]
    assert fetch == [FetchTransactions(crypto.public_key(mn_keys[1]), (tx.txid,))]

    # The other two votes arrive before the transaction: 3 of 4 equal weights, a quorum, parked.
    effects, verdicts = consensus.receive([("peer", v.encode()) for v in votes[1:]], now)
    assert verdicts == ["", ""]
    assert consensus.finality.tally.weights(tx.txid) == (0, 0)
    assert consensus.info()["finality"]["parked_votes"] == 3
    # The transaction arrives: the parked votes count and it is final at once.
    admissions, effects = consensus.submit([tx.encode()], now)
    assert admissions[0].accepted
    final = [e for e in effects if isinstance(e, TransactionFinalized)]
    assert [e.txid for e in final] == [tx.txid]
    assert consensus.transaction_status(tx.txid)["state"] == "final"


def test_a_flooding_voter_stays_within_its_bound(engine):
    """Signed full batches of random txids from one member: every one verifies and is handled,
    the parked decisions stay within the per-voter bound, and fetches are asked of that voter."""
    consensus, _, mn_keys, now = engine
    chain_id, height = consensus.ctx.chain_id, consensus.ctx.height
    flooder = crypto.public_key(mn_keys[1])
    asked = 0
    for _ in range(MAX_PARKED_PER_VOTER // FULL + 4):
        vote = TxVote.create(mn_keys[1], chain_id, height, random_txids(FULL), [])
        effects, verdicts = consensus.receive([("peer", vote.encode())], now)
        assert verdicts == [""]
        asked += sum(
            len(e.txids) for e in effects if isinstance(e, FetchTransactions) and e.masternode == flooder
        )
        assert consensus.finality.tally.parked_txids(flooder) <= MAX_PARKED_PER_VOTER
    assert asked == (MAX_PARKED_PER_VOTER // FULL + 4) * FULL
    assert consensus.info()["finality"]["parked_votes"] <= MAX_PARKED_PER_VOTER


def test_next_height_messages_are_kept_within_a_byte_bound_per_peer(engine):
    """Messages of the next height are kept (unverified) until the node gets there: one peer's
    within MAX_FUTURE_BYTES_PER_PEER, so its flood of full vote batches neither grows memory
    nor crowds out another peer's."""
    consensus, _, mn_keys, now = engine
    chain_id, ahead = consensus.ctx.chain_id, consensus.ctx.height + 1
    vote = TxVote.create(mn_keys[1], chain_id, ahead, random_txids(FULL), []).encode()
    flood = MAX_FUTURE_BYTES_PER_PEER // len(vote) + 10
    for _ in range(flood):
        assert consensus.receive([("flooder", vote)], now)[1] == ["next-height"]
    kept = [data for peer, data in consensus._future if peer == "flooder"]
    assert sum(map(len, kept)) <= MAX_FUTURE_BYTES_PER_PEER < sum(map(len, kept)) + len(vote)
    assert consensus.info()["ignored"]["next-height-full"] == flood - len(kept)
    other = TxVote.create(mn_keys[2], chain_id, ahead, random_txids(3), []).encode()
    consensus.receive([("honest", other)], now)
    assert ("honest", other) in consensus._future


def test_a_vote_frame_costs_its_txids():
    """Rate limits count items: a frame carrying one vote over 8,000 txids costs about 8,000 VOTE
    tokens, so a flood of them is refused within the bucket, where counting frames let 10,000
    such votes (80 million txids) through."""
    vote = TxVote.create(SEEDS[0], CHAIN, 5, random_txids(FULL), []).encode()
    payload = m.encode_items([vote])
    assert frame_cost(RateClass.VOTE, payload) >= FULL
    small = m.encode_items([Status.create(SEEDS[0], CHAIN, 5, bytes(32), 0).encode()])
    assert frame_cost(RateClass.VOTE, small) < 10
    assert frame_cost(RateClass.TX, m.encode_items([b"a", b"b", b"c"])) == 3
    assert frame_cost(RateClass.TX, m.encode_txids(random_txids(7))) == 7
    limits = PeerLimits(0.0)
    passed = 0
    while limits.allow(m.SPECS[MessageType.VOTE_BATCH].rate_class, frame_cost(RateClass.VOTE, payload), 0.0):
        passed += 1
    assert passed * FULL <= RATE_LIMITS[RateClass.VOTE][1]
    assert passed < 200
