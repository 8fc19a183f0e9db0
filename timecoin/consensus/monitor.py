"""Consensus monitoring: per-round events and phase durations, counters, finality latency
(DESIGN §7 "every round is recorded as monitoring events with per-phase durations", §10).

The seven phases of a slot (DESIGN §7) and what measures them:

================  ==============================================================================
``sync``          entering the height → round 0 starts (slot wait, status exchange, gate)
``election``      computing the round's leader (CPU time)
``construction``  building the proposed block (CPU time, leader only)
``proposal``      round start → this node's prevote (waiting for and validating the proposal)
``voting``        prevote → precommit (collecting 2/3 prevotes)
``collection``    precommit → 2/3 precommits seen (the commit certificate)
``finalization``  commit → block applied and persisted
================  ==============================================================================

Phase boundaries use the engine's clock (the driver's ``now``), CPU phases an injected
performance counter; in a simulation both are fake, and that is fine: the numbers are for
operators, never inputs to consensus. :meth:`Monitor.snapshot` is a plain JSON-ready dict
(``getconsensusinfo``, Prometheus collectors).
"""

from __future__ import annotations

import statistics
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any

__all__ = ["PHASES", "Monitor", "RoundRecord"]

PHASES = ("sync", "election", "construction", "proposal", "voting", "collection", "finalization")
MAX_EVENTS_PER_ROUND = 64


@dataclass
class RoundRecord:
    """What happened in one (height, round)."""

    height: int
    round: int
    kind: str
    """``full``, ``reward-only`` or ``emergency`` (DESIGN §7 fallback)."""
    started: float
    leader: str | None = None
    phases: dict[str, float] = field(default_factory=dict)
    events: list[tuple[float, str]] = field(default_factory=list)
    prevote_weight: int = 0
    precommit_weight: int = 0
    prevotes: int = 0
    precommits: int = 0
    outcome: str = "running"
    marks: dict[str, float] = field(default_factory=dict)

    def event(self, now: float, name: str) -> None:
        if len(self.events) < MAX_EVENTS_PER_ROUND:
            self.events.append((now, name))

    def add_phase(self, phase: str, seconds: float) -> None:
        self.phases[phase] = self.phases.get(phase, 0.0) + max(0.0, seconds)

    def as_dict(self) -> dict[str, Any]:
        return {
            "height": self.height,
            "round": self.round,
            "kind": self.kind,
            "leader": self.leader,
            "started": self.started,
            "outcome": self.outcome,
            "phases": {p: round(self.phases[p], 6) for p in PHASES if p in self.phases},
            "prevotes": self.prevotes,
            "prevote_weight": self.prevote_weight,
            "precommits": self.precommits,
            "precommit_weight": self.precommit_weight,
            "events": [{"t": t, "event": e} for t, e in self.events],
        }


class Monitor:
    """Counters and the last ``keep`` round records of one node's consensus."""

    def __init__(self, keep: int = 32) -> None:
        self.rounds: deque[RoundRecord] = deque(maxlen=keep)
        self.counters: Counter[str] = Counter()
        self.ignored: Counter[str] = Counter()
        """Messages dropped, by reason (``unknown-voter``, ``bad-signature``, ...)."""
        self.evidence: Counter[str] = Counter()
        self.finality_latency: deque[float] = deque(maxlen=4096)
        self.current: RoundRecord | None = None

    def start_round(
        self, height: int, round: int, kind: str, now: float, leader: bytes | None
    ) -> RoundRecord:
        if self.current is not None and self.current.outcome == "running":
            self.current.outcome = "timeout"
        record = RoundRecord(height, round, kind, now, leader.hex() if leader else None)
        self.rounds.append(record)
        self.current = record
        self.counters["rounds"] += 1
        if round > 0:
            self.counters["fallback_rounds"] += 1
        return record

    def ignore(self, reason: str) -> None:
        self.ignored[reason] += 1

    def snapshot(self) -> dict[str, Any]:
        latencies = sorted(self.finality_latency)

        def pct(p: float) -> float | None:
            if not latencies:
                return None
            return latencies[min(len(latencies) - 1, int(p * len(latencies)))]

        return {
            "counters": dict(self.counters),
            "ignored": dict(self.ignored),
            "evidence": dict(self.evidence),
            "finality_latency": {
                "samples": len(latencies),
                "p50": pct(0.50),
                "p95": pct(0.95),
                "p99": pct(0.99),
                "mean": statistics.fmean(latencies) if latencies else None,
            },
            "rounds": [r.as_dict() for r in self.rounds],
        }
