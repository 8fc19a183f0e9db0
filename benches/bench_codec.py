"""Codec hot paths: native vs the pure-Python reference on identical inputs, in one run.

Groups (read the ratios pytest-benchmark prints beside each mean within a group):

* ``decode-block-10k``: decoding one block of 10,000 signed transfers (2 inputs, 2 outputs,
  2 witnesses each; about 5.5 MB): native to tuples, native to tuples plus all txids, native to
  typed ``Block`` objects (txids included), and the reference to tuples and to tuples plus txids.
* ``txids-10k``: the txids of the same 10,000 encoded transactions, native in one call (all
  cores, one core) vs the reference one by one.

Each benchmark records its correctness check (decoded value or txids equal to the reference's)
in ``extra_info`` and asserts it.
"""

from __future__ import annotations

import hashlib

import pytest
import timecoin_native as native

from timecoin import crypto
from timecoin.core.types import Block, OutPoint, Transaction, TxOut, sign_encoded_transactions
from timecoin.reference import codec as reference

TXS = 10_000
CHAIN_ID = hashlib.sha256(b"bench chain").digest()


def _h(*parts: object) -> bytes:
    return hashlib.sha256(repr(parts).encode()).digest()


@pytest.fixture(scope="module")
def block_data():
    seeds = [[_h("seed", i, 0), _h("seed", i, 1)] for i in range(TXS)]
    unsigned = [
        Transaction.transfer(
            [OutPoint(_h("prev", i, 0), 0), OutPoint(_h("prev", i, 1), 1)],
            [TxOut(1_000 + i, _h("to", i)), TxOut(2_000 + i, _h("change", i))],
        ).encode()
        for i in range(TXS)
    ]
    signed = sign_encoded_transactions(unsigned, seeds, CHAIN_ID, 1)
    txids = reference.txids(signed)
    tx_fields = [native.decode_transaction(tx) for tx in signed]
    header = (1, 5, _h("prev"), crypto.merkle_root(txids), _h("utxo"), 1_767_225_600, _h("proposer"),
              bytes(80), bytes(64), 0)  # fmt: skip
    encoded = native.encode_block((header, tx_fields))
    expected = reference.decode_block(encoded)
    assert encoded == reference.encode_block(expected)
    return encoded, expected, signed, txids


def _record(benchmark, ok, items):
    benchmark.extra_info["correct"] = ok
    benchmark.extra_info["items"] = items
    assert ok


@pytest.mark.benchmark(group="decode-block-10k")
def test_decode_block_native(benchmark, block_data):
    encoded, expected, _, _ = block_data
    result = benchmark(native.decode_block, encoded)
    _record(benchmark, result == expected, TXS)


@pytest.mark.benchmark(group="decode-block-10k")
def test_decode_block_with_txids_native(benchmark, block_data):
    encoded, expected, _, txids = block_data
    result = benchmark(native.decode_block_with_txids, encoded)
    _record(benchmark, result == (expected, txids), TXS)


@pytest.mark.benchmark(group="decode-block-10k")
def test_decode_block_typed_native(benchmark, block_data):
    encoded, expected, _, txids = block_data
    block = benchmark(Block.decode, encoded)
    ok = block.txids == txids and [tx.encode() for tx in block.transactions[:100]] == [
        reference.encode_transaction(tx) for tx in expected[1][:100]
    ]
    _record(benchmark, ok, TXS)


@pytest.mark.benchmark(group="decode-block-10k")
def test_decode_block_reference(benchmark, block_data):
    encoded, expected, _, _ = block_data
    result = benchmark(reference.decode_block, encoded)
    _record(benchmark, result == expected, TXS)


@pytest.mark.benchmark(group="decode-block-10k")
def test_decode_block_with_txids_reference(benchmark, block_data):
    encoded, expected, _, txids = block_data
    result = benchmark(reference.decode_block_with_txids, encoded)
    _record(benchmark, result == (expected, txids), TXS)


@pytest.mark.benchmark(group="txids-10k")
def test_txids_native_all_cores(benchmark, block_data):
    _, _, signed, txids = block_data
    result = benchmark(native.txids, signed)
    _record(benchmark, result == txids, TXS)


@pytest.mark.benchmark(group="txids-10k")
def test_txids_native_one_core(benchmark, block_data):
    _, _, signed, txids = block_data
    result = benchmark(native.txids, signed, False)
    _record(benchmark, result == txids, TXS)


@pytest.mark.benchmark(group="txids-10k")
def test_txids_reference(benchmark, block_data):
    _, _, signed, txids = block_data
    result = benchmark(reference.txids, signed)
    _record(benchmark, result == txids, TXS)
