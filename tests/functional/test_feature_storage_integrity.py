"""Storage integrity of a live ``timecoind`` (DESIGN §12 invariant 11, §13 "Storage integrity").

A devnet chain is written into a node's data directory offline, then its ``data.mdb`` is damaged
on disk the way a disk damages it, and a real ``timecoind`` process starts on it:

* **One flipped byte inside a stored block's body** (every copy of the block in the file): the
  node starts and keeps serving, but the block is never served: ``getblock`` answers
  ``DATABASE_ERROR`` (-20) naming the damage, a raw P2P peer asking for it with GETBLOCKS gets
  NOTFOUND (while the block below it is served), the damage is logged once and counted in
  ``timecoin_store_damaged_blocks_total``. (Before: the node served the damaged bytes by RPC and
  P2P, and honest peers syncing from it banned it.)
* **A truncated ``data.mdb``**: the node exits with status 1 and one log line naming the file,
  ``timecoin db check`` and the resync; no SIGBUS (before: killed by SIGBUS without a word). The
  ``timecoin db check`` process on the same directory exits 1 naming the damaged LMDB structure.
"""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest

from timecoin.core.types import HEADER_LEN, BlockHeader
from timecoin.node import CHAIN_DIR
from timecoin.p2p import messages as m
from timecoin.p2p.messages import MessageType
from timecoin.rpc.errors import DATABASE_ERROR
from timecoin.store.chainstore import DATA_FILE
from timecoin.testing.mininode import MiniNode
from timecoin.testing.node import (
    TestNode,
    assert_raises_rpc_error,
    build_devnet_chain,
    default_port_seed,
    metrics_port,
    scrape_metrics,
    truncate_data_file,
    write_chain,
)
from timecoin.testing.util import run

BLOCKS, TXS = 6, 4
DAMAGED = 3
SEED_OFFSET = 47
COINBASE_VALUE_AT = HEADER_LEN + 4 + 4 + 1 + 4 + 4
"""Offset of the coinbase's first output value in a block (docs/encoding.md): header, tx count,
then the coinbase's version, kind, input count and output count."""


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    return build_devnet_chain(tmp_path_factory.mktemp("integrity"), BLOCKS, TXS)


def block_hash(raw: bytes) -> bytes:
    return BlockHeader.decode(raw[:HEADER_LEN]).hash


def new_node(chain, index: int, extra_args: list[str] | None = None) -> TestNode:
    node = TestNode(
        index,
        chain.genesis_file.parent,
        chain.genesis_file,
        port_seed=default_port_seed() + SEED_OFFSET,
        extra_args=extra_args,
    )
    write_chain(node.datadir, chain, BLOCKS)
    return node


def flip_in_file(node: TestNode, raw: bytes, offset: int) -> None:
    """Flips bit 0 of byte ``offset`` of every copy of ``raw`` in the node's ``data.mdb``."""
    path = node.datadir / CHAIN_DIR / DATA_FILE
    data = bytearray(path.read_bytes())
    at = data.find(raw)
    assert at >= 0, "block bytes not found in data.mdb"
    while at >= 0:
        data[at + offset] ^= 1
        at = data.find(raw, at + 1)
    path.write_bytes(bytes(data))


def test_damaged_block_is_never_served(chain):
    port = metrics_port(0, default_port_seed() + SEED_OFFSET)
    node = new_node(chain, 0, ["--metrics", "true", "--metrics-port", str(port)])
    damaged = chain.blocks[DAMAGED]
    damaged_hash = block_hash(damaged)
    flip_in_file(node, damaged, COINBASE_VALUE_AT)
    try:
        node.start_and_wait()
        # RPC: a clear error, for the block and its header; its neighbours are served.
        assert (
            node.rpc.getblock(block_hash(chain.blocks[DAMAGED - 1]).hex(), 0)
            == chain.blocks[DAMAGED - 1].hex()
        )
        for method in (node.rpc.getblock, node.rpc.getblockheader):
            assert_raises_rpc_error(
                DATABASE_ERROR, "is damaged in this node's store", method, damaged_hash.hex()
            )
        assert node.rpc.getblockhash(DAMAGED) == damaged_hash.hex()

        # P2P: the block below is served; the damaged one is answered NOTFOUND, never sent.
        async def ask_over_p2p() -> None:
            peer = await MiniNode(chain.genesis.config.params, chain.genesis.hash).connect(
                "127.0.0.1", node.p2p_port
            )
            try:
                await peer.send_and_ping(MessageType.GETBLOCKS, m.encode_getblocks(DAMAGED - 1, 1))
                served = [*peer.received(MessageType.BLOCK), *peer.received(MessageType.BLOCK_CHUNK)]
                assert served, "the intact block below the damaged one was not served"
                await peer.send_and_ping(MessageType.GETBLOCKS, m.encode_getblocks(DAMAGED, 1))
                notfound = await peer.wait_for_message(
                    MessageType.NOTFOUND, lambda p: m.decode_u64(p, "NOTFOUND") == DAMAGED
                )
                assert notfound
                after = [*peer.received(MessageType.BLOCK), *peer.received(MessageType.BLOCK_CHUNK)]
                assert after == served, "the damaged block was sent"
                assert not any(damaged[:HEADER_LEN] in payload for _, payload in peer.messages[len(served) :])
            finally:
                peer.close()

        run(ask_over_p2p())

        # Logged once (however often it was asked for), counted once, and the node keeps serving.
        lines = [
            line for line in node.log_text().splitlines() if f"stored block {damaged_hash.hex()}" in line
        ]
        assert len(lines) == 1 and "is damaged" in lines[0] and "timecoin db check" in lines[0], lines
        assert scrape_metrics(port)["timecoin_store_damaged_blocks_total"] == 1
        assert node.rpc.getblockcount() == BLOCKS
        node.stop()
    finally:
        node.cleanup()


def test_truncated_data_file_exits_with_one_clear_line(chain):
    node = new_node(chain, 1)
    data = truncate_data_file(node.datadir / CHAIN_DIR)
    try:
        node.start()
        status = node.wait_until_stopped(timeout=60)
        log = node.log_text()
        assert status != -signal.SIGBUS, "timecoind died of SIGBUS"
        assert status == 1, (status, log[-3000:])
        lines = [line for line in log.splitlines() if str(data) in line]
        assert len(lines) == 1, log[-3000:]
        assert "truncated" in lines[0] and "timecoin db check" in lines[0] and "remove" in lines[0]
    finally:
        node.cleanup()

    check = subprocess.run(
        [
            sys.executable,
            "-m",
            "timecoin.cli.main",
            "db",
            "check",
            "--network",
            "devnet",
            "--datadir",
            str(node.datadir),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env=TestNode.environment(),
    )
    assert check.returncode == 1, (check.returncode, check.stderr)
    assert "LMDB structure" in check.stderr and str(data) in check.stderr
