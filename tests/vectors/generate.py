"""Generates the codec golden vectors (transactions.json, blocks.json) and the fee rule vectors
(fees.json) with the pure-Python reference codec (:mod:`timecoin.reference.codec`), reference
crypto and reference UTXO rules (:mod:`timecoin.reference.utxo`) only, so the vectors do not
come from the code they check.

Run ``python tests/vectors/generate.py`` from the repository root to rewrite the files; the tests
also rebuild them in memory and compare, so a stale file fails.

These are *encoding* vectors: every field is well-formed, signatures really sign their sighash,
merkle roots are real, but the blocks are not valid chain blocks (the UTXO set hash and the VRF
proof/output are fixed filler, amounts are not balanced against any coins).
"""

from __future__ import annotations

import json
import struct
import sys
from pathlib import Path
from typing import Any, NamedTuple

from timecoin.reference import codec, crypto
from timecoin.reference import utxo as reference_utxo

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


COIN = 100_000_000
"""sat per TIME (DESIGN §4)."""


class FeeRules(NamedTuple):
    """The ledger rules of the fee vectors: ``NetworkParams``' defaults (timecoin/params.py)."""

    chain_id: bytes
    network: int = NETWORK
    dust_limit: int = 546
    min_fee_base: int = 1_000
    min_fee_per_mille: int = 1
    max_tx_size: int = 1_000_000
    max_block_size: int = 2**31 - 1


def build_fees(chain_id: bytes) -> dict:
    """fees.json contents: transfers over given coins, with the value they send to others, the
    minimum fee, the fee and the reference's verdict (DESIGN §4)."""
    rules = FeeRules(chain_id)
    big = 1_000_000 * COIN

    def case(
        name: str, description: str, coins: list[tuple[str, int]], outputs: list[tuple[int, str]]
    ) -> dict:
        """``coins``: (owner label, value sat), one input each; ``outputs``: (value, payee label)."""
        inputs = tuple(outpoint(f"fee case {name} {i}", i) for i in range(len(coins)))
        entries = [
            (codec.encode_outpoint(op), struct.pack("<Q32sQB", value, pubkey_hash(owner), 7, 0))
            for op, (owner, value) in zip(inputs, coins, strict=True)
        ]
        fields = (1, 0, inputs, tuple((v, pubkey_hash(p)) for v, p in outputs), 0, b"", ())
        tx = _signed(fields, [owner for owner, _ in coins], chain_id)
        encoding = codec.encode_transaction(tx)
        utxos = reference_utxo.UtxoSet()
        utxos.load(entries)
        (verdict,) = utxos.check_transactions([encoding], rules, 8)
        sent = reference_utxo.sent_to_others(tx[3], [coin[8:40] for _, coin in entries])
        return {
            "name": name,
            "description": description,
            "coins": [{"outpoint": k.hex(), "coin": c.hex()} for k, c in entries],
            "outputs": [{"value": v, "pubkey_hash": h.hex()} for v, h in tx[3]],
            "transaction": encoding.hex(),
            "sent_to_others": sent,
            "min_fee": reference_utxo.min_fee(rules, sent),
            "fee": sum(v for _, v in coins) - sum(v for v, _ in outputs),
            "reject": verdict.code,
        }

    pay_fee = 1_000 + COIN // 1000
    change = big - COIN - pay_fee
    big_change = big - 10_000 * COIN - 1_000 - 10 * COIN
    cases = [
        case("pay_1_time_change_back", "1 TIME to carol from a 1,000,000 TIME coin, change to alice: "
             "1,000 sat + 0.1 % of 1 TIME", [("alice", big)], [(COIN, "carol"), (change, "alice")]),
        case("pay_1_time_one_sat_short", "the same paying one sat under the minimum",
             [("alice", big)], [(COIN, "carol"), (change + 1, "alice")]),
        case("self_send", "the whole coin back to its owner: the base fee only",
             [("alice", big)], [(big - 1_000, "alice")]),
        case("self_send_one_sat_short", "the same paying 999 sat",
             [("alice", big)], [(big - 999, "alice")]),
        case("two_owners_change_to_the_second", "inputs of alice and bob, change to bob: only carol's "
             "output is sent to others", [("alice", 3 * COIN), ("bob", 2 * COIN)],
             [(4 * COIN, "carol"), (COIN - 1_000 - 4 * COIN // 1000, "bob")]),
        case("own_key_not_spent_from", "alice pays dave (another key of her wallet that spends "
             "nothing here): sent to others", [("alice", 2 * COIN)],
             [(COIN, "dave"), (COIN - 1_000 - COIN // 1000, "alice")]),
        case("old_rule_fee_not_needed", "10,000 TIME to carol from a 1,000,000 TIME coin: 10 TIME + "
             "1,000 sat, not the ~1,000 TIME of 0.1 % of every output",
             [("alice", big)], [(10_000 * COIN, "carol"), (big_change, "alice")]),
    ]  # fmt: skip
    return {
        "spec": "DESIGN §4, docs/encoding.md",
        "chain_id": chain_id.hex(),
        "network": NETWORK,
        "dust_limit": rules.dust_limit,
        "min_fee_base": rules.min_fee_base,
        "min_fee_per_mille": rules.min_fee_per_mille,
        "cases": cases,
    }


def dumps(doc: dict) -> str:
    return json.dumps(doc, indent=2) + "\n"


def main() -> int:
    transactions, blocks = build()
    (HERE / "transactions.json").write_text(dumps(transactions))
    (HERE / "blocks.json").write_text(dumps(blocks))
    (HERE / "fees.json").write_text(dumps(build_fees(bytes.fromhex(transactions["chain_id"]))))
    print(f"wrote {HERE / 'transactions.json'}, {HERE / 'blocks.json'} and {HERE / 'fees.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
