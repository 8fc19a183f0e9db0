"""The native UTXO set against the pure-Python model (timecoin.reference.utxo), in the shape of
Bitcoin Core's coins-cache simulation fuzzer: hypothesis drives random sequences of valid and
invalid blocks, rollbacks (right, wrong and corrupted undo records), loads and store flushes on
both, and after every step checks that they hold the same coins with the same LtHash state and
set hash. At every flush the two deltas must be equal, and the delta applied to a dict standing
for the persisted store must make the store equal to the set. A flush may also be taken in two
halves, as a node's flusher does (``take_dirty`` now, ``DirtyCoins.delta`` after more blocks and
rollbacks): its writes must be the model's delta of the moment of the take. A crash in the middle of a flush
(any subset of its writes landed) is followed by a start that replays the blocks since the last
whole flush (``replay_block``): both sets must arrive at the live set.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable

import hypothesis.strategies as st
import pytest
from hypothesis import given, settings
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from timecoin.core.types import Block, Coin, OutPoint, Transaction, Witness
from timecoin.crypto import hash_public_key
from timecoin.ledger import UtxoSet, ValidationError
from timecoin.reference import lthash as reference_lthash
from timecoin.reference import utxo as reference
from timecoin.store.chainstore import coin_key
from timecoin.testing import utxogen as g

RULES = g.rules()
FUNDING = 10**9
"""sat per funding coin: enough for dozens of generations of halving transfers."""
MIN_SPEND = 20_000
"""Coins below this are not spent by the generator (each output must stay above dust)."""


def keyed(entries: Iterable[tuple[bytes, bytes]]) -> dict[bytes, bytes]:
    """(outpoint, coin) pairs as the store keys them (``coin_key``)."""
    return {coin_key(outpoint, coin): coin for outpoint, coin in entries}


class UtxoModel(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.native = UtxoSet()
        self.ref = reference.UtxoSet()
        entries = g.funding(4, FUNDING)
        self.native.load(entries)
        self.ref.load(entries)
        self.store: dict[bytes, bytes] = keyed(entries)
        """The persisted store: coin key (creation height ‖ outpoint) → coin."""
        self.keys = {g.owner(i): i for i in range(4)}
        self.next_key = 4
        self.undos: list[tuple[bytes, bytes]] = []
        self.stale: list[tuple[bytes, bytes]] = []
        self.tip = 0
        self.since_flush: list[tuple[bytes, bytes]] | None = []
        """(block, undo) applied since the last flush; None after a rollback (the node flushes
        before one, so replay never crosses it)."""
        self.taken = None
        """(native DirtyCoins, the model's delta, blocks of ``since_flush`` at the take) of a
        flush whose first half is done."""

    # -- helpers ------------------------------------------------------------------------------------

    def spendable(self) -> list[tuple[OutPoint, int, int]]:
        """(outpoint, value, owner key) of coins the generator can sign for."""
        out = []
        for key, coin in sorted(self.ref.coins.items()):
            value, owner = int.from_bytes(coin[:8], "little"), coin[8:40]
            if value >= MIN_SPEND and owner in self.keys:
                out.append((OutPoint.decode(key), value, self.keys[owner]))
        return out

    def transfer(self, coins: list[tuple[OutPoint, int, int]], payees: list[int]) -> Transaction:
        total = sum(v for _, v, _ in coins)
        sent = (total - RULES.min_fee_base) * 1000 // 1001 - 10
        shares = [sent // len(payees)] * len(payees)
        shares[-1] += sent - sum(shares)
        tx = g.unsigned_transfer([op for op, _, _ in coins], list(zip(shares, payees, strict=True)))
        return g.sign_all([tx], [[k for _, _, k in coins]])[0]

    def draw_txs(self, data: st.DataObject, max_txs: int) -> list[Transaction]:
        coins = self.spendable()
        n = data.draw(st.integers(0, min(max_txs, len(coins))), label="txs")
        picks = data.draw(st.permutations(range(len(coins))), label="order")[: 2 * n]
        txs: list[Transaction] = []
        i = 0
        while len(txs) < n and i < len(picks):
            width = data.draw(st.integers(1, 2), label="inputs")
            chosen = [coins[j] for j in picks[i : i + width]]
            i += width
            payees = data.draw(
                st.lists(st.integers(0, self.next_key - 1), min_size=1, max_size=2), label="payees"
            )
            txs.append(self.transfer(chosen, payees))
        if txs and data.draw(st.booleans(), label="child"):
            parent = txs[0]
            out = parent.outputs[0]
            txs.append(
                self.transfer([(OutPoint(parent.txid, 0), out.value, self.keys[out.pubkey_hash])], [0])
            )
        return txs

    def height(self) -> int:
        """Height of the next block (load_more does not reset it: coinbase txids stay unique)."""
        return self.tip + 1

    def assert_same_rejection(self, raw: bytes) -> str:
        before = (self.native.set_hash(), self.native.state(), len(self.native))
        with pytest.raises(ValidationError) as err:
            self.native.apply_block(raw, RULES)
        with pytest.raises(reference.ValidationError) as ref_err:
            self.ref.apply_block(raw, RULES)
        assert (err.value.code, err.value.tx_index) == (ref_err.value.code, ref_err.value.tx_index)
        assert (self.native.set_hash(), self.native.state(), len(self.native)) == before
        return err.value.code

    # -- rules --------------------------------------------------------------------------------------

    @rule(data=st.data())
    def apply_valid_block(self, data: st.DataObject) -> None:
        txs = self.draw_txs(data, 3)
        raw = g.assemble(txs, self.height(), set_hash=g.set_hash_after(self.native, RULES))
        a = self.native.apply_block(raw, RULES)
        b = self.ref.apply_block(raw, RULES)
        assert (a.undo, a.fees, a.txids, a.block_hash) == (b.undo, b.fees, b.txids, b.block_hash)
        assert self.native.set_hash() == Block.decode(raw).header.utxo_set_hash
        self.undos.append((a.undo, b.undo))
        if self.since_flush is not None:
            self.since_flush.append((raw, a.undo))
        self.tip += 1

    @rule(data=st.data(), fault=st.sampled_from(["double-spend", "signature", "missing", "set-hash"]))
    def reject_invalid_block(self, data: st.DataObject, fault: str) -> None:
        txs = self.draw_txs(data, 2)
        if not txs:
            return
        if fault == "double-spend":
            first = txs[0]
            keys = [self.keys[hash_public_key(w.public_key)] for w in first.witnesses]
            twin = g.sign_all([g.unsigned_transfer(first.inputs, [(MIN_SPEND, 0)])], [keys])[0]
            txs.append(twin)
            expected = {"double-spend-in-block"}
        elif fault == "signature":
            tx = txs[-1]
            w = tx.witnesses[0]
            bad = Witness(w.public_key, bytes([w.signature[0] ^ 1]) + w.signature[1:])
            txs[-1] = Transaction(
                tx.version, tx.kind, tx.inputs, tx.outputs, tx.lock_time, tx.payload, (bad, *tx.witnesses[1:])
            )
            expected = {"bad-signature"}
        elif fault == "missing":
            txs.append(g.transfer([(OutPoint(bytes(32), 7), 0)], [(MIN_SPEND, 0)]))
            expected = {"missing-input"}
        else:
            raw = g.assemble(txs, self.height(), set_hash=bytes(32))
            assert self.assert_same_rejection(raw) == "bad-utxo-hash"
            return
        raw = g.assemble(txs, self.height(), set_hash=g.set_hash_after(self.native, RULES))
        assert self.assert_same_rejection(raw) in expected

    @precondition(lambda self: self.undos)
    @rule()
    def rollback(self) -> None:
        native_undo, ref_undo = self.undos.pop()
        self.native.rollback(native_undo)
        self.ref.rollback(ref_undo)
        self.since_flush = None
        self.tip -= 1

    @precondition(lambda self: len(self.undos) >= 2)
    @rule()
    def rollback_out_of_order_is_refused(self) -> None:
        before = (self.native.set_hash(), len(self.native))
        with pytest.raises(ValueError):
            self.native.rollback(self.undos[-2][0])
        with pytest.raises(ValueError):
            self.ref.rollback(self.undos[-2][1])
        assert (self.native.set_hash(), len(self.native)) == before

    @precondition(lambda self: self.stale)
    @rule(data=st.data())
    def stale_undo_is_refused(self, data: st.DataObject) -> None:
        native_undo, ref_undo = data.draw(st.sampled_from(self.stale), label="stale")
        before = (self.native.set_hash(), len(self.native))
        with pytest.raises(ValueError):
            self.native.rollback(native_undo)
        with pytest.raises(ValueError):
            self.ref.rollback(ref_undo)
        assert (self.native.set_hash(), len(self.native)) == before

    @precondition(lambda self: self.undos)
    @rule(data=st.data())
    def corrupted_undo_is_refused(self, data: st.DataObject) -> None:
        undo = self.undos[-1][0]
        # Everything from the prior set hash on is checked (height and block hash are labels).
        at = data.draw(st.integers(1 + 8 + 32, len(undo) - 1), label="byte")
        bad = undo[:at] + bytes([undo[at] ^ (1 << data.draw(st.integers(0, 7)))]) + undo[at + 1 :]
        before = (self.native.set_hash(), len(self.native))
        with pytest.raises(ValueError):
            self.native.rollback(bad)
        with pytest.raises(ValueError):
            self.ref.rollback(bad)
        assert (self.native.set_hash(), len(self.native)) == before

    @precondition(lambda self: self.taken is None)
    @rule(n=st.integers(1, 3))
    def load_more(self, n: int) -> None:
        """Coins the store holds appear (as at a restart). Undo records of blocks before it no
        longer fit the set: a rollback needs the set exactly as its block left it."""
        self.stale.extend(self.undos)
        self.undos.clear()
        entries = g.funding(n, FUNDING, start=self.next_key)
        for i in range(self.next_key, self.next_key + n):
            self.keys[g.owner(i)] = i
        self.next_key += n
        self.native.load(entries)
        self.ref.load(entries)
        self.store.update(keyed(entries))

    def write_store(self, delta: list[tuple[bytes, bytes | None]]) -> None:
        assert [k for k, _ in delta] == sorted({k for k, _ in delta})
        for key, coin in delta:
            if coin is None:
                assert key in self.store
                del self.store[key]
            else:
                assert self.store.get(key) != coin, "a delta write that changes nothing"
                self.store[key] = coin

    @precondition(lambda self: self.taken is None)
    @rule()
    def take_for_later(self) -> None:
        """A flush's first half: the native set's changes taken, their writes not worked out."""
        dirty = self.native.take_dirty()
        since = None if self.since_flush is None else len(self.since_flush)
        self.taken = (dirty, self.ref.take_delta(), since)

    @precondition(lambda self: self.taken is not None)
    @rule()
    def finish_take(self) -> None:
        """The second half, after whatever happened since: the writes of the moment of the take,
        the same when worked out again; the store then replays the blocks since the take."""
        dirty, expected, since = self.taken
        self.taken = None
        delta = dirty.delta()
        assert delta[:] == expected == dirty.delta()[:]
        self.write_store(expected)
        if self.since_flush is not None:
            assert since is not None
            self.since_flush = self.since_flush[since:]

    @precondition(lambda self: self.taken is None)
    @rule()
    def flush(self) -> None:
        delta = self.native.take_delta()
        assert delta == self.ref.take_delta()
        self.write_store(delta)
        assert self.store == keyed(self.ref.coins.items())
        assert len(self.native) == len(self.store)
        assert all(self.native.get(k[8:]) == c for k, c in self.store.items())
        assert self.native.take_delta() == []
        self.since_flush = []

    @precondition(lambda self: self.since_flush is not None and self.taken is None)
    @rule(data=st.data())
    def replay_after_a_crash_mid_flush(self, data: st.DataObject) -> None:
        pending = copy.deepcopy(self.ref).take_delta()  # what a flush now would write
        n = len(pending)
        landed = data.draw(st.lists(st.booleans(), min_size=n, max_size=n), label="landed")
        store = dict(self.store)
        for (key, coin), hit in zip(pending, landed, strict=True):
            if hit and coin is None:
                store.pop(key, None)
            elif hit:
                store[key] = coin
        native, ref = UtxoSet(), reference.UtxoSet()
        native.load(sorted((k[8:], c) for k, c in store.items()))
        ref.load(sorted((k[8:], c) for k, c in store.items()))
        for raw, undo in self.since_flush or []:
            native.replay_block(raw, undo)
            ref.replay_block(raw, undo)
        assert native.set_hash() == ref.set_hash() == self.native.set_hash()
        assert ref.coins == self.ref.coins
        delta = native.take_delta()
        assert delta == ref.take_delta()
        for key, coin in delta:
            if coin is None:
                del store[key]
            else:
                store[key] = coin
        assert store == keyed(self.ref.coins.items())

    # -- invariants ---------------------------------------------------------------------------------

    @invariant()
    def same_set(self) -> None:
        assert len(self.native) == len(self.ref)
        assert self.native.state() == self.ref.state()
        assert self.native.set_hash() == self.ref.set_hash()
        assert all(self.native.get(k) == c for k, c in self.ref.coins.items())


UtxoModel.TestCase.settings = settings(UtxoModel.TestCase.settings, stateful_step_count=25)
TestUtxoModel = UtxoModel.TestCase


def test_reference_lthash_matches_a_recomputation() -> None:
    """The model's incremental hash equals the hash recomputed from its contents."""
    ref = reference.UtxoSet()
    ref.load(g.funding(5, FUNDING))
    state = reference_lthash.LtHash()
    for key, coin in ref.coins.items():
        state.insert(key + coin)
    assert state == ref.hash and state.digest() == ref.set_hash()


@given(
    st.lists(
        st.tuples(
            st.binary(min_size=36, max_size=36),
            st.tuples(
                st.integers(0, 2**64 - 1),
                st.binary(min_size=32, max_size=32),
                st.integers(0, 2**64 - 1),
                st.booleans(),
            ),
        ),
        max_size=20,
        unique_by=lambda e: e[0],
    )
)
def test_lthash_of_loaded_coins_matches_the_reference(entries) -> None:
    """Native LtHash16 (via load) equals the pure-Python one on arbitrary outpoints and coins."""
    encoded = [(op, Coin(v, h, height, cb).encode()) for op, (v, h, height, cb) in entries]
    native = UtxoSet()
    native.load(encoded)
    state = reference_lthash.LtHash()
    for op, coin in encoded:
        state.insert(op + coin)
    assert native.state() == state.to_bytes() and native.set_hash() == state.digest()
    assert native.memory_usage() >= len(encoded) * (36 + 49)
