"""RPC methods over the P2P network (Bitcoin Core's "network" category)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import timecoin
from timecoin.p2p.messages import PROTOCOL_VERSION
from timecoin.rpc import render
from timecoin.rpc.errors import CLIENT_P2P_DISABLED, RPCError
from timecoin.rpc.methods import rpc_method

if TYPE_CHECKING:
    from timecoin.node import Node
    from timecoin.p2p import P2PService

CATEGORY = "Network"


def _p2p(node: Node) -> P2PService:
    if node.p2p is None:
        raise RPCError(CLIENT_P2P_DISABLED, "P2P networking is not running on this node")
    return node.p2p


def _peers(node: Node) -> list[dict[str, Any]]:
    return [render.jsonable(p) for p in _p2p(node).peer_info()]


def _status_heights(node: Node) -> dict[str, int]:
    """Masternode key (hex) → the tip height of its last signed consensus status (DESIGN §7,
    "slot synchronization"; each masternode broadcasts one at every new height)."""
    if node.consensus is None:
        return {}
    tips = node.consensus.engine.bft.peer_tips
    return {key.hex(): height for key, (height, _) in tips.items()}


@rpc_method(CATEGORY)
def getpeerinfo(node: Node) -> list[dict[str, Any]]:
    """Every connected peer: id, address, direction, node key, masternode, height, ping, bytes
    sent and received, reputation. ``height`` is the highest tip the peer is known to have: its
    handshake and block announcements, and for a masternode peer its last signed consensus
    status (masternodes learn blocks from consensus and announce none to each other).
    ``pingtime`` is the last ping's round trip in seconds (a first ping goes out within a second
    of the handshake; null until it is answered)."""
    peers = _peers(node)
    heights = _status_heights(node)
    for peer in peers:
        key = peer.get("masternode")
        if isinstance(key, str) and key in heights:
            peer["height"] = max(int(peer.get("height") or 0), heights[key])
    return peers


@rpc_method(CATEGORY)
def getconnectioncount(node: Node) -> int:
    """Number of peers with an established connection (handshake done)."""
    return sum(1 for p in _p2p(node).peer_info() if p.get("established"))


@rpc_method(CATEGORY)
def getnetworkinfo(node: Node) -> dict[str, Any]:
    """Version, connection counts and listening address of the P2P service."""
    p2p = _p2p(node)
    peers = [p for p in _peers(node) if p.get("established")]
    inbound = sum(1 for p in peers if p.get("inbound"))
    return {
        "version": timecoin.__version__,
        "subversion": f"/timecoin:{timecoin.__version__}/",
        "protocolversion": PROTOCOL_VERSION,
        "network": node.params.name,
        "networkactive": True,
        "node_key": p2p.node_key.hex(),
        "connections": len(peers),
        "connections_in": inbound,
        "connections_out": len(peers) - inbound,
        "localaddresses": [{"address": node.config.listen, "port": p2p.bound_port}],
        "masternode": node.masternode_secret is not None,
        "warnings": "",
    }
