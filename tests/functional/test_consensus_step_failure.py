"""A consensus step that raises is dropped; the node keeps serving and finalizing (DESIGN §13: "no
exception inside a consensus step stops the node"; docs/consensus.md, "Failed steps").

Four ``timecoind`` masternodes (the devnet genesis's equal Gold masternodes, full mesh over
loopback, 2 s slots, ``/metrics`` on); node 0 runs with the failpoint
``consensus.step.submit:1:raise``: its first transaction submission raises after the engine
admitted the transactions and before any effect of the step ran, so the vote-flush timer the
engine noted as scheduled never started. That input is dropped: the RPC call answers
``consensus-step-failed`` for each transaction, nothing of it stays in the mempool, the log names
the input, and ``timecoin_consensus_step_failures_total`` is 1. The node keeps running: the same
transactions sent again are admitted, node 0 itself votes on them (its rebuilt engine schedules
its flushes; an engine kept as the failed step left it would never flush again) and they become
final on every node, and blocks keep being committed everywhere.
"""

from __future__ import annotations

from timecoin.consensus.service import STEP_FAILED
from timecoin.testing.node import (
    build_devnet_chain,
    default_port_seed,
    masternode_network,
    metrics_port,
    scrape_metrics,
    wait_until,
)

SEED_OFFSET = 67
N = 4
TXS = 4


def test_failed_step_is_dropped_and_the_node_keeps_finalizing(tmp_path):
    chain = build_devnet_chain(tmp_path / "chain", 0, 0, accounts=TXS)
    seed = default_port_seed() + SEED_OFFSET
    env = {0: {"TIMECOIN_FAILPOINT": "consensus.step.submit:1:raise"}}
    with masternode_network(chain, N, seed, metrics=True, env=env) as nodes:
        for node in nodes:
            wait_until(lambda n=node: n.rpc.getconnectioncount() == N - 1, 30, what=f"{node} full mesh")
        entry = nodes[0]
        txs = chain.transfers(TXS)
        hexes = [tx.encode().hex() for tx in txs]

        # The failing step: dropped whole, logged with its input, counted.
        failed = entry.rpc.sendrawtransactions(hexes)
        assert all(not r["accepted"] and r["reject"]["reason"].startswith(STEP_FAILED) for r in failed), (
            failed
        )
        assert entry.rpc.getmempoolinfo()["size"] == 0
        assert entry.rpc.gettransactionfinality(txs[0].txid.hex())["status"] == "unknown"
        log = entry.log_text()
        assert "consensus step failed (submit: 4 transactions: " in log, log[-3000:]
        assert "FailpointError" in log and "consensus stops" not in log
        assert scrape_metrics(metrics_port(0, seed))["timecoin_consensus_step_failures_total"] == 1

        # The node keeps serving: the same transactions are admitted, voted on and final.
        height = entry.rpc.getblockcount()
        again = entry.rpc.sendrawtransactions(hexes)
        assert all(r["accepted"] for r in again), again
        txids = [tx.txid.hex() for tx in txs]
        wait_until(
            lambda: all(n.rpc.gettransactionfinality(t)["status"] == "final" for n in nodes for t in txids),
            60,
            what="the resubmitted transactions final on every node",
        )
        wait_until(
            lambda: entry.rpc.getconsensusinfo()["counters"].get("tx_votes_signed", 0) > 0,
            30,
            what="node 0 signing finality votes after the failed step",
        )
        wait_until(
            lambda: min(n.rpc.getblockcount() for n in nodes) >= height + 2, 60, what="blocks committed after"
        )
        assert entry.running and entry.rpc.getconsensusinfo()["voter"] is True
        assert scrape_metrics(metrics_port(0, seed))["timecoin_consensus_step_failures_total"] == 1
