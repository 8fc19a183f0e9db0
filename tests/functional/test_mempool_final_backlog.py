"""Final transactions waiting for a block are bounded work too (DESIGN §13 "Admission control").

Blocks can archive less than finality decides: a proposal once carried its block in one 2 MiB
frame, ~9,300 transfers, so at 6,000 tx/s on a devnet the final transactions no block held yet
grew by ~1,350 a second (docs/benchmarks.md), and a run of leaders that leave final
transactions out, or slots longer than the load, do the same. Since admission counted only the
transactions pending finality, nothing refused new ones: a node's memory grew without limit
while clients kept sending. Now their bytes have a bound (``admission_max_final_bytes``).

Four ``timecoind`` masternodes on a devnet genesis with 600-s block slots (``--block-slot``):
block 1 commits at start (the genesis is older than a slot), the next not for ten minutes, so
what becomes final stays final and unarchived. With ``--admission-max-final-bytes`` at three
transfers' bytes, three transfers are admitted and finalized, and the next ones are refused with
the retryable overload error (-32001) although the mempool is empty; the node keeps serving,
and what it refused was not looked at (the client can send it again later). The backlog is
exported for operators (``timecoin_finality_unarchived_{transactions,bytes}``).
"""

from __future__ import annotations

from dataclasses import replace

from timecoin.params import DEVNET
from timecoin.rpc.errors import MEMPOOL_OVERLOADED
from timecoin.testing.node import (
    assert_raises_rpc_error,
    build_devnet_chain,
    default_port_seed,
    masternode_network,
    metrics_port,
    scrape_metrics,
    wait_until,
)

SEED_OFFSET = 79
N = 4
SLOT = 600
"""Seconds per block slot: no second block during the test."""


def test_final_transactions_waiting_for_a_block_are_bounded(tmp_path):
    chain = build_devnet_chain(
        tmp_path / "chain", 0, 0, accounts=8, params=replace(DEVNET, block_slot=float(SLOT))
    )
    txs = chain.transfers(5)
    size = len(txs[0].encode())
    assert all(len(tx.encode()) == size for tx in txs)
    bound = 3 * size
    args = ["--admission-max-final-bytes", str(bound), "--block-slot", str(SLOT)]
    seed = default_port_seed() + SEED_OFFSET
    with masternode_network(chain, N, seed, metrics=True, extra_args=args) as nodes:
        for node in nodes:
            wait_until(lambda n=node: n.rpc.getconnectioncount() == N - 1, 30, what=f"{node} full mesh")
        entry = nodes[0]
        wait_until(lambda: entry.rpc.getblockcount() >= 1, 60, what="block 1 (the first slot)")
        height = entry.rpc.getblockcount()

        for tx in txs[:3]:
            assert entry.rpc.sendrawtransaction(tx.encode().hex()) == tx.txid.hex()
        wait_until(
            lambda: all(
                n.rpc.gettransactionfinality(t.txid.hex())["status"] == "final"
                for n in nodes
                for t in txs[:3]
            ),
            60,
            what="the three transfers final everywhere",
        )
        assert entry.rpc.getmempoolinfo()["size"] == 0  # nothing pending: the old bound saw no work
        assert entry.rpc.getblockcount() == height  # and no block archived them
        samples = scrape_metrics(metrics_port(0, seed))
        assert samples["timecoin_finality_unarchived_transactions"] == 3
        assert samples["timecoin_finality_unarchived_bytes"] == bound

        assert_raises_rpc_error(
            MEMPOOL_OVERLOADED,
            "wait for a block",
            entry.rpc.sendrawtransaction,
            txs[3].encode().hex(),
        )
        assert_raises_rpc_error(  # none fits: the whole call is refused
            MEMPOOL_OVERLOADED,
            "retry later",
            entry.rpc.sendrawtransactions,
            [tx.encode().hex() for tx in txs[3:]],
        )
        # Not looked at: still unknown to the node, and its input still spendable.
        assert entry.rpc.gettransactionfinality(txs[3].txid.hex())["status"] == "unknown"
        assert entry.rpc.getblockcount() == height and entry.rpc.getmempoolinfo()["size"] == 0
