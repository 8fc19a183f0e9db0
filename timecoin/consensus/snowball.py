"""Snowball: converging a masternode's preference among conflicting transactions before it signs
an accept (DESIGN §6; Team Rocket, "Scalable and Probabilistic Leaderless BFT Consensus through
Metastability", 2019, Fig. 3 "Snowball").

One :class:`Snowball` instance per conflicted outpoint. Each poll samples ``k`` masternodes by
weight, with replacement (``ValidatorSet.sample``), asks each for its preferred txid, and counts
every sampled slot's answer; a txid named by at least ``alpha`` of the ``k`` slots is a
successful poll for it. Snowball keeps a confidence counter per txid and prefers the most
confident; ``beta`` consecutive successful polls for the same txid decide. A poll that times out
(``snowball_round_timeout``) counts the answers it has. Values: ``params.snowball_*``.

Pure state: no I/O, no clock; the finality engine sends the queries and feeds the answers.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

__all__ = ["Poll", "Snowball"]


@dataclass
class Poll:
    """One outstanding query: the ``sampled`` keys (with repeats) and the answers so far."""

    query_id: int
    sampled: list[bytes]
    deadline: float
    answers: dict[bytes, bytes | None] = field(default_factory=dict)

    @property
    def complete(self) -> bool:
        return len(self.answers) >= len(set(self.sampled))

    def slot_answers(self) -> list[bytes | None]:
        """One answer per sampled slot (None: no answer, or no preference)."""
        return [self.answers.get(k) for k in self.sampled]


class Snowball:
    """Preference over the conflicting ``candidates`` of one outpoint."""

    def __init__(
        self, outpoint: bytes, candidates: Sequence[bytes], preference: bytes, k: int, alpha: int, beta: int
    ) -> None:
        if preference not in candidates:
            raise ValueError("the initial preference must be a candidate")
        if not 0 < alpha <= k or beta < 1:
            raise ValueError(f"snowball parameters k={k} alpha={alpha} beta={beta} are invalid")
        self.outpoint = outpoint
        self.candidates = set(candidates)
        self.preference = preference
        self.k, self.alpha, self.beta = k, alpha, beta
        self.confidence: Counter[bytes] = Counter()
        self.last: bytes | None = None
        self.consecutive = 0
        self.polls = 0
        self.decided = False
        self.poll: Poll | None = None

    def add_candidate(self, txid: bytes) -> None:
        self.candidates.add(txid)

    def remove_candidate(self, txid: bytes) -> None:
        """Drops a candidate that cannot win any more (rejected); the preference moves to the most
        confident remaining one (ties: lowest txid)."""
        self.candidates.discard(txid)
        if self.preference == txid and self.candidates:
            self.preference = min(self.candidates, key=lambda t: (-self.confidence[t], t))
        if self.last == txid:
            self.last, self.consecutive = None, 0

    def record(self, answers: Sequence[bytes | None]) -> bytes | None:
        """Counts one poll's slot answers (Snowball's loop body). Returns the txid that reached
        ``alpha`` (a successful poll), or None."""
        self.polls += 1
        counts = Counter(a for a in answers if a is not None and a in self.candidates)
        winner = None
        for txid, n in counts.most_common():
            if n >= self.alpha:
                winner = txid
                break
        if winner is None:
            self.consecutive = 0
            return None
        self.confidence[winner] += 1
        if self.confidence[winner] > self.confidence[self.preference]:
            self.preference = winner
        if winner != self.last:
            self.last, self.consecutive = winner, 1
        else:
            self.consecutive += 1
        if self.consecutive >= self.beta:
            self.decided = True
        return winner
