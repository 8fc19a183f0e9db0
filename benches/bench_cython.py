"""The Cython-compiled hot modules (setup.py ``HOT_MODULES``, DESIGN §2) against their own
pure-Python source, on the same inputs in one run.

For each module the same workload runs through the installed module (compiled, unless the
build was ``TIMECOIN_PURE_PYTHON=1``) and through its ``.py`` source loaded directly
(:func:`timecoin.testing.pure.load_pure`); ``extra_info`` records whether the installed one is
compiled and whether both gave identical outputs (asserted):

* ``framing``: 20,000 frames of 110 bytes (a one-item heartbeat batch each) decoded from 64 KiB
  reads (``FrameDecoder.feed``, per frame).
* ``items``: a full VOTE_BATCH payload (1,024 items of 100 bytes) decoded and encoded back
  (``decode_items``/``encode_items``, per item).
* ``seen``: 10,000 gossip items through a seen-cache of capacity 4,000, then the last 3,000
  again (``SeenCache.add_items``: one BLAKE2b key and one set probe per item).
* ``tally``: 16 voters' batches over 4,096 txids, 10 % rejects, a quarter of the txids not held
  (``Tally.count``, per decision: counting, quorum crossing, parking).
* ``settle``: a committed block of 8,000 final transactions (1–2 inputs, certificates by
  reference to 3 of 48 stored vote batches) and 200 not final here, over a finalized pool twice
  that size: ``archive_final``, ``settle_spent`` and the signer's ``forget_accepts``, each on
  fresh copies of the state (the copies, C-speed, are timed in both builds).

``test_cython_ratios`` times both builds back to back (best of several alternating rounds) and
prints the ratio per module; docs/benchmarks.md ("Cython") has the figures. Run with
``pytest benches/bench_cython.py --benchmark-enable --benchmark-disable-gc -s``.
"""

from __future__ import annotations

import collections
import gc
import random
import time
from collections.abc import Callable
from types import ModuleType
from typing import Any

import pytest
import workloads

import timecoin.consensus.settle as settle
import timecoin.consensus.tally as tally
import timecoin.p2p.framing as framing
import timecoin.p2p.items as items
import timecoin.p2p.seen as seen
from timecoin.consensus.messages import TxVote
from timecoin.consensus.txstate import FinalEntry
from timecoin.consensus.validators import ValidatorSet
from timecoin.p2p import messages as m
from timecoin.testing.pure import is_compiled, load_pure

FRAMES = 20_000
READ_SIZE = 65_536
BATCH_ITEMS = m.MAX_VOTE_BATCH_ITEMS
SEEN_ITEMS = 10_000
SEEN_CAPACITY = 4_000
VOTERS = 16
TXIDS = 4_096

_rng = random.Random(13)
READS = workloads.frame_reads(FRAMES, READ_SIZE)
# The frame's item: frame_reads draws it from its own Random(13); the draws below stay as they were.
_rng.randbytes(100)
BATCH = [_rng.randbytes(100) for _ in range(BATCH_ITEMS)]
BATCH_PAYLOAD = m.encode_items(BATCH)
GOSSIP = [_rng.randbytes(150) for _ in range(SEEN_ITEMS)]
_keys = sorted(_rng.randbytes(32) for _ in range(VOTERS))
VSET = ValidatorSet(1, tuple(_keys), tuple(range(1, VOTERS + 1)))
_txids = sorted(_rng.randbytes(32) for _ in range(TXIDS))
HELD = frozenset(_txids[: TXIDS * 3 // 4])
VOTES = []
for _key in _keys:
    _rejects = frozenset(t for t in _txids if _rng.random() < 0.1)
    VOTES.append(
        TxVote(1, _key, tuple(t for t in _txids if t not in _rejects), tuple(sorted(_rejects)), bytes(64))
    )


def run_framing(module: ModuleType) -> Any:
    return workloads.run_framing(module, READS)


def run_items(module: ModuleType) -> Any:
    decoded = module.decode_items(BATCH_PAYLOAD, m.MAX_VOTE_BATCH_ITEMS, m.MAX_VOTE_ITEM, "VOTE_BATCH")
    return decoded, module.encode_items(decoded)


def run_seen(module: ModuleType) -> Any:
    cache = module.SeenCache(SEEN_CAPACITY)
    first = cache.add_items(GOSSIP)
    again = cache.add_items(GOSSIP[-3_000:])
    return first, again, len(cache)


def run_tally(module: ModuleType) -> Any:
    t = module.Tally(VSET)
    counted = [t.count(module.VoteRecord(vote, VSET.weight(vote.voter)), HELD) for vote in VOTES]
    return counted, t.parked, len(t), [t.weights(txid) for txid in _txids]


SETTLE_FINAL = 8_000
SETTLE_UNKNOWN = 200
SETTLE_BATCHES = 48
_records = [tally.VoteRecord(VOTES[i % VOTERS], 1) for i in range(SETTLE_BATCHES)]
_final: dict[bytes, FinalEntry] = {}
_record_refs: dict[bytes, int] = {}
_batch_refs = [0] * SETTLE_BATCHES
_spent_final: dict[bytes, bytes] = {}
for _i in range(2 * SETTLE_FINAL):
    _txid = _rng.randbytes(32)
    _inputs = tuple(_rng.randbytes(36) for _ in range(1 + _i % 2))
    _picked = sorted(_rng.sample(range(SETTLE_BATCHES), 3))
    for _j in _picked:
        _batch_refs[_j] += 1
    _cert = tally.CertificateRefs(_txid, 1, tuple(_records[j] for j in _picked), (0, 1, 2))
    _key = b"f" + (_i // 100).to_bytes(4, "big")
    _record_refs[_key] = _record_refs.get(_key, 0) + 1
    _final[_txid] = FinalEntry(_rng.randbytes(200), _cert, _inputs, _key)
    for _o in _inputs:
        _spent_final[_o] = _txid
BLOCK_TXIDS = (
    bytes(32),
    *list(_final)[:SETTLE_FINAL],
    *(_rng.randbytes(32) for _ in range(SETTLE_UNKNOWN)),
)
_spent = [o for t in BLOCK_TXIDS[1 : SETTLE_FINAL + 1] for o in _final[t].inputs]
_others = [o for t in list(_final)[SETTLE_FINAL:] for o in _final[t].inputs]
SPENDERS = {o: {_rng.randbytes(32)} for o in _spent[::50] + _others[::4]}
SNOWBALLS: dict[bytes, object] = {o: None for o in _spent[::100] + _others[::40]}
ACCEPTS = {o: _spent_final[o] for o in _spent + _others}
ACCEPT_KEYS = {o: b"a" + (n // 50).to_bytes(4, "big") for n, o in enumerate(ACCEPTS)}
ACCEPT_REFS: dict[bytes, int] = {}
for _key in ACCEPT_KEYS.values():
    ACCEPT_REFS[_key] = ACCEPT_REFS.get(_key, 0) + 1
REJECTED = collections.OrderedDict((t, "conflicts-with-final") for t in BLOCK_TXIDS[1:400:7])


def run_settle(module: ModuleType) -> Any:
    finalized, spent_final = dict(_final), dict(_spent_final)
    batches = {r: module.StoredBatch(j, _batch_refs[j]) for j, r in enumerate(_records)}
    rejected = collections.OrderedDict(REJECTED)
    a = module.archive_final(BLOCK_TXIDS, finalized, rejected, dict(_record_refs), batches, spent_final)
    violations, contested = module.settle_spent(a.spent, spent_final, SPENDERS, dict(SNOWBALLS))
    released = module.forget_accepts(a.spent, dict(ACCEPTS), dict(ACCEPT_KEYS), dict(ACCEPT_REFS))
    return (
        (a.spent, a.unknown, a.records, a.batches, a.archived_bytes),
        (violations, contested, released),
        (len(finalized), len(spent_final), len(rejected), sorted(b.refs for b in batches.values())),
    )


WORKLOADS: dict[str, tuple[ModuleType, Callable[[ModuleType], Any]]] = {
    "framing": (framing, run_framing),
    "items": (items, run_items),
    "seen": (seen, run_seen),
    "settle": (settle, run_settle),
    "tally": (tally, run_tally),
}

_pure_outputs: dict[str, Any] = {}


def _pure_output(name: str) -> Any:
    if name not in _pure_outputs:
        module, work = WORKLOADS[name]
        _pure_outputs[name] = work(load_pure(module))
    return _pure_outputs[name]


@pytest.mark.parametrize("build", ["installed", "pure"])
@pytest.mark.parametrize("name", sorted(WORKLOADS))
def test_hot_module(benchmark, name, build):
    module, work = WORKLOADS[name]
    benchmark.group = f"cython-{name}"
    target = module if build == "installed" else load_pure(module)
    out = benchmark(work, target)
    benchmark.extra_info["compiled"] = is_compiled(target)
    benchmark.extra_info["identical_to_pure"] = out == _pure_output(name)
    assert benchmark.extra_info["identical_to_pure"]


def _seconds(work: Callable[[ModuleType], Any], module: ModuleType) -> float:
    """One run's wall time, the cyclic collector held off (its pauses land on whichever build
    happens to be running)."""
    gc.collect()
    gc.disable()
    try:
        t0 = time.perf_counter()
        work(module)
        return time.perf_counter() - t0
    finally:
        gc.enable()


def test_cython_ratios(benchmark):
    """Installed vs pure per module, alternating rounds in one process; the ratios are printed
    and kept in ``extra_info`` (not asserted: speed is not asserted in tests)."""
    rounds = 15 if benchmark.enabled else 1

    def measure() -> dict[str, float]:
        ratios = {}
        for name, (module, work) in WORKLOADS.items():
            pure = load_pure(module)
            assert work(module) == work(pure)
            installed_s = pure_s = float("inf")
            for _ in range(rounds):
                installed_s = min(installed_s, _seconds(work, module))
                pure_s = min(pure_s, _seconds(work, pure))
            ratios[name] = pure_s / installed_s
        return ratios

    ratios = benchmark.pedantic(measure, rounds=1, iterations=1)
    for name, ratio in ratios.items():
        module = WORKLOADS[name][0]
        benchmark.extra_info[f"{name}_ratio"] = round(ratio, 2)
        benchmark.extra_info[f"{name}_compiled"] = is_compiled(module)
        print(
            f"\n{name}: {'compiled' if is_compiled(module) else 'interpreted'} {ratio:.2f}x the pure source"
        )
