"""Block rewards (DESIGN §4): 100 TIME + fees; 5 TIME to the treasury, the rest by weight."""

from hypothesis import given
from hypothesis import strategies as st

from timecoin.ledger.rewards import coinbase_outputs
from timecoin.params import COIN, DEVNET

TREASURY = b"\xee" * 32


def mn(i):
    return bytes([i]) * 32


def test_split_by_weight():
    outs = coinbase_outputs(DEVNET, 0, [(mn(1), 8), (mn(2), 4), (mn(3), 2), (mn(4), 1)], TREASURY)
    pool = 95 * COIN
    assert outs[0] == (5 * COIN + pool - sum(pool * w // 15 for w in (8, 4, 2, 1)), TREASURY)
    assert outs[1:] == [
        (pool * 8 // 15, mn(1)),
        (pool * 4 // 15, mn(2)),
        (pool * 2 // 15, mn(3)),
        (pool // 15, mn(4)),
    ]
    assert sum(v for v, _ in outs) == 100 * COIN


def test_fees_go_to_masternodes_and_order_is_canonical():
    a = coinbase_outputs(DEVNET, 1_000_000, [(mn(2), 1), (mn(1), 1)], TREASURY)
    b = coinbase_outputs(DEVNET, 1_000_000, [(mn(1), 1), (mn(2), 1)], TREASURY)
    assert a == b
    assert a[1] == ((95 * COIN + 1_000_000) // 2, mn(1))


def test_no_masternodes_pays_everything_to_treasury():
    assert coinbase_outputs(DEVNET, 7, [], TREASURY) == [(100 * COIN + 7, TREASURY)]


def test_shares_below_dust_go_to_treasury():
    outs = coinbase_outputs(DEVNET, 0, [(mn(1), 10**12), (mn(2), 1)], TREASURY)
    assert [h for _, h in outs] == [TREASURY, mn(1)]


@given(
    st.integers(0, 10**12),
    st.lists(st.tuples(st.binary(min_size=32, max_size=32), st.integers(0, 10**6)), max_size=50),
)
def test_outputs_always_add_up(fees, masternodes):
    outs = coinbase_outputs(DEVNET, fees, masternodes, TREASURY)
    assert sum(v for v, _ in outs) == 100 * COIN + fees
    assert all(v >= DEVNET.dust_limit for v, _ in outs[1:])
