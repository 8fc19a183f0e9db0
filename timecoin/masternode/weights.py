"""Masternode weights in fixed point: base × (1 + longevity) × reputation (DESIGN §5).

The exact rule (docs/masternodes.md, "Weights"):

* ``base`` = ``TIER_BASE_WEIGHT[tier]``: 1, 2, 4, 8.
* ``longevity`` = ``min(LONGEVITY_CAP_PERCENT, LONGEVITY_STEP_PERCENT × (age // step))`` percent,
  where ``age = height − registered_height`` blocks and ``step`` =
  ``LONGEVITY_STEP_SECONDS // block_slot`` blocks (30 days of the network's slots; the float
  ``block_slot`` is read exactly, as a fraction, so no rounding can differ between nodes).
* ``reputation`` in units of ``REPUTATION_SCALE`` (10,000 = 1.0): ``REPUTATION_MIN +
  (REPUTATION_MAX − REPUTATION_MIN) × signed // counted``, or ``REPUTATION_SCALE`` when
  ``counted`` is 0 (no certificate in the window), so 0 % → 0.5 and 100 % → 1.5, rounded down.
* ``weight`` = ``base × (100 + longevity) × reputation``: an exact integer, ``WEIGHT_UNIT``
  (1,000,000) per unit of weight. No division, so no rounding at all.

Pure integer functions; nothing here reads the chain, the clock or gossip (DESIGN §12
invariant 7): the registry feeds them chain data only.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

from timecoin.params import (
    LONGEVITY_CAP_PERCENT,
    LONGEVITY_STEP_PERCENT,
    LONGEVITY_STEP_SECONDS,
    REPUTATION_MAX,
    REPUTATION_MIN,
    REPUTATION_SCALE,
    TIER_BASE_WEIGHT,
    NetworkParams,
    Tier,
)

__all__ = [
    "WEIGHT_UNIT",
    "WeightParts",
    "longevity_percent",
    "longevity_step_blocks",
    "masternode_weight",
    "reputation",
]

WEIGHT_UNIT = 100 * REPUTATION_SCALE
"""The integer weight of 1.0: base 1, no longevity bonus, reputation 1.0."""


def longevity_step_blocks(params: NetworkParams) -> int:
    """Blocks per longevity step on ``params``' network: ``LONGEVITY_STEP_SECONDS // block_slot``
    (4,320 for 600 s slots), at least 1."""
    return max(1, int(Fraction(LONGEVITY_STEP_SECONDS) // Fraction(params.block_slot)))


def longevity_percent(params: NetworkParams, registered_height: int, height: int) -> int:
    """Longevity bonus, percent, of a masternode registered in block ``registered_height``, at
    ``height`` (> ``registered_height``; ``ValueError`` otherwise)."""
    return _longevity(longevity_step_blocks(params), registered_height, height)


def _longevity(step: int, registered_height: int, height: int) -> int:
    if height <= registered_height:
        raise ValueError(f"a masternode registered at {registered_height} has no weight at height {height}")
    return min(LONGEVITY_CAP_PERCENT, LONGEVITY_STEP_PERCENT * ((height - registered_height) // step))


def reputation(signed: int, counted: int) -> int:
    """Reputation in units of ``REPUTATION_SCALE`` of a masternode that signed ``signed`` of the
    ``counted`` commit certificates of its window (0 <= signed <= counted; ``ValueError``
    otherwise). An empty window (``counted == 0``) is 1.0."""
    if not 0 <= signed <= counted:
        raise ValueError(f"signed must be in 0..={counted}, got {signed}")
    if counted == 0:
        return REPUTATION_SCALE
    return REPUTATION_MIN + (REPUTATION_MAX - REPUTATION_MIN) * signed // counted


def masternode_weight(tier: Tier, longevity: int, reputation_value: int) -> int:
    """``base × (100 + longevity) × reputation``: the integer weight (``WEIGHT_UNIT`` = 1.0).
    ``ValueError`` for a longevity outside 0..=cap or a reputation outside [0.5, 1.5]."""
    if not 0 <= longevity <= LONGEVITY_CAP_PERCENT:
        raise ValueError(f"longevity must be in 0..={LONGEVITY_CAP_PERCENT} percent, got {longevity}")
    if not REPUTATION_MIN <= reputation_value <= REPUTATION_MAX:
        raise ValueError(f"reputation must be in {REPUTATION_MIN}..={REPUTATION_MAX}, got {reputation_value}")
    return TIER_BASE_WEIGHT[Tier(tier)] * (100 + longevity) * reputation_value


@dataclass(frozen=True, slots=True)
class WeightParts:
    """A masternode's weight at one height and what it is made of."""

    public_key: bytes
    payout: bytes
    """pubkey_hash its rewards pay."""
    tier: Tier
    base: int
    """``TIER_BASE_WEIGHT[tier]``."""
    longevity: int
    """Bonus, percent (0..=100)."""
    signed: int
    """Commit certificates of the window it signed."""
    counted: int
    """Commit certificates of the window that count for it."""
    reputation: int
    """Units of ``REPUTATION_SCALE`` (5,000..=15,000)."""
    weight: int
    """``base × (100 + longevity) × reputation``; ``WEIGHT_UNIT`` = 1.0."""

    @classmethod
    def of(
        cls,
        params: NetworkParams,
        public_key: bytes,
        payout: bytes,
        tier: Tier,
        registered_height: int,
        height: int,
        signed: int,
        counted: int,
        step: int | None = None,
    ) -> WeightParts:
        """The weight at ``height`` of a masternode registered in block ``registered_height``
        that signed ``signed`` of ``counted`` certificates of its window. ``step``:
        :func:`longevity_step_blocks` of ``params``, if the caller has it already."""
        step = longevity_step_blocks(params) if step is None else step
        longevity = _longevity(step, registered_height, height)
        rep = reputation(signed, counted)
        return cls(
            public_key,
            payout,
            tier,
            TIER_BASE_WEIGHT[tier],
            longevity,
            signed,
            counted,
            rep,
            masternode_weight(tier, longevity, rep),
        )
