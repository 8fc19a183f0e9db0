"""Masternode liveness on a running node: signing our heartbeat every ``heartbeat_interval`` and
tracking everyone's from gossip (DESIGN §5).

It connects three parts and adds no rule of its own: :class:`~timecoin.masternode.heartbeat.
HeartbeatTracker` (validity, expiry, the production gate), the chain's registry (who may send
one, at which tier) and the P2P service's HEARTBEAT gossip. Heartbeats drive liveness, status and
metrics only, never validity or weights (DESIGN §12 invariant 7). One task (the node's loop) owns
the tracker.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

import timecoin
from timecoin import crypto
from timecoin.ledger.chain import ChainState
from timecoin.masternode.heartbeat import Heartbeat, HeartbeatRejected, HeartbeatTracker

log = logging.getLogger(__name__)

STARTUP_BEAT_DELAY = 1.0
"""Seconds before the second heartbeat after start; each later delay doubles up to
``heartbeat_interval``."""


class Liveness:
    """The node's heartbeat tracker, fed by gossip, plus our own heartbeat if we are a
    masternode (``secret_key``: its 32-byte seed)."""

    def __init__(
        self,
        chain: ChainState,
        broadcast: Callable[[list[bytes]], None],
        secret_key: bytes | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._chain = chain
        self._broadcast = broadcast
        self._secret = secret_key
        self._clock = clock
        self.public_key = crypto.public_key(secret_key) if secret_key is not None else None
        self.tracker = HeartbeatTracker(
            chain.params, chain.genesis.hash, chain.registry.tier_of, clock, lambda: len(chain.registry)
        )
        self.rejected: dict[str, int] = {}
        """Rejected heartbeats so far, by reason code (a metric)."""
        self._gate_reason: str | None = ""
        """The production gate's last answer (None: open; "": not asked yet)."""

    def production_gate(self) -> bool:
        """The production gate consensus asks before each slot (``HeartbeatTracker.can_produce``,
        DESIGN §5), logged once per change, not every slot: open at info; closed with the reason,
        at info while the node starts (no heartbeat heard yet) and at warning once it closes
        after being open."""
        reason = self.tracker.gate_closed_reason()
        if reason != self._gate_reason:
            if reason is None:
                log.info(
                    "production gate open: %d of %d required masternodes online",
                    len(self.tracker.online()),
                    self.tracker.required(),
                )
            else:
                level = logging.INFO if self._gate_reason == "" else logging.WARNING
                log.log(level, "production gate closed, no block is produced: %s", reason)
            self._gate_reason = reason
        return reason is None

    def on_gossip(self, _peer: object, items: list[bytes]) -> list[bool]:
        """The P2P HEARTBEAT handler: records each valid heartbeat; relays only those."""
        verdicts = []
        for item in items:
            try:
                self.tracker.receive(item)
                verdicts.append(True)
            except HeartbeatRejected as e:
                self.rejected[e.code] = self.rejected.get(e.code, 0) + 1
                log.debug("heartbeat rejected: %s", e)
                verdicts.append(False)
        return verdicts

    def beat(self) -> Heartbeat | None:
        """Signs, records and gossips our heartbeat now; ``None`` (nothing sent) if we are not a
        registered masternode at the tip."""
        if self._secret is None or self.public_key is None:
            return None
        tier = self._chain.registry.tier_of(self.public_key)
        if tier is None:
            return None
        tip = self._chain.tip
        heartbeat = Heartbeat.create(
            self._secret,
            self._chain.genesis.hash,
            int(self._chain.params.network),
            tier,
            tip.height,
            tip.block_hash,
            int(self._clock() * 1000),
            f"timecoin/{timecoin.__version__}",
        )
        self.tracker.receive(heartbeat)
        self._broadcast([heartbeat.encode()])
        return heartbeat

    async def run(self) -> None:
        """Beats every ``heartbeat_interval`` seconds and forgets stale sightings, until
        cancelled. The first beats come 1, 2, 4, … seconds apart: at start the peers are still
        connecting, and a beat sent to nobody would leave us offline to them for a whole
        interval."""
        registered: bool | None = None
        delay = STARTUP_BEAT_DELAY
        while True:
            sent = self.beat() is not None
            if sent != registered:
                registered = sent
                if not sent:
                    log.info("masternode key is not registered at the tip: no heartbeat sent")
            self.tracker.prune()
            await asyncio.sleep(min(delay, self._chain.params.heartbeat_interval))
            delay *= 2
