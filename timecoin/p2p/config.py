"""Operator settings of the P2P service (docs/p2p-interface in notes; DESIGN §8, §10).

Protocol constants (message limits, rate budgets) are in :mod:`timecoin.p2p.messages`; these are
the per-node choices: where to listen, whom to dial, how many connections, and the timers (tests
shorten them). Times in seconds.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class P2PConfig:
    listen_host: str = "127.0.0.1"
    listen_port: int = 0
    """0 picks a free port (tests); :attr:`P2PService.bound_port` tells which."""
    connect: tuple[tuple[str, int], ...] = ()
    """addnode-style static peers, always kept connected (redialed with backoff)."""
    seeds: tuple[tuple[str, int], ...] = ()
    """Dialed at start and remembered in the address book."""
    max_inbound: int = 64
    max_outbound: int = 16
    """Outbound connections the node fills from its address book (static peers not counted)."""
    masternode_secret: bytes | None = None
    """Proves a registered masternode key in the handshake; opens the consensus classes."""

    handshake_timeout: float = 10.0
    """A connection that has not completed the handshake by then is closed."""
    connect_timeout: float = 5.0
    ping_interval: float = 30.0
    ping_timeout: float = 20.0
    """A peer that has not answered a ping within this is closed as dead."""
    reconnect_base: float = 1.0
    """First backoff before redialing a static peer; doubles per failure, ×[0.5, 1.5) jitter."""
    reconnect_max: float = 60.0
    ban_seconds: float = 86_400.0
    """How long a misbehaving peer stays banned (Bitcoin Core's default: 24 h)."""
    ban_loopback: bool = False
    """Whether misbehavior bans loopback hosts too. Off by default (Bitcoin Core's rule for
    local peers): on one machine every node shares the loopback host, so banning it would cut a
    devnet node off from all its neighbours. Proven node keys are banned either way."""
    maintenance_interval: float = 1.0
    """Period of the housekeeping pass: timeouts, pings, outbound filling, address book flush."""
    gossip_interval: float = 0.01
    """Longest a gossiped item waits to share a frame with others (DESIGN §6: tens of ms)."""
    sync_request_timeout: float = 20.0
    """A block request not answered within this goes to another peer (penalty for the slow one)."""
    sync_blocks_per_request: int = 64
    sync_requests_per_peer: int = 2
    """Block requests outstanding per peer at once."""
    sync_window: int = 1024
    """Blocks fetched ahead of the tip at most (bounds memory held for out-of-order blocks)."""
