"""Wall time of the hot paths the pytest-benchmark suites measure, on the same workloads
(:mod:`workloads`): the history beside the instruction counts; not gated (docs/benchmarks.md)."""

from __future__ import annotations

import workloads

from timecoin import crypto
from timecoin.p2p import framing
from timecoin.rpc import rawbatch
from timecoin.rpc.rawtransactions import MAX_BATCH


class Crypto:
    """``benches/bench_crypto.py``'s verify-1024 (one core) and merkle-100k (one core)."""

    def setup(self) -> None:
        self.batch = workloads.signed_batch(1024)
        self.txids = workloads.txids(100_000)

    def time_verify_batch_1024_one_core(self) -> None:
        crypto.verify_batch(*self.batch, parallel=False)

    def time_merkle_root_100k_one_core(self) -> None:
        crypto.merkle_root(self.txids, parallel=False)


class Ledger:
    """``benches/bench_ledger.py``'s ledger-500: a 500-transaction block applied and rolled back,
    and the mempool admission of its transactions, every signature verified afresh."""

    def setup(self) -> None:
        self.work = workloads.LedgerWorkload(0, 500)

    def time_apply_and_rollback_500(self) -> None:
        self.work.apply_and_rollback()

    def time_check_transactions_500(self) -> None:
        self.work.check_transactions()


class Submission:
    """``benches/bench_rpc_submit.py``'s submit-1k, binary path: client encode + server decode."""

    def setup(self) -> None:
        self.raws = workloads.submit_raws(1_000)

    def time_binary_submit_1k(self) -> None:
        rawbatch.decode_batch(rawbatch.encode_batch(self.raws), MAX_BATCH)


class Framing:
    """``benches/bench_cython.py``'s framing workload: 20,000 frames from 64 KiB reads."""

    def setup(self) -> None:
        self.reads = workloads.frame_reads(20_000)

    def time_frame_decoder_20k(self) -> None:
        workloads.run_framing(framing, self.reads)


class ConsensusCore:
    """``benches/bench_consensus.py``'s consensus-core: µs of CPU per transaction per masternode
    of the consensus and ledger core (:func:`workloads.consensus_core`), about ±3 % run to run."""

    unit = "µs per transaction per node"
    number = 1
    repeat = 1
    timeout = 300

    def track_consensus_core_cpu_per_transaction(self) -> float:
        run = workloads.consensus_core()
        if not run.correct:
            raise AssertionError("consensus-core: the nodes disagree or a transfer is missing")
        return run.cpu_us_per_tx_per_node
