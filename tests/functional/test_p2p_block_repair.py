"""How block sync repairs a damaged stored block (DESIGN §13 "Storage integrity"; docs/p2p.md "Block
repair"), with in-process P2P services over loopback (``FAST_CONFIG``: 2 s request timeout) on
real LMDB stores of the deterministic devnet chain, damaged in ``data.mdb`` before they open.

* **Found by a read, bounded retries.** Damage nothing read at start is found when a peer asks
  for the block (GETBLOCKS → NOTFOUND, never the bytes). The node then asks one peer at a time
  for that block alone, one request at a time: a raw peer that never answers is charged the
  usual 10 points when the request times out (and, its claim cut, is not asked again), one that
  answers NOTFOUND is not charged; the honest node connected last repairs it, and the block is
  served again byte for byte.
* **No usable digest, no repair.** A damaged block stored before digests were kept is not
  fetched at all (no GETBLOCKS leaves the node), and the refusal is logged once with the fix.
  A block whose digest record is damaged while its bytes are intact looks damaged; the honest
  peer's copy is byte for byte the stored one, so the node blames the digest, logs the fix and
  neither repairs nor charges the peer (before, there was no repair at all; a naive one would
  charge every honest peer until it banned them all).
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import lmdb

from timecoin.core.types import HEADER_LEN, BlockHeader
from timecoin.p2p import messages as m
from timecoin.p2p.messages import MessageType
from timecoin.p2p.sync import PENALTY_SLOW
from timecoin.store.chainstore import DATA_FILE
from timecoin.testing.mininode import MiniNode
from timecoin.testing.p2pnet import ChainNode, devnet_node
from timecoin.testing.util import run, wait_until_async

BLOCKS, TXS = 5, 3
DAMAGED = 3
COINBASE_VALUE_AT = HEADER_LEN + 4 + 4 + 1 + 4 + 4
"""Offset of the coinbase's first output value (docs/encoding.md): a byte the merkle root covers."""


def block_hash(raw: bytes) -> bytes:
    return BlockHeader.decode(raw[:HEADER_LEN]).hash


def damaged_node(
    path: Path, *, flip_at: int | None, digest: bytes | None | str = "keep"
) -> tuple[ChainNode, list[bytes]]:
    """A devnet node of BLOCKS blocks in ``path`` whose block DAMAGED has bit 0 of byte
    ``flip_at`` flipped in every copy in ``data.mdb`` and its digest record replaced (``None``:
    deleted) unless ``digest`` is ``"keep"``; and the intact encoded blocks by height."""
    node = devnet_node(path, BLOCKS, TXS)
    raws = [node.block(node.block_hash(h)) for h in range(BLOCKS + 1)]
    genesis = node.chain.genesis
    node.close()
    raw = raws[DAMAGED]
    if digest != "keep":
        env = lmdb.open(str(path), max_dbs=16)
        try:
            with env.begin(write=True, db=env.open_db(b"digests")) as txn:
                if digest is None:
                    txn.delete(block_hash(raw))
                else:
                    assert isinstance(digest, bytes)
                    txn.put(block_hash(raw), digest)
        finally:
            env.close()
    if flip_at is not None:
        data = bytearray((path / DATA_FILE).read_bytes())
        at = data.find(raw)
        assert at >= 0
        while at >= 0:
            data[at + flip_at % len(raw)] ^= 1
            at = data.find(raw, at + 1)
        (path / DATA_FILE).write_bytes(bytes(data))
    return ChainNode.open(path, genesis), raws


async def start_repairing(node: ChainNode) -> None:
    p2p = await node.start()
    p2p.sync.enable_repair(node.chain.store)


def reputation(node: ChainNode, peer: MiniNode) -> int:
    assert node.p2p is not None
    return next(p.reputation for p in node.p2p.connman.peers.values() if p.node_key == peer.node_key)


def getblocks_received(peer: MiniNode) -> list[tuple[int, int]]:
    return [m.decode_getblocks(p) for p in peer.received(MessageType.GETBLOCKS)]


def test_read_finds_the_damage_and_peers_are_asked_one_at_a_time(tmp_path):
    async def scenario() -> None:
        node, raws = damaged_node(tmp_path / "damaged", flip_at=-1)
        honest = devnet_node(tmp_path / "honest", BLOCKS, TXS)
        peers: list[MiniNode] = []
        try:
            await start_repairing(node)
            sync = node.p2p.sync  # type: ignore[union-attr]
            assert sync.repairs_pending() == {}  # nothing read it yet
            params, genesis_hash = node.chain.params, node.chain.genesis.hash
            silent = MiniNode(params, genesis_hash, height=BLOCKS)
            silent.on_getblocks = lambda payload: None  # type: ignore[method-assign]
            notfound = MiniNode(params, genesis_hash, height=BLOCKS)

            def answer_notfound(payload: bytes) -> None:
                start, _ = m.decode_getblocks(payload)
                notfound.send_message(MessageType.NOTFOUND, m.encode_u64(start))

            notfound.on_getblocks = answer_notfound  # type: ignore[method-assign]
            peers += [silent, notfound]
            await silent.connect("127.0.0.1", node.port)
            # A peer's request reads the block: NOTFOUND, never the damaged bytes; now it is known.
            assert await silent.get_blocks(DAMAGED, 1) == []
            await wait_until_async(lambda: sync.repairs_pending() == {DAMAGED: block_hash(raws[DAMAGED])})
            await wait_until_async(lambda: (DAMAGED, 1) in getblocks_received(silent))
            await notfound.connect("127.0.0.1", node.port)
            # The silent peer's request times out (2 s): it is charged, the next peer is asked.
            await wait_until_async(lambda: (DAMAGED, 1) in getblocks_received(notfound), timeout=30)
            assert reputation(node, silent) == -PENALTY_SLOW
            await notfound.ping()
            assert reputation(node, notfound) == 0  # NOTFOUND for a repair costs nothing
            assert node.chain.store.block(block_hash(raws[DAMAGED])) is None

            await honest.start(connect=(("127.0.0.1", node.port),))
            await wait_until_async(lambda: sync.repairs_pending() == {}, timeout=30)
            assert node.chain.store.block(block_hash(raws[DAMAGED])) == raws[DAMAGED]
            assert node.chain.store.blocks_repaired == 1
            served = await silent.get_blocks(DAMAGED, 1)
            assert [(h, raw) for h, _, raw in served] == [(DAMAGED, raws[DAMAGED])]
            # One block asked for at a time; the silent peer, its claim cut, was not asked again.
            assert getblocks_received(silent) == [(DAMAGED, 1)]
            assert set(getblocks_received(notfound)) == {(DAMAGED, 1)}
        finally:
            for peer in peers:
                peer.close()
            for n in (node, honest):
                await n.stop()
                n.close()

    run(scenario(), timeout=120)


def test_a_block_without_a_usable_digest_is_not_repaired(tmp_path, caplog):
    async def scenario() -> None:
        # Block 3 of "old" was stored before digests were kept, then damaged (its merkle root
        # sees it); block 3 of "digest" is intact but its digest record is damaged.
        old, raws = damaged_node(tmp_path / "old", flip_at=COINBASE_VALUE_AT, digest=None)
        bad_digest, _ = damaged_node(tmp_path / "digest", flip_at=None, digest=bytes(32))
        honest = devnet_node(tmp_path / "honest", BLOCKS, TXS)
        peer: MiniNode | None = None
        key = block_hash(raws[DAMAGED])
        try:
            await start_repairing(old)
            peer = MiniNode(old.chain.params, old.chain.genesis.hash, height=BLOCKS)
            await peer.connect("127.0.0.1", old.port)
            with caplog.at_level(logging.ERROR, logger="timecoin.p2p.sync"):
                for _ in range(3):
                    assert await peer.get_blocks(DAMAGED, 1) == []
                await asyncio.sleep(0)
                sync = old.p2p.sync  # type: ignore[union-attr]
                assert sync.repairs_pending() == {}
                await peer.ping()
            refusals = [
                r.getMessage()
                for r in caplog.records
                if r.name == "timecoin.p2p.sync" and key.hex() in r.getMessage()
            ]
            assert len(refusals) == 1, refusals
            assert "before block digests were kept" in refusals[0] and "timecoin db check" in refusals[0]
            assert getblocks_received(peer) == []

            caplog.clear()
            await honest.start()
            await start_repairing(bad_digest)
            assert bad_digest.chain.store.block(key) is None  # the digest says it is damaged
            await honest.p2p.connect("127.0.0.1", bad_digest.port)  # type: ignore[union-attr]
            with caplog.at_level(logging.ERROR, logger="timecoin.p2p.sync"):
                await wait_until_async(
                    lambda: any("digest record is damaged" in r.getMessage() for r in caplog.records),
                    timeout=30,
                )
            sync = bad_digest.p2p.sync  # type: ignore[union-attr]
            assert sync.repairs_pending() == {}
            assert bad_digest.chain.store.blocks_repaired == 0
            assert all(p.reputation == 0 for p in bad_digest.p2p.connman.peers.values())  # type: ignore[union-attr]
            assert bad_digest.chain.store.block(key) is None  # not queued again: refused once
            await asyncio.sleep(0)
            assert sync.repairs_pending() == {}
        finally:
            if peer is not None:
                peer.close()
            for n in (old, bad_digest, honest):
                await n.stop()
                n.close()

    run(scenario(), timeout=120)
