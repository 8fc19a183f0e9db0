"""Finalized and accept records, per transaction or per step (issue 13, "persistence by batch";
timecoin/consensus/store.py; docs/benchmarks.md).

Group ``finality-records``, identical transactions in each case: :data:`TXS` one-input
transactions made final in steps of :data:`STEP` (a 25-ms vote flush at 6,000 tx/s), each step's
records written in one store transaction (the engine's ``Persist``), then deleted, after the
block that archives them all, by the node's :class:`~timecoin.store.sweeper.Sweeper`. Either one
finalized record and one accept record per transaction (the layout before) or one group record
of each per step (``encode_finalized_entry``, ``SignerState.accept``: the node's own code). Each
records milliseconds per :data:`TXS` transactions, the records written, and its correctness
check: every transaction was stored before the sweep, and nothing is left after it. The store
skips fsync, as the devnet does (``lmdb_unsafe_nosync``).
"""

from __future__ import annotations

import random
import struct
import time

import pytest

from timecoin.consensus.signer import SignerState
from timecoin.consensus.store import (
    ACCEPT_PREFIX,
    CONSENSUS_DB,
    FINALIZED_DB,
    encode_finalized_entry,
    finalized_group_key,
    load_finalized,
    load_signer_records,
)
from timecoin.store.chainstore import ChainStore
from timecoin.store.sweeper import Sweeper

TXS = 12_000
"""A 2-s devnet block at 6,000 tx/s."""
STEP = 150
TX_BYTES = 200
PROOF_BYTES = 45
"""A proof by reference of three voters (``encode_certificate_refs``)."""


def _transactions() -> list[tuple[bytes, bytes, bytes, bytes]]:
    """(txid, outpoint, transaction, proof) of each transaction, the same in every case."""
    rng = random.Random(13)
    return [
        (rng.randbytes(32), rng.randbytes(36), rng.randbytes(TX_BYTES), rng.randbytes(PROOF_BYTES))
        for _ in range(TXS)
    ]


def per_transaction(
    store: ChainStore, txs: list[tuple[bytes, bytes, bytes, bytes]]
) -> tuple[int, int, float]:
    """The layout before: a sequence-keyed record of each kind per transaction. Returns (records
    written, transactions stored before the sweep, seconds of writes and deletes)."""
    started = time.perf_counter()
    sweeper = Sweeper(store)
    keys = []
    for start in range(0, len(txs), STEP):
        writes: list[tuple[bytes, bytes, bytes | None]] = []
        for i in range(start, min(start + STEP, len(txs))):
            txid, outpoint, tx, proof = txs[i]
            key = struct.pack(">Q", i)
            writes.append((FINALIZED_DB, key, txid + struct.pack("<I", len(tx)) + tx + proof))
            writes.append((CONSENSUS_DB, ACCEPT_PREFIX + key, outpoint + txid))
            keys += [(FINALIZED_DB, key), (CONSENSUS_DB, ACCEPT_PREFIX + key)]
        store.write(writes)
    paused = time.perf_counter()
    stored = len(load_finalized(store))
    resumed = time.perf_counter()
    sweeper.queue(keys)
    sweeper.flush()
    return len(keys), stored, time.perf_counter() - resumed + paused - started


def per_step(store: ChainStore, txs: list[tuple[bytes, bytes, bytes, bytes]]) -> tuple[int, int, float]:
    """One group record of each kind per step. Returns (records written, transactions stored
    before the sweep, seconds of writes and deletes)."""
    started = time.perf_counter()
    sweeper, signer = Sweeper(store), SignerState()
    keys, outpoints = [], []
    for n, start in enumerate(range(0, len(txs), STEP)):
        step = txs[start : start + STEP]
        group = finalized_group_key(n)
        writes: list[tuple[bytes, bytes, bytes | None]] = [
            (FINALIZED_DB, group, b"".join(encode_finalized_entry(t, tx, p) for t, _, tx, p in step))
        ]
        writes += signer.accept((o, t) for t, o, _, _ in step)
        keys += [(FINALIZED_DB, group), *((db, k) for db, k, _ in writes[1:])]
        outpoints += [o for _, o, _, _ in step]
        store.write(writes)
    paused = time.perf_counter()
    stored = len(load_finalized(store))
    resumed = time.perf_counter()
    swept = signer.forget(outpoints)
    assert len(swept) == len(keys) // 2  # every accept record, once all its outpoints are spent
    sweeper.queue([(FINALIZED_DB, k) for db, k in keys if db == FINALIZED_DB] + swept)
    sweeper.flush()
    return len(keys), stored, time.perf_counter() - resumed + paused - started


@pytest.mark.parametrize("layout", [per_step, per_transaction], ids=["per-step", "per-transaction-baseline"])
@pytest.mark.benchmark(group="finality-records")
def test_finality_records(benchmark, tmp_path_factory, layout):
    txs = _transactions()
    results = []

    def setup():
        store = ChainStore.open(tmp_path_factory.mktemp("records"), unsafe_nosync=True)
        return (store, txs), {}

    def run(store: ChainStore, txs: list[tuple[bytes, bytes, bytes, bytes]]) -> None:
        records, stored, elapsed = layout(store, txs)
        left = len(list(store.items(FINALIZED_DB))) + len(load_signer_records(store))
        store.close()
        results.append((records, stored, left, elapsed))

    benchmark.pedantic(run, setup=setup, rounds=5)
    records, stored, left, _ = results[-1]
    correct = stored == len(txs) and left == 0
    benchmark.extra_info.update(
        {
            "transactions": len(txs),
            "records_written": records,
            "ms_per_block": round(min(r[3] for r in results) * 1000, 1),
            "correct": correct,
        }
    )
    assert correct
