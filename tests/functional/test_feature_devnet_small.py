"""Small devnets (``timecoin devnet -n 1`` and ``-n 2``) make blocks, and a closed production gate
says why (issue 16, "Small devnets"; DESIGN §5; docs/devnet.md, "Small devnets").

Real ``timecoind`` masternode processes on loopback, started by the devnet command's own code
(:class:`timecoin.cli.devnet.Devnet`: its genesis, keys, ports and each node's
``timecoin.conf``). A one-masternode devnet must commit blocks on its own. A two-masternode devnet
with one node up must not (its gate needs both), report the closed gate with the reason in
``getconsensusinfo`` and log it once (not once per slot); once the second node joins, both make
blocks and the gate's opening is logged. The running nodes also serve the RPC findings that need
a live network of masternodes: ``timecoin-cli -datadir=<node>`` reaches the devnet node through
its ``timecoin.conf`` (not mainnet's port), and ``getpeerinfo`` reports a ping time and the
peer's fresh height.
"""

from __future__ import annotations

import subprocess
import sys
import time

import orjson

from timecoin.cli.devnet import Devnet, write_node_conf
from timecoin.testing.node import TestNode, default_port_seed, p2p_port, wait_until

SEED_OFFSET = 211
BLOCKS = 3
"""Blocks a devnet must commit to count as producing (a 2 s slot each)."""


def devnet(tmp_path, nodes: int, offset: int) -> Devnet:
    net = Devnet(
        tmp_path / f"devnet{nodes}",
        nodes,
        p2p_port(0, default_port_seed() + SEED_OFFSET + offset),
        accounts=4,
        seed=b"timecoin-dev",
    )
    net.create()
    return net


def start_one(net: Devnet, index: int) -> None:
    """Starts node ``index`` as ``Devnet.start`` does (its conf, its log), without waiting for
    the others."""
    node = net.nodes[index]
    node.datadir.mkdir(parents=True, exist_ok=True)
    write_node_conf(node)
    with (node.datadir / "stderr.log").open("ab") as stderr:
        node.process = subprocess.Popen(
            net.args(node),
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            env=TestNode.environment(),
            start_new_session=True,
        )
    wait_until(lambda: net._ready(node), 60, what=f"node {index} answering RPC")


def cli(datadir, *args: str) -> subprocess.CompletedProcess[str]:
    """``timecoin-cli`` given nothing but the node's data directory, Bitcoin style."""
    return subprocess.run(
        [sys.executable, "-m", "timecoin.cli.client", f"-datadir={datadir}", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=TestNode.environment(),
    )


def log_of(net: Devnet, index: int) -> str:
    return (net.nodes[index].datadir / "stderr.log").read_text(errors="replace")


def test_one_masternode_devnet_makes_blocks(tmp_path):
    net = devnet(tmp_path, 1, 0)
    try:
        net.start()
        # timecoin-cli finds the devnet node from its data directory alone (its timecoin.conf).
        datadir = net.nodes[0].datadir
        count = cli(datadir, "getblockcount")
        assert count.returncode == 0, count.stderr
        rpc = net.nodes[0].rpc()
        wait_until(lambda: rpc.getblockcount() >= BLOCKS, 90, what=f"{BLOCKS} blocks on a 1-node devnet")
        gate = rpc.getconsensusinfo()["production_gate"]
        assert gate == {"open": True, "online": 1, "required": 1, "reason": None}
        assert "production gate open: 1 of 1 required masternodes online" in log_of(net, 0)
        assert int(cli(datadir, "getblockcount").stdout) >= BLOCKS
        info = orjson.loads(cli(datadir, "-getinfo").stdout)
        assert info["chain"] == "devnet" and info["blocks"] >= BLOCKS
        assert info["production_gate"]["open"] is True and info["connections"]["total"] == 0
    finally:
        assert net.stop() == [0]


def test_two_masternode_devnet_gate_closed_then_blocks(tmp_path):
    net = devnet(tmp_path, 2, 1)
    try:
        start_one(net, 0)
        first = net.nodes[0].rpc()
        wait_until(
            lambda: "production gate closed" in log_of(net, 0), 30, what="the closed gate in node 0's log"
        )
        time.sleep(3 * 2.0)  # three more slots with the gate closed
        gate = first.getconsensusinfo()["production_gate"]
        assert gate["open"] is False and gate["online"] == 1 and gate["required"] == 2
        assert "1 masternode online, the production gate needs 2" in gate["reason"]
        assert first.getblockcount() == 0
        assert log_of(net, 0).count("production gate closed") == 1  # once, not every slot

        start_one(net, 1)
        wait_until(
            lambda: all(n.rpc().getblockcount() >= BLOCKS for n in net.nodes),
            90,
            what=f"{BLOCKS} blocks on both nodes of a 2-node devnet",
        )
        assert first.getconsensusinfo()["production_gate"]["open"] is True
        assert "production gate open: 2 of 2 required masternodes online" in log_of(net, 0)

        # getpeerinfo: the ping was measured and the peer's height follows its tip.
        def fresh() -> bool:
            (peer,) = first.getpeerinfo()
            return peer["pingtime"] is not None and peer["height"] >= first.getblockcount() - 1

        wait_until(fresh, 30, what="a ping time and a fresh height in getpeerinfo")
        (peer,) = first.getpeerinfo()
        assert 0 <= peer["pingtime"] < 5 and peer["height"] >= BLOCKS - 1
    finally:
        assert net.stop() == [0, 0]
