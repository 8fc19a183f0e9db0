"""How often the stored coins are flushed, and how they are keyed (timecoin/store/coins.py,
timecoin/store/chainstore.py ``coin_key``; issue 13, "blocks off the critical path";
docs/benchmarks.md).

LMDB copies every page a write transaction touches. One block's coin changes on random outpoints
touch most leaf pages of a large set, so writing the changes of several blocks in one flush
writes each page once instead of once per block; and keyed by creation height, a block's new
coins go into the last pages instead of all over the database.

Group ``coins-flush``, identical changes in each case: :data:`BLOCKS` blocks of :data:`DELETES`
spent (chosen at random among all coins, ``any-age``, or among the previous block's, ``young``)
and :data:`PUTS` created coins (a
2-s devnet block at 6,000 tx/s) on a store already holding :data:`PRELOAD` coins, written by the
node's :class:`CoinsFlusher` (:data:`~timecoin.store.coins.COINS_CHUNK` writes per store
transaction) after every block or once for all of them (the node's 20-s interval at 2-s slots),
with the coins keyed as the node keys them (``by-height``) or by outpoint as before
(``by-outpoint``). Each records milliseconds of writes per block, the largest chunk's
milliseconds, and its correctness check: the stored coins equal the expected set and the coins
tip is the last block.
"""

from __future__ import annotations

import random
import time

import pytest

from timecoin.store.chainstore import ChainStore, Tip, UtxoDelta, coin_key
from timecoin.store.coins import CoinsFlusher

PRELOAD = 200_000
"""Coins stored before the timed flushes (a devnet after about a minute of 6,000 tx/s)."""
BLOCKS = 10
DELETES = 12_000
PUTS = 24_000


KEYS = {"by-height": coin_key, "by-outpoint": lambda outpoint, coin: outpoint}
"""How a layout keys a coin in the ``utxo`` database: the node's, and the one before it."""


def _coin(rng: random.Random, height: int) -> bytes:
    return rng.randbytes(40) + height.to_bytes(8, "little") + b"\x00"


def _chain(
    tmp_path, rng: random.Random, layout: str, spends: str
) -> tuple[ChainStore, dict[bytes, bytes], list[UtxoDelta], list[Tip]]:
    """A store at genesis with :data:`PRELOAD` coins keyed by ``layout`` and :data:`BLOCKS`
    committed blocks whose coins are not written yet; the expected set after them; each block's
    delta and tip. ``spends``: ``any-age`` picks each spent coin among all coins, ``young``
    among the previous block's (the genesis coins for the first), as the load generator
    spends."""
    key = KEYS[layout]
    store = ChainStore.open(tmp_path, unsafe_nosync=True)
    coins = {rng.randbytes(36): _coin(rng, 0) for _ in range(PRELOAD)}
    store.write_genesis(2, bytes(32), b"genesis", [])
    store.write_coins(sorted((key(o, c), c) for o, c in coins.items()), Tip(0, bytes(32)))
    live = list(coins)
    deltas, tips = [], []
    for height in range(1, BLOCKS + 1):
        delta: dict[bytes, bytes | None] = {}
        for _ in range(DELETES):
            i = rng.randrange(len(live))
            live[i], live[-1] = live[-1], live[i]
            outpoint = live.pop()
            delta[key(outpoint, coins.pop(outpoint))] = None
        created = [rng.randbytes(36) for _ in range(PUTS)]
        for outpoint in created:
            coins[outpoint] = _coin(rng, height)
            delta[key(outpoint, coins[outpoint])] = coins[outpoint]
        live = created if spends == "young" else live + created
        block_hash = height.to_bytes(32, "big")
        store.commit_block(height, block_hash, b"block", b"undo")
        deltas.append(sorted(delta.items()))
        tips.append(Tip(height, block_hash))
    return store, coins, deltas, tips


def _merged(deltas: list[UtxoDelta]) -> UtxoDelta:
    """What ``UtxoSet.take_delta`` returns after all of them (a coin created and spent in
    between is deleted though never stored: harmless, as on a node)."""
    merged: dict[bytes, bytes | None] = {}
    for delta in deltas:
        merged.update(delta)
    return sorted(merged.items())


class Taken:
    """A delta worked out already, in the shape the flusher takes a set's changes in
    (``timecoin_native.DirtyCoins``)."""

    def __init__(self, writes: UtxoDelta) -> None:
        self.writes = writes

    def __len__(self) -> int:
        return len(self.writes)

    def delta(self) -> UtxoDelta:
        return self.writes


def flush(store: ChainStore, rounds: list[tuple[UtxoDelta, Tip]]) -> tuple[float, float]:
    """Writes each (delta, tip) with a :class:`CoinsFlusher`; returns (seconds in all, largest
    chunk's seconds)."""
    pending = [(Taken(delta), tip) for delta, tip in rounds]
    flusher = CoinsFlusher(store, pending.pop)  # type: ignore[arg-type]
    pending.reverse()
    largest = 0.0
    started = time.perf_counter()
    for _ in rounds:
        flusher.note_block()
        while True:
            chunk_started = time.perf_counter()
            flusher.write_chunk()
            largest = max(largest, time.perf_counter() - chunk_started)
            if not flusher.queued:
                break
    return time.perf_counter() - started, largest


@pytest.mark.parametrize("spends", ["any-age", "young"])
@pytest.mark.parametrize("layout", list(KEYS))
@pytest.mark.parametrize("every", [1, BLOCKS], ids=["every-block", f"every-{BLOCKS}-blocks"])
@pytest.mark.benchmark(group="coins-flush")
def test_coins_flush(benchmark, tmp_path_factory, every, layout, spends):
    made: list[tuple[ChainStore, dict[bytes, bytes], Tip]] = []

    def setup():
        rng = random.Random(len(made))
        store, coins, deltas, tips = _chain(tmp_path_factory.mktemp("coins"), rng, layout, spends)
        made.append((store, coins, tips[-1]))
        if every == 1:
            rounds = list(zip(deltas, tips, strict=True))
        else:
            rounds = [(_merged(deltas), tips[-1])]
        return (store, rounds), {}

    seconds, largest = benchmark.pedantic(flush, setup=setup, rounds=2)
    correct = True
    for store, coins, tip in made:
        correct &= store.coins_tip() == tip and dict(store.utxos()) == coins
        store.close()
    benchmark.extra_info.update(
        {
            "ms_per_block": round(1000 * seconds / BLOCKS, 1),
            "largest_chunk_ms": round(1000 * largest, 1),
            "correct": correct,
        }
    )
    assert correct
