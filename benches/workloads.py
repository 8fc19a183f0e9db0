"""The benchmark workloads, built once here and measured by both suites: the pytest-benchmark
suites (``benches/bench_*.py``: ratios within one run) and airspeed velocity
(``benches/asv_benchmarks/``: history over commits, ``.ci/bench``; docs/benchmarks.md "History
and the regression gate"), and, through :mod:`callgrind`, the instruction counts the gate reads.

Every builder is deterministic (fixed seeds and hashes), so two commits measure the same input.
``sys.path`` holds ``benches/`` for both suites (pytest: ``pythonpath`` in pyproject.toml; asv:
``benches/asv_benchmarks/__init__.py``), so this module is imported as ``workloads``.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from typing import Any

from timecoin import crypto
from timecoin.core.types import OutPoint, Transaction, TxOut, sign_encoded_transactions
from timecoin.ledger import UtxoSet
from timecoin.testing import utxogen as g

__all__ = [
    "CALLGRIND",
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
