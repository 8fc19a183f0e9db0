"""Generates the codec golden vectors (transactions.json, blocks.json) with the pure-Python
reference codec (:mod:`timecoin.reference.codec`) and reference crypto only, so the vectors do
not come from the code they check.

Run ``python tests/vectors/generate.py`` from the repository root to rewrite the files; the tests
also rebuild them in memory and compare, so a stale file fails.

These are *encoding* vectors: every field is well-formed, signatures really sign their sighash,
merkle roots are real, but the blocks are not valid chain blocks (the UTXO set hash and the VRF
proof/output are fixed filler, amounts are not balanced against any coins).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from timecoin.reference import codec, crypto

HERE = Path(__file__).resolve().parent
NETWORK = 1
"""Testnet (docs/encoding.md, "Signatures")."""


def seed(label: str) -> bytes:
    """A fixed 32-byte Ed25519 seed."""
    return crypto.blake3(b"timecoin test vector seed: " + label.encode())


def filler(label: str, n: int) -> bytes:
    """``n`` fixed bytes standing for a field whose content the codec does not interpret."""
    out = b""
    counter = 0
    while len(out) < n:
        out += crypto.blake3(f"timecoin test vector filler: {label} {counter}".encode())
        counter += 1
    return out[:n]


def pubkey_hash(label: str) -> bytes:
    return crypto.hash_in("public_key", crypto.public_key(seed(label)))


def outpoint(label: str, vout: int) -> tuple[bytes, int]:
    return (filler("txid " + label, 32), vout)


def _tx_json(name: str, description: str, fields: tuple[Any, ...], keys: list[str], chain_id: bytes) -> dict:
    version, kind, inputs, outputs, lock_time, payload, witnesses = fields
    encoding = codec.encode_transaction(fields)
    txid = codec.txid(encoding)
    return {
        "name": name,
        "description": description,
        "secret_key_labels": keys,
        "secret_keys": [seed(k).hex() for k in keys],
        "fields": {
            "version": version,
            "kind": kind,
            "inputs": [{"txid": t.hex(), "vout": v} for t, v in inputs],
            "outputs": [{"value": v, "pubkey_hash": h.hex()} for v, h in outputs],
            "lock_time": lock_time,
            "payload": payload.hex(),
            "witnesses": [{"public_key": p.hex(), "signature": s.hex()} for p, s in witnesses],
        },
        "encoding": encoding.hex(),
        "txid": txid.hex(),
        "sighashes": [codec.sighash(chain_id, NETWORK, txid, i).hex() for i in range(len(witnesses))],
    }


def _signed(fields: tuple[Any, ...], keys: list[str], chain_id: bytes) -> tuple[Any, ...]:
    unsigned = codec.encode_transaction(fields[:6] + ((),))
    (signed,) = codec.sign_transactions(
        unsigned,
        len(unsigned).to_bytes(4, "little"),
        b"".join(seed(k) for k in keys),
        len(keys).to_bytes(4, "little"),
        chain_id,
        NETWORK,
    )
    return codec.decode_transaction(signed)


def _header(height: int, prev_hash: bytes, txids: list[bytes], round_: int) -> tuple[Any, ...]:
    return (
        1,
        height,
        prev_hash,
        crypto.merkle_root(txids),
        filler(f"utxo_set_hash {height}", 32),
        1_767_225_600 + height,  # 2026-01-01T00:00:00Z + height seconds
        crypto.public_key(seed(f"proposer {height}")),
        filler(f"vrf_proof {height}", 80),
        filler(f"vrf_output {height}", 64),
        round_,
    )


def _block_json(name: str, description: str, header: tuple[Any, ...], txs: list[dict]) -> dict:
    tx_fields = [codec.decode_transaction(bytes.fromhex(t["encoding"])) for t in txs]
    encoding = codec.encode_block((header, tx_fields))
    header_bytes = codec.encode_block_header(header)
    names = ("version", "height", "prev_hash", "merkle_root", "utxo_set_hash", "timestamp",
             "proposer", "vrf_proof", "vrf_output", "round")  # fmt: skip
    return {
        "name": name,
        "description": description,
        "header": {n: (v.hex() if isinstance(v, bytes) else v) for n, v in zip(names, header, strict=True)},
        "header_encoding": header_bytes.hex(),
        "hash": codec.block_hash(header_bytes).hex(),
        "transactions": [t["name"] for t in txs],
        "txids": [t["txid"] for t in txs],
        "merkle_root": header[3].hex(),
        "encoding": encoding.hex(),
    }


def coinbase(height: int, payee: str, value: int) -> tuple[Any, ...]:
    return (1, 1, (), ((value, pubkey_hash(payee)),), 0, height.to_bytes(8, "little"), ())


def build() -> tuple[dict, dict]:
    """(transactions.json, blocks.json) contents."""
    genesis_coinbase = _tx_json(
        "genesis_coinbase", "coinbase of block 0 (not signed: coinbases have no witnesses)",
        coinbase(0, "alice", 5_000_000_000), [], bytes(32),
    )  # fmt: skip
    genesis_header = _header(0, bytes(32), [bytes.fromhex(genesis_coinbase["txid"])], 0)
    chain_id = codec.block_hash(codec.encode_block_header(genesis_header))

    transfer = _signed(
        (1, 0, (outpoint("a", 0), outpoint("b", 3)),
         ((1_500_000_000, pubkey_hash("carol")), (3_499_990_000, pubkey_hash("alice"))), 0, b"", ()),
        ["alice", "bob"], chain_id,
    )  # fmt: skip
    coinbase_1 = coinbase(1, "miner", 5_000_010_000)
    register_payload = (
        codec.encode_outpoint(outpoint("collateral", 1))
        + crypto.public_key(seed("masternode"))
        + pubkey_hash("payout")
    )
    register = _signed(
        (1, 2, (outpoint("fee", 0),), ((990_000, pubkey_hash("alice")),), 0, register_payload, ()),
        ["alice", "masternode", "collateral owner"], chain_id,
    )  # fmt: skip
    deregister = _signed(
        (1, 3, (), (), 0, codec.encode_outpoint(outpoint("collateral", 1)), ()),
        ["collateral owner"], chain_id,
    )  # fmt: skip
    payout = _signed(
        (1, 4, (), (), 17, codec.encode_outpoint(outpoint("collateral", 1)) + pubkey_hash("new payout"), ()),
        ["collateral owner"], chain_id,
    )  # fmt: skip

    txs = [
        genesis_coinbase,
        _tx_json("coinbase_height_1", "coinbase of block 1, one output", coinbase_1, [], chain_id),
        _tx_json(
            "transfer_2in_2out",
            "transfer, 2 inputs, 2 outputs, witnesses by alice then bob",
            transfer,
            ["alice", "bob"],
            chain_id,
        ),  # fmt: skip
        _tx_json(
            "masternode_register",
            "register: 1 fee input; witnesses: input owner, masternode key, collateral owner",
            register,
            ["alice", "masternode", "collateral owner"],
            chain_id,
        ),  # fmt: skip
        _tx_json(
            "masternode_deregister",
            "deregister: no inputs; witness: collateral owner",
            deregister,
            ["collateral owner"],
            chain_id,
        ),  # fmt: skip
        _tx_json(
            "masternode_payout",
            "payout change, lock_time 17; witness: collateral owner",
            payout,
            ["collateral owner"],
            chain_id,
        ),  # fmt: skip
    ]
    by_name = {t["name"]: t for t in txs}
    genesis = _block_json("genesis", "block 0: the chain id is its hash", genesis_header, [genesis_coinbase])
    block_1_txs = [by_name["coinbase_height_1"], by_name["transfer_2in_2out"], by_name["masternode_register"]]
    header_1 = _header(1, chain_id, [bytes.fromhex(t["txid"]) for t in block_1_txs], 2)
    block_1 = _block_json(
        "block_1", "block 1: coinbase, transfer, masternode register", header_1, block_1_txs
    )

    common = {"spec": "docs/encoding.md", "chain_id": chain_id.hex(), "network": NETWORK}
    return {**common, "transactions": txs}, {**common, "blocks": [genesis, block_1]}


def dumps(doc: dict) -> str:
    return json.dumps(doc, indent=2) + "\n"


def main() -> int:
    transactions, blocks = build()
    (HERE / "transactions.json").write_text(dumps(transactions))
    (HERE / "blocks.json").write_text(dumps(blocks))
    print(f"wrote {HERE / 'transactions.json'} and {HERE / 'blocks.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
