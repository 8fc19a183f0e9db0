"""Network parameters: one frozen table per network, the single definition of every protocol
constant (DESIGN §4, §5, §6, §7, §8).

Nothing here does I/O. Values that DESIGN fixes carry its section; the rest are operational
choices, explained beside them.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

COIN = 100_000_000
"""Satoshis per TIME (DESIGN §4: 1 TIME = 100,000,000 sat)."""


class Network(enum.IntEnum):
    """Network ids, as committed in every signature (docs/encoding.md, "Signatures")."""

    MAINNET = 0
    TESTNET = 1
    DEVNET = 2


class Tier(enum.IntEnum):
    """Masternode collateral tiers (DESIGN §5), ordered by collateral."""

    FREE = 0
    BRONZE = 1
    SILVER = 2
    GOLD = 3


TIER_COLLATERAL: dict[Tier, int] = {
    Tier.FREE: 0,
    Tier.BRONZE: 1_000 * COIN,
    Tier.SILVER: 10_000 * COIN,
    Tier.GOLD: 100_000 * COIN,
}
"""Collateral per tier, sat (DESIGN §5)."""

TIER_BASE_WEIGHT: dict[Tier, int] = {Tier.FREE: 1, Tier.BRONZE: 2, Tier.SILVER: 4, Tier.GOLD: 8}
"""Base voting/reward weight per tier (DESIGN §5)."""


def tier_for_collateral(amount: int) -> Tier:
    """The highest tier whose collateral ``amount`` (sat) covers."""
    return max(t for t, c in TIER_COLLATERAL.items() if amount >= c)


LONGEVITY_STEP_SECONDS = 30 * 86_400
"""Registered time that earns one longevity step: 30 days (DESIGN §5, "+1 % per 30 days"),
counted in blocks as ``LONGEVITY_STEP_SECONDS // block_slot`` (docs/masternodes.md)."""
LONGEVITY_STEP_PERCENT = 1
"""Longevity bonus per step, percent of the base weight (DESIGN §5)."""
LONGEVITY_CAP_PERCENT = 100
"""Largest longevity bonus, percent of the base weight (DESIGN §5: "cap +100 %")."""

REPUTATION_WINDOW = 144
"""Blocks whose commit certificates decide a masternode's reputation at a height: the last
``REPUTATION_WINDOW`` blocks before it (DESIGN §5, "presence in recent commit certificates";
144 blocks is one day of 600 s slots). Blocks without a certificate do not count."""
REPUTATION_SCALE = 10_000
"""Fixed-point unit of reputation: 10,000 = 1.0 (basis points; docs/masternodes.md)."""
REPUTATION_MIN = 5_000
"""Reputation of a masternode that signed none of the counted certificates: 0.5 (DESIGN §5)."""
REPUTATION_MAX = 15_000
"""Reputation of a masternode that signed all of the counted certificates: 1.5 (DESIGN §5)."""

HEARTBEAT_MAX_CLOCK_SKEW = 15.0
"""Seconds a heartbeat's timestamp may lie ahead of the receiver's clock before it is refused
(liveness only, DESIGN §5; never an input to consensus, DESIGN §12 invariant 7)."""

FULL_BLOCK_ROUNDS = 2
"""Rounds of a height whose leader proposes a full block: round 0's leader, then one rotation
to round 1's (DESIGN §7, "rotate the leader twice": the second rotation reaches
:data:`REWARD_ONLY_ROUND`)."""
REWARD_ONLY_ROUND = 2
"""The round whose leader proposes a reward-only block (coinbase only), with
``reward_only_window`` timeouts (DESIGN §7). Every later round votes on the emergency block
(docs/consensus.md)."""
MAX_BLOCK_TIME_DRIFT = 15
"""Seconds a proposed block's timestamp may lie ahead of a validator's clock (DESIGN §7,
"timestamp window"; the same bound as :data:`HEARTBEAT_MAX_CLOCK_SKEW`)."""


@dataclass(frozen=True, slots=True)
class NetworkParams:
    """Everything that differs or could differ between networks. Amounts in sat, times in
    seconds, sizes in bytes."""

    network: Network
    name: str
    address_hrp: str
    """bech32m human-readable part of addresses (DESIGN §3)."""
    magic: bytes
    """4 bytes opening every P2P frame (DESIGN §8)."""
    p2p_port: int
    rpc_port: int
    metrics_port: int

    block_slot: float
    """Seconds per block slot (DESIGN §4)."""
    block_reward: int = 100 * COIN
    """Coinbase per block (DESIGN §4)."""
    treasury_reward: int = 5 * COIN
    """Part of the block reward paid to the treasury (DESIGN §4); the rest goes to masternodes."""

    max_tx_size: int = 1_000_000
    """DESIGN §4."""
    min_fee_base: int = 1_000
    """Minimum fee, fixed part, sat (DESIGN §4)."""
    min_fee_per_mille: int = 1
    """Minimum fee, proportional part: 0.1 % of the value sent to others, the outputs paying an
    address none of the inputs spends from (DESIGN §4)."""
    dust_limit: int = 546
    """Smallest output value, sat (DESIGN §4)."""
    max_block_size: int = 2**31 - 1
    """Largest encoded block, bytes. Must not cap the throughput goal (DESIGN §4, §11): 10,000
    tx/s over a 600 s slot is ~2 GB of transfers, so mainnet allows the u31 maximum and moves
    bodies in chunks (DESIGN §4)."""

    mempool_max_txs: int = 10_000
    """DESIGN §4."""
    mempool_max_bytes: int = 300_000_000
    """DESIGN §4."""

    reorg_max_depth: int = 1_000
    """Deepest rollback the node performs (DESIGN §4)."""
    reorg_alert_depth: int = 100
    """Rollbacks deeper than this are logged as an alert and counted (DESIGN §4)."""

    leader_timeout: float = 30.0
    """DESIGN §7."""
    voting_window: float = 4.0
    """DESIGN §7."""
    reward_only_window: float = 2.0
    """DESIGN §7."""
    min_active_masternodes: int = 3
    """Production gate (DESIGN §5): masternodes that must be online for a block round to start."""
    gate_capped_by_set: bool = False
    """Devnet only: the production gate asks for ``min(min_active_masternodes, registered
    masternodes)`` online, so a devnet of one or two masternodes produces blocks once all of them
    are online (docs/devnet.md, "Small devnets"). Elsewhere the gate is DESIGN §5's fixed count."""
    heartbeat_interval: float = 30.0
    """DESIGN §5."""
    heartbeat_expiry: float = 60.0
    """A masternode unseen this long is offline (DESIGN §5)."""
    snowball_k: int = 20
    """DESIGN §6."""
    snowball_alpha: int = 14
    """DESIGN §6."""
    snowball_beta: int = 20
    """DESIGN §6."""
    snowball_round_timeout: float = 0.5
    """DESIGN §6."""
    finality_vote_interval: float = 0.025
    """Seconds between a masternode's signed finality vote batches: one message per voter per
    short interval carrying many txids (DESIGN §6, "tens of ms"); also how long a new
    transaction waits before its first vote, so a conflicting spend gossiped meanwhile is seen
    before the vote is signed."""
    finality_revote_interval: float = 1.0
    """Seconds after which a masternode repeats its decision on a transaction that is still
    neither final nor rejected (votes lost to a partition or a restart; docs/consensus.md)."""
    conflict_deadline: float = 10.0
    """Seconds after a conflict is seen until, still unsettled by votes and Snowball, it is
    settled by the next block (DESIGN §6; docs/consensus.md, "Conflicts")."""

    lmdb_unsafe_nosync: bool = False
    """Skip fsync on commit. Only a devnet may (DESIGN §9): a crash can lose recent blocks."""

    def min_fee(self, sent_to_others: int) -> int:
        """Minimum fee of a transaction sending ``sent_to_others`` sat to others (DESIGN §4:
        1,000 sat + 0.1 % of the value of the outputs paying an address that none of its inputs
        spends from; change and self-sends pay the base only), integer sat, rounded down."""
        return self.min_fee_base + sent_to_others * self.min_fee_per_mille // 1000


MAINNET = NetworkParams(
    network=Network.MAINNET,
    name="mainnet",
    address_hrp="time",
    magic=bytes.fromhex("54494d45"),  # "TIME"
    p2p_port=24100,
    rpc_port=24101,
    metrics_port=24102,
    block_slot=600.0,
)

TESTNET = NetworkParams(
    network=Network.TESTNET,
    name="testnet",
    address_hrp="ttime",
    magic=bytes.fromhex("54544d45"),
    p2p_port=24200,
    rpc_port=24201,
    metrics_port=24202,
    block_slot=600.0,
)

DEVNET = NetworkParams(
    network=Network.DEVNET,
    name="devnet",
    address_hrp="dtime",
    magic=bytes.fromhex("44544d45"),
    p2p_port=24300,
    rpc_port=24301,
    metrics_port=24302,
    block_slot=2.0,
    max_block_size=256_000_000,
    leader_timeout=3.0,
    voting_window=1.0,
    reward_only_window=0.5,
    conflict_deadline=2.0,
    lmdb_unsafe_nosync=True,
    gate_capped_by_set=True,
)

NETWORKS: dict[str, NetworkParams] = {p.name: p for p in (MAINNET, TESTNET, DEVNET)}


def by_name(name: str) -> NetworkParams:
    """The parameters of network ``name``; ``ValueError`` naming the known ones otherwise."""
    try:
        return NETWORKS[name]
    except KeyError:
        raise ValueError(f"unknown network {name!r}; known: {', '.join(NETWORKS)}") from None


def by_id(network: int) -> NetworkParams:
    """The parameters of network id ``network``."""
    for p in NETWORKS.values():
        if p.network == network:
            return p
    raise ValueError(f"unknown network id {network}")
