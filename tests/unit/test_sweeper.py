"""The sweeper: deletes committed blocks made due, written after them a chunk per store
transaction by its own task every interval, the blocks queued since merged in key order, all of
them at a stop; past its bound, at once."""

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
from timecoin.testing.util import wait_until_async


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


def test_deletes_are_written_a_chunk_at_a_time_merged_in_key_order(store):
    keys = _records(store, 5)
    sweeper = Sweeper(store, chunk=2)
    sweeper.queue([keys[4], keys[1]])  # one block's, in any order
    sweeper.queue([keys[3], keys[0], keys[2]])  # the next block's
    assert sweeper.queued == 5 and _left(store) == 5  # queuing writes nothing
    assert sweeper.write_queued() == 2 and _left(store) == 3
    assert store.get(FINALIZED_DB, keys[1][1]) is None and store.get(FINALIZED_DB, keys[0][1]) is None
    sweeper.queue([])  # nothing to queue
    sweeper.flush()
    assert sweeper.queued == 0 and _left(store) == 0 and sweeper.swept == 5
    assert sweeper.write_queued() == 0


def test_the_task_writes_what_is_queued_a_chunk_at_a_time(store):
    keys = _records(store, 7)

    async def run() -> list[int]:
        sweeper = Sweeper(store, chunk=3, interval=0.02)
        task = asyncio.get_running_loop().create_task(sweeper.run())
        sweeper.queue(keys)
        seen = [_left(store)]
        while seen[-1]:  # the loop turns between two chunks (timecoin/store/chunked.py)
            await asyncio.sleep(0)
            if _left(store) != seen[-1]:
                seen.append(_left(store))
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        return seen

    assert asyncio.run(run()) == [7, 4, 1, 0]


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


async def _emptied(sweeper: Sweeper) -> None:
    """Returns once a pass has emptied the queue (passes are paced and start at a random moment
    of the interval, so this polls rather than sleeping a fixed time)."""
    await wait_until_async(lambda: not sweeper.queued, interval=0.005)


def test_a_store_error_in_the_task_drops_the_queue_and_the_task_goes_on(store, caplog):
    keys = _records(store, 3)

    async def run() -> tuple[int, int, bool]:
        sweeper = Sweeper(store, chunk=10, interval=0.02)
        task = asyncio.get_running_loop().create_task(sweeper.run())
        sweeper.queue([keys[0], (b"utxo", b"k")])  # refused as a whole: logged, dropped
        await _emptied(sweeper)
        dropped = sweeper.queued
        sweeper.queue(keys[1:])
        await _emptied(sweeper)
        alive = not task.done()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        return dropped, _left(store), alive

    # The level is set on the module's logger itself, whatever other tests left on its parents.
    with caplog.at_level(logging.ERROR, logger=sweeper_module.__name__):
        assert asyncio.run(run()) == (0, 1, True)  # keys[0] stayed (its chunk failed); the rest went
    assert "sweeper: dropping 2 queued deletes after a store error" in caplog.text


def test_a_pass_that_fails_half_way_starts_over_and_counts_right(store):
    keys = _records(store, 4)
    sweeper = Sweeper(store, chunk=2)
    sweeper.queue(keys[:3])
    sweeper.queue([keys[3], (b"utxo", b"k")])  # sorts last: the third chunk is refused
    assert sweeper.write_queued() == 2 and sweeper.write_queued() == 2 and sweeper.queued == 1
    with pytest.raises(StoreError):
        sweeper.write_queued()
    assert sweeper.queued == 5 and _left(store) == 0  # the pass starts over, deleting again
