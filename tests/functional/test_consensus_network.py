"""Four ``timecoind`` masternodes (the devnet genesis's Gold masternodes, each with its own key,
full mesh over loopback, devnet timeouts: 2 s slots) run the consensus core for real (DESIGN §6,
§7; docs/consensus.md): signed transfers submitted by RPC to different nodes become final on
every node with a finality certificate that verifies against the masternode set, committed
blocks archive them, and every node ends with the same chain and UTXO set hash.

Then one masternode is killed with SIGKILL: the other three (3/4 of the weight ≥ 2/3) keep
finalizing and committing; restarted, it catches up, and what was final before the kill is still
final and archived there.
"""

from __future__ import annotations

import pytest

from timecoin.consensus import verify_certificate
from timecoin.ledger.chain import ChainState
from timecoin.rpc import errors
from timecoin.testing.node import (
    assert_raises_rpc_error,
    build_devnet_chain,
    default_port_seed,
    masternode_network,
    metrics_port,
    scrape_metrics,
    wait_until,
)

N = 4
FIRST_BATCH = 40
SECOND_BATCH = 12


@pytest.fixture(scope="module")
def net(tmp_path_factory):
    chain = build_devnet_chain(tmp_path_factory.mktemp("consensus_net"), 0, 0, accounts=64)
    with masternode_network(chain, N, default_port_seed() + 40, metrics=True) as nodes:
        yield chain, nodes


def validator_set(chain):
    """(keys, weights) of the genesis set: no registration changes on this chain, and the four
    equal Gold masternodes keep equal weights, so quorum shares match every height's set."""
    state = ChainState.open(chain.genesis_file.parent / "verifier", chain.config.params, chain.genesis)
    try:
        return state.leader_set(1)
    finally:
        state.close()


def submit(nodes, txs):
    """Sends the transactions by RPC, spread over the given nodes; returns their txids (hex)."""
    txids = []
    for i, node in enumerate(nodes):
        part = txs[i :: len(nodes)]
        if not part:
            continue
        results = node.rpc.sendrawtransactions([tx.encode().hex() for tx in part])
        assert all(r["accepted"] for r in results), results
        txids += [r["txid"] for r in results]
    assert sorted(txids) == sorted(tx.txid.hex() for tx in txs)
    return txids


def wait_final(nodes, txids, timeout=60):
    """Waits until every txid is final on every node; returns {txid: [status per node]}."""
    statuses: dict[str, list[dict]] = {}
    for txid in txids:
        for node in nodes:

            def final(node=node, txid=txid):
                s = node.rpc.waittransactionfinality(txid, 2000)
                return s if s["status"] == "final" else None

            statuses.setdefault(txid, []).append(
                wait_until(final, timeout, what=f"{txid[:16]} final on {node}")
            )
    return statuses


def wait_archived(nodes, txids, timeout=60):
    for node in nodes:
        for txid in txids:
            wait_until(
                lambda n=node, t=txid: n.rpc.gettransactionfinality(t)["height"] is not None,
                timeout,
                what=f"{txid[:16]} archived on {node}",
            )


def assert_same_chain(nodes, timeout=60):
    """Every node at one (height, tip hash, UTXO set hash) at the same moment (blocks keep coming
    every slot, so this is polled)."""

    def agree():
        infos = [n.rpc.gettxoutsetinfo() for n in nodes]
        return len({(i["height"], i["bestblock"], i["utxosethash"]) for i in infos}) == 1 and infos

    infos = wait_until(agree, timeout, interval=0.2, what="same tip and UTXO set hash on every node")
    return infos[0]


def test_network_finalizes_and_commits(net):
    chain, nodes = net
    for node in nodes:
        wait_until(
            lambda n=node: sum(row["online"] for row in n.rpc.masternodelist()) == N,
            30,
            what=f"{node} online",
        )
    info = nodes[0].rpc.getconsensusinfo()
    assert info["voter"] is True and info["set"]["size"] == N

    cursors = [n.rpc.getfinalityfeed()["cursor"] for n in nodes]
    txs = chain.transfers(FIRST_BATCH)
    txids = submit(nodes, txs)
    statuses = wait_final(nodes, txids)
    # The vote flush timer runs about once per batch it signs, never in a spin (uvloop fires timers
    # up to 1 ms early, and the deadline check re-armed the timer until the clock caught up: 4-8
    # runs per batch here, ~22 per vote at 2,750 tx/s on 8074c1d).
    for node in nodes:
        counters = node.rpc.getconsensusinfo()["counters"]
        assert counters["timer_flush"] <= 2 * counters["tx_votes_signed"] + 2, counters
    # Final but perhaps not yet in a block: still served, and its input counts as spent.
    for i, tx in enumerate(txs[:8]):
        node = nodes[i % N]
        assert node.rpc.getrawtransaction(tx.txid.hex()) == tx.encode().hex()
        spent = tx.inputs[0]
        assert node.rpc.gettxout(spent.txid.hex(), spent.vout) is None
    # Each node's finality feed lists every one of them once, as final, after the cursor.
    for node, cursor in zip(nodes, cursors, strict=True):
        page = node.rpc.getfinalityfeed(cursor, 0, 100_000)
        assert page["missed"] == 0 and page["rejected"] == []
        assert set(txids) <= set(page["final"]) and len(page["final"]) == len(set(page["final"]))
        assert page["cursor"] == cursor + len(page["final"])
        assert node.rpc.getfinalityfeed(page["cursor"], 50, 10) == {
            "final": [],
            "rejected": [],
            "cursor": page["cursor"],
            "missed": 0,
        }
        assert node.rpc.getfinalityfeed(cursor, 0, 1)["cursor"] == cursor + 1
    assert_raises_rpc_error(errors.INVALID_PARAMETER, "cursor", nodes[0].rpc.getfinalityfeed, 10**9)
    assert_raises_rpc_error(errors.INVALID_PARAMETER, "max_count", nodes[0].rpc.getfinalityfeed, 0, 0, 0)
    assert_raises_rpc_error(errors.INVALID_PARAMETER, "timeout_ms", nodes[0].rpc.getfinalityfeed, 0, -1)

    keys, weights = validator_set(chain)
    verified = 0
    for txid, per_node in statuses.items():
        certs = {s["certificate"] for s in per_node if s["certificate"]}
        assert certs, f"no node holds a finality certificate for {txid}"
        for cert in certs:
            decoded = verify_certificate(
                bytes.fromhex(cert), bytes.fromhex(txid), (keys, weights), chain.genesis.hash
            )
            assert 3 * sum(weights[keys.index(v)] for v in decoded.voters) >= 2 * sum(weights)
            verified += 1
    assert verified >= FIRST_BATCH

    wait_archived(nodes, txids)
    for node in nodes:
        wait_until(lambda n=node: n.rpc.getblockcount() >= 2, 30, what=f"2 blocks on {node}")
    # Blocks are committed by the engines (a node may also take one by P2P sync when a peer's
    # announcement beats its own commit: docs/consensus.md §9).
    committed = [n.rpc.getconsensusinfo()["counters"].get("blocks_committed", 0) for n in nodes]
    assert sum(committed) >= 2 and all(committed), committed
    # Each closed round's phase durations reach the Prometheus histogram: at least one sample per
    # phase of every closed round getconsensusinfo still lists (read first: a round closes and
    # is reported in one step, so a scrape after sees all of them). Which phases a round has
    # depends on its path (a node behind takes the block by sync), so the rounds say.
    reported = 0
    for i, node in enumerate(nodes):
        closed = node.rpc.getconsensusinfo()["rounds"][:-1]
        samples = scrape_metrics(metrics_port(i, default_port_seed() + 40))
        assert all("election" in r["phases"] for r in closed)
        for phase in ("sync", "election", "proposal", "voting", "collection", "finalization"):
            listed = sum(phase in r["phases"] for r in closed)
            count = samples[f"timecoin_consensus_phase_duration_seconds_count{{phase={phase}}}"]
            assert count >= listed, (node, phase)
        reported += len(closed)
    assert reported >= 2  # blocks were committed by rounds somewhere
    heights = {nodes[0].rpc.gettransactionfinality(t)["height"] for t in txids}
    for node in nodes[1:]:
        for h in heights:
            assert node.rpc.getblockhash(h) == nodes[0].rpc.getblockhash(h)
    assert_same_chain(nodes)

    # An archived transaction resubmitted: already in the chain (Bitcoin Core's -27).
    assert_raises_rpc_error(
        errors.VERIFY_ALREADY_IN_CHAIN,
        "already in block chain",
        nodes[1].rpc.sendrawtransaction,
        txs[0].encode().hex(),
    )
    assert_raises_rpc_error(errors.INVALID_PARAMETER, "txid", nodes[0].rpc.gettransactionfinality, "zz")
    unknown = nodes[0].rpc.gettransactionfinality("ab" * 32)
    assert unknown == {"txid": "ab" * 32, "status": "unknown", "height": None, "certificate": None}


def test_killed_masternode_recovers(net):
    chain, nodes = net
    before = nodes[0].rpc.getrawmempool()  # nothing left pending from the first test
    assert before == []
    final_before = chain.transfers(4)
    txids_before = submit(nodes[:1], final_before)
    wait_final(nodes, txids_before)

    nodes[3].kill()
    txs = chain.transfers(SECOND_BATCH)
    txids = submit(nodes[:3], txs)
    wait_final(nodes[:3], txids)
    wait_archived(nodes[:3], txids)
    height = nodes[0].rpc.getblockcount()

    nodes[3].start_and_wait()
    wait_until(lambda: nodes[3].rpc.getblockcount() >= height, 60, what="restarted node catches up")
    for txid in txids_before + txids:
        status = nodes[3].rpc.gettransactionfinality(txid)
        assert status["status"] == "final" and status["height"] is not None, status
    wait_until(
        lambda: sum(row["online"] for row in nodes[0].rpc.masternodelist()) == N, 30, what="all online again"
    )
    more = chain.transfers(4)
    more_ids = submit([nodes[3]], more)
    wait_final(nodes, more_ids)
    wait_archived(nodes, more_ids)
    assert_same_chain(nodes)
