"""The seeded fault schedule of one run (docs/e2e.md, "Schedule").

Every draw comes from one ``random.Random(manifest.seed)``: each fault's duration within its
range, its target node, a partition's sides, then the order of all faults. The same manifest
therefore gives the same schedule on every run (and a failing run is replayed by its seed).
Faults run one at a time; ``planned_start`` is where a fault would start if every earlier one
recovered at once (the runner waits for recovery, so real starts can be later).

Pure: no clock, no I/O.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from timecoin.e2e.manifest import Behaviour, FaultKind, Manifest

__all__ = ["DURATION_STEP", "Fault", "build_schedule"]

DURATION_STEP = 0.1
"""Seconds: drawn durations are rounded to this step, so a schedule prints exactly."""


@dataclass(frozen=True, slots=True)
class Fault:
    """One fault of the schedule. ``nodes`` are its targets (one node, except a partition, whose
    ``groups`` are the sides that cannot reach each other); for a Byzantine fault the target is
    the masternode whose key the actor uses."""

    index: int
    kind: FaultKind
    duration: float
    """Seconds from the fault's start to its heal."""
    nodes: tuple[int, ...]
    groups: tuple[tuple[int, ...], ...] = ()
    planned_start: float = 0.0
    """Seconds after the load starts, if every earlier fault recovered at once."""
    delay_ms: int = 0
    jitter_ms: int = 0
    behaviours: tuple[Behaviour, ...] = ()

    def describe(self) -> str:
        """A short human line: ``#2 partition [0, 3] | [1, 2] for 12.5 s``."""
        if self.kind == FaultKind.PARTITION:
            what = " | ".join(str(list(g)) for g in self.groups)
        else:
            what = f"node {self.nodes[0]}"
        extra = ""
        if self.kind == FaultKind.DELAY:
            extra = f" ({self.delay_ms} ± {self.jitter_ms} ms)"
        elif self.kind == FaultKind.BYZANTINE:
            extra = f" ({', '.join(self.behaviours)})"
        return f"#{self.index} {self.kind} {what}{extra} for {self.duration:g} s"

    def to_json(self) -> dict[str, object]:
        return {
            "index": self.index,
            "kind": str(self.kind),
            "duration_s": self.duration,
            "nodes": list(self.nodes),
            "groups": [list(g) for g in self.groups],
            "planned_start_s": self.planned_start,
            **(
                {"delay_ms": self.delay_ms, "jitter_ms": self.jitter_ms}
                if self.kind == FaultKind.DELAY
                else {}
            ),
            **({"behaviours": [str(b) for b in self.behaviours]} if self.kind == FaultKind.BYZANTINE else {}),
        }


def _draw_duration(rng: random.Random, lo: float, hi: float) -> float:
    value = round(rng.uniform(lo, hi) / DURATION_STEP) * DURATION_STEP
    return round(min(hi, max(lo, value)), 3)


def _split(rng: random.Random, nodes: int) -> tuple[tuple[int, ...], ...]:
    """Two sides of (nearly) equal size, members drawn by ``rng``; each side sorted."""
    order = list(range(nodes))
    rng.shuffle(order)
    half = nodes // 2
    sides = (tuple(sorted(order[:half])), tuple(sorted(order[half:])))
    return tuple(sorted(sides))


def build_schedule(manifest: Manifest) -> tuple[Fault, ...]:
    """The manifest's faults, drawn and ordered by its seed (see the module docstring)."""
    rng = random.Random(manifest.seed)
    drawn: list[Fault] = []
    everyone = tuple(range(manifest.nodes))
    for spec in manifest.faults:
        for _ in range(spec.count):
            duration = _draw_duration(rng, spec.min_duration, spec.max_duration)
            if spec.kind == FaultKind.PARTITION:
                groups = spec.groups if spec.groups is not None else _split(rng, manifest.nodes)
                drawn.append(Fault(0, spec.kind, duration, everyone, groups))
                continue
            target = rng.choice(spec.nodes if spec.nodes is not None else everyone)
            drawn.append(
                Fault(
                    0,
                    spec.kind,
                    duration,
                    (target,),
                    delay_ms=spec.delay_ms if spec.kind == FaultKind.DELAY else 0,
                    jitter_ms=spec.jitter_ms if spec.kind == FaultKind.DELAY else 0,
                    behaviours=spec.behaviours if spec.kind == FaultKind.BYZANTINE else (),
                )
            )
    rng.shuffle(drawn)
    out: list[Fault] = []
    at = manifest.warmup
    for i, fault in enumerate(drawn):
        out.append(
            Fault(
                i,
                fault.kind,
                fault.duration,
                fault.nodes,
                fault.groups,
                round(at, 3),
                fault.delay_ms,
                fault.jitter_ms,
                fault.behaviours,
            )
        )
        at += fault.duration + manifest.gap
    return tuple(out)
