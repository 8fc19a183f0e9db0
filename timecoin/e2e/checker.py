"""The history checker of an e2e run (DESIGN §12; docs/e2e.md, "Checks"): black-box, over each
node's JSON-RPC, after the faults healed and the load settled.

* ``one-chain``: every node reaches one height with the same tip hash and UTXO set hash
  (``gettxoutsetinfo``), and the same block hash at every height below (§12.2, §12.4);
* ``no-double-spend``: no outpoint is spent by two transactions of the committed chain (§12.1);
* ``no-conflicting-final``: of each double spend the Byzantine actor made, at most one
  transaction is final, on any node (§12.1);
* ``final-kept``: every transaction a node reported final (the load test's follower saw it
  final) is final on every node and archived in a block (§12.5): ``lost`` if some node does not
  hold it final, ``unarchived`` if it is final but in no block;
* ``liveness``: after each fault heals, every node holds a block that no node held at the heal
  within the manifest's ``liveness_bound``; and while a fault leaves a 2/3 quorum of the (equal)
  masternodes untouched, the quorum never goes ``liveness_bound`` without a new block (§12.8).

A check reports what it saw; nothing here changes a node.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from timecoin.core.types import Block
from timecoin.e2e.byzantine import DoubleSpend
from timecoin.e2e.schedule import Fault
from timecoin.rpc.client import RPCClient

__all__ = [
    "Check",
    "FaultRecord",
    "Sample",
    "check_history",
    "check_liveness",
    "longest_stall",
    "recovery_seconds",
]

BATCH = 500
"""Calls per JSON-RPC batch of the checker."""
GETBLOCK_BATCH = 8
"""Blocks per ``getblock`` batch: a batch's replies are capped (``MAX_BATCH_REPLY_BYTES``, 32 MiB,
docs/operator.md), so a long chain of full blocks is read a few at a time, and a block the cap
still refuses is read alone (one call is never capped)."""
POLL = 0.5
"""Seconds between two looks while waiting for the nodes to agree or archive."""
SAMPLE_LIMIT = 20
"""Examples kept per failed check in the report."""

Sample = tuple[float, list[int | None]]
"""(seconds since the run started, every node's height or None if it did not answer)."""


@dataclass(frozen=True, slots=True)
class Check:
    """One check's verdict, a one-line summary and the details (examples when it failed)."""

    name: str
    passed: bool
    summary: str
    details: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "passed": self.passed, "summary": self.summary, "details": self.details}


@dataclass(slots=True)
class FaultRecord:
    """What happened to one scheduled fault (times in seconds since the run started)."""

    fault: Fault
    started_at: float | None = None
    healed_at: float | None = None
    recovered_at: float | None = None
    """When the runner saw every node above the heal-time height (None: not within the bound)."""
    quorum: tuple[int, ...] = ()
    """Nodes the fault leaves untouched, if they hold 2/3 of the masternodes (else empty)."""
    under_load: bool = True
    """Whether the load was still being submitted when the fault started."""
    error: str | None = None
    byzantine: dict[str, Any] | None = None
    relayed: dict[str, int] | None = None
    """For a delay: connections the relay joined and bytes it carried during the fault."""

    def to_json(self) -> dict[str, Any]:
        return {
            **self.fault.to_json(),
            "description": self.fault.describe(),
            "started_at_s": _round(self.started_at),
            "healed_at_s": _round(self.healed_at),
            "recovered_at_s": _round(self.recovered_at),
            "quorum": list(self.quorum),
            "under_load": self.under_load,
            "error": self.error,
            **({"byzantine": self.byzantine} if self.byzantine is not None else {}),
            **({"relayed": self.relayed} if self.relayed is not None else {}),
        }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


# -- liveness (pure, over the sampled timeline) ---------------------------------------------------------


def recovery_seconds(samples: Sequence[Sample], healed_at: float) -> float | None:
    """Seconds from ``healed_at`` to the first sample where every node answers with a height
    above the highest height any node had at the heal (the last sample at or before it); None
    if no sample shows that."""
    before = [s for s in samples if s[0] <= healed_at]
    if not before:
        return None
    known = [h for h in before[-1][1] if h is not None]
    if not known:
        return None
    target = max(known) + 1
    for t, heights in samples:
        if t >= healed_at and all(h is not None and h >= target for h in heights):
            return t - healed_at
    return None


def longest_stall(samples: Sequence[Sample], start: float, end: float, nodes: Sequence[int]) -> float:
    """The longest time within [start, end] during which the highest height among ``nodes``
    did not grow (seconds; from ``start`` to the first growth, between growths, and from the last
    growth to ``end``)."""
    last_change, best, stall = start, None, 0.0
    for t, heights in samples:
        if t < start or t > end:
            continue
        known = [heights[i] for i in nodes if heights[i] is not None]
        if not known:
            continue
        top = max(h for h in known if h is not None)
        if best is None:
            best = top
        elif top > best:
            stall = max(stall, t - last_change)
            best, last_change = top, t
    return max(stall, end - last_change)


def check_liveness(records: Sequence[FaultRecord], samples: Sequence[Sample], bound: float) -> Check:
    """The ``liveness`` check over the fault records and the timeline (see the module docstring)."""
    failures: list[str] = []
    measured: list[dict[str, Any]] = []
    for r in records:
        if r.started_at is None or r.healed_at is None:
            continue
        recovery = recovery_seconds(samples, r.healed_at)
        stall = longest_stall(samples, r.started_at, r.healed_at, r.quorum) if r.quorum else None
        measured.append(
            {
                "fault": r.fault.index,
                "recovery_s": _round(recovery),
                "stall_during_s": _round(stall),
            }
        )
        if recovery is None or recovery > bound:
            seen = "never" if recovery is None else f"after {recovery:.1f} s"
            failures.append(
                f"{r.fault.describe()}: every node committed a new block {seen} (bound {bound:g} s)"
            )
        if stall is not None and stall > bound:
            failures.append(
                f"{r.fault.describe()}: the untouched quorum {list(r.quorum)} went {stall:.1f} s without a "
                f"block (bound {bound:g} s)"
            )
    passed = not failures
    summary = (
        f"{len(measured)} faults recovered within {bound:g} s"
        if passed
        else f"{len(failures)} liveness failures: {failures[0]}"
    )
    return Check("liveness", passed, summary, {"faults": measured, "failures": failures})


# -- history over RPC ------------------------------------------------------------------------------------


def _batch(client: RPCClient, method: str, params: list[list[Any]], size: int = BATCH) -> list[Any]:
    """Results of ``method`` over ``params``, ``size`` calls per batch (error objects become
    ``{"error": ...}``)."""
    out: list[Any] = []
    for i in range(0, len(params), size):
        replies = client.batch([(method, p) for p in params[i : i + size]])
        out.extend(r["result"] if r.get("error") is None else {"error": r["error"]} for r in replies)
    return out


def _wait(predicate: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(POLL)


def _one_chain(clients: Sequence[RPCClient], timeout: float) -> tuple[Check, int]:
    rows: list[dict[str, Any]] = []

    def agreed_height() -> bool:
        nonlocal rows
        rows = [c.gettxoutsetinfo() for c in clients]
        return len({r["height"] for r in rows}) == 1

    same_height = _wait(agreed_height, timeout)
    tips = [{"height": r["height"], "tip": r["bestblock"], "utxosethash": r["utxosethash"]} for r in rows]
    height = min(r["height"] for r in rows)
    heights = [[h] for h in range(height + 1)]
    hashes = [_batch(c, "getblockhash", heights) for c in clients]
    forks = [h for h in range(height + 1) if len({str(x[h]) for x in hashes}) != 1]
    agree = same_height and len({(t["tip"], t["utxosethash"]) for t in tips}) == 1
    passed = agree and not forks
    if passed:
        summary = f"{len(clients)} nodes at height {height}, one tip and UTXO set hash"
    elif forks:
        summary = f"{len(forks)} heights with different blocks, first {forks[0]}"
    else:
        summary = "the nodes did not reach one tip and UTXO set hash" + (
            "" if same_height else f" within {timeout:g} s"
        )
    return Check("one-chain", passed, summary, {"tips": tips, "forked_heights": forks[:SAMPLE_LIMIT]}), height


def _chain_spends(client: RPCClient, height: int) -> tuple[Check, dict[str, int]]:
    """Walks the committed chain of one node: (the ``no-double-spend`` check, txid → height)."""
    block_hashes = _batch(client, "getblockhash", [[h] for h in range(height + 1)])
    raws = _batch(client, "getblock", [[h, 0] for h in block_hashes], GETBLOCK_BATCH)
    spent: dict[bytes, bytes] = {}
    doubles: list[str] = []
    archived: dict[str, int] = {}
    for h, raw in enumerate(raws):
        if isinstance(raw, dict):  # over the batch reply cap: alone, a call is never capped
            raw = client.getblock(block_hashes[h], 0)
        block = Block.decode(bytes.fromhex(raw))
        for tx in block.transactions:
            archived[tx.txid.hex()] = h
            for outpoint in tx.inputs:
                key = outpoint.encode()
                first = spent.setdefault(key, tx.txid)
                if first != tx.txid:
                    doubles.append(
                        f"{outpoint.txid.hex()}:{outpoint.vout} by {first.hex()} and {tx.txid.hex()}"
                    )
    check = Check(
        "no-double-spend",
        not doubles,
        f"{len(spent)} outpoints spent once each in {height + 1} blocks"
        if not doubles
        else f"{len(doubles)} outpoints spent twice in the chain",
        {"double_spends": doubles[:SAMPLE_LIMIT]},
    )
    return check, archived


def _statuses(clients: Sequence[RPCClient], txids: list[str]) -> list[list[dict[str, Any]]]:
    """``gettransactionfinality`` of every txid on every node: ``[node][i]``."""
    return [_batch(c, "gettransactionfinality", [[t] for t in txids]) for c in clients]


def _final_kept(clients: Sequence[RPCClient], reported: list[str], timeout: float) -> Check:
    lost: dict[str, dict[int, str]] = {}
    unarchived: dict[str, list[int]] = {}

    def archived_everywhere() -> bool:
        nonlocal lost, unarchived
        lost, unarchived = {}, {}
        for n, statuses in enumerate(_statuses(clients, reported)):
            for txid, s in zip(reported, statuses, strict=True):
                status = s.get("status", "error") if isinstance(s, dict) else "error"
                if status != "final":
                    lost.setdefault(txid, {})[n] = str(s.get("error") or status)
                elif s.get("height") is None:
                    unarchived.setdefault(txid, []).append(n)
        return not lost and not unarchived

    if reported:
        _wait(archived_everywhere, timeout)
    passed = not lost and not unarchived
    summary = (
        f"{len(reported)} transactions reported final are final and archived on every node"
        if passed
        else f"{len(lost)} reported final are lost, {len(unarchived)} are final but unarchived"
    )
    details = {
        "reported_final": len(reported),
        "lost": dict(list(lost.items())[:SAMPLE_LIMIT]),
        "lost_count": len(lost),
        "unarchived": dict(list(unarchived.items())[:SAMPLE_LIMIT]),
        "unarchived_count": len(unarchived),
    }
    return Check("final-kept", passed, summary, details)


def _no_conflicting_final(clients: Sequence[RPCClient], pairs: Sequence[DoubleSpend]) -> Check:
    txids = [t for p in pairs for t in (p.first, p.second)]
    final: set[str] = set()
    if txids:
        for statuses in _statuses(clients, txids):
            final.update(
                t
                for t, s in zip(txids, statuses, strict=True)
                if isinstance(s, dict) and s.get("status") == "final"
            )
    both = [p.outpoint for p in pairs if p.first in final and p.second in final]
    settled = sum(1 for p in pairs if p.first in final or p.second in final)
    return Check(
        "no-conflicting-final",
        not both,
        f"{len(pairs)} double spends, {settled} settled with one final transaction, none with two"
        if not both
        else f"{len(both)} double spends have both transactions final",
        {"double_spends": len(pairs), "settled": settled, "both_final": both[:SAMPLE_LIMIT]},
    )


def check_history(
    clients: Sequence[RPCClient],
    reported_final: Sequence[str],
    pairs: Sequence[DoubleSpend],
    settle_timeout: float,
) -> list[Check]:
    """Every RPC check of the module docstring, in order (``liveness`` is :func:`check_liveness`).
    ``settle_timeout`` bounds each wait for the nodes to agree and to archive."""
    chain, height = _one_chain(clients, settle_timeout)
    spends, _ = _chain_spends(clients[0], height)
    kept = _final_kept(clients, sorted(reported_final), settle_timeout)
    conflicts = _no_conflicting_final(clients, pairs)
    return [chain, spends, conflicts, kept]
