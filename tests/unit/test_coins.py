"""The stored coins behind the blocks (timecoin/store/coins.py, DESIGN §9) on real LMDB with real
signed blocks: the flusher's chunks and marker, merging, its bound and error path, the rollback
that flushes first, and the start that replays the blocks after the stored coins."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import AsyncIterator

import lmdb
import pytest

from timecoin.ledger import UtxoSet
from timecoin.ledger.chain import ChainState
from timecoin.ledger.genesis import build_genesis
from timecoin.reference import utxo as reference
from timecoin.store import coins as coins_module
from timecoin.store.chainstore import StoreError, Tip
from timecoin.store.coins import load_utxo_set
from timecoin.store.integrity import check_store
from timecoin.testing.chaingen import Wallet, devnet_genesis, grow_chain
from timecoin.testing.util import wait_until_async


@pytest.fixture
def setup(tmp_path):
    config, accounts, _ = devnet_genesis(accounts=8)
    genesis = build_genesis(config)
    chain = ChainState.open(tmp_path / "chain", config.params, genesis)
    yield chain, Wallet.from_genesis(chain, accounts), genesis, tmp_path / "chain"
    chain.close()


def stored_coins(chain: ChainState) -> dict[bytes, bytes]:
    return dict(chain.store.utxos())


def live_coins(chain: ChainState) -> dict[bytes, bytes]:
    """The in-memory set, read back outpoint by outpoint for the stored and the deleted ones."""
    return {k: c for k, c in stored_coins(chain).items() if chain.utxos.get(k) == c}


def crash(chain: ChainState) -> None:
    """Closes the store without writing the coins, as a killed process leaves it."""
    chain.store.close()
    chain.close = lambda: None  # the fixture must not close it again


def test_a_block_commits_without_its_coins_and_a_start_replays_them(setup, caplog):
    chain, wallet, genesis, path = setup
    genesis_tip = chain.tip
    list(grow_chain(chain, wallet, 3, 4))
    tip, set_hash = chain.tip, chain.utxos.set_hash()
    assert chain.store.coins_tip() == genesis_tip and chain.coins.blocks_behind == 3
    crash(chain)
    with caplog.at_level(logging.INFO, logger="timecoin.store.coins"):
        reopened = ChainState.open(path, genesis.config.params, genesis)
    try:
        assert reopened.tip == tip and reopened.utxos.set_hash() == set_hash
        assert "replayed the coins of 3 blocks" in caplog.text
        reopened.coins.flush()
        assert reopened.store.coins_tip() == tip
        assert len(stored_coins(reopened)) == len(reopened.utxos)
        assert all(reopened.utxos.get(k) == c for k, c in stored_coins(reopened).items())
    finally:
        reopened.close()


def test_the_flusher_writes_chunks_and_moves_the_marker_with_the_last(setup):
    chain, wallet, _, _ = setup
    start = chain.tip
    list(grow_chain(chain, wallet, 2, 6))
    chain.coins.chunk = 5
    assert chain.coins.write_chunk() == 5
    queued = chain.coins.queued
    assert queued > 0 and chain.store.coins_tip() == start
    # A block connected meanwhile waits for the next delta; the marker moves to the tip the
    # delta being written was taken at.
    taken_at = chain.tip
    list(grow_chain(chain, wallet, 1, 6))
    while chain.coins.queued:
        chain.coins.write_chunk()
    assert chain.store.coins_tip() == taken_at != chain.tip and chain.coins.blocks_behind == 1
    chain.coins.flush()
    assert chain.store.coins_tip() == chain.tip and chain.coins.blocks_behind == 0
    assert len(stored_coins(chain)) == len(chain.utxos) == len(live_coins(chain))
    assert chain.coins.write_chunk() == 0


def test_past_the_bound_a_block_writes_the_coins_at_once(setup, monkeypatch):
    chain, wallet, _, _ = setup
    monkeypatch.setattr(coins_module, "MAX_BLOCKS_BEHIND", 2)
    list(grow_chain(chain, wallet, 2, 2))
    assert chain.store.coins_tip().height == 0
    list(grow_chain(chain, wallet, 1, 2))
    assert chain.store.coins_tip() == chain.tip and chain.coins.blocks_behind == 0


def test_a_failed_write_keeps_its_delta_and_is_tried_again(setup, caplog):
    chain, wallet, _, _ = setup
    write, failures = chain.store.write_coins, []

    def failing_once(delta, marker):
        if not failures:
            failures.append(marker)
            raise StoreError("disk full")
        write(delta, marker)

    chain.store.write_coins = failing_once
    chain.coins.interval = 0.05

    async def scenario() -> None:
        list(grow_chain(chain, wallet, 1, 3))
        task = asyncio.create_task(chain.coins.run())
        try:
            while not failures:  # the first pass comes within one interval
                await asyncio.sleep(0.005)
            await asyncio.sleep(0)
            assert "coins flush failed" in caplog.text
            assert chain.store.coins_tip().height == 0 and chain.coins.queued > 0
            list(grow_chain(chain, wallet, 1, 3))
            # The next pass, one interval later (paced, so polled).
            await wait_until_async(lambda: chain.store.coins_tip() == chain.tip)
        finally:
            task.cancel()

    asyncio.run(scenario())
    assert len(stored_coins(chain)) == len(chain.utxos) == len(live_coins(chain))


def test_a_rollback_writes_the_coins_first(setup):
    chain, wallet, _, _ = setup
    list(grow_chain(chain, wallet, 3, 3))
    assert chain.store.coins_tip().height == 0
    chain.rollback_to(1)
    assert chain.store.coins_tip() == chain.tip == Tip(1, chain.store.block_hash(1))
    assert len(stored_coins(chain)) == len(chain.utxos) == len(live_coins(chain))


def test_a_marker_off_the_chain_is_refused(setup):
    chain, wallet, genesis, path = setup
    list(grow_chain(chain, wallet, 2, 2))
    chain.close()
    env = lmdb.open(str(path), max_dbs=16)
    with env.begin(write=True, db=env.open_db(b"meta")) as txn:
        txn.put(b"coins_tip", (1).to_bytes(8, "little") + bytes(32))
    env.close()
    with pytest.raises(StoreError, match="not a block of the chain"):
        ChainState.open(path, genesis.config.params, genesis)
    chain.close = lambda: None


def test_a_missing_undo_record_stops_the_replay(setup):
    chain, wallet, genesis, path = setup
    list(grow_chain(chain, wallet, 2, 2))
    gone = chain.store.block_hash(2)
    crash(chain)
    env = lmdb.open(str(path), max_dbs=16)
    with env.begin(write=True, db=env.open_db(b"undo")) as txn:
        txn.delete(gone)
    env.close()
    with pytest.raises(StoreError, match="block 2 or its undo record is missing"):
        ChainState.open(path, genesis.config.params, genesis)


def test_db_check_replays_coins_that_lag(setup):
    chain, wallet, _, _ = setup
    list(grow_chain(chain, wallet, 3, 3))
    utxos, replayed = load_utxo_set(chain.store, chain.tip)
    assert replayed == 3 and utxos.set_hash() == chain.utxos.set_hash()
    report = check_store(chain.store)
    assert not report.damage and report.utxos == len(chain.utxos)


def test_replay_refuses_what_does_not_fit_in_native_and_reference_alike(setup):
    """Another block's undo record, a truncated one, or one naming an outpoint the block does not
    create: both sets refuse it and stay unchanged."""
    chain, wallet, _, _ = setup
    blocks = list(grow_chain(chain, wallet, 2, 3))
    undos = [chain.store.undo(chain.store.block_hash(h)) for h in (1, 2)]
    created_at = 1 + 8 + 32 + 32 + 4
    foreign = undos[1][:created_at] + bytes(36) + undos[1][created_at + 36 :]
    for block, undo, why in (
        (blocks[1], undos[0], "another block"),
        (blocks[1], undos[1][:-1], "malformed"),
        (blocks[1], foreign, "not an output of the block"),
    ):
        for utxos in (UtxoSet(), reference.UtxoSet()):
            before = utxos.set_hash()
            with pytest.raises(ValueError):
                utxos.replay_block(block, undo)
            assert utxos.set_hash() == before, why


def test_a_native_coin_delta_slices_into_what_take_delta_returns(setup):
    """``take_dirty().delta()`` is ``take_delta`` kept native: the same writes by index and by
    slice, and the set is clean after it."""
    chain, wallet, _, _ = setup
    twin = UtxoSet()
    twin.load(sorted(chain.store.utxos()))
    blocks = list(grow_chain(chain, wallet, 2, 4))
    for raw in blocks:
        twin.apply_block(raw, chain.rules)
    expected = twin.take_delta()
    dirty = chain.utxos.take_dirty()
    delta = dirty.delta()
    assert len(dirty) >= len(delta) == len(expected) > 4
    assert delta[:] == expected and delta[1:3] == expected[1:3] and delta[5:2] == []
    assert delta[0] == expected[0] and delta[-1] == expected[-1]
    with pytest.raises(IndexError):
        delta[len(expected)]
    with pytest.raises(ValueError, match="step"):
        delta[::2]
    assert dirty.delta()[:] == expected, "worked out again, the same writes"
    assert len(chain.utxos.take_dirty().delta()) == 0
    with pytest.raises(ValueError, match="taken again"):
        dirty.delta()


class HeldDirty:
    """The set's dirty coins, whose ``delta()`` off the loop's thread first waits for ``hold``
    (when given); records the threads it ran on and the refusals."""

    def __init__(self, dirty, loop_thread: int, hold: threading.Event | None) -> None:
        self.dirty, self.loop_thread, self.hold = dirty, loop_thread, hold
        self.started = threading.Event()
        self.threads: list[int] = []
        self.refused: list[str] = []

    def __len__(self) -> int:
        return len(self.dirty)

    def delta(self):
        self.threads.append(threading.get_ident())
        if self.hold is not None and threading.get_ident() != self.loop_thread:
            self.started.set()
            assert self.hold.wait(10)
        try:
            return self.dirty.delta()
        except ValueError as e:
            self.refused.append(str(e))
            raise


def hold_first_take(chain: ChainState) -> tuple[list[HeldDirty], threading.Event]:
    """Wraps the flusher's takes in :class:`HeldDirty`, the first one held until the event."""
    take, held, hold = chain.coins._take_dirty, [], threading.Event()

    def take_held():
        dirty, tip = take()
        held.append(HeldDirty(dirty, threading.get_ident(), None if held else hold))
        return held[-1], tip

    chain.coins._take_dirty = take_held
    return held, hold


@contextlib.asynccontextmanager
async def held_pass(chain: ChainState, held: list[HeldDirty]) -> AsyncIterator[asyncio.Task]:
    """The flusher's task, from the moment its first pass waits off the loop (its first take
    held: :func:`hold_first_take`) until the block ends."""
    chain.coins.interval = 0.05
    task = asyncio.create_task(chain.coins.run())
    try:
        await wait_until_async(lambda: bool(held) and held[0].started.is_set())
        yield task
    finally:
        task.cancel()


def test_a_pass_works_out_its_writes_off_the_loop_as_of_its_take(setup):
    """A pass takes the set's changes on the loop and works out their writes on a worker thread
    while blocks go on connecting: it writes the coins of the moment of the take with that tip
    as the marker, and the blocks connected meanwhile go in the next delta."""
    chain, wallet, _, _ = setup
    chain.coins.flush()
    twin = UtxoSet()
    twin.load(sorted(chain.store.utxos()))
    expected = stored_coins(chain)
    for raw in grow_chain(chain, wallet, 2, 4):
        twin.apply_block(raw, chain.rules)
    for key, coin in twin.take_delta():
        if coin is None:
            del expected[key[8:]]
        else:
            expected[key[8:]] = coin
    held, hold = hold_first_take(chain)

    async def scenario() -> None:
        async with held_pass(chain, held) as task:
            taken_at = chain.tip
            list(grow_chain(chain, wallet, 2, 4))  # the loop is free: blocks connect meanwhile
            hold.set()
            await wait_until_async(lambda: chain.store.coins_tip() == taken_at)
            task.cancel()
            assert stored_coins(chain) == expected
            assert chain.coins.blocks_behind == 2

    asyncio.run(scenario())
    assert held[0].threads and threading.get_ident() not in held[0].threads
    chain.coins.flush()
    assert chain.store.coins_tip() == chain.tip
    assert len(stored_coins(chain)) == len(chain.utxos) == len(live_coins(chain))


def test_a_flush_during_a_pass_writes_the_changes_and_the_pass_drops_its_own(setup, caplog):
    """A flush (a rollback, a stop, the lag bound) while a pass works out its writes off the
    loop writes them itself, and the next changes; what the pass's thread then finds (the set
    taken from again: stale) is dropped without an error."""
    chain, wallet, _, _ = setup
    list(grow_chain(chain, wallet, 2, 4))
    held, hold = hold_first_take(chain)

    async def scenario() -> None:
        async with held_pass(chain, held) as task:
            list(grow_chain(chain, wallet, 1, 4))
            chain.coins.flush()
            assert chain.store.coins_tip() == chain.tip and len(held) == 2
            hold.set()
            await wait_until_async(lambda: bool(held[0].refused))
            assert "taken again" in held[0].refused[0]
            await asyncio.sleep(0.1)  # the pass resumes and drops it
            assert not task.done()

    with caplog.at_level(logging.ERROR):
        asyncio.run(scenario())
    assert "coins flush failed" not in caplog.text
    assert chain.store.coins_tip() == chain.tip and chain.coins.queued == 0
    assert len(stored_coins(chain)) == len(chain.utxos) == len(live_coins(chain))
