"""The connection manager (DESIGN §8): listening, dialing, the handshake, one connection per
peer, static peers with backoff, ping/pong, connection limits, reputation and bans.

* **Handshake**: the Noise XX handshake encrypts the connection and proves the peer's node key
  (and masternode key), then both sides send HELLO inside it (:mod:`timecoin.p2p.handshake`).
  A handshake message that does not authenticate (another network or genesis: the prologue
  binds them; or tampering), a bad identity signature, a HELLO of another network or chain, an
  old protocol or a HELLO naming another key disconnects with a logged reason and a ban; a
  connection that does not complete it within ``handshake_timeout`` is closed.
* **One connection per peer**: when a second connection to a node key completes, a cross pair
  (one dialed by each side) keeps the connection dialed by the lower node key, which both sides
  compute alike; a same-direction duplicate keeps the older one.
* **Reputation** −100..+100 per node key (remembered across reconnects while the process runs);
  below −50 the key, and the host unless it is loopback (see ``P2PConfig.ban_loopback``), are
  banned for ``ban_seconds`` and the peer is disconnected. Bans of an unproven key never happen:
  a key is proven only by the Noise handshake, so no one can get an honest key banned by
  claiming it.
* **Static peers** (``connect``) are kept connected by one task each, redialing with exponential
  backoff and jitter; **seeds** and the address book fill up to ``max_outbound``.

All state here is touched only on the event loop, by the protocol callbacks and the tasks this
class spawns (kept in one set, cancelled on :meth:`stop`).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import random
from collections import OrderedDict, deque
from collections.abc import Callable, Coroutine
from typing import Any

from timecoin.counters import MessageTraffic
from timecoin.p2p import messages as m
from timecoin.p2p.addrman import AddrMan
from timecoin.p2p.banman import BanMan, host_target, key_target
from timecoin.p2p.config import P2PConfig
from timecoin.p2p.handshake import HandshakeError, LocalIdentity, PeerIdentity, check_hello
from timecoin.p2p.messages import MessageType
from timecoin.p2p.peer import (
    BAN_THRESHOLD,
    PENALTY_BAD_PAYLOAD,
    REPUTATION_MAX,
    REPUTATION_MIN,
    Handler,
    Misbehaving,
    Peer,
)
from timecoin.p2p.protocol import FrameProtocol

log = logging.getLogger(__name__)

RECENT_DISCONNECTS = 256
"""Closed connections whose reasons are kept for diagnostics."""
REPUTATION_MEMORY = 10_000
"""Node keys whose reputation is remembered after they disconnect."""
ADDRMAN_FLUSH_INTERVAL = 30.0
STOP_GRACE = 2.0
"""Seconds :meth:`ConnMan.stop` waits for connections to close before aborting them."""


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


class ConnMan:
    """Connections of one node. ``chain_tip`` gives (height, tip hash) for HELLO;
    ``is_masternode_key`` says whether a proven masternode key is registered."""

    def __init__(
        self,
        magic: bytes,
        local: LocalIdentity,
        config: P2PConfig,
        banman: BanMan,
        addrman: AddrMan,
        chain_tip: Callable[[], tuple[int, bytes]],
        is_masternode_key: Callable[[bytes], bool],
        clock: Callable[[], float],
    ) -> None:
        self.magic = magic
        self.local = local
        self.config = config
        self.banman = banman
        self.addrman = addrman
        self._chain_tip = chain_tip
        self._is_masternode_key = is_masternode_key
        self.clock = clock
        self.handlers: list[Handler | None] = [None] * (max(MessageType) + 1)
        self.traffic = MessageTraffic(max(MessageType) + 1)
        """P2P frames and bytes by type and direction (the metrics read it)."""
        self.peers: dict[int, Peer] = {}
        self.by_key: dict[bytes, Peer] = {}
        self.on_established: list[Callable[[Peer], None]] = []
        self.on_disconnected: list[Callable[[Peer], None]] = []
        self.recent_disconnects: deque[dict[str, object]] = deque(maxlen=RECENT_DISCONNECTS)
        """The last closed connections: addr, node_key, inbound, established, reason."""
        self.listen_port = 0
        self._server: asyncio.AbstractServer | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._dialing: set[tuple[str, int]] = set()
        self._target_keys: dict[tuple[str, int], bytes] = {}
        self._self_targets: set[tuple[str, int]] = set()
        self._reputation: OrderedDict[bytes, int] = OrderedDict()
        self._rng = random.Random()
        self._running = False
        for mtype, handler in (
            (MessageType.HELLO, self._on_hello),
            (MessageType.AUTH, self._on_auth),
            (MessageType.PONG, self._on_pong),
            (MessageType.GETADDR, self._on_getaddr),
            (MessageType.ADDR, self._on_addr),
        ):
            self.handlers[mtype] = handler

    # -- lifecycle -------------------------------------------------------------------------------

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        """Runs ``coro`` as a task kept until it ends and cancelled on :meth:`stop`."""
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("task %s failed", task.get_name(), exc_info=task.exception())

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._running = True
        self._server = await loop.create_server(
            lambda: FrameProtocol(
                self.magic, m.FRAME_LIMITS, Peer(self, inbound=True), self.local, initiator=False
            ),
            self.config.listen_host,
            self.config.listen_port,
            reuse_address=True,
        )
        self.listen_port = self._server.sockets[0].getsockname()[1]
        log.info("P2P listening on %s:%d", self.config.listen_host, self.listen_port)
        for target in self.config.connect:
            self.spawn(self._keep_connected(target), f"p2p-static-{target[0]}:{target[1]}")
        for host, port in self.config.seeds:
            self.addrman.add([(host, port, 0)])
            self.spawn(self.dial(host, port), f"p2p-seed-{host}:{port}")
        self.spawn(self._maintain(), "p2p-maintenance")

    async def stop(self) -> None:
        self._running = False
        if self._server is not None:
            self._server.close()
        peers = list(self.peers.values())
        for peer in peers:
            peer.close("node shutting down")
        if peers:
            # Let the transports flush and report closed; abort the ones that will not.
            waiters = [asyncio.ensure_future(p.closed.wait()) for p in peers]
            await asyncio.wait(waiters, timeout=STOP_GRACE)
            for waiter in waiters:
                waiter.cancel()
            for peer in peers:
                if not peer.closed.is_set() and peer.protocol is not None:
                    peer.protocol.abort("node shutting down")
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None
        self.addrman.flush()

    # -- dialing ---------------------------------------------------------------------------------

    def connected_to(self, target: tuple[str, int]) -> Peer | None:
        """A live connection to the node at ``target``: one we dialed there, or one whose
        advertised address or proven key is that target's."""
        key = self._target_keys.get(target)
        if key is not None and key in self.by_key:
            return self.by_key[key]
        for peer in self.peers.values():
            if not peer.closing and peer.advertised == target:
                return peer
        return None

    async def dial(self, host: str, port: int) -> Peer | None:
        """Connects to (host, port) and waits for the handshake; the established peer, or
        ``None`` if the dial, the handshake or the duplicate check failed."""
        target = (host, port)
        if target in self._dialing or target in self._self_targets:
            return None
        self._dialing.add(target)
        peer = Peer(self, inbound=False, target=target)
        try:
            try:
                async with asyncio.timeout(self.config.connect_timeout):
                    await asyncio.get_running_loop().create_connection(
                        lambda: FrameProtocol(self.magic, m.FRAME_LIMITS, peer, self.local, initiator=True),
                        host,
                        port,
                    )
            except (OSError, TimeoutError) as e:
                log.debug("dial %s:%d failed: %s", host, port, e)
                self.addrman.mark_failed(host, port)
                return None
            await peer.ready.wait()
        finally:
            self._dialing.discard(target)
        return peer if peer.established and not peer.closing else None

    async def _keep_connected(self, target: tuple[str, int]) -> None:
        """Keeps a static peer connected: dial, wait for the connection to end, back off."""
        failures = 0
        while self._running:
            peer = self.connected_to(target)
            if peer is None:
                peer = await self.dial(*target)
            if target in self._self_targets:
                log.warning("static peer %s:%d is this node itself; not dialing it", *target)
                return
            if peer is not None:
                failures = 0
                await peer.closed.wait()
                continue
            failures += 1
            delay = min(self.config.reconnect_max, self.config.reconnect_base * 2 ** (failures - 1))
            await asyncio.sleep(delay * self._rng.uniform(0.5, 1.5))

    def _fill_outbound(self) -> None:
        outbound = sum(
            1 for p in self.peers.values() if not p.inbound and p.target not in self.config.connect
        )
        outbound += sum(1 for t in self._dialing if t not in self.config.connect)
        if outbound >= self.config.max_outbound:
            return
        exclude = set(self._dialing) | self._self_targets
        exclude.update(a for p in self.peers.values() if (a := p.advertised) is not None)
        target = self.addrman.select(exclude)
        if target is None or self._host_banned(target[0]):
            return
        self.spawn(self.dial(*target), f"p2p-dial-{target[0]}:{target[1]}")

    async def _maintain(self) -> None:
        last_flush = self.clock()
        while True:
            await asyncio.sleep(self.config.maintenance_interval)
            try:
                last_flush = self._maintenance_pass(last_flush)
            except Exception:
                log.exception("P2P maintenance pass failed")

    def _maintenance_pass(self, last_flush: float) -> float:
        """Handshake and ping timeouts, pings, outbound filling, address book flush; returns
        the time of the last flush."""
        now = self.clock()
        for peer in list(self.peers.values()):
            if peer.closing:
                continue
            if not peer.established:
                if now - peer.connected_at > self.config.handshake_timeout:
                    peer.close("handshake timeout")
                continue
            if peer.ping_nonce is not None:
                if now - peer.ping_sent > self.config.ping_timeout:
                    peer.close(f"ping timeout ({self.config.ping_timeout:.1f} s)")
            elif now - peer.ping_sent >= self.config.ping_interval:
                peer.ping_nonce = self._rng.getrandbits(64)
                peer.ping_sent = now
                peer.send(MessageType.PING, m.encode_u64(peer.ping_nonce))
        self._fill_outbound()
        if now - last_flush >= ADDRMAN_FLUSH_INTERVAL:
            last_flush = now
            self.addrman.flush()
        return last_flush

    # -- peer callbacks --------------------------------------------------------------------------

    def _host_banned(self, host: str) -> bool:
        return self.banman.is_banned(host_target(host))

    def on_connected(self, peer: Peer) -> None:
        if not self._running:
            peer.close("node shutting down")
            return
        if peer.inbound:
            if self._host_banned(peer.host):
                peer.close("banned host")
                return
            if sum(1 for p in self.peers.values() if p.inbound) >= self.config.max_inbound:
                peer.close(f"inbound connections full ({self.config.max_inbound})")
                return
        self.peers[peer.id] = peer

    def on_secured(self, peer: Peer, identity: PeerIdentity) -> None:
        """The Noise handshake proved the peer's keys: refuse a banned key, else send HELLO."""
        if self.banman.is_banned(key_target(identity.node_key)):
            peer.close("banned node key")
            return
        peer.node_key = identity.node_key
        peer.proven_masternode_key = identity.masternode_key
        if identity.masternode_key is not None and not self.check_masternode(peer):
            log.info(
                "%r proved masternode key %s, not registered at our tip", peer, identity.masternode_key.hex()
            )
        height, tip_hash = self._chain_tip()
        peer.our_hello = self.local.hello(height, tip_hash, self.listen_port)
        peer.send(MessageType.HELLO, peer.our_hello.encode())

    def on_closed(self, peer: Peer, reason: str) -> None:
        self.peers.pop(peer.id, None)
        self.recent_disconnects.append(
            {
                "addr": f"{peer.host}:{peer.port}",
                "node_key": peer.node_key.hex() if peer.node_key else None,
                "inbound": peer.inbound,
                "established": peer.established,
                "reason": reason,
            }
        )
        if peer.node_key is not None and self.by_key.get(peer.node_key) is peer:
            del self.by_key[peer.node_key]
            self._remember_reputation(peer)
        if peer.established:
            log.info("disconnected %r: %s", peer, reason, extra=peer.log_fields)
            for callback in self.on_disconnected:
                callback(peer)
        else:
            log.debug("connection %r closed before the handshake: %s", peer, reason)

    def _remember_reputation(self, peer: Peer) -> None:
        assert peer.node_key is not None
        self._reputation[peer.node_key] = peer.reputation
        self._reputation.move_to_end(peer.node_key)
        while len(self._reputation) > REPUTATION_MEMORY:
            self._reputation.popitem(last=False)

    def penalize(self, peer: Peer, points: int, reason: str, *, disconnect: bool = False) -> None:
        """Lowers the peer's reputation by ``points``; below the threshold bans it (key, and
        host unless loopback-exempt) and disconnects; else disconnects if ``disconnect``."""
        peer.reputation = max(REPUTATION_MIN, peer.reputation - points)
        log.info(
            "%r misbehaving (-%d, reputation %d): %s",
            peer,
            points,
            peer.reputation,
            reason,
            extra=peer.log_fields,
        )
        if peer.reputation < BAN_THRESHOLD:
            self.ban_peer(peer, reason)
            peer.close(f"banned: {reason}")
        elif disconnect:
            peer.close(reason)

    def reward(self, peer: Peer, points: int) -> None:
        """Raises the peer's reputation (useful data delivered), up to +100."""
        peer.reputation = min(REPUTATION_MAX, peer.reputation + points)

    def ban_peer(self, peer: Peer, reason: str) -> None:
        seconds = self.config.ban_seconds
        if peer.node_key is not None:
            self.banman.ban(key_target(peer.node_key), seconds, reason)
        if peer.host and (self.config.ban_loopback or not is_loopback(peer.host)):
            self.banman.ban(host_target(peer.host), seconds, reason)
        elif peer.host:
            log.info("not banning loopback host %s of %r (ban_loopback is off)", peer.host, peer)

    # -- handshake -------------------------------------------------------------------------------

    def handshake_failed(self, peer: Peer, error: HandshakeError) -> None:
        """Logs, and bans (``error.ban``) or just closes; remembers a dialed target that was
        this node itself."""
        log.warning("handshake with %r failed: %s", peer, error, extra=peer.log_fields)
        if error.ban:
            self.penalize(peer, REPUTATION_MAX, f"handshake: {error}", disconnect=True)
        else:
            if error.code == "self-connection" and peer.target is not None:
                self._self_targets.add(peer.target)
            peer.close(f"handshake: {error}")

    def _on_hello(self, peer: Peer, payload: bytes) -> None:
        if peer.hello is not None:
            self.penalize(peer, 20, "second HELLO", disconnect=True)
            return
        hello = m.Hello.decode(payload)
        identity = peer.protocol.peer_identity if peer.protocol is not None else None
        assert identity is not None and peer.node_key is not None  # frames follow the handshake
        try:
            check_hello(self.local, hello, identity)
        except HandshakeError as e:
            self.handshake_failed(peer, e)
            return
        peer.hello = hello
        peer.height, peer.tip_hash = hello.height, hello.tip_hash
        key = peer.node_key
        existing = self.by_key.get(key)
        if existing is not None and existing is not peer:
            if self._keep(existing, peer) is existing:
                peer.close("duplicate connection")
                return
            del self.by_key[key]
            existing.close("duplicate connection")
            peer.reputation = existing.reputation
        else:
            peer.reputation = self._reputation.pop(key, 0)
        self.by_key[key] = peer
        peer.established = True
        # The first ping goes out at the next maintenance pass, not a ping_interval from now (as
        # Bitcoin Core pings a new peer at once): getpeerinfo's pingtime is known within a second.
        peer.ping_sent = self.clock() - self.config.ping_interval
        peer.ready.set()
        log.info(
            "connected %r height %d%s",
            peer,
            peer.height,
            " masternode" if peer.masternode_key else "",
            extra={**peer.log_fields, "height": peer.height},
        )
        if peer.target is not None:
            self._target_keys[peer.target] = key
            self.addrman.mark_good(*peer.target)
            peer.send(MessageType.GETADDR, b"")
        elif peer.advertised is not None:
            self.addrman.add([(peer.advertised[0], peer.advertised[1], self.addrman.now())])
        for callback in self.on_established:
            callback(peer)

    def check_masternode(self, peer: Peer) -> bool:
        """Whether the peer's proven masternode key is registered at our tip now (granting it
        the consensus classes if so)."""
        key = peer.proven_masternode_key
        if key is None or not self._is_masternode_key(key):
            return False
        peer.masternode_key = key
        return True

    def _keep(self, a: Peer, b: Peer) -> Peer:
        """Of two connections to one node, the one both ends keep: in a cross pair, the one
        the lower node key dialed; else the older one (``a``)."""
        if a.inbound == b.inbound:
            return a
        outbound, inbound = (a, b) if not a.inbound else (b, a)
        assert outbound.node_key is not None
        return outbound if self.local.node_key < outbound.node_key else inbound

    # -- control messages ------------------------------------------------------------------------

    def _on_pong(self, peer: Peer, payload: bytes) -> None:
        nonce = m.decode_u64(payload, "PONG")
        if nonce == peer.ping_nonce:
            peer.ping_rtt = self.clock() - peer.ping_sent
            peer.ping_nonce = None

    def _on_getaddr(self, peer: Peer, payload: bytes) -> None:
        if payload:
            raise ValueError("GETADDR has no payload")
        exclude = peer.advertised
        entries = [e for e in self.addrman.sample(m.MAX_ADDR_ITEMS) if (e[0], e[1]) != exclude]
        peer.send(MessageType.ADDR, m.encode_addr(entries))

    def _on_addr(self, peer: Peer, payload: bytes) -> None:
        self.addrman.add(m.decode_addr(payload))

    def _on_auth(self, peer: Peer, payload: bytes) -> None:
        """AUTH is retired: the Noise handshake proves the keys (protocol.py)."""
        raise Misbehaving(PENALTY_BAD_PAYLOAD, "AUTH is no longer part of the handshake")
