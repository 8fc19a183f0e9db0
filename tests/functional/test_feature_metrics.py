"""Prometheus ``/metrics`` of a live ``timecoind`` (DESIGN §10; docs/operator.md "Metrics").

One node runs with ``--metrics true`` on its own port, over a devnet chain of one block. The test
scrapes it over HTTP, parses the text format with prometheus-client's parser and checks the
names (``timecoin_<subsystem>_<name>_<unit>``, counters ``_total``) and that the values follow
the node: the height after ``submitblock``, the mempool after ``sendrawtransactions``. The
consensus hook (:class:`timecoin.metrics.ConsensusMetrics`) is checked on its own registry, and a
node started without the flag serves nothing.

What operators of Prometheus-instrumented nodes expect (issue 16, finding 7): the process and
platform collectors and ``timecoin_build_info``; RPC calls counted by method and outcome with
their latency (the binary ``/rawtransactions`` endpoint too) and HTTP refusals by status; P2P
frames and bytes by message type and direction, checked to the byte against a raw peer
(:class:`~timecoin.testing.mininode.MiniNode`) that shakes hands and pings; admission rejects by
source and reason; no ``_created`` series; labels that never name a peer or a transaction; and
every exported metric listed in docs/operator.md.
"""

from __future__ import annotations

import base64
import http.client
import re
from pathlib import Path

import pytest
import timecoin_native
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

import timecoin
from timecoin.metrics import ConsensusMetrics
from timecoin.p2p.framing import HEADER
from timecoin.p2p.messages import MessageType
from timecoin.rpc.client import JSONRPCError
from timecoin.testing.mininode import MiniNode
from timecoin.testing.node import TestNode, build_devnet_chain, default_port_seed, metrics_port, write_chain
from timecoin.testing.node import scrape_metrics as scrape
from timecoin.testing.util import run

SEED_OFFSET = 31


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    return build_devnet_chain(tmp_path_factory.mktemp("metrics"), 1, 2)


@pytest.fixture(scope="module")
def node(chain):
    seed = default_port_seed() + SEED_OFFSET
    port = metrics_port(0, seed)
    n = TestNode(
        0,
        chain.genesis_file.parent,
        chain.genesis_file,
        port_seed=seed,
        extra_args=["--metrics", "true", "--metrics-port", str(port)],
    )
    n.metrics_port = port  # type: ignore[attr-defined]
    n.start_and_wait()
    yield n
    if n.running:
        n.stop()
    n.cleanup()


def test_names_follow_the_convention(node):
    samples = scrape(node.metrics_port)
    for name in (
        "timecoin_chain_height_blocks",
        "timecoin_store_db_size_bytes",
        "timecoin_mempool_size_transactions",
        "timecoin_mempool_size_bytes",
        "timecoin_finality_unarchived_transactions",
        "timecoin_finality_unarchived_bytes",
        "timecoin_txindex_queued_blocks",
        "timecoin_store_coins_blocks_behind",
        "timecoin_store_sweep_queued_deletes",
        "timecoin_event_loop_lag_p99_seconds",
        "timecoin_event_loop_lag_max_seconds",
        "timecoin_p2p_peers_connections{direction=in}",
        "timecoin_p2p_peers_connections{direction=out}",
        "timecoin_sync_progress_ratio",
        "timecoin_sync_target_height_blocks",
        "timecoin_finality_transactions_finalized_total",
        "timecoin_finality_latency_seconds_count",
        "timecoin_consensus_round_number",
        "timecoin_consensus_rounds_total",
        "timecoin_consensus_phase_duration_seconds_count{phase=voting}",
    ):
        assert name in samples, name
    assert all(k.startswith("timecoin_") for k in samples if not k.startswith(("python_", "process_")))
    assert samples["timecoin_store_db_size_bytes"] > 0
    assert samples["timecoin_sync_progress_ratio"] == 1.0
    lag_p99, lag_max = (samples[f"timecoin_event_loop_lag_{s}_seconds"] for s in ("p99", "max"))
    assert 0 <= lag_p99 <= lag_max


def test_values_follow_the_node(node, chain):
    before = scrape(node.metrics_port)
    assert before["timecoin_chain_height_blocks"] == 0
    assert node.rpc.submitblock(chain.blocks[1].hex()) is None
    after_block = scrape(node.metrics_port)
    assert after_block["timecoin_chain_height_blocks"] == 1
    assert after_block["timecoin_mempool_size_transactions"] == 0

    txs = chain.transfers(3)
    results = node.rpc.sendrawtransactions([tx.encode().hex() for tx in txs])
    assert all(r["accepted"] for r in results)
    after_txs = scrape(node.metrics_port)
    assert after_txs["timecoin_mempool_size_transactions"] == 3
    assert after_txs["timecoin_mempool_size_bytes"] == sum(len(tx.encode()) for tx in txs)
    assert after_txs["timecoin_mempool_size_bytes"] == node.rpc.getmempoolinfo()["bytes"]


def test_off_by_default(chain, tmp_path):
    seed = default_port_seed() + SEED_OFFSET
    port = metrics_port(1, seed)
    n = TestNode(1, tmp_path, chain.genesis_file, port_seed=seed, extra_args=["--metrics-port", str(port)])
    try:
        n.start_and_wait()
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        with pytest.raises(ConnectionRefusedError):
            conn.request("GET", "/metrics")
        conn.close()
        n.stop()
    finally:
        n.cleanup()


def test_consensus_hook():
    registry = CollectorRegistry()
    hook = ConsensusMetrics(registry)
    hook.transactions_finalized([0.2, 0.4, 3.0])
    hook.round_started(7, 1)
    hook.phase_finished("voting", 0.3)
    value = registry.get_sample_value
    assert value("timecoin_finality_transactions_finalized_total") == 3
    assert value("timecoin_finality_latency_seconds_count") == 3
    assert value("timecoin_finality_latency_seconds_bucket", {"le": "0.5"}) == 2
    assert value("timecoin_consensus_height_blocks") == 7
    assert value("timecoin_consensus_round_number") == 1
    assert value("timecoin_consensus_rounds_total") == 1
    assert value("timecoin_consensus_phase_duration_seconds_count", {"phase": "voting"}) == 1
    with pytest.raises(ValueError, match="unknown consensus phase"):
        hook.phase_finished("lunch", 1.0)
    with pytest.raises(ValueError):
        hook.transactions_finalized([-1.0])
    assert value("timecoin_finality_transactions_finalized_total") == 3


BOUNDED_LABELS = {
    "direction",
    "phase",
    "type",
    "method",
    "outcome",
    "status",
    "reason",
    "source",
    "kind",
    "le",
    "version",
    "native_version",
    "native_profile",
    "commit",
}
"""Every label a timecoin_* metric may have: bounded enums and the build's own facts."""
PEERISH = re.compile(r"^\d{1,3}(\.\d{1,3}){3}(:\d+)?$|^[0-9a-f]{64}$")
"""An address or a 32-byte hash (txid, key): never a label value."""
GUIDE = Path(__file__).parents[2] / "docs" / "operator.md"


def families(port: int) -> tuple[str, dict]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", "/metrics")
        text = conn.getresponse().read().decode()
    finally:
        conn.close()
    return text, {f.name: f for f in text_string_to_metric_families(text)}


def delta(before: dict[str, float], after: dict[str, float], key: str) -> float:
    return after.get(key, 0.0) - before.get(key, 0.0)


def test_process_build_info_no_created_and_bounded_labels(node):
    text, found = families(node.metrics_port)
    assert "_created" not in text
    for name in (
        "process_cpu_seconds",
        "process_resident_memory_bytes",
        "process_start_time_seconds",
        "process_open_fds",
        "python_info",
        "python_gc_collections",
    ):
        assert name in found, name
    samples = scrape(node.metrics_port)
    assert samples["process_resident_memory_bytes"] > 10_000_000
    assert samples["process_cpu_seconds_total"] > 0
    (build,) = found["timecoin_build_info"].samples
    assert build.value == 1
    assert build.labels["version"] == timecoin.__version__
    assert build.labels["native_version"] == timecoin_native.__version__
    assert build.labels["native_profile"] == timecoin_native.build_profile
    assert re.fullmatch(r"([0-9a-f]{40}(-dirty)?)?", build.labels["commit"])
    for family in found.values():
        if not family.name.startswith("timecoin_"):
            continue
        for sample in family.samples:
            assert set(sample.labels) <= BOUNDED_LABELS, sample
            for value in sample.labels.values():
                assert not PEERISH.match(value), sample


def test_rpc_calls_are_counted_by_method(node, chain):
    before = scrape(node.metrics_port)
    for _ in range(3):
        node.rpc.getblockcount()
    with pytest.raises(JSONRPCError):
        node.rpc.call("no_such_method_" + "x" * 50)
    node.rpc.batch([("getblockcount", []), ("getbestblockhash", [])])
    [tx] = chain.transfers(1)
    assert node.rpc.sendrawtransactions_binary([tx.encode()])[0]["accepted"]
    user, password = "nobody", "wrong"
    status, _ = node.rpc.post(
        b"{}", headers={"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}
    )
    assert status == 401
    after = scrape(node.metrics_port)
    assert delta(before, after, "timecoin_rpc_requests_total{method=getblockcount,outcome=ok}") == 4
    assert delta(before, after, "timecoin_rpc_requests_total{method=getbestblockhash,outcome=ok}") == 1
    assert delta(before, after, "timecoin_rpc_requests_total{method=unknown,outcome=error}") == 1
    assert delta(before, after, "timecoin_rpc_requests_total{method=/rawtransactions,outcome=ok}") == 1
    assert delta(before, after, "timecoin_rpc_request_duration_seconds_count{method=getblockcount}") == 4
    assert (
        delta(before, after, "timecoin_rpc_request_duration_seconds_bucket{le=+Inf,method=getblockcount}")
        == 4
    )
    assert delta(before, after, "timecoin_rpc_refused_requests_total{status=401}") == 1
    assert not any("no_such_method" in key for key in after)  # a client's name is never a label


def test_admission_rejects_by_source_and_reason(node, chain):
    before = scrape(node.metrics_port)
    [tx] = chain.transfers(1)
    raw = tx.encode().hex()
    results = node.rpc.sendrawtransactions([raw, raw, "00"])
    assert results[0]["accepted"] and results[1]["accepted"]  # the repeat is no error to the client
    assert not results[2]["accepted"]
    after = scrape(node.metrics_port)
    rejects = {
        key: delta(before, after, key)
        for key in after
        if key.startswith("timecoin_admission_rejected_transactions_total") and delta(before, after, key)
    }
    assert sum(rejects.values()) == 2, rejects
    assert all(",source=rpc}" in key for key in rejects), rejects
    assert (
        delta(
            before,
            after,
            "timecoin_admission_rejected_transactions_total{reason=txn-already-in-mempool,source=rpc}",
        )
        == 1
    )


def test_overload_refusals_are_counted(chain, tmp_path):
    """Past ``admission_max_pending`` the RPC refuses as overloaded before admission; those
    refusals count under reason ``mempool-overloaded``, one per transaction refused."""
    seed = default_port_seed() + SEED_OFFSET
    port = metrics_port(2, seed)
    n = TestNode(
        2,
        tmp_path,
        chain.genesis_file,
        port_seed=seed,
        extra_args=["--metrics", "true", "--metrics-port", str(port), "--admission-max-pending", "1"],
    )
    write_chain(n.datadir, chain, 1)
    key = "timecoin_admission_rejected_transactions_total{reason=mempool-overloaded,source=rpc}"
    try:
        n.start_and_wait()
        txs = chain.transfers(4)
        results = n.rpc.sendrawtransactions([tx.encode().hex() for tx in txs[:3]])
        assert [r["accepted"] for r in results] == [True, False, False]
        assert scrape(port)[key] == 2
        with pytest.raises(JSONRPCError) as refused:
            n.rpc.sendrawtransaction(txs[3].encode().hex())
        assert refused.value.code == -32001
        assert scrape(port)[key] == 3
        n.stop()
    finally:
        n.cleanup()


def test_p2p_frames_and_bytes_by_type_and_direction(node, chain):
    before = scrape(node.metrics_port)

    async def visit() -> MiniNode:
        peer = await MiniNode(chain.genesis.config.params, chain.genesis.hash).connect(
            "127.0.0.1", node.p2p_port
        )
        await peer.ping()
        peer.close()
        await peer.wait_for_disconnect()
        return peer

    peer = run(visit())
    after = scrape(node.metrics_port)

    def frames(kind: MessageType, direction: str) -> float:
        return delta(before, after, f"timecoin_p2p_messages_total{{direction={direction},type={kind.name}}}")

    def nbytes(kind: MessageType, direction: str) -> float:
        return delta(
            before, after, f"timecoin_p2p_message_bytes_total{{direction={direction},type={kind.name}}}"
        )

    # HELLO is the one handshake frame (the Noise handshake before it is not made of frames).
    assert frames(MessageType.HELLO, "in") == 1 and frames(MessageType.AUTH, "in") == 0
    assert nbytes(MessageType.HELLO, "in") == HEADER.size + len(peer.sent_hello.encode())
    assert frames(MessageType.HELLO, "out") == 1 and frames(MessageType.AUTH, "out") == 0
    assert nbytes(MessageType.HELLO, "out") == HEADER.size + len(peer.their_hello.encode())
    assert frames(MessageType.PING, "in") >= 1 and frames(MessageType.PONG, "out") >= 1
    received = [(t, p) for t, p in peer.messages if t in (MessageType.PONG,)]
    assert nbytes(MessageType.PONG, "out") >= sum(HEADER.size + len(p) for _, p in received)


def test_operator_guide_lists_every_metric(node):
    _, found = families(node.metrics_port)
    guide = GUIDE.read_text().split("## Metrics", 1)[1].split("\n## ", 1)[0]
    for family in found.values():
        name = family.name + ("_total" if family.type == "counter" else "")
        assert f"`{name}`" in guide, f"{name} is not listed in docs/operator.md's Metrics section"
