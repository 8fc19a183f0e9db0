"""The transaction index's lookups (``gettransactionfinality``, ``getrawtransaction``, the load
test's settle phase, which asks every node about every transaction), in one run.

Group ``txindex-lookup``: 1,000 lookups of transactions of one block of 4,000 transfers
(~1 MB), the block already checked once (the store's verified cache). ``TxIndex.lookup`` reads
only the transaction's range (``ChainStore.block_part``); the baseline reads it the way the
index did before, a copy of the whole checked block (``ChainStore.block``) then the slice. Each
records its correctness check: every lookup found its own transaction."""

from __future__ import annotations

import pytest
import timecoin_native

from timecoin.core.types import Block
from timecoin.ledger.chain import ChainState
from timecoin.ledger.genesis import build_genesis
from timecoin.store.txindex import TxIndex
from timecoin.testing.chaingen import Wallet, devnet_genesis, grow_chain

BLOCK_TXS = 4000
LOOKUPS = 1000


@pytest.fixture(scope="module")
def indexed(tmp_path_factory):
    config, accounts, _ = devnet_genesis(accounts=BLOCK_TXS)
    state = ChainState.open(tmp_path_factory.mktemp("bench-txindex"), config.params, build_genesis(config))
    (raw,) = grow_chain(state, Wallet.from_genesis(state, accounts), 1, BLOCK_TXS)
    index = TxIndex(state.store)
    index.catch_up(state.params.reorg_max_depth)
    txids = [tx.txid for tx in Block.decode(raw).transactions[1 : 1 + LOOKUPS]]
    yield state, index, txids
    state.close()


def by_range(index: TxIndex, txids: list[bytes]) -> int:
    return sum(
        1 for t in txids if (found := index.lookup(t)) is not None and timecoin_native.txid(found[2]) == t
    )


def whole_block(state: ChainState, index: TxIndex, txids: list[bytes]) -> int:
    """The lookup as the index made it before ``block_part``: the whole block copied, then sliced
    (the location comes from ``locate``, which reads the range too: the ratio is conservative)."""
    store, hits = state.store, 0
    for t in txids:
        loc = index.locate(t)
        assert loc is not None
        block = store.block(store.block_hash(loc.height))
        hits += block is not None and timecoin_native.txid(block[loc.offset : loc.offset + loc.length]) == t
    return hits


@pytest.mark.benchmark(group="txindex-lookup")
def test_lookup_reads_the_transaction_range(benchmark, indexed):
    _, index, txids = indexed
    found = benchmark(by_range, index, txids)
    benchmark.extra_info.update({"lookups": len(txids), "correct": found == len(txids)})
    assert found == len(txids)


@pytest.mark.benchmark(group="txindex-lookup")
def test_lookup_copying_the_whole_block_baseline(benchmark, indexed):
    state, index, txids = indexed
    found = benchmark(whole_block, state, index, txids)
    benchmark.extra_info.update({"lookups": len(txids), "correct": found == len(txids)})
    assert found == len(txids)
