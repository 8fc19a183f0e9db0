"""RPC methods over single transactions (Bitcoin Core's "rawtransactions" category).

Rejections carry the mempool's or the ledger's stable reject code first in the message
(``"insufficient-fee: ..."``): ``VERIFY_ERROR`` (-25) for inputs that are missing or spent,
``VERIFY_REJECTED`` (-26) for every other rule or policy, ``VERIFY_ALREADY_IN_CHAIN`` (-27) for
a transaction a committed block holds.

**Admission control** (DESIGN §13, §12 invariant 10): once the node's pending transactions, or
the bytes of its final transactions no block holds yet, reach its
:class:`~timecoin.ledger.mempool.AdmissionLimit` (the ``admission_max_pending`` and
``admission_max_final_bytes`` settings),
``sendrawtransaction`` answers ``MEMPOOL_OVERLOADED`` (-32001, message ``mempool-overloaded:
...``) without looking at the transaction, and ``sendrawtransactions`` admits only as many as
fit, the rest answered ``-32001`` per item (the whole call, when none fits). Nothing refused so
was admitted: the client retries it later.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from timecoin.core.types import HEADER_LEN, BlockHeader
from timecoin.ledger.mempool import AdmissionLimit
from timecoin.rpc import render
from timecoin.rpc.errors import (
    DESERIALIZATION_ERROR,
    INVALID_ADDRESS_OR_KEY,
    INVALID_PARAMETER,
    MEMPOOL_OVERLOADED,
    VERIFY_ALREADY_IN_CHAIN,
    VERIFY_ERROR,
    VERIFY_REJECTED,
    RPCError,
)
from timecoin.rpc.methods import Param, parse_hash, parse_hex, rpc_method
from timecoin.rpc.rawbatch import BatchTooLong

if TYPE_CHECKING:
    from timecoin.ledger.mempool import Admission
    from timecoin.node import Node

CATEGORY = "Rawtransactions"
MISSING_INPUT_CODES = frozenset({"missing-input"})
"""Reject codes reported as ``VERIFY_ERROR`` (-25): the inputs, not the transaction, are the
problem (Bitcoin Core: "bad-txns-inputs-missingorspent")."""
ALREADY_KNOWN = frozenset({"txn-already-in-mempool", "txn-already-final"})
"""Reject codes of a resubmission: no error, the txid is returned (Bitcoin Core does the same for
a transaction already in its mempool)."""
OVERLOADED = "mempool-overloaded"
"""The reason code opening every ``MEMPOOL_OVERLOADED`` message."""
MAX_BATCH = 100_000
"""Most transactions one ``sendrawtransactions`` call takes (ten mempools' worth, DESIGN §4)."""


def _decode_hex_tx(node: Node, hexstring: str) -> bytes:
    raw = parse_hex("hexstring", hexstring)
    if len(raw) > node.params.max_tx_size:
        raise RPCError(
            DESERIALIZATION_ERROR,
            f"TX decode failed: {len(raw)} bytes exceeds the maximum of {node.params.max_tx_size}",
        )
    return raw


@rpc_method(
    CATEGORY,
    Param("txid", "hex", "Transaction id."),
    Param("verbose", "int_or_bool", "false/0: hex; true/1: a JSON object.", False, False),
    Param("blockhash", "hex", "Only look in this block.", False, None),
)
def getrawtransaction(node: Node, txid: str, verbose: int | bool, blockhash: str | None) -> Any:
    """A pending, final (not yet in a block) or committed transaction: from the mempool, the
    finalized pool or the transaction index."""
    txid_bytes = parse_hash("txid", txid)
    want_block = parse_hash("blockhash", blockhash) if blockhash is not None else None
    raw: bytes | None = None
    where: dict[str, Any] = {}
    raw = node.unarchived_transaction(txid_bytes) if want_block is None else None
    if raw is None:
        found = node.txindex.lookup(txid_bytes)
        if found is not None and (want_block is None or found[1] == want_block):
            loc, block_hash, raw = found
            header = BlockHeader.decode(node.chain.store.block_part(block_hash, 0, HEADER_LEN))  # type: ignore[arg-type]
            where = {
                "blockhash": block_hash.hex(),
                "height": loc.height,
                "confirmations": node.chain.tip.height - loc.height + 1,
                "blocktime": header.timestamp,
            }
        elif want_block is not None and node.chain.store.block(want_block) is None:
            raise RPCError(INVALID_ADDRESS_OR_KEY, "Block hash not found")
    if raw is None:
        where_text = "in block" if want_block is not None else "mempool or blockchain"
        raise RPCError(INVALID_ADDRESS_OR_KEY, f"No such {where_text} transaction {txid}")
    if not verbose:
        return raw.hex()
    return {"hex": raw.hex()} | render.decode_transaction_json(raw, node.params) | where


@rpc_method(CATEGORY, Param("hexstring", "hex", "The encoded transaction, hex."))
def decoderawtransaction(node: Node, hexstring: str) -> dict[str, Any]:
    """The JSON form of an encoded transaction (no validity check)."""
    raw = _decode_hex_tx(node, hexstring)
    try:
        return render.decode_transaction_json(raw, node.params)
    except ValueError as e:
        raise RPCError(DESERIALIZATION_ERROR, f"TX decode failed: {e}") from None


def _admission_room(node: Node) -> tuple[int, RPCError]:
    """(how many transactions may be admitted now, the error for those that may not)."""
    config = node.config
    limit = AdmissionLimit.for_network(
        node.params, config.admission_max_pending, config.admission_max_final_bytes
    )
    mempool = node.mempool
    final_bytes = node.consensus.final_backlog_bytes if node.consensus is not None else 0
    if final_bytes >= limit.max_final_bytes:
        why = (
            f"{final_bytes} bytes of final transactions wait for a block, the node admits new ones "
            f"below {limit.max_final_bytes} bytes"
        )
    else:
        why = (
            f"{len(mempool)} transactions ({mempool.bytes} bytes) pending finality, the node admits "
            f"new ones below {limit.max_txs} ({limit.max_bytes} bytes)"
        )
    error = RPCError(MEMPOOL_OVERLOADED, f"{OVERLOADED}: {why}; retry later")
    return limit.room(mempool, final_bytes), error


def _rejection(node: Node, v: Admission) -> RPCError:
    if v.code in MISSING_INPUT_CODES and v.txid is not None and node.txindex.locate(v.txid) is not None:
        return RPCError(VERIFY_ALREADY_IN_CHAIN, "Transaction already in block chain")
    if v.code == "bad-encoding":
        return RPCError(DESERIALIZATION_ERROR, f"TX decode failed: {v.message}")
    code = VERIFY_ERROR if v.code in MISSING_INPUT_CODES else VERIFY_REJECTED
    return RPCError(code, f"{v.code}: {v.message}" if v.message else v.code)


@dataclass(frozen=True, slots=True)
class Submitted:
    """One transaction's verdict from :func:`submit_raw_transactions`: its txid (None when it
    does not decode or was not looked at), whether it was accepted (or was already pending or
    final: no error), and otherwise the RPC error ``sendrawtransaction`` gives for it."""

    txid: bytes | None
    accepted: bool
    reject: RPCError | None


def check_batch_length(count: int) -> None:
    """``INVALID_PARAMETER`` when a batch of ``count`` transactions is over :data:`MAX_BATCH`."""
    if count > MAX_BATCH:
        raise RPCError(INVALID_PARAMETER, str(BatchTooLong(count, MAX_BATCH)))


def submit_raw_transactions(node: Node, raws: list[bytes]) -> list[Submitted]:
    """Consensus admission of encoded transactions from an RPC client, one verdict each in
    order: the one admission path of ``sendrawtransaction``, ``sendrawtransactions`` and the
    binary ``POST /rawtransactions`` (:mod:`timecoin.rpc.server`), so they behave alike.

    Raises ``INVALID_PARAMETER`` for more than :data:`MAX_BATCH` transactions and
    ``MEMPOOL_OVERLOADED`` (-32001) when the admission limit leaves no room at all, both before
    anything is looked at. Otherwise admits as many as the room allows, in order (one
    ``Node.accept_transactions`` call: one admission and one relay for all); each one past the
    room answers ``Submitted(None, False, <-32001 error>)`` and was not looked at."""
    check_batch_length(len(raws))
    room, overloaded = _admission_room(node)
    if room < len(raws):  # counted by reason as admission's own refusals are (node._admit)
        node.consensus_metrics.admission_refused("rpc", OVERLOADED, len(raws) - max(room, 0))
    if room < 1:
        raise overloaded
    out = []
    for v in node.accept_transactions(raws[:room]):
        ok = v.accepted or v.code in ALREADY_KNOWN
        out.append(Submitted(v.txid, ok, None if ok else _rejection(node, v)))
    refused = Submitted(None, False, overloaded)
    out.extend(refused for _ in raws[room:])
    return out


@rpc_method(CATEGORY, Param("hexstring", "hex", "The encoded, signed transaction, hex."))
def sendrawtransaction(node: Node, hexstring: str) -> str:
    """Submits a transaction for finality voting (consensus admission: the mempool's rules, then
    finality's) and relays it; returns its txid. A transaction already pending or final is no
    error (its txid is returned); see ``gettransactionfinality`` for its finality.
    ``MEMPOOL_OVERLOADED`` (-32001) when the node's pending work is at its admission limit."""
    raw = _decode_hex_tx(node, hexstring)
    (s,) = submit_raw_transactions(node, [raw])
    if s.reject is not None:
        raise s.reject
    assert s.txid is not None
    return s.txid.hex()


def parse_hexstrings(hexstrings: list[Any]) -> list[bytes]:
    """The bytes of ``sendrawtransactions``' ``hexstrings``; ``INVALID_PARAMETER`` naming the
    first item that is not a hex string (nothing is admitted then)."""
    raws = []
    for i, h in enumerate(hexstrings):
        if not isinstance(h, str):
            raise RPCError(INVALID_PARAMETER, f"hexstrings[{i}] must be a string")
        raws.append(parse_hex(f"hexstrings[{i}]", h))
    return raws


@rpc_method(CATEGORY, Param("hexstrings", "array", "Encoded, signed transactions, hex."))
def sendrawtransactions(node: Node, hexstrings: list[Any]) -> list[dict[str, Any]]:
    """Submits many transactions in one batch (load generation): one consensus admission and one
    relay for all. Returns, per transaction in order, ``{"txid", "accepted", "reject"}`` with
    ``reject`` ``{"code", "reason"}`` (the RPC error ``sendrawtransaction`` would give) or null.
    Beyond the admission limit's room, the remaining transactions are not looked at: each
    answers ``{"txid": null, "accepted": false, "reject": {"code": -32001, ...}}``; with no room
    at all the call fails with ``MEMPOOL_OVERLOADED`` (-32001). At most MAX_BATCH (100,000)
    transactions (``INVALID_PARAMETER``). ``POST /rawtransactions`` takes the same batch as raw bytes."""
    check_batch_length(len(hexstrings))
    return [
        {
            "txid": s.txid.hex() if s.txid is not None else None,
            "accepted": s.accepted,
            "reject": None if s.reject is None else {"code": s.reject.code, "reason": s.reject.message},
        }
        for s in submit_raw_transactions(node, parse_hexstrings(hexstrings))
    ]
