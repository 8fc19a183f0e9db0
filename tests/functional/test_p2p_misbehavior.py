"""Bad input from a peer (DESIGN §8, invariant 6): garbage bytes, a length over the type's
maximum, a truncated frame, an unknown type, messages out of the handshake's order, invalid
transactions, an unsolicited block and a flood beyond the rate limit each end in a disconnect or
a penalty (a ban below −50), change no chain or mempool state, and the node keeps serving its
other peers: after each, a transaction from an honest service still reaches the node and is
relayed on to an honest mininode.

The misbehaving mininode connects from 127.0.0.2 and the node bans loopback hosts
(``ban_loopback``), so host bans are visible without touching the honest peers on 127.0.0.1.
"""

from __future__ import annotations

import pytest

from timecoin.p2p import messages as m
from timecoin.p2p.banman import host_target, key_target
from timecoin.p2p.framing import HEADER
from timecoin.p2p.messages import MessageType
from timecoin.testing.mininode import MiniNode
from timecoin.testing.p2pnet import ChainNode, devnet_node
from timecoin.testing.util import run, wait_until_async

BAD_HOST = "127.0.0.2"


def frame(node: ChainNode, mtype: int, payload: bytes, length: int | None = None) -> bytes:
    return HEADER.pack(node.chain.params.magic, mtype, len(payload) if length is None else length) + payload


async def garbage(node, bad):
    bad.send_raw(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    return "disconnect"


async def oversized(node, bad):
    bad.send_raw(frame(node, MessageType.PING, b"", length=m.FRAME_LIMITS[MessageType.PING] + 1))
    return "disconnect"


async def oversized_batch(node, bad):
    bad.send_raw(frame(node, MessageType.TX_BATCH, b"", length=m.MAX_FRAME_PAYLOAD + 1))
    return "disconnect"


async def unknown_type(node, bad):
    bad.send_raw(frame(node, max(MessageType) + 1, b"hello"))
    return "disconnect"


async def truncated_frame(node, bad):
    # A batch declaring 100 more bytes than it carries swallows the ping after it: the payload
    # then fails to decode (penalty), and the stream stays in step for the next ping.
    payload = m.encode_items([b"x" * 10])
    bad.send_raw(frame(node, MessageType.TX_BATCH, payload, length=len(payload) + 18))
    bad.send_message(MessageType.PING, m.encode_u64(1))
    await bad.ping()
    return "penalty"


async def truncated_then_closed(node, bad):
    payload = m.encode_items([b"x" * 10])
    bad.send_raw(frame(node, MessageType.TX_BATCH, payload, length=len(payload) + 100))
    bad.close()
    return "closed"


async def before_handshake(node, bad):
    bad.send_message(MessageType.TX_BATCH, m.encode_items([b"x"]))
    return "disconnect"


async def second_hello(node, bad):
    bad.send_message(MessageType.HELLO, bad.our_hello.encode())
    return "disconnect"


async def bad_payload(node, bad):
    await bad.send_and_ping(MessageType.GETBLOCKS, m.encode_getblocks(1, 0))
    await bad.send_and_ping(MessageType.TX_BATCH, (m.MAX_TX_BATCH_ITEMS + 1).to_bytes(4, "little"))
    return "penalty"


async def invalid_transactions(node, bad):
    raw = node.wallet.transfers(1, node.chain)[0].encode()
    forged = raw[:-1] + bytes([raw[-1] ^ 1])  # last witness signature broken
    await bad.send_and_ping(MessageType.TX_BATCH, m.encode_items([forged, b"not a transaction"]))
    return "penalty"


async def unsolicited_block(node, bad):
    raw = node.block(node.block_hash(1))
    certificate = node.commit_certificate(1)
    await bad.send_and_ping(MessageType.BLOCK, m.encode_block_message(1, certificate, raw))
    return "penalty"


async def request_flood(node, bad):
    for _ in range(150):
        bad.send_message(MessageType.GETADDR, b"")
    return "disconnect"


async def transaction_flood(node, bad):
    # Batches of 10,000 items against a 40,000-item burst: the first costs a penalty for
    # garbage, the next three are dropped by the seen-cache, the rest by the token bucket.
    payload = m.encode_items([i.to_bytes(2, "little") for i in range(m.MAX_TX_BATCH_ITEMS)])
    for _ in range(12):
        bad.send_message(MessageType.TX_BATCH, payload)
    return "disconnect"


CASES = [
    # (case, handshake first, what the node logs as the reason)
    (garbage, True, "bad-magic"),
    (oversized, True, "oversized"),
    (oversized_batch, True, "oversized"),
    (unknown_type, True, "unknown-type"),
    (truncated_frame, True, "bad TX_BATCH"),
    (truncated_then_closed, True, "peer closed the connection"),
    (before_handshake, False, "before the handshake"),
    (second_hello, True, "second HELLO"),
    (bad_payload, True, "bad GETBLOCKS"),
    (invalid_transactions, True, "invalid transactions"),
    (unsolicited_block, True, "not requested"),
    (request_flood, True, "REQUEST rate limit"),
    (transaction_flood, True, "TX rate limit"),
]


@pytest.mark.parametrize("case,handshake,reason", CASES, ids=[c.__name__ for c, _, _ in CASES])
def test_bad_input(tmp_path, caplog, case, handshake, reason):
    caplog.set_level("INFO", logger="timecoin.p2p")

    async def scenario():
        node = devnet_node(tmp_path / "node", split=4)
        honest = devnet_node(tmp_path / "honest", split=4)
        try:
            await node.start(ban_loopback=True)
            await honest.start(connect=(("127.0.0.1", node.port),))
            observer = await MiniNode(node.chain.params, node.chain.genesis.hash).connect(
                "127.0.0.1", node.port
            )
            await wait_until_async(lambda: sum(p["established"] for p in node.p2p.peer_info()) == 2)
            tip, set_hash = node.chain.tip, node.chain.utxos.set_hash()

            bad = MiniNode(node.chain.params, node.chain.genesis.hash)
            await bad.connect("127.0.0.1", node.port, handshake=handshake, local_host=BAD_HOST)
            outcome = await case(node, bad)
            if outcome == "disconnect":
                await bad.wait_for_disconnect()
            elif outcome == "penalty":
                info = next(p for p in node.p2p.peer_info() if p["node_key"] == bad.node_key.hex())
                assert -50 <= info["reputation"] < 0
                await bad.ping()  # still connected
            else:
                await wait_until_async(lambda: len(node.p2p.peer_info()) == 2)
            # The reason is logged, against the right peer.
            assert any(reason in r.getMessage() and BAD_HOST in r.getMessage() for r in caplog.records)
            if (
                outcome == "disconnect"
                and handshake
                and case is not unknown_type
                and case is not second_hello
            ):
                assert node.p2p.banman.is_banned(key_target(bad.node_key))
                assert node.p2p.banman.is_banned(host_target(BAD_HOST))

            # No state changed...
            assert node.chain.tip == tip and node.chain.utxos.set_hash() == set_hash
            assert len(node.mempool) == 0
            # ...and the node still serves its other peers.
            tx = honest.wallet.transfers(1, honest.chain)[0].encode()
            assert honest.submit_transactions([tx])[0][1] == ""
            honest.p2p.broadcast_transactions([tx])
            await observer.wait_for_message(MessageType.TX_BATCH, lambda p: tx in p)
            assert len(node.mempool) == 1
        finally:
            for n in (node, honest):
                await n.stop()
                n.close()

    run(scenario())
