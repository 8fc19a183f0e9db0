"""The wire format of binary transaction submission (``POST /rawtransactions``, issue 13 item 8):
the request body, the reply body and the HTTP constants, shared by the server
(:mod:`timecoin.rpc.server`) and the clients (:mod:`timecoin.rpc.client`, the load test's
:class:`timecoin.loadtest.submitter.AsyncRPC`). docs/operator.md, "Binary submission".

**Request body** (``Content-Type: application/octet-stream``): the P2P ``TX_BATCH`` layout of
:func:`timecoin.p2p.messages.encode_items` (one codec for batches of encoded transactions, not a
second one), ``count u32 ‖ (length u32 ‖ transaction)*``, little-endian, each transaction in its
canonical encoding (docs/encoding.md). Decoded strictly: a count of 0 or over the batch limit, a
zero length, a length past the body or trailing bytes are errors; nothing is allocated before
the count is checked against the limit and the body's size.

**Reply body** (``application/json``): ``{"txids": [txid hex | null, ...], "rejects": [[index,
code, reason], ...]}``, one txid per transaction in order (null when it did not decode or was not
looked at) and one row per transaction not accepted, in order, carrying the RPC error code and
message ``sendrawtransaction`` would give for it. A transaction without a row was accepted (or
was already pending or final): exactly ``sendrawtransactions``' ``{"txid", "accepted",
"reject"}`` items, in a form that costs a few bytes per accepted transaction.

This module never admits anything: it only encodes and decodes.
"""

from __future__ import annotations

import struct
from typing import Any

import orjson

from timecoin.p2p.messages import decode_items, encode_items

__all__ = [
    "CONTENT_TYPE",
    "PATH",
    "BatchTooLong",
    "decode_batch",
    "decode_reply",
    "encode_batch",
    "encode_reply",
    "expand_reply",
]

PATH = "/rawtransactions"
"""The endpoint, beside JSON-RPC's ``/`` on the same port."""
CONTENT_TYPE = "application/octet-stream"
"""The only media type the endpoint takes (else HTTP 415)."""
_COUNT = struct.Struct("<I")
_BATCH_NAME = "rawtransactions body"


class BatchTooLong(ValueError):
    """A well-framed count above the batch limit; ``count`` is what the body declared."""

    def __init__(self, count: int, limit: int) -> None:
        super().__init__(f"{count} transactions exceed the batch limit of {limit}")
        self.count = count
        self.limit = limit


def encode_batch(raws: list[bytes]) -> bytes:
    """The request body for encoded transactions ``raws`` (``count u32 ‖ (length u32 ‖ tx)*``).
    ``ValueError`` for no transaction or an empty one: the server would refuse both."""
    if not raws:
        raise ValueError("a rawtransactions batch holds at least one transaction")
    if not all(raws):
        raise ValueError("a rawtransactions batch holds no empty transaction")
    return encode_items(raws)


def decode_batch(body: bytes, max_items: int) -> list[bytes]:
    """The encoded transactions of a request body, in order. :class:`BatchTooLong` when the
    count is above ``max_items`` (checked first: nothing is decoded); ``ValueError`` saying what
    is wrong for any other malformed body (no count, a count of 0 or past the body, a zero
    length, a length past the body, trailing bytes). Items are bounded by the body only: an
    oversize transaction gets its own verdict from admission, as with ``sendrawtransactions``."""
    if len(body) >= _COUNT.size:
        count = _COUNT.unpack_from(body)[0]
        if count > max_items:
            raise BatchTooLong(count, max_items)
    return decode_items(body, max_items, len(body), _BATCH_NAME)


def encode_reply(txids: list[str | None], rejects: list[tuple[int, int, str]]) -> bytes:
    """The reply body: ``txids`` (hex or None) per transaction, ``rejects`` as
    ``(index, RPC error code, message)`` per transaction not accepted, by index."""
    return orjson.dumps({"txids": txids, "rejects": rejects})


def decode_reply(body: bytes, count: int) -> tuple[list[str | None], dict[int, tuple[int, str]]]:
    """(txid hex or None per transaction, {index: (code, reason)} of those not accepted) of a
    reply to ``count`` transactions. ``ValueError`` if it is not that reply (not JSON, another
    shape, another length, an index out of range or twice, an accepted transaction without a
    txid)."""
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as e:
        raise ValueError(f"rawtransactions reply is not JSON: {e}") from None
    txids = doc.get("txids") if isinstance(doc, dict) else None
    rows = doc.get("rejects") if isinstance(doc, dict) else None
    if not isinstance(txids, list) or not isinstance(rows, list) or len(txids) != count:
        raise ValueError(f"rawtransactions reply does not answer {count} transactions: {body[:200]!r}")
    rejects: dict[int, tuple[int, str]] = {}
    for row in rows:
        if not (
            isinstance(row, list) and len(row) == 3 and isinstance(row[0], int) and isinstance(row[1], int)
        ):
            raise ValueError(f"rawtransactions reply has a malformed reject row {row!r:.200}")
        index, code, reason = row
        if not 0 <= index < count or index in rejects:
            raise ValueError(
                f"rawtransactions reply rejects index {index} (of {count}) out of range or twice"
            )
        rejects[index] = (code, str(reason))
    for i, txid in enumerate(txids):
        if not (isinstance(txid, str) or (txid is None and i in rejects)):
            raise ValueError(f"rawtransactions reply has no txid for accepted transaction {i}: {txid!r:.100}")
    return txids, rejects


def expand_reply(txids: list[str | None], rejects: dict[int, tuple[int, str]]) -> list[dict[str, Any]]:
    """The decoded reply as ``sendrawtransactions`` gives it: ``{"txid", "accepted", "reject":
    {"code", "reason"} | None}`` per transaction, in order."""
    out: list[dict[str, Any]] = []
    for i, txid in enumerate(txids):
        reject = rejects.get(i)
        out.append(
            {
                "txid": txid,
                "accepted": reject is None,
                "reject": None if reject is None else {"code": reject[0], "reason": reject[1]},
            }
        )
    return out
