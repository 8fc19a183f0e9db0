"""VRF and leader order: native vs the pure-Python reference on identical inputs, in one run
(DESIGN §11).

Groups (read the ratios pytest-benchmark prints beside each mean within a group):

* ``vrf-prove``: one RFC 9381 proof, native vs reference.
* ``vrf-verify``: one verification, native vs reference.
* ``vrf-verify-256``: 256 proofs, one native batch on all cores and on one core, vs native one
  by one (256 calls); proposals arrive in batches during sync.
* ``leader-1000`` / ``leader-10000``: the full leader order of 1,000 and 10,000 masternodes,
  native vs reference.

Each benchmark records its correctness check in ``extra_info`` beside the timing.
"""

import hashlib

import pytest

from timecoin import crypto
from timecoin.masternode import leader
from timecoin.reference import leader as reference_leader
from timecoin.reference import vrf as reference_vrf

BATCH = 256
SK = hashlib.sha256(b"bench vrf key").digest()
PK = crypto.public_key(SK)
ALPHA = leader.vrf_alpha(hashlib.sha512(b"previous vrf output").digest(), 1_000_000, 0)
PROOF, OUTPUT = crypto.vrf_prove(SK, ALPHA)


def _record(benchmark, ok, items):
    benchmark.extra_info["correct"] = ok
    benchmark.extra_info["items"] = items
    assert ok


@pytest.fixture(scope="module")
def proofs():
    seeds = [hashlib.sha256(b"seed" + i.to_bytes(4, "little")).digest() for i in range(BATCH)]
    alphas = [leader.vrf_alpha(hashlib.sha512(i.to_bytes(4, "little")).digest(), i, 0) for i in range(BATCH)]
    pks = [crypto.public_key(s) for s in seeds]
    proved = [crypto.vrf_prove(s, a) for s, a in zip(seeds, alphas, strict=True)]
    return pks, [p for p, _ in proved], alphas, [o for _, o in proved]


def _masternodes(n):
    keys = [hashlib.sha256(b"mn" + i.to_bytes(4, "little")).digest() for i in range(n)]
    weights = [(1, 2, 4, 8)[i % 4] * (100 + i % 101) for i in range(n)]
    return keys, weights


@pytest.fixture(scope="module")
def set_1000():
    return _masternodes(1_000)


@pytest.fixture(scope="module")
def set_10000():
    return _masternodes(10_000)


SEED = hashlib.sha512(b"leader seed").digest()


@pytest.mark.benchmark(group="vrf-prove")
def test_vrf_prove_native(benchmark):
    got = benchmark(crypto.vrf_prove, SK, ALPHA)
    _record(benchmark, got == (PROOF, OUTPUT), 1)


@pytest.mark.benchmark(group="vrf-prove")
def test_vrf_prove_reference(benchmark):
    got = benchmark(reference_vrf.vrf_prove, SK, ALPHA)
    _record(benchmark, got == (PROOF, OUTPUT), 1)


@pytest.mark.benchmark(group="vrf-verify")
def test_vrf_verify_native(benchmark):
    got = benchmark(crypto.vrf_verify, PK, PROOF, ALPHA)
    _record(benchmark, got == OUTPUT, 1)


@pytest.mark.benchmark(group="vrf-verify")
def test_vrf_verify_reference(benchmark):
    got = benchmark(reference_vrf.vrf_verify, PK, PROOF, ALPHA)
    _record(benchmark, got == OUTPUT, 1)


@pytest.mark.benchmark(group="vrf-verify-256")
def test_vrf_verify_batch_native_all_cores(benchmark, proofs):
    pks, pis, alphas, outputs = proofs
    got = benchmark(crypto.vrf_verify_batch, pks, pis, alphas, parallel=True)
    _record(benchmark, got == outputs, BATCH)


@pytest.mark.benchmark(group="vrf-verify-256")
def test_vrf_verify_batch_native_one_core(benchmark, proofs):
    pks, pis, alphas, outputs = proofs
    got = benchmark(crypto.vrf_verify_batch, pks, pis, alphas, parallel=False)
    _record(benchmark, got == outputs, BATCH)


@pytest.mark.benchmark(group="vrf-verify-256")
def test_vrf_verify_native_one_by_one(benchmark, proofs):
    pks, pis, alphas, outputs = proofs

    def one_by_one():
        return [crypto.vrf_verify(*item) for item in zip(pks, pis, alphas, strict=True)]

    got = benchmark(one_by_one)
    _record(benchmark, got == outputs, BATCH)


def _bench_order(benchmark, impl, mn_set):
    keys, weights = mn_set
    got = benchmark(impl.leader_order, SEED, 777, keys, weights)
    want = leader.leader_order(SEED, 777, keys, weights)
    _record(benchmark, got == want and sorted(got) == list(range(len(keys))), len(keys))


@pytest.mark.benchmark(group="leader-1000")
def test_leader_order_1000_native(benchmark, set_1000):
    _bench_order(benchmark, leader, set_1000)


@pytest.mark.benchmark(group="leader-1000")
def test_leader_order_1000_reference(benchmark, set_1000):
    _bench_order(benchmark, reference_leader, set_1000)


@pytest.mark.benchmark(group="leader-10000")
def test_leader_order_10000_native(benchmark, set_10000):
    _bench_order(benchmark, leader, set_10000)


@pytest.mark.benchmark(group="leader-10000")
def test_leader_order_10000_reference(benchmark, set_10000):
    _bench_order(benchmark, reference_leader, set_10000)
