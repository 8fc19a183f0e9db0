"""The transaction index's lookups (``gettransactionfinality``, ``getrawtransaction``, the load
test's settle phase, which asks every node about every transaction) and entries, in one run.

Group ``txindex-lookup``: 1,000 lookups of transactions of one block of 4,000 transfers
(~1 MB), the block already checked once (the store's verified cache). ``TxIndex.lookup`` reads
only the transaction's range (``ChainStore.block_part``); the baseline reads it the way the
index did before, a copy of the whole checked block (``ChainStore.block``) then the slice. Each
records its correctness check: every lookup found its own transaction.

Group ``txindex-entries``: the entries of that block, sorted by txid, as every node makes them at
every block (``TxIndex.queue_block``): native (``timecoin_native.index_entries``), the Python
packing and sort over the native spans it replaced, and the pure-Python reference twin. Each
records its correctness check: the same entries as the reference."""

from __future__ import annotations

import struct

import pytest
import timecoin_native

from timecoin.core.types import Block
from timecoin.ledger.chain import ChainState
from timecoin.ledger.genesis import build_genesis
from timecoin.reference import codec as reference
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
    yield state, index, txids, raw
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
    _, index, txids, _ = indexed
    found = benchmark(by_range, index, txids)
    benchmark.extra_info.update({"lookups": len(txids), "correct": found == len(txids)})
    assert found == len(txids)


@pytest.mark.benchmark(group="txindex-lookup")
def test_lookup_copying_the_whole_block_baseline(benchmark, indexed):
    state, index, txids, _ = indexed
    found = benchmark(whole_block, state, index, txids)
    benchmark.extra_info.update({"lookups": len(txids), "correct": found == len(txids)})
    assert found == len(txids)


_ENTRY = struct.Struct(">QII")


def python_entries(block: bytes, txids: list[bytes], height: int) -> list[tuple[bytes, bytes]]:
    """The index's entries as it made them before ``index_entries``: native spans, then each
    entry packed and the list sorted in Python."""
    pack = _ENTRY.pack
    spans = timecoin_native.transaction_spans(block)
    return sorted([(t, pack(height, o, n)) for t, (o, n) in zip(txids, spans, strict=True)])


@pytest.fixture(scope="module")
def block_entries(indexed):
    raw = indexed[3]
    txids = timecoin_native.decode_block_with_txids(raw)[1]
    return raw, txids, reference.index_entries(raw, txids, 1)


@pytest.mark.parametrize("name", ["native", "python-packing-baseline", "reference"], ids=lambda name: name)
@pytest.mark.benchmark(group="txindex-entries")
def test_index_entries(benchmark, block_entries, name):
    raw, txids, want = block_entries
    make = {
        "native": timecoin_native.index_entries,
        "python-packing-baseline": python_entries,
        "reference": reference.index_entries,
    }[name]
    got = benchmark(make, raw, txids, 1)
    benchmark.extra_info.update({"transactions": len(txids), "correct": got == want})
    assert got == want
