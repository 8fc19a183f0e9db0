"""The wallet (timecoin.wallet): the encrypted keystore, coin selection and fees, and transfers
it builds checked by the native ledger against a real devnet chain (DESIGN §4, §10)."""

from __future__ import annotations

import json
import stat

import hypothesis.strategies as st
import pytest
from hypothesis import given

from timecoin.core.address import decode_address
from timecoin.core.types import Coin, OutPoint, Transaction, TxOut
from timecoin.ledger.blockbuilder import assemble_block
from timecoin.ledger.chain import ChainState
from timecoin.ledger.genesis import build_genesis
from timecoin.params import COIN, DEVNET, TESTNET
from timecoin.testing.chaingen import Wallet, devnet_genesis
from timecoin.wallet import (
    InsufficientFunds,
    Keystore,
    KeystoreError,
    SpendableCoin,
    derive_key,
    read_public,
    required_fee,
    select_coins,
)
from timecoin.wallet.keystore import INTERACTIVE

PASS = "correct horse battery staple"


# -- keystore -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    path = tmp_path_factory.mktemp("keystore") / "wallet.json"
    store = Keystore.create(DEVNET, keys=3, limits=INTERACTIVE)
    store.save(path, PASS)
    return store, path


def test_keystore_round_trip(saved):
    store, path = saved
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in path.parent.iterdir()] == ["wallet.json"]  # no temporary file left
    assert store.seed not in path.read_bytes() and store.seed.hex().encode() not in path.read_bytes()
    public = read_public(path)
    assert public.params is DEVNET and public.addresses == store.addresses
    again = Keystore.unlock(path, PASS)
    assert again.seed == store.seed and again.keys == store.keys and again.limits == INTERACTIVE
    for key in again.keys:
        assert decode_address(key.address, DEVNET) == key.pubkey_hash
    assert all(a.startswith("dtime1") for a in again.addresses)
    assert len(set(again.addresses)) == 3


def test_keys_derive_deterministically_from_the_seed():
    seed = bytes(range(32))
    assert derive_key(seed, 0) == derive_key(seed, 0)
    assert len({derive_key(seed, i) for i in range(50)}) == 50
    assert derive_key(seed, 0) != derive_key(bytes(32), 0)
    with pytest.raises(ValueError, match="32 bytes"):
        derive_key(b"short", 0)
    store = Keystore(TESTNET, seed, [], INTERACTIVE)
    key = store.new_key()
    assert key.secret == derive_key(seed, 0) and key.address.startswith("ttime1")


def test_wrong_passphrase_is_a_clear_error(saved):
    _, path = saved
    with pytest.raises(KeystoreError, match="wrong passphrase"):
        Keystore.unlock(path, PASS + "!")


def _tampered(path, tmp_path, change) -> object:
    doc = json.loads(path.read_text())
    change(doc)
    out = tmp_path / "tampered.json"
    out.write_text(json.dumps(doc))
    return out


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        (
            lambda d: d["cipher"].update(
                ciphertext=("00" if d["cipher"]["ciphertext"][:2] != "00" else "01")
                + d["cipher"]["ciphertext"][2:]
            ),
            "wrong passphrase, or the file was altered",
        ),
        (lambda d: d["addresses"].reverse(), "do not match the encrypted keys"),
        (lambda d: d["kdf"].update(memlimit=2**45), "outside the accepted range"),
        (lambda d: d["kdf"].update(salt="zz"), "malformed kdf"),
        (lambda d: d.update(version=9), "version 9 is not supported"),
        (lambda d: d.update(network="moonnet"), "unknown network"),
        (lambda d: d.update(format="other"), "not a TIME Coin keystore"),
    ],
)
def test_tampered_keystore_is_refused(saved, tmp_path, change, fragment):
    _, path = saved
    with pytest.raises(KeystoreError, match=fragment):
        Keystore.unlock(_tampered(path, tmp_path, change), PASS)


def test_missing_or_garbage_file(tmp_path):
    with pytest.raises(KeystoreError, match="no wallet at"):
        read_public(tmp_path / "none.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(KeystoreError, match="cannot read wallet"):
        Keystore.unlock(tmp_path / "bad.json", PASS)


# -- coin selection -------------------------------------------------------------------------------

P = DEVNET
DEST = bytes([9]) * 32
CHANGE = bytes([8]) * 32


def coins(*values: int) -> list[SpendableCoin]:
    return [SpendableCoin(OutPoint(bytes([i + 1]) * 32, 0), v, bytes([7]) * 32) for i, v in enumerate(values)]


def test_exact_amount_has_no_change():
    pay = 3 * COIN
    sel = select_coins(P, coins(pay + P.min_fee(pay)), [(DEST, pay)], CHANGE)
    assert sel.change == 0 and sel.fee == P.min_fee(pay)
    assert sel.transaction.outputs == (TxOut(pay, DEST),)


def test_change_below_dust_goes_to_the_fee():
    pay = 3 * COIN
    extra = P.dust_limit - 1
    sel = select_coins(P, coins(pay + P.min_fee(pay) + extra), [(DEST, pay)], CHANGE)
    assert sel.change == 0 and sel.fee == P.min_fee(pay) + extra
    assert len(sel.transaction.outputs) == 1


def test_change_at_dust_or_more_is_kept_and_the_fee_is_the_minimum():
    pay = 3 * COIN
    sel = select_coins(P, coins(10 * COIN), [(DEST, pay)], CHANGE)
    out = sum(o.value for o in sel.transaction.outputs)
    assert sel.change >= P.dust_limit and sel.transaction.outputs[-1] == TxOut(sel.change, CHANGE)
    assert 10 * COIN == out + sel.fee
    assert sel.fee >= P.min_fee(out) and sel.fee < P.min_fee(out + 1) + 1  # no sat of change left out


def test_insufficient_funds_says_how_much():
    pay = 3 * COIN
    with pytest.raises(
        InsufficientFunds, match=f"{pay + P.min_fee(pay)} sat needed.*{pay} sat spendable"
    ) as info:
        select_coins(P, coins(COIN, 2 * COIN), [(DEST, pay)], CHANGE)
    assert info.value.available == pay
    with pytest.raises(InsufficientFunds):
        select_coins(P, [], [(DEST, pay)], CHANGE)


def test_largest_first_and_bad_payments():
    sel = select_coins(P, coins(COIN, 5 * COIN, 2 * COIN, 4 * COIN), [(DEST, 6 * COIN)], CHANGE)
    assert [c.value for c in sel.coins] == [5 * COIN, 4 * COIN]
    with pytest.raises(ValueError, match="below the dust limit"):
        select_coins(P, coins(COIN), [(DEST, P.dust_limit - 1)], CHANGE)
    with pytest.raises(ValueError, match="nothing to pay"):
        select_coins(P, coins(COIN), [], CHANGE)


def test_fee_margin():
    assert required_fee(P, 10 * COIN, 100) == P.min_fee(10 * COIN) * 11 // 10
    assert required_fee(P, 0, 1) == P.min_fee_base + 1  # rounded up
    pay = COIN
    sel = select_coins(P, coins(5 * COIN), [(DEST, pay)], CHANGE, fee_margin_per_mille=500)
    out = sum(o.value for o in sel.transaction.outputs)
    assert sel.fee >= required_fee(P, out, 500) > P.min_fee(out)
    with pytest.raises(ValueError, match="fee margin"):
        required_fee(P, 1, -1)


@given(
    st.lists(st.integers(1, 10 * COIN), max_size=12),
    st.lists(st.integers(P.dust_limit, 5 * COIN), min_size=1, max_size=3),
    st.integers(0, 2000),
)
def test_selection_invariants(values, payments, margin):
    pays = [(DEST, v) for v in payments]
    total_pay = sum(payments)
    try:
        sel = select_coins(P, coins(*values), pays, CHANGE, fee_margin_per_mille=margin)
    except InsufficientFunds:
        assert sum(values) < total_pay + required_fee(P, total_pay, margin)
        return
    total_in = sum(c.value for c in sel.coins)
    out = sum(o.value for o in sel.transaction.outputs)
    assert total_in == out + sel.fee
    assert sel.fee >= required_fee(P, out, margin)
    assert all(o.value >= P.dust_limit for o in sel.transaction.outputs)
    assert sel.change == 0 or sel.change >= P.dust_limit
    assert sel.transaction.outputs[: len(pays)] == tuple(TxOut(v, DEST) for v in payments)


# -- against the native ledger --------------------------------------------------------------------


@pytest.fixture(scope="module")
def funded(tmp_path_factory):
    """A devnet chain whose block 1 pays 5 TIME, 2 TIME and 0.00001 TIME to three wallet keys."""
    config, accounts, _ = devnet_genesis(accounts=2)
    chain = ChainState.open(tmp_path_factory.mktemp("wallet_chain"), config.params, build_genesis(config))
    store = Keystore.create(DEVNET, keys=3, limits=INTERACTIVE)
    source = Wallet.from_genesis(chain, accounts)
    (outpoint, (value, secret)), *_ = source.coins.items()
    amounts = [5 * COIN, 2 * COIN, 1_000]
    paid = [TxOut(a, k.pubkey_hash) for a, k in zip(amounts, store.keys, strict=True)]
    rest = value - sum(amounts) - P.min_fee(value)
    funding = Transaction.transfer([outpoint], [*paid, TxOut(rest, bytes(32))]).signed_with(
        [secret], chain.genesis.hash, int(P.network)
    )
    chain.connect_block(assemble_block(chain, [funding], chain.tip_header.timestamp + 2).encode())
    yield chain, store
    chain.close()


def _spendable(chain, store) -> list[SpendableCoin]:
    found = chain.utxos.coins_of(b"".join(k.pubkey_hash for k in store.keys))
    return [
        SpendableCoin(OutPoint.decode(op), (c := Coin.decode(raw)).value, c.pubkey_hash) for op, raw in found
    ]


def _largest_payment(total: int) -> int:
    """The largest payment whose minimum fee ``total`` sat still covers without change."""
    pay = (total - P.min_fee_base) * 1000 // (1000 + P.min_fee_per_mille)
    while pay + P.min_fee(pay) > total:
        pay -= 1
    return pay


@pytest.mark.parametrize(
    ("pay", "inputs", "with_change"),
    [
        (COIN, 1, True),
        (6 * COIN, 2, True),
        (_largest_payment(7 * COIN) - 300, 2, False),  # 300 sat left: dust, added to the fee
        (_largest_payment(7 * COIN + 1_000) - 300, 3, False),  # every coin, dust left to the fee
    ],
)
def test_built_transfers_pass_the_ledger(funded, pay, inputs, with_change):
    chain, store = funded
    spendable = _spendable(chain, store)
    assert sorted(c.value for c in spendable) == [1_000, 2 * COIN, 5 * COIN]
    sel = select_coins(P, spendable, [(DEST, pay)], store.keys[0].pubkey_hash)
    assert len(sel.coins) == inputs
    assert (sel.change > 0) == with_change
    secrets = {k.pubkey_hash: k.secret for k in store.keys}
    tx = sel.transaction.signed_with(
        [secrets[c.pubkey_hash] for c in sel.coins], chain.genesis.hash, int(P.network)
    )
    (verdict,) = chain.utxos.check_transactions([tx.encode()], chain.rules, chain.tip.height + 1)
    assert verdict.ok, verdict
    assert verdict.fee == sel.fee


def test_insufficient_funds_against_the_chain(funded):
    chain, store = funded
    with pytest.raises(InsufficientFunds):
        select_coins(P, _spendable(chain, store), [(DEST, 7 * COIN)], store.keys[0].pubkey_hash)
