"""Overload is a state, not a crash (DESIGN §12 invariant 10, §13 "Admission control").

Four ``timecoind`` masternodes (the devnet genesis's equal Gold masternodes, full mesh over
loopback, 2 s slots) run with a deliberately small admission limit (``--admission-max-pending
10``), so that going beyond capacity is cheap:

* **no capacity at all**: two of the four are paused (SIGSTOP), so nothing can become final
  (2/4 of the weight is below 2/3). One ``sendrawtransactions`` call of 16 transfers to node 0
  admits the first 10 and answers the other 6 with the retryable overload error (-32001,
  ``mempool-overloaded``) per item; ``sendrawtransaction`` and ``sendrawtransactions`` of a
  refused one then fail as a whole with -32001, and the mempool stays at 10. Resumed, the
  network finalizes the 10; the refused 6 sent again are admitted and finalized too;
* **a flood**: the real load test (:func:`timecoin.loadtest.runner.run_loadtest`) offers
  transfers open-loop in per-node batches larger than the limit, so every call is refused in
  part or whole. The load test counts those refusals (``overloaded``), retries them in its
  fan-out, and ends with its report: every transaction is accepted or refused as overloaded
  (none lost in between), every accepted one is final on every node (``lost == 0``), the nodes
  agree on tip and UTXO set hash, every node is still running and none logged a failed
  consensus step.
"""

from __future__ import annotations

import os
import signal

from rich.console import Console

from timecoin.loadtest.runner import LoadTestConfig, run_loadtest
from timecoin.loadtest.submitter import TICK, Endpoint
from timecoin.rpc.errors import MEMPOOL_OVERLOADED
from timecoin.testing.node import (
    assert_raises_rpc_error,
    build_devnet_chain,
    default_port_seed,
    masternode_network,
    wait_until,
)
from timecoin.testing.util import run

SEED_OFFSET = 61
N = 4
ACCOUNTS = 16
BOUND = 10
"""The nodes' ``admission_max_pending``."""
RATE = 1_200.0
"""Offered load, tx/s: RATE × TICK / N = 15 transactions per node per call, above BOUND."""
DURATION = 3.0


def final_everywhere(nodes, txids) -> bool:
    return all(n.rpc.gettransactionfinality(t)["status"] == "final" for n in nodes for t in txids)


def test_flood_is_refused_retryably_and_nothing_accepted_is_lost(tmp_path):
    assert RATE * TICK / N > BOUND
    chain = build_devnet_chain(tmp_path / "chain", 0, 0, accounts=ACCOUNTS)
    args = ["--admission-max-pending", str(BOUND)]
    with masternode_network(chain, N, default_port_seed() + SEED_OFFSET, extra_args=args) as nodes:
        for node in nodes:
            wait_until(lambda n=node: n.rpc.getconnectioncount() == N - 1, 30, what=f"{node} full mesh")
        entry = nodes[0]

        # No capacity: with half the weight paused nothing can finalize.
        txs = chain.transfers(ACCOUNTS)
        hexes = [tx.encode().hex() for tx in txs]
        paused = nodes[2:]
        for node in paused:
            os.kill(node.process.pid, signal.SIGSTOP)
        try:
            results = entry.rpc.sendrawtransactions(hexes)
            assert [r["accepted"] for r in results] == [True] * BOUND + [False] * (ACCOUNTS - BOUND)
            assert [r["txid"] for r in results[:BOUND]] == [tx.txid.hex() for tx in txs[:BOUND]]
            for r in results[BOUND:]:
                assert r["txid"] is None and r["reject"]["code"] == MEMPOOL_OVERLOADED, r
                assert r["reject"]["reason"].startswith("mempool-overloaded: "), r
            assert_raises_rpc_error(
                MEMPOOL_OVERLOADED, "retry later", entry.rpc.sendrawtransaction, hexes[-1]
            )
            assert_raises_rpc_error(
                MEMPOOL_OVERLOADED, "mempool-overloaded", entry.rpc.sendrawtransactions, hexes[BOUND:]
            )
            assert entry.rpc.getmempoolinfo()["size"] == BOUND
            assert entry.rpc.gettransactionfinality(txs[-1].txid.hex())["status"] == "unknown"
        finally:
            for node in paused:
                os.kill(node.process.pid, signal.SIGCONT)

        # Capacity back: the admitted ones finalize, the refused ones are admitted when retried.
        first = [tx.txid.hex() for tx in txs[:BOUND]]
        wait_until(lambda: final_everywhere(nodes, first), 60, what="the admitted transactions final")
        retried = entry.rpc.sendrawtransactions(hexes[BOUND:])
        assert all(r["accepted"] for r in retried), retried
        every = [tx.txid.hex() for tx in txs]
        wait_until(lambda: final_everywhere(nodes, every), 60, what="the retried transactions final")
        wait_until(
            lambda: all(n.rpc.gettransactionfinality(t)["height"] is not None for n in nodes for t in every),
            60,
            what="all of them committed",
        )

        # A flood through the load test: refused in part or whole at every call, nothing lost.
        config = LoadTestConfig(
            chain.config,
            chain.account_keys,
            [Endpoint.from_datadir(n.datadir, n.rpc_port) for n in nodes],
            RATE,
            DURATION,
            tmp_path / "loadtest",
            drain_timeout=10.0,
        )
        report = run(run_loadtest(config, Console(quiet=True)), timeout=150)
        summary = {
            k: report[k]
            for k in ("submitted", "accepted", "finalized", "overloaded", "reject_reasons", "notes")
        }
        assert report["consensus_available"] and report["finality_available"], summary
        assert report["submitted"] == RATE * DURATION, summary
        assert report["fanout"]["reject_reasons"].get("mempool-overloaded", 0) > 0, report["fanout"]
        assert set(report["reject_reasons"]) == {"mempool-overloaded"}, summary
        assert report["overloaded"] >= report["submitted"] * (1 - BOUND * N / (RATE * TICK)), summary
        assert report["accepted"] + report["overloaded"] == report["submitted"], summary
        assert report["accepted"] > 0 and report["finalized"] == report["accepted"], summary
        assert report["lost"] == 0 and report["unreachable"] == [] and report["notes"] == [], summary
        assert report["nodes_agree"] is True, report["tips"]

        for node in nodes:
            assert node.running, f"{node} stopped"
            assert "consensus step failed" not in node.log_text()
            assert node.rpc.getmempoolinfo()["size"] == 0
