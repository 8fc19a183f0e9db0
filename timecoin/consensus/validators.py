"""The masternode set of one height as consensus weighs it: keys, integer weights, quorums
(DESIGN §5, §6, §7).

* **Quorum** (finality certificate, commit certificate): weight ``w`` with ``3·w ≥ 2·total``,
  i.e. at least 2/3 of the *whole* set's weight, not of the votes received (DESIGN §6, §7). Two
  quorums overlap in at least 1/3 of the weight, which is more than the Byzantine weight the
  protocol tolerates (strictly below 1/3), so they always share an honest masternode.
* **Blocking** weight (rejection, round skip): ``3·w > total``, more than 1/3: it contains at
  least one honest masternode.

Integer arithmetic only. The set comes from the chain (``ChainState.leader_set``), never from
gossip (DESIGN §12 invariant 7).
"""

from __future__ import annotations

import bisect
import random
from collections.abc import Sequence
from dataclasses import dataclass, field

from timecoin._args import PUBLIC_KEY_LEN

__all__ = ["ValidatorSet", "is_blocking", "is_quorum"]


def is_quorum(weight: int, total: int) -> bool:
    """At least 2/3 of ``total``: ``3·weight ≥ 2·total`` (DESIGN §6, §7)."""
    return 3 * weight >= 2 * total and total > 0


def is_blocking(weight: int, total: int) -> bool:
    """More than 1/3 of ``total``: ``3·weight > total`` (DESIGN §6, rejection)."""
    return 3 * weight > total


@dataclass(frozen=True)
class ValidatorSet:
    """The masternode set of ``height``: ``keys`` ascending, ``weights`` parallel (each ≥ 1)."""

    height: int
    keys: tuple[bytes, ...]
    weights: tuple[int, ...]
    total: int = field(init=False)
    _weight: dict[bytes, int] = field(init=False, repr=False, compare=False)
    _cumulative: list[int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if len(self.keys) != len(self.weights):
            raise ValueError(f"{len(self.keys)} keys but {len(self.weights)} weights")
        if list(self.keys) != sorted(set(self.keys)):
            raise ValueError("validator keys must be unique and ascending")
        for k, w in zip(self.keys, self.weights, strict=True):
            if not isinstance(k, bytes) or len(k) != PUBLIC_KEY_LEN:
                raise ValueError("validator keys must be 32-byte public keys")
            if not isinstance(w, int) or isinstance(w, bool) or w < 1:
                raise ValueError(f"validator weights must be ints >= 1, got {w!r}")
        object.__setattr__(self, "total", sum(self.weights))
        object.__setattr__(self, "_weight", dict(zip(self.keys, self.weights, strict=True)))
        cumulative, running = [], 0
        for w in self.weights:
            running += w
            cumulative.append(running)
        object.__setattr__(self, "_cumulative", cumulative)

    @classmethod
    def of(cls, height: int, keys: Sequence[bytes], weights: Sequence[int]) -> ValidatorSet:
        """A set from parallel sequences in any order (sorted here by key)."""
        pairs = sorted(zip(keys, weights, strict=True))
        return cls(height, tuple(k for k, _ in pairs), tuple(w for _, w in pairs))

    def __len__(self) -> int:
        return len(self.keys)

    def __contains__(self, key: object) -> bool:
        return key in self._weight

    def weight(self, key: bytes) -> int:
        """The weight of ``key``; 0 if it is not in the set."""
        return self._weight.get(key, 0)

    def weight_of(self, keys: Sequence[bytes] | set[bytes]) -> int:
        """Summed weight of distinct members among ``keys`` (non-members count 0)."""
        return sum(self._weight.get(k, 0) for k in set(keys))

    def is_quorum(self, weight: int) -> bool:
        return is_quorum(weight, self.total)

    def is_blocking(self, weight: int) -> bool:
        return is_blocking(weight, self.total)

    def sample(self, rng: random.Random, k: int, exclude: bytes | None = None) -> list[bytes]:
        """``k`` members drawn with replacement, each with probability weight / total weight of
        the members other than ``exclude`` (Snowball's "k sampled by weight", DESIGN §6). Empty
        if nobody else is in the set. Local policy (who to ask), not consensus: ``rng`` is the
        node's own."""
        excluded_weight = self._weight.get(exclude, 0) if exclude is not None else 0
        pool = self.total - excluded_weight
        if pool <= 0:
            return []
        skip = self.keys.index(exclude) if excluded_weight else -1
        out = []
        for _ in range(k):
            r = rng.randrange(pool)
            if skip >= 0 and r >= self._cumulative[skip] - excluded_weight:
                r += excluded_weight
            out.append(self.keys[bisect.bisect_right(self._cumulative, r)])
        return out
