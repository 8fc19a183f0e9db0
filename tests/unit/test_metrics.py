"""The node's metrics parts on their own (``timecoin.counters``, ``timecoin.metrics``;
docs/operator.md "Metrics"): the plain counters agree with prometheus-client's own objects fed
the same events, the exported families carry only bounded labels, ``_created`` series are left
out per registry without prometheus-client's process-global switch, and the finality window
behind the summary line gives the exact p99 and stays bounded."""

from __future__ import annotations

import random

import pytest
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from timecoin.counters import (
    FINALITY_WINDOW_SAMPLES,
    UNKNOWN_METHOD,
    BucketCounts,
    FinalityWindow,
    MessageTraffic,
    RequestStats,
    percentile,
)
from timecoin.metrics import (
    FINALITY_LATENCY_BUCKETS,
    ConsensusMetrics,
    WithoutCreated,
    p2p_traffic_families,
    rpc_families,
)
from timecoin.p2p.messages import MessageType


def samples(registry_or_collector) -> dict[str, float]:
    text = generate_latest(registry_or_collector).decode()
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(s.labels.items()))
            out[f"{s.name}{{{labels}}}" if labels else s.name] = s.value
    return out


def test_bucket_counts_export_what_a_prometheus_histogram_exports():
    rng = random.Random(5)
    values = [
        rng.choice([0.0, 0.01, 0.5, 1.0, 30.0, 31.0]) if i % 3 else rng.uniform(0, 40) for i in range(2000)
    ]
    plain = BucketCounts(FINALITY_LATENCY_BUCKETS)
    registry = CollectorRegistry()
    reference = Histogram("h", "", buckets=FINALITY_LATENCY_BUCKETS, registry=registry)
    for v in values:
        plain.observe(v)
        reference.observe(v)
    want = {s.labels["le"]: s.value for m in reference.collect() for s in m.samples if s.name == "h_bucket"}
    assert dict(plain.cumulative()) == want  # bounds are inclusive (le), as Prometheus' are
    assert plain.count == len(values) and plain.sum == pytest.approx(sum(values))
    with pytest.raises(ValueError):
        BucketCounts((1.0, 0.5))


def test_consensus_hook_counts_and_refuses_bad_input():
    registry = CollectorRegistry()
    hook = ConsensusMetrics(registry)
    hook.transactions_finalized([0.2, 0.4, 3.0])
    hook.round_started(7, 1)
    hook.phase_finished("voting", 0.3)
    hook.transaction_rejected("rejected-by-votes")
    hook.transaction_rejected("rejected-by-votes")
    hook.admission_refused("rpc", "bad-txns-inputs-missingorspent")
    hook.admission_refused("p2p", "txn-already-in-mempool", 3)
    got = samples(registry)
    assert got["timecoin_finality_transactions_finalized_total"] == 3
    assert got["timecoin_finality_latency_seconds_bucket{le=0.5}"] == 2
    assert got["timecoin_finality_latency_seconds_count"] == 3
    assert got["timecoin_finality_rejected_transactions_total{reason=rejected-by-votes}"] == 2
    assert (
        got[
            "timecoin_admission_rejected_transactions_total{reason=bad-txns-inputs-missingorspent,source=rpc}"
        ]
        == 1
    )
    assert (
        got["timecoin_admission_rejected_transactions_total{reason=txn-already-in-mempool,source=p2p}"] == 3
    )
    assert got["timecoin_consensus_height_blocks"] == 7 and got["timecoin_consensus_round_number"] == 1
    assert got["timecoin_consensus_rounds_total"] == 1
    assert got["timecoin_consensus_phase_duration_seconds_count{phase=voting}"] == 1
    assert got["timecoin_consensus_phase_duration_seconds_count{phase=sync}"] == 0
    for bad in (
        lambda: hook.phase_finished("lunch", 1.0),
        lambda: hook.phase_finished("voting", -1.0),
        lambda: hook.transactions_finalized([0.1, -1.0]),
        lambda: hook.round_started(-1, 0),
        lambda: hook.admission_refused("email", "x"),
        lambda: hook.admission_refused("rpc", "x", -1),
    ):
        with pytest.raises(ValueError):
            bad()
    assert samples(registry) == got  # nothing changed by the refused calls
    assert hook.window.take() == (3, 3.0)


def test_p2p_traffic_families_name_types_and_directions_only():
    traffic = MessageTraffic(max(MessageType) + 1)
    traffic.frames_in[MessageType.HELLO] += 1
    traffic.bytes_in[MessageType.HELLO] += 150
    traffic.frames_out[MessageType.VOTE_BATCH] += 2
    traffic.bytes_out[MessageType.VOTE_BATCH] += 900
    families = {f.name: f for f in p2p_traffic_families(traffic)}
    messages = {
        (s.labels["type"], s.labels["direction"]): s.value for s in families["timecoin_p2p_messages"].samples
    }
    nbytes = {
        (s.labels["type"], s.labels["direction"]): s.value
        for s in families["timecoin_p2p_message_bytes"].samples
    }
    assert messages == {("HELLO", "in"): 1, ("VOTE_BATCH", "out"): 2}
    assert nbytes == {("HELLO", "in"): 150, ("VOTE_BATCH", "out"): 900}


def test_rpc_families_label_only_known_methods():
    stats = RequestStats(["getblockcount", "/rawtransactions"], (0.001, 0.01))
    for name, ok, seconds in (
        ("getblockcount", True, 0.0005),
        ("getblockcount", True, 0.005),
        ("getblockcount", False, 0.05),
        ("/rawtransactions", True, 0.002),
    ):
        stats.record(stats.label(name), ok, seconds)
    for hostile in ("a" * 10_000, "getblockcount2", None, 7, ["getblockcount"]):
        stats.record(stats.label(hostile), False, 0.0)
    stats.refuse(401)
    stats.refuse(503)
    stats.refuse(503)
    families = {f.name: f for f in rpc_families(stats)}
    requests = {
        (s.labels["method"], s.labels["outcome"]): s.value for s in families["timecoin_rpc_requests"].samples
    }
    assert requests == {
        ("getblockcount", "ok"): 2,
        ("/rawtransactions", "ok"): 1,
        ("getblockcount", "error"): 1,
        (UNKNOWN_METHOD, "error"): 5,
    }
    latency = {
        (s.name, s.labels["method"], s.labels.get("le")): s.value
        for s in families["timecoin_rpc_request_duration_seconds"].samples
    }
    assert latency[("timecoin_rpc_request_duration_seconds_bucket", "getblockcount", "0.001")] == 1
    assert latency[("timecoin_rpc_request_duration_seconds_bucket", "getblockcount", "0.01")] == 2
    assert latency[("timecoin_rpc_request_duration_seconds_count", "getblockcount", None)] == 3
    refused = {s.labels["status"]: s.value for s in families["timecoin_rpc_refused_requests"].samples}
    assert refused == {"401": 1, "503": 2}


def test_created_series_are_left_out_per_registry_only():
    ours, theirs = CollectorRegistry(), CollectorRegistry()
    for registry in (ours, theirs):
        Counter("events", "", ["kind"], registry=registry).labels("a").inc()
        Histogram("seconds", "", registry=registry).observe(0.2)
    ConsensusMetrics(ours).transactions_finalized([0.1])
    text = generate_latest(WithoutCreated(ours)).decode()
    assert "_created" not in text
    assert 'events_total{kind="a"} 1.0' in text and "seconds_count 1.0" in text
    assert "timecoin_finality_transactions_finalized_total 1.0" in text
    # prometheus-client's global switch is untouched: another registry still has its series
    assert "events_created" in generate_latest(theirs).decode()


def test_finality_window_p99_is_exact_below_capacity_and_bounded_above():
    window = FinalityWindow(samples=1000, rng=random.Random(1))
    latencies = [i / 1000 for i in range(1, 1001)]  # 1 ms .. 1 s
    random.Random(2).shuffle(latencies)
    window.add(latencies[:600])
    window.add(latencies[600:])
    assert window.take() == (1000, 0.99)  # nearest rank: 990th of 1000
    assert window.take() == (0, None)  # reset by take

    big = FinalityWindow(samples=1000, rng=random.Random(3))
    rng = random.Random(4)
    values = [rng.random() for _ in range(50_000)]
    big.add(values)
    assert len(big._sample) == 1000  # bounded whatever the rate
    finalized, p99 = big.take()
    assert finalized == 50_000 and p99 is not None and 0.97 < p99 <= 1.0
    assert FINALITY_WINDOW_SAMPLES >= 1000
    assert percentile([], 0.99) is None and percentile([5.0], 0.99) == 5.0
