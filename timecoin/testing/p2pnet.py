"""In-process P2P networks for tests and benchmarks: real :class:`P2PService` instances over real
chain states and mempools, each in its own data directory and on its own loopback port (Chia's
``setup_nodes`` is the model).

:class:`ChainNode` implements :class:`~timecoin.p2p.service.NodeHooks` over a
:class:`~timecoin.ledger.chain.ChainState` and a :class:`~timecoin.ledger.mempool.Mempool` the
way the daemon does (``timecoin/node.py``), minus RPC, indexes and consensus: it admits
transactions, connects blocks and announces them. Use it where a whole node process is more than
the test needs.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
from collections.abc import Coroutine, Sequence
from pathlib import Path
from typing import Any

from timecoin.consensus.store import load_commit_certificate
from timecoin.core.types import HEADER_LEN, BlockHeader
from timecoin.ledger.blockbuilder import assemble_block
from timecoin.ledger.chain import ChainState
from timecoin.ledger.genesis import Genesis, build_genesis
from timecoin.ledger.mempool import Mempool
from timecoin.p2p.config import P2PConfig
from timecoin.p2p.service import P2PService
from timecoin.testing.chaingen import (
    Wallet,
    certified_writes,
    commit_certificate,
    devnet_genesis,
    grow_chain,
)

FAST_CONFIG = P2PConfig(
    handshake_timeout=5.0,
    connect_timeout=2.0,
    ping_interval=1.0,
    ping_timeout=2.0,
    reconnect_base=0.05,
    reconnect_max=0.5,
    maintenance_interval=0.05,
    gossip_interval=0.005,
    sync_request_timeout=2.0,
)
"""Short timers for tests: dead peers found in ~2 s, redials within half a second."""


class ChainNode:
    """A node without RPC: chain, mempool and P2P."""

    def __init__(self, chain: ChainState, secret: bytes | None = None) -> None:
        self.chain = chain
        self.mempool = Mempool(chain.params, chain.utxos, chain.rules)
        self.secret = secret or os.urandom(32)
        self.p2p: P2PService | None = None
        self.wallet: Wallet | None = None
        """Spendable coins, for nodes made by :func:`devnet_node`."""
        self.masternode_keys: Sequence[bytes] = ()
        """The genesis masternode seeds, for nodes made by :func:`devnet_node` (:meth:`certify`)."""

    @classmethod
    def open(cls, datadir: Path, genesis: Genesis, secret: bytes | None = None) -> ChainNode:
        return cls(ChainState.open(datadir, genesis.config.params, genesis), secret)

    async def start(self, config: P2PConfig = FAST_CONFIG, **overrides: Any) -> P2PService:
        """Starts the P2P service with ``config`` (fields replaced by ``overrides``)."""
        self.p2p = P2PService(
            self.chain.params,
            self.chain.genesis.hash,
            self.secret,
            self,
            self.chain.store,
            dataclasses.replace(config, **overrides),
        )
        await self.p2p.start()
        return self.p2p

    async def stop(self) -> None:
        if self.p2p is not None:
            await self.p2p.stop()
            self.p2p = None

    def close(self) -> None:
        self.chain.close()

    @property
    def port(self) -> int:
        assert self.p2p is not None
        return self.p2p.bound_port

    # -- NodeHooks -------------------------------------------------------------------------------

    def chain_tip(self) -> tuple[int, bytes]:
        tip = self.chain.tip
        return tip.height, tip.block_hash

    def block_hash(self, height: int) -> bytes | None:
        return self.chain.store.block_hash(height)

    def block(self, block_hash: bytes) -> bytes | None:
        return self.chain.store.block(block_hash)

    def commit_certificate(self, height: int) -> bytes | None:
        return load_commit_certificate(self.chain.store, height)

    def leader_set(self, height: int) -> tuple[Sequence[bytes], Sequence[int]]:
        return self.chain.leader_set(height)

    def connect_block(self, raw: bytes, certificate: bytes | None = None) -> None:
        height = self.chain.tip.height + 1
        extra = certified_writes(height, certificate) if certificate is not None else []
        applied = self.chain.connect_block(raw, extra)
        self.mempool.remove(applied.txids)
        if self.p2p is not None:
            self.p2p.announce_block(applied.height, applied.block_hash)

    def submit_transactions(self, raws: list[bytes]) -> list[tuple[bytes | None, str]]:
        return [(v.txid, v.code) for v in self.mempool.add(raws, self.chain.tip.height + 1)]

    def has_transaction(self, txid: bytes) -> bool:
        return txid in self.mempool

    def unarchived_transaction(self, txid: bytes) -> bytes | None:
        entry = self.mempool.get(txid)
        return entry.raw if entry is not None else None

    def pending_transactions(self) -> list[bytes]:
        return [e.raw for e in self.mempool.entries()]

    def is_masternode_key(self, public_key: bytes) -> bool:
        return public_key in self.chain.registry

    def certify(self, raw: bytes) -> bytes:
        """A commit certificate of the encoded block ``raw`` signed by every genesis masternode
        (:func:`~timecoin.testing.chaingen.commit_certificate`), for :meth:`connect_block`."""
        header = BlockHeader.decode(raw[:HEADER_LEN])
        return commit_certificate(self.chain.genesis.hash, header.height, header.hash, self.masternode_keys)


def devnet_node(datadir: Path, blocks: int = 0, txs_per_block: int = 0, *, split: int = 0) -> ChainNode:
    """A node on the devnet genesis of :func:`~timecoin.testing.chaingen.devnet_genesis` in
    ``datadir``, with the funded wallet in :attr:`ChainNode.wallet`. With ``split``, a first
    block splits each of the 16 genesis coins into ``split`` coins; then ``blocks`` blocks of
    ``txs_per_block`` transfers follow, each stored with a commit certificate of the genesis
    masternodes (so peers can sync them). Deterministic: nodes made alike hold the same chain."""
    config, accounts, masternode_keys = devnet_genesis()
    node = ChainNode.open(datadir, build_genesis(config))
    wallet = node.wallet = Wallet.from_genesis(node.chain, accounts)
    node.masternode_keys = masternode_keys
    chain = node.chain
    if split:
        txs = wallet.transfers(len(wallet.coins), chain, fanout=split)
        raw = assemble_block(chain, txs, chain.tip_header.timestamp + 2).encode()
        node.connect_block(raw, node.certify(raw))
    for _ in grow_chain(chain, wallet, blocks, txs_per_block, masternode_keys):
        pass
    return node


RELAY_CHUNK = 64 * 1024
"""Bytes :class:`TcpRelay` reads at once from one side."""


class TcpRelay:
    """A TCP relay on 127.0.0.1 in front of one P2P listener, for transport tests: every
    connection accepted is joined to ``target`` by a connection of its own, and every byte
    carried either way is appended to :attr:`captured` (both directions, in the order read).
    :meth:`tamper_next` makes it flip one byte of the next chunk it forwards from the dialer to
    the target: a man in the middle rewriting the encrypted stream. Every task it spawns is kept
    and cancelled by :meth:`stop`."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.captured = bytearray()
        self.links = 0
        self.tampered = 0
        """Bytes flipped so far."""
        self._tamper_offset: int | None = None
        self._tamper_skip = 0
        self._server: asyncio.AbstractServer | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: list[asyncio.StreamWriter] = []

    async def start(self) -> int:
        """Listens on an ephemeral loopback port; returns it."""
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        return int(self._server.sockets[0].getsockname()[1])

    def tamper_next(self, offset: int = 0, *, skip: int = 0) -> None:
        """Flip byte ``offset`` (or the chunk's last, if it is shorter) of the next chunk sent
        from a dialer to the target, after letting ``skip`` chunks through untouched."""
        self._tamper_offset = offset
        self._tamper_skip = skip

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for writer in self._writers:
            writer.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        self.links += 1
        self._writers += [writer, up_writer]
        self._spawn(self._pump(reader, up_writer, upstream=True))
        self._spawn(self._pump(up_reader, writer, upstream=False))

    async def _pump(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, upstream: bool
    ) -> None:
        try:
            while chunk := await reader.read(RELAY_CHUNK):
                if upstream and self._tamper_offset is not None and self._tamper_skip > 0:
                    self._tamper_skip -= 1
                elif upstream and self._tamper_offset is not None:
                    flipped = bytearray(chunk)
                    flipped[min(self._tamper_offset, len(flipped) - 1)] ^= 0x01
                    chunk = bytes(flipped)
                    self._tamper_offset = None
                    self.tampered += 1
                self.captured += chunk
                writer.write(chunk)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()
