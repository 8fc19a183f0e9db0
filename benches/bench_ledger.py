"""Ledger hot path: the single-node validation pipeline (decode + verify + apply) in one run,
native vs the pure-Python reference (DESIGN §11: ≥ 50,000 tx/s goal; ≥ 20,000 tx/s target on
the 2-core benchmark machine), and the memory of the UTXO set (goal ≤ 200 MB per 1M UTXOs).

Groups (read ``extra_info['tx_per_s']``; the ratio native/reference is per transaction):

* ``ledger-10k``: ``UtxoSet.apply_block`` of a block of 10,000 signed transfers (2 inputs,
  2 outputs each, 20,000 signatures) against a set holding their 20,000 funding coins; the
  apply alone, apply + rollback, and ``check_transactions`` (mempool admission) of the same txs.
* ``ledger-500``: the same pipeline on a 500-transaction block, native and reference.
* ``utxo-memory``: RSS growth of a fresh process loading 1,000,000 coins (in extra_info).

Sets are built and blocks signed outside the timing; each round starts from the same set
(rolled back in the untimed setup). Each benchmark records its correctness check. The workload
(:class:`workloads.LedgerWorkload`) is shared with the asv suites.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable

import pytest
import workloads

from timecoin.reference import utxo as reference
from timecoin.testing import utxogen as g

BIG = 10_000
SMALL = 500
RULES = g.rules()
MEMORY_COINS = 1_000_000
MEMORY_GOAL = 200_000_000
"""bytes per 1M UTXOs (DESIGN §11)."""


Workload = workloads.LedgerWorkload


@pytest.fixture(scope="module")
def big() -> Workload:
    return Workload(0, BIG, with_reference=False)


@pytest.fixture(scope="module")
def small() -> Workload:
    return Workload(2 * BIG, SMALL, with_reference=True)


def _record(benchmark, ok: bool) -> None:
    benchmark.extra_info["correct"] = ok
    assert ok


def _rollback_native(w: Workload) -> Callable[[], None]:
    """Undoes the last apply and forgets the verified signatures: every round verifies afresh."""

    def setup() -> None:
        if w.native.set_hash() != w.hash_before:
            w.native.rollback(w.last_undo)  # type: ignore[attr-defined]
        w.native.clear_signature_cache()

    return setup


def _apply_native(w: Workload) -> Callable[[], object]:
    def apply() -> object:
        applied = w.native.apply_block(w.block, RULES)
        w.last_undo = applied.undo  # type: ignore[attr-defined]
        return applied

    return apply


@pytest.mark.benchmark(group="ledger-10k")
def test_apply_block_native_10k(benchmark, big):
    applied = workloads.timed_fastest(benchmark, _apply_native(big), _rollback_native(big), BIG, rounds=5)
    ok = applied.fees == big.fees and len(applied.txids) == BIG + 1 and len(big.native) == 2 * BIG + 1
    _rollback_native(big)()
    _record(benchmark, ok and big.native.set_hash() == big.hash_before)


@pytest.mark.benchmark(group="ledger-10k")
def test_apply_block_admitted_native_10k(benchmark, big):
    """What a node does: the transactions were verified at mempool admission (untimed here), so
    applying the block finds every signature in the set's signature cache."""
    rollback = _rollback_native(big)

    def setup() -> None:
        rollback()
        assert all(v.ok for v in big.native.check_transactions(big.raw_txs, RULES, 1))

    applied = workloads.timed_fastest(benchmark, _apply_native(big), setup, BIG, rounds=5)
    ok = applied.fees == big.fees and big.native.signature_cache_size >= BIG
    rollback()
    _record(benchmark, ok and big.native.set_hash() == big.hash_before)


@pytest.mark.benchmark(group="ledger-10k")
def test_apply_and_rollback_native_10k(benchmark, big):
    def both() -> bytes:
        applied = big.native.apply_block(big.block, RULES)
        big.native.rollback(applied.undo)
        return big.native.set_hash()

    after = workloads.timed_fastest(benchmark, both, big.native.clear_signature_cache, BIG, rounds=5)
    big.native.take_delta()
    _record(benchmark, after == big.hash_before and big.native.take_delta() == [])


@pytest.mark.benchmark(group="ledger-10k")
def test_check_transactions_native_10k(benchmark, big):
    verdicts = workloads.timed_fastest(
        benchmark,
        lambda: big.native.check_transactions(big.raw_txs, RULES, 1),
        big.native.clear_signature_cache,
        BIG,
        rounds=5,
    )
    _record(benchmark, all(v.ok for v in verdicts) and sum(v.fee for v in verdicts) == big.fees)


@pytest.mark.benchmark(group="ledger-500")
def test_apply_block_native_500(benchmark, small):
    apply, rollback = _apply_native(small), _rollback_native(small)
    applied = workloads.timed_fastest(benchmark, apply, rollback, SMALL, rounds=20)
    _rollback_native(small)()
    _record(benchmark, applied.fees == small.fees and small.native.set_hash() == small.hash_before)


@pytest.mark.benchmark(group="ledger-500")
def test_apply_block_reference_500(benchmark, small):
    ref = small.reference
    state: dict[str, bytes] = {}

    def setup() -> None:
        if "undo" in state:
            ref.rollback(state.pop("undo"))

    def apply() -> reference.AppliedBlock:
        applied = ref.apply_block(small.block, RULES)
        state["undo"] = applied.undo
        return applied

    applied = workloads.timed_fastest(benchmark, apply, setup, SMALL, rounds=1)
    native = small.native.apply_block(small.block, RULES)
    ok = applied.undo == native.undo and ref.set_hash() == small.native.set_hash()
    small.native.rollback(native.undo)
    setup()
    _record(benchmark, ok and applied.fees == small.fees)


_MEMORY_PROBE = """
import json, os, sys
from timecoin.ledger import UtxoSet

def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

n = int(sys.argv[1])
coin = bytes(8) + bytes(range(32)) + bytes(9)
entries = [(i.to_bytes(32, "little") + (i % 3).to_bytes(4, "little"), coin) for i in range(n)]
s = UtxoSet()
before = rss()
s.load(entries)
grown = rss() - before
print(json.dumps({"rss_growth": grown, "memory_usage": s.memory_usage(), "len": len(s)}))
"""


@pytest.mark.benchmark(group="utxo-memory")
def test_memory_per_million_utxos(benchmark):
    def probe() -> dict[str, int]:
        out = subprocess.run(
            [sys.executable, "-c", _MEMORY_PROBE, str(MEMORY_COINS)],
            check=True,
            capture_output=True,
            text=True,
        )
        return json.loads(out.stdout)

    result = benchmark.pedantic(probe, rounds=1, iterations=1)
    benchmark.extra_info.update(result)
    benchmark.extra_info["mb_per_million"] = round(result["rss_growth"] / 1e6 * 1_000_000 / MEMORY_COINS, 1)
    _record(
        benchmark,
        result["len"] == MEMORY_COINS
        and result["rss_growth"] <= MEMORY_GOAL
        and abs(result["memory_usage"] - result["rss_growth"]) < 0.15 * result["rss_growth"],
    )
