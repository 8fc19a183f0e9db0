"""The ban list (DESIGN §8): node keys and hosts refused for a period, persisted in the
datadir's ``peers`` database under ``ban:`` keys.

A ban names a proven node key (hex) or a host (IP literal); its value is the expiry in unix
seconds (8 bytes little-endian) followed by the reason (UTF-8). Bans survive restarts, so expiry
is wall-clock time, not monotonic. Only the P2P service task touches a :class:`BanMan`; writes
are one small LMDB transaction each.
"""

from __future__ import annotations

import logging
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass

from timecoin.store.chainstore import ChainStore

log = logging.getLogger(__name__)

PREFIX = b"ban:"
_EXPIRY = struct.Struct("<Q")


@dataclass(frozen=True, slots=True)
class Ban:
    """A ban of ``target`` (``key:<hex>`` or ``host:<ip>``) until ``until`` (unix seconds)."""

    target: str
    until: float
    reason: str


def key_target(node_key: bytes) -> str:
    return "key:" + node_key.hex()


def host_target(host: str) -> str:
    return "host:" + host


class BanMan:
    """Current bans, loaded from and written through to the store."""

    def __init__(self, store: ChainStore, wall_clock: Callable[[], float] = time.time) -> None:
        self._store = store
        self._clock = wall_clock
        self._bans: dict[str, Ban] = {}
        now = wall_clock()
        expired = []
        for key, value in store.items(b"peers", PREFIX):
            if len(value) < _EXPIRY.size:
                log.warning("dropping malformed ban record %r", key)
                expired.append(key)
                continue
            until = float(_EXPIRY.unpack_from(value)[0])
            target = key[len(PREFIX) :].decode("utf-8", "replace")
            if until <= now:
                expired.append(key)
            else:
                self._bans[target] = Ban(target, until, value[_EXPIRY.size :].decode("utf-8", "replace"))
        if expired:
            store.write([(b"peers", k, None) for k in expired])

    def ban(self, target: str, seconds: float, reason: str) -> Ban:
        """Bans ``target`` for ``seconds`` (extending, never shortening, a current ban)."""
        until = self._clock() + seconds
        current = self._bans.get(target)
        if current is not None and current.until >= until:
            return current
        entry = Ban(target, until, reason)
        self._bans[target] = entry
        self._store.write(
            [(b"peers", PREFIX + target.encode(), _EXPIRY.pack(int(until)) + reason.encode()[:200])]
        )
        log.info("banned %s for %.0f s: %s", target, seconds, reason)
        return entry

    def unban(self, target: str) -> bool:
        """Lifts a ban; whether there was one."""
        if self._bans.pop(target, None) is None:
            return False
        self._store.write([(b"peers", PREFIX + target.encode(), None)])
        return True

    def is_banned(self, target: str) -> bool:
        entry = self._bans.get(target)
        if entry is None:
            return False
        if entry.until <= self._clock():
            self.unban(target)
            return False
        return True

    def bans(self) -> list[Ban]:
        """Current bans, soonest expiry first."""
        now = self._clock()
        return sorted((b for b in self._bans.values() if b.until > now), key=lambda b: b.until)
