"""JSON-RPC error codes: JSON-RPC 2.0's own, then Bitcoin Core's (``src/rpc/protocol.h``), so
tools written for Bitcoin Core read ours the same way (DESIGN §10).

Every method failure is an :class:`RPCError` with one of these codes and a message for humans.
"""

from __future__ import annotations

# JSON-RPC 2.0 (https://www.jsonrpc.org/specification, "Error object").
PARSE_ERROR = -32700
"""The body is not JSON."""
INVALID_REQUEST = -32600
"""JSON, but not a request object (or an empty batch, or a body over the size limit)."""
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
"""Wrong number of parameters, an unknown named parameter, or a parameter of the wrong JSON type."""
INTERNAL_ERROR = -32603
SERVER_OVERLOADED = -32000
"""In JSON-RPC's server-error range: every worker busy and the wait queue full (HTTP 503)."""
RESPONSE_TOO_LARGE = -32003
"""In JSON-RPC's server-error range: a batch's replies passed the server's reply cap, so this
request was not run (geth's code for the same limit; Bitcoin Core has none)."""
MEMPOOL_OVERLOADED = -32001
"""In JSON-RPC's server-error range: the node's pending transactions reached its admission limit
(DESIGN §13); nothing was admitted, retry later. Bitcoin Core has no such code (its full mempool
is a -26 rejection, which a client must not retry)."""

# Bitcoin Core (src/rpc/protocol.h, RPCErrorCode).
MISC_ERROR = -1
TYPE_ERROR = -3
INVALID_ADDRESS_OR_KEY = -5
"""Not found: no such block, transaction or address."""
OUT_OF_MEMORY = -7
INVALID_PARAMETER = -8
"""A parameter of the right type with a value that cannot be used (bad hex, out of range)."""
DATABASE_ERROR = -20
DESERIALIZATION_ERROR = -22
"""Bytes that do not decode as the transaction or block they claim to be."""
VERIFY_ERROR = -25
"""A transaction that spends a missing or spent coin."""
VERIFY_REJECTED = -26
"""A transaction rejected by the ledger rules or the mempool policy; the message starts with
the stable reject code."""
VERIFY_ALREADY_IN_CHAIN = -27
IN_WARMUP = -28
"""The node is still starting; the message says what it is doing."""
CLIENT_NOT_CONNECTED = -9
CLIENT_P2P_DISABLED = -31
"""The node runs without its P2P service, so peer information does not exist."""


class RPCError(Exception):
    """A method failure reported to the client as ``{"code": code, "message": message}``."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(f"{message} (code {code})")
        self.code = code
        self.message = message

    def to_json(self) -> dict[str, object]:
        return {"code": self.code, "message": self.message}
