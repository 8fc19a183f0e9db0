"""RPC methods over the mempool (Bitcoin Core's "blockchain" mempool calls)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from timecoin.rpc import render
from timecoin.rpc.methods import Param, rpc_method

if TYPE_CHECKING:
    from timecoin.node import Node

CATEGORY = "Mempool"


@rpc_method(CATEGORY)
def getmempoolinfo(node: Node) -> dict[str, Any]:
    """Size of the mempool, its limits (DESIGN §4) and the minimum fee rule: ``minfee_base_sat``
    plus ``minfee_per_mille`` thousandths of the value sent to others (outputs paying no address
    an input spends from; docs/encoding.md, "Validity").

    Bitcoin Core's fields where they mean something here: ``loaded`` (always true: the mempool
    is not persisted), ``size`` (transactions), ``bytes`` (their encoded size), ``total_fee``
    (TIME) and ``total_fee_sat`` (the fees they pay), ``maxmempool`` (bytes). Core's ``usage``,
    ``mempoolminfee``, ``minrelaytxfee`` and ``unbroadcastcount`` are absent: no separate
    memory accounting, no fee-rate floor (the fee rule above is per transaction), and every
    admitted transaction is relayed at once."""
    mempool, params = node.mempool, node.params
    total_fee = sum(e.fee for e in mempool.entries())
    return {
        "loaded": True,
        "size": len(mempool),
        "bytes": mempool.bytes,
        "total_fee": render.amount(total_fee),
        "total_fee_sat": total_fee,
        "maxmempool": params.mempool_max_bytes,
        "maxmempooltxs": params.mempool_max_txs,
        "minfee_base_sat": params.min_fee_base,
        "minfee_per_mille": params.min_fee_per_mille,
        "minfee_applies_to": "sent_to_others",
        "dust_limit_sat": params.dust_limit,
    }


@rpc_method(
    CATEGORY,
    Param("verbose", "bool", "false: txids; true: an object per txid with size, fee and time.", False, False),
)
def getrawmempool(node: Node, verbose: bool) -> Any:
    """The pending transactions, in arrival order."""
    entries = node.mempool.entries()
    if not verbose:
        return [e.txid.hex() for e in entries]
    # Entries carry monotonic arrival times; shown as unix seconds.
    offset = time.time() - time.monotonic()
    return {
        e.txid.hex(): {
            "size": e.size,
            "fee": render.amount(e.fee),
            "fee_sat": e.fee,
            "time": int(e.added + offset),
            "spends": len(e.inputs),
        }
        for e in entries
    }
