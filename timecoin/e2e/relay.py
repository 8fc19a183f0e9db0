"""The delay relay of e2e runs (docs/e2e.md, "Message delay"): a TCP relay on 127.0.0.1 in the
runner's own event loop, through which the nftables rules of a ``delay`` fault
(:meth:`timecoin.e2e.perturb.Partitioner.delay`) redirect every P2P connection of the delayed
node. Each accepted connection is joined to the address it was headed to (``SO_ORIGINAL_DST``,
which the ``redirect`` keeps) by a connection of the runner's, which no rule redirects (the
runner is in none of the nodes' cgroups).

Every chunk read from either side is written to the other ``delay ± jitter`` later, and never
before the chunk read ahead of it on the same connection: TCP keeps the order within a
connection, so messages are reordered only across connections (what one node receives from its
different peers), as on a real network. Each direction holds at most :data:`MAX_CHUNKS_IN_FLIGHT`
chunks; past that it stops reading, so a fast sender is slowed by TCP, not buffered here.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import struct
from dataclasses import dataclass

__all__ = ["MAX_CHUNKS_IN_FLIGHT", "DelayRelay", "RelayStats"]

SO_ORIGINAL_DST = 80
"""``getsockopt(SOL_IP, SO_ORIGINAL_DST)`` (linux/netfilter_ipv4.h): a redirected connection's
original destination, a ``struct sockaddr_in``."""
CHUNK = 64 * 1024
"""Bytes read at once from one side."""
MAX_CHUNKS_IN_FLIGHT = 256
"""Chunks one direction of one connection holds while their delay runs."""
CONNECT_TIMEOUT = 5.0
"""Seconds the relay waits for the original destination to accept."""


@dataclass
class RelayStats:
    """What the relay carried: connections joined, bytes forwarded, connections whose original
    destination could not be read or reached."""

    links: int = 0
    bytes: int = 0
    failed: int = 0


def original_destination(sock: socket.socket) -> tuple[str, int]:
    """(host, port) a connection redirected by nftables was headed to. ``OSError`` if the
    connection was not redirected (no conntrack entry)."""
    raw = sock.getsockopt(socket.SOL_IP, SO_ORIGINAL_DST, 16)
    port, address = struct.unpack_from("!2xH4s", raw)
    return socket.inet_ntoa(address), port


class DelayRelay:
    """The relay: :meth:`start` listens, :meth:`set_delay` shapes what it forwards from then
    on, :meth:`close_links` drops every connection it carries, :meth:`stop` ends it. Every task
    it spawns is kept and cancelled by :meth:`stop`."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.delay = 0.0
        self.jitter = 0.0
        self.stats = RelayStats()
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> int:
        """Listens on 127.0.0.1 (a free port); returns the port."""
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    def set_delay(self, delay_ms: int, jitter_ms: int) -> None:
        """Chunks read from now on wait ``delay_ms ± jitter_ms`` (uniform, at least 0)."""
        self.delay, self.jitter = delay_ms / 1000, jitter_ms / 1000

    def close_links(self) -> None:
        """Closes both sides of every connection carried (the nodes redial, directly once the
        redirect rules are gone)."""
        for writer in list(self._writers):
            writer.close()

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        self.close_links()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, OSError):
                await task
        if self._server is not None:
            await self._server.wait_closed()

    def _spawn(self, coro) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            host, port = original_destination(writer.get_extra_info("socket"))
            up_reader, up_writer = await asyncio.wait_for(
                asyncio.open_connection(host, port), CONNECT_TIMEOUT
            )
        except (OSError, TimeoutError):
            self.stats.failed += 1
            self._writers.discard(writer)
            writer.close()
            return
        self._writers.add(up_writer)
        self.stats.links += 1
        self._spawn(self._pump(reader, up_writer, writer))
        self._spawn(self._pump(up_reader, writer, up_writer))

    def _due(self, after: float) -> float:
        loop_time = asyncio.get_running_loop().time()
        wait = max(0.0, self.delay + self.rng.uniform(-self.jitter, self.jitter))
        return max(after, loop_time + wait)

    async def _pump(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, back: asyncio.StreamWriter
    ) -> None:
        """Forwards one direction until either side closes or fails, then closes both."""
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue(MAX_CHUNKS_IN_FLIGHT)
        read = self._spawn(self._read(reader, queue))
        loop = asyncio.get_running_loop()
        try:
            while data := (item := await queue.get())[1]:
                if (wait := item[0] - loop.time()) > 0:
                    await asyncio.sleep(wait)
                writer.write(data)
                self.stats.bytes += len(data)
                await writer.drain()
        except OSError:
            pass
        finally:
            read.cancel()
            for w in (writer, back):
                self._writers.discard(w)
                w.close()

    async def _read(self, reader: asyncio.StreamReader, queue: asyncio.Queue[tuple[float, bytes]]) -> None:
        """Queues what ``reader`` yields, each chunk with its due time; an empty chunk at the end."""
        last = 0.0
        with contextlib.suppress(OSError):
            while data := await reader.read(CHUNK):
                last = self._due(last)
                await queue.put((last, data))
        await queue.put((last, b""))
