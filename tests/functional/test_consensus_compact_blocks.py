"""A block is not capped by one frame (DESIGN §4: "block size ... must not cap the throughput
target"; §7 phase 4: a proposal is {header, txids, ...}; docs/consensus.md, "Compact blocks").

Before, a proposal carried its whole block in one 2 MiB P2P frame, so a block held at most
~1.84 MB of transactions: 7,770 of the 237-byte transfers here. Final transactions beyond that
waited for later blocks, and at 6,000 tx/s on the devnet blocks archived less than finality
decided. Now a proposal names the final transactions by txid.

Four ``timecoind`` masternodes on a devnet genesis with 45-s block slots (``--block-slot``).
One is stopped after block 1. 12,000 transfers (2.8 MB) are made final by the other three
before the next slot; the next block archives all of them. The stopped masternode then restarts
and syncs that block (over one frame: BLOCK_CHUNKs) and holds the same chain.
"""

from __future__ import annotations

from dataclasses import replace

from timecoin.core.types import BlockView
from timecoin.params import DEVNET
from timecoin.testing.node import build_devnet_chain, default_port_seed, masternode_network, wait_until

SEED_OFFSET = 71
N = 4
SLOT = 45
"""Seconds per block slot: room to make every transfer final before the next block."""
TRANSFERS = 12_000
CHUNK = 2_000
"""Transfers per ``sendrawtransactions`` call."""
ADMITTED = 5_000
"""Transactions pending finality a masternode admits at most (``admission_max_txs``' default)."""
OLD_CAP = 1_835_391
"""Transaction bytes a block could hold when a proposal carried it whole in one frame
(``MAX_LARGE_VOTE_ITEM`` less the 256 KiB the proposal kept for the rest)."""


def test_a_block_holds_more_than_one_frame_of_final_transactions(tmp_path):
    chain = build_devnet_chain(
        tmp_path / "chain", 0, 0, accounts=TRANSFERS, params=replace(DEVNET, block_slot=float(SLOT))
    )
    txs = chain.transfers(TRANSFERS)
    assert sum(len(tx.encode()) for tx in txs) > OLD_CAP
    seed = default_port_seed() + SEED_OFFSET
    with masternode_network(chain, N, seed, extra_args=["--block-slot", str(SLOT)]) as nodes:
        for node in nodes:
            wait_until(lambda n=node: n.rpc.getconnectioncount() == N - 1, 30, what=f"{node} full mesh")
        entry, late = nodes[0], nodes[3]
        wait_until(lambda: entry.rpc.getblockcount() >= 1, 60, what="block 1 (the first slot)")
        late.stop()
        height = entry.rpc.getblockcount()

        for i in range(0, TRANSFERS, CHUNK):
            wait_until(
                lambda: entry.rpc.getmempoolinfo()["size"] <= ADMITTED - CHUNK, 60, what="mempool room"
            )
            results = entry.rpc.sendrawtransactions([tx.encode().hex() for tx in txs[i : i + CHUNK]])
            assert all(r["accepted"] for r in results), next(r for r in results if not r["accepted"])
        for node in nodes[:3]:
            wait_until(
                lambda n=node: n.rpc.getconsensusinfo()["finality"]["finalized_pool"] == TRANSFERS,
                120,
                what=f"every transfer final on {node}",
            )
        assert entry.rpc.getblockcount() == height, "a block came before every transfer was final"

        wait_until(lambda: entry.rpc.getblockcount() > height, 2 * SLOT, what="the next block")
        block = BlockView.decode(bytes.fromhex(entry.rpc.getblock(entry.rpc.getblockhash(height + 1), 0)))
        assert set(block.txids[1:]) == {tx.txid for tx in txs}
        assert len(block.raw_transactions) == TRANSFERS + 1
        tip = entry.rpc.getbestblockhash()
        assert all(n.rpc.getbestblockhash() == tip for n in nodes[:3])

        late.start()
        late.wait_for_rpc_connection()
        wait_until(lambda: late.rpc.getblockcount() >= height + 1, 120, what="the restarted node synced")
        assert late.rpc.getblockhash(height + 1) == entry.rpc.getblockhash(height + 1)
