"""Why a block's store transaction is not written on a worker thread (issue 13, "blocks off the
critical path"; docs/benchmarks.md, "The commit and the interpreter lock").

A block's store transaction held a node's event loop for tens of milliseconds (its UTXO delta
and transaction index: random keys, one B-tree page each; both are written behind the block now,
timecoin/store/coins.py and txindex.py). Handing it to a worker thread looked like the way to
keep the loop free. It is not, with py-lmdb under CPython: py-lmdb releases the
interpreter lock around every LMDB call (each put of a ``putmulti`` included), and a worker
that gives the lock up must wait for the busy main thread to give it back, which CPython does
only every switch interval (``sys.getswitchinterval()``, 5 ms). Under load a node's loop is
busy, so the worker's commit crawls. A shorter switch interval while the commit runs lets it
through at a price to the caller: the fourth case measures it (the way to try next, with the
ordering work an asynchronous commit needs: docs/benchmarks.md).

Group ``store-commit-thread``, identical writes in each (``ChainStore.write`` of
:data:`WRITES` txindex-like entries with random 32-byte keys into a store already holding
:data:`PRELOAD`): the commit on the calling thread; the commit on a worker thread while the
calling thread runs Python work the whole time (a busy event loop); the same with the switch
interval at :data:`SHORT_SWITCH_INTERVAL` during the commit; and the Python work alone for
:data:`BUSY_STEPS` steps. Each records the commit's seconds, the busy steps made per second
and its correctness check (every entry reads back)."""

from __future__ import annotations

import os
import sys
import threading
import time

import pytest

from timecoin.store.chainstore import ChainStore

TXINDEX = b"txindex"
PRELOAD = 200_000
"""Entries in the database before the timed writes (a node's index after some minutes of load)."""
WRITES = 2_000
"""Entries per timed store transaction (a sixth of a 2-s devnet block at 6,000 tx/s: the worker
case runs for seconds, the full block for tens of seconds)."""
SHORT_SWITCH_INTERVAL = 50e-6
"""Seconds; CPython's default is 5 ms."""
BUSY_STEPS = 200_000
"""Python steps the busy caller makes in the baseline (small ones, as an event loop's callbacks)."""


def _entries(count: int) -> list[tuple[bytes, bytes, bytes]]:
    return [(TXINDEX, os.urandom(32), os.urandom(16)) for _ in range(count)]


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    store = ChainStore.open(tmp_path_factory.mktemp("bench-store-thread"), unsafe_nosync=True)
    store.write(_entries(PRELOAD))
    yield store
    store.close()


def _all_stored(store: ChainStore, writes: list[tuple[bytes, bytes, bytes]]) -> bool:
    return all(store.get(TXINDEX, key) == value for _, key, value in writes)


def _busy_step(state: dict[int, int], i: int) -> None:
    state[i & 1023] = state.get(i & 1023, 0) + i


def commit_here(writes: list[tuple[bytes, bytes, bytes]], store: ChainStore) -> float:
    started = time.perf_counter()
    store.write(writes)
    return time.perf_counter() - started


def commit_on_worker_while_busy(
    writes: list[tuple[bytes, bytes, bytes]], store: ChainStore, switch_interval: float | None
) -> tuple[float, float]:
    """The commit on a worker thread (with the interpreter's switch interval at
    ``switch_interval`` seconds meanwhile, if given); the caller runs :func:`_busy_step` until
    it ends. Returns (seconds the commit took, busy steps made per second)."""
    done = threading.Event()
    took: list[float] = []

    def commit() -> None:
        started = time.perf_counter()
        store.write(writes)
        took.append(time.perf_counter() - started)
        done.set()

    worker = threading.Thread(target=commit)
    state: dict[int, int] = {}
    steps = 0
    default = sys.getswitchinterval()
    if switch_interval is not None:
        sys.setswitchinterval(switch_interval)
    try:
        started = time.perf_counter()
        worker.start()
        while not done.is_set():
            _busy_step(state, steps)
            steps += 1
        worker.join()
        elapsed = time.perf_counter() - started
    finally:
        sys.setswitchinterval(default)
    return took[0], steps / elapsed


def busy_alone() -> int:
    state: dict[int, int] = {}
    for i in range(BUSY_STEPS):
        _busy_step(state, i)
    return len(state)


def _setup(store: ChainStore, *rest: object):
    def setup() -> tuple[tuple[object, ...], dict[str, object]]:
        writes = _entries(WRITES)
        kept.append(writes)
        return (writes, store, *rest), {}

    kept: list[list[tuple[bytes, bytes, bytes]]] = []
    return setup, kept


@pytest.mark.benchmark(group="store-commit-thread")
def test_commit_on_the_calling_thread(benchmark, store):
    setup, kept = _setup(store)
    seconds = benchmark.pedantic(commit_here, setup=setup, rounds=3)
    correct = all(_all_stored(store, writes) for writes in kept)
    benchmark.extra_info.update({"writes": WRITES, "commit_s": seconds, "correct": correct})
    assert correct


@pytest.mark.parametrize("switch_interval", [None, SHORT_SWITCH_INTERVAL], ids=["default", "short"])
@pytest.mark.benchmark(group="store-commit-thread")
def test_commit_on_a_worker_while_the_caller_is_busy(benchmark, store, switch_interval):
    setup, kept = _setup(store, switch_interval)
    seconds, steps_per_s = benchmark.pedantic(commit_on_worker_while_busy, setup=setup, rounds=3)
    correct = all(_all_stored(store, writes) for writes in kept)
    benchmark.extra_info.update(
        {"writes": WRITES, "commit_s": seconds, "busy_steps_per_s": steps_per_s, "correct": correct}
    )
    assert correct


@pytest.mark.benchmark(group="store-commit-thread")
def test_busy_caller_alone_baseline(benchmark):
    started = time.perf_counter()
    slots = benchmark(busy_alone)
    stats = benchmark.stats  # None with --benchmark-disable (the test suite's single call)
    seconds = stats.stats.min if stats is not None else time.perf_counter() - started
    benchmark.extra_info.update(
        {"steps": BUSY_STEPS, "busy_steps_per_s": BUSY_STEPS / seconds, "correct": slots == 1024}
    )
    assert slots == 1024
