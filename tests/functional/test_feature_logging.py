"""A running node's logs as docs/operator.md "Logs" describes them (issue 16, finding 8).

One real ``timecoind`` masternode of a one-node devnet (it commits a block every slot on its own)
runs with ``--log-json --log-level debug --log-summary-interval 1``. The test pays one transfer
from the devnet's faucet key (the wallet's own code, over RPC) and waits for its finality,
connects a raw P2P peer (:class:`~timecoin.testing.mininode.MiniNode`) and leaves, and opens a
JSON-RPC request whose client hangs up halfway through the body. Then it reads the node's JSON
lines:

* a summary line at info every second with the fields the guide lists (``height``, ``tx_per_s``,
  ``finality_p99_ms``, ``peers``, ``mempool_txs``, ...), one of which counts the transfer made
  final (tx/s > 0, a p99), and every field in the guide's Logs section;
* each committed block at debug, never at info, with its height, hash, transactions and bytes;
* the peer's connect and disconnect lines with its ``peer`` id and ``peer_addr``;
* the hung-up client as a debug line, and no ERROR line and no traceback anywhere.
"""

from __future__ import annotations

import base64
import socket
import subprocess
import time
from pathlib import Path

import orjson

from timecoin.cli.devnet import FAUCET_KEY, Devnet, write_node_conf
from timecoin.ledger.genesis import build_genesis
from timecoin.params import DEVNET
from timecoin.rpc.client import cookie_auth
from timecoin.testing.mininode import MiniNode
from timecoin.testing.node import TestNode, default_port_seed, p2p_port, wait_until
from timecoin.testing.util import run
from timecoin.wallet import Keystore, NodeWallet

SEED_OFFSET = 223
SUMMARY_FIELDS = (
    "height",
    "block",
    "tx_per_s",
    "finalized",
    "finality_p99_ms",
    "peers",
    "peers_in",
    "peers_out",
    "mempool_txs",
    "mempool_bytes",
)
GUIDE = Path(__file__).parents[2] / "docs" / "operator.md"


def records(path: Path) -> list[dict]:
    out = []
    for line in path.read_text(errors="replace").splitlines():
        if line.startswith("{"):
            out.append(orjson.loads(line))
    return out


def test_logs_of_a_running_masternode(tmp_path):
    net = Devnet(
        tmp_path / "devnet", 1, p2p_port(0, default_port_seed() + SEED_OFFSET), accounts=4, seed=b"logs"
    )
    genesis = build_genesis(net.create())
    node = net.nodes[0]
    node.datadir.mkdir(parents=True, exist_ok=True)
    write_node_conf(node)
    log_path = node.datadir / "stderr.log"
    args = [*net.args(node), "--log-json", "--log-level", "debug", "--log-summary-interval", "1"]
    with log_path.open("ab") as stderr:
        node.process = subprocess.Popen(
            args, stdout=subprocess.DEVNULL, stderr=stderr, env=TestNode.environment()
        )
    try:
        wait_until(lambda: net._ready(node), 60, what="the devnet node answering RPC")
        rpc = node.rpc()
        wait_until(lambda: rpc.getblockcount() >= 2, 60, what="2 blocks")

        # A transfer made final: the next summary counts it.
        keystore = Keystore.create(DEVNET)
        keystore.import_key(bytes.fromhex((net.keys_dir / FAUCET_KEY).read_text().strip()))
        wallet = NodeWallet(rpc, DEVNET)
        sent = wallet.send(keystore, [(keystore.addresses[0], 100_000_000)])
        assert wallet.wait_final(sent.txid, 30)["status"] == "final"
        assert wallet.wait_block(sent.txid, 30) is not None

        # A peer comes and goes.
        async def visit() -> int:
            peer = await MiniNode(DEVNET, genesis.hash).connect("127.0.0.1", node.p2p_port)
            await peer.ping()
            peer.close()
            await peer.wait_for_disconnect()
            return peer.protocol.transport.get_extra_info("sockname")[1]

        peer_port = run(visit())

        # A client hangs up halfway through its request body.
        user, password = cookie_auth(node.datadir)
        auth = base64.b64encode(f"{user}:{password}".encode()).decode()
        with socket.create_connection(("127.0.0.1", node.rpc_port), timeout=10) as s:
            s.sendall(
                (
                    "POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                    f"Authorization: Basic {auth}\r\nContent-Length: 1000\r\n\r\n"
                ).encode()
                + b'{"method": "getblockcount", "params": ['
            )
            time.sleep(0.3)

        def summaries_after_final() -> list[dict]:
            return [
                r
                for r in records(log_path)
                if r["logger"] == "timecoin.node" and r.get("finalized", 0) >= 1 and "tx_per_s" in r
            ]

        wait_until(summaries_after_final, 30, what="a summary line counting the final transfer")
        wait_until(lambda: any("hung up" in r["msg"] for r in records(log_path)), 30, what="the hang-up line")
        assert rpc.getblockcount() >= 2  # the node serves on
    finally:
        node.process.terminate()
        node.process.wait(timeout=30)

    lines = records(log_path)
    assert lines, "no JSON lines"
    text = log_path.read_text(errors="replace")
    assert all(line.startswith("{") for line in text.splitlines() if line.strip()), "a line that is not JSON"

    summaries = [r for r in lines if r["logger"] == "timecoin.node" and "tx_per_s" in r]
    assert len(summaries) >= 2
    guide_logs = GUIDE.read_text().split("## Logs", 1)[1].split("\n## ", 1)[0]
    for r in summaries:
        assert r["level"] == "info"
        assert set(SUMMARY_FIELDS) <= set(r), r
        assert f"height {r['height']} " in r["msg"] and f"{r['tx_per_s']:.1f} tx/s" in r["msg"]
        assert r["mempool_txs"] >= 0 and r["peers"] == r["peers_in"] + r["peers_out"]
    final = next(r for r in summaries if r["finalized"] >= 1)
    assert final["tx_per_s"] > 0 and final["finality_p99_ms"] is not None and final["finality_p99_ms"] >= 0
    for field in SUMMARY_FIELDS:
        assert f"`{field}`" in guide_logs, (
            f"the summary field {field} is not in docs/operator.md's Logs section"
        )

    blocks = [r for r in lines if r["msg"].startswith("committed block")]
    assert len(blocks) >= 2
    assert all(r["level"] == "debug" for r in blocks)  # per-block lines are debug, never info
    assert all({"height", "block", "txs", "bytes", "connect_ms", "consensus_ms"} <= set(r) for r in blocks)
    assert any(r["txs"] >= 2 for r in blocks)  # the transfer's block: coinbase and the transfer

    peer_lines = [r for r in lines if r.get("peer_addr") == f"127.0.0.1:{peer_port}"]
    assert any(r["msg"].startswith("connected") for r in peer_lines), peer_lines
    assert any(r["msg"].startswith("disconnected") for r in peer_lines), peer_lines
    assert all(isinstance(r["peer"], int) for r in peer_lines)

    hung_up = [r for r in lines if "hung up" in r["msg"]]
    assert hung_up and all(r["level"] == "debug" for r in hung_up)
    assert not [r for r in lines if r["level"] in ("error", "critical")], [
        r for r in lines if r["level"] == "error"
    ]
    assert "Traceback" not in text
