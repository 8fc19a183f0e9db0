"""What a node keeps per transaction gives the cyclic collector as little as possible to scan
(docs/operator.md, "Memory"): under load a collection's pause and the collector's share of the
CPU grow with the tracked objects alive, and at 6,000 tx/s offered the collector took ~19 % of a
node's CPU (docs/benchmarks.md). Counted with the collector off, so nothing is untracked behind
the test's back."""

from __future__ import annotations

import gc
import hashlib
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest

import timecoin.consensus.tally as tally_module
from timecoin import crypto
from timecoin.consensus.feed import FinalityFeed
from timecoin.consensus.messages import TxVote
from timecoin.consensus.tally import Tally, VoteRecord
from timecoin.consensus.validators import ValidatorSet
from timecoin.testing.pure import is_compiled

CHAIN = hashlib.sha256(b"collector load").digest()
SEEDS = [hashlib.sha256(b"voter" + bytes([i])).digest() for i in range(4)]
N = 5_000


@contextmanager
def collector_off() -> Iterator[Callable[[], int]]:
    """Yields a function giving the tracked objects made since the block began."""
    gc.collect()
    gc.disable()
    try:
        start = len(gc.get_objects())
        yield lambda: len(gc.get_objects()) - start
    finally:
        gc.enable()


def test_the_finality_feed_keeps_no_tracked_object_per_decision():
    feed = FinalityFeed(capacity=4 * N)
    txids = [os.urandom(32) for _ in range(N)]
    with collector_off() as made:
        for i, txid in enumerate(txids):
            feed.append(txid, i % 3 != 0)
        assert made() < 10
    page = feed.since(0, N)
    assert page.final == [t for i, t in enumerate(txids) if i % 3 != 0]
    assert page.rejected == txids[::3] and page.cursor == N


@pytest.mark.skipif(not is_compiled(tally_module), reason="the interpreted tally's objects are all tracked")
def test_counting_and_compacting_make_no_tracked_object_per_txid():
    vset = ValidatorSet.of(5, [crypto.public_key(s) for s in SEEDS], [1, 1, 1, 1])
    tally = Tally(vset)
    txids = [os.urandom(32) for _ in range(N)]
    records = [VoteRecord(TxVote.create(seed, CHAIN, 5, txids, []), 1) for seed in SEEDS[:3]]
    final = []
    with collector_off() as made:
        for record in records:
            final += tally.add(record)[0]
        assert made() < 100  # the result lists and the batch list, not one per txid
    assert sorted(final) == sorted(txids)
    assert [e.vote.voter for e, _ in tally.accepts(txids[7])] == sorted(r.vote.voter for r in records)
    with collector_off() as made:
        for txid in txids:
            tally.compact(txid)
        assert made() < 10
    assert all(tally.weights(t) == (3, 0) for t in txids)
    assert all(tally.counted_batch(txids[0], r.vote.voter) is None for r in records)  # batches released
    # A late contradiction is still caught after compaction, and its weight taken back.
    late = VoteRecord(TxVote.create(SEEDS[0], CHAIN, 5, [], txids[:1]), 1)
    assert tally.add(late) == ([], [], txids[:1])
    assert tally.weights(txids[0]) == (2, 0)


def test_batches_that_count_nothing_hold_no_number_and_the_list_stays_bounded():
    """A masternode may send the same valid batch, or batches repeating decisions already
    counted, a million times: each gets a number only while one of its decisions is counted, so
    such batches are released in the call that saw them (the number one took for the call is
    reused by the next) and the numbered list does not grow."""
    vset = ValidatorSet.of(5, [crypto.public_key(s) for s in SEEDS], [1, 1, 1, 1])
    tally = Tally(vset)
    txids = [os.urandom(32) for _ in range(50)]
    first = VoteRecord(TxVote.create(SEEDS[0], CHAIN, 5, txids, []), 1)
    tally.add(first)
    assert (tally.batches_held, tally.batch_slots) == (1, 2)
    for k in range(1_000):
        again = VoteRecord(TxVote.create(SEEDS[0], CHAIN, 5, txids[k % 50 :] + txids[: k % 50], []), 1)
        assert tally.add(again) == ([], [], [])
        assert tally.add(first) == ([], [], [])
        assert tally.batches_held == 1 and tally.batch_slots <= 3
    for txid in txids:
        tally.compact(txid)
    assert tally.batches_held == 0 and tally.batch_slots <= 3
