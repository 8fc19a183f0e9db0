"""Crypto hot paths: native vs baselines on identical inputs, in one run (DESIGN §11).

Groups (read the ratios pytest-benchmark prints beside each mean within a group):

* ``verify-1024``: one native batch of 1,024 signatures on one core and on all cores, vs PyNaCl
  (libsodium) verifying them one by one. Goal: ≥ 3× per core, ≥ 5× with both cores.
* ``merkle-100k``: native merkle root of 100,000 txids vs the reference Python loop over the
  ``blake3`` package. Goal: ≥ 30×.

Each benchmark records its correctness check in ``extra_info`` beside the timing. The inputs come
from :mod:`workloads`, shared with the asv suites.
"""

import nacl.bindings
import nacl.signing
import pytest
import workloads

from timecoin import crypto
from timecoin.reference import crypto as reference

BATCH = 1024
TXIDS = 100_000


@pytest.fixture(scope="module")
def signed_batch():
    return workloads.signed_batch(BATCH)


@pytest.fixture(scope="module")
def txids():
    return workloads.txids(TXIDS)


def _record(benchmark, ok, items):
    benchmark.extra_info["correct"] = ok
    benchmark.extra_info["items"] = items
    assert ok


@pytest.mark.benchmark(group="verify-1024")
def test_verify_batch_native_one_core(benchmark, signed_batch):
    result = benchmark(crypto.verify_batch, *signed_batch, parallel=False)
    _record(benchmark, result == [True] * BATCH, BATCH)


@pytest.mark.benchmark(group="verify-1024")
def test_verify_batch_native_all_cores(benchmark, signed_batch):
    result = benchmark(crypto.verify_batch, *signed_batch, parallel=True)
    _record(benchmark, result == [True] * BATCH, BATCH)


@pytest.mark.benchmark(group="verify-1024")
def test_verify_pynacl_one_by_one(benchmark, signed_batch):
    pks, msgs, sigs = signed_batch

    def one_by_one():
        out = []
        for pk, m, s in zip(pks, msgs, sigs, strict=True):
            try:
                nacl.bindings.crypto_sign_open(s + m, pk)
                out.append(True)
            except nacl.exceptions.BadSignatureError:
                out.append(False)
        return out

    result = benchmark(one_by_one)
    _record(benchmark, result == [True] * BATCH, BATCH)


@pytest.mark.benchmark(group="merkle-100k")
def test_merkle_root_native(benchmark, txids):
    root = benchmark(crypto.merkle_root, txids)
    _record(benchmark, root == crypto.merkle_root(txids, parallel=False), TXIDS)


@pytest.mark.benchmark(group="merkle-100k")
def test_merkle_root_native_one_core(benchmark, txids):
    root = benchmark(crypto.merkle_root, txids, parallel=False)
    _record(benchmark, root == crypto.merkle_root(txids), TXIDS)


@pytest.mark.benchmark(group="merkle-100k")
def test_merkle_root_python_blake3_loop(benchmark, txids):
    root = benchmark(reference.merkle_root, txids)
    _record(benchmark, root == crypto.merkle_root(txids), TXIDS)
