"""A wallet's view of the UTXO set: ``UtxoSet.coins_of`` (one native scan, GIL released, rayon)
against a Python scan of the same 1,000,000 coins, for one owner holding 1,000 of them (group
``coins-of``; read the ratio of the means). The set is built outside the timing; each benchmark
records that it found exactly the owner's coins, in outpoint order."""

from __future__ import annotations

import pytest
import timecoin_native

COINS = 1_000_000
OWNERS = 1_000
"""Distinct owners: the looked-up one holds COINS / OWNERS coins."""


def _owner(i: int) -> bytes:
    return i.to_bytes(2, "big") * 16


@pytest.fixture(scope="module")
def entries() -> list[tuple[bytes, bytes]]:
    # value u64 ‖ pubkey_hash ‖ height u64 ‖ is_coinbase u8 (docs/encoding.md, "Coin").
    tail = (1).to_bytes(8, "little") + b"\x00"
    return [
        (
            i.to_bytes(32, "big") + (i % 3).to_bytes(4, "little"),
            (546 + i).to_bytes(8, "little") + _owner(i % OWNERS) + tail,
        )
        for i in range(COINS)
    ]


@pytest.fixture(scope="module")
def utxos(entries: list[tuple[bytes, bytes]]) -> timecoin_native.UtxoSet:
    s = timecoin_native.UtxoSet()
    s.load(entries)
    return s


def _python_scan(entries: list[tuple[bytes, bytes]], owner: bytes) -> list[tuple[bytes, bytes]]:
    return sorted((op, coin) for op, coin in entries if coin[8:40] == owner)


@pytest.mark.benchmark(group="coins-of")
def test_coins_of_native(benchmark, utxos, entries):
    owner = _owner(7)
    found = benchmark.pedantic(utxos.coins_of, args=(owner,), rounds=5, iterations=1)
    ok = len(found) == COINS // OWNERS and found == sorted(found) and all(c[8:40] == owner for _, c in found)
    benchmark.extra_info["coins"] = COINS
    benchmark.extra_info["correct"] = ok
    assert ok


@pytest.mark.benchmark(group="coins-of")
def test_coins_of_python_scan(benchmark, utxos, entries):
    owner = _owner(7)
    found = benchmark.pedantic(_python_scan, args=(entries, owner), rounds=3, iterations=1)
    ok = found == utxos.coins_of(owner)
    benchmark.extra_info["coins"] = COINS
    benchmark.extra_info["correct"] = ok
    assert ok
