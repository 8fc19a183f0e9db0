"""Prometheus ``/metrics`` of a live ``timecoind`` (DESIGN §10).

One node runs with ``--metrics true`` on its own port, over a devnet chain of one block. The test
scrapes it over HTTP, parses the text format with prometheus-client's parser and checks the
names (``timecoin_<subsystem>_<name>_<unit>``, counters ``_total``) and that the values follow
the node: the height after ``submitblock``, the mempool after ``sendrawtransactions``. The
consensus hook (:class:`timecoin.metrics.ConsensusMetrics`) is checked on its own registry, and a
node started without the flag serves nothing.
"""

from __future__ import annotations

import http.client

import pytest
from prometheus_client import CollectorRegistry

from timecoin.metrics import ConsensusMetrics
from timecoin.testing.node import TestNode, build_devnet_chain, default_port_seed, metrics_port
from timecoin.testing.node import scrape_metrics as scrape

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
