"""The native UTXO set read on one thread while another changes it (native/src/python/ledger.rs,
``UtxoSet``): a node checks a proposed block on a worker thread while its event loop connects
blocks and flushes coins (docs/consensus.md, "Block checks off the loop").

Reads share the set and a write waits for them, so neither side sees "already borrowed" (the
set was a plain pyo3 cell before: a write during a read on another thread raised) and a read
never sees half a write: a block prepared while another block is applied and rolled back again
and again leaves one of the two set hashes it can leave, never a third.
"""

from __future__ import annotations

import threading

from timecoin.ledger import UtxoSet
from timecoin.testing import utxogen as g

RULES = g.rules()
TRANSFERS = 1500
"""Transfers in the block read on the worker: tens of milliseconds of signatures per prepare."""
ROUNDS = 40


def _block(utxos: UtxoSet, height: int, first: int, count: int, value: int) -> bytes:
    """A valid block at ``height`` spending funding coins ``first .. first + count - 1`` (its
    coinbase pays key ``first``, so two such blocks never create the same coin)."""
    txs = g.sign_all(
        [
            g.unsigned_transfer([g.funding_outpoint(i)], [(value - 5000, 1)])
            for i in range(first, first + count)
        ],
        [[i] for i in range(first, first + count)],
    )
    coinbase = g.coinbase(height, ((100, first),))
    return g.assemble(txs, height, set_hash=g.set_hash_after(utxos, RULES), coinbase_tx=coinbase)


def test_a_block_is_prepared_on_a_thread_while_the_set_is_written():
    value = 100_000
    utxos = UtxoSet()
    utxos.load(g.funding(TRANSFERS + 1, value))
    big = _block(utxos, 1, 0, TRANSFERS, value)
    small = _block(utxos, 1, TRANSFERS, 1, value)
    before = utxos.set_hash()
    after_big = utxos.prepare_block(big, RULES, check_utxo_hash=False).utxo_set_hash
    applied = utxos.apply_block(small, RULES)
    after_both = utxos.prepare_block(big, RULES, check_utxo_hash=False).utxo_set_hash
    utxos.rollback(applied.undo)
    assert len({before, after_big, after_both}) == 3

    errors: list[BaseException] = []
    prepared = []
    done = threading.Event()

    def read() -> None:
        try:
            while not done.is_set():
                utxos.clear_signature_cache()  # each prepare verifies every signature again
                prepared.append(utxos.prepare_block(big, RULES, check_utxo_hash=False).utxo_set_hash)
        except BaseException as e:
            errors.append(e)

    worker = threading.Thread(target=read)
    worker.start()
    try:
        for _ in range(ROUNDS):
            applied = utxos.apply_block(small, RULES)
            utxos.take_dirty().delta()
            utxos.rollback(applied.undo)
            assert utxos.get(g.funding_outpoint(0).encode()) is not None
    finally:
        done.set()
        worker.join()
    assert errors == []
    assert prepared, "the worker prepared nothing"
    assert utxos.set_hash() == before
    last = utxos.prepare_block(big, RULES)
    utxos.commit_prepared(last)
    assert utxos.set_hash() == last.utxo_set_hash
    assert last.utxo_set_hash == after_big
    assert set(prepared) <= {after_big, after_both}
