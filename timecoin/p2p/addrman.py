"""The address book (DESIGN §8): peer addresses learnt from seeds, ADDR gossip and handshakes,
with their history, persisted in the datadir's ``peers`` database under ``addr:`` keys.

Key: ``addr:`` ‖ IPv6 or IPv4-mapped address (16 bytes) ‖ port (u16 BE). Value: last seen
(u64 LE unix seconds) ‖ last success (u64 LE unix seconds, 0 for never) ‖ failed attempts since
(u32 LE). The book holds at most :data:`MAX_ADDRESSES`; past that the least recently seen go.
Changes are written in batches by :meth:`AddrMan.flush` (the service calls it periodically and
on stop). Only the P2P service task touches an :class:`AddrMan`.
"""

from __future__ import annotations

import ipaddress
import logging
import random
import struct
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from timecoin.store.chainstore import ChainStore

log = logging.getLogger(__name__)

PREFIX = b"addr:"
MAX_ADDRESSES = 10_000
"""Entries kept (Bitcoin Core's tables hold ~65k; a masternode network is far smaller)."""
MAX_ATTEMPTS = 10
"""Failed dials in a row after which an address that never succeeded is forgotten."""
RETRY_BASE = 60.0
"""Seconds before retrying an address after its first failure; doubles per failure."""
RETRY_MAX = 3600.0

_VALUE = struct.Struct("<QQI")


@dataclass(slots=True)
class AddrInfo:
    host: str
    port: int
    last_seen: int
    """unix seconds"""
    last_success: int = 0
    """unix seconds; 0 for never"""
    attempts: int = 0
    """failed dials since the last success"""
    next_try: float = 0.0
    """monotonic seconds; not persisted"""


def _key(host: str, port: int) -> bytes:
    ip = ipaddress.ip_address(host)
    if isinstance(ip, ipaddress.IPv4Address):
        ip = ipaddress.IPv6Address(b"\0" * 10 + b"\xff\xff" + ip.packed)
    return PREFIX + ip.packed + struct.pack(">H", port)


def _from_key(key: bytes) -> tuple[str, int]:
    ip = ipaddress.IPv6Address(key[len(PREFIX) : len(PREFIX) + 16])
    host = str(ip.ipv4_mapped) if ip.ipv4_mapped is not None else str(ip)
    return host, struct.unpack(">H", key[len(PREFIX) + 16 :])[0]


def is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


class AddrMan:
    """Known addresses and their dial history."""

    def __init__(
        self,
        store: ChainStore,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
    ) -> None:
        self._store = store
        self._clock = clock
        self._wall = wall_clock
        self._rng = rng or random.Random()
        self._addrs: dict[tuple[str, int], AddrInfo] = {}
        self._dirty: set[tuple[str, int]] = set()
        for key, value in store.items(b"peers", PREFIX):
            if len(key) != len(PREFIX) + 18 or len(value) != _VALUE.size:
                log.warning("ignoring malformed address record %r", key)
                continue
            host, port = _from_key(key)
            seen, success, attempts = _VALUE.unpack(value)
            self._addrs[(host, port)] = AddrInfo(host, port, seen, success, attempts)

    def __len__(self) -> int:
        return len(self._addrs)

    def __contains__(self, addr: object) -> bool:
        return addr in self._addrs

    def now(self) -> int:
        """Wall-clock unix seconds, as last-seen times are kept."""
        return int(self._wall())

    def add(self, entries: Iterable[tuple[str, int, int]]) -> int:
        """Adds or refreshes (IP literal, port, last seen unix s) entries; a last-seen time in the
        future counts as now. Returns how many were new. Hostnames and port 0 are skipped."""
        now = int(self._wall())
        new = 0
        for host, port, seen in entries:
            if not 0 < port < 65536 or not is_ip(host):
                continue
            seen = min(int(seen), now)
            info = self._addrs.get((host, port))
            if info is None:
                self._addrs[(host, port)] = AddrInfo(host, port, seen)
                new += 1
            elif seen > info.last_seen:
                info.last_seen = seen
            else:
                continue
            self._dirty.add((host, port))
        if len(self._addrs) > MAX_ADDRESSES:
            for info in sorted(self._addrs.values(), key=lambda i: i.last_seen)[
                : len(self._addrs) - MAX_ADDRESSES
            ]:
                del self._addrs[(info.host, info.port)]
                self._dirty.add((info.host, info.port))
        return new

    def mark_good(self, host: str, port: int) -> None:
        """A dial to (host, port) completed a handshake."""
        now = int(self._wall())
        info = self._addrs.get((host, port))
        if info is None:
            if not is_ip(host):
                return
            info = self._addrs[(host, port)] = AddrInfo(host, port, now)
        info.last_seen = info.last_success = now
        info.attempts = 0
        info.next_try = 0.0
        self._dirty.add((host, port))

    def mark_failed(self, host: str, port: int) -> None:
        """A dial to (host, port) failed: retry later, forget it after too many failures."""
        info = self._addrs.get((host, port))
        if info is None:
            return
        info.attempts += 1
        info.next_try = self._clock() + min(RETRY_MAX, RETRY_BASE * 2 ** (info.attempts - 1))
        if info.attempts >= MAX_ATTEMPTS and info.last_success == 0:
            del self._addrs[(host, port)]
        self._dirty.add((host, port))

    def select(self, exclude: set[tuple[str, int]]) -> tuple[str, int] | None:
        """An address to dial: not in ``exclude``, not waiting out a retry delay; fewest failures
        first, then most recently seen, picked at random among the best few."""
        now = self._clock()
        ready = [i for i in self._addrs.values() if i.next_try <= now and (i.host, i.port) not in exclude]
        if not ready:
            return None
        ready.sort(key=lambda i: (i.attempts, -i.last_seen))
        pick = self._rng.choice(ready[:8])
        return pick.host, pick.port

    def sample(self, count: int) -> list[tuple[str, int, int]]:
        """Up to ``count`` random (host, port, last seen) entries for an ADDR reply."""
        infos = list(self._addrs.values())
        picked = self._rng.sample(infos, min(count, len(infos)))
        return [(i.host, i.port, i.last_seen) for i in picked]

    def flush(self) -> None:
        """Writes the changed entries in one transaction."""
        if not self._dirty:
            return
        writes: list[tuple[bytes, bytes, bytes | None]] = []
        for host, port in self._dirty:
            info = self._addrs.get((host, port))
            value = None if info is None else _VALUE.pack(info.last_seen, info.last_success, info.attempts)
            writes.append((b"peers", _key(host, port), value))
        self._store.write(writes)
        self._dirty.clear()
