"""P2P handshake and connections (DESIGN §8, invariant 6), over real loopback sockets between
in-process P2P services (each with its own chain state and datadir) and raw mininode peers.

Checks: two services handshake and see each other's proven keys; a HELLO of a wrong genesis, a
wrong network id or an old protocol is disconnected with a ban of the host and of the key the
Noise handshake proved before it, and the node keeps accepting honest peers (a presented
identity that is not the sender's: tests/functional/test_p2p_noise.py); a masternode
proof opens the consensus message class and nothing else does; simultaneous dials end with one
connection, the one the lower node key dialed; a static peer that dies is redialed when it comes
back; bans survive a restart.
"""

from __future__ import annotations

import asyncio
import os

import pytest

from timecoin import crypto
from timecoin.p2p import messages as m
from timecoin.p2p.banman import host_target, key_target
from timecoin.p2p.gossip import GossipKind
from timecoin.p2p.messages import MessageType
from timecoin.params import MAINNET
from timecoin.testing.chaingen import devnet_genesis
from timecoin.testing.mininode import MiniNode
from timecoin.testing.p2pnet import ChainNode, devnet_node
from timecoin.testing.util import run, wait_until_async

BAD_HOST = "127.0.0.2"
"""Misbehaving mininodes connect from here, so a host ban of it spares the honest peers."""


def established(node: ChainNode) -> list[dict]:
    assert node.p2p is not None
    return [p for p in node.p2p.peer_info() if p["established"]]


def last_reason(node: ChainNode) -> str:
    assert node.p2p is not None
    return str(node.p2p.recent_disconnects()[-1]["reason"])


def mininode(node: ChainNode, **kwargs) -> MiniNode:
    return MiniNode(node.chain.params, node.chain.genesis.hash, **kwargs)


def test_two_services_handshake(tmp_path):
    async def scenario():
        a, b = devnet_node(tmp_path / "a", blocks=2, txs_per_block=1), devnet_node(tmp_path / "b")
        try:
            await a.start()
            await b.start(connect=(("127.0.0.1", a.port),))
            await wait_until_async(lambda: len(established(a)) == 1 and len(established(b)) == 1)
            (seen_by_a,), (seen_by_b,) = established(a), established(b)
            assert seen_by_a["node_key"] == b.p2p.node_key.hex() and seen_by_a["inbound"]
            assert seen_by_b["node_key"] == a.p2p.node_key.hex() and not seen_by_b["inbound"]
            assert seen_by_b["height"] == 2
            # The outbound side learnt the address for its book.
            assert ("127.0.0.1", a.port) in b.p2p.addrman
        finally:
            for n in (a, b):
                await n.stop()
                n.close()

    run(scenario())


def test_an_old_version_is_disconnected_not_banned(tmp_path):
    """A node of an older protocol is refused, but neither its host nor its key is banned: once
    it upgrades, it connects from the same host with the same key at once."""

    async def scenario():
        node = devnet_node(tmp_path)
        try:
            await node.start(ban_loopback=True)
            secret = os.urandom(32)
            old = mininode(node, secret=secret)
            await old.connect("127.0.0.1", node.port, handshake=False, local_host=BAD_HOST)
            old.send_message(MessageType.HELLO, old.hello(version=m.MIN_PROTOCOL_VERSION - 1).encode())
            await old.wait_for_disconnect()
            assert "old-version" in last_reason(node)
            assert not node.p2p.banman.is_banned(host_target(BAD_HOST))
            assert not node.p2p.banman.is_banned(key_target(old.node_key))
            upgraded = mininode(node, secret=secret)
            await upgraded.connect("127.0.0.1", node.port, local_host=BAD_HOST)
            await upgraded.ping()
        finally:
            await node.stop()
            node.close()

    run(scenario())


@pytest.mark.parametrize(
    "change,reason",
    [
        ({"genesis_hash": b"\x01" * 32}, "wrong-genesis"),
        ({"network": int(MAINNET.network)}, "wrong-network"),
    ],
)
def test_bad_hello_is_disconnected_and_banned(tmp_path, change, reason):
    async def scenario():
        node = devnet_node(tmp_path)
        try:
            await node.start(ban_loopback=True)
            bad = mininode(node)
            await bad.connect("127.0.0.1", node.port, handshake=False, local_host=BAD_HOST)
            bad.send_message(MessageType.HELLO, bad.hello(**change).encode())
            await bad.wait_for_disconnect()
            assert reason in last_reason(node)
            assert node.p2p.banman.is_banned(host_target(BAD_HOST))
            # The Noise handshake proved the key before HELLO: it is banned with the host.
            assert node.p2p.banman.is_banned(key_target(bad.node_key))
            # Refused at once from the banned host; still serving everyone else.
            again = mininode(node)
            await again.connect("127.0.0.1", node.port, handshake=False, local_host=BAD_HOST)
            await again.wait_for_disconnect()
            assert "banned host" in last_reason(node)
            honest = await mininode(node).connect("127.0.0.1", node.port)
            await honest.ping()
        finally:
            await node.stop()
            node.close()

    run(scenario())


def test_masternode_proof_opens_the_consensus_class(tmp_path):
    async def scenario():
        node = devnet_node(tmp_path)
        _, _, masternode_keys = devnet_genesis()
        votes: list[bytes] = []

        def on_votes(peer, items):
            votes.extend(items)
            return [False] * len(items)

        try:
            await node.start()
            node.p2p.register_handler(GossipKind.VOTE, on_votes)
            registered = await mininode(node, masternode_secret=masternode_keys[0]).connect(
                "127.0.0.1", node.port
            )
            unregistered = await mininode(node, masternode_secret=bytes(32)).connect("127.0.0.1", node.port)
            plain = await mininode(node).connect("127.0.0.1", node.port)
            by_key = {p["node_key"]: p for p in established(node)}
            assert (
                by_key[registered.node_key.hex()]["masternode"] == crypto.public_key(masternode_keys[0]).hex()
            )
            assert by_key[unregistered.node_key.hex()]["masternode"] is None
            assert by_key[plain.node_key.hex()]["masternode"] is None

            await registered.send_and_ping(MessageType.VOTE_BATCH, m.encode_items([b"vote-1", b"vote-2"]))
            assert votes == [b"vote-1", b"vote-2"]
            await unregistered.send_and_ping(MessageType.VOTE_BATCH, m.encode_items([b"vote-3"]))
            await plain.send_and_ping(MessageType.VOTE_BATCH, m.encode_items([b"vote-4"]))
            assert votes == [b"vote-1", b"vote-2"]
            by_key = {p["node_key"]: p for p in established(node)}
            assert by_key[unregistered.node_key.hex()]["reputation"] == 0  # maybe just ahead of us
            assert by_key[plain.node_key.hex()]["reputation"] < 0
        finally:
            await node.stop()
            node.close()

    run(scenario())


async def _simultaneous_dials(a: ChainNode, b: ChainNode) -> None:
    await a.start(ping_interval=0.2)
    await b.start(ping_interval=0.2)
    await asyncio.gather(a.p2p.connect("127.0.0.1", b.port), b.p2p.connect("127.0.0.1", a.port))

    def settled():
        return all(len(n.p2p.peer_info()) == 1 and len(established(n)) == 1 for n in (a, b))

    await wait_until_async(settled)
    lower, higher = sorted((a, b), key=lambda n: n.p2p.node_key)
    # Both ends kept the connection the lower key dialed.
    assert not established(lower)[0]["inbound"] and established(higher)[0]["inbound"]
    # And it stays single: a ping round trip later nothing changed.
    await wait_until_async(lambda: established(a)[0]["pingtime"] is not None)
    assert settled()


def test_simultaneous_dials_end_with_one_connection(tmp_path):
    async def scenario():
        for round_ in range(3):
            a, b = devnet_node(tmp_path / f"a{round_}"), devnet_node(tmp_path / f"b{round_}")
            try:
                await _simultaneous_dials(a, b)
            finally:
                for n in (a, b):
                    await n.stop()
                    n.close()

    run(scenario())


def test_killed_static_peer_is_reconnected(tmp_path):
    async def scenario():
        a, b = devnet_node(tmp_path / "a"), devnet_node(tmp_path / "b")
        try:
            await b.start()
            port = b.port
            await a.start(connect=(("127.0.0.1", port),))
            await wait_until_async(lambda: len(established(a)) == 1)
            await b.stop()
            await wait_until_async(lambda: not a.p2p.peer_info())
            await b.start(listen_port=port)
            await wait_until_async(lambda: len(established(a)) == 1 and len(established(b)) == 1)
            assert established(a)[0]["node_key"] == b.p2p.node_key.hex()
        finally:
            for n in (a, b):
                await n.stop()
                n.close()

    run(scenario())


def test_bans_survive_a_restart(tmp_path):
    async def scenario():
        node = devnet_node(tmp_path)
        await node.start(ban_loopback=True)
        bad = mininode(node)
        await bad.connect("127.0.0.1", node.port, handshake=False, local_host=BAD_HOST)
        bad.send_raw(b"\xde\xad\xbe\xef" * 8)
        await bad.wait_for_disconnect()
        await node.stop()
        node.close()
        node = ChainNode.open(tmp_path, node.chain.genesis)
        try:
            await node.start(ban_loopback=True)
            assert node.p2p.banman.is_banned(host_target(BAD_HOST))
            again = mininode(node)
            await again.connect("127.0.0.1", node.port, handshake=False, local_host=BAD_HOST)
            await again.wait_for_disconnect()
            assert "banned host" in last_reason(node)
        finally:
            await node.stop()
            node.close()

    run(scenario())


def test_dead_and_silent_peers_are_dropped_and_inbound_is_limited(tmp_path):
    async def scenario():
        node = devnet_node(tmp_path)
        try:
            await node.start(ping_interval=0.2, ping_timeout=0.3, handshake_timeout=0.3, max_inbound=2)
            silent = await mininode(node).connect("127.0.0.1", node.port, handshake=False)
            await silent.wait_for_disconnect()
            assert "handshake timeout" in last_reason(node)

            dead = mininode(node)
            dead.auto_pong = False
            await dead.connect("127.0.0.1", node.port)
            await dead.wait_for_message(MessageType.PING)
            await dead.wait_for_disconnect()
            assert "ping timeout" in last_reason(node)

            alive = await mininode(node).connect("127.0.0.1", node.port)
            await alive.wait_for_message(MessageType.PING)
            second = await mininode(node).connect("127.0.0.1", node.port)
            third = mininode(node)
            await third.connect("127.0.0.1", node.port, handshake=False)
            await third.wait_for_disconnect()
            assert "inbound connections full" in last_reason(node)
            await alive.ping()
            await second.ping()
            # Answering pings keeps a connection alive through many ping timeouts.
            await wait_until_async(lambda: len(alive.received(MessageType.PING)) >= 4)
            assert not alive.disconnected.is_set()
        finally:
            await node.stop()
            node.close()

    run(scenario())
