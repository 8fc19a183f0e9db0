"""What the dashboard shows: one snapshot of the node's state a second, read from what the RPC
methods read (``getblockchaininfo``, ``getpeerinfo``, ``masternodelist``, the production gate of
``getconsensusinfo``, the mempool's size and the consensus monitor's finality counters), plus a
short history of the numbers the charts draw (docs/operator.md, "Dashboard").

:class:`DashboardState` is the one owner of this state: its :meth:`~DashboardState.run` task
samples the node every :data:`SAMPLE_INTERVAL` seconds and publishes the snapshot, encoded once,
for every connected browser. The cost is per sample, never per transaction or per client: a few
counters, ``len()`` of the mempool, the peer and masternode rows (the latter every
:data:`MASTERNODE_REFRESH` seconds or when the tip moves), one sort of the monitor's latency
window when something was finalized, and each new block's header read once.

It reads node state and never changes it; it does no I/O but the store reads of new blocks'
headers, which the RPC methods do too.
"""

from __future__ import annotations

import asyncio
import logging
import struct
import time
from collections import deque
from typing import TYPE_CHECKING, Any

import orjson

from timecoin.core.types import HEADER_LEN, BlockHeader
from timecoin.rpc.blockchain import getblockchaininfo
from timecoin.rpc.consensus import production_gate
from timecoin.rpc.errors import RPCError
from timecoin.rpc.masternode import masternodelist
from timecoin.rpc.network import getpeerinfo

if TYPE_CHECKING:
    from timecoin.node import Node

log = logging.getLogger(__name__)

__all__ = [
    "HISTORY_SAMPLES",
    "MASTERNODE_REFRESH",
    "MAX_TABLE_ROWS",
    "RECENT_BLOCKS",
    "SAMPLE_INTERVAL",
    "DashboardState",
]

SAMPLE_INTERVAL = 1.0
"""Seconds between two samples of the node (and two snapshots sent to each browser)."""
HISTORY_SAMPLES = 300
"""Samples the charts' history keeps: five minutes at one a second, sent to a browser when it
connects so its charts start full."""
RECENT_BLOCKS = 10
"""Committed blocks listed, newest first."""
MAX_TABLE_ROWS = 50
"""Most peer or masternode rows sent; the counts above the tables are always complete."""
MASTERNODE_REFRESH = 5.0
"""Seconds between two reads of the masternode list when the tip does not move (heartbeats
change ``online`` and ``last_seen`` between blocks)."""
_TX_COUNT = struct.Struct("<I")
"""A block's transaction count: the u32 after its header (docs/encoding.md, "Block")."""
_MS = 1000.0


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * _MS, 3)


class DashboardState:
    """The node's state as the dashboard shows it (module docstring). :attr:`snapshot` is the
    last published snapshot, encoded (``bytes`` of JSON); :attr:`history` the samples the charts
    draw; :meth:`changed` an event set at the next publication."""

    def __init__(self, node: Node) -> None:
        self._node = node
        self.snapshot: bytes = orjson.dumps({"warmup": "the dashboard has not sampled the node yet"})
        self.history: deque[dict[str, Any]] = deque(maxlen=HISTORY_SAMPLES)
        self._changed = asyncio.Event()
        self._finalized: int | None = None
        self._finalized_at = 0.0
        self._finality: dict[str, Any] | None = None
        self._blocks: list[dict[str, Any]] = []
        self._blocks_tip: bytes | None = None
        self._masternodes: dict[str, Any] | None = None
        self._masternodes_at = -MASTERNODE_REFRESH
        self._masternodes_tip: bytes | None = None

    def changed(self) -> asyncio.Event:
        """The event the next publication sets (a fresh one after each)."""
        return self._changed

    async def run(self) -> None:
        """Samples and publishes every :data:`SAMPLE_INTERVAL` seconds until cancelled. A sample
        that raises is skipped (logged once with its traceback while the error stays the same):
        the dashboard never stops the node."""
        loop = asyncio.get_running_loop()
        failing: str | None = None
        while True:
            started = loop.time()
            try:
                self.publish(self.sample(started))
            except Exception as e:
                # Logged with its traceback when it first happens (or changes), not every second.
                if repr(e) != failing:
                    log.exception("dashboard: sampling the node failed; trying every %.0f s", SAMPLE_INTERVAL)
                failing = repr(e)
            else:
                if failing is not None:
                    log.info("dashboard: sampling the node works again")
                failing = None
            await asyncio.sleep(max(0.0, started + SAMPLE_INTERVAL - loop.time()))

    def publish(self, snapshot: dict[str, Any]) -> None:
        """Encodes ``snapshot`` once, keeps its chart point in :attr:`history` and wakes every
        stream waiting on :meth:`changed`."""
        point = snapshot.get("point")
        if point is not None:
            self.history.append(point)
        self.snapshot = orjson.dumps(snapshot)
        self.wake()

    def wake(self) -> None:
        """Sets the event :meth:`changed` returned (every waiting stream looks again) and makes
        a fresh one."""
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    def sample(self, now: float) -> dict[str, Any]:
        """One snapshot of the node at ``now`` (the loop's clock, seconds); ``{"warmup": what}``
        while the node starts or stops (its chain may not be open)."""
        node = self._node
        if node.warmup is not None:
            return {"warmup": node.warmup}
        info = getblockchaininfo(node)
        tip_hash = bytes.fromhex(info["bestblockhash"])
        finality = self._sample_finality(now)
        mempool = node.mempool
        wall = time.time()
        snapshot: dict[str, Any] = {
            "warmup": None,
            "time": int(wall),
            "network": info["chain"],
            "tip": {
                "height": info["blocks"],
                "hash": info["bestblockhash"],
                "time": info["time"],
                "headers": info["headers"],
                "syncing": info["initialblockdownload"],
                "size_on_disk": info["size_on_disk"],
            },
            "mempool": {
                "size": len(mempool),
                "bytes": mempool.bytes,
                "maxmempool": node.params.mempool_max_bytes,
            },
            "finality": finality,
            "gate": production_gate(node),
            "round": self._round(),
            "peers": self._peers(),
            "masternodes": self._sample_masternodes(now, tip_hash),
            "blocks": self._recent_blocks(info["blocks"], tip_hash),
        }
        snapshot["point"] = {
            "t": round(wall, 3),
            "tps": finality["tps"] if finality else None,
            "p50_ms": finality["p50_ms"] if finality else None,
            "p95_ms": finality["p95_ms"] if finality else None,
            "p99_ms": finality["p99_ms"] if finality else None,
            "mempool": len(mempool),
            "height": info["blocks"],
        }
        return snapshot

    # -- parts -------------------------------------------------------------------------------------

    def _sample_finality(self, now: float) -> dict[str, Any] | None:
        """Finalized transactions (total, and per second since the last sample) and the finality
        latency percentiles of the consensus monitor's window (its last 4,096 finalized
        transactions, as ``getconsensusinfo`` reports them), in milliseconds. None without a
        consensus service."""
        service = self._node.consensus
        if service is None:
            return None
        monitor = service.engine.ctx.monitor
        total = int(monitor.counters["tx_finalized"])
        previous, previous_at = self._finalized, self._finalized_at
        self._finalized, self._finalized_at = total, now
        if previous is None or now <= previous_at:
            tps = 0.0
        else:
            # A rebuilt engine starts a new monitor: its count starts again from zero.
            delta = total - previous if total >= previous else total
            tps = delta / (now - previous_at)
        if self._finality is None or total != previous:
            latency = monitor.snapshot()["finality_latency"]
            self._finality = {
                "samples": latency["samples"],
                "p50_ms": _ms(latency["p50"]),
                "p95_ms": _ms(latency["p95"]),
                "p99_ms": _ms(latency["p99"]),
            }
        return {"finalized": total, "tps": round(tps, 2), **self._finality}

    def _round(self) -> dict[str, Any] | None:
        service = self._node.consensus
        if service is None:
            return None
        bft = service.engine.bft.info()
        return {"height": bft["height"], "round": bft["round"], "step": bft["step"]}

    def _peers(self) -> dict[str, Any] | None:
        """Established peers (``getpeerinfo``): counts by direction and the first
        :data:`MAX_TABLE_ROWS` rows by id. None when P2P is off."""
        try:
            rows = [p for p in getpeerinfo(self._node) if p.get("established")]
        except RPCError:
            return None
        rows.sort(key=lambda p: p["id"])
        inbound = sum(1 for p in rows if p["inbound"])
        return {
            "count": len(rows),
            "in": inbound,
            "out": len(rows) - inbound,
            "rows": [
                {
                    "id": p["id"],
                    "addr": p["addr"],
                    "inbound": p["inbound"],
                    "masternode": p["masternode"],
                    "height": p["height"],
                    "pingtime_ms": _ms(p["pingtime"]),
                    "conntime": int(p["conntime"]),
                    "bytessent": p["bytessent"],
                    "bytesrecv": p["bytesrecv"],
                }
                for p in rows[:MAX_TABLE_ROWS]
            ],
        }

    def _sample_masternodes(self, now: float, tip_hash: bytes) -> dict[str, Any]:
        """``masternodelist`` (counts, and the first :data:`MAX_TABLE_ROWS` rows by weight),
        read again when the tip moved or :data:`MASTERNODE_REFRESH` seconds passed."""
        fresh = self._masternodes_tip == tip_hash and now - self._masternodes_at < MASTERNODE_REFRESH
        if self._masternodes is not None and fresh:
            return self._masternodes
        rows = masternodelist(self._node)
        rows.sort(key=lambda m: (-m["weight"], m["public_key"]))
        self._masternodes = {
            "count": len(rows),
            "online": sum(1 for m in rows if m["online"]),
            "eligible": sum(1 for m in rows if m["eligible"]),
            "rows": [
                {
                    "public_key": m["public_key"],
                    "tier": m["tier"],
                    "weight": m["weight"],
                    "online": m["online"],
                    "eligible": m["eligible"],
                    "last_seen": m["last_seen"],
                    "last_paid_height": m["last_paid_height"],
                }
                for m in rows[:MAX_TABLE_ROWS]
            ],
        }
        self._masternodes_at, self._masternodes_tip = now, tip_hash
        return self._masternodes

    def _recent_blocks(self, tip: int, tip_hash: bytes) -> list[dict[str, Any]]:
        """The last :data:`RECENT_BLOCKS` committed blocks, newest first, read again only when
        the tip moved; each block's stored bytes are read once, when it first falls in the
        window (a block the store does not serve, being damaged, is left out)."""
        if tip_hash == self._blocks_tip:
            return self._blocks
        store = self._node.chain.store
        known = {b["height"]: b for b in self._blocks}
        rows = []
        for height in range(tip, max(-1, tip - RECENT_BLOCKS), -1):
            row = known.get(height)
            block_hash = store.block_hash(height)
            if row is None or block_hash is None or row["hash"] != block_hash.hex():
                row = self._block_row(height, block_hash)
            if row is not None:
                rows.append(row)
        self._blocks, self._blocks_tip = rows, tip_hash
        return rows

    def _block_row(self, height: int, block_hash: bytes | None) -> dict[str, Any] | None:
        if block_hash is None:
            return None
        raw = self._node.chain.store.block(block_hash)
        if raw is None:
            return None
        header = BlockHeader.decode(raw[:HEADER_LEN])
        (count,) = _TX_COUNT.unpack_from(raw, HEADER_LEN)
        return {
            "height": height,
            "hash": block_hash.hex(),
            "time": header.timestamp,
            "txs": count,
            "size": len(raw),
            "round": header.round,
            "proposer": header.proposer.hex(),
        }
