"""RPC methods over the committed chain (Bitcoin Core's "blockchain" category).

Lookups read the store and the in-memory UTXO set on the event loop; rendering a whole block and
summing the UTXO set run on worker threads over immutable bytes (see :mod:`timecoin.node`).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import timecoin_native

from timecoin.consensus.certificates import CertificateError, verify_commit_certificate
from timecoin.core.types import HEADER_LEN, BlockHeader, Coin, OutPoint
from timecoin.rpc import render
from timecoin.rpc.errors import (
    DATABASE_ERROR,
    DESERIALIZATION_ERROR,
    INVALID_ADDRESS_OR_KEY,
    INVALID_PARAMETER,
    RPCError,
)
from timecoin.rpc.methods import Param, parse_hash, parse_hex, rpc_method

if TYPE_CHECKING:
    from timecoin.node import Node

CATEGORY = "Blockchain"
U32_MAX = 2**32 - 1


def _sync_status(node: Node) -> dict[str, Any] | None:
    return render.jsonable(node.p2p.sync_status()) if node.p2p is not None else None


@rpc_method(CATEGORY)
def getblockchaininfo(node: Node) -> dict[str, Any]:
    """State of the chain: network, height, best block, UTXO set hash, sync progress, disk size.

    ``sync`` is the P2P sync status (height, target, blocks_per_s, eta_s, syncing), null when the
    node runs without P2P; ``headers`` is the highest height known from peers.
    """
    chain = node.chain
    header = chain.tip_header
    sync = _sync_status(node)
    target = max(header.height, int(sync.get("target") or 0)) if sync else header.height
    return {
        "chain": node.params.name,
        "blocks": header.height,
        "headers": target,
        "bestblockhash": header.hash.hex(),
        "time": header.timestamp,
        "utxosethash": header.utxo_set_hash.hex(),
        "genesis": chain.genesis.hash.hex(),
        "initialblockdownload": bool(sync.get("syncing")) if sync else False,
        "verificationprogress": header.height / target if target else 1.0,
        "sync": sync,
        "size_on_disk": chain.store.size_bytes(),
        "warnings": "",
    }


@rpc_method(CATEGORY)
def getblockcount(node: Node) -> int:
    """Height of the tip (the genesis block is height 0)."""
    return node.chain.tip.height


@rpc_method(CATEGORY)
def getbestblockhash(node: Node) -> str:
    """Hash of the tip block, hex."""
    return node.chain.tip.block_hash.hex()


@rpc_method(CATEGORY, Param("height", "int", "Block height."))
def getblockhash(node: Node, height: int) -> str:
    """Hash of the committed block at ``height``."""
    tip = node.chain.tip.height
    if not 0 <= height <= tip:
        raise RPCError(INVALID_PARAMETER, f"Block height out of range: {height} (tip is {tip})")
    block_hash = node.chain.store.block_hash(height)
    if block_hash is None:
        raise RPCError(INVALID_ADDRESS_OR_KEY, f"Block at height {height} not found")
    return block_hash.hex()


def _block(node: Node, value: str) -> tuple[bytes, bytes]:
    block_hash = parse_hash("blockhash", value)
    raw = node.chain.store.block(block_hash)
    if raw is None:
        damage = node.chain.store.block_damage(block_hash)
        if damage is not None:
            raise RPCError(
                DATABASE_ERROR,
                f"Block {block_hash.hex()} is damaged in this node's store ({damage}); it is not "
                "served: the node's log and `timecoin db check` say what to do",
            )
        raise RPCError(INVALID_ADDRESS_OR_KEY, "Block not found")
    return block_hash, raw


def _chain_position(node: Node, height: int) -> dict[str, Any]:
    out: dict[str, Any] = {"confirmations": node.chain.tip.height - height + 1}
    following = node.chain.store.block_hash(height + 1)
    if following is not None:
        out["nextblockhash"] = following.hex()
    return out


@rpc_method(
    CATEGORY,
    Param("blockhash", "hex", "Block hash."),
    Param("verbose", "bool", "true: a JSON object; false: the 296-byte header in hex.", False, True),
)
def getblockheader(node: Node, blockhash: str, verbose: bool) -> Any:
    """A committed block's header."""
    _, raw = _block(node, blockhash)
    if not verbose:
        return raw[:HEADER_LEN].hex()
    header = BlockHeader.decode(raw[:HEADER_LEN])
    return render.header_json(header, len(raw)) | _chain_position(node, header.height)


@rpc_method(
    CATEGORY,
    Param("blockhash", "hex", "Block hash."),
    Param(
        "verbosity",
        "int_or_bool",
        "0: hex; 1: JSON with txids; 2: JSON with decoded transactions.",
        False,
        1,
    ),
)
async def getblock(node: Node, blockhash: str, verbosity: int | bool) -> Any:
    """A committed block: hex (verbosity 0) or JSON (1: txids, 2: decoded transactions)."""
    level = int(verbosity)
    if level not in (0, 1, 2):
        raise RPCError(INVALID_PARAMETER, f"verbosity must be 0, 1 or 2, got {level}")
    _, raw = _block(node, blockhash)
    if level == 0:
        return raw.hex()
    out = await node.run_in_worker(render.block_json, raw, level, node.params)
    return out | _chain_position(node, out["height"])


@rpc_method(
    CATEGORY,
    Param("txid", "hex", "Transaction id."),
    Param("n", "int", "Output index."),
    Param(
        "include_mempool",
        "bool",
        "Answer null for an output a pending or final (unarchived) transaction spends, and show "
        "outputs of those transactions.",
        False,
        True,
    ),
)
def gettxout(node: Node, txid: str, n: int, include_mempool: bool) -> dict[str, Any] | None:
    """An unspent output, or null if it is spent or never existed."""
    txid_bytes = parse_hash("txid", txid)
    if not 0 <= n <= U32_MAX:
        raise RPCError(INVALID_PARAMETER, f"n must be in 0..{U32_MAX}, got {n}")
    outpoint = OutPoint(txid_bytes, n).encode()
    chain = node.chain
    tip = chain.tip
    if include_mempool and node.spender_of(outpoint) is not None:
        return None
    coin_raw = chain.utxos.get(outpoint)
    if coin_raw is not None:
        coin = Coin.decode(coin_raw)
        return {"bestblock": tip.block_hash.hex(), "confirmations": tip.height - coin.height + 1} | (
            render.coin_json(coin, node.params)
        )
    if include_mempool:
        raw = node.unarchived_transaction(txid_bytes)
        if raw is not None:
            from timecoin.core.types import Transaction

            tx = Transaction.decode(raw)
            if n < len(tx.outputs):
                out = tx.outputs[n]
                pending = Coin(out.value, out.pubkey_hash, tip.height + 1, False)
                return {"bestblock": tip.block_hash.hex(), "confirmations": 0} | render.coin_json(
                    pending, node.params
                )
    return None


@rpc_method(CATEGORY)
async def gettxoutsetinfo(node: Node) -> dict[str, Any]:
    """Statistics of the UTXO set at the tip: count, total amount and the set hash its header
    commits (LtHash, docs/encoding.md). Counted from the set in memory (one native pass)."""
    chain = node.chain
    header = chain.tip_header
    count, total = chain.utxos.totals()
    return {
        "height": header.height,
        "bestblock": header.hash.hex(),
        "txouts": count,
        "total_amount": render.amount(total),
        "total_amount_sat": total,
        "utxosethash": header.utxo_set_hash.hex(),
        "hash_type": "lthash16-blake3",
        "disk_size": chain.store.size_bytes(),
    }


@rpc_method(
    CATEGORY,
    Param("hexdata", "hex", "The encoded block, hex."),
    Param(
        "certificate",
        "hex",
        "Its encoded commit certificate, hex: checked against the masternode set of its height and "
        "stored with it, so that peers can sync the block (a block without one is not served).",
        False,
    ),
)
def submitblock(node: Node, hexdata: str, certificate: str | None = None) -> str | None:
    """Validates a block on the tip (and its commit certificate, if given) and connects it.
    Returns null when connected, ``duplicate`` for a block already in the chain,
    ``bad-certificate`` for a certificate that does not commit it, else the reject code (e.g.
    ``bad-prevblk``)."""
    raw = parse_hex("hexdata", hexdata)
    if len(raw) < HEADER_LEN:
        raise RPCError(
            DESERIALIZATION_ERROR, f"Block decode failed: {len(raw)} bytes, a header alone is {HEADER_LEN}"
        )
    try:
        block_hash = timecoin_native.block_hash(raw[:HEADER_LEN])
    except ValueError as e:
        raise RPCError(DESERIALIZATION_ERROR, f"Block decode failed: {e}") from None
    if node.chain.store.block(block_hash) is not None:
        return "duplicate"
    cert = parse_hex("certificate", certificate) if certificate is not None else None
    height = node.chain.tip.height + 1
    if cert is not None and BlockHeader.decode(raw[:HEADER_LEN]).height == height:
        try:
            verify_commit_certificate(
                cert, block_hash, height, node.chain.leader_set(height), node.chain.genesis.hash
            )
        except CertificateError:
            return "bad-certificate"
    try:
        node.connect_block(raw, cert)
    except timecoin_native.ValidationError as e:
        if e.code == "bad-encoding":
            raise RPCError(DESERIALIZATION_ERROR, f"Block decode failed: {e.message}") from None
        return str(e.code)
    return None


async def _wait_tip(node: Node, reached: Any, timeout_ms: int) -> dict[str, Any]:
    if timeout_ms < 0:
        raise RPCError(INVALID_PARAMETER, f"timeout must be >= 0 ms, got {timeout_ms}")
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_ms / 1000 if timeout_ms else None
    while not reached():
        changed = node.tip_changed
        remaining = None if deadline is None else deadline - loop.time()
        if remaining is not None and remaining <= 0:
            break
        try:
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow a cancellation.
            async with asyncio.timeout(remaining):
                await changed.wait()
        except TimeoutError:
            break
    tip = node.chain.tip
    return {"hash": tip.block_hash.hex(), "height": tip.height}


@rpc_method(CATEGORY, Param("timeout", "int", "Milliseconds to wait; 0 waits for ever.", False, 0))
async def waitfornewblock(node: Node, timeout: int) -> dict[str, Any]:
    """Waits for a new tip (or the timeout) and returns the tip's hash and height."""
    start = node.chain.tip
    return await _wait_tip(node, lambda: node.chain.tip != start, timeout)


@rpc_method(
    CATEGORY,
    Param("height", "int", "Height to wait for."),
    Param("timeout", "int", "Milliseconds to wait; 0 waits for ever.", False, 0),
)
async def waitforblockheight(node: Node, height: int, timeout: int) -> dict[str, Any]:
    """Waits until the tip is at least ``height`` (or the timeout) and returns the tip."""
    return await _wait_tip(node, lambda: node.chain.tip.height >= height, timeout)
