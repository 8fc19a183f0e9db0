"""Block sync against lying peers, on real ``timecoind`` processes (DESIGN §8 "Sync", §13 "Claims
are hints"; issue 12 findings 2 and 7).

* **A claimed height is a hint.** A raw mininode whose HELLO claims height 2^64 − 1 makes the
  node ask it for blocks, but never puts the node into initial block download while it serves
  none, and once it disconnects its claim is gone (``getblockchaininfo``: not syncing, target and
  ``headers`` at the node's own height). With such a liar connected, the node still announces a
  block it connects (``submitblock`` with its certificate) to a peer behind it, which fetches the
  block with its commit certificate. A peer that answers NOTFOUND for the heights it claimed
  has its claim cut to what it served and loses reputation, each time it claims again.
* **Sync is certified.** Mininodes claiming height 1 serve a ledger-valid block there: a fork
  block (another timestamp on the same genesis) without a certificate, the same fork block with
  the real block 1's certificate, and the real block 1 with a certificate whose signature is
  broken. Each is refused, its sender banned (it cannot reconnect) and the node stays at genesis.
  Then an honest ``timecoind`` holding the certified chain dials in: the node syncs the real
  chain from it, announces each block to a peer behind it as it connects it (while still
  syncing towards the honest peer's height, too), and serves every block onward with the same
  certificate.

The chain is the deterministic devnet chain of :func:`timecoin.testing.node.build_devnet_chain`;
its certificates are precommits of the four genesis masternodes
(:func:`timecoin.testing.chaingen.commit_certificate`).
"""

from __future__ import annotations

import contextlib
import os

import pytest

from timecoin.core.types import Block
from timecoin.ledger.blockbuilder import assemble_block
from timecoin.ledger.chain import ChainState
from timecoin.p2p import messages as m
from timecoin.p2p.messages import MessageType
from timecoin.testing.mininode import MiniNode
from timecoin.testing.node import DevnetChain, TestNode, build_devnet_chain, default_port_seed, write_chain
from timecoin.testing.util import run, wait_until_async

BLOCKS, TXS = 4, 2
SEED_OFFSET = 27
U64_MAX = 2**64 - 1


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    return build_devnet_chain(tmp_path_factory.mktemp("sync_hints"), BLOCKS, TXS)


def mininode(chain: DevnetChain, **kwargs) -> MiniNode:
    return MiniNode(chain.config.params, chain.genesis.hash, **kwargs)


def sync_info(node: TestNode) -> dict:
    return node.rpc.getblockchaininfo()


def test_a_claimed_height_is_forgotten_with_its_peer_and_blocks_are_still_announced(chain, tmp_path):
    node = TestNode(0, tmp_path, chain.genesis_file, port_seed=default_port_seed() + SEED_OFFSET)

    async def scenario():
        liar = await mininode(chain, height=U64_MAX, tip_hash=b"\xff" * 32).connect(
            "127.0.0.1", node.p2p_port
        )
        # The claim schedules a request ...
        start, _ = m.decode_getblocks(await liar.wait_for_message(MessageType.GETBLOCKS))
        assert start == 1
        await liar.ping()
        # ... but a claim no certified block backs is no sync state.
        info = sync_info(node)
        assert info["initialblockdownload"] is False and info["sync"]["syncing"] is False, info
        assert info["headers"] == 0 and info["sync"]["target"] == 0, info

        liar.close()
        await wait_until_async(lambda: node.rpc.getconnectioncount() == 0, message="liar gone")
        info = sync_info(node)
        assert info["initialblockdownload"] is False and info["sync"]["syncing"] is False, info
        assert info["headers"] == 0 and info["sync"]["target"] == 0 and info["sync"]["eta_s"] == 0, info

        # Another liar connected: the node still announces its new block to a peer behind it.
        liar = await mininode(chain, height=U64_MAX).connect("127.0.0.1", node.p2p_port)
        watcher = await mininode(chain).connect("127.0.0.1", node.p2p_port)
        block1 = Block.decode(chain.blocks[1])
        assert node.rpc.submitblock(chain.blocks[1].hex(), chain.certificate(1).hex()) is None
        announce = await watcher.wait_for_message(MessageType.BLOCK_ANNOUNCE)
        assert m.decode_announce(announce) == (1, block1.hash)
        assert await watcher.get_blocks(1, 1) == [(1, chain.certificate(1), chain.blocks[1])]
        assert not liar.received(MessageType.BLOCK_ANNOUNCE)  # it claims more: no news for it
        assert sync_info(node)["initialblockdownload"] is False
        watcher.close()
        liar.close()

    try:
        node.start_and_wait()
        run(scenario())
        node.stop()
    finally:
        node.cleanup()


def test_a_peer_that_cannot_back_its_claim_loses_it(chain, tmp_path):
    node = TestNode(0, tmp_path, chain.genesis_file, port_seed=default_port_seed() + SEED_OFFSET)

    async def scenario():
        liar = mininode(chain, height=U64_MAX)
        liar.on_getblocks = lambda payload: liar.send_message(
            MessageType.NOTFOUND, m.encode_u64(m.decode_getblocks(payload)[0])
        )
        await liar.connect("127.0.0.1", node.p2p_port)
        await liar.wait_for_message(MessageType.GETBLOCKS)
        await liar.ping()
        (peer,) = node.rpc.getpeerinfo()
        assert peer["height"] == 0 and peer["reputation"] < 0, peer  # claim cut to what it served
        assert sync_info(node)["headers"] == 0
        # A new announce is a new hint: it schedules a request again, and costs again.
        asked = len(liar.received(MessageType.GETBLOCKS))
        liar.send_message(MessageType.BLOCK_ANNOUNCE, m.encode_announce(5, b"\x05" * 32))
        await wait_until_async(lambda: len(liar.received(MessageType.GETBLOCKS)) > asked)
        await liar.ping()
        (again,) = node.rpc.getpeerinfo()
        assert again["height"] == 0 and again["reputation"] < peer["reputation"], again
        liar.close()

    try:
        node.start_and_wait()
        run(scenario())
        node.stop()
    finally:
        node.cleanup()


def fork_block(chain: DevnetChain, datadir) -> bytes:
    """A ledger-valid block 1 that is not the committed one: coinbase only, another timestamp."""
    state = ChainState.open(datadir, chain.config.params, chain.genesis)
    try:
        raw = assemble_block(state, [], chain.genesis.block.header.timestamp + 3).encode()
        state.connect_block(raw)  # proves it ledger-valid
        return raw
    finally:
        state.close()


def test_blocks_without_a_valid_commit_certificate_are_refused(chain, tmp_path):
    seed = default_port_seed() + SEED_OFFSET
    fresh = TestNode(0, tmp_path, chain.genesis_file, port_seed=seed)
    honest = TestNode(
        1,
        tmp_path,
        chain.genesis_file,
        port_seed=seed,
        extra_args=["--connect", f"127.0.0.1:{fresh.p2p_port}"],
    )
    write_chain(honest.datadir, chain, BLOCKS)
    fork = fork_block(chain, tmp_path / "fork")
    fork_hash = Block.decode(fork).hash
    real = chain.blocks[1]
    assert fork_hash != Block.decode(real).hash
    good = chain.certificate(1)
    broken = good[:-1] + bytes([good[-1] ^ 1])  # the last precommit signature, one bit off
    cases = [
        (fork, b"", "block 1 sent without a commit certificate"),
        (fork, good, "bad commit certificate (wrong-subject)"),
        (real, broken, "bad commit certificate (bad-signature)"),
    ]

    async def scenario():
        for raw, certificate, reason in cases:
            secret = os.urandom(32)
            forker = mininode(chain, secret=secret, height=1, tip_hash=Block.decode(raw).hash)
            forker.on_getblocks = lambda payload, f=forker, r=raw, c=certificate: f.send_block(1, c, r)
            await forker.connect("127.0.0.1", fresh.p2p_port)
            await forker.wait_for_disconnect(timeout=20)
            assert reason in fresh.log_text()
            assert fresh.rpc.getblockcount() == 0
            # Banned: the same key is turned away as soon as the Noise handshake proves it.
            again = mininode(chain, secret=secret, height=1)
            with contextlib.suppress(ConnectionError):
                await again.connect("127.0.0.1", fresh.p2p_port)
            await again.wait_for_disconnect()
            assert not again.received(MessageType.GETBLOCKS)

        # A peer behind the node hears of every block as the node connects it, syncing or not.
        watcher = await mininode(chain).connect("127.0.0.1", fresh.p2p_port)
        honest.start_and_wait()
        await wait_until_async(lambda: fresh.rpc.getblockcount() == BLOCKS, timeout=60, message="synced")
        await wait_until_async(lambda: len(watcher.received(MessageType.BLOCK_ANNOUNCE)) == BLOCKS)
        announced = [m.decode_announce(p) for p in watcher.received(MessageType.BLOCK_ANNOUNCE)]
        assert announced == [(h, Block.decode(chain.blocks[h]).hash) for h in range(1, BLOCKS + 1)]
        assert fresh.rpc.getbestblockhash() == honest.rpc.getbestblockhash()
        assert fresh.rpc.getblockhash(1) == Block.decode(real).hash.hex()
        info = sync_info(fresh)
        assert info["sync"]["syncing"] is False and info["headers"] == BLOCKS, info
        # Stored with the certificates it was synced with, and served onward with them.
        served = await watcher.get_blocks(1, BLOCKS)
        assert served == [(h, chain.certificate(h), chain.blocks[h]) for h in range(1, BLOCKS + 1)]
        watcher.close()

    try:
        fresh.start_and_wait()
        run(scenario(), timeout=180)
        fresh.stop()
        honest.stop()
    finally:
        fresh.cleanup()
        honest.cleanup()
