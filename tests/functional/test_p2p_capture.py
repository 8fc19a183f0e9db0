"""A capture of P2P traffic during load holds no transaction or txid in the clear (issue 14's
done-when; docs/p2p.md "Transport"), over four real ``timecoind`` masternodes on loopback (the
devnet genesis's masternodes, consensus running for real).

Nodes 0, 1 and 2 form a full mesh; node 3 dials only a recording TCP relay
(:class:`~timecoin.testing.p2pnet.TcpRelay`, on an event loop in a thread of the test) in front
of node 0. A batch of signed transfers is submitted by RPC to node 3 and becomes final and
archived on every node, so the transactions, the votes naming their txids, the finality and the
blocks holding them crossed the relay. Asserted: the relay carried more bytes than the
transactions themselves, and the captured bytes contain none of the raw transactions, none of
their first 64 bytes, and none of their txids in either byte order.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from timecoin.testing.node import TestNode, build_devnet_chain, default_port_seed, wait_until
from timecoin.testing.p2pnet import TcpRelay

N = 4
BATCH = 60
"""Transfers submitted under capture (a little load)."""


@contextmanager
def relay_in_thread(target: tuple[str, int]) -> Iterator[tuple[TcpRelay, int]]:
    """A :class:`TcpRelay` to ``target`` running on its own event loop in a thread."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="capture-relay", daemon=True)
    thread.start()
    relay = TcpRelay(target)
    try:
        port = asyncio.run_coroutine_threadsafe(relay.start(), loop).result(10)
        yield relay, port
    finally:
        asyncio.run_coroutine_threadsafe(relay.stop(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    return build_devnet_chain(tmp_path_factory.mktemp("p2p_capture"), 0, 0, accounts=64)


def test_a_capture_during_load_holds_no_transaction_or_txid(chain):
    root, seed = chain.genesis_file.parent, default_port_seed() + 47
    nodes: list[TestNode] = []

    def masternode(i: int, connect: list[int]) -> TestNode:
        key_file = root / f"mn{i}.key"
        key_file.write_text(chain.masternode_keys[i].hex())
        args = ["--masternode-key", str(key_file)]
        for port in connect:
            args += ["--connect", f"127.0.0.1:{port}"]
        node = TestNode(i, root, chain.genesis_file, port_seed=seed, extra_args=args)
        nodes.append(node)
        return node

    try:
        for i in range(3):
            node = masternode(i, [n.p2p_port for n in nodes])
            node.start()
            node.wait_for_rpc_connection()
        with relay_in_thread(("127.0.0.1", nodes[0].p2p_port)) as (relay, relay_port):
            behind = masternode(3, [relay_port])
            behind.start()
            behind.wait_for_rpc_connection()
            for node in nodes:
                wait_until(
                    lambda n=node: sum(row["online"] for row in n.rpc.masternodelist()) == N,
                    60,
                    what=f"{node} sees every masternode online",
                )
            txs = chain.transfers(BATCH)
            results = behind.rpc.sendrawtransactions([tx.encode().hex() for tx in txs])
            assert all(r["accepted"] for r in results), results[:3]
            txids = [r["txid"] for r in results]
            for node in nodes:
                for txid in txids:
                    wait_until(
                        lambda n=node, t=txid: n.rpc.gettransactionfinality(t)["height"] is not None,
                        90,
                        what=f"{txid[:16]} final and archived on {node}",
                    )
            captured = bytes(relay.captured)
        raws = [tx.encode() for tx in txs]
        assert relay.links >= 1 and len(captured) > sum(len(r) for r in raws)
        ids = [bytes.fromhex(t) for t in txids]
        assert [r for r in raws if r in captured] == []
        assert [r[:64] for r in raws if r[:64] in captured] == []
        assert [t for t in ids if t in captured or t[::-1] in captured] == []
    finally:
        for node in nodes:
            if node.running:
                node.stop()
            node.cleanup()
