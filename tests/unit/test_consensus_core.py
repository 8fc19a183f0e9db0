"""The pure parts of consensus (DESIGN §6, §7, §12 invariant 3): quorum arithmetic and weighted
sampling, the vote tally and its certificates (checked by ``verify_certificate``), the merkle
levels behind certificate proofs (equal to ``crypto.merkle_root``/``merkle_proof``), the signer's
ordering and outpoint rules and their persistence over a real LMDB store, and Snowball."""

from __future__ import annotations

import hashlib
import itertools
import random
from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from timecoin import crypto
from timecoin.consensus.certificates import CertificateError, verify_certificate
from timecoin.consensus.messages import TxVote
from timecoin.consensus.signer import DoubleSignRefused, SignerState, Step
from timecoin.consensus.snowball import Snowball
from timecoin.consensus.store import (
    CONSENSUS_DB,
    FINALIZED_DB,
    decode_finalized_group,
    encode_finalized_entry,
    finalized_group_key,
    finalized_sequence,
    load_finalized,
    load_signer_records,
)
from timecoin.consensus.tally import Tally, VoteRecord, merkle_levels, proof_from_levels
from timecoin.consensus.validators import ValidatorSet, is_blocking, is_quorum
from timecoin.reference import crypto as reference_crypto
from timecoin.store.chainstore import ChainStore, StoreError

CHAIN = hashlib.sha256(b"chain").digest()
SEEDS = [hashlib.sha256(b"mn" + bytes([i])).digest() for i in range(4)]
KEYS = [crypto.public_key(s) for s in SEEDS]
TXIDS = [hashlib.sha256(bytes([i])).digest() for i in range(40)]


def vset(weights, height=5):
    return ValidatorSet.of(height, KEYS[: len(weights)], weights)


def test_quorum_arithmetic():
    assert is_quorum(2, 3) and not is_quorum(1, 3)
    assert is_quorum(3, 4) and not is_quorum(2, 4)
    assert is_quorum(10, 15) and not is_quorum(9, 15)
    assert is_blocking(2, 4) and not is_blocking(1, 3) and is_blocking(2, 5)
    assert not is_quorum(0, 0)


def test_validator_set_checks_and_sampling():
    low, high = sorted(KEYS[:2])
    with pytest.raises(ValueError, match="ascending"):
        ValidatorSet(1, (high, low), (1, 1))
    with pytest.raises(ValueError):
        ValidatorSet.of(1, KEYS[:2], [1, 0])
    s = vset([1, 2, 3, 4])
    rng = random.Random(1)
    draws = Counter(s.sample(rng, 20_000))
    for key, weight in zip(s.keys, s.weights, strict=True):
        assert abs(draws[key] / 20_000 - weight / 10) < 0.02
    excluded = s.keys[2]
    draws = Counter(s.sample(rng, 20_000, exclude=excluded))
    assert excluded not in draws
    rest = s.total - s.weight(excluded)
    for key in draws:
        assert abs(draws[key] / 20_000 - s.weight(key) / rest) < 0.02
    assert vset([5]).sample(rng, 3, exclude=KEYS[0]) == []


@pytest.mark.parametrize("n", [1, 2, 3, 5, 8, 13, 33])
def test_merkle_levels_match_the_reference_tree(n):
    """Native levels against the pure-Python reference tree (timecoin/reference/crypto.py)."""
    leaves = TXIDS[:n]
    levels = merkle_levels(leaves)
    assert levels[-1] == reference_crypto.merkle_root(leaves) == crypto.merkle_root(leaves)
    assert len(levels[0]) == 32 * n
    for i in range(n):
        assert proof_from_levels(levels, i) == reference_crypto.merkle_proof(leaves, i)


def test_merkle_levels_need_a_leaf():
    with pytest.raises(ValueError, match="at least one leaf"):
        merkle_levels([])


def votes(txids_accept, txids_reject, voter, height=5):
    return TxVote.create(SEEDS[voter], CHAIN, height, txids_accept, txids_reject)


def test_tally_thresholds_certificate_and_contradictions():
    s = vset([1, 2, 4, 8])  # total 15: quorum ≥ 10, blocking > 5
    tally = Tally(s)
    target = TXIDS[0]
    assert tally.add(VoteRecord(votes([target], [TXIDS[1]], 3), 8)) == ([], [TXIDS[1]], [])  # 8 > 5 rejects
    assert tally.add(VoteRecord(votes([target], [], 0), 1)) == ([], [], [])  # 9 < 10
    assert not tally.is_final(target)
    with pytest.raises(ValueError):
        tally.certificate(target)
    final, _, _ = tally.add(VoteRecord(votes(TXIDS[:3], [], 1), 2))  # 11 ≥ 10
    assert final == [target] and tally.is_final(target) and tally.weights(target) == (11, 0)
    assert tally.add(VoteRecord(votes([target], [], 1), 2)) == ([], [], [])  # repeats count once
    assert tally.add(VoteRecord(votes([], [target], 2), 4))[2] == []  # a reject, weight 4
    assert tally.weights(target) == (11, 4)
    assert tally.add(VoteRecord(votes([], [target], 0), 1))[2] == [target]  # voter 0 contradicts itself
    assert tally.weights(target) == (10, 4)  # and no longer counts either way
    cert = tally.certificate(target)
    assert cert.voters == sorted([KEYS[1], KEYS[3]])
    assert verify_certificate(cert.encode(), target, s, CHAIN) == cert
    assert tally.certificate_bytes(target) == cert.encode()  # the hot path's direct encoding
    with pytest.raises(ValueError, match="no quorum"):
        tally.certificate_bytes(TXIDS[30])
    with pytest.raises(CertificateError) as e:
        verify_certificate(cert.encode(), target, vset([1, 2, 100, 8]), CHAIN)
    assert e.value.code == "no-quorum"
    tally.compact(target)  # decisions kept, batches released
    assert tally.add(VoteRecord(votes([], [target], 3), 8))[2] == [target]
    assert tally.weights(target) == (2, 4)  # the contradicting voter's accept is taken back
    assert tally.add(VoteRecord(votes([target], [], 3), 8))[2] == []  # and it counts no more


@given(st.lists(st.tuples(st.integers(0, 3), st.booleans()), max_size=12))
def test_tally_weights_equal_a_model(decisions):
    weights = [3, 5, 7, 11]
    s = vset(weights)
    tally = Tally(s)
    model: dict[int, bool | None] = {}  # a voter that contradicts itself no longer counts (None)
    for voter, accept in decisions:
        tally.add(
            VoteRecord(
                votes([TXIDS[0]] if accept else [], [] if accept else [TXIDS[0]], voter), weights[voter]
            )
        )
        if voter not in model:
            model[voter] = accept
        elif model[voter] is not None and model[voter] != accept:
            model[voter] = None
    accept = sum(weights[v] for v, a in model.items() if a is True)
    reject = sum(weights[v] for v, a in model.items() if a is False)
    assert tally.weights(TXIDS[0]) == (accept, reject)
    assert tally.is_final(TXIDS[0]) == is_quorum(accept, s.total)
    assert tally.is_rejected(TXIDS[0]) == is_blocking(reject, s.total)


def test_signer_block_rules():
    signer = SignerState()
    a, b = bytes([1]) * 32, bytes([2]) * 32
    assert signer.check(3, 0, Step.PREVOTE, a)
    signer.sign(3, 0, Step.PREVOTE, a, b"prevote")
    assert signer.check(3, 0, Step.PREVOTE, a) is False  # the same again: allowed, same bytes
    with pytest.raises(DoubleSignRefused):
        signer.check(3, 0, Step.PREVOTE, b)
    with pytest.raises(DoubleSignRefused):
        signer.check(3, 0, Step.PROPOSE, a)  # earlier step
    with pytest.raises(DoubleSignRefused):
        signer.check(2, 9, Step.PRECOMMIT, a)  # earlier height
    assert signer.check(3, 0, Step.PRECOMMIT, b) and signer.check(3, 1, Step.PROPOSE, b)


def test_signer_outpoint_rules():
    signer = SignerState()
    o1, o2 = bytes(36), bytes([1]) * 36
    writes = signer.accept([(o1, TXIDS[0]), (o2, TXIDS[0])])
    assert signer.accepted(o1) == TXIDS[0] and signer.accepted(o2) == TXIDS[0]
    assert signer.accept([(o1, TXIDS[0])]) == []  # nothing new
    assert signer.can_accept(TXIDS[0], [o1, o2]) and not signer.can_accept(TXIDS[1], [o2])
    with pytest.raises(DoubleSignRefused):
        signer.accept([(bytes([7]) * 36, TXIDS[1]), (o2, TXIDS[1])])
    assert signer.accepted(bytes([7]) * 36) is None  # refused as a whole
    # One record per call, keyed in the order made (accept/<sequence>), its pairs in the value.
    assert writes == [(CONSENSUS_DB, b"accept/" + (0).to_bytes(8, "big"), o1 + TXIDS[0] + o2 + TXIDS[0])]
    o3 = bytes([2]) * 36
    assert signer.accept([(o1, TXIDS[0]), (o3, TXIDS[3])]) == [
        (CONSENSUS_DB, b"accept/" + (1).to_bytes(8, "big"), o3 + TXIDS[3])  # only the new pair
    ]
    # A record is deleted once every one of its outpoints is forgotten.
    assert signer.forget([o1]) == []
    assert signer.accepted(o1) is None and signer.forget([o1]) == []
    assert signer.forget([o3, o2]) == [
        (CONSENSUS_DB, b"accept/" + (1).to_bytes(8, "big")),
        (CONSENSUS_DB, b"accept/" + (0).to_bytes(8, "big")),
    ]


def test_signer_reads_accept_records_of_every_layout():
    """``accept/<outpoint>`` → txid (earlier versions) and ``accept/<sequence>`` → one or more
    (outpoint ‖ txid); new records count on after the highest sequence read."""
    legacy, new, a, b = bytes([3]) * 36, bytes([4]) * 36, bytes([5]) * 36, bytes([6]) * 36
    records = [
        (b"accept/" + legacy, TXIDS[0]),
        (b"accept/" + (4).to_bytes(8, "big"), a + TXIDS[2] + b + TXIDS[3]),
        (b"accept/" + (5).to_bytes(8, "big"), new + TXIDS[1]),
    ]
    signer = SignerState.load(records)
    assert signer.accepted(legacy) == TXIDS[0] and signer.accepted(new) == TXIDS[1]
    assert signer.accepted(a) == TXIDS[2] and signer.accepted(b) == TXIDS[3]
    assert signer.forget([legacy, new, a]) == [
        (CONSENSUS_DB, b"accept/" + legacy),
        (CONSENSUS_DB, b"accept/" + (5).to_bytes(8, "big")),
    ]
    assert signer.forget([b]) == [(CONSENSUS_DB, b"accept/" + (4).to_bytes(8, "big"))]
    assert SignerState.load(records).accept([(bytes(36), TXIDS[2])])[0][1] == b"accept/" + (6).to_bytes(
        8, "big"
    )
    with pytest.raises(ValueError):
        SignerState.load([(b"accept/" + (1).to_bytes(8, "big"), TXIDS[0])])  # no outpoint in the value
    with pytest.raises(ValueError):
        SignerState.load([(b"accept/" + (1).to_bytes(8, "big"), new + TXIDS[0] + new)])  # cut short
    with pytest.raises(ValueError):
        SignerState.load([(b"accept/" + (1).to_bytes(8, "big"), b"")])  # empty


def test_signer_state_survives_a_reopened_store(tmp_path):
    signer = SignerState()
    writes = [
        *signer.sign(
            4, 2, Step.PRECOMMIT, bytes([5]) * 32, b"\x05\x01" + (4).to_bytes(8, "little") + b"rest"
        ),
        *signer.set_lock(4, 2, bytes([5]) * 32),
        *signer.accept([(bytes(36), TXIDS[3])]),
    ]
    store = ChainStore.open(tmp_path)
    store.write(writes)
    store.close()
    store = ChainStore.open(tmp_path)
    loaded = SignerState.load(load_signer_records(store))
    store.close()
    assert loaded.last == signer.last and loaded.lock == signer.lock
    assert loaded.locked(4) == (2, bytes([5]) * 32) and loaded.locked(5) is None
    assert loaded.accepted(bytes(36)) == TXIDS[3]
    assert loaded.signed_at(4) == [signer.messages[Step.PRECOMMIT]]
    with pytest.raises(DoubleSignRefused):
        loaded.check(4, 2, Step.PRECOMMIT, bytes([6]) * 32)
    with pytest.raises(ValueError):
        SignerState.load([(b"signer/last", b"short")])


def test_snowball_decides_after_beta_consecutive_successes():
    a, b = TXIDS[0], TXIDS[1]
    sb = Snowball(bytes(36), [a, b], a, k=4, alpha=3, beta=3)
    assert sb.record([b, b, b, a]) == b and sb.preference == b  # confidence b 1 > a 0
    assert sb.record([a, b, None, None]) is None and sb.consecutive == 0  # no alpha: reset
    assert sb.record([b, b, b, b]) == b and sb.consecutive == 1
    assert sb.record([a, a, a, b]) == a and sb.preference == b  # a's confidence 1 < b's 2
    for _ in range(2):
        sb.record([b, b, b, a])
    assert not sb.decided and sb.consecutive == 2
    sb.record([b, b, b, b])
    assert sb.decided and sb.preference == b
    other = Snowball(bytes(36), [a, b], b, k=4, alpha=3, beta=3)
    other.remove_candidate(b)
    assert other.preference == a
    with pytest.raises(ValueError):
        Snowball(bytes(36), [a, b], TXIDS[2], k=4, alpha=3, beta=1)
    with pytest.raises(ValueError):
        Snowball(bytes(36), [a, b], a, k=4, alpha=5, beta=1)


def test_signer_valid_value_survives_a_reload(tmp_path):
    """The valid value (round, block, the prevotes proving it) is persisted with the signer state
    and read back exactly; a damaged record is refused, never half-read."""
    state = SignerState.load([])
    prevotes = [bytes([i]) * (90 + i) for i in range(3)]
    writes = state.set_valid(7, 3, b"\x05" * 32, b"block bytes", prevotes)
    assert state.valid_value(7) == (3, b"\x05" * 32, b"block bytes", tuple(prevotes))
    assert state.valid_value(8) is None
    records = [(key, value) for _, key, value in writes]
    assert SignerState.load(records).valid_value(7) == state.valid_value(7)
    key, value = records[0]
    for damaged in (value[:-1], value + b"\x00", value[:50]):
        with pytest.raises(ValueError, match="signer/valid"):
            SignerState.load([(key, damaged)])


entries = st.lists(
    st.tuples(st.binary(min_size=32, max_size=32), st.binary(max_size=300), st.binary(max_size=80)),
    min_size=1,
    max_size=8,
)


@given(entries, st.data())
def test_finalized_group_records_round_trip_and_refuse_an_entry_cut_short(group, data):
    encoded = [encode_finalized_entry(*e) for e in group]
    value = b"".join(encoded)
    assert decode_finalized_group(value) == group
    cut = data.draw(st.integers(min_value=0, max_value=len(value) - 1))
    ends = list(itertools.accumulate(len(e) for e in encoded))
    if cut in ends:  # between two entries: the ones before it
        assert decode_finalized_group(value[:cut]) == group[: ends.index(cut) + 1]
    else:
        with pytest.raises(ValueError):
            decode_finalized_group(value[:cut])  # empty, or an entry cut short


def test_finalized_keys_of_every_layout(tmp_path):
    """Group records (``G`` ‖ sequence), per-transaction records of the previous layout
    (sequence) and of the one before (txid) load alike; a malformed group is a StoreError."""
    assert finalized_sequence(finalized_group_key(9)) == 9
    assert finalized_sequence((4).to_bytes(8, "big")) == 4 and finalized_sequence(TXIDS[0]) is None
    store = ChainStore.open(tmp_path)
    try:
        group = [(TXIDS[1], b"tx1", b"proof1"), (TXIDS[2], b"tx2", b"")]
        store.write(
            [
                (FINALIZED_DB, finalized_group_key(9), b"".join(encode_finalized_entry(*e) for e in group)),
                (FINALIZED_DB, (4).to_bytes(8, "big"), TXIDS[3] + (3).to_bytes(4, "little") + b"tx3p3"),
                (FINALIZED_DB, TXIDS[0], (3).to_bytes(4, "little") + b"tx0p0"),
            ]
        )
        loaded = sorted(load_finalized(store))
        assert loaded == sorted(
            [
                (finalized_group_key(9), TXIDS[1], b"tx1", b"proof1"),
                (finalized_group_key(9), TXIDS[2], b"tx2", b""),
                ((4).to_bytes(8, "big"), TXIDS[3], b"tx3", b"p3"),
                (TXIDS[0], TXIDS[0], b"tx0", b"p0"),
            ]
        )
        store.write(
            [(FINALIZED_DB, finalized_group_key(10), encode_finalized_entry(TXIDS[4], b"t", b"p")[:-1])]
        )
        with pytest.raises(StoreError, match="is corrupt"):
            load_finalized(store)
    finally:
        store.close()
