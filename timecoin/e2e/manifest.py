"""E2E manifests: a TOML file naming the network, the load and the faults of one run
(docs/e2e.md; CometBFT's ``test/e2e/pkg/manifest.go`` is the model).

Parsing is strict: an unknown key, a wrong type or a value out of range raises
:class:`ManifestError` naming the file and the key (``fault[2].duration: ...``), so a typo never
silently turns a fault off. The result is a tree of frozen dataclasses; this module reads one
file and touches nothing else.
"""

from __future__ import annotations

import enum
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from timecoin.params import DEVNET

__all__ = [
    "DEFAULT_GAP",
    "DEFAULT_LIVENESS_BOUND",
    "DEFAULT_SAMPLE_INTERVAL",
    "DEFAULT_WARMUP",
    "MAX_MASTERNODES",
    "ROUND_WINDOW",
    "Behaviour",
    "FaultKind",
    "FaultSpec",
    "LoadSpec",
    "Manifest",
    "ManifestError",
    "NetworkSpec",
    "load_manifest",
    "parse_manifest",
]

DEFAULT_LIVENESS_BOUND = 60.0
"""Seconds after a fault heals within which every node must hold a block no node held at the
heal (docs/e2e.md, "Liveness"): on a devnet with 2 s slots that is 30 slots, room for the
reconnect back-off, catch-up and the leader-timeout rotations of DESIGN §7."""
DEFAULT_WARMUP = 15.0
"""Seconds of load before the first fault: the load is finalizing when faults start."""
DEFAULT_GAP = 10.0
"""Quiet seconds after each fault's recovery before the next fault starts."""
DEFAULT_SAMPLE_INTERVAL = 0.5
"""Seconds between two height samples of every node (the timeline and the liveness check)."""
MAX_MASTERNODES = 16
"""Most masternode processes one run starts (``timecoin devnet``'s limit)."""
MIN_MASTERNODES = 3
"""Fewest: the production gate of DESIGN §5 needs three active masternodes."""
ROUND_WINDOW = max(DEVNET.block_slot, DEVNET.leader_timeout, DEVNET.voting_window, DEVNET.reward_only_window)
"""The longest round window of the devnet, seconds (DESIGN §7 timeouts, ``timecoin.params``):
an ``outage`` must last longer."""


class ManifestError(ValueError):
    """A manifest that does not parse or validate; the message names the file and the key."""


class FaultKind(enum.StrEnum):
    """What a fault does (docs/e2e.md, "Faults")."""

    KILL = "kill"
    """SIGKILL one node, keep it down for the duration, restart it on the same data directory."""
    PAUSE = "pause"
    """SIGSTOP one node for the duration, then SIGCONT."""
    OUTAGE = "outage"
    """Cut one running node off from every peer for longer than any round window, then heal."""
    PARTITION = "partition"
    """Split the nodes into groups that cannot reach each other, then heal."""
    DELAY = "delay"
    """Delay and reorder one node's P2P messages (through the runner's delay relay)."""
    BYZANTINE = "byzantine"
    """A Byzantine actor with one masternode's real key misbehaves for the duration."""


class Behaviour(enum.StrEnum):
    """What the Byzantine actor does while its fault lasts (DESIGN §12.8, §13)."""

    LYING_STATUS = "lying-status"
    """Signed statuses claiming height 2^64 - 1."""
    FORGED_DECISION = "forged-decision"
    """Decisions whose commit certificate is signed by a key outside the masternode set."""
    EQUIVOCATION = "equivocation"
    """A second, conflicting proposal, prevote and precommit for every one its key signs."""
    SPLIT_VOTES = "split-votes"
    """Double spends sent to two halves of the network, each half shown an accept for its own."""


@dataclass(frozen=True, slots=True)
class NetworkSpec:
    """The devnet: ``masternodes`` ``timecoind`` processes (equal Gold masternodes of the devnet
    genesis) and ``accounts`` funded genesis accounts the load spends."""

    masternodes: int = 4
    accounts: int = 16
    base_port: int | None = None
    """Node i listens on base+3i (P2P), +1 (RPC), +2 (metrics); None: chosen per run."""


@dataclass(frozen=True, slots=True)
class LoadSpec:
    """The real load test (:mod:`timecoin.loadtest`) at ``rate`` tx/s for the run's duration."""

    rate: float


@dataclass(frozen=True, slots=True)
class FaultSpec:
    """``count`` faults of ``kind``, each lasting a duration the seed draws from
    [``min_duration``, ``max_duration``] seconds, each aimed at a node the seed draws from
    ``nodes`` (None: any node). ``groups`` fixes a partition's sides (None: the seed splits the
    nodes in two halves); ``delay_ms``/``jitter_ms`` shape a delay; ``behaviours`` are what a
    Byzantine actor does."""

    kind: FaultKind
    count: int
    min_duration: float
    max_duration: float
    nodes: tuple[int, ...] | None = None
    groups: tuple[tuple[int, ...], ...] | None = None
    delay_ms: int = 100
    jitter_ms: int = 50
    behaviours: tuple[Behaviour, ...] = tuple(Behaviour)


@dataclass(frozen=True, slots=True)
class Manifest:
    """One run: its ``seed`` fixes the schedule; ``duration`` seconds of load, during which the
    faults run one after another (``warmup`` s before the first, ``gap`` s after each recovery);
    ``liveness_bound`` s is how long the network may take to commit again after a fault heals."""

    name: str
    seed: int
    duration: float
    load: LoadSpec
    network: NetworkSpec
    faults: tuple[FaultSpec, ...]
    liveness_bound: float = DEFAULT_LIVENESS_BOUND
    warmup: float = DEFAULT_WARMUP
    gap: float = DEFAULT_GAP
    sample_interval: float = DEFAULT_SAMPLE_INTERVAL

    @property
    def nodes(self) -> int:
        return self.network.masternodes

    def planned_span(self) -> float:
        """Seconds the schedule needs at most if every fault recovers at once: the warm-up, then
        each fault's longest duration and the gap."""
        return self.warmup + sum(f.count * (f.max_duration + self.gap) for f in self.faults)


# -- parsing ------------------------------------------------------------------------------------------


class _Table:
    """One TOML table being read: every key must be taken exactly once; errors name the path."""

    def __init__(self, source: str, where: str, data: Any) -> None:
        if not isinstance(data, dict):
            raise ManifestError(f"{source}: {where or 'the manifest'} must be a table, not {_type(data)}")
        self.source, self.where, self.data = source, where, dict(data)

    def error(self, key: str, message: str) -> ManifestError:
        path = f"{self.where}.{key}" if self.where else key
        return ManifestError(f"{self.source}: {path}: {message}")

    def take(self, key: str, default: Any = ...) -> Any:
        """The value of ``key`` (removed from the unread keys); ``default`` if absent, an error
        if there is none (``...``)."""
        if key in self.data:
            return self.data.pop(key)
        if default is ...:
            raise self.error(key, "is required")
        return default

    def number(self, key: str, default: Any = ..., *, minimum: float = 0.0, above: bool = False) -> float:
        value = self.take(key, default)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.error(key, f"must be a number of seconds, not {_type(value)}")
        if (value <= minimum) if above else (value < minimum):
            raise self.error(key, f"must be {'>' if above else '>='} {minimum:g}, got {value:g}")
        return float(value)

    def integer(self, key: str, default: Any = ..., *, minimum: int = 0, maximum: int | None = None) -> int:
        value = self.take(key, default)
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.error(key, f"must be an integer, not {_type(value)}")
        if value < minimum or (maximum is not None and value > maximum):
            bound = f"{minimum}..{maximum}" if maximum is not None else f">= {minimum}"
            raise self.error(key, f"must be {bound}, got {value}")
        return value

    def optional_integer(self, key: str, *, minimum: int = 0, maximum: int | None = None) -> int | None:
        """:meth:`integer`, or None when the key is absent."""
        if key not in self.data:
            return None
        return self.integer(key, minimum=minimum, maximum=maximum)

    def string(self, key: str, default: Any = ...) -> str:
        value = self.take(key, default)
        if not isinstance(value, str) or not value:
            raise self.error(key, f"must be a non-empty string, not {_type(value)}")
        return value

    def done(self) -> None:
        if self.data:
            unknown = ", ".join(sorted(self.data))
            raise ManifestError(f"{self.source}: {self.where or 'the manifest'}: unknown key(s) {unknown}")


def _type(value: object) -> str:
    return {dict: "a table", list: "an array", str: "a string", bool: "a boolean"}.get(
        type(value), type(value).__name__
    )


def _node_list(table: _Table, key: str, value: Any, nodes: int) -> tuple[int, ...]:
    if not isinstance(value, list) or not value:
        raise table.error(key, f"must be a non-empty array of node indices, not {_type(value)}")
    for v in value:
        if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v < nodes:
            raise table.error(key, f"{v!r} is not a node index in 0..{nodes - 1}")
    if len(set(value)) != len(value):
        raise table.error(key, "names a node twice")
    return tuple(value)


def _duration(table: _Table) -> tuple[float, float]:
    value = table.take("duration")
    if isinstance(value, list):
        if len(value) != 2:
            raise table.error("duration", f"a range must be [min, max], got {len(value)} items")
        lo, hi = value
    else:
        lo = hi = value
    for v in (lo, hi):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0:
            raise table.error("duration", f"must be seconds >= 0 or a [min, max] range, got {value!r}")
    if lo > hi:
        raise table.error("duration", f"range minimum {lo:g} is above its maximum {hi:g}")
    return float(lo), float(hi)


def _fault(source: str, index: int, data: Any, nodes: int) -> FaultSpec:
    t = _Table(source, f"fault[{index}]", data)
    raw_kind = t.string("kind")
    try:
        kind = FaultKind(raw_kind)
    except ValueError:
        raise t.error(
            "kind", f"unknown kind {raw_kind!r}; known: {', '.join(k.value for k in FaultKind)}"
        ) from None
    count = t.integer("count", 1, minimum=1, maximum=1000)
    lo, hi = _duration(t)
    if kind in (FaultKind.OUTAGE, FaultKind.PARTITION, FaultKind.DELAY, FaultKind.BYZANTINE) and lo <= 0:
        raise t.error("duration", f"a {kind} must last more than 0 s")
    if kind == FaultKind.OUTAGE and lo <= ROUND_WINDOW:
        raise t.error(
            "duration",
            f"an outage must last longer than the longest round window ({ROUND_WINDOW:g} s), got {lo:g}",
        )
    targets = t.take("nodes", None)
    node_set = None if targets is None else _node_list(t, "nodes", targets, nodes)
    groups = None
    raw_groups = t.take("groups", None)
    if raw_groups is not None:
        if kind != FaultKind.PARTITION:
            raise t.error("groups", f"only a partition has groups, not a {kind}")
        if not isinstance(raw_groups, list) or len(raw_groups) < 2:
            raise t.error("groups", "must be an array of at least two arrays of node indices")
        groups = tuple(_node_list(t, "groups", g, nodes) for g in raw_groups)
        flat = [n for g in groups for n in g]
        if len(set(flat)) != len(flat):
            raise t.error("groups", "puts a node in two groups")
        if set(flat) != set(range(nodes)):
            raise t.error("groups", f"must place every node 0..{nodes - 1} in a group")
    elif kind == FaultKind.PARTITION and nodes < 2:
        raise t.error("kind", "a partition needs at least two nodes")
    delay_ms, jitter_ms = 100, 50
    if kind == FaultKind.DELAY:
        delay_ms = t.integer("delay_ms", 100, minimum=1, maximum=10_000)
        jitter_ms = t.integer("jitter_ms", 50, minimum=0, maximum=10_000)
    behaviours = tuple(Behaviour)
    if kind == FaultKind.BYZANTINE:
        raw = t.take("behaviours", [b.value for b in Behaviour])
        if not isinstance(raw, list) or not raw:
            raise t.error("behaviours", "must be a non-empty array of strings")
        try:
            behaviours = tuple(Behaviour(b) for b in raw)
        except ValueError:
            known = ", ".join(b.value for b in Behaviour)
            raise t.error("behaviours", f"unknown behaviour in {raw!r}; known: {known}") from None
    t.done()
    return FaultSpec(kind, count, lo, hi, node_set, groups, delay_ms, jitter_ms, behaviours)


def parse_manifest(text: str, source: str = "<manifest>", default_name: str = "e2e") -> Manifest:
    """Parses and validates manifest TOML ``text`` (``source`` names it in errors).
    :class:`ManifestError` for bad TOML, an unknown key, a wrong type or a bad value, and for a
    schedule that cannot fit in ``duration`` even if every fault recovers at once."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ManifestError(f"{source}: not valid TOML: {e}") from None
    top = _Table(source, "", doc)
    name = top.string("name", default_name)
    seed = top.integer("seed", minimum=0)
    duration = top.number("duration", above=True)
    liveness_bound = top.number("liveness_bound", DEFAULT_LIVENESS_BOUND, above=True)
    warmup = top.number("warmup", DEFAULT_WARMUP)
    gap = top.number("gap", DEFAULT_GAP)
    sample_interval = top.number("sample_interval", DEFAULT_SAMPLE_INTERVAL, above=True)

    net = _Table(source, "network", top.take("network", {}))
    network = NetworkSpec(
        masternodes=net.integer("masternodes", 4, minimum=MIN_MASTERNODES, maximum=MAX_MASTERNODES),
        accounts=net.integer("accounts", 16, minimum=1, maximum=10_000),
        base_port=net.optional_integer("base_port", minimum=1024, maximum=65535 - 3 * MAX_MASTERNODES),
    )
    net.done()

    load_table = _Table(source, "load", top.take("load"))
    load = LoadSpec(rate=load_table.number("rate", above=True))
    load_table.done()

    raw_faults = top.take("fault", [])
    if not isinstance(raw_faults, list):
        raise top.error("fault", "must be an array of tables ([[fault]])")
    faults = tuple(_fault(source, i, f, network.masternodes) for i, f in enumerate(raw_faults))
    top.done()

    manifest = Manifest(
        name, seed, duration, load, network, faults, liveness_bound, warmup, gap, sample_interval
    )
    if manifest.planned_span() > duration:
        raise ManifestError(
            f"{source}: duration: {duration:g} s of load cannot hold the schedule: warm-up, the "
            f"faults' longest durations and their gaps take {manifest.planned_span():g} s"
        )
    return manifest


def load_manifest(path: Path) -> Manifest:
    """Reads and parses the manifest at ``path`` (its stem is the default name).
    :class:`ManifestError` if it cannot be read or does not validate."""
    try:
        text = path.read_text()
    except OSError as e:
        raise ManifestError(f"{path}: cannot read the manifest: {e.strerror or e}") from None
    return parse_manifest(text, str(path), path.stem)
