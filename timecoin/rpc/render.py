"""JSON shapes of transactions, blocks, headers and coins, as the RPC methods return them.

Pure functions over bytes and decoded objects: no node state, so the large ones (a block of 10k
transactions) run on a worker thread off the event loop. Hashes are plain hex in byte order (no
Bitcoin-style reversal). Amounts are given twice: ``value`` in TIME (a JSON number with at most 8
decimals) and ``value_sat`` as an exact integer.
"""

from __future__ import annotations

from typing import Any

import timecoin_native

from timecoin.core.address import encode_address
from timecoin.core.types import HEADER_LEN, Block, BlockHeader, Coin, OutPoint, Transaction, TxKind
from timecoin.params import COIN, NetworkParams
from timecoin.store.txindex import transaction_spans


def amount(sat: int) -> float:
    """sat → TIME as a JSON number. Exact for any amount below 2^53 sat (90 million TIME)."""
    return sat / COIN


def _outpoint(o: OutPoint) -> dict[str, Any]:
    return {"txid": o.txid.hex(), "vout": o.vout}


def payload_json(tx: Transaction, params: NetworkParams) -> dict[str, Any] | None:
    """The kind-specific payload of a transaction (docs/encoding.md, "Payloads by kind")."""
    if tx.kind is TxKind.COINBASE:
        return {"height": tx.coinbase_height}
    if tx.kind is TxKind.MASTERNODE_REGISTER:
        r = tx.masternode_registration
        return {
            "collateral": _outpoint(r.collateral),
            "masternode_key": r.masternode_key.hex(),
            "payout_address": encode_address(r.payout_pubkey_hash, params),
        }
    if tx.kind is TxKind.MASTERNODE_DEREGISTER:
        return {"collateral": _outpoint(tx.masternode_deregistration.collateral)}
    if tx.kind is TxKind.MASTERNODE_PAYOUT:
        p = tx.masternode_payout_change
        return {
            "collateral": _outpoint(p.collateral),
            "payout_address": encode_address(p.payout_pubkey_hash, params),
        }
    return None


def transaction_json(tx: Transaction, size: int, params: NetworkParams) -> dict[str, Any]:
    """A decoded transaction: txid, size (bytes), kind, inputs, outputs, payload, witnesses."""
    return {
        "txid": tx.txid.hex(),
        "size": size,
        "version": tx.version,
        "kind": tx.kind.name.lower(),
        "locktime": tx.lock_time,
        "vin": [_outpoint(i) for i in tx.inputs],
        "vout": [
            {
                "n": n,
                "value": amount(o.value),
                "value_sat": o.value,
                "address": encode_address(o.pubkey_hash, params),
                "pubkey_hash": o.pubkey_hash.hex(),
            }
            for n, o in enumerate(tx.outputs)
        ],
        "payload": payload_json(tx, params),
        "witnesses": [
            {"public_key": w.public_key.hex(), "signature": w.signature.hex()} for w in tx.witnesses
        ],
    }


def decode_transaction_json(raw: bytes, params: NetworkParams) -> dict[str, Any]:
    """:func:`transaction_json` of an encoded transaction; ``ValueError`` if it does not decode."""
    return transaction_json(Transaction.decode(raw), len(raw), params)


def header_json(header: BlockHeader, size: int | None = None) -> dict[str, Any]:
    """A block header's fields (and the block's size in bytes, if known)."""
    out: dict[str, Any] = {
        "hash": header.hash.hex(),
        "height": header.height,
        "version": header.version,
        "previousblockhash": header.prev_hash.hex(),
        "merkleroot": header.merkle_root.hex(),
        "utxosethash": header.utxo_set_hash.hex(),
        "time": header.timestamp,
        "proposer": header.proposer.hex(),
        "vrf_output": header.vrf_output.hex(),
        "vrf_proof": header.vrf_proof.hex(),
        "round": header.round,
    }
    if size is not None:
        out["size"] = size
    return out


def block_json(raw: bytes, verbosity: int, params: NetworkParams) -> dict[str, Any]:
    """A committed block: header fields, ``nTx`` and ``tx`` as txids (verbosity 1, read from
    the transaction spans without decoding them) or as decoded transactions (verbosity 2)."""
    header = BlockHeader.decode(raw[:HEADER_LEN])
    out = header_json(header, len(raw))
    if verbosity >= 2:
        block = Block.decode(raw)
        spans = transaction_spans(raw)
        out["nTx"] = len(block.transactions)
        out["tx"] = [
            transaction_json(tx, n, params) for tx, (_, n) in zip(block.transactions, spans, strict=True)
        ]
    else:
        spans = transaction_spans(raw)
        out["nTx"] = len(spans)
        out["tx"] = [t.hex() for t in timecoin_native.txids([raw[o : o + n] for o, n in spans])]
    return out


def coin_json(coin: Coin, params: NetworkParams) -> dict[str, Any]:
    """An unspent output: value, owner, creating height and whether a coinbase made it."""
    return {
        "value": amount(coin.value),
        "value_sat": coin.value,
        "address": encode_address(coin.pubkey_hash, params),
        "pubkey_hash": coin.pubkey_hash.hex(),
        "height": coin.height,
        "coinbase": coin.is_coinbase,
    }


def jsonable(value: Any) -> Any:
    """``value`` with bytes as hex and tuples as lists, recursively (for dicts from services)."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).hex()
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    return value
