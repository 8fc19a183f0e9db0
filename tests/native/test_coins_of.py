"""``UtxoSet.coins_of`` (one native scan for an owner's coins) against a Python scan of the same
entries: random sets whose owners come from a small pool (so several coins share an owner and
some owners share a prefix), random owner queries, same coins in the same (outpoint) order."""

from __future__ import annotations

import hypothesis.strategies as st
import pytest
import timecoin_native
from hypothesis import given

from timecoin.core.types import Coin

# Owners from a small pool; two of them share their first two bytes (the native prefix table).
OWNER_POOL = [bytes([i]) * 32 for i in range(6)] + [b"\x02\x02" + bytes(30)]

entries_st = st.dictionaries(
    st.binary(min_size=36, max_size=36),
    st.tuples(
        st.integers(0, 2**64 - 1), st.sampled_from(OWNER_POOL), st.integers(0, 2**64 - 1), st.booleans()
    ),
    max_size=60,
)


def python_scan(entries: dict[bytes, bytes], owners: list[bytes]) -> list[tuple[bytes, bytes]]:
    """The reference: every (outpoint, coin) whose coin's pubkey_hash is an owner, by outpoint."""
    wanted = set(owners)
    return sorted((op, coin) for op, coin in entries.items() if Coin.decode(coin).pubkey_hash in wanted)


@given(entries_st, st.lists(st.sampled_from([*OWNER_POOL, bytes(range(32))]), max_size=10))
def test_coins_of_matches_a_python_scan(raw, owners):
    entries = {op: Coin(*fields).encode() for op, fields in raw.items()}
    utxos = timecoin_native.UtxoSet()
    utxos.load(list(entries.items()))
    assert utxos.coins_of(b"".join(owners)) == python_scan(entries, owners)


def test_coins_of_rejects_a_ragged_owner_buffer():
    utxos = timecoin_native.UtxoSet()
    assert utxos.coins_of(b"") == []
    with pytest.raises(ValueError, match="concatenation of 32-byte items"):
        utxos.coins_of(bytes(33))
    with pytest.raises(TypeError):
        utxos.coins_of("ab" * 32)  # type: ignore[arg-type]
