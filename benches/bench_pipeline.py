"""The single-node validation pipeline on one-input transfers (issue 13's "≥ 100,000 tx/s, both
cores"): ``UtxoSet.apply_block`` of a block of 20,000 signed transfers, 1 input and 2 outputs
each, against a set holding their funding coins, every signature verified afresh (the signature
cache is cleared before each round): decode, stateless rules, lookups, Ed25519 batch
verification on both cores, the LtHash and the set update.

Compared in the same run, on the same signatures, with PyNaCl (libsodium) verifying them one by
one on one core, which is what the pipeline would cost if verification alone were done the
usual way; ``extra_info['tx_per_s']`` is the pipeline's rate, ``extra_info['ratio']`` the
PyNaCl time over the pipeline's. Each benchmark records its correctness check.
"""

from __future__ import annotations

import nacl.exceptions
import nacl.signing
import pytest
import timecoin_native
import workloads

from timecoin.ledger import UtxoSet
from timecoin.testing import utxogen as g

COUNT = 20_000
VALUE = 1_000_000
RULES = g.rules()
_times: dict[str, float] = {}


class OneInputBlock:
    """A set of ``COUNT`` funding coins and a block spending each in a 1-input, 2-output
    transfer back to its owner (base fee only)."""

    def __init__(self) -> None:
        self.utxos = UtxoSet()
        self.utxos.load(g.funding(COUNT, VALUE))
        sent = VALUE - RULES.min_fee_base
        unsigned = [
            g.unsigned_transfer([g.funding_outpoint(i)], [(sent // 2, i), (sent - sent // 2, i)])
            for i in range(COUNT)
        ]
        self.txs = g.sign_all(unsigned, [[i] for i in range(COUNT)])
        self.block = g.assemble(self.txs, 1, set_hash=g.set_hash_after(self.utxos, RULES))
        self.hash_before = self.utxos.set_hash()
        self.undo: bytes | None = None

    def reset(self) -> None:
        if self.undo is not None:
            self.utxos.rollback(self.undo)
            self.undo = None
        self.utxos.clear_signature_cache()


@pytest.fixture(scope="module")
def workload() -> OneInputBlock:
    return OneInputBlock()


@pytest.mark.benchmark(group="pipeline-1in")
def test_pipeline_native_one_input(benchmark, workload):
    def apply() -> object:
        applied = workload.utxos.apply_block(workload.block, RULES)
        workload.undo = applied.undo
        return applied

    applied = workloads.timed_fastest(benchmark, apply, workload.reset, COUNT, rounds=5)
    _times["native"] = COUNT / benchmark.extra_info["tx_per_s"]
    ok = (
        len(applied.txids) == COUNT + 1
        and applied.fees == COUNT * RULES.min_fee_base
        and workload.utxos.set_hash() != workload.hash_before
    )
    workload.reset()
    ok = ok and workload.utxos.set_hash() == workload.hash_before
    benchmark.extra_info["correct"] = ok
    assert ok


@pytest.mark.benchmark(group="pipeline-1in")
def test_signatures_pynacl_one_by_one(benchmark, workload):
    """The same 20,000 signatures verified by libsodium through PyNaCl, one call each."""
    items = []
    for tx in workload.txs:
        (witness,) = tx.witnesses
        message = timecoin_native.sighash(g.CHAIN_ID, int(RULES.network), tx.txid, 0)
        items.append((nacl.signing.VerifyKey(witness.public_key), message, witness.signature))

    def verify_all() -> int:
        good = 0
        for key, message, signature in items:
            try:
                key.verify(message, signature)
                good += 1
            except nacl.exceptions.BadSignatureError:
                pass
        return good

    good = workloads.timed_fastest(benchmark, verify_all, lambda: None, COUNT, rounds=3)
    best = COUNT / benchmark.extra_info["tx_per_s"]
    if "native" in _times:
        benchmark.extra_info["ratio"] = round(best / _times["native"], 2)
    benchmark.extra_info["correct"] = good == COUNT
    assert good == COUNT
