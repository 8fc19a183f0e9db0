"""RPC methods of consensus: transaction finality and the round state (DESIGN §6, §7, §10;
docs/consensus.md).

``gettransactionfinality`` reports one of four states: ``final`` (a finality certificate here,
or archived in a committed block: ``height`` is then the block's), ``pending`` (admitted, being
voted on), ``rejected`` (with the reason) or ``unknown``. Errors use Bitcoin Core's codes
(``timecoin.rpc.errors``): ``INVALID_PARAMETER`` for a malformed txid or a negative timeout.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from timecoin.rpc import render
from timecoin.rpc.errors import INVALID_PARAMETER, MISC_ERROR, RPCError
from timecoin.rpc.methods import Param, parse_hash, rpc_method

if TYPE_CHECKING:
    from timecoin.consensus.service import ConsensusService
    from timecoin.node import Node

CATEGORY = "Consensus"
MAX_WAIT_MS = 3_600_000
"""Longest ``waittransactionfinality`` or ``getfinalityfeed`` wait, milliseconds (one hour)."""
MAX_FEED_PAGE = 100_000
"""Most decisions one ``getfinalityfeed`` call returns."""


def _service(node: Node) -> ConsensusService:
    if node.consensus is None:
        raise RPCError(MISC_ERROR, "consensus is not running")
    return node.consensus


def finality_status(node: Node, txid: bytes) -> dict[str, Any]:
    """The ``gettransactionfinality`` result for ``txid`` (see the module docstring)."""
    service = _service(node)
    out: dict[str, Any] = {"txid": txid.hex(), "status": "unknown", "height": None, "certificate": None}
    found = node.txindex.lookup(txid)  # the location and the block hash in one index read
    if found is not None:
        loc, block_hash, _ = found
        cert = service.certificate(txid)
        out |= {
            "status": "final",
            "height": loc.height,
            "blockhash": block_hash.hex(),
            "certificate": cert.hex() if cert else None,
        }
        return out
    status = service.engine.transaction_status(txid)
    if status is None:
        return out
    state = status.pop("state")
    out["status"] = state
    if state == "final":
        out["certificate"] = status.pop("certificate") or None
    out.update(render.jsonable(status))
    return out


@rpc_method(CATEGORY)
def getconsensusinfo(node: Node) -> dict[str, Any]:
    """The consensus state of this node: its masternode key and whether it votes, the set, the
    round state, finality counts, the signer, counters, ignored messages by reason, evidence,
    finality latency percentiles and the last rounds (docs/consensus.md §8), and the production
    gate: ``{"open", "online", "required", "reason"}`` (``reason`` says why no block is produced
    while it is closed, else null; DESIGN §5)."""
    service = _service(node)
    info: dict[str, Any] = render.jsonable(service.engine.info())
    info["dropped_sends"] = service.dropped_sends
    info["production_gate"] = production_gate(node)
    return info


def production_gate(node: Node) -> dict[str, Any] | None:
    """The production gate now (heartbeats seen by this node, DESIGN §5): whether it holds, how
    many masternodes are online and required, and why it is closed (null while open). None when
    the node tracks no liveness yet."""
    if node.liveness is None:
        return None
    tracker = node.liveness.tracker
    reason = tracker.gate_closed_reason()
    return {
        "open": reason is None,
        "online": len(tracker.online()),
        "required": tracker.required(),
        "reason": reason,
    }


@rpc_method(CATEGORY, Param("txid", "hex", "Transaction id."))
def gettransactionfinality(node: Node, txid: str) -> dict[str, Any]:
    """Finality of a transaction here: ``{"txid", "status": "pending"|"final"|"rejected"|"unknown",
    "height" (block height if archived, else null), "certificate" (finality certificate hex when
    this node holds one, else null)}``, plus ``blockhash`` when archived, the vote weights when
    pending and ``reason`` when rejected."""
    return finality_status(node, parse_hash("txid", txid))


@rpc_method(
    CATEGORY,
    Param("txid", "hex", "Transaction id."),
    Param("timeout_ms", "int", "Milliseconds to wait at most (up to 3,600,000).", False, 10_000),
)
async def waittransactionfinality(node: Node, txid: str, timeout_ms: int) -> dict[str, Any]:
    """Waits until the transaction is final or rejected here (or the timeout passes) and returns
    what ``gettransactionfinality`` returns then."""
    key = parse_hash("txid", txid)
    if not 0 <= timeout_ms <= MAX_WAIT_MS:
        raise RPCError(INVALID_PARAMETER, f"timeout_ms must be in 0..{MAX_WAIT_MS}, got {timeout_ms}")
    service = _service(node)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_ms / 1000
    while True:
        result = finality_status(node, key)
        remaining = deadline - loop.time()
        if result["status"] in ("final", "rejected") or remaining <= 0:
            return result
        tip = asyncio.ensure_future(node.tip_changed.wait())
        decided = asyncio.ensure_future(service.wait_decided(key, remaining))
        try:
            await asyncio.wait({tip, decided}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (tip, decided):
                task.cancel()
            await asyncio.gather(tip, decided, return_exceptions=True)


@rpc_method(
    CATEGORY,
    Param("cursor", "int", "Number of the first decision wanted (omit: from now on).", False, None),
    Param("timeout_ms", "int", "Milliseconds to wait for a decision if none is there yet.", False, 0),
    Param("max_count", "int", f"Most decisions returned (1..{MAX_FEED_PAGE}).", False, MAX_FEED_PAGE),
)
async def getfinalityfeed(node: Node, cursor: int | None, timeout_ms: int, max_count: int) -> dict[str, Any]:
    """This node's finality decisions from number ``cursor`` on, in the order it made them
    (long poll: waits up to ``timeout_ms`` when there is none yet): ``{"final": [txid],
    "rejected": [txid], "cursor": the number to ask next, "missed": decisions no longer kept}``.
    Without ``cursor``, nothing and the current cursor (follow from now on). The feed is in
    memory and restarts at 0 with the node (timecoin/consensus/feed.py). ``INVALID_PARAMETER``
    for a cursor beyond the current one, a negative timeout or a count out of range."""
    feed = _service(node).feed
    if cursor is None:
        return {"final": [], "rejected": [], "cursor": feed.head, "missed": 0}
    if not 0 <= cursor <= feed.head:
        raise RPCError(INVALID_PARAMETER, f"cursor must be in 0..{feed.head}, got {cursor}")
    if not 0 <= timeout_ms <= MAX_WAIT_MS:
        raise RPCError(INVALID_PARAMETER, f"timeout_ms must be in 0..{MAX_WAIT_MS}, got {timeout_ms}")
    if not 1 <= max_count <= MAX_FEED_PAGE:
        raise RPCError(INVALID_PARAMETER, f"max_count must be in 1..{MAX_FEED_PAGE}, got {max_count}")
    await feed.wait(cursor, timeout_ms / 1000)
    page = feed.since(cursor, max_count)
    return {
        "final": [t.hex() for t in page.final],
        "rejected": [t.hex() for t in page.rejected],
        "cursor": page.cursor,
        "missed": page.missed,
    }
