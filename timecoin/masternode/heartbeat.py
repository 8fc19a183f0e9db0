"""Masternode heartbeats: signed liveness messages and who is online (DESIGN §5).

Every ``heartbeat_interval`` (30 s) a masternode signs a :class:`Heartbeat` — its key, tier,
tip height and hash, software version and a timestamp — and gossips it. A
:class:`HeartbeatTracker` keeps the last valid heartbeat of each registered masternode and says
who is online (seen within ``heartbeat_expiry``, 60 s) and whether the production gate holds
(at least ``min_active_masternodes`` online).

Heartbeats drive liveness only: the production gate, ``masternodelist``, metrics. They are never
an input to validity, the masternode set, weights or the leader order (DESIGN §12 invariant 7):
nothing in ``timecoin.ledger`` or the registry reads this module, and the tracker only reads the
registry. The byte encoding and the signed message are in docs/encoding.md ("Heartbeat").

No I/O; time comes from an injected clock (unix seconds), so tests drive it.
"""

from __future__ import annotations

import struct
import time
from collections.abc import Callable
from dataclasses import dataclass

from timecoin import crypto
from timecoin._args import HASH_LEN, PUBLIC_KEY_LEN, SIGNATURE_LEN, as_bytes
from timecoin.params import HEARTBEAT_MAX_CLOCK_SKEW, NetworkParams, Tier

__all__ = [
    "HEARTBEAT_DOMAIN",
    "HEARTBEAT_REJECT_CODES",
    "HEARTBEAT_VERSION",
    "MAX_SOFTWARE_VERSION_LEN",
    "Heartbeat",
    "HeartbeatRejected",
    "HeartbeatTracker",
]

HEARTBEAT_VERSION = 1
"""Version byte of the encoding below."""
HEARTBEAT_DOMAIN = b"TIME Coin 2026-11-21 heartbeat v1\x00"
"""Prefix of every signed heartbeat message: no other signed message of the protocol starts
with it (transaction witnesses sign 32-byte sighashes), so a heartbeat signature cannot be
replayed as anything else."""
MAX_SOFTWARE_VERSION_LEN = 64
"""Longest software version string, bytes (printable ASCII)."""

_FIXED = struct.Struct("<BB32sBQ32sQB")
"""version, network, masternode key, tier, height, tip hash, timestamp (ms), version length."""

HEARTBEAT_REJECT_CODES: dict[str, str] = {
    "bad-encoding": "Not a canonical heartbeat encoding.",
    "wrong-network": "A heartbeat of another network.",
    "unknown-masternode": "A heartbeat from a key that is not a registered masternode.",
    "wrong-tier": "A heartbeat claiming another tier than the registered one.",
    "bad-signature": "A signature that does not verify under the masternode key.",
    "stale": "A timestamp older than heartbeat_expiry.",
    "future": "A timestamp further ahead than HEARTBEAT_MAX_CLOCK_SKEW.",
    "replayed": "A timestamp not after the last accepted heartbeat of the masternode.",
}
"""Stable codes of :class:`HeartbeatRejected`."""


class HeartbeatRejected(ValueError):
    """A heartbeat the tracker refused; ``code`` is a key of :data:`HEARTBEAT_REJECT_CODES`."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """A signed heartbeat. ``timestamp`` in unix milliseconds; ``height`` and ``tip_hash`` are
    the sender's chain tip; ``signature`` (64 bytes) by ``masternode_key`` over
    :meth:`signing_message`."""

    network: int
    masternode_key: bytes
    tier: Tier
    height: int
    tip_hash: bytes
    timestamp: int
    software_version: str
    signature: bytes

    def __post_init__(self) -> None:
        for name, length in (
            ("masternode_key", PUBLIC_KEY_LEN),
            ("tip_hash", HASH_LEN),
            ("signature", SIGNATURE_LEN),
        ):
            object.__setattr__(self, name, as_bytes(name, getattr(self, name), length))
        if not 0 <= self.network <= 255:
            raise ValueError(f"network must be a u8, got {self.network}")
        object.__setattr__(self, "tier", Tier(self.tier))
        for name in ("height", "timestamp"):
            if not 0 <= getattr(self, name) < 2**64:
                raise ValueError(f"{name} must be a u64, got {getattr(self, name)}")
        v = self.software_version
        if (
            not isinstance(v, str)
            or not 1 <= len(v) <= MAX_SOFTWARE_VERSION_LEN
            or not v.isascii()
            or not v.isprintable()
        ):
            raise ValueError(
                f"software_version must be 1..={MAX_SOFTWARE_VERSION_LEN} printable ASCII characters"
            )

    @classmethod
    def create(
        cls,
        secret_key: bytes,
        chain_id: bytes,
        network: int,
        tier: Tier,
        height: int,
        tip_hash: bytes,
        timestamp: int,
        software_version: str,
    ) -> Heartbeat:
        """A heartbeat signed with the 32-byte seed ``secret_key`` for the chain ``chain_id``
        (genesis hash)."""
        unsigned = cls(
            network,
            crypto.public_key(secret_key),
            tier,
            height,
            tip_hash,
            timestamp,
            software_version,
            bytes(64),
        )
        signature = crypto.sign(secret_key, unsigned.signing_message(chain_id))
        return cls(
            network, unsigned.masternode_key, tier, height, tip_hash, timestamp, software_version, signature
        )

    def _body(self) -> bytes:
        version = self.software_version.encode("ascii")
        fixed = _FIXED.pack(
            HEARTBEAT_VERSION,
            self.network,
            self.masternode_key,
            int(self.tier),
            self.height,
            self.tip_hash,
            self.timestamp,
            len(version),
        )
        return fixed + version

    def signing_message(self, chain_id: bytes) -> bytes:
        """``HEARTBEAT_DOMAIN ‖ chain_id ‖ encoding without the signature``."""
        return HEARTBEAT_DOMAIN + as_bytes("chain_id", chain_id, HASH_LEN) + self._body()

    def encode(self) -> bytes:
        """The canonical encoding (docs/encoding.md, "Heartbeat")."""
        return self._body() + self.signature

    @classmethod
    def decode(cls, data: bytes) -> Heartbeat:
        """Decodes exactly one heartbeat; :class:`HeartbeatRejected` (``bad-encoding``) for
        anything else: wrong length, unknown version or tier, a version string that is not
        1..=64 printable ASCII characters, trailing bytes."""
        data = bytes(data)
        if len(data) < _FIXED.size + SIGNATURE_LEN:
            raise HeartbeatRejected("bad-encoding", f"{len(data)} bytes is shorter than any heartbeat")
        version, network, key, tier, height, tip_hash, timestamp, n = _FIXED.unpack_from(data)
        if version != HEARTBEAT_VERSION:
            raise HeartbeatRejected("bad-encoding", f"unknown heartbeat version {version}")
        if len(data) != _FIXED.size + n + SIGNATURE_LEN:
            raise HeartbeatRejected(
                "bad-encoding", f"a heartbeat with a {n}-byte version string is {_FIXED.size + n + 64} bytes"
            )
        try:
            software = data[_FIXED.size : _FIXED.size + n].decode("ascii")
            return cls(network, key, Tier(tier), height, tip_hash, timestamp, software, data[-SIGNATURE_LEN:])
        except ValueError as e:
            raise HeartbeatRejected("bad-encoding", str(e)) from None

    def verify(self, chain_id: bytes) -> bool:
        """Whether the signature verifies under the masternode key (ZIP-215)."""
        return crypto.verify(self.masternode_key, self.signing_message(chain_id), self.signature)


@dataclass(frozen=True, slots=True)
class Sighting:
    """The last accepted heartbeat of a masternode and when it arrived (clock seconds)."""

    heartbeat: Heartbeat
    received: float


class HeartbeatTracker:
    """The last valid heartbeat per registered masternode, and who is online.

    ``tier_of(key)`` answers the registry's tier of a masternode key (None if not registered):
    the tracker reads the registry, never the reverse. ``clock()`` returns unix seconds
    (``time.time`` by default). ``registered()`` counts the registered masternodes: on a network
    whose gate is capped by its set (``gate_capped_by_set``, devnet) the gate needs no more than
    that many online. One task owns a tracker.
    """

    def __init__(
        self,
        params: NetworkParams,
        chain_id: bytes,
        tier_of: Callable[[bytes], Tier | None],
        clock: Callable[[], float] = time.time,
        registered: Callable[[], int] | None = None,
    ) -> None:
        self.params = params
        self.chain_id = as_bytes("chain_id", chain_id, HASH_LEN)
        self._tier_of = tier_of
        self._clock = clock
        self._registered = registered
        self._seen: dict[bytes, Sighting] = {}

    def receive(self, data: bytes | Heartbeat) -> Heartbeat:
        """Checks and records a heartbeat (encoded or decoded). Raises
        :class:`HeartbeatRejected` and records nothing if it is malformed, of another network,
        from an unregistered key, claims the wrong tier, is badly signed, stale (older than
        ``heartbeat_expiry``), from the future (beyond ``HEARTBEAT_MAX_CLOCK_SKEW``), or not
        newer than the masternode's last accepted heartbeat (a replay)."""
        hb = data if isinstance(data, Heartbeat) else Heartbeat.decode(data)
        key = hb.masternode_key
        if hb.network != self.params.network:
            raise HeartbeatRejected(
                "wrong-network", f"heartbeat of network {hb.network}, this is {self.params.name}"
            )
        tier = self._tier_of(key)
        if tier is None:
            raise HeartbeatRejected("unknown-masternode", f"{key.hex()} is not a registered masternode")
        if hb.tier != tier:
            raise HeartbeatRejected(
                "wrong-tier", f"{key.hex()} claims tier {hb.tier.name}, registered {tier.name}"
            )
        if not hb.verify(self.chain_id):
            raise HeartbeatRejected("bad-signature", f"heartbeat signature of {key.hex()} does not verify")
        now = self._clock()
        if hb.timestamp < (now - self.params.heartbeat_expiry) * 1000:
            raise HeartbeatRejected(
                "stale", f"timestamp {hb.timestamp} ms is over {self.params.heartbeat_expiry} s old"
            )
        if hb.timestamp > (now + HEARTBEAT_MAX_CLOCK_SKEW) * 1000:
            raise HeartbeatRejected(
                "future", f"timestamp {hb.timestamp} ms is over {HEARTBEAT_MAX_CLOCK_SKEW} s ahead"
            )
        last = self._seen.get(key)
        if last is not None and hb.timestamp <= last.heartbeat.timestamp:
            raise HeartbeatRejected(
                "replayed",
                f"timestamp {hb.timestamp} ms is not after the last accepted {last.heartbeat.timestamp} ms",
            )
        self._seen[key] = Sighting(hb, now)
        return hb

    def last(self, public_key: bytes) -> Sighting | None:
        """The last accepted heartbeat of a masternode, if it is still registered."""
        sighting = self._seen.get(public_key)
        if sighting is None or self._tier_of(public_key) is None:
            return None
        return sighting

    def is_online(self, public_key: bytes) -> bool:
        """Registered and seen less than ``heartbeat_expiry`` seconds ago."""
        sighting = self.last(public_key)
        return sighting is not None and self._clock() - sighting.received < self.params.heartbeat_expiry

    def online(self) -> list[bytes]:
        """The online masternodes' keys, ascending."""
        return sorted(k for k in self._seen if self.is_online(k))

    def required(self) -> int:
        """Masternodes the production gate needs online: ``min_active_masternodes`` (DESIGN §5),
        or on a network with ``gate_capped_by_set`` (devnet) no more than are registered (at
        least 1)."""
        needed = self.params.min_active_masternodes
        if self.params.gate_capped_by_set and self._registered is not None:
            needed = max(1, min(needed, self._registered()))
        return needed

    def can_produce(self) -> bool:
        """The production gate: at least :meth:`required` masternodes online (DESIGN §5).
        Liveness only: never part of a block's validity."""
        return len(self.online()) >= self.required()

    def gate_closed_reason(self) -> str | None:
        """None while the production gate holds; else why it is closed, for the log and
        ``getconsensusinfo`` (how many are online of how many needed, and the expiry)."""
        online, needed = len(self.online()), self.required()
        if online >= needed:
            return None
        return (
            f"{online} masternode{'s' if online != 1 else ''} online, the production gate needs "
            f"{needed} (heard from by heartbeat within {self.params.heartbeat_expiry:g} s; DESIGN §5)"
        )

    def prune(self) -> int:
        """Forgets masternodes no longer registered or whose last heartbeat is stale (so any
        replay of it would be refused as ``stale`` anyway); returns how many."""
        oldest = (self._clock() - self.params.heartbeat_expiry) * 1000
        gone = [
            k for k, s in self._seen.items() if self._tier_of(k) is None or s.heartbeat.timestamp < oldest
        ]
        for k in gone:
            del self._seen[k]
        return len(gone)
