"""The finality feed (timecoin/consensus/feed.py): numbering, paging, the bounded window with
``missed``, bad cursors, and the long-poll wait."""

from __future__ import annotations

import asyncio

import pytest

from timecoin.consensus.feed import FinalityFeed


def txid(i: int) -> bytes:
    return i.to_bytes(32, "big")


def test_pages_in_order_split_by_outcome():
    feed = FinalityFeed(capacity=100)
    for i in range(10):
        feed.append(txid(i), final=i % 3 != 0)
    assert feed.head == 10
    page = feed.since(2, 5)
    assert page.final == [txid(2), txid(4), txid(5)] and page.rejected == [txid(3), txid(6)]
    assert page.cursor == 7 and page.missed == 0
    end = feed.since(10, 5)
    assert end.final == end.rejected == [] and end.cursor == 10


def test_old_decisions_fall_out_and_are_counted_missed():
    feed = FinalityFeed(capacity=4)
    for i in range(8):  # reaching 2 × capacity drops the oldest half
        feed.append(txid(i), final=True)
    page = feed.since(1, 100)
    assert page.missed == 3 and page.final == [txid(i) for i in range(4, 8)] and page.cursor == 8


@pytest.mark.parametrize("cursor,limit", [(-1, 1), (11, 1), (0, 0)])
def test_bad_cursor_or_limit(cursor, limit):
    feed = FinalityFeed()
    for i in range(10):
        feed.append(txid(i), final=True)
    with pytest.raises(ValueError):
        feed.since(cursor, limit)


def test_wait_returns_on_a_new_decision_or_the_timeout():
    async def scenario():
        feed = FinalityFeed()
        loop = asyncio.get_running_loop()
        start = loop.time()
        await feed.wait(0, 0.05)  # nothing comes: the timeout
        assert loop.time() - start >= 0.04
        waiter = asyncio.create_task(feed.wait(0, 10))
        await asyncio.sleep(0.01)
        assert not waiter.done()
        feed.append(txid(1), final=True)
        await asyncio.wait_for(waiter, 1)
        await asyncio.wait_for(feed.wait(0, 10), 0.1)  # already there: at once

    asyncio.run(scenario())
