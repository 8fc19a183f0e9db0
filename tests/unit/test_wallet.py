"""The wallet (timecoin.wallet): the encrypted keystore, coin selection and fees, and transfers
it builds checked by the native ledger against a real devnet chain (DESIGN §4, §10)."""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import sys

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
    sweep,
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


def test_imported_keys_are_kept_encrypted_and_spend(saved, tmp_path):
    """``wallet import-key``'s store side: an imported key joins the addresses, survives save and
    unlock (in the ciphertext only), and a derived key after it keeps the derived order."""
    store, path = saved
    copy = tmp_path / "copy.json"
    secret = bytes(range(100, 132))
    again = Keystore.unlock(path, PASS)
    key = again.import_key(secret)
    assert again.addresses == [*store.addresses, key.address]
    assert decode_address(key.address, DEVNET) == key.pubkey_hash
    again.save(copy, PASS)
    assert secret.hex().encode() not in copy.read_bytes()
    opened = Keystore.unlock(copy, PASS)
    assert opened.imported == [key] and opened.keys == store.keys
    assert read_public(copy).addresses == opened.addresses
    new = opened.new_key()
    assert opened.addresses == [*store.addresses, new.address, key.address]
    opened.save(copy, PASS)
    assert Keystore.unlock(copy, PASS).addresses == opened.addresses
    with pytest.raises(ValueError, match="already in the wallet"):
        opened.import_key(secret)
    with pytest.raises(ValueError, match="already in the wallet"):
        opened.import_key(store.keys[0].secret)
    with pytest.raises(ValueError, match="32 bytes"):
        opened.import_key(b"short")


def test_missing_or_garbage_file(tmp_path):
    with pytest.raises(KeystoreError, match="no wallet at"):
        read_public(tmp_path / "none.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(KeystoreError, match="cannot read wallet"):
        Keystore.unlock(tmp_path / "bad.json", PASS)


# -- coin selection -------------------------------------------------------------------------------

P = DEVNET
DEST = bytes([9]) * 32
OWN = bytes([7]) * 32
"""The address every coin of :func:`coins` belongs to: change goes back to it."""


def coins(*values: int, owner: bytes = OWN) -> list[SpendableCoin]:
    return [SpendableCoin(OutPoint(bytes([i + 1]) * 32, 0), v, owner) for i, v in enumerate(values)]


def test_one_time_from_a_big_coin_pays_the_base_plus_a_tenth_percent_of_one_time():
    """Issue 16: the change goes back to the address spent from, so only the payment is charged
    0.1 %: 1 TIME from a 1,000,000 TIME coin costs 1,000 + 100,000 sat (it cost ~1,000 TIME)."""
    sel = select_coins(P, coins(1_000_000 * COIN), [(DEST, COIN)])
    assert sel.fee == 1_000 + COIN // 1000 == P.min_fee(COIN)
    assert sel.transaction.outputs == (TxOut(COIN, DEST), TxOut(1_000_000 * COIN - COIN - sel.fee, OWN))
    assert (sel.paid, sel.change) == (COIN, 1_000_000 * COIN - COIN - sel.fee)


def test_exact_amount_has_no_change():
    pay = 3 * COIN
    sel = select_coins(P, coins(pay + P.min_fee(pay)), [(DEST, pay)])
    assert sel.change == 0 and sel.fee == P.min_fee(pay)
    assert sel.transaction.outputs == (TxOut(pay, DEST),)


def test_change_below_dust_goes_to_the_fee():
    pay = 3 * COIN
    extra = P.dust_limit - 1
    sel = select_coins(P, coins(pay + P.min_fee(pay) + extra), [(DEST, pay)])
    assert sel.change == 0 and sel.fee == P.min_fee(pay) + extra
    assert len(sel.transaction.outputs) == 1


def test_change_goes_back_to_the_largest_coin_spent_at_the_minimum_fee():
    pay = 3 * COIN
    mixed = [*coins(2 * COIN), *coins(10 * COIN, owner=bytes([6]) * 32)]
    sel = select_coins(P, mixed, [(DEST, pay)])
    assert [c.value for c in sel.coins] == [10 * COIN]
    assert sel.transaction.outputs == (TxOut(pay, DEST), TxOut(sel.change, bytes([6]) * 32))
    assert sel.fee == P.min_fee(pay) and 10 * COIN == pay + sel.change + sel.fee


def test_paying_an_address_spent_from_is_a_self_send():
    sel = select_coins(P, coins(10 * COIN), [(OWN, 4 * COIN)])
    assert sel.fee == P.min_fee(0) == P.min_fee_base


def test_insufficient_funds_says_how_much():
    pay = 3 * COIN
    with pytest.raises(
        InsufficientFunds, match=f"{pay + P.min_fee(pay)} sat needed.*{pay} sat spendable"
    ) as info:
        select_coins(P, coins(COIN, 2 * COIN), [(DEST, pay)])
    assert info.value.available == pay
    with pytest.raises(InsufficientFunds):
        select_coins(P, [], [(DEST, pay)])


def test_largest_first_and_bad_payments():
    sel = select_coins(P, coins(COIN, 5 * COIN, 2 * COIN, 4 * COIN), [(DEST, 6 * COIN)])
    assert [c.value for c in sel.coins] == [5 * COIN, 4 * COIN]
    with pytest.raises(ValueError, match="below the dust limit"):
        select_coins(P, coins(COIN), [(DEST, P.dust_limit - 1)])
    with pytest.raises(ValueError, match="nothing to pay"):
        select_coins(P, coins(COIN), [])


def test_fee_margin():
    assert required_fee(P, 10 * COIN, 100) == P.min_fee(10 * COIN) * 11 // 10
    assert required_fee(P, 0, 1) == P.min_fee_base + 1  # rounded up
    pay = COIN
    sel = select_coins(P, coins(5 * COIN), [(DEST, pay)], fee_margin_per_mille=500)
    assert sel.fee == required_fee(P, pay, 500) > P.min_fee(pay)
    with pytest.raises(ValueError, match="fee margin"):
        required_fee(P, 1, -1)


def test_subtract_fee_pays_the_amount_less_its_fee():
    sel = select_coins(P, coins(10 * COIN), [(DEST, 4 * COIN)], subtract_fee=True)
    got = sel.transaction.outputs[0].value
    assert sel.transaction.outputs[0].pubkey_hash == DEST
    assert got + P.min_fee(got) <= 4 * COIN < got + 1 + P.min_fee(got + 1)
    assert (sel.paid, sel.fee, sel.change) == (got, 4 * COIN - got, 6 * COIN)
    # The whole coin, fee included: no change, nothing more needed.
    exact = select_coins(P, coins(4 * COIN), [(DEST, 4 * COIN)], subtract_fee=True)
    assert exact.change == 0 and exact.paid + exact.fee == 4 * COIN
    with pytest.raises(ValueError, match="cannot pay its own fee"):
        select_coins(P, coins(COIN), [(DEST, P.min_fee_base + 100)], subtract_fee=True)
    with pytest.raises(ValueError, match="single payment"):
        select_coins(P, coins(COIN), [(DEST, 10_000), (OWN, 10_000)], subtract_fee=True)


def test_sweep_spends_every_coin_into_one_output():
    sel = sweep(P, coins(COIN, 2 * COIN, 3 * COIN), DEST)
    total = 6 * COIN
    assert len(sel.coins) == 3 and sel.change == 0 and len(sel.transaction.outputs) == 1
    assert sel.paid + sel.fee == total and sel.fee >= P.min_fee(sel.paid)
    assert sel.paid + 1 + P.min_fee(sel.paid + 1) > total  # nothing left out
    to_self = sweep(P, coins(COIN, 2 * COIN), OWN)  # consolidation: base fee only
    assert (to_self.paid, to_self.fee) == (3 * COIN - P.min_fee_base, P.min_fee_base)
    with pytest.raises(InsufficientFunds):
        sweep(P, coins(P.min_fee_base + 100), DEST)
    with pytest.raises(InsufficientFunds):
        sweep(P, [], DEST)


@given(
    st.lists(st.integers(1, 10 * COIN), max_size=12),
    st.lists(st.tuples(st.booleans(), st.integers(P.dust_limit, 5 * COIN)), min_size=1, max_size=3),
    st.integers(0, 2000),
)
def test_selection_invariants(values, payments, margin):
    pays = [(OWN if own else DEST, v) for own, v in payments]
    others = sum(v for own, v in payments if not own)
    total_pay = sum(v for _, v in payments)
    try:
        sel = select_coins(P, coins(*values), pays, fee_margin_per_mille=margin)
    except InsufficientFunds:
        assert sum(values) < total_pay + required_fee(P, others if values else total_pay, margin)
        return
    total_in = sum(c.value for c in sel.coins)
    out = sum(o.value for o in sel.transaction.outputs)
    assert total_in == out + sel.fee
    # Every coin is OWN's: change and payments to OWN are not sent to others.
    assert sel.fee >= required_fee(P, others, margin)
    assert sel.change == 0 or sel.fee == required_fee(P, others, margin)
    assert all(o.value >= P.dust_limit for o in sel.transaction.outputs)
    assert sel.change == 0 or sel.change >= P.dust_limit
    assert sel.transaction.outputs[: len(pays)] == tuple(TxOut(v, pkh) for pkh, v in pays)


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
    sel = select_coins(P, spendable, [(DEST, pay)])
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
        select_coins(P, _spendable(chain, store), [(DEST, 7 * COIN)])


# -- the command line, without a node ---------------------------------------------------------------


def wallet_cli(tmp_path, *args: str, stdin: str | None = None, env: dict[str, str] | None = None, **kw):
    """``timecoin wallet --network devnet --datadir tmp --wallet tmp/w.json ARGS`` in a real
    process, standard input a pipe (never a terminal), no TIMECOIN_* from the caller."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("TIMECOIN_")}
    environment.update(env or {})
    command = [sys.executable, "-m", "timecoin.cli.main", "wallet", "--network", "devnet"]
    command += ["--datadir", str(tmp_path), "--wallet", str(tmp_path / "w.json"), *args]
    return subprocess.run(
        command, input=stdin or "", capture_output=True, text=True, env=environment, timeout=120, **kw
    )


def test_cli_passphrase_from_a_pipe_the_environment_or_a_descriptor(tmp_path):
    """Issue 16: a piped passphrase used to abort (``GetPassWarning … Aborted!``)."""
    made = wallet_cli(tmp_path, "create", "--kdf-limits", "interactive", stdin=PASS + "\n")
    assert made.returncode == 0, made.stderr
    first = made.stdout.strip()
    assert first.startswith("dtime1") and "Traceback" not in made.stderr
    # From the environment.
    second = wallet_cli(tmp_path, "address", "--new", env={"TIMECOIN_WALLET_PASSPHRASE": PASS})
    assert second.returncode == 0, second.stderr
    # From a file descriptor (a pipe handed to the child).
    read, write = os.pipe()
    os.write(write, (PASS + "\n").encode())
    os.close(write)
    try:
        third = wallet_cli(tmp_path, "--passphrase-fd", str(read), "address", "--new", pass_fds=(read,))
    finally:
        os.close(read)
    assert third.returncode == 0, third.stderr
    listed = wallet_cli(tmp_path, "address").stdout.split()
    assert listed == [first, second.stdout.strip(), third.stdout.strip()]
    wrong = wallet_cli(tmp_path, "address", "--new", stdin="not it\n")
    assert wrong.returncode == 1 and "wrong passphrase" in wrong.stderr


def test_cli_new_passphrase_has_a_minimum_length(tmp_path):
    """Issue 16: a 1-character passphrase used to be accepted."""
    short_file = tmp_path / "short"
    for short in ("x", "seven77"):
        short_file.write_text(short + "\n")
        done = wallet_cli(
            tmp_path, "--passphrase-file", str(short_file), "create", "--kdf-limits", "interactive"
        )
        assert done.returncode == 1 and "use at least 8" in done.stderr, done.stderr
        assert not (tmp_path / "w.json").exists()
        piped = wallet_cli(tmp_path, "create", "--kdf-limits", "interactive", stdin=short + "\n")
        assert piped.returncode == 1 and "use at least 8" in piped.stderr, piped.stderr
    empty = wallet_cli(tmp_path, "create", stdin="\n")
    assert empty.returncode == 1 and "no passphrase" in empty.stderr


def test_cli_connection_errors_name_the_node(tmp_path):
    """Issue 16: a refused connection did not say where the wallet dialed."""
    (tmp_path / "pass").write_text(PASS + "\n")
    made = wallet_cli(
        tmp_path, "--passphrase-file", str(tmp_path / "pass"), "create", "--kdf-limits", "interactive"
    )
    assert made.returncode == 0, made.stderr
    (tmp_path / ".cookie").write_text("__cookie__:secret")
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    done = wallet_cli(tmp_path, "--rpcport", str(port), "balance")
    assert done.returncode == 1 and f"127.0.0.1:{port}" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr
    no_cookie = wallet_cli(tmp_path, "--datadir", str(tmp_path / "none"), "--rpcport", str(port), "balance")
    assert no_cookie.returncode == 1 and f"127.0.0.1:{port}" in no_cookie.stderr, no_cookie.stderr


def test_cli_import_key(tmp_path):
    assert wallet_cli(tmp_path, "create", "--kdf-limits", "interactive", stdin=PASS + "\n").returncode == 0
    secret = bytes(range(32))
    (tmp_path / "faucet.key").write_text(secret.hex() + "\n")
    done = wallet_cli(tmp_path, "import-key", str(tmp_path / "faucet.key"), stdin=PASS + "\n")
    assert done.returncode == 0, done.stderr
    expected = Keystore(DEVNET, bytes(32), [], INTERACTIVE).import_key(secret).address
    assert done.stdout.strip() == expected
    assert wallet_cli(tmp_path, "address").stdout.split()[-1] == expected
    again = wallet_cli(tmp_path, "import-key", str(tmp_path / "faucet.key"), stdin=PASS + "\n")
    assert again.returncode == 1 and "already in the wallet" in again.stderr
    (tmp_path / "bad.key").write_text("zz\n")
    bad = wallet_cli(tmp_path, "import-key", str(tmp_path / "bad.key"), stdin=PASS + "\n")
    assert bad.returncode == 1 and "not a hex secret key" in bad.stderr
    piped = wallet_cli(tmp_path, "import-key", "-", stdin=secret.hex())
    assert piped.returncode == 2 and "give the passphrase another way" in piped.stderr
