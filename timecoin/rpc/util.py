"""Utility RPC methods (Bitcoin Core's "util" category)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from timecoin.core.address import ADDRESS_VERSION, AddressError, decode_address
from timecoin.rpc.methods import Param, rpc_method

if TYPE_CHECKING:
    from timecoin.node import Node

CATEGORY = "Util"


@rpc_method(CATEGORY, Param("address", "str", "The address to check."), warmup_ok=True)
def validateaddress(node: Node, address: str) -> dict[str, Any]:
    """Whether ``address`` is a valid address of this node's network (bech32m, DESIGN §3), with
    its public key hash; ``error`` says what is wrong with an invalid one."""
    try:
        key_hash = decode_address(address, node.params)
    except AddressError as e:
        return {"isvalid": False, "error": str(e)}
    return {
        "isvalid": True,
        "address": address,
        "network": node.params.name,
        "version": ADDRESS_VERSION,
        "pubkey_hash": key_hash.hex(),
    }
