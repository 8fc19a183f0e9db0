"""E2E manifests, schedules and the pure parts of the checker (docs/e2e.md).

A manifest with a mistake is refused with an error naming the file and the key; the shipped
manifests parse; the same seed gives the same schedule and another seed another; the liveness
measures read a sampled timeline as documented; a partition's nftables rules drop exactly the
P2P ports across the cut. No process, no network.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from timecoin.e2e.checker import FaultRecord, check_liveness, longest_stall, recovery_seconds
from timecoin.e2e.manifest import (
    DEFAULT_LIVENESS_BOUND,
    ROUND_WINDOW,
    Behaviour,
    FaultKind,
    ManifestError,
    load_manifest,
    parse_manifest,
)
from timecoin.e2e.perturb import Cgroups, Partitioner
from timecoin.e2e.schedule import Fault, build_schedule

MANIFESTS = Path(__file__).resolve().parents[2] / "e2e" / "manifests"

BASE = """
seed = 11
duration = 300
[load]
rate = 10
"""

FAULTS = """
[[fault]]
kind = "kill"
count = 2
duration = [1, 9]
[[fault]]
kind = "pause"
duration = 4
nodes = [1, 2]
[[fault]]
kind = "partition"
count = 2
duration = [5, 20]
[[fault]]
kind = "byzantine"
duration = [10, 30]
behaviours = ["lying-status", "split-votes"]
"""


def test_a_complete_manifest_parses_into_its_fields():
    m = parse_manifest(BASE + FAULTS, "x.toml", "fallback")
    assert (m.name, m.seed, m.duration, m.load.rate) == ("fallback", 11, 300.0, 10.0)
    assert m.liveness_bound == DEFAULT_LIVENESS_BOUND and m.nodes == 4
    kinds = [(f.kind, f.count, f.min_duration, f.max_duration) for f in m.faults]
    assert kinds == [
        (FaultKind.KILL, 2, 1.0, 9.0),
        (FaultKind.PAUSE, 1, 4.0, 4.0),
        (FaultKind.PARTITION, 2, 5.0, 20.0),
        (FaultKind.BYZANTINE, 1, 10.0, 30.0),
    ]
    assert m.faults[1].nodes == (1, 2)
    assert m.faults[3].behaviours == (Behaviour.LYING_STATUS, Behaviour.SPLIT_VOTES)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("seed = 1\nduration = 10\n[load]\nrate = 1\n[[fault]\n", "not valid TOML"),
        ("duration = 10\n[load]\nrate = 1\n", "seed: is required"),
        ('seed = "one"\nduration = 10\n[load]\nrate = 1\n', "seed: must be an integer"),
        ("seed = 1\nduration = 0\n[load]\nrate = 1\n", "duration: must be > 0"),
        ("seed = 1\nduration = 10\n", "load: is required"),
        ("seed = 1\nduration = 10\n[load]\nrate = 1\nrte = 2\n", "load: unknown key(s) rte"),
        ("seed = 1\nduraton = 10\nduration = 10\n[load]\nrate = 1\n", "the manifest: unknown key(s) duraton"),
        (BASE + "[network]\nmasternodes = 2\n", "network.masternodes: must be 3..16, got 2"),
        (BASE + '[[fault]]\nkind = "crash"\nduration = 1\n', "fault[0].kind: unknown kind 'crash'"),
        (BASE + '[[fault]]\nkind = "kill"\n', "fault[0].duration: is required"),
        (BASE + '[[fault]]\nkind = "kill"\nduration = [5, 2]\n', "fault[0].duration: range minimum 5"),
        (BASE + '[[fault]]\nkind = "kill"\nduration = [1, 2, 3]\n', "a range must be [min, max]"),
        (BASE + '[[fault]]\nkind = "kill"\nduration = -1\n', "fault[0].duration: must be seconds >= 0"),
        (BASE + '[[fault]]\nkind = "partition"\nduration = 0\n', "a partition must last more than 0 s"),
        (
            BASE + f'[[fault]]\nkind = "outage"\nduration = {ROUND_WINDOW}\n',
            "fault[0].duration: an outage must last longer than the longest round window",
        ),
        (
            BASE + '[[fault]]\nkind = "kill"\nduration = 1\nnodes = [4]\n',
            "fault[0].nodes: 4 is not a node index",
        ),
        (BASE + '[[fault]]\nkind = "kill"\nduration = 1\nnodes = [1, 1]\n', "names a node twice"),
        (
            BASE + '[[fault]]\nkind = "partition"\nduration = 1\ngroups = [[0, 1], [2]]\n',
            "fault[0].groups: must place every node 0..3 in a group",
        ),
        (
            BASE + '[[fault]]\nkind = "partition"\nduration = 1\ngroups = [[0, 1], [1, 2, 3]]\n',
            "puts a node in two groups",
        ),
        (
            BASE + '[[fault]]\nkind = "kill"\nduration = 1\ngroups = [[0], [1, 2, 3]]\n',
            "only a partition has groups",
        ),
        (
            BASE + '[[fault]]\nkind = "kill"\nduration = 1\ndelay_ms = 5\n',
            "fault[0]: unknown key(s) delay_ms",
        ),
        (
            BASE + '[[fault]]\nkind = "byzantine"\nduration = 1\nbehaviours = ["lie"]\n',
            "fault[0].behaviours: unknown behaviour",
        ),
        (
            "seed = 1\nduration = 60\nwarmup = 30\ngap = 10\n[load]\nrate = 1\n"
            '[[fault]]\nkind = "kill"\ncount = 2\nduration = [1, 10]\n',
            "duration: 60 s of load cannot hold the schedule",
        ),
    ],
)
def test_a_bad_manifest_is_refused_naming_the_file_and_key(text, message):
    with pytest.raises(ManifestError) as raised:
        parse_manifest(text, "bad.toml")
    assert str(raised.value).startswith("bad.toml: ")
    assert message in str(raised.value)


def test_an_unreadable_manifest_is_a_manifest_error(tmp_path):
    with pytest.raises(ManifestError, match="cannot read the manifest"):
        load_manifest(tmp_path / "missing.toml")


@pytest.mark.parametrize("name", ["ci", "long"])
def test_the_shipped_manifests_parse_and_schedule(name):
    m = load_manifest(MANIFESTS / f"{name}.toml")
    assert m.name == name
    schedule = build_schedule(m)
    assert len(schedule) == sum(f.count for f in m.faults)
    assert schedule[-1].planned_start + schedule[-1].duration <= m.duration


def test_ci_manifest_holds_the_faults_ci_must_see():
    m = load_manifest(MANIFESTS / "ci.toml")
    kinds = sorted(f.kind for f in build_schedule(m))
    assert kinds == sorted(
        [FaultKind.KILL, FaultKind.PAUSE, FaultKind.PARTITION, FaultKind.DELAY, FaultKind.BYZANTINE]
    )
    assert m.nodes == 4 and m.duration <= 90
    (partition,) = [f for f in build_schedule(m) if f.kind == FaultKind.PARTITION]
    assert sorted(len(g) for g in partition.groups) == [2, 2]


def test_same_seed_same_schedule_and_another_seed_another():
    a = build_schedule(parse_manifest(BASE + FAULTS))
    b = build_schedule(parse_manifest(BASE + FAULTS))
    c = build_schedule(parse_manifest(BASE.replace("seed = 11", "seed = 12") + FAULTS))
    assert a == b
    assert a != c
    assert sorted(f.kind for f in a) == sorted(f.kind for f in c)


def test_schedule_draws_stay_inside_the_manifest():
    m = parse_manifest(BASE + FAULTS)
    schedule = build_schedule(m)
    assert [f.index for f in schedule] == list(range(6))
    starts = [f.planned_start for f in schedule]
    assert starts[0] == m.warmup and starts == sorted(starts)
    for prev, nxt in zip(schedule, schedule[1:], strict=False):
        assert nxt.planned_start == pytest.approx(prev.planned_start + prev.duration + m.gap)
    for f in schedule:
        spec = next(s for s in m.faults if s.kind == f.kind)
        assert spec.min_duration <= f.duration <= spec.max_duration
        if f.kind == FaultKind.PARTITION:
            assert sorted(n for g in f.groups for n in g) == [0, 1, 2, 3]
            assert sorted(len(g) for g in f.groups) == [2, 2]
        else:
            assert len(f.nodes) == 1 and f.nodes[0] in (spec.nodes or range(4))


# -- liveness over a sampled timeline ----------------------------------------------------------------


def samples(*rows):
    return [(float(t), list(h)) for t, h in rows]


def test_recovery_is_every_node_above_the_heal_time_height():
    line = samples((0, [5, 5, 5]), (1, [5, None, 5]), (2, [6, None, 6]), (3, [6, 5, 6]), (4, [7, 5, 7]))
    assert recovery_seconds(line, 1.0) is None  # node 1 never reaches 6
    line.append((5.0, [7, 7, 7]))
    assert recovery_seconds(line, 1.0) == 4.0  # height 5 at the heal: all at >= 6 from t=5
    assert recovery_seconds(line, 2.5) == pytest.approx(2.5)  # height 6 at t=2: all >= 7 at t=5
    assert recovery_seconds(line, -1.0) is None  # nothing sampled before the heal


def test_longest_stall_counts_only_the_given_nodes():
    line = samples((0, [1, 1]), (1, [2, 1]), (2, [2, 1]), (5, [3, 1]), (6, [3, 1]))
    assert longest_stall(line, 0.0, 6.0, [0]) == 4.0  # from 1 s to 5 s
    assert longest_stall(line, 0.0, 6.0, [1]) == 6.0  # never grew


def test_liveness_check_fails_on_a_slow_recovery_or_a_stalled_quorum():
    fault = Fault(0, FaultKind.KILL, 2.0, (1,))
    line = samples(*[(t, [10 + (t >= 30), 10 + (t >= 30), 10 + (t >= 30)]) for t in range(0, 40)])
    record = FaultRecord(fault, started_at=2.0, healed_at=4.0, quorum=(0, 2))
    assert check_liveness([record], line, 60.0).passed
    failed = check_liveness([record], line, 20.0)
    assert not failed.passed and "after 26.0 s" in failed.details["failures"][0]
    long_fault = FaultRecord(fault, started_at=0.0, healed_at=25.0, quorum=(0, 2))
    stalled = check_liveness([long_fault], line, 20.0)
    assert any("went 25.0 s without a block" in f for f in stalled.details["failures"])
    not_run = FaultRecord(fault)  # the schedule stopped before it
    assert check_liveness([not_run], [], 1.0).passed


# -- partition rules ---------------------------------------------------------------------------------


def test_partition_rules_drop_only_ports_across_the_cut():
    groups = Cgroups("t", 4, root=Path("/sys/fs/cgroup/unified"))
    partitioner = Partitioner("t-1", groups, [30000, 30003, 30006, 30009])
    assert partitioner.table == "timecoin_e2e_t_1"
    rules = partitioner.rules(((0, 1), (2, 3))).splitlines()
    assert rules[:2] == [
        "flush chain inet timecoin_e2e_t_1 output",
        "flush chain inet timecoin_e2e_t_1 input",
    ]
    node0 = 'socket cgroupv2 level 2 "unified/timecoin-e2e-t/node0"'
    assert f"add rule inet timecoin_e2e_t_1 output {node0} tcp dport {{ 30006, 30009 }} drop" in rules
    assert f"add rule inet timecoin_e2e_t_1 input {node0} tcp sport {{ 30006, 30009 }} drop" in rules
    node3 = 'socket cgroupv2 level 2 "unified/timecoin-e2e-t/node3"'
    assert f"add rule inet timecoin_e2e_t_1 output {node3} tcp dport {{ 30000, 30003 }} drop" in rules
    assert len(rules) == 2 + 4 * 2  # one output and one input rule per node


def test_delay_rules_redirect_and_reset_only_the_delayed_nodes_links():
    groups = Cgroups("t", 3, root=Path("/sys/fs/cgroup/unified"))
    partitioner = Partitioner("t-1", groups, [30000, 30003, 30006])
    rules = partitioner.delay_rules(1, 41000).splitlines()
    table = "inet timecoin_e2e_t_1"
    assert rules[:2] == [f"flush chain {table} {c}" for c in ("delay_nat", "delay_output")]
    node = 'socket cgroupv2 level 2 "unified/timecoin-e2e-t/node{}"'.format
    # New connections of node 1, dialed by it or to it, go to the relay.
    assert f"add rule {table} delay_nat {node(1)} tcp dport {{ 30000, 30006 }} redirect to :41000" in rules
    assert f"add rule {table} delay_nat {node(0)} tcp dport {{ 30003 }} redirect to :41000" in rules
    assert f"add rule {table} delay_nat {node(2)} tcp dport {{ 30003 }} redirect to :41000" in rules
    # Its direct connections are reset, whoever sends; links between 0 and 2 are untouched.
    reset = "reject with tcp reset"
    assert f"add rule {table} delay_output {node(1)} tcp dport {{ 30000, 30006 }} {reset}" in rules
    assert f"add rule {table} delay_output {node(0)} tcp dport {{ 30003 }} {reset}" in rules
    assert not any("30006" in r for r in rules if node(0) in r)
    assert len(rules) == 2 + 3 + 3
