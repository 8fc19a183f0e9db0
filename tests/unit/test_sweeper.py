"""The sweeper: deletes a committed block made due, written after it a chunk per store
transaction by its own task, in queue order, all of them at a stop; past its bound, at once."""

from __future__ import annotations

import asyncio
import logging

import pytest

from timecoin.consensus.store import FINALIZED_DB
from timecoin.ledger.chain import ChainState
from timecoin.ledger.genesis import build_genesis
from timecoin.store import sweeper as sweeper_module
from timecoin.store.chainstore import StoreError
from timecoin.store.sweeper import Sweeper
from timecoin.testing.chaingen import devnet_genesis


@pytest.fixture
def store(tmp_path):
    config, _, _ = devnet_genesis()
    state = ChainState.open(tmp_path / "chain", config.params, build_genesis(config))
    yield state.store
    state.close()


def _records(store, n: int) -> list[tuple[bytes, bytes]]:
    keys = [(FINALIZED_DB, i.to_bytes(8, "big")) for i in range(n)]
    store.write([(db, key, b"record") for db, key in keys])
    return keys


def _left(store) -> int:
    return len(list(store.items(FINALIZED_DB)))


def test_deletes_are_written_a_chunk_at_a_time_in_order(store):
    keys = _records(store, 5)
    sweeper = Sweeper(store, chunk=2)
    sweeper.queue(keys)
    assert sweeper.queued == 5 and _left(store) == 5  # queuing writes nothing
    assert sweeper.write_queued() == 2 and _left(store) == 3
    assert store.get(FINALIZED_DB, keys[0][1]) is None and store.get(FINALIZED_DB, keys[2][1]) is not None
    sweeper.flush()
    assert sweeper.queued == 0 and _left(store) == 0 and sweeper.swept == 5
    assert sweeper.write_queued() == 0


def test_the_task_writes_what_is_queued_yielding_between_chunks(store):
    keys = _records(store, 7)

    async def run() -> list[int]:
        sweeper = Sweeper(store, chunk=3)
        task = asyncio.get_running_loop().create_task(sweeper.run())
        seen = []
        sweeper.queue(keys)
        for _ in range(4):
            await asyncio.sleep(0)
            seen.append(_left(store))
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        return seen

    assert asyncio.run(run()) == [4, 1, 0, 0]  # one chunk per turn of the loop


def test_a_full_queue_is_written_at_once(store, monkeypatch):
    monkeypatch.setattr(sweeper_module, "MAX_QUEUED", 4)
    keys = _records(store, 6)
    sweeper = Sweeper(store, chunk=2)
    sweeper.queue(keys[:4])
    assert _left(store) == 6
    sweeper.queue(keys[4:])
    assert sweeper.queued == 0 and _left(store) == 0


def test_a_refused_delete_writes_nothing_and_stays_queued(store):
    keys = _records(store, 2)
    sweeper = Sweeper(store)
    sweeper.queue([keys[0], (b"utxo", b"k"), keys[1]])  # a core database: not for extra writes
    with pytest.raises(StoreError):
        sweeper.write_queued()
    assert sweeper.queued == 3 and _left(store) == 2


def test_a_store_error_in_the_task_drops_the_queue_and_the_task_goes_on(store, caplog):
    keys = _records(store, 3)

    async def run() -> tuple[int, int, bool]:
        sweeper = Sweeper(store, chunk=10)
        task = asyncio.get_running_loop().create_task(sweeper.run())
        sweeper.queue([keys[0], (b"utxo", b"k")])  # refused as a whole: logged, dropped
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        dropped = sweeper.queued
        sweeper.queue(keys[1:])
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        alive = not task.done()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        return dropped, _left(store), alive

    # The level is set on the module's logger itself, whatever other tests left on its parents.
    with caplog.at_level(logging.ERROR, logger=sweeper_module.__name__):
        assert asyncio.run(run()) == (0, 1, True)  # keys[0] stayed (its chunk failed); the rest went
    assert "sweeper: dropping 2 queued deletes after a store error" in caplog.text
