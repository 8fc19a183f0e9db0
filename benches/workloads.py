"""The benchmark workloads, built once here and measured by both suites: the pytest-benchmark
suites (``benches/bench_*.py``: ratios within one run) and airspeed velocity
(``benches/asv_benchmarks/``: history over commits, ``.ci/bench``; docs/benchmarks.md "History
and the regression gate"), and, through :mod:`callgrind`, the instruction counts the gate reads.

Every builder is deterministic (fixed seeds and hashes), so two commits measure the same input.
``sys.path`` holds ``benches/`` for both suites (pytest: ``pythonpath`` in pyproject.toml; asv:
``benches/asv_benchmarks/__init__.py``), so this module is imported as ``workloads``.
"""

from __future__ import annotations

import gc
import hashlib
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import timecoin_native

from timecoin import crypto, gctune
from timecoin.core.types import OutPoint, Transaction, TxOut, sign_encoded_transactions
from timecoin.ledger import UtxoSet
from timecoin.testing import utxogen as g

__all__ = [
    "CALLGRIND",
    "CORE_BATCH",
    "CORE_RATE",
    "CORE_TRANSFERS",
    "CoreRun",
    "consensus_core",
    "LEDGER_VALUE",
    "LedgerWorkload",
    "MAGIC",
    "frame_reads",
    "run_framing",
    "signed_batch",
    "timed_fastest",
    "submit_raws",
    "txids",
]

LEDGER_VALUE = 1_000_000
"""sat of each funding coin of the ledger workloads."""
MAGIC = b"DTME"
"""Network magic of the framing workload's frames."""
CHAIN_ID = hashlib.sha256(b"bench chain").digest()
CORE_TRANSFERS = 8000
"""Transfers the consensus-core workload offers (one per genesis account)."""
CORE_RATE = 6000
"""Transactions per simulated second it offers (issue 13's 6,000 tx/s target)."""
CORE_BATCH = 75
"""Transactions per submission: the load generator's batch per node per 50 ms at 6,000 tx/s."""


def _h(*parts: object) -> bytes:
    return hashlib.sha256(repr(parts).encode()).digest()


def signed_batch(n: int) -> tuple[list[bytes], list[bytes], list[bytes]]:
    """(public keys, 128-byte messages, signatures) of ``n`` Ed25519 signatures by ``n`` keys."""
    seeds = [hashlib.sha256(b"seed" + i.to_bytes(4, "little")).digest() for i in range(n)]
    msgs = [hashlib.sha256(b"msg" + i.to_bytes(4, "little")).digest() * 4 for i in range(n)]
    pks = [crypto.public_key(s) for s in seeds]
    sigs = [crypto.sign(s, m) for s, m in zip(seeds, msgs, strict=True)]
    return pks, msgs, sigs


def txids(n: int) -> list[bytes]:
    """``n`` distinct 32-byte txids (SHA-256 of the index)."""
    return [hashlib.sha256(i.to_bytes(4, "little")).digest() for i in range(n)]


def _transfers(first_coin: int, count: int) -> list[Transaction]:
    """``count`` transfers, tx i spending funding coins first+2i and first+2i+1 into 2 outputs."""
    rules = g.rules()
    unsigned, signers = [], []
    sent = (2 * LEDGER_VALUE - rules.min_fee_base) * 1000 // 1001 - 1
    for i in range(count):
        a, b = first_coin + 2 * i, first_coin + 2 * i + 1
        unsigned.append(
            g.unsigned_transfer(
                [g.funding_outpoint(a), g.funding_outpoint(b)], [(sent // 2, a), (sent - sent // 2, b)]
            )
        )
        signers.append([a, b])
    return g.sign_all(unsigned, signers)


class LedgerWorkload:
    """A UTXO set funded for one block of ``count`` signed transfers (2 inputs, 2 outputs each),
    the block, and its transactions encoded; with ``with_reference``, the pure-Python
    reference set loaded alike (``reference``)."""

    def __init__(self, first_coin: int, count: int, with_reference: bool = False) -> None:
        from timecoin.reference import utxo as reference

        self.rules = g.rules()
        entries = g.funding(2 * count, LEDGER_VALUE, start=first_coin)
        self.count = count
        self.native = UtxoSet()
        self.native.load(entries)
        self.txs = _transfers(first_coin, count)
        self.raw_txs = [tx.encode() for tx in self.txs]
        self.block = g.assemble(self.txs, 1, set_hash=g.set_hash_after(self.native, self.rules))
        self.fees = count * (2 * LEDGER_VALUE - sum(o.value for o in self.txs[0].outputs))
        self.reference: Any = None
        if with_reference:
            self.reference = reference.UtxoSet()
            self.reference.load(entries)
        self.hash_before = self.native.set_hash()

    def apply_and_rollback(self) -> bytes:
        """Verifies and applies the block, rolls it back; the set hash after (= before)."""
        self.native.clear_signature_cache()
        applied = self.native.apply_block(self.block, self.rules)
        self.native.rollback(applied.undo)
        return self.native.set_hash()

    def check_transactions(self) -> list[Any]:
        """Mempool admission of the block's transactions, every signature verified afresh."""
        self.native.clear_signature_cache()
        return self.native.check_transactions(self.raw_txs, self.rules, 1)


def submit_raws(n: int) -> list[bytes]:
    """``n`` signed one-input one-output transfers (197 bytes each): the load generator's shape."""
    unsigned = [
        Transaction.transfer([OutPoint(_h("prev", i), 0)], [TxOut(10_000 + i, _h("to", i))]).encode()
        for i in range(n)
    ]
    return sign_encoded_transactions(unsigned, [[_h("seed", i)] for i in range(n)], CHAIN_ID, 2)


def frame_reads(frames: int, read_size: int = 65_536) -> list[bytes]:
    """A stream of ``frames`` frames of 110 bytes (a one-item heartbeat batch each), cut into
    ``read_size``-byte reads as a socket delivers them."""
    import random

    from timecoin.p2p import framing
    from timecoin.p2p import messages as m

    rng = random.Random(13)
    frame = framing.encode_frame(MAGIC, m.MessageType.HEARTBEAT_BATCH, m.encode_items([rng.randbytes(100)]))
    stream = frame * frames
    return [stream[i : i + read_size] for i in range(0, len(stream), read_size)]


def run_framing(module: Any, reads: list[bytes]) -> list[Any]:
    """Every frame of ``reads`` through a fresh ``module.FrameDecoder`` (the installed module or
    its pure source)."""
    from timecoin.p2p import messages as m

    decoder = module.FrameDecoder(MAGIC, m.FRAME_LIMITS)
    return [frame for read in reads for frame in decoder.feed(read)]


# -- instruction-count workloads (benches/callgrind.py) ------------------------------------------
# Each returns (the call to count, its arguments built beforehand). The calls are single-threaded
# paths: callgrind counts the instructions of the thread inside the toggled function, and work
# handed to other threads would be missed or counted with their spin loops.


def _cg_verify_batch() -> Callable[[], object]:
    pks, msgs, sigs = signed_batch(256)
    return lambda: crypto.verify_batch(pks, msgs, sigs, parallel=False)


def _cg_merkle_root() -> Callable[[], object]:
    ids = txids(10_000)
    return lambda: crypto.merkle_root(ids, parallel=False)


def _cg_vrf_prove() -> Callable[[], object]:
    sk = hashlib.sha256(b"bench vrf key").digest()
    alphas = [hashlib.sha512(i.to_bytes(4, "little")).digest() for i in range(16)]
    return lambda: [crypto.vrf_prove(sk, a) for a in alphas]


def _cg_frame_decoder() -> Callable[[], object]:
    from timecoin.p2p import framing

    reads = frame_reads(2_000, 4_096)
    return lambda: run_framing(framing, reads)


CALLGRIND: dict[str, tuple[str, Callable[[], Callable[[], object]]]] = {
    "verify_batch_256": ("*__pyfunction_verify_batch*", _cg_verify_batch),
    "merkle_root_10k": ("*__pyfunction_merkle_root*", _cg_merkle_root),
    "vrf_prove_16": ("*__pyfunction_vrf_prove*", _cg_vrf_prove),
    "frame_decoder_2k": ("*FrameDecoder_3feed", _cg_frame_decoder),
}
"""name → (the function-name pattern callgrind counts inside, ``--toggle-collect``; a builder of
the call). The patterns name the pyo3 entry points of the native crate and the Cython method."""


def timed_fastest(
    benchmark: Any, fn: Callable[[], object], setup: Callable[[], None], txs: int, rounds: int
) -> object:
    """Runs ``fn`` under pytest-benchmark's pedantic timing with an untimed ``setup`` before each
    round; records ``txs`` and tx/s of the fastest round in ``extra_info`` (also when benchmarks
    are disabled and it runs once); returns the last round's result."""
    times: list[float] = []
    result: list[object] = []

    def run() -> None:
        start = time.perf_counter()
        result.append(fn())
        times.append(time.perf_counter() - start)

    benchmark.pedantic(run, setup=setup, rounds=rounds, iterations=1)
    benchmark.extra_info["txs"] = txs
    benchmark.extra_info["tx_per_s"] = round(txs / min(times))
    return result[-1]


@dataclass(frozen=True, slots=True)
class CoreRun:
    """One consensus-core run: CPU per transaction per node, and its correctness check."""

    cpu_us_per_tx_per_node: float
    """µs of the process's CPU (all its threads) per transfer per masternode."""
    correct: bool
    """Every node on one tip, every transfer in every node's chain."""


def consensus_core(transfers: int = CORE_TRANSFERS, workdir: Path | None = None) -> CoreRun:
    """The CPU a masternode's consensus and ledger core spends per transaction, from submission
    to archived in a committed block: the simulated 4-masternode network
    (:mod:`timecoin.testing.consensus_sim`: real engines, signatures, LMDB stores and blocks; no
    P2P, RPC or event loop) takes ``transfers`` transfers at :data:`CORE_RATE` tx/s of simulated
    time in batches of :data:`CORE_BATCH` per node, with the collector set as a node sets it
    (:func:`timecoin.gctune.settle`, undone afterwards). Stores go under ``workdir`` (a fresh
    temporary directory, removed afterwards, if None). ``AssertionError`` if the transfers are
    not all final and archived on every node within a minute of simulated time."""
    from timecoin.testing.consensus_sim import Simulation

    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        sim = Simulation(Path(tmp), 4, seed=3, accounts=transfers).start()
        try:
            assert sim.wait_height(1)
            raws = [tx.encode() for tx in sim.transfers(sim.wallet(), transfers)]
            t0 = sim.clock.now + 0.01
            for i in range(0, len(raws), CORE_BATCH):
                node = sim.nodes[(i // CORE_BATCH) % len(sim.nodes)]
                sim.scheduler.at(t0 + i / CORE_RATE, lambda n=node, b=raws[i : i + CORE_BATCH]: n.submit(b))

            def archived() -> bool:
                return all(
                    len(n.finalized_at) >= len(raws) and not n.consensus.finality.finalized for n in sim.nodes
                )

            thresholds = gc.get_threshold()
            gctune.settle()
            try:
                cpu = time.process_time()
                assert sim.run_until(archived, timeout=60), (
                    "a transfer was not final and archived on every node"
                )
                cpu = time.process_time() - cpu
            finally:
                gc.unfreeze()
                gc.set_threshold(*thresholds)
            txids = set(timecoin_native.txids(raws))
            correct = len({n.chain.tip for n in sim.nodes}) == 1 and all(
                n.chain_txids() == txids for n in sim.nodes
            )
            return CoreRun(cpu / transfers / len(sim.nodes) * 1e6, correct)
        finally:
            sim.close()
