"""What counting a P2P message or an RPC call costs: the plain counters the node keeps
(:mod:`timecoin.counters`, exported by collectors at scrape time) against prometheus-client's
own metric objects updated per event, as ``Counter.labels(...).inc()`` would be.

* ``p2p_*``: one received frame counted twice (frames and bytes by message type), over
  :data:`EVENTS` frames of the wire's message types: the two list additions
  :meth:`timecoin.p2p.peer.Peer.on_frames` makes, against ``Counter.labels(type, direction).inc()``
  on two counters, and against pre-bound label children (``.inc()`` only).
* ``rpc_*``: one call recorded (count by method and outcome, latency histogram):
  :meth:`timecoin.counters.RequestStats.record` against a labelled ``Counter`` and ``Histogram``.

Each records a correctness check: the exported totals equal the events counted. Run with
``pytest benches/bench_metrics.py --benchmark-enable``; numbers in docs/benchmarks.md ("Metrics").
"""

from __future__ import annotations

import itertools

from prometheus_client import CollectorRegistry, Counter, Histogram

from timecoin.counters import MessageTraffic, RequestStats
from timecoin.metrics import p2p_traffic_families
from timecoin.p2p.messages import MessageType
from timecoin.rpc.server import RPC_LATENCY_BUCKETS

EVENTS = 100_000
TYPES = [int(t) for t in MessageType]
FRAMES = [(TYPES[i % len(TYPES)], 100 + i % 300) for i in range(EVENTS)]
METHODS = ["getblockcount", "gettransactionfinality", "sendrawtransactions", "getpeerinfo"]
CALLS = [(METHODS[i % len(METHODS)], (i % 7) / 1000) for i in range(EVENTS)]


def _plain_frames() -> MessageTraffic:
    traffic = MessageTraffic(max(MessageType) + 1)
    frames_in, bytes_in = traffic.frames_in, traffic.bytes_in
    for mtype, size in FRAMES:
        frames_in[mtype] += 1
        bytes_in[mtype] += 10 + size
    return traffic


def test_p2p_plain_counters(benchmark):
    traffic = benchmark(_plain_frames)
    families = {f.name: f for f in p2p_traffic_families(traffic)}
    assert sum(s.value for s in families["timecoin_p2p_messages"].samples) == EVENTS
    assert sum(traffic.bytes_in) == sum(10 + size for _, size in FRAMES)


def _prometheus_frames(prebound: bool) -> tuple[Counter, Counter]:
    registry = CollectorRegistry()
    frames = Counter("frames", "", ["type", "direction"], registry=registry)
    nbytes = Counter("frame_bytes", "", ["type", "direction"], registry=registry)
    names = {t: MessageType(t).name for t in TYPES}
    if prebound:
        children = {t: (frames.labels(names[t], "in"), nbytes.labels(names[t], "in")) for t in TYPES}
        for mtype, size in FRAMES:
            count, total = children[mtype]
            count.inc()
            total.inc(10 + size)
    else:
        for mtype, size in FRAMES:
            frames.labels(names[mtype], "in").inc()
            nbytes.labels(names[mtype], "in").inc(10 + size)
    return frames, nbytes


def test_p2p_prometheus_labels_inc(benchmark):
    frames, _ = benchmark(_prometheus_frames, False)
    assert (
        sum(
            s.value
            for s in itertools.chain(*(m.samples for m in frames.collect()))
            if s.name == "frames_total"
        )
        == EVENTS
    )


def test_p2p_prometheus_prebound_inc(benchmark):
    frames, _ = benchmark(_prometheus_frames, True)
    assert (
        sum(
            s.value
            for s in itertools.chain(*(m.samples for m in frames.collect()))
            if s.name == "frames_total"
        )
        == EVENTS
    )


def _plain_calls() -> RequestStats:
    stats = RequestStats(METHODS, RPC_LATENCY_BUCKETS)
    for method, seconds in CALLS:
        stats.record(method, True, seconds)
    return stats


def test_rpc_plain_counters(benchmark):
    stats = benchmark(_plain_calls)
    assert sum(stats.ok.values()) == EVENTS
    assert sum(h.count for h in stats.latency.values()) == EVENTS


def _prometheus_calls() -> Histogram:
    registry = CollectorRegistry()
    requests = Counter("requests", "", ["method", "outcome"], registry=registry)
    latency = Histogram("latency", "", ["method"], buckets=RPC_LATENCY_BUCKETS, registry=registry)
    for method, seconds in CALLS:
        requests.labels(method, "ok").inc()
        latency.labels(method).observe(seconds)
    return latency


def test_rpc_prometheus_labels(benchmark):
    latency = benchmark(_prometheus_calls)
    counts = [s.value for m in latency.collect() for s in m.samples if s.name == "latency_count"]
    assert sum(counts) == EVENTS
