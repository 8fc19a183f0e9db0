"""Per-peer token buckets, one per message rate class (DESIGN §8).

A bucket holds up to ``capacity`` tokens and refills at ``rate`` tokens per second; a frame
spends what :func:`frame_cost` says, and one that finds too few is refused. Costs count items,
not frames (DESIGN §13 "the cost of a message is charged to its sender"): a transaction, a
heartbeat, an address or a requested txid each cost one token, and consensus frames one token
per txid's worth of bytes (:data:`~timecoin.p2p.messages.VOTE_TOKEN_BYTES`), so a vote naming
8,000 txids costs what 8,000 one-txid votes do. The budgets are
:data:`timecoin.p2p.messages.RATE_LIMITS`. Pure bookkeeping over a caller's clock: no I/O, no
tasks.
"""

from __future__ import annotations

from timecoin.p2p.messages import RATE_LIMITS, VOTE_TOKEN_BYTES, RateClass

_PER_ITEM = frozenset({RateClass.TX, RateClass.HEARTBEAT, RateClass.ADDR})
"""Classes whose payloads open with an item count u32 (batches, GET_TRANSACTIONS, ADDR)."""


def frame_cost(rate_class: RateClass, payload: bytes) -> int:
    """Tokens a frame of ``rate_class`` costs: its item count for TX, HEARTBEAT and ADDR (read
    from the payload's count u32, at least 1: a malformed count is the decoder's to refuse),
    one per :data:`~timecoin.p2p.messages.VOTE_TOKEN_BYTES` of payload (at least 1) for VOTE,
    else 1."""
    if rate_class is RateClass.VOTE:
        return max(1, len(payload) // VOTE_TOKEN_BYTES)
    if rate_class in _PER_ITEM and len(payload) >= 4:
        return int.from_bytes(payload[:4], "little") or 1
    return 1


class TokenBucket:
    """``capacity`` tokens, refilled at ``rate`` per second of the clock readings passed in."""

    __slots__ = ("rate", "capacity", "_tokens", "_last")

    def __init__(self, rate: float, capacity: float, now: float) -> None:
        if rate <= 0 or capacity <= 0:
            raise ValueError(f"token bucket needs a positive rate and capacity, got {rate}, {capacity}")
        self.rate = rate
        self.capacity = capacity
        self._tokens = capacity
        self._last = now

    def take(self, n: float, now: float) -> bool:
        """Spends ``n`` tokens if there are that many after refilling up to ``now``; ``False``
        (nothing spent) otherwise."""
        tokens = self._tokens + (now - self._last) * self.rate
        if tokens > self.capacity:
            tokens = self.capacity
        self._last = now
        if tokens < n:
            self._tokens = tokens
            return False
        self._tokens = tokens - n
        return True

    def tokens(self, now: float) -> float:
        """Tokens available at ``now`` (no spending)."""
        return min(self.capacity, self._tokens + (now - self._last) * self.rate)


class PeerLimits:
    """The buckets of one peer, by rate class. Classes without a budget are never limited here
    (HANDSHAKE by the handshake state, RESPONSE by the outstanding requests)."""

    __slots__ = ("_buckets",)

    def __init__(self, now: float, limits: dict[RateClass, tuple[float, float]] = RATE_LIMITS) -> None:
        self._buckets: dict[RateClass, TokenBucket] = {
            cls: TokenBucket(rate, capacity, now) for cls, (rate, capacity) in limits.items()
        }

    def allow(self, rate_class: RateClass, cost: float, now: float) -> bool:
        """Whether ``cost`` tokens of ``rate_class`` are available (and spends them if so)."""
        bucket = self._buckets.get(rate_class)
        return bucket is None or bucket.take(cost, now)
