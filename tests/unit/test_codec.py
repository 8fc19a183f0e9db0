"""The canonical codec (docs/encoding.md): golden vectors on the native codec and its reference
twin, every kind of malformed encoding, and the typed objects of ``timecoin.core.types``."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import struct
from pathlib import Path

import pytest
import timecoin_native as native

from timecoin import crypto
from timecoin.core.types import (
    Block,
    BlockHeader,
    Coin,
    MasternodeDeregistration,
    MasternodePayoutChange,
    MasternodeRegistration,
    OutPoint,
    Transaction,
    TxKind,
    TxOut,
    Witness,
    sign_encoded_transactions,
    sign_transactions,
)
from timecoin.reference import codec as reference

VECTORS = Path(__file__).resolve().parents[1] / "vectors"
TX_DOC = json.loads((VECTORS / "transactions.json").read_text())
BLOCK_DOC = json.loads((VECTORS / "blocks.json").read_text())
TXS = {t["name"]: t for t in TX_DOC["transactions"]}
BLOCKS = {b["name"]: b for b in BLOCK_DOC["blocks"]}
CHAIN_ID = bytes.fromhex(TX_DOC["chain_id"])
NETWORK = TX_DOC["network"]
IMPLS = pytest.mark.parametrize("impl", [native, reference], ids=["native", "reference"])


def tx_fields(v: dict) -> tuple:
    f = v["fields"]
    return (
        f["version"],
        f["kind"],
        tuple((bytes.fromhex(i["txid"]), i["vout"]) for i in f["inputs"]),
        tuple((o["value"], bytes.fromhex(o["pubkey_hash"])) for o in f["outputs"]),
        f["lock_time"],
        bytes.fromhex(f["payload"]),
        tuple((bytes.fromhex(w["public_key"]), bytes.fromhex(w["signature"])) for w in f["witnesses"]),
    )


def header_fields(b: dict) -> tuple:
    return tuple(bytes.fromhex(v) if isinstance(v, str) else v for v in b["header"].values())


def block_fields(b: dict) -> tuple:
    return header_fields(b), tuple(tx_fields(TXS[name]) for name in b["transactions"])


# -- golden vectors -------------------------------------------------------------------------------


def test_vector_files_are_what_the_generator_writes():
    spec = importlib.util.spec_from_file_location("vectors_generate", VECTORS / "generate.py")
    assert spec is not None and spec.loader is not None
    generate = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(generate)
    transactions, blocks = generate.build()
    assert generate.dumps(transactions) == (VECTORS / "transactions.json").read_text()
    assert generate.dumps(blocks) == (VECTORS / "blocks.json").read_text()


def test_vectors_cover_every_kind():
    assert {t["fields"]["kind"] for t in TXS.values()} == set(range(5))
    transfer = TXS["transfer_2in_2out"]["fields"]
    assert len(transfer["inputs"]) == len(transfer["outputs"]) == len(transfer["witnesses"]) == 2
    assert len(BLOCKS["block_1"]["transactions"]) == 3


@IMPLS
@pytest.mark.parametrize("name", list(TXS))
def test_transaction_vector(impl, name):
    v = TXS[name]
    enc = bytes.fromhex(v["encoding"])
    fields = tx_fields(v)
    assert impl.encode_transaction(fields) == enc
    assert impl.decode_transaction(enc) == fields
    assert impl.txid(enc).hex() == v["txid"]
    assert impl.txids([enc, enc]) == [bytes.fromhex(v["txid"])] * 2
    txid = bytes.fromhex(v["txid"])
    for i, (w, sighash) in enumerate(zip(fields[6], v["sighashes"], strict=True)):
        assert impl.sighash(CHAIN_ID, NETWORK, txid, i).hex() == sighash
        assert crypto.verify(w[0], bytes.fromhex(sighash), w[1])
        assert crypto.public_key(bytes.fromhex(v["secret_keys"][i])) == w[0]


@IMPLS
@pytest.mark.parametrize("name", list(TXS))
def test_batch_signer_reproduces_vector(impl, name):
    v = TXS[name]
    enc = bytes.fromhex(v["encoding"])
    keys = b"".join(bytes.fromhex(k) for k in v["secret_keys"])
    unsigned = impl.encode_transaction(tx_fields(v)[:6] + ((),))
    signed = impl.sign_transactions(
        unsigned + enc,
        struct.pack("<II", len(unsigned), len(enc)),
        keys + keys,
        struct.pack("<II", len(v["secret_keys"]), len(v["secret_keys"])),
        CHAIN_ID,
        NETWORK,
    )
    assert signed == [enc, enc]


@IMPLS
@pytest.mark.parametrize("name", list(BLOCKS))
def test_block_vector(impl, name):
    b = BLOCKS[name]
    enc = bytes.fromhex(b["encoding"])
    fields = block_fields(b)
    header = bytes.fromhex(b["header_encoding"])
    assert impl.encode_block(fields) == enc
    assert impl.decode_block(enc) == fields
    assert impl.encode_block_header(fields[0]) == header == enc[:296]
    assert impl.decode_block_header(header) == fields[0]
    assert impl.block_hash(header).hex() == b["hash"]
    decoded, txids = impl.decode_block_with_txids(enc)
    assert decoded == fields
    assert [t.hex() for t in txids] == b["txids"]
    assert crypto.merkle_root(txids).hex() == b["merkle_root"] == b["header"]["merkle_root"]


def test_chain_id_is_the_genesis_hash():
    assert BLOCKS["genesis"]["hash"] == TX_DOC["chain_id"] == BLOCK_DOC["chain_id"]
    assert BLOCKS["block_1"]["header"]["prev_hash"] == BLOCKS["genesis"]["hash"]


def test_typed_objects_match_vectors():
    for name, v in TXS.items():
        enc = bytes.fromhex(v["encoding"])
        tx = Transaction.decode(enc)
        assert tx.encode() == enc
        assert tx.txid.hex() == v["txid"]
        assert dataclasses.replace(tx).txid.hex() == v["txid"], name  # recomputed, not cached
        assert tx.kind == v["fields"]["kind"] and isinstance(tx.kind, TxKind)
        assert tx.witness_count == len(v["secret_keys"])
        keys = [bytes.fromhex(k) for k in v["secret_keys"]]
        unsigned = dataclasses.replace(tx, witnesses=())
        assert unsigned.signed_with(keys, CHAIN_ID, NETWORK) == tx
        assert [tx.sighash(i, CHAIN_ID, NETWORK).hex() for i in range(len(keys))] == v["sighashes"]
    for b in BLOCKS.values():
        block = Block.decode(bytes.fromhex(b["encoding"]))
        assert block.hash.hex() == b["hash"]
        assert [t.hex() for t in block.txids] == b["txids"]
        assert block.encode().hex() == b["encoding"]
        assert BlockHeader.decode(bytes.fromhex(b["header_encoding"])) == block.header


def test_payload_views():
    reg = Transaction.decode(bytes.fromhex(TXS["masternode_register"]["encoding"])).masternode_registration
    payload = bytes.fromhex(TXS["masternode_register"]["fields"]["payload"])
    assert reg.encode() == payload
    assert reg.collateral == OutPoint.decode(payload[:36])
    assert reg.masternode_key == bytes.fromhex(
        TXS["masternode_register"]["fields"]["witnesses"][1]["public_key"]
    )
    dereg = Transaction.decode(bytes.fromhex(TXS["masternode_deregister"]["encoding"]))
    assert dereg.masternode_deregistration.collateral == reg.collateral
    payout = Transaction.decode(bytes.fromhex(TXS["masternode_payout"]["encoding"]))
    change = payout.masternode_payout_change
    assert change.collateral == reg.collateral and change.encode() == payout.payload
    assert Transaction.decode(bytes.fromhex(TXS["coinbase_height_1"]["encoding"])).coinbase_height == 1
    with pytest.raises(ValueError, match="transaction is MASTERNODE_PAYOUT, not COINBASE"):
        _ = payout.coinbase_height
    with pytest.raises(ValueError, match="MASTERNODE_REGISTER payload must be 100 bytes, got 99"):
        MasternodeRegistration.decode(payload[:99])
    for view in (reg, dereg.masternode_deregistration, change):
        built = Transaction.masternode(view)
        assert built.payload == view.encode() and built.kind.payload_len == len(view.encode())
    assert (
        Transaction.masternode(MasternodeDeregistration(OutPoint.NULL)).kind is TxKind.MASTERNODE_DEREGISTER
    )
    assert MasternodePayoutChange(OutPoint.NULL, bytes(32)).encode()[:36] == OutPoint.NULL.encode()
    with pytest.raises(TypeError, match="must be a masternode payload"):
        Transaction.masternode(OutPoint.NULL)  # type: ignore[arg-type]


# -- malformed encodings --------------------------------------------------------------------------

ALL_ENCODINGS = [(n, bytes.fromhex(t["encoding"]), "decode_transaction") for n, t in TXS.items()] + [
    (n, bytes.fromhex(b["encoding"]), "decode_block") for n, b in BLOCKS.items()
]


@IMPLS
@pytest.mark.parametrize(("name", "enc", "decoder"), ALL_ENCODINGS, ids=[e[0] for e in ALL_ENCODINGS])
def test_every_truncation_is_rejected(impl, name, enc, decoder):
    decode = getattr(impl, decoder)
    for cut in range(len(enc)):
        with pytest.raises(ValueError, match="truncated|count"):
            decode(enc[:cut])


@IMPLS
@pytest.mark.parametrize(("name", "enc", "decoder"), ALL_ENCODINGS, ids=[e[0] for e in ALL_ENCODINGS])
def test_trailing_bytes_are_rejected(impl, name, enc, decoder):
    for extra in (b"\0", b"\xff" * 7):
        with pytest.raises(ValueError, match=f"{len(extra)} trailing bytes"):
            getattr(impl, decoder)(enc + extra)


def test_native_messages_say_what_and_where():
    enc = bytes.fromhex(TXS["transfer_2in_2out"]["encoding"])
    with pytest.raises(
        ValueError, match=r"^truncated transaction lock_time at offset 165: needs 4 bytes, 2 remain$"
    ):
        native.decode_transaction(enc[:167])
    with pytest.raises(
        ValueError,
        match=r"^witnesses count 2 at offset 173 needs at least 192 bytes \(96 per item\), only 35 remain$",
    ):
        native.decode_transaction(enc[: -64 - 96 + 3])
    with pytest.raises(ValueError, match=r"^1 trailing bytes after transaction at offset 369$"):
        native.decode_transaction(enc + b"\0")
    assert len(enc) == 369
    with pytest.raises(ValueError, match=r"^truncated header version at offset 0: needs 4 bytes, 0 remain$"):
        native.decode_block(b"")


def _with_u32(enc: bytes, offset: int, value: int) -> bytes:
    return enc[:offset] + struct.pack("<I", value) + enc[offset + 4 :]


TRANSFER = bytes.fromhex(TXS["transfer_2in_2out"]["encoding"])
# Offsets in the transfer vector: inputs count at 5, outputs count at 5+4+72=81, payload length
# at 81+4+80+4=169, witness count at 173.
COUNT_OFFSETS = {"inputs": (5, 36), "outputs": (81, 40), "witnesses": (173, 96)}


@IMPLS
@pytest.mark.parametrize("field", list(COUNT_OFFSETS))
@pytest.mark.parametrize("count", ["one too many", 2**31, 2**32 - 1])
def test_huge_counts_are_rejected(impl, field, count):
    offset, item = COUNT_OFFSETS[field]
    if count == "one too many":  # the smallest count the remaining bytes cannot hold
        count = (len(TRANSFER) - offset - 4) // item + 1
    bad = _with_u32(TRANSFER, offset, count)
    with pytest.raises(ValueError, match=f"{field} count {count} at offset {offset}"):
        impl.decode_transaction(bad)


@IMPLS
def test_huge_transaction_count_is_rejected(impl):
    enc = bytes.fromhex(BLOCKS["block_1"]["encoding"])
    for count in ((len(enc) - 300) // 25 + 1, 2**32 - 1):
        with pytest.raises(ValueError, match=f"transactions count {count} at offset 296"):
            impl.decode_block(_with_u32(enc, 296, count))


@IMPLS
@pytest.mark.parametrize("tag", [5, 6, 127, 255])
def test_unknown_kind_is_rejected(impl, tag):
    with pytest.raises(ValueError, match=f"unknown transaction kind {tag} at offset 4"):
        impl.decode_transaction(TRANSFER[:4] + bytes([tag]) + TRANSFER[5:])


@IMPLS
@pytest.mark.parametrize("kind", range(5))
def test_payload_length_must_match_kind(impl, kind):
    expected = TxKind(kind).payload_len
    for length in (expected - 1, expected + 1, 2**32 - 1):
        if length < 0:
            continue
        tx = struct.pack("<IBIIII", 1, kind, 0, 0, 0, length) + bytes(min(length, 200)) + struct.pack("<I", 0)
        with pytest.raises(ValueError, match=f"payload length {length} at offset 17 does not match kind"):
            impl.decode_transaction(tx)
    ok = struct.pack("<IBIIII", 1, kind, 0, 0, 0, expected) + bytes(expected) + struct.pack("<I", 0)
    assert impl.decode_transaction(ok)[5] == bytes(expected)


@IMPLS
def test_coin_flag_byte(impl):
    coin = impl.encode_coin((7, bytes(32), 9, True))
    assert coin[-1] == 1 and len(coin) == 49
    assert impl.decode_coin(coin) == (7, bytes(32), 9, True)
    assert impl.decode_coin(coin[:-1] + b"\0") == (7, bytes(32), 9, False)
    for flag in (2, 0x80, 0xFF):
        with pytest.raises(ValueError, match=f"is_coinbase at offset 48 must be 0 or 1, got {flag}"):
            impl.decode_coin(coin[:-1] + bytes([flag]))
    with pytest.raises(ValueError):
        impl.decode_coin(coin + b"\0")
    with pytest.raises(ValueError):
        impl.decode_coin(coin[:-1])


@IMPLS
def test_fixed_size_values_round_trip_and_reject_wrong_sizes(impl):
    for enc_fn, dec_fn, value, size in [
        ("encode_outpoint", "decode_outpoint", (b"\1" * 32, 7), 36),
        ("encode_tx_out", "decode_tx_out", (2**64 - 1, b"\2" * 32), 40),
        ("encode_witness", "decode_witness", (b"\3" * 32, b"\4" * 64), 96),
    ]:
        enc = getattr(impl, enc_fn)(value)
        assert len(enc) == size and getattr(impl, dec_fn)(enc) == value
        for bad in (enc[:-1], enc + b"\0", b""):
            with pytest.raises(ValueError):
                getattr(impl, dec_fn)(bad)


@IMPLS
def test_bad_fields_are_refused_when_encoding(impl):
    good = tx_fields(TXS["transfer_2in_2out"])
    cases = [
        (good[:6], ValueError, "must be a tuple of 7 fields"),
        ((-1, *good[1:]), ValueError, r"transaction\.version must be in 0\.\.=4294967295"),
        ((2**32, *good[1:]), ValueError, r"transaction\.version must be in"),
        ((True, *good[1:]), TypeError, r"transaction\.version must be an int"),
        ((1, 9, *good[2:]), ValueError, r"transaction\.kind must be in 0\.\.=4"),
        ((1, 1, *good[2:]), ValueError, r"transaction\.payload must be 8 bytes"),
        (
            (*good[:2], ((b"x", 0),), *good[3:]),
            ValueError,
            r"transaction\.inputs\[0\]\.txid must be 32 bytes",
        ),
        ((*good[:3], ((-5, bytes(32)),), *good[4:]), ValueError, r"transaction\.outputs\[0\]\.value must be"),
        ((*good[:6], "abc"), TypeError, r"transaction\.witnesses must be a tuple or list"),
        ((*good[:5], "", good[6]), TypeError, r"transaction\.payload must be bytes"),
    ]
    for fields, exc, message in cases:
        with pytest.raises(exc, match=message):
            impl.encode_transaction(fields)
    with pytest.raises(TypeError, match="coin.is_coinbase must be a bool"):
        impl.encode_coin((1, bytes(32), 1, 1))
    with pytest.raises(ValueError, match=r"header\.vrf_proof must be 80 bytes"):
        impl.encode_block_header(
            (1, 0, bytes(32), bytes(32), bytes(32), 0, bytes(32), bytes(79), bytes(64), 0)
        )
    with pytest.raises(ValueError, match="network must be in 0..=255"):
        impl.sighash(bytes(32), 256, bytes(32), 0)
    with pytest.raises(ValueError, match="chain_id must be 32 bytes"):
        impl.sighash(bytes(31), 0, bytes(32), 0)


@IMPLS
def test_txids_and_signer_name_the_bad_item(impl):
    with pytest.raises(ValueError, match=r"transactions\[1\]: "):
        impl.txids([TRANSFER, TRANSFER + b"\0"])
    with pytest.raises(ValueError, match=r"transactions\[0\]: "):
        impl.sign_transactions(
            TRANSFER[:-1], struct.pack("<I", len(TRANSFER) - 1), b"", struct.pack("<I", 0), bytes(32), 0
        )
    with pytest.raises(ValueError, match="key_counts"):
        impl.sign_transactions(
            TRANSFER, struct.pack("<I", len(TRANSFER)), bytes(32), struct.pack("<I", 2), bytes(32), 0
        )
    with pytest.raises(ValueError, match="transaction_lengths add up to"):
        impl.sign_transactions(TRANSFER, struct.pack("<I", 3), b"", struct.pack("<I", 0), bytes(32), 0)


# -- typed objects --------------------------------------------------------------------------------


def test_dataclass_field_validation():
    h = bytes(32)
    cases = [
        (lambda: OutPoint(b"short", 0), ValueError, "OutPoint.txid must be 32 bytes, got 5"),
        (
            lambda: OutPoint(h, 2**32),
            ValueError,
            r"OutPoint.vout must be in 0..=4294967295 \(u32\), got 4294967296",
        ),
        (lambda: OutPoint(h, "0"), TypeError, "OutPoint.vout must be an int, not str"),
        (lambda: OutPoint("00" * 32, 0), TypeError, "OutPoint.txid must be bytes, not str"),
        (lambda: TxOut(-1, h), ValueError, "TxOut.value must be in 0..=18446744073709551615"),
        (lambda: TxOut(False, h), TypeError, "TxOut.value must be an int, not bool"),
        (lambda: Witness(h, h), ValueError, "Witness.signature must be 64 bytes, got 32"),
        (lambda: Coin(1, h, 2**64, False), ValueError, "Coin.height must be in"),
        (lambda: Coin(1, h, 0, 0), TypeError, "Coin.is_coinbase must be a bool, not int"),
        (
            lambda: Transaction(1, 5, (), (), 0, b"", ()),
            ValueError,
            "Transaction.kind must be one of 0..=4, got 5",
        ),
        (lambda: Transaction(1, "0", (), (), 0, b"", ()), TypeError, "Transaction.kind must be a TxKind"),
        (
            lambda: Transaction(1, 3, (), (), 0, b"", ()),
            ValueError,
            "payload must be 36 bytes for MASTERNODE_DEREGISTER, got 0",
        ),
        (
            lambda: Transaction(1, 0, [h], (), 0, b"", ()),
            TypeError,
            r"Transaction.inputs\[0\] must be OutPoint, not bytes",
        ),
        (
            lambda: Transaction(1, 0, (), None, 0, b"", ()),
            TypeError,
            "Transaction.outputs must be a tuple or list, not NoneType",
        ),
        (lambda: Transaction(1, 0, (), (), -1, b"", ()), ValueError, "Transaction.lock_time must be in"),
        (lambda: Transaction.coinbase(-1, ()), ValueError, "coinbase height must be an int"),
        (
            lambda: BlockHeader(1, 0, h, h, h, 0, h, bytes(80), bytes(63), 0),
            ValueError,
            "BlockHeader.vrf_output must be 64 bytes, got 63",
        ),
        (lambda: Block(None, ()), TypeError, "Block.header must be BlockHeader, not NoneType"),
        (
            lambda: MasternodeRegistration(OutPoint.NULL, h, b""),
            ValueError,
            "payout_pubkey_hash must be 32 bytes",
        ),
    ]
    for build, exc, message in cases:
        with pytest.raises(exc, match=message):
            build()


def test_dataclasses_are_immutable_and_normalized():
    op = OutPoint(bytearray(32), 1)
    assert type(op.txid) is bytes
    with pytest.raises(dataclasses.FrozenInstanceError):
        op.vout = 2  # type: ignore[misc]
    tx = Transaction(1, 0, [op], [TxOut(1, bytes(32))], 0, b"", [])
    assert tx.inputs == (op,) and tx.witnesses == () and tx.kind is TxKind.TRANSFER
    assert hash(tx) == hash(Transaction.decode(tx.encode()))
    assert tx == Transaction.decode(tx.encode())
    assert tx.encoded_len() == len(tx.encode())
    assert (
        OutPoint.decode(op.encode()) == op and Coin.decode(Coin(1, bytes(32), 2, True).encode()).is_coinbase
    )


def test_signed_with_checks_the_key_count():
    tx = Transaction.transfer([OutPoint(bytes(32), 0), OutPoint(bytes(32), 1)], [TxOut(1, bytes(32))])
    with pytest.raises(ValueError, match="TRANSFER with 2 inputs needs 2 secret keys, got 1"):
        tx.signed_with([bytes(32)], CHAIN_ID, NETWORK)
    signed = tx.signed_with([b"\1" * 32, b"\2" * 32], CHAIN_ID, NETWORK)
    assert signed.txid == tx.txid
    for i, w in enumerate(signed.witnesses):
        assert crypto.verify(w.public_key, signed.sighash(i, CHAIN_ID, NETWORK), w.signature)
        assert not crypto.verify(w.public_key, signed.sighash(i, CHAIN_ID, 0), w.signature)


def test_batch_signing_of_typed_and_encoded_transactions():
    txs = [Transaction.transfer([OutPoint(bytes([i]) * 32, i)], [TxOut(i, bytes(32))]) for i in range(100)]
    keys = [[bytes([i + 1]) * 32] for i in range(100)]
    signed = sign_transactions(txs, keys, CHAIN_ID, NETWORK)
    assert [s.txid for s in signed] == [t.txid for t in txs]
    assert [s.encode() for s in signed] == sign_encoded_transactions(
        [t.encode() for t in txs], keys, CHAIN_ID, NETWORK, parallel=False
    )
    assert signed[7] == txs[7].signed_with(keys[7], CHAIN_ID, NETWORK)
    with pytest.raises(ValueError, match="2 transactions but 1 secret key lists"):
        sign_encoded_transactions([b"", b""], [[]], CHAIN_ID, NETWORK)
    with pytest.raises(ValueError, match=r"secret_keys\[0\]\[0\] must be 32 bytes"):
        sign_encoded_transactions([txs[0].encode()], [[b"x"]], CHAIN_ID, NETWORK)


def test_block_txids_fill_in_for_built_blocks():
    block = Block.decode(bytes.fromhex(BLOCKS["block_1"]["encoding"]))
    built = Block(dataclasses.replace(block.header), [dataclasses.replace(t) for t in block.transactions])
    assert built == block
    assert built.txids == block.txids
    assert built.hash == block.hash
