"""The encrypted P2P transport (DESIGN §8; docs/p2p.md "Transport", issue 14 item 1), over real
loopback sockets between in-process P2P services (each with its own chain state and datadir),
raw mininode peers and a TCP relay (:class:`~timecoin.testing.p2pnet.TcpRelay`) in the middle.

Checks, each with real keys:

* a man in the middle that flips one byte of the encrypted stream after the handshake is
  detected: the node drops the connection (``decrypt-failed``, ban score 100), and the ping
  carrying the flipped byte is never answered (nothing of it was handed on); a flipped byte
  inside the handshake fails the handshake instead;
* a peer presenting another node's identity is refused (``bad-signature``): the victim's
  genuine identity payload replayed over the attacker's own Noise static key, and the victim's
  node key claimed with the attacker's own signature; the victim itself still connects;
* a capture of everything two nodes exchanged while gossiping a load of transactions through
  the relay contains none of the raw transactions and none of their txids, though every
  transaction reached the far node through it.
"""

from __future__ import annotations

import timecoin_native

from timecoin.p2p.banman import key_target
from timecoin.p2p.handshake import identity_payload
from timecoin.testing.mininode import MiniNode
from timecoin.testing.p2pnet import ChainNode, TcpRelay, devnet_node
from timecoin.testing.util import run, wait_until_async

CAPTURE_TXS = 400
"""Transactions gossiped through the recording relay (a little load)."""


def last_reason(node: ChainNode) -> str:
    assert node.p2p is not None
    return str(node.p2p.recent_disconnects()[-1]["reason"])


def mininode(node: ChainNode, **kwargs) -> MiniNode:
    return MiniNode(node.chain.params, node.chain.genesis.hash, **kwargs)


def test_a_flipped_byte_is_detected_and_the_connection_dropped(tmp_path):
    async def scenario():
        node = devnet_node(tmp_path)
        relay: TcpRelay | None = None
        try:
            await node.start()
            relay = TcpRelay(("127.0.0.1", node.port))
            port = await relay.start()
            peer = await mininode(node).connect("127.0.0.1", port)
            await peer.ping()  # established through the relay, both ways
            received_before = len(peer.messages)
            relay.tamper_next(offset=5)  # inside the next transport message's ciphertext
            try:
                await peer.ping(timeout=10)
            except ConnectionError:
                pass
            else:
                raise AssertionError("the tampered ping was answered")
            await peer.wait_for_disconnect()
            assert relay.tampered == 1
            assert "decrypt-failed" in last_reason(node)
            # The ban score: 100 points, below the threshold, so the proven key is banned.
            assert node.p2p.banman.is_banned(key_target(peer.node_key))
            assert [t for t, _ in peer.messages[received_before:]] == []

            # A byte flipped inside the handshake (message 3, the initiator's static key and
            # identity) fails the handshake itself.
            relay.tamper_next(offset=40, skip=1)  # message 1 passes; message 3 is hit
            other = mininode(node)
            try:
                await other.connect("127.0.0.1", port)
            except ConnectionError:
                pass
            else:
                raise AssertionError("a tampered handshake completed")
            await other.wait_for_disconnect()
            assert "noise-failed" in last_reason(node)
            # The node still serves honest peers.
            honest = await mininode(node).connect("127.0.0.1", node.port)
            await honest.ping()
        finally:
            if relay is not None:
                await relay.stop()
            await node.stop()
            node.close()

    run(scenario())


def test_another_nodes_identity_is_refused(tmp_path):
    async def scenario():
        node = devnet_node(tmp_path)
        try:
            await node.start()
            victim = mininode(node)
            # The victim's genuine payload, replayed over the attacker's own static key.
            replayer = mininode(node)
            replayer.identity = victim.local.identity
            # The victim's node key claimed with a signature by the attacker's own key.
            claimer = mininode(node)
            claimer.identity = (
                victim.node_key + identity_payload(claimer.local.node_secret, claimer.local.noise_key)[32:]
            )
            for attacker in (replayer, claimer):
                try:
                    await attacker.connect("127.0.0.1", node.port)
                except ConnectionError:
                    pass
                else:
                    raise AssertionError("a presented identity that is not the sender's was accepted")
                await attacker.wait_for_disconnect()
                assert "bad-signature" in last_reason(node)
                assert not any(p["established"] for p in node.p2p.peer_info())
            # Not the victim's key: an unproven key is never banned.
            assert not node.p2p.banman.is_banned(key_target(victim.node_key))
            await victim.connect("127.0.0.1", node.port)
            await victim.ping()
            assert [p["node_key"] for p in node.p2p.peer_info() if p["established"]] == [
                victim.node_key.hex()
            ]
        finally:
            await node.stop()
            node.close()

    run(scenario())


def test_a_capture_under_load_holds_no_transaction_or_txid(tmp_path):
    async def scenario():
        a = devnet_node(tmp_path / "a", split=CAPTURE_TXS // 16 + 1)
        b = devnet_node(tmp_path / "b", split=CAPTURE_TXS // 16 + 1)
        assert a.wallet is not None
        txs = [tx.encode() for tx in a.wallet.transfers(CAPTURE_TXS, a.chain)]
        relay: TcpRelay | None = None
        try:
            await a.start()
            relay = TcpRelay(("127.0.0.1", a.port))
            port = await relay.start()
            await b.start(connect=(("127.0.0.1", port),))
            await wait_until_async(
                lambda: (
                    any(p["established"] for p in a.p2p.peer_info())
                    and any(p["established"] for p in b.p2p.peer_info())
                )
            )
            verdicts = a.submit_transactions(txs)
            assert all(code == "" for _, code in verdicts), verdicts[:3]  # all admitted
            a.p2p.broadcast_transactions(txs)
            await wait_until_async(lambda: len(b.mempool) == CAPTURE_TXS, timeout=60)
            captured = bytes(relay.captured)
            # Everything went through the relay, and it carried at least all those bytes.
            assert relay.links == 1 and len(captured) > sum(len(t) for t in txs)
            txids = timecoin_native.txids(txs)
            assert {e.txid for e in b.mempool.entries()} == set(txids)
            in_clear = [t for t in txs if t in captured] + [t for t in txids if t in captured]
            assert in_clear == []
            # Nor any transaction's first 32 bytes (its version, inputs' outpoints).
            assert [t[:32] for t in txs if t[:32] in captured] == []
        finally:
            if relay is not None:
                await relay.stop()
            for n in (a, b):
                await n.stop()
                n.close()

    run(scenario())
