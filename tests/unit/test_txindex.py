"""The transaction index: spans read from block bytes, catch-up from its own best block, and
lookups that never answer with a wrong transaction after a rollback."""

from __future__ import annotations

import pytest

from timecoin.core.types import Block
from timecoin.ledger.chain import ChainState
from timecoin.ledger.genesis import build_genesis
from timecoin.node import spent_outpoints
from timecoin.store.txindex import TXINDEX_DB, TxIndex, transaction_spans
from timecoin.testing.chaingen import Wallet, devnet_genesis, grow_chain


@pytest.fixture
def chain(tmp_path):
    config, accounts, _ = devnet_genesis()
    state = ChainState.open(tmp_path / "chain", config.params, build_genesis(config))
    blocks = [state.genesis.encoded, *grow_chain(state, Wallet.from_genesis(state, accounts), 4, 5)]
    yield state, blocks
    state.close()


def test_spans_are_the_transactions(chain):
    _, blocks = chain
    for raw in blocks:
        block = Block.decode(raw)
        spans = transaction_spans(raw)
        assert [raw[o : o + n] for o, n in spans] == [tx.encode() for tx in block.transactions]


@pytest.mark.parametrize("cut", [1, 7, 40])
def test_spans_reject_truncated_or_padded_blocks(chain, cut):
    _, blocks = chain
    with pytest.raises(ValueError):
        transaction_spans(blocks[2][:-cut])
    with pytest.raises(ValueError):
        transaction_spans(blocks[2] + bytes(cut))
    with pytest.raises(ValueError):
        transaction_spans(blocks[2][:100])


def test_catch_up_then_lookup(chain):
    state, blocks = chain
    index = TxIndex(state.store)
    assert index.best() is None
    assert index.catch_up(state.params.reorg_max_depth) == len(blocks)
    assert index.best() == (4, state.tip.block_hash)
    assert index.catch_up(state.params.reorg_max_depth) == 0
    for height, raw in enumerate(blocks):
        block = Block.decode(raw)
        for tx in block.transactions:
            loc, block_hash, found = index.lookup(tx.txid)
            assert (loc.height, block_hash, found) == (height, block.hash, tx.encode())
            assert index.contains(tx.txid)
    assert index.lookup(bytes(32)) is None and not index.contains(bytes(32))


def test_rolled_back_entries_never_answer(chain):
    state, blocks = chain
    index = TxIndex(state.store)
    index.catch_up(state.params.reorg_max_depth)
    dropped = Block.decode(blocks[4]).transactions[1]
    state.disconnect_tip()
    assert index.lookup(dropped.txid) is None  # its block is gone from the chain
    # Best block no longer in the chain: catch-up re-indexes from below the rollback.
    assert index.catch_up(state.params.reorg_max_depth) == 4
    assert index.best() == (3, state.tip.block_hash)
    # An entry pointing into a block that now holds other bytes is refused too.
    kept = Block.decode(blocks[2]).transactions[1]
    loc = index.locate(kept.txid)
    state.store.write([(TXINDEX_DB, dropped.txid, state.store.get(TXINDEX_DB, kept.txid))])
    assert index.lookup(dropped.txid) is None and index.locate(kept.txid) == loc


def test_spent_outpoints_from_undo(chain):
    state, blocks = chain
    block = Block.decode(blocks[3])
    undo = state.store.undo(block.hash)
    spent = {i.encode() for tx in block.transactions[1:] for i in tx.inputs}
    assert set(spent_outpoints(undo)) == spent
