"""A raw P2P peer for tests (Bitcoin Core's ``p2p.py`` is the model).

:class:`MiniNode` speaks the wire protocol of :mod:`timecoin.p2p` with nothing behind it: it
performs the Noise handshake and HELLO (or lets a test break either), records every message it
receives and calls ``on_<message>(payload)`` for each (``on_tx_batch``, ``on_block``, ...;
override or assign them), answers pings, and can send anything: bytes that are not frames
inside the encrypted channel (:meth:`MiniNode.send_raw`) or outside it
(:meth:`MiniNode.send_wire`), a block with any commit certificate (or none) with
:meth:`MiniNode.send_block`, and it can fetch blocks with :meth:`MiniNode.get_blocks`.

:meth:`MiniNode.send_and_ping` sends a message then a ping and waits for the pong: the node
answers a ping only after everything received before it has been handled (gossip included), so
the pong proves the message was processed, without sleeping.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import os
from collections.abc import Callable
from typing import Any

import timecoin_native

from timecoin.core.types import HEADER_LEN
from timecoin.p2p import messages as m
from timecoin.p2p.framing import FrameError
from timecoin.p2p.handshake import HandshakeError, LocalIdentity, PeerIdentity, check_hello
from timecoin.p2p.messages import MessageType
from timecoin.p2p.protocol import FrameProtocol
from timecoin.params import NetworkParams
from timecoin.testing.util import wait_for

_nonces = itertools.count(1)


class MiniNode:
    """A test peer. ``secret`` is its node key seed (random by default)."""

    def __init__(
        self,
        params: NetworkParams,
        genesis_hash: bytes,
        secret: bytes | None = None,
        *,
        masternode_secret: bytes | None = None,
        height: int = 0,
        tip_hash: bytes = bytes(32),
        listen_port: int = 0,
    ) -> None:
        self.params = params
        self.local = LocalIdentity.create(
            int(params.network), genesis_hash, secret or os.urandom(32), masternode_secret
        )
        self.our_hello = self.local.hello(height, tip_hash, listen_port)
        self.their_hello: m.Hello | None = None
        self.sent_hello: m.Hello | None = None
        self.identity: bytes | None = None
        """Replaces our Noise identity payload (``LocalIdentity.identity``) when set before
        :meth:`connect`: to present another node's signature, or a forged one."""
        self.peer_identity: PeerIdentity | None = None
        """Whom the node's Noise handshake proved."""
        self.auto_pong = True
        self.protocol: FrameProtocol | None = None
        self.messages: list[tuple[MessageType, bytes]] = []
        self.established = asyncio.Event()
        self.disconnected = asyncio.Event()
        self.close_reason = ""
        self._pongs: dict[int, asyncio.Future[bool]] = {}
        self._waiters: list[tuple[Callable[[MessageType, bytes], bool], asyncio.Future[bytes]]] = []

    @property
    def node_key(self) -> bytes:
        return self.local.node_key

    # -- connecting ------------------------------------------------------------------------------

    async def connect(
        self,
        host: str,
        port: int,
        *,
        handshake: bool = True,
        local_host: str | None = None,
        timeout: float = 10.0,
    ) -> MiniNode:
        """Opens the connection (from ``local_host`` if given, e.g. ``127.0.0.2``); the Noise
        handshake runs by itself (frames sent before it finishes are queued). With ``handshake``
        it sends our HELLO and waits for the node's HELLO."""
        loop = asyncio.get_running_loop()
        await loop.create_connection(
            lambda: FrameProtocol(
                self.params.magic, m.FRAME_LIMITS, self, self.local, initiator=True, identity=self.identity
            ),
            host,
            port,
            local_addr=(local_host, 0) if local_host else None,
        )
        if handshake:
            self.send_message(MessageType.HELLO, self.our_hello.encode())
            await self.wait_for_handshake(timeout)
        return self

    async def wait_for_handshake(self, timeout: float = 10.0) -> None:
        done = asyncio.ensure_future(self.established.wait())
        gone = asyncio.ensure_future(self.disconnected.wait())
        try:
            await wait_for(asyncio.wait({done, gone}, return_when=asyncio.FIRST_COMPLETED), timeout)
        finally:
            done.cancel()
            gone.cancel()
        if not self.established.is_set():
            raise ConnectionError(f"handshake failed: {self.close_reason}")

    async def wait_for_disconnect(self, timeout: float = 10.0) -> str:
        """Waits until the node closes the connection; returns the close reason."""
        await wait_for(self.disconnected.wait(), timeout)
        return self.close_reason

    def close(self) -> None:
        if self.protocol is not None:
            self.protocol.close("mininode closed")

    # -- sending ---------------------------------------------------------------------------------

    def send_message(self, message_type: int, payload: bytes) -> None:
        assert self.protocol is not None, "not connected"
        self.protocol.send(message_type, payload)
        if message_type == MessageType.HELLO and self.sent_hello is None:
            self.sent_hello = m.Hello.decode(payload)

    def send_raw(self, data: bytes) -> None:
        """Sends bytes that need not be frames, inside the encrypted channel."""
        assert self.protocol is not None, "not connected"
        self.protocol.send_raw(data)

    def send_wire(self, data: bytes) -> None:
        """Writes bytes to the socket as they are, outside the encryption."""
        assert self.protocol is not None, "not connected"
        self.protocol.send_wire(data)

    def hello(self, **changes: Any) -> m.Hello:
        """Our HELLO with fields replaced (e.g. ``genesis_hash=...`` for a wrong chain)."""
        return dataclasses.replace(self.our_hello, **changes)

    async def ping(self, timeout: float = 10.0) -> None:
        """Sends a ping and waits for its pong."""
        nonce = next(_nonces)
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._pongs[nonce] = future
        self.send_message(MessageType.PING, m.encode_u64(nonce))
        gone: asyncio.Future[bool] = asyncio.ensure_future(self.disconnected.wait())
        try:
            await wait_for(asyncio.wait({future, gone}, return_when=asyncio.FIRST_COMPLETED), timeout)
        finally:
            gone.cancel()
            self._pongs.pop(nonce, None)
        if not future.done():
            raise ConnectionError(f"disconnected while waiting for a pong: {self.close_reason}")

    async def send_and_ping(self, message_type: int, payload: bytes, timeout: float = 10.0) -> None:
        """Sends a message, then waits until the node has processed it (ping/pong)."""
        self.send_message(message_type, payload)
        await self.ping(timeout)

    async def wait_for_message(
        self,
        message_type: MessageType,
        predicate: Callable[[bytes], bool] = lambda _: True,
        timeout: float = 10.0,
    ) -> bytes:
        """The payload of the next message of ``message_type`` matching ``predicate`` (earlier
        received ones count)."""
        for t, payload in self.messages:
            if t == message_type and predicate(payload):
                return payload
        future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._waiters.append((lambda t, p: t == message_type and predicate(p), future))
        return await wait_for(future, timeout)

    def received(self, message_type: MessageType) -> list[bytes]:
        return [p for t, p in self.messages if t == message_type]

    # -- blocks ----------------------------------------------------------------------------------

    def send_block(self, height: int, certificate: bytes, raw: bytes) -> None:
        """Sends block ``raw`` with its commit ``certificate`` (empty for none) as the node's
        sync expects it: one BLOCK, or ordered BLOCK_CHUNKs for a record over one chunk."""
        record = m.encode_certified_block(certificate, raw)
        if len(record) <= m.BLOCK_CHUNK_SIZE:
            self.send_message(MessageType.BLOCK, m.encode_block_message(height, certificate, raw))
            return
        block_hash = timecoin_native.block_hash(raw[:HEADER_LEN])
        for chunk in m.split_block(height, block_hash, record):
            self.send_message(MessageType.BLOCK_CHUNK, chunk)

    async def get_blocks(
        self, start: int, count: int, timeout: float = 10.0
    ) -> list[tuple[int, bytes, bytes]]:
        """Sends GETBLOCKS and collects the answer in order: (height, certificate, block) per
        block, until ``count`` blocks or a NOTFOUND."""
        first = len(self.messages)
        self.send_message(MessageType.GETBLOCKS, m.encode_getblocks(start, count))
        out: list[tuple[int, bytes, bytes]] = []
        chunks = bytearray()
        seen = first
        while len(out) < count:
            while seen >= len(self.messages):
                await self._next_message(timeout)
            mtype, payload = self.messages[seen]
            seen += 1
            if mtype == MessageType.NOTFOUND:
                break
            if mtype == MessageType.BLOCK:
                out.append(m.decode_block_message(payload))
            elif mtype == MessageType.BLOCK_CHUNK:
                chunk = m.BlockChunk.decode(payload)
                chunks += chunk.data
                if chunk.index + 1 == chunk.count:
                    out.append((chunk.height, *m.decode_certified_block(bytes(chunks))))
                    chunks.clear()
        return out

    async def _next_message(self, timeout: float) -> None:
        """Waits for the next message of any type."""
        future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._waiters.append((lambda t, p: True, future))
        await wait_for(future, timeout)

    # -- FrameSink -------------------------------------------------------------------------------

    def on_connected(self, protocol: FrameProtocol) -> None:
        self.protocol = protocol

    def on_secured(self, peer: PeerIdentity) -> None:
        self.peer_identity = peer

    def on_handshake_error(self, error: HandshakeError) -> None:
        self.close_reason = f"handshake: {error}"

    def on_frame_error(self, error: FrameError) -> None:
        self.close_reason = f"node sent a bad frame: {error}"

    def on_closed(self, reason: str) -> None:
        self.close_reason = self.close_reason or reason
        self.disconnected.set()
        for _, future in self._waiters:
            if not future.done():
                future.set_exception(ConnectionError(f"disconnected: {reason}"))
        self._waiters.clear()

    def on_frames(self, frames: list[tuple[int, bytes]]) -> None:
        for mtype, payload in frames:
            message_type = MessageType(mtype)
            self.messages.append((message_type, payload))
            for waiter in [w for w in self._waiters if w[0](message_type, payload)]:
                self._waiters.remove(waiter)
                if not waiter[1].done():
                    waiter[1].set_result(payload)
            callback = getattr(self, f"on_{message_type.name.lower()}", None)
            if callback is not None:
                callback(payload)

    # -- default callbacks -----------------------------------------------------------------------

    def on_hello(self, payload: bytes) -> None:
        self.their_hello = m.Hello.decode(payload)
        assert self.peer_identity is not None  # frames follow the Noise handshake
        check_hello(self.local, self.their_hello, self.peer_identity)
        self.established.set()

    def on_ping(self, payload: bytes) -> None:
        if self.auto_pong:
            self.send_message(MessageType.PONG, payload)

    def on_pong(self, payload: bytes) -> None:
        future = self._pongs.get(m.decode_u64(payload, "PONG"))
        if future is not None and not future.done():
            future.set_result(True)
