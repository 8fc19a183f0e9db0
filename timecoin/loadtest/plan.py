"""What ``timecoin loadtest`` hands the Locust processes it starts (:mod:`.distributed`) and what
those processes say to each other (:mod:`.locustfile`): the plan files, the coin records, the
names of Locust's custom messages and events. Shared by both sides; it imports no Locust (the
parent process must never be monkey-patched by gevent).

* A **worker plan** (JSON, mode 0600: it holds RPC credentials and secret seeds) names the nodes
  a worker submits to and follows, and the keys it signs with. Each worker's own
  ``timecoin loadtest --worker`` (or ``--workers N`` for local ones) writes it.
* A **master plan** names the coin file (the fan-out's outputs, :data:`COIN_RECORD` each), the
  offered rate, duration and drain time, the chain (network name and genesis hash), the batch
  size and where the master writes the merged results.

The master sends each worker a disjoint slice of the coins (``PREPARE``); the worker signs one
transfer per coin natively before the clock starts and answers ``PREPARED``; after the load and
the drain it sends its ``RESULTS`` (final txids with latency and time, counts, rejects).
"""

from __future__ import annotations

import os
import struct
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import orjson

from timecoin import crypto
from timecoin.core.address import pubkey_hash
from timecoin.core.types import OutPoint
from timecoin.loadtest.generator import SpendableCoin
from timecoin.loadtest.submitter import Endpoint

__all__ = [
    "ADMISSION",
    "COIN_RECORD",
    "FINAL",
    "FINALITY",
    "PLAN_OPTION",
    "PREPARE",
    "PREPARED",
    "REJECTED",
    "RESULTS",
    "MasterPlan",
    "WorkerPlan",
    "decode_coins",
    "encode_coins",
    "read_plan",
    "write_plan",
]

PLAN_OPTION = "--timecoin-plan"
"""The locustfile's own command-line option: the path of this process's plan."""
PREPARE = "timecoin-prepare"
PREPARED = "timecoin-prepared"
RESULTS = "timecoin-results"
FINALITY = "finality"
"""Locust request type of finality events: one per transaction decided."""
FINAL = "final"
"""Event name of a transaction reported final; its response time is the finality latency (ms)."""
REJECTED = "rejected"
"""Event name (a failure) of a transaction reported rejected by consensus."""
ADMISSION = "admission"
"""Locust request type of per-transaction refusals at submission (the name is the reason)."""
COIN_RECORD = struct.Struct("<36sQ32s")
"""One coin: encoded outpoint (36 bytes), value (sat, u64) and owner's pubkey hash (32 bytes)."""


@dataclass(frozen=True, slots=True)
class WorkerPlan:
    """A worker's nodes and signing keys (32-byte seeds)."""

    endpoints: list[Endpoint]
    keys: list[bytes]

    def to_json(self) -> dict[str, Any]:
        return {
            "role": "worker",
            "endpoints": [
                {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(e).items()}
                for e in self.endpoints
            ],
            "keys": [k.hex() for k in self.keys],
        }

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> WorkerPlan:
        endpoints = [
            Endpoint(
                e["host"],
                e["port"],
                e["user"],
                e["password"],
                Path(e["cookie_dir"]) if e.get("cookie_dir") else None,
                Path(e["cookie_file"]) if e.get("cookie_file") else None,
            )
            for e in doc["endpoints"]
        ]
        return cls(endpoints, [bytes.fromhex(k) for k in doc["keys"]])


@dataclass(frozen=True, slots=True)
class MasterPlan:
    """The run as the master hands it out: coins, offered rate (tx/s, all workers), duration
    and drain (s), the chain, the signing batch, and the results file it writes."""

    coins_file: Path
    rate: float
    duration: float
    drain_timeout: float
    network: str
    chain_id: str
    batch_size: int
    results_file: Path
    expect_workers: int

    def to_json(self) -> dict[str, Any]:
        return {
            "role": "master",
            **{k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(self).items()},
        }

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> MasterPlan:
        return cls(
            Path(doc["coins_file"]),
            float(doc["rate"]),
            float(doc["duration"]),
            float(doc["drain_timeout"]),
            str(doc["network"]),
            str(doc["chain_id"]),
            int(doc["batch_size"]),
            Path(doc["results_file"]),
            int(doc["expect_workers"]),
        )


def write_plan(path: Path, plan: WorkerPlan | MasterPlan) -> None:
    """Writes ``plan`` as JSON, mode 0600 (it may hold credentials and secret seeds)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(orjson.dumps(plan.to_json()))


def read_plan(path: Path) -> WorkerPlan | MasterPlan:
    """The plan in ``path``; ``ValueError`` if it is not one."""
    try:
        doc = orjson.loads(path.read_bytes())
        return WorkerPlan.from_json(doc) if doc["role"] == "worker" else MasterPlan.from_json(doc)
    except (OSError, orjson.JSONDecodeError, KeyError, TypeError, ValueError) as e:
        raise ValueError(f"{path}: not a load-test plan ({e})") from None


def encode_coins(coins: list[SpendableCoin]) -> bytes:
    """The coins as :data:`COIN_RECORD` records (owners by pubkey hash: no secret leaves)."""
    owners: dict[bytes, bytes] = {}
    out = bytearray()
    for c in coins:
        owner = owners.get(c.key)
        if owner is None:
            owner = owners[c.key] = pubkey_hash(crypto.public_key(c.key))
        out += COIN_RECORD.pack(c.outpoint.encode(), c.value, owner)
    return bytes(out)


def decode_coins(data: bytes, keys: list[bytes]) -> list[SpendableCoin]:
    """The coins of :func:`encode_coins` output, each with its owner's seed from ``keys``;
    ``ValueError`` for a truncated record or a coin none of ``keys`` owns."""
    if len(data) % COIN_RECORD.size:
        raise ValueError(f"coin records of {COIN_RECORD.size} bytes expected, got {len(data)} bytes")
    seeds = {pubkey_hash(crypto.public_key(k)): k for k in keys}
    coins = []
    for outpoint, value, owner in COIN_RECORD.iter_unpack(data):
        seed = seeds.get(owner)
        if seed is None:
            raise ValueError(f"no funding key owns coin {OutPoint.decode(outpoint)} (owner {owner.hex()})")
        coins.append(SpendableCoin(OutPoint.decode(outpoint), value, seed))
    return coins
