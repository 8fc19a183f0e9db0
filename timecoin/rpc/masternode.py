"""RPC methods of the masternode set (``masternodelist``, ``masternodestatus``; DESIGN §5, §10).

Rows come from :mod:`timecoin.masternode.status`: the registry's set for the next height, with
liveness from the node's heartbeat tracker (never part of validity, invariant 7).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from timecoin.masternode.status import masternode_list, masternode_status
from timecoin.rpc import render
from timecoin.rpc.errors import INVALID_PARAMETER, RPCError
from timecoin.rpc.methods import Param, parse_hex, rpc_method

if TYPE_CHECKING:
    from timecoin.node import Node

CATEGORY = "Masternode"


def _tracker(node: Node) -> Any:
    return node.liveness.tracker if node.liveness is not None else None


@rpc_method(CATEGORY)
def masternodelist(node: Node) -> list[dict[str, Any]]:
    """Every masternode of the next height's set: public key, tier, collateral (outpoint and
    ``collateral_sat``), weight and its parts, registered height, last seen (integer unix
    seconds), online, last paid height, eligibility. ``timecoin-cli`` shows a compact table on a
    terminal (id, tier, status, weight, last seen); ``-json`` prints these rows."""
    return [render.jsonable(row) for row in masternode_list(node.chain, _tracker(node))]


@rpc_method(
    CATEGORY, Param("public_key", "hex", "Masternode public key (64 hex digits); default: ours.", False)
)
def masternodestatus(node: Node, public_key: str | None) -> dict[str, Any]:
    """Status of one masternode (ours when this node runs with a masternode key): a
    ``masternodelist`` row, or the reason it is not registered/eligible."""
    if public_key is None:
        if node.liveness is None or node.liveness.public_key is None:
            raise RPCError(INVALID_PARAMETER, "this node runs no masternode key: give public_key")
        key = node.liveness.public_key
    else:
        key = parse_hex("public_key", public_key)
        if len(key) != 32:
            raise RPCError(INVALID_PARAMETER, f"public_key must be 32 bytes, got {len(key)}")
    return render.jsonable(masternode_status(node.chain, key, _tracker(node)))
