"""The Cython-compiled hot modules (setup.py ``HOT_MODULES``, DESIGN §2): the normal install
compiles every one of them, and each compiled module gives exactly what its pure-Python source
gives on the same inputs (hypothesis), errors included. The source, loaded directly
(:func:`timecoin.testing.pure.load_pure`), is the reference."""

from __future__ import annotations

import ast
import importlib
import os
from collections import OrderedDict
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import timecoin.consensus.settle as settle
import timecoin.consensus.tally as tally
import timecoin.consensus.txstate as txstate
import timecoin.p2p.framing as framing
import timecoin.p2p.items as items
import timecoin.p2p.seen as seen
from timecoin.consensus.messages import TxVote
from timecoin.consensus.validators import ValidatorSet
from timecoin.p2p import messages as m
from timecoin.p2p.messages import MessageType
from timecoin.testing.pure import is_compiled, load_pure

SETUP_PY = Path(__file__).resolve().parents[2] / "setup.py"
MAGIC = b"TEST"


def hot_modules() -> list[str]:
    """setup.py's ``HOT_MODULES`` as module names (read from its source: setup.py runs setup()
    when imported)."""
    for node in ast.parse(SETUP_PY.read_text()).body:
        if isinstance(node, ast.AnnAssign) and getattr(node.target, "id", None) == "HOT_MODULES":
            assert node.value is not None
            paths = ast.literal_eval(node.value)
            return [p.removesuffix(".py").replace("/", ".") for p in paths]
    raise AssertionError("setup.py has no HOT_MODULES")


def test_hot_modules_are_those_with_an_equivalence_test():
    assert sorted(hot_modules()) == sorted(
        [
            "timecoin.p2p.framing",
            "timecoin.p2p.items",
            "timecoin.p2p.seen",
            "timecoin.consensus.settle",
            "timecoin.consensus.tally",
            "timecoin.consensus.txstate",
        ]
    )


@pytest.mark.skipif(
    os.environ.get("TIMECOIN_PURE_PYTHON") == "1",
    reason="TIMECOIN_PURE_PYTHON=1: the install compiled none of the hot modules",
)
@pytest.mark.parametrize("name", hot_modules())
def test_installed_hot_module_is_compiled(name):
    module = importlib.import_module(name)
    assert is_compiled(module), f"{name} loaded from {module.__file__}: reinstall (README) to build it"
    assert not is_compiled(load_pure(module))


@pytest.mark.skipif(
    os.environ.get("TIMECOIN_PURE_PYTHON") == "1",
    reason="TIMECOIN_PURE_PYTHON=1: the install compiled none of the hot modules",
)
def test_certificate_references_are_not_scanned_by_the_cyclic_collector():
    """A node remembers 100,000 certificates by reference, each naming vote batches and indexes:
    compiled, the batch record and the reference are untracked, so CPython untracks the flat
    tuples of batches and indexes too and no collection scans them (the pure classes are
    tracked)."""
    import gc

    record = tally.VoteRecord(TxVote(0, bytes([1]) * 32, (bytes(32),), (), bytes(64)), 1)
    refs = tally.CertificateRefs(bytes(32), 0, (record,), (0,))
    gc.collect()
    assert not gc.is_tracked(record)
    assert not gc.is_tracked(refs)
    assert not gc.is_tracked(refs.records) and not gc.is_tracked(refs.indexes)
    pure = load_pure(tally)
    assert gc.is_tracked(pure.CertificateRefs(bytes(32), 0, (), ()))


def test_transaction_records_match_their_source():
    """``PendingTx`` and ``FinalEntry``, compiled and interpreted: the same fields, defaults and
    certificate bytes (an encoded certificate as it is, one by reference encoded)."""
    record = tally.VoteRecord(TxVote(0, bytes([1]) * 32, (bytes(32),), (), bytes(64)), 1)
    refs = tally.CertificateRefs(bytes(32), 7, (record,), (0,))
    for module in (txstate, load_pure(txstate)):
        p = module.PendingTx(b"t" * 32, b"raw", (b"o" * 36,), 1.5, True)
        fields = (p.txid, p.raw, p.inputs, p.first_seen, p.in_mempool)
        assert fields == (b"t" * 32, b"raw", (b"o" * 36,), 1.5, True)
        assert (p.decision, p.last_voted, p.last_relayed, p.conflict_since) == (None, None, None, None)
        p.decision, p.last_voted, p.conflict_since = False, 2.5, 3.0
        assert (p.decision, p.last_voted, p.conflict_since) == (False, 2.5, 3.0)
        assert module.FinalEntry(b"raw", b"\x01cert", (), b"k").certificate_bytes() == b"\x01cert"
        entry = module.FinalEntry(b"raw", refs, (b"o" * 36,), b"k")
        assert entry.certificate_bytes() == refs.encode() and entry.certificate is refs


@pytest.mark.skipif(
    os.environ.get("TIMECOIN_PURE_PYTHON") == "1",
    reason="TIMECOIN_PURE_PYTHON=1: the install compiled none of the hot modules",
)
def test_transaction_records_are_not_scanned_by_the_cyclic_collector():
    """Tens of thousands are alive under load: compiled, none is tracked (the pure ones are)."""
    import gc

    pure = load_pure(txstate)
    for module, tracked in ((txstate, False), (pure, True)):
        assert gc.is_tracked(module.PendingTx(b"t", b"r", (), 0.0, True)) is tracked
        assert gc.is_tracked(module.FinalEntry(b"r", b"c", (), b"k")) is tracked


def outcome(call: Any) -> Any:
    """What a call gives: its result, or its exception's class name, message and ``code``."""
    try:
        return ("ok", call())
    except Exception as e:
        return ("error", type(e).__name__, str(e), getattr(e, "code", None))


# -- framing ----------------------------------------------------------------------------------------

frame_st = st.tuples(
    st.sampled_from([MessageType.PING, MessageType.TX_BATCH, MessageType.GETADDR, MessageType.VOTE_BATCH]),
    st.binary(max_size=64),
)
garbage_st = st.one_of(
    st.binary(min_size=1, max_size=12),  # anything: bad magic, unknown types, huge lengths
    st.tuples(st.integers(0, 2**16 - 1), st.integers(0, 2**32 - 1)).map(
        lambda tl: framing.HEADER.pack(MAGIC, *tl)  # a good magic with any type and length
    ),
)


@settings(max_examples=300)
@given(
    st.lists(st.one_of(frame_st.map(lambda f: framing.encode_frame(MAGIC, *f)), garbage_st), max_size=8),
    st.lists(st.integers(min_value=0, max_value=800), max_size=8),
)
def test_framing_compiled_equals_pure(parts, cuts):
    stream = b"".join(parts)
    points = sorted({c % (len(stream) + 1) for c in cuts} | {0, len(stream)})
    pure = load_pure(framing)
    got = []
    for module in (framing, pure):
        decoder = module.FrameDecoder(MAGIC, m.FRAME_LIMITS)
        steps = []
        for a, b in zip(points, points[1:], strict=False):
            steps.append(outcome(lambda: decoder.feed(stream[a:b])))  # noqa: B023
            steps.append(decoder.buffered)
            if steps[-2][0] == "error":
                break
        got.append(steps)
    assert got[0] == got[1]


# -- items --------------------------------------------------------------------------------------------


@settings(max_examples=300)
@given(
    st.one_of(
        st.lists(st.binary(max_size=40), max_size=12).map(items.encode_items),
        st.lists(st.binary(max_size=40), max_size=12).map(lambda xs: items.encode_items(xs) + b"\x01"),
        st.binary(max_size=80),
    ),
    st.integers(min_value=0, max_value=16),
    st.integers(min_value=0, max_value=48),
)
def test_items_compiled_equals_pure(payload, max_items, max_item):
    pure = load_pure(items)
    assert outcome(lambda: items.decode_items(payload, max_items, max_item, "X")) == outcome(
        lambda: pure.decode_items(payload, max_items, max_item, "X")
    )
    decoded = outcome(lambda: pure.decode_items(payload, 1 << 20, 1 << 20, "X"))
    if decoded[0] == "ok":
        assert items.encode_items(decoded[1]) == pure.encode_items(decoded[1]) == payload


# -- seen-cache ---------------------------------------------------------------------------------------

seen_op_st = st.one_of(
    st.tuples(st.just("add"), st.binary(min_size=1, max_size=2)),
    st.tuples(st.just("add_items"), st.lists(st.binary(min_size=1, max_size=2), max_size=6)),
    st.tuples(st.just("discard"), st.binary(min_size=1, max_size=2)),
    st.tuples(st.just("contains"), st.binary(min_size=1, max_size=2)),
)


@settings(max_examples=300)
@given(st.integers(min_value=1, max_value=5), st.lists(seen_op_st, max_size=40))
def test_seen_cache_compiled_equals_pure(capacity, ops):
    pure = load_pure(seen)
    logs = []
    for module in (seen, pure):
        cache = module.SeenCache(capacity)
        log = []
        for op, arg in ops:
            if op == "add":
                log.append(cache.add(module.item_key(arg)))
            elif op == "add_items":
                log.append(cache.add_items(arg))
            elif op == "discard":
                log.append(cache.discard(module.item_key(arg)))
            else:
                log.append(module.item_key(arg) in cache)
            log.append(len(cache))
        logs.append(log)
    assert logs[0] == logs[1]


# -- tally --------------------------------------------------------------------------------------------

VOTER_KEYS = tuple(bytes([i + 1]) * 32 for i in range(4))
VSET = ValidatorSet(1, VOTER_KEYS, (1, 2, 4, 5))  # total 12: a quorum can be exactly 2/3
TX_UNIVERSE = tuple(bytes([i]) * 32 for i in range(6))

# One batch: a voter and its decision (accept, reject, none) on each txid of the universe.
batch_st = st.tuples(
    st.integers(0, len(VOTER_KEYS) - 1), st.lists(st.sampled_from("arn"), min_size=6, max_size=6)
).filter(lambda batch: batch[1] != ["n"] * 6)  # a vote decides at least one txid
tally_op_st = st.one_of(batch_st, st.tuples(st.just(-1), st.integers(0, len(TX_UNIVERSE) - 1)))  # -1: admit


def _vote(voter: int, decisions: list[str]) -> TxVote:
    accepts = tuple(t for t, d in zip(TX_UNIVERSE, decisions, strict=True) if d == "a")
    rejects = tuple(t for t, d in zip(TX_UNIVERSE, decisions, strict=True) if d == "r")
    return TxVote(1, VOTER_KEYS[voter], accepts, rejects, bytes(64))


def _tally_state(t: Any) -> Any:
    return (
        len(t),
        t.parked,
        [
            (t.weights(x), t.accepters(x), sorted(t.decisions(x)), t.is_final(x), t.is_rejected(x))
            for x in TX_UNIVERSE
        ],
        [t.is_parked(x, v) for x in TX_UNIVERSE for v in VOTER_KEYS],
        [t.parked_txids(v) for v in VOTER_KEYS],
    )


@settings(max_examples=200)
@given(st.lists(tally_op_st, max_size=12), st.sets(st.integers(0, len(TX_UNIVERSE) - 1)))
def test_tally_compiled_equals_pure(ops, held_indexes):
    held = {TX_UNIVERSE[i] for i in held_indexes}
    pure = load_pure(tally)
    runs = []
    for module in (tally, pure):
        t = module.Tally(VSET)
        log = []
        for voter, arg in ops:
            if voter < 0:
                txid = TX_UNIVERSE[arg]
                t.admit(txid)
                held.add(txid)
                log.append(("admit", txid))
            else:
                vote = _vote(voter, arg)
                log.append(t.count(module.VoteRecord(vote, VSET.weight(vote.voter)), set(held)))
            log.append(_tally_state(t))
        for txid in TX_UNIVERSE:
            log.append(outcome(lambda: t.certificate_bytes(txid)))  # noqa: B023
        runs.append(log)
        held = {TX_UNIVERSE[i] for i in held_indexes}
    assert runs[0] == runs[1]


# -- settle -------------------------------------------------------------------------------------------

SETTLE_TXIDS = tuple(bytes([i]) * 32 for i in range(1, 9))
SETTLE_OUTPOINTS = tuple(bytes([i]) * 36 for i in range(1, 13))
SETTLE_RECORDS = tuple(
    tally.VoteRecord(TxVote(1, VOTER_KEYS[i % 4], (bytes(32),), (), bytes(64)), 1) for i in range(4)
)

# A final transaction: its inputs (indexes of outpoints), record key, certificate (None: bytes;
# else the indexes of the vote batches it refers to).
final_st = st.tuples(
    st.sets(st.integers(0, len(SETTLE_OUTPOINTS) - 1), min_size=1, max_size=2),
    st.integers(0, 2),
    st.one_of(st.none(), st.sets(st.integers(0, len(SETTLE_RECORDS) - 1), min_size=1, max_size=3)),
)


@settings(max_examples=300)
@given(
    st.dictionaries(st.integers(0, len(SETTLE_TXIDS) - 1), final_st, max_size=6),
    st.lists(st.integers(0, len(SETTLE_TXIDS) - 1), unique=True, max_size=8),
    st.sets(st.integers(0, len(SETTLE_TXIDS) - 1)),
    st.sets(st.integers(0, len(SETTLE_OUTPOINTS) - 1)),
    st.sets(st.integers(0, len(SETTLE_OUTPOINTS) - 1)),
    st.dictionaries(st.integers(0, len(SETTLE_OUTPOINTS) - 1), st.integers(0, 2)),
)
def test_settle_compiled_equals_pure(finals, block, rejected, rivals, snowballs, accepts):
    """A block archiving any of a finalized pool (certificates as bytes or by reference, records
    and vote batches shared), then its spent outpoints settled and the signer's accepts of them
    forgotten: the compiled module leaves the same state and returns the same as its source."""
    pure = load_pure(settle)
    txids = (bytes(32), *(SETTLE_TXIDS[i] for i in block))
    runs = []
    for module in (settle, pure):
        finalized, spent_final, record_refs, batch_refs = {}, {}, {}, [0] * len(SETTLE_RECORDS)
        for i, (inputs, key, cert) in finals.items():
            txid = SETTLE_TXIDS[i]
            ins = tuple(SETTLE_OUTPOINTS[o] for o in sorted(inputs))
            record_key = b"k" + bytes([key])
            record_refs[record_key] = record_refs.get(record_key, 0) + 1
            if cert is None:
                certificate: Any = b"cert"
            else:
                for r in cert:
                    batch_refs[r] += 1
                chosen = tuple(SETTLE_RECORDS[r] for r in sorted(cert))
                certificate = tally.CertificateRefs(txid, 1, chosen, tuple(range(len(chosen))))
            finalized[txid] = txstate.FinalEntry(b"r" * (i + 1), certificate, ins, record_key)
            for o in ins:
                spent_final[o] = txid
        counted = zip(SETTLE_RECORDS, batch_refs, strict=True)
        batches = {r: module.StoredBatch(j, n) for j, (r, n) in enumerate(counted) if n}
        dropped = OrderedDict((SETTLE_TXIDS[i], "x") for i in sorted(rejected))
        spenders = {SETTLE_OUTPOINTS[o]: {b"rival"} for o in rivals}
        polls = {SETTLE_OUTPOINTS[o]: "poll" for o in snowballs}
        held = {SETTLE_OUTPOINTS[o]: b"t" for o in accepts}
        keys = {SETTLE_OUTPOINTS[o]: b"a" + bytes([k]) for o, k in accepts.items()}
        refs: dict[bytes, int] = {}
        for k in keys.values():
            refs[k] = refs.get(k, 0) + 1
        a = module.archive_final(txids, finalized, dropped, record_refs, batches, spent_final)
        archived = (a.spent, a.unknown, a.records, a.batches, a.archived_bytes)
        settled = module.settle_spent(list(a.spent), spent_final, spenders, polls)
        forgot = module.forget_accepts(list(a.spent) + list(SETTLE_OUTPOINTS[:3]), held, keys, refs)
        state = (
            finalized.keys(),
            spent_final,
            record_refs,
            {j: (b.sequence, b.refs) for j, b in enumerate(batches.values())},
            list(dropped),
            polls,
            held,
            keys,
            refs,
        )
        runs.append((archived, settled, forgot, repr(state)))
    assert runs[0] == runs[1]
