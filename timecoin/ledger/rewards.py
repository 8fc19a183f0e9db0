"""Block rewards: who the coinbase pays and how much (DESIGN §4).

The coinbase of every block pays ``block_reward`` (100 TIME) plus the block's fees:
``treasury_reward`` (5 TIME) to the treasury, and the rest (95 TIME + fees) to the masternodes of
the height in proportion to their weight. Integer arithmetic only: masternode i gets
``pool × w_i // W``; what the rounding leaves, and any share below the dust limit, goes to the
treasury, so the outputs always add up to exactly ``block_reward + fees``. Shares to the same
payout address are merged. Outputs: the treasury first, then masternode payouts in ascending
``pubkey_hash`` order. A validator recomputes the list with this same function and compares it
with the block's coinbase, output for output.
"""

from __future__ import annotations

from collections.abc import Iterable

from timecoin.params import NetworkParams

RewardOutput = tuple[int, bytes]
"""(value in sat, 32-byte pubkey_hash)."""


def coinbase_outputs(
    params: NetworkParams,
    fees: int,
    masternodes: Iterable[tuple[bytes, int]],
    treasury: bytes,
) -> list[RewardOutput]:
    """The coinbase outputs of a block with ``fees`` sat of fees.

    ``masternodes`` yields (payout pubkey_hash, weight) for every masternode of the height; a
    weight is a non-negative integer (the registry's fixed-point weight). Raises ``ValueError``
    for negative fees or weights.
    """
    if fees < 0:
        raise ValueError(f"fees must be >= 0, got {fees}")
    weights: dict[bytes, int] = {}
    for payout, weight in masternodes:
        if weight < 0:
            raise ValueError(f"masternode weight must be >= 0, got {weight}")
        weights[payout] = weights.get(payout, 0) + weight
    pool = params.block_reward - params.treasury_reward + fees
    total_weight = sum(weights.values())
    paid: list[RewardOutput] = []
    if total_weight:
        for payout in sorted(weights):
            share = pool * weights[payout] // total_weight
            if share >= params.dust_limit:
                paid.append((share, payout))
    to_treasury = params.block_reward + fees - sum(v for v, _ in paid)
    return [(to_treasury, treasury), *paid]
