"""Validation rules of the native UTXO set (DESIGN §4, docs/encoding.md): every rejection code
triggered by real signed transactions and blocks, on the native set and on the pure-Python
reference (same code, same transaction index), and no state change on any rejection: set hash,
size and the store delta stay as they were.
"""

from __future__ import annotations

import dataclasses

import pytest

from timecoin.core.types import (
    MasternodeDeregistration,
    MasternodeRegistration,
    OutPoint,
    Transaction,
    TxKind,
    TxOut,
)
from timecoin.ledger import REJECT_CODES, LedgerRules, UtxoSet, ValidationError
from timecoin.reference import utxo as reference
from timecoin.testing import utxogen as g

VALUE = 1_000_000
COINS = 12
RULES = g.rules()
OPS = [g.funding_outpoint(i) for i in range(COINS)]


@pytest.fixture
def sets() -> tuple[UtxoSet, reference.UtxoSet]:
    native, ref = UtxoSet(), reference.UtxoSet()
    entries = g.funding(COINS, VALUE)
    native.load(entries)
    ref.load(entries)
    return native, ref


def pay(i: int, *outputs: tuple[int, int], **kw: object) -> Transaction:
    """Funding coin ``i`` (owned by key ``i``) spent to ``outputs``; default: one output paying
    ``VALUE - 10_000`` to key 100."""
    return g.transfer([(OPS[i], i)], outputs or [(VALUE - 10_000, 100)], **kw)  # type: ignore[arg-type]


def block(native: UtxoSet, txs: list[Transaction], height: int = 1, **kw: object) -> bytes:
    return g.assemble(txs, height, set_hash=g.set_hash_after(native, RULES), **kw)  # type: ignore[arg-type]


def assert_rejected(
    sets: tuple[UtxoSet, reference.UtxoSet],
    raw: bytes,
    code: str,
    tx_index: int | None,
    rules: LedgerRules = RULES,
) -> None:
    native, ref = sets
    before = (native.set_hash(), native.state(), len(native))
    with pytest.raises(ValidationError) as err:
        native.apply_block(raw, rules)
    assert (err.value.code, err.value.tx_index) == (code, tx_index), str(err.value)
    assert code in REJECT_CODES and err.value.message
    assert str(err.value).startswith(code)
    with pytest.raises(reference.ValidationError) as ref_err:
        ref.apply_block(raw, rules)
    assert (ref_err.value.code, ref_err.value.tx_index) == (code, tx_index)
    assert (native.set_hash(), native.state(), len(native)) == before
    assert native.set_hash() == ref.set_hash()
    assert native.take_delta() == [] == ref.take_delta()


def assert_verdict(sets: tuple[UtxoSet, reference.UtxoSet], raw: bytes, code: str, height: int = 1) -> None:
    native, ref = sets
    before = native.set_hash()
    (v,) = native.check_transactions([raw], RULES, height)
    (w,) = ref.check_transactions([raw], RULES, height)
    assert (v.ok, v.code) == (code == "", code), v.message
    assert (w.ok, w.code, w.txid, w.kind, w.fee, w.size, w.inputs) == (
        v.ok, v.code, v.txid, v.kind, v.fee, v.size, v.inputs
    )  # fmt: skip
    assert v.size == len(raw)
    assert native.set_hash() == before and native.take_delta() == []


def replace_witness(tx: Transaction, index: int, **fields: bytes) -> Transaction:
    witnesses = list(tx.witnesses)
    witnesses[index] = dataclasses.replace(witnesses[index], **fields)
    return dataclasses.replace(tx, witnesses=tuple(witnesses))


def flip(data: bytes, index: int = 0) -> bytes:
    return data[:index] + bytes([data[index] ^ 1]) + data[index + 1 :]


# -- valid blocks ----------------------------------------------------------------------------------


def test_valid_block_applies_like_the_reference(sets):
    native, ref = sets
    parent = pay(0, (500_000, 20), (480_000, 21))
    child = g.transfer([(OutPoint(parent.txid, 1), 21)], [(470_000, 22)])
    other = g.transfer([(OPS[1], 1), (OPS[2], 2)], [(1_000_000, 23), (990_000, 24)])
    raw = block(native, [parent, child, other])
    a, b = native.apply_block(raw, RULES), ref.apply_block(raw, RULES)
    assert a.fees == b.fees == 20_000 + 10_000 + 10_000
    assert (a.height, a.block_hash, a.txids, a.undo) == (b.height, b.block_hash, b.txids, b.undo)
    assert a.coinbase_outputs == [(100, g.owner(0))] == b.coinbase_outputs
    assert a.masternode_txs == []
    assert native.set_hash() == ref.set_hash() and len(native) == len(ref) == COINS - 3 + 5
    assert native.get(OutPoint(parent.txid, 1).encode()) is None  # spent by the child, same block
    assert native.take_delta() == ref.take_delta()
    native.rollback(a.undo)
    ref.rollback(b.undo)
    assert native.set_hash() == ref.set_hash() and len(native) == COINS


def test_mempool_verdicts_match_the_reference(sets):
    native, ref = sets
    good = pay(3)
    both = [good.encode(), pay(3, (VALUE - 20_000, 101)).encode()]
    verdicts = native.check_transactions(both, RULES, 1)
    # Conflicts inside one batch are the mempool's business: each is checked against the set.
    assert [v.ok for v in verdicts] == [True, True]
    assert verdicts[0].txid == good.txid and verdicts[0].fee == 10_000 and verdicts[0].kind == 0
    assert verdicts[0].inputs == OPS[3].encode() and verdicts[0].outpoints == (OPS[3].encode(),)
    assert native.check_transactions([b"\x00"], RULES, 1)[0].outpoints == ()
    assert [(v.ok, v.fee, v.txid) for v in ref.check_transactions(both, RULES, 1)] == [
        (v.ok, v.fee, v.txid) for v in verdicts
    ]
    assert native.check_transactions([], RULES, 1) == []


# -- every rejection code --------------------------------------------------------------------------


def test_bad_encoding(sets):
    native, _ = sets
    raw = block(native, [pay(0)])
    assert_rejected(sets, raw[:-1], "bad-encoding", None)
    assert_rejected(sets, raw + b"\x00", "bad-encoding", None)
    assert_verdict(sets, pay(0).encode()[:-3], "bad-encoding")
    tx = bytearray(pay(0).encode())
    tx[4] = 9  # kind tag
    assert_verdict(sets, bytes(tx), "bad-encoding")  # an unknown kind is a decoding error
    start = raw.index(pay(0).encode()[:40])
    bad = bytearray(raw)
    bad[start + 4] = 9
    assert_rejected(sets, bytes(bad), "bad-encoding", None)


def test_size_limits(sets):
    native, _ = sets
    tx = pay(0)
    raw = block(native, [tx])
    assert_rejected(sets, raw, "block-too-large", None, g.rules(max_block_size=len(raw) - 1))
    assert_rejected(sets, raw, "tx-too-large", 1, g.rules(max_tx_size=tx.encoded_len() - 1))
    (v,) = native.check_transactions([tx.encode()], g.rules(max_tx_size=tx.encoded_len() - 1), 1)
    assert v.code == "tx-too-large" and v.txid is None


def test_bad_version(sets):
    native, _ = sets
    tx = g.unsigned_transfer([OPS[0]], [(VALUE - 10_000, 100)])
    tx = dataclasses.replace(tx, version=2).signed_with([g.secret_key(0)], g.CHAIN_ID, 2)
    assert_rejected(sets, block(native, [tx]), "bad-version", 1)
    assert_verdict(sets, tx.encode(), "bad-version")


def test_inputs_and_outputs(sets):
    native, _ = sets
    no_inputs = g.unsigned_transfer([], [(10_000, 1)])
    assert_rejected(sets, block(native, [no_inputs]), "no-inputs", 1)
    assert_verdict(sets, no_inputs.encode(), "no-inputs")
    no_outputs = g.transfer([(OPS[0], 0)], [])
    assert_rejected(sets, block(native, [no_outputs]), "no-outputs", 1)
    dust = pay(0, (545, 100), (900_000, 101))
    assert_rejected(sets, block(native, [dust]), "dust-output", 1)
    assert_verdict(sets, pay(0, (546, 100), (900_000, 101)).encode(), "")
    dup = g.transfer([(OPS[0], 0), (OPS[0], 0)], [(VALUE, 100)])
    assert_rejected(sets, block(native, [dup]), "duplicate-input", 1)
    assert_verdict(sets, dup.encode(), "duplicate-input")
    missing = g.transfer([(OutPoint(bytes(32), 0), 0)], [(10_000, 100)])
    assert_rejected(
        sets,
        block(native, [pay(1), missing]),
        "missing-input",
        1 + sorted([pay(1).txid, missing.txid]).index(missing.txid),
    )
    assert_verdict(sets, missing.encode(), "missing-input")
    overflow = pay(0, (2**63, 100), (2**63, 101))
    assert_rejected(sets, block(native, [overflow]), "value-overflow", 1)
    assert_verdict(sets, overflow.encode(), "value-overflow")


def test_witnesses(sets):
    native, _ = sets
    tx = g.transfer([(OPS[0], 0), (OPS[1], 1)], [(VALUE, 100)])
    short = dataclasses.replace(tx, witnesses=tx.witnesses[:1])
    assert_rejected(sets, block(native, [short]), "bad-witness-count", 1)
    assert_verdict(sets, short.encode(), "bad-witness-count")
    wrong = g.transfer([(OPS[0], 0), (OPS[1], 7)], [(VALUE, 100)])  # input 1 signed by key 7
    assert_rejected(sets, block(native, [wrong]), "wrong-key", 1)
    assert_verdict(sets, wrong.encode(), "wrong-key")
    forged = replace_witness(tx, 1, signature=flip(tx.witnesses[1].signature, 3))
    assert_rejected(sets, block(native, [forged]), "bad-signature", 1)
    assert_verdict(sets, forged.encode(), "bad-signature")
    # A signature for another chain id or network does not verify here.
    other_chain = g.transfer([(OPS[2], 2)], [(VALUE - 10_000, 100)], chain_id=bytes(32))
    assert_verdict(sets, other_chain.encode(), "bad-signature")
    other_net = g.transfer([(OPS[2], 2)], [(VALUE - 10_000, 100)], network=1)
    assert_verdict(sets, other_net.encode(), "bad-signature")


def test_fees(sets):
    native, _ = sets
    # min fee = 1,000 + 0.1 % of the outputs (DESIGN §4).
    sent = max(s for s in range(VALUE - 3_000, VALUE) if VALUE - s >= RULES.min_fee(s))
    exact = pay(0, (sent, 100))
    assert VALUE - sent == RULES.min_fee(sent)
    assert_verdict(sets, exact.encode(), "")
    cheap = pay(0, (sent + 1, 100))
    assert_rejected(sets, block(native, [cheap]), "insufficient-fee", 1)
    assert_verdict(sets, cheap.encode(), "insufficient-fee")
    negative = pay(0, (VALUE + 1, 100))
    assert_rejected(sets, block(native, [negative]), "insufficient-fee", 1)


def test_lock_time(sets):
    native, _ = sets
    locked = pay(0, lock_time=2)
    assert_rejected(sets, block(native, [locked], height=1), "lock-time", 1)
    assert_verdict(sets, locked.encode(), "lock-time", height=1)
    assert_verdict(sets, locked.encode(), "", height=2)


def test_coinbase_rules(sets):
    native, _ = sets
    tx = pay(0)
    assert_rejected(sets, block(native, [tx], with_coinbase=False), "coinbase-not-first", 0)
    assert_rejected(sets, block(native, [], with_coinbase=False), "coinbase-not-first", None)
    assert_verdict(sets, g.coinbase(1).encode(), "coinbase-not-first")
    raw = block(native, [g.coinbase(1), g.coinbase(2)], with_coinbase=False, order=False)
    assert_rejected(sets, raw, "multiple-coinbase", 1)
    assert_rejected(sets, block(native, [tx], coinbase_tx=g.coinbase(2)), "bad-coinbase-height", 0)
    with_input = dataclasses.replace(g.coinbase(1), inputs=(OPS[0],))
    assert_rejected(sets, block(native, [tx], coinbase_tx=with_input), "bad-coinbase", 0)


def test_header_commitments(sets):
    native, _ = sets
    txs = [pay(0), pay(1)]
    raw = block(native, txs)
    merkle_at = 4 + 8 + 32
    assert_rejected(sets, flip(raw, merkle_at), "bad-merkle-root", None)
    assert_rejected(sets, flip(raw, merkle_at + 32), "bad-utxo-hash", None)
    ordered = sorted(txs, key=lambda t: t.txid)
    raw = block(native, ordered[::-1], order=False)
    assert_rejected(sets, raw, "bad-tx-order", 2)
    raw = block(native, [txs[0], txs[0]], order=False)
    assert_rejected(sets, raw, "bad-tx-order", 2)
    # Without the check (block building), the hash is not compared.
    native.apply_block(flip(block(native, txs), merkle_at + 32), RULES, check_utxo_hash=False)


def test_double_spends(sets):
    native, ref = sets
    a, b = pay(0), pay(0, (VALUE - 20_000, 101))
    assert_rejected(sets, block(native, [a, b]), "double-spend-in-block", 2)
    parent = pay(1, (500_000, 20), (480_000, 21))
    kids = [g.transfer([(OutPoint(parent.txid, 0), 20)], [(490_000 - i * 1000, 30 + i)]) for i in range(2)]
    raw = block(native, [parent, *kids])
    with pytest.raises(ValidationError) as err:
        native.apply_block(raw, RULES)
    assert err.value.code == "double-spend-in-block"
    # Across blocks: the second spend finds no coin.
    first = block(native, [a])
    native.apply_block(first, RULES)
    ref.apply_block(first, RULES)
    native.take_delta()
    ref.take_delta()
    assert_rejected(sets, block(native, [b], height=2), "missing-input", 1)
    assert native.check_transactions([b.encode()], RULES, 2)[0].code == "missing-input"


def test_output_exists(sets):
    native, ref = sets
    tx = pay(0)
    squatter = [(OutPoint(tx.txid, 0).encode(), g.Coin(1000, g.owner(5), 0, False).encode())]
    native.load(squatter)
    ref.load(squatter)
    assert_rejected(sets, block(native, [tx]), "output-exists", 1)


def test_masternode_kinds_get_the_generic_checks(sets):
    native, ref = sets
    mn_key = g.public_key(50)
    register = Transaction.masternode(
        MasternodeRegistration(OutPoint.NULL, mn_key, g.owner(51)),
        [OPS[0]],
        [TxOut(VALUE - 10_000, g.owner(0))],
    )
    keys = [g.secret_key(0), g.secret_key(50), g.secret_key(52)]  # input, masternode key, owner
    signed = register.signed_with(keys, g.CHAIN_ID, 2)
    raw = block(native, [signed])
    a, b = native.apply_block(raw, RULES), ref.apply_block(raw, RULES)
    assert a.masternode_txs == [(1, int(TxKind.MASTERNODE_REGISTER), register.payload)] == b.masternode_txs
    native.rollback(a.undo)
    ref.rollback(b.undo)
    native.take_delta()
    ref.take_delta()
    assert native.check_transactions([signed.encode()], RULES, 1)[0].kind == 2
    wrong_mn = register.signed_with([g.secret_key(0), g.secret_key(53), g.secret_key(52)], g.CHAIN_ID, 2)
    assert_rejected(sets, block(native, [wrong_mn]), "wrong-key", 1)
    bad_extra = replace_witness(signed, 2, signature=flip(signed.witnesses[2].signature))
    assert_rejected(sets, block(native, [bad_extra]), "bad-signature", 1)
    assert_verdict(sets, bad_extra.encode(), "bad-signature")
    missing_extra = dataclasses.replace(signed, witnesses=signed.witnesses[:2])
    assert_rejected(sets, block(native, [missing_extra]), "bad-witness-count", 1)
    dereg = Transaction.masternode(
        MasternodeDeregistration(OPS[5]), [OPS[1]], [TxOut(VALUE - 10_000, g.owner(1))]
    )
    dereg = dereg.signed_with([g.secret_key(1), g.secret_key(5)], g.CHAIN_ID, 2)
    assert_verdict(sets, dereg.encode(), "")


def test_every_code_is_covered():
    """The codes exercised above are all the codes there are (a new code needs a test)."""
    tested = {
        "bad-encoding", "bad-version", "tx-too-large", "block-too-large",
        "no-inputs", "no-outputs", "dust-output", "duplicate-input", "missing-input",
        "bad-witness-count", "wrong-key", "bad-signature", "value-overflow", "insufficient-fee",
        "lock-time", "coinbase-not-first", "multiple-coinbase", "bad-coinbase",
        "bad-coinbase-height", "bad-tx-order", "bad-merkle-root", "bad-utxo-hash",
        "double-spend-in-block", "output-exists",
    }  # fmt: skip
    assert tested == set(REJECT_CODES)


# -- bad arguments ---------------------------------------------------------------------------------


def test_bad_arguments_raise_clear_errors(sets):
    native, _ = sets
    with pytest.raises(ValueError, match="36 bytes"):
        native.get(b"short")
    with pytest.raises(TypeError, match=r"txs\[1\] must be bytes"):
        native.check_transactions([b"", "x"], RULES, 1)  # type: ignore[list-item]
    with pytest.raises(TypeError, match="list"):
        native.load(((b"", b""),))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"entries\[0\].coin must be 49 bytes"):
        native.load([(bytes(36), bytes(48))])
    with pytest.raises(ValueError, match="already in the set"):
        native.load(g.funding(1, VALUE))
    with pytest.raises(ValueError, match="network"):
        LedgerRules(bytes(32), 3, 546, 1000, 1, 100, 100)
    with pytest.raises(ValueError, match="chain_id"):
        LedgerRules(bytes(31), 2, 546, 1000, 1, 100, 100)
    assert len(native) == COINS and native.take_delta() == []
    err = ValidationError("bad-x", "why", 3)
    assert (err.code, err.message, err.tx_index, str(err)) == ("bad-x", "why", 3, "bad-x: transaction 3: why")
    assert isinstance(err, ValueError)
