"""Writes the seed corpora of the fuzz targets (docs/fuzzing.md): a few valid encodings of
everything each target decodes, built from the codec vectors (tests/vectors/) and from real
signed consensus messages, so the fuzzers start past the first length and tag checks.

* ``native/fuzz/corpus/<target>/`` for the cargo-fuzz targets (native/fuzz/fuzz_targets/);
* ``tests/fuzz/corpus/<harness>/`` for the atheris harnesses (tests/fuzz/fuzz_<harness>.py).

Deterministic: the same files every run (fixed keys, fixed chain). It writes only its own
``seed-*`` files and leaves every other file (``regression-*`` inputs of fixed crashes, what a
campaign merged in) alone. Run from anywhere: ``python tests/fuzz/generate_corpus.py``.
"""

from __future__ import annotations

import importlib.util
import json
import struct
import sys
import tempfile
from pathlib import Path
from typing import Any

import orjson

from timecoin import crypto
from timecoin.consensus.messages import (
    NIL,
    BlockVote,
    CertificateEntry,
    CertificateRequest,
    CommitCertificate,
    CompactBlock,
    Decision,
    DecisionRequest,
    FinalityCertificate,
    Kind,
    Proposal,
    SnowballQuery,
    SnowballResponse,
    Status,
    TxCertificate,
    TxVote,
)
from timecoin.core.types import Block
from timecoin.masternode.heartbeat import Heartbeat
from timecoin.p2p import messages as m
from timecoin.p2p.framing import encode_frame
from timecoin.p2p.messages import MessageType
from timecoin.params import DEVNET, Tier
from timecoin.testing.chaingen import commit_certificate

REPO = Path(__file__).resolve().parents[2]
NATIVE = REPO / "native" / "fuzz" / "corpus"
PYTHON = REPO / "tests" / "fuzz" / "corpus"
VECTORS = REPO / "tests" / "vectors"

KEYS = [crypto.blake3(b"timecoin fuzz seed key %d" % i) for i in range(3)]
"""Signing seeds of the seed messages (any fixed keys)."""
CHAIN_ID = bytes(range(32))
"""The chain id the seed messages sign (the harnesses' ``CHAIN_ID``)."""


def _write(directory: Path, name: str, data: bytes) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"seed-{name}").write_bytes(data)


def _vectors() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    txs = json.loads((VECTORS / "transactions.json").read_text())["transactions"]
    blocks = json.loads((VECTORS / "blocks.json").read_text())["blocks"]
    return txs, blocks


# -- native targets ------------------------------------------------------------------------------


def native_corpora() -> None:
    txs, blocks = _vectors()
    for tx in txs:
        _write(NATIVE / "transaction", tx["name"], bytes.fromhex(tx["encoding"]))
    for block in blocks:
        _write(NATIVE / "block", block["name"], bytes.fromhex(block["encoding"]))
        _write(NATIVE / "block_header", block["name"], bytes.fromhex(block["header_encoding"]))

    transfer = next(t for t in txs if t["name"] == "transfer_2in_2out")
    fields = transfer["fields"]
    outpoint = bytes.fromhex(fields["inputs"][0]["txid"]) + struct.pack("<I", fields["inputs"][0]["vout"])
    output = struct.pack("<Q", fields["outputs"][0]["value"]) + bytes.fromhex(
        fields["outputs"][0]["pubkey_hash"]
    )
    witness = bytes.fromhex(fields["witnesses"][0]["public_key"]) + bytes.fromhex(
        fields["witnesses"][0]["signature"]
    )
    coin = output + struct.pack("<QB", 7, 1)
    for pick, (name, item) in enumerate(
        [("outpoint", outpoint), ("output", output), ("witness", witness), ("coin", coin)]
    ):
        _write(NATIVE / "items", name, bytes([pick]) + item)

    # Undo records (docs/encoding.md, "Undo record"): version 1 ‖ height ‖ block hash ‖ prior
    # set hash ‖ created outpoints ‖ spent (outpoint ‖ coin) pairs.
    head = bytes([1]) + struct.pack("<Q", 5) + bytes(range(32)) + bytes(range(32, 64))
    second = outpoint[:32] + struct.pack("<I", 1)
    _write(NATIVE / "undo", "empty", head + struct.pack("<I", 0) + struct.pack("<I", 0))
    _write(NATIVE / "undo", "created", head + struct.pack("<I", 2) + outpoint + second + struct.pack("<I", 0))
    _write(NATIVE / "undo", "spent", head + struct.pack("<I", 0) + struct.pack("<I", 1) + outpoint + coin)

    # key ‖ Ed25519 signature ‖ VRF proof ‖ message, all valid, by each vector's first signer.
    for tx in txs:
        if not tx["secret_keys"]:
            continue
        seed = bytes.fromhex(tx["secret_keys"][0])
        message = bytes.fromhex(tx["sighashes"][0])
        proof, _ = crypto.vrf_prove(seed, message)
        data = crypto.public_key(seed) + crypto.sign(seed, message) + proof + message
        _write(NATIVE / "signatures", tx["name"], data)

    # read size ‖ a connection's encrypted stream: nothing, a lone length prefix, a message
    # shorter than its tag, and plaintext frames (which the target also encrypts itself).
    _write(NATIVE / "noise_transport", "empty", b"\x00")
    _write(NATIVE / "noise_transport", "prefix-only", b"\x05\xff\xff")
    _write(NATIVE / "noise_transport", "short-message", b"\x01\x00\x03abc")
    _write(NATIVE / "noise_transport", "frames", b"\x10" + b"DTME\x03\x00\x08\x00\x00\x00" + bytes(8))


# -- consensus messages --------------------------------------------------------------------------


def consensus_messages() -> dict[str, bytes]:
    """One signed encoding of every consensus message kind, and both certificates alone."""
    _, blocks = _vectors()
    block = bytes.fromhex(blocks[1]["encoding"])
    block_hash = bytes.fromhex(blocks[1]["hash"])
    txids = sorted(crypto.blake3(b"txid %d" % i) for i in range(5))
    height = 7

    votes = [TxVote.create(k, CHAIN_ID, height, txids[:3], txids[3:]) for k in KEYS]
    entries = []
    for vote in sorted(votes, key=lambda v: v.voter):
        accept_root, reject_root = vote.roots
        index = 1
        entries.append(
            CertificateEntry(
                vote.voter,
                len(vote.accepts),
                accept_root,
                index,
                len(vote.rejects),
                reject_root,
                tuple(crypto.merkle_proof(list(vote.accepts), index)),
                vote.signature,
            )
        )
    finality = FinalityCertificate(txids[1], height, tuple(entries))
    commit = CommitCertificate.decode(commit_certificate(CHAIN_ID, height, block_hash, KEYS))
    proposal = Proposal.create(KEYS[0], CHAIN_ID, height, 2, 1, CompactBlock.whole(block))
    query = SnowballQuery.create(KEYS[0], CHAIN_ID, height, 99, bytes(range(36)), txids[:2])
    return {
        "tx_vote": votes[0].encode(),
        "tx_certificate": TxCertificate(bytes.fromhex(_vectors()[0][2]["encoding"]), finality).encode(),
        "proposal": proposal.encode(),
        "proposal_no_valid_round": Proposal.create(
            KEYS[1], CHAIN_ID, height, 0, None, CompactBlock.of_block(block, lambda _, __: False)
        ).encode(),
        "prevote": BlockVote.create(KEYS[0], CHAIN_ID, Kind.PREVOTE, height, 2, block_hash).encode(),
        "precommit_nil": BlockVote.create(KEYS[1], CHAIN_ID, Kind.PRECOMMIT, height, 0, NIL).encode(),
        "decision": Decision(commit, CompactBlock.whole(block)).encode(),
        "decision_request": DecisionRequest(height).encode(),
        "certificate_request": CertificateRequest(tuple(txids)).encode(),
        "status": Status.create(KEYS[2], CHAIN_ID, height, block_hash, 3).encode(),
        "snowball_query": query.encode(),
        "snowball_response": SnowballResponse.create(KEYS[1], CHAIN_ID, query, txids[1]).encode(),
        "snowball_response_none": SnowballResponse.create(KEYS[2], CHAIN_ID, query, None).encode(),
        "finality_certificate": finality.encode(),
        "commit_certificate": commit.encode(),
    }


# -- P2P messages --------------------------------------------------------------------------------


def p2p_payloads() -> dict[str, tuple[MessageType, bytes]]:
    """A valid payload of every message type a peer sends (BLOCK_CHUNK's smallest valid chunk
    is megabytes, so its seed is a short, refused one)."""
    txs, blocks = _vectors()
    raw_txs = [bytes.fromhex(t["encoding"]) for t in txs]
    block = bytes.fromhex(blocks[1]["encoding"])
    header = bytes.fromhex(blocks[1]["header_encoding"])
    block_hash = bytes.fromhex(blocks[1]["hash"])
    messages = consensus_messages()
    heartbeat = Heartbeat.create(
        KEYS[0], CHAIN_ID, int(DEVNET.network), Tier.GOLD, 7, block_hash, 1_763_683_200, "0.1.0"
    )
    hello = m.Hello(
        m.PROTOCOL_VERSION,
        int(DEVNET.network),
        CHAIN_ID,
        7,
        block_hash,
        crypto.public_key(KEYS[0]),
        bytes(range(32)),
        24300,
        m.FLAG_MASTERNODE,
    )
    return {
        "hello": (MessageType.HELLO, hello.encode()),
        "auth": (MessageType.AUTH, m.Auth(bytes(range(64)), crypto.public_key(KEYS[1]), bytes(64)).encode()),
        "ping": (MessageType.PING, m.encode_u64(12345)),
        "pong": (MessageType.PONG, m.encode_u64(12345)),
        "getaddr": (MessageType.GETADDR, b""),
        "addr": (
            MessageType.ADDR,
            m.encode_addr([("192.0.2.1", 24300, 1_763_683_200), ("2001:db8::1", 24301, 5)]),
        ),
        "tx_batch": (MessageType.TX_BATCH, m.encode_items(raw_txs)),
        "vote_batch": (
            MessageType.VOTE_BATCH,
            m.encode_items([messages[k] for k in ("tx_vote", "prevote", "status", "snowball_query")]),
        ),
        "heartbeat_batch": (MessageType.HEARTBEAT_BATCH, m.encode_items([heartbeat.encode()])),
        "block_announce": (MessageType.BLOCK_ANNOUNCE, m.encode_announce(7, block_hash)),
        "getblocks": (MessageType.GETBLOCKS, m.encode_getblocks(1, 16)),
        "block": (MessageType.BLOCK, m.encode_block_message(7, messages["commit_certificate"], block)),
        "block_chunk": (
            MessageType.BLOCK_CHUNK,
            m.BlockChunk(7, block_hash, m.BLOCK_CHUNK_SIZE + 10, 1, 2, bytes(10)).encode(),
        ),
        "block_chunk_head": (
            MessageType.BLOCK_CHUNK,
            m.BlockChunk(7, block_hash, m.BLOCK_CHUNK_SIZE + 1, 0, 2, struct.pack("<I", 0) + header).encode(),
        ),
        "notfound": (MessageType.NOTFOUND, m.encode_u64(9)),
        "large_vote": (MessageType.LARGE_VOTE, m.encode_items([messages["decision"]])),
        "get_transactions": (
            MessageType.GET_TRANSACTIONS,
            m.encode_txids([crypto.blake3(b"a"), crypto.blake3(b"b")]),
        ),
        "transactions": (MessageType.TRANSACTIONS, m.encode_items(raw_txs[2:4])),
    }


def _p2p_corpus() -> dict[str, bytes]:
    harness = _load_harness("fuzz_p2p_messages")
    types = harness.TYPES
    seeds: dict[str, bytes] = {}
    frames = []
    for name, (mtype, payload) in p2p_payloads().items():
        seeds[f"payload-{name}"] = bytes([harness.PAYLOAD_MODE + types.index(mtype)]) + payload
        frames.append(encode_frame(DEVNET.magic, mtype, payload))
    # Streams (first byte: the piece-size seed): a handshake, then gossip and sync frames.
    seeds["stream-handshake"] = bytes([3]) + b"".join(frames[:3])
    seeds["stream-gossip"] = bytes([17]) + b"".join(frames[6:9])
    seeds["stream-sync"] = bytes([1]) + b"".join(frames[10:12] + frames[14:15])
    return seeds


# -- RPC requests --------------------------------------------------------------------------------


def _rpc_corpus() -> dict[str, bytes]:
    """JSON bodies calling every method with values of the harness node's chain, and one
    request in the harness's built form per method."""
    harness = _load_harness("fuzz_rpc_params")
    with tempfile.TemporaryDirectory() as tmp:
        from timecoin.testing.node import build_devnet_chain

        chain = build_devnet_chain(Path(tmp), harness.BLOCKS, 2)
    known = harness._known_values(chain)
    tip = Block.decode(chain.blocks[-1])
    block_hash, raw_block = tip.header.hash.hex(), chain.blocks[-1].hex()
    txid, raw_tx = tip.transactions[1].txid.hex(), tip.transactions[1].encode().hex()
    address = next(v for v in known if isinstance(v, str) and v.startswith(DEVNET.address_hrp))
    calls: dict[str, list[Any]] = {
        "getblockchaininfo": [],
        "getblockcount": [],
        "getbestblockhash": [],
        "getblockhash": [1],
        "getblock": [block_hash, 2],
        "getblockheader": [block_hash, False],
        "getrawtransaction": [txid, True, block_hash],
        "decoderawtransaction": [raw_tx],
        "sendrawtransaction": [raw_tx],
        "sendrawtransactions": [[raw_tx, "00"]],
        "gettxout": [txid, 0, True],
        "gettxoutsetinfo": [],
        "getmempoolinfo": [],
        "getrawmempool": [True],
        "getpeerinfo": [],
        "getnetworkinfo": [],
        "getconnectioncount": [],
        "validateaddress": [address],
        "getbalance": [address, address],
        "listunspent": [1, [address], True],
        "help": ["getblock"],
        "getconsensusinfo": [],
        "gettransactionfinality": [txid],
        "getfinalityfeed": [0, 0, 10],
        "waittransactionfinality": [txid, 1],
        "uptime": [],
        "submitblock": [raw_block],
        "waitfornewblock": [1],
        "waitforblockheight": [1, 1],
        "masternodelist": [],
        "masternodestatus": [known[-1]],
    }
    seeds = {}
    for name, params in calls.items():
        seeds[f"json-{name}"] = orjson.dumps({"jsonrpc": "2.0", "id": 1, "method": name, "params": params})

    # The built form (``request_of``): method index, positional, then each value by its tag:
    # boolean 1, small integer 2, string 4, one of the chain's values 6, array 8.
    def built(v: Any) -> bytes:
        if isinstance(v, bool):
            return bytes([1, int(v)])
        if isinstance(v, int):
            return bytes([2, v + 8])
        if isinstance(v, list):
            return bytes([8, len(v)]) + b"".join(built(x) for x in v)
        if v in known:
            return bytes([6, known.index(v)])
        text: bytes = str(v).encode("latin-1")
        return bytes([4, len(text)]) + text

    for name, params in calls.items():
        head = bytes([harness.METHOD_NAMES.index(name), 0])
        seeds[f"built-{name}"] = head + b"".join(built(v) for v in params)
    seeds["json-batch"] = orjson.dumps(
        [
            {"jsonrpc": "2.0", "id": i, "method": n, "params": calls[n]}
            for i, n in enumerate(["getblockcount", "getblock", "help"])
        ]
    )
    return seeds


def _load_harness(name: str) -> Any:
    path = Path(__file__).with_name(f"{name}.py")
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def python_corpora() -> None:
    for name, data in consensus_messages().items():
        _write(PYTHON / "consensus_messages", name, data)
    for name, data in _p2p_corpus().items():
        _write(PYTHON / "p2p_messages", name, data)
    for name, data in _rpc_corpus().items():
        _write(PYTHON / "rpc_params", name, data)


def main() -> None:
    native_corpora()
    python_corpora()


if __name__ == "__main__":
    main()
