"""One connected peer: its identity, handshake state, reputation, rate buckets and statistics,
and the dispatch of its frames to the message handlers (DESIGN §8).

The Noise handshake (:mod:`timecoin.p2p.protocol`) proves the peer's node key before any frame
arrives (:meth:`Peer.on_secured`). For every frame, in arrival order, :meth:`Peer.on_frames`
enforces the rules every message shares before any handler sees it: HELLO comes first (nothing
else of theirs before it), consensus classes only from a proven masternode, and the per-class token bucket (a
frame costs its items: :func:`~timecoin.p2p.ratelimit.frame_cost`). A handler reports bad input
by raising ``ValueError`` (a malformed payload) or :class:`Misbehaving` (a specific penalty); the
peer is penalized through the connection manager, which bans and disconnects below the
threshold. Frames of a peer are handled synchronously on the event loop, so nothing interleaves
within one peer's stream.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import struct
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from timecoin.counters import MessageTraffic
from timecoin.p2p.framing import HEADER, FrameError
from timecoin.p2p.handshake import HandshakeError, PeerIdentity
from timecoin.p2p.messages import SPECS, Hello, MessageSpec, MessageType
from timecoin.p2p.ratelimit import PeerLimits, frame_cost

if TYPE_CHECKING:
    from timecoin.p2p.protocol import FrameProtocol

log = logging.getLogger(__name__)

REPUTATION_MIN = -100
REPUTATION_MAX = 100
BAN_THRESHOLD = -50
"""A peer whose reputation falls below this is banned and disconnected (DESIGN §8)."""

PENALTY_FRAMING = 100
"""Garbage, a bad magic, a length over the type's maximum or a transport message that fails to
decrypt and authenticate (``decrypt-failed``): the stream is unusable."""
PENALTY_UNKNOWN_TYPE = 20
PENALTY_BAD_PAYLOAD = 20
"""A payload that does not decode, or breaks a count or size limit."""
PENALTY_BEFORE_HANDSHAKE = 20
PENALTY_NOT_MASTERNODE = 10
"""A consensus message from a peer that proved no registered masternode key."""
PENALTY_RATE = 5
"""Per message refused by a token bucket."""

Handler = Callable[["Peer", bytes], None]

_SPEC_BY_ID: list[MessageSpec | None] = [
    SPECS[MessageType(t)] if t in MessageType._value2member_map_ else None
    for t in range(max(MessageType) + 1)
]
_ids = itertools.count(1)
_HEADER_LEN = HEADER.size


class Misbehaving(Exception):
    """Raised by a handler: penalize the sending peer by ``points`` (0..100) for ``reason``."""

    def __init__(self, points: int, reason: str) -> None:
        super().__init__(reason)
        self.points = points
        self.reason = reason


class PeerNet(Protocol):
    """What a peer needs from the connection manager."""

    handlers: list[Handler | None]
    traffic: MessageTraffic
    """Frames and bytes by message type and direction, all peers of the node together."""

    def clock(self) -> float: ...
    def on_connected(self, peer: Peer) -> None: ...
    def on_secured(self, peer: Peer, identity: PeerIdentity) -> None: ...
    def handshake_failed(self, peer: Peer, error: HandshakeError) -> None: ...
    def on_closed(self, peer: Peer, reason: str) -> None: ...
    def check_masternode(self, peer: Peer) -> bool: ...
    def penalize(self, peer: Peer, points: int, reason: str, *, disconnect: bool = False) -> None: ...


class Peer:
    """A connection and what we know about the node at its other end."""

    def __init__(self, net: PeerNet, *, inbound: bool, target: tuple[str, int] | None = None) -> None:
        now = net.clock()
        self.id = next(_ids)
        self.net = net
        self.inbound = inbound
        self.target = target
        """The (host, port) we dialed, for outbound connections."""
        self.host = ""
        self.port = 0
        self.protocol: FrameProtocol | None = None
        self.our_hello: Hello | None = None
        self.hello: Hello | None = None
        self.node_key: bytes | None = None
        """Their node key, once proven (the Noise handshake's identity payload verified)."""
        self.proven_masternode_key: bytes | None = None
        """The masternode key their Noise handshake proved, registered or not."""
        self.masternode_key: bytes | None = None
        """Their proven masternode key once found registered at our tip."""
        self.established = False
        self.connected_at = now
        self.last_recv = now
        self.limits = PeerLimits(now)
        self.reputation = 0
        self.height = 0
        self.tip_hash = b""
        self.ping_nonce: int | None = None
        self.ping_sent = 0.0
        self.ping_rtt: float | None = None
        self.rate_limited = 0
        """Messages refused by a token bucket."""
        self.closed = asyncio.Event()
        self.ready = asyncio.Event()
        """Set once the handshake completes (or the connection closes first)."""
        self.close_reason = ""

    def __repr__(self) -> str:
        key = self.node_key.hex()[:12] if self.node_key else "?"
        return f"peer={self.id}({'in' if self.inbound else 'out'} {self.host}:{self.port} {key})"

    @property
    def log_fields(self) -> dict[str, object]:
        """Structured fields of a log line about this peer (``extra=``; docs/operator.md "Logs"):
        ``peer`` (its connection id, getpeerinfo's ``id``) and ``peer_addr`` (host:port)."""
        return {"peer": self.id, "peer_addr": f"{self.host}:{self.port}"}

    @property
    def advertised(self) -> tuple[str, int] | None:
        """Where the peer accepts connections: the address we dialed, or its host with the
        listen port of its HELLO."""
        if self.target is not None:
            return self.target
        if self.hello is not None and self.hello.listen_port:
            return (self.host, self.hello.listen_port)
        return None

    def send(self, message_type: MessageType, payload: bytes) -> None:
        if self.protocol is not None:
            traffic = self.net.traffic
            traffic.frames_out[message_type] += 1
            traffic.bytes_out[message_type] += _HEADER_LEN + len(payload)
            self.protocol.send(message_type, payload)

    def close(self, reason: str) -> None:
        if self.protocol is not None:
            self.protocol.close(reason)

    @property
    def closing(self) -> bool:
        return self.protocol is None or self.protocol.closing

    def info(self, now: float) -> dict[str, object]:
        """The getpeerinfo view (Bitcoin Core's field names where they exist)."""
        p = self.protocol
        return {
            "id": self.id,
            "addr": f"{self.host}:{self.port}",
            "inbound": self.inbound,
            "node_key": self.node_key.hex() if self.node_key else None,
            "masternode": self.masternode_key.hex() if self.masternode_key else None,
            "height": self.height,
            "pingtime": self.ping_rtt,
            "bytessent": p.bytes_sent if p else 0,
            "bytesrecv": p.bytes_received if p else 0,
            "reputation": self.reputation,
            "conntime": now - self.connected_at,
            "established": self.established,
            "rate_limited": self.rate_limited,
        }

    # -- FrameSink -------------------------------------------------------------------------------

    def on_connected(self, protocol: FrameProtocol) -> None:
        self.protocol = protocol
        peername = protocol.transport.get_extra_info("peername") if protocol.transport else None
        if peername:
            self.host, self.port = str(peername[0]), int(peername[1])
        self.net.on_connected(self)

    def on_secured(self, peer: PeerIdentity) -> None:
        self.net.on_secured(self, peer)

    def on_handshake_error(self, error: HandshakeError) -> None:
        self.net.handshake_failed(self, error)

    def on_frame_error(self, error: FrameError) -> None:
        points = PENALTY_UNKNOWN_TYPE if error.code == "unknown-type" else PENALTY_FRAMING
        self.net.penalize(self, points, f"framing: {error}", disconnect=True)

    def on_closed(self, reason: str) -> None:
        self.close_reason = reason
        self.closed.set()
        self.ready.set()
        self.net.on_closed(self, reason)

    def on_frames(self, frames: list[tuple[int, bytes]]) -> None:
        net = self.net
        now = net.clock()
        self.last_recv = now
        handlers = net.handlers
        protocol = self.protocol
        frames_in, bytes_in = net.traffic.frames_in, net.traffic.bytes_in
        for mtype, payload in frames:
            frames_in[mtype] += 1
            bytes_in[mtype] += _HEADER_LEN + len(payload)
            if protocol is None or protocol.closing:
                return
            spec = _SPEC_BY_ID[mtype]
            assert spec is not None  # the decoder admits known types only
            if spec.after_handshake and not self.established:
                net.penalize(
                    self,
                    PENALTY_BEFORE_HANDSHAKE,
                    f"{MessageType(mtype).name} before the handshake completed",
                    disconnect=True,
                )
                return
            if spec.masternode_only and self.masternode_key is None and not net.check_masternode(self):
                # A proven key not (yet) registered at our tip is dropped quietly: the sender may
                # be ahead of us. A peer that proved no key at all has no business here.
                if self.proven_masternode_key is None:
                    net.penalize(
                        self, PENALTY_NOT_MASTERNODE, f"{MessageType(mtype).name} from a non-masternode"
                    )
                continue
            rate_class = spec.rate_class
            if not self.limits.allow(rate_class, frame_cost(rate_class, payload), now):
                self.rate_limited += 1
                net.penalize(
                    self, PENALTY_RATE, f"{MessageType(mtype).name} over the {rate_class.name} rate limit"
                )
                continue
            handler = handlers[mtype]
            if handler is None:
                continue
            try:
                handler(self, payload)
            except Misbehaving as e:
                net.penalize(self, e.points, e.reason)
            except (ValueError, struct.error) as e:
                net.penalize(self, PENALTY_BAD_PAYLOAD, f"bad {MessageType(mtype).name}: {e}")
            except Exception:
                # Our bug or our store's failure, not the peer's fault: no penalty, but the
                # connection's state can no longer be trusted.
                log.exception(
                    "handling %s from %r failed", MessageType(mtype).name, self, extra=self.log_fields
                )
                self.close(f"internal error handling {MessageType(mtype).name}")
                return
