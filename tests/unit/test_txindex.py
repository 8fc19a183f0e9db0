"""The transaction index: spans read from block bytes, catch-up from its own best block, lookups
that never answer with a wrong transaction after a rollback, and connected blocks queued and
written after their commit, a chunk per store transaction."""

from __future__ import annotations

import asyncio

import pytest

from timecoin.core.types import Block
from timecoin.ledger.chain import ChainState
from timecoin.ledger.genesis import build_genesis
from timecoin.node import spent_outpoints
from timecoin.store.txindex import MAX_QUEUED_BLOCKS, TXINDEX_DB, TxIndex, transaction_spans
from timecoin.testing.chaingen import Wallet, devnet_genesis, grow_chain
from timecoin.testing.util import wait_until_async


@pytest.fixture
def chain(tmp_path):
    config, accounts, _ = devnet_genesis()
    state = ChainState.open(tmp_path / "chain", config.params, build_genesis(config))
    wallet = Wallet.from_genesis(state, accounts)
    blocks = [state.genesis.encoded, *grow_chain(state, wallet, 4, 5)]
    yield state, blocks, wallet
    state.close()


def _txids(raw: bytes) -> list[bytes]:
    return [tx.txid for tx in Block.decode(raw).transactions]


def _next_block(state: ChainState, wallet: Wallet) -> bytes:
    """One more block of 5 transfers, committed (the index not told)."""
    (raw,) = grow_chain(state, wallet, 1, 5)
    return raw


def test_spans_are_the_transactions(chain):
    _, blocks, _ = chain
    for raw in blocks:
        block = Block.decode(raw)
        spans = transaction_spans(raw)
        assert [raw[o : o + n] for o, n in spans] == [tx.encode() for tx in block.transactions]


@pytest.mark.parametrize("cut", [1, 7, 40])
def test_spans_reject_truncated_or_padded_blocks(chain, cut):
    _, blocks, _ = chain
    with pytest.raises(ValueError):
        transaction_spans(blocks[2][:-cut])
    with pytest.raises(ValueError):
        transaction_spans(blocks[2] + bytes(cut))
    with pytest.raises(ValueError):
        transaction_spans(blocks[2][:100])


def test_catch_up_then_lookup(chain):
    state, blocks, _ = chain
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
    state, blocks, _ = chain
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
    state, blocks, _ = chain
    block = Block.decode(blocks[3])
    undo = state.store.undo(block.hash)
    spent = {i.encode() for tx in block.transactions[1:] for i in tx.inputs}
    assert set(spent_outpoints(undo)) == spent


def test_a_queued_block_answers_at_once_and_is_written_a_chunk_at_a_time(chain):
    """A block's entries were written in its own store transaction, ~25 ms of every node's loop
    per block of 9,315 transfers at the same moment; now the index writes them after the commit,
    sorted, a chunk per store transaction, and answers them from memory until then."""
    state, _, wallet = chain
    index = TxIndex(state.store, chunk=2)
    index.catch_up(state.params.reorg_max_depth)
    raw = _next_block(state, wallet)
    txids = _txids(raw)  # coinbase and 5 transfers: 3 chunks
    assert index.queue_block(5, state.tip.block_hash, raw, txids)
    assert index.queued_blocks == 1
    for t in txids:
        assert index.contains(t) and index.lookup(t)[0].height == 5
        assert state.store.get(TXINDEX_DB, t) is None  # not in the block's store transaction
    written = []
    for _ in range(3):
        assert index.best()[0] == 4  # the best block moves with the block's last chunk
        assert index.write_queued() == 2
        written.append(sorted(t for t in txids if state.store.get(TXINDEX_DB, t) is not None))
    assert [len(w) for w in written] == [2, 4, 6] and written[0] == sorted(txids)[:2]
    assert index.best() == (5, state.tip.block_hash) and index.queued_blocks == 0
    assert index.write_queued() == 0
    assert all(index.lookup(t)[0].height == 5 for t in txids)


def test_only_the_next_block_is_queued_and_a_rolled_back_one_is_dropped(chain):
    state, blocks, wallet = chain
    index = TxIndex(state.store)
    assert not index.queue_block(4, state.tip.block_hash, blocks[4], _txids(blocks[4]))  # no best yet
    index.catch_up(state.params.reorg_max_depth)
    assert not index.queue_block(4, state.tip.block_hash, blocks[4], _txids(blocks[4]))  # indexed already
    raw = _next_block(state, wallet)
    assert index.queue_block(5, state.tip.block_hash, raw, _txids(raw))
    assert not index.queue_block(5, state.tip.block_hash, raw, _txids(raw))  # the queue is at 5
    with pytest.raises(ValueError):
        index.queue_block(6, state.tip.block_hash, raw, _txids(raw)[:-1])
    state.disconnect_tip()
    assert all(index.lookup(t) is None for t in _txids(raw)[1:])  # its block is gone from the chain
    assert index.write_queued() == 0 and index.queued_blocks == 0  # dropped, nothing written
    assert index.best()[0] == 4 and not index.contains(_txids(raw)[1])


async def _written_to(index: TxIndex, height: int) -> None:
    """Returns once a pass has written the index up to ``height`` (passes are paced and start at
    a random moment of the interval, so this polls rather than sleeping a fixed time)."""
    await wait_until_async(lambda: not index.queued_blocks and index.best()[0] >= height, interval=0.005)


def test_the_index_task_writes_what_is_queued_and_a_catch_up_flushes_first(chain):
    state, _, wallet = chain
    index = TxIndex(state.store, chunk=4, interval=0.02)
    index.catch_up(state.params.reorg_max_depth)
    raws = [_next_block(state, wallet)]
    assert index.queue_block(5, state.tip.block_hash, raws[0], _txids(raws[0]))

    async def run() -> None:
        task = asyncio.get_running_loop().create_task(index.run())
        await _written_to(index, 5)
        assert index.queued_blocks == 0 and index.best() == (5, state.tip.block_hash)
        raws.append(_next_block(state, wallet))
        assert index.queue_block(6, state.tip.block_hash, raws[1], _txids(raws[1]))
        await _written_to(index, 6)
        task.cancel()

    asyncio.run(run())
    assert index.queued_blocks == 0 and index.best() == (6, state.tip.block_hash)
    assert all(state.store.get(TXINDEX_DB, t) is not None for raw in raws for t in _txids(raw))
    raw = _next_block(state, wallet)
    assert index.queue_block(7, state.tip.block_hash, raw, _txids(raw))
    assert index.catch_up(state.params.reorg_max_depth) == 0  # the queue was written first
    assert index.best() == (7, state.tip.block_hash) and index.queued_blocks == 0


def test_a_full_queue_refuses_so_that_a_sync_indexes_in_step(chain):
    """Blocks connected faster than the task writes them (a sync connecting block after block)
    would hold every block's entries in memory: past :data:`MAX_QUEUED_BLOCKS` the index refuses
    to queue and the node catches it up at once, writing what was queued first."""
    state, _, wallet = chain
    index = TxIndex(state.store)
    index.catch_up(state.params.reorg_max_depth)
    for _ in range(MAX_QUEUED_BLOCKS):
        raw = _next_block(state, wallet)
        assert index.queue_block(state.tip.height, state.tip.block_hash, raw, _txids(raw))
    raw = _next_block(state, wallet)
    assert not index.queue_block(state.tip.height, state.tip.block_hash, raw, _txids(raw))
    assert index.catch_up(state.params.reorg_max_depth) == 1
    assert index.queued_blocks == 0 and index.best() == (state.tip.height, state.tip.block_hash)
    assert index.lookup(_txids(raw)[1])[0].height == state.tip.height


def test_one_pass_writes_the_blocks_queued_since_the_last_merged_in_txid_order(chain):
    """A pass writes every block queued, their entries merged and sorted, so ten blocks' random
    keys touch each page once (docs/benchmarks.md); the best block moves to the last one with
    the pass's last chunk, and a block queued during the pass waits for the next."""
    state, _, wallet = chain
    index = TxIndex(state.store, chunk=3)
    index.catch_up(state.params.reorg_max_depth)
    raws = []
    for height in (5, 6):
        raws.append(_next_block(state, wallet))
        assert index.queue_block(height, state.tip.block_hash, raws[-1], _txids(raws[-1]))
    both = sorted(_txids(raws[0]) + _txids(raws[1]))
    assert index.write_queued() == 3
    assert [t for t in both if state.store.get(TXINDEX_DB, t) is not None] == both[:3]
    assert index.best()[0] == 4
    raws.append(_next_block(state, wallet))
    assert index.queue_block(7, state.tip.block_hash, raws[-1], _txids(raws[-1]))
    while index.best()[0] == 4:
        assert index.write_queued() > 0
    assert index.best() == (6, state.store.block_hash(6)) and index.queued_blocks == 1
    assert all(state.store.get(TXINDEX_DB, t) is not None for t in both)
    assert not any(state.store.get(TXINDEX_DB, t) for t in _txids(raws[2]))
    index.flush()
    assert index.best() == (7, state.tip.block_hash) and index.queued_blocks == 0
