"""The VRF-weighted leader order (docs/leader-selection.md) on native and reference.

* Exactness: driving the reference's draw with every possible random value shows each draw picks
  a masternode with probability exactly weight / remaining weight; rejection sampling skips the
  words past the last whole copy of [0, T).
* Statistics: over 20,000 fixed seeds the first and second leaders follow the exact
  distributions (chi-square at α = 0.001 and a 5σ bound per masternode). The seeds are fixed, so
  the test is deterministic: it fails only if the rule changes.
* Agreement: native == reference == a literal linear-scan statement of the rule; identical on
  repeated calls; independent of the input order.
* Eligibility: the round's leader with a valid VRF proof is accepted along a chained run of
  heights; a wrong rank, a bad or misdirected proof, or an outsider is rejected.
"""

import hashlib
import math
import random
from collections import Counter
from fractions import Fraction

import pytest
from blake3 import blake3
from hypothesis import given
from hypothesis import strategies as st

from timecoin import crypto
from timecoin.masternode import leader
from timecoin.reference import leader as reference

IMPLS = pytest.mark.parametrize("impl", [leader, reference], ids=["native", "reference"])


def _keys(n: int, tag: bytes = b"mn") -> list[bytes]:
    return [hashlib.sha256(tag + i.to_bytes(4, "little")).digest() for i in range(n)]


def _seed(i: int) -> bytes:
    return hashlib.sha512(b"seed" + i.to_bytes(8, "little")).digest()


def _linear_order(seed: bytes, height: int, keys: list[bytes], weights: list[int]) -> list[int]:
    """The rule exactly as docs/leader-selection.md words it, with no data structure."""
    stream = blake3(
        seed + height.to_bytes(8, "little"), derive_key_context=crypto.HASH_DOMAINS["leader_draw"]
    )
    words = (int.from_bytes(stream.digest(length=16, seek=16 * k), "little") for k in range(10**9))
    left = sorted(range(len(keys)), key=lambda i: keys[i])
    out = []
    while left:
        total = sum(weights[i] for i in left)
        u = next(words)
        while u >= 2**128 - 2**128 % total:
            u = next(words)
        r, acc = u % total, 0
        for at, i in enumerate(left):
            acc += weights[i]
            if acc > r:
                out.append(left.pop(at))
                break
    return out


# --- exactness -----------------------------------------------------------------------------------


def _first_two_with_words(monkeypatch, weights, keys, words):
    feed = iter(words)
    monkeypatch.setattr(reference._Stream, "word", lambda self: next(feed))
    return reference.leader_order(bytes(64), 0, keys, weights, 2)


def test_each_draw_is_exactly_proportional(monkeypatch):
    weights = [3, 1, 4, 1, 5, 9, 2, 6]
    keys = _keys(len(weights))
    canonical = sorted(range(len(keys)), key=lambda i: keys[i])
    total = sum(weights)
    first = Counter()
    for r1 in range(total):
        # r1 picks the masternode whose interval of the running sum (in key order) contains it.
        i, _ = _first_two_with_words(monkeypatch, weights, keys, [r1, 0])
        first[i] += 1
        second = Counter()
        for r2 in range(total - weights[i]):
            a, j = _first_two_with_words(monkeypatch, weights, keys, [r1, r2])
            assert a == i
            second[j] += 1
        # Given the first pick, each other masternode has exactly its weight's share of the rest.
        assert second == Counter({j: weights[j] for j in range(len(weights)) if j != i})
    assert first == Counter(dict(enumerate(weights)))
    # Intervals follow the canonical order.
    assert _first_two_with_words(monkeypatch, weights, keys, [0, 0])[0] == canonical[0]


def test_rejection_sampling_skips_the_biased_tail(monkeypatch):
    weights = [3, 1, 4, 1, 5, 9, 2, 6]  # total 31: 2^128 mod 31 = 8 words are rejected
    keys = _keys(len(weights))
    max_accepted = 2**128 - 2**128 % 31 - 1
    for r in range(31):
        plain = _first_two_with_words(monkeypatch, weights, keys, [r, 0])
        accepted_tail = _first_two_with_words(monkeypatch, weights, keys, [max_accepted - 30 + r, 0])
        assert accepted_tail == plain  # max_accepted − 30 + r ≡ r (mod 31)
        rejected = _first_two_with_words(monkeypatch, weights, keys, [max_accepted + 1, 2**128 - 1, r, 0])
        assert rejected == plain


# --- statistics ----------------------------------------------------------------------------------

SAMPLES = 20_000
CHI2_CRITICAL_DF7_P001 = 24.322  # chi-square quantile, 7 degrees of freedom, α = 0.001
SIGMAS = 5.0


def _check_frequencies(counts: Counter, probabilities: list[Fraction]) -> None:
    chi2 = 0.0
    for i, p in enumerate(probabilities):
        expected = SAMPLES * float(p)
        sigma = math.sqrt(SAMPLES * float(p) * (1 - float(p)))
        assert abs(counts[i] - expected) <= SIGMAS * sigma, (i, counts[i], expected)
        chi2 += (counts[i] - expected) ** 2 / expected
    assert chi2 < CHI2_CRITICAL_DF7_P001, chi2


def test_leaders_follow_the_weights():
    weights = [1, 1, 2, 2, 4, 8, 8, 16]  # tier weights, total 42
    keys = _keys(len(weights))
    total = sum(weights)
    firsts, seconds = Counter(), Counter()
    for i in range(SAMPLES):
        a, b = leader.leader_order(_seed(i), i, keys, weights, 2)
        firsts[a] += 1
        seconds[b] += 1
    p_first = [Fraction(w, total) for w in weights]
    # P(j second) = Σ_{i≠j} P(i first) · w_j / (total − w_i): the draw is without replacement.
    p_second = [
        sum(
            (p_first[i] * Fraction(wj, total - weights[i]) for i in range(len(weights)) if i != j),
            Fraction(0),
        )
        for j, wj in enumerate(weights)
    ]
    assert sum(p_second) == 1
    _check_frequencies(firsts, p_first)
    _check_frequencies(seconds, p_second)


# --- agreement -----------------------------------------------------------------------------------


def test_native_reference_and_the_literal_rule_agree():
    for n, height in [(1, 0), (2, 5), (7, 2**64 - 1), (33, 1000), (100, 7)]:
        keys = _keys(n, b"agree")
        weights = [1 + (i * 7919) % 17 + (2**63 if i % 9 == 0 else 0) for i in range(n)]
        seed = _seed(n)
        order = leader.leader_order(seed, height, keys, weights)
        assert order == reference.leader_order(seed, height, keys, weights)
        assert order == _linear_order(seed, height, keys, weights)
        assert sorted(order) == list(range(n))


def test_large_set_agrees():
    rng = random.Random(1)
    n = 1000
    keys = _keys(n, b"large")
    weights = [rng.choice([1, 2, 4, 8]) * rng.randint(100, 300) for _ in range(n)]
    order = leader.leader_order(_seed(1), 42, keys, weights)
    assert order == reference.leader_order(_seed(1), 42, keys, weights)
    rank_of = {i: r for r, i in enumerate(order)}
    for i in (0, 500, 999):
        assert leader.leader_rank(_seed(1), 42, keys, weights, keys[i]) == rank_of[i]
        assert reference.leader_rank(_seed(1), 42, keys, weights, keys[i]) == rank_of[i]


masternode_sets = st.integers(min_value=1, max_value=40).flatmap(
    lambda n: st.tuples(
        st.lists(st.binary(min_size=32, max_size=32), min_size=n, max_size=n, unique=True),
        st.lists(
            st.one_of(st.sampled_from([1, 2, 4, 8]), st.integers(min_value=1, max_value=2**64 - 1)),
            min_size=n,
            max_size=n,
        ),
    )
)


@given(
    masternode_sets,
    st.binary(min_size=64, max_size=64),
    st.integers(min_value=0, max_value=2**64 - 1),
    st.integers(min_value=0, max_value=2**32 - 1),
    st.data(),
)
def test_native_equals_reference(mn_set, seed, height, round_, data):
    keys, weights = mn_set
    order = leader.leader_order(seed, height, keys, weights)
    assert order == reference.leader_order(seed, height, keys, weights)
    count = data.draw(st.integers(min_value=0, max_value=len(keys) + 3))
    assert leader.leader_order(seed, height, keys, weights, count) == order[:count]
    assert reference.leader_order(seed, height, keys, weights, count) == order[:count]
    who = data.draw(st.integers(min_value=0, max_value=len(keys) - 1))
    assert leader.leader_rank(seed, height, keys, weights, keys[who]) == order.index(who)
    assert reference.leader_rank(seed, height, keys, weights, keys[who]) == order.index(who)
    expected = order[round_ % len(keys)]
    assert leader.round_leader(seed, height, round_, keys, weights) == expected
    assert reference.round_leader(seed, height, round_, keys, weights) == expected


@IMPLS
def test_identical_on_repeated_calls_and_stable_under_reordering(impl):
    keys = _keys(60, b"reorder")
    weights = [1 + i % 8 for i in range(60)]
    seed = _seed(99)
    order = impl.leader_order(seed, 12, keys, weights)
    assert impl.leader_order(seed, 12, keys, weights) == order
    assert impl.leader_order(seed, 12, tuple(keys), tuple(weights)) == order
    leaders = [keys[i] for i in order]
    for shuffle_seed in range(5):
        perm = list(range(60))
        random.Random(shuffle_seed).shuffle(perm)
        shuffled_keys = [keys[p] for p in perm]
        shuffled_weights = [weights[p] for p in perm]
        got = impl.leader_order(seed, 12, shuffled_keys, shuffled_weights)
        assert [shuffled_keys[i] for i in got] == leaders
    # A different height or seed gives a different order.
    assert impl.leader_order(seed, 13, keys, weights) != order
    assert impl.leader_order(_seed(100), 12, keys, weights) != order


@IMPLS
def test_rounds_wrap_around_the_set(impl):
    keys = _keys(3)
    order = impl.leader_order(_seed(0), 1, keys, [1, 2, 3])
    for r in range(9):
        assert impl.round_leader(_seed(0), 1, r, keys, [1, 2, 3]) == order[r % 3]
    assert impl.round_leader(_seed(0), 1, 2**32 - 1, keys, [1, 2, 3]) == order[(2**32 - 1) % 3]


@IMPLS
def test_golden_vector_of_the_docs(impl):
    # docs/leader-selection.md, "Worked example".
    keys = _keys(5)
    weights = [1, 2, 4, 8, 3]
    stream = blake3(
        bytes(64) + (1).to_bytes(8, "little"), derive_key_context=crypto.HASH_DOMAINS["leader_draw"]
    )
    assert stream.digest(length=16).hex() == "fa316e6e766024d15b2870f26e1551ac"
    assert sorted(range(5), key=lambda i: keys[i]) == [2, 3, 4, 1, 0]
    assert impl.leader_order(bytes(64), 1, keys, weights) == [2, 3, 1, 0, 4]


def test_vrf_alpha_layout():
    seed = _seed(5)
    alpha = leader.vrf_alpha(seed, 7, 3)
    assert alpha == seed + (7).to_bytes(8, "little") + (3).to_bytes(4, "little")
    assert len(alpha) == leader.VRF_ALPHA_LEN == 76
    assert reference.vrf_alpha(seed, 7, 3) == alpha


# --- eligibility ---------------------------------------------------------------------------------

SECRETS = [hashlib.sha256(b"masternode" + bytes([i])).digest() for i in range(12)]
PUBLIC_KEYS = [crypto.public_key(s) for s in SECRETS]
WEIGHTS = [1, 2, 4, 8] * 3


def test_a_chain_of_proposals_is_accepted_and_chains_the_seed():
    seed = hashlib.sha512(b"genesis vrf_output").digest()
    seen = set()
    for height in range(1, 16):
        round_ = height % 3
        i = leader.round_leader(seed, height, round_, PUBLIC_KEYS, WEIGHTS)
        proof, output = leader.prove_eligibility(SECRETS[i], seed, height, round_)
        assert (
            leader.check_proposer(seed, height, round_, PUBLIC_KEYS, WEIGHTS, PUBLIC_KEYS[i], proof) == output
        )
        if height % 5 == 0:
            assert reference.prove_eligibility(SECRETS[i], seed, height, round_) == (proof, output)
            got = reference.check_proposer(seed, height, round_, PUBLIC_KEYS, WEIGHTS, PUBLIC_KEYS[i], proof)
            assert got == output
        assert output not in seen
        seen.add(output)
        seed = output  # the next height's seed


def _reject(impl, code, *args):
    with pytest.raises(leader.IneligibleProposer) as info:
        impl.check_proposer(*args)
    assert info.value.code == code
    assert str(info.value).startswith(code + ": ")
    assert isinstance(info.value, ValueError)
    return str(info.value)


def test_wrong_rank_bad_proof_and_outsiders_are_rejected():
    seed, height, round_ = _seed(3), 50, 1
    i = leader.round_leader(seed, height, round_, PUBLIC_KEYS, WEIGHTS)
    j = leader.round_leader(seed, height, round_ + 1, PUBLIC_KEYS, WEIGHTS)
    assert i != j
    proof_i, _ = leader.prove_eligibility(SECRETS[i], seed, height, round_)
    proof_j, _ = leader.prove_eligibility(SECRETS[j], seed, height, round_)
    ctx = (seed, height, round_, PUBLIC_KEYS, WEIGHTS)
    messages = {}
    for impl in (leader, reference):
        # Another masternode, with a valid VRF proof for this round: not its turn.
        messages[impl, 1] = _reject(impl, "wrong_rank", *ctx, PUBLIC_KEYS[j], proof_j)
        # The leader with a corrupted proof, another round's proof, or someone else's proof.
        bad = bytes([proof_i[0] ^ 1]) + proof_i[1:]
        messages[impl, 2] = _reject(impl, "bad_vrf_proof", *ctx, PUBLIC_KEYS[i], bad)
        other_round, _ = leader.prove_eligibility(SECRETS[i], seed, height, round_ + 1)
        messages[impl, 3] = _reject(impl, "bad_vrf_proof", *ctx, PUBLIC_KEYS[i], other_round)
        messages[impl, 4] = _reject(impl, "bad_vrf_proof", *ctx, PUBLIC_KEYS[i], proof_j)
        other_height, _ = leader.prove_eligibility(SECRETS[i], seed, height + 1, round_)
        messages[impl, 5] = _reject(impl, "bad_vrf_proof", *ctx, PUBLIC_KEYS[i], other_height)
        # Not a registered masternode at all.
        outsider = hashlib.sha256(b"outsider").digest()
        out_proof, _ = leader.prove_eligibility(outsider, seed, height, round_)
        messages[impl, 6] = _reject(impl, "not_in_set", *ctx, crypto.public_key(outsider), out_proof)
    for k in range(1, 7):
        assert messages[leader, k] == messages[reference, k]


# --- bad input -----------------------------------------------------------------------------------


@IMPLS
def test_bad_sets_and_arguments(impl):
    keys, seed = _keys(3), _seed(0)
    cases = [
        (ValueError, "the masternode set is empty", lambda: impl.leader_order(seed, 1, [], [])),
        (ValueError, "3 public keys but 2 weights", lambda: impl.leader_order(seed, 1, keys, [1, 2])),
        (ValueError, r"weights\[1\] is 0", lambda: impl.leader_order(seed, 1, keys, [1, 0, 1])),
        (ValueError, r"weights\[2\] must be in 1\.\.", lambda: impl.leader_order(seed, 1, keys, [1, 1, -5])),
        (
            ValueError,
            r"weights\[0\] must be in 1\.\.",
            lambda: impl.leader_order(seed, 1, keys, [2**64, 1, 1]),
        ),
        (
            TypeError,
            r"weights\[1\] must be an int, not float",
            lambda: impl.leader_order(seed, 1, keys, [1, 1.5, 1]),
        ),
        (
            TypeError,
            "weights must be a sequence of ints, not bytes",
            lambda: impl.leader_order(seed, 1, keys, b"\1\1\1"),
        ),
        (
            ValueError,
            r"public_keys\[2\] appears more than once",
            lambda: impl.leader_order(seed, 1, [keys[0], keys[1], keys[0]], [1, 1, 1]),
        ),
        (
            ValueError,
            r"public_keys\[1\] must be 32 bytes, got 5",
            lambda: impl.leader_order(seed, 1, [keys[0], b"short"], [1, 1]),
        ),
        (
            TypeError,
            r"public_keys\[0\] must be bytes, not str",
            lambda: impl.leader_order(seed, 1, ["k"], [1]),
        ),
        (
            TypeError,
            "public_keys must be a sequence of bytes",
            lambda: impl.leader_order(seed, 1, keys[0], [1]),
        ),
        (
            ValueError,
            "seed must be 64 bytes, got 32",
            lambda: impl.leader_order(seed[:32], 1, keys, [1, 1, 1]),
        ),
        (ValueError, "height must be >= 0", lambda: impl.leader_order(seed, -1, keys, [1, 1, 1])),
        (ValueError, "height must be <= ", lambda: impl.leader_order(seed, 2**64, keys, [1, 1, 1])),
        (TypeError, "count must be an int", lambda: impl.leader_order(seed, 1, keys, [1, 1, 1], 1.0)),
        (ValueError, "round must be <= ", lambda: impl.round_leader(seed, 1, 2**32, keys, [1, 1, 1])),
        (
            TypeError,
            "round must be an int, not bool",
            lambda: impl.round_leader(seed, 1, True, keys, [1, 1, 1]),
        ),
        (
            ValueError,
            "the public key is not in the masternode set",
            lambda: impl.leader_rank(seed, 1, keys, [1, 1, 1], bytes(32)),
        ),
        (
            ValueError,
            "proof must be 80 bytes",
            lambda: impl.check_proposer(seed, 1, 0, keys, [1, 1, 1], keys[0], b""),
        ),
        (
            ValueError,
            r"weights\[0\] is 0",
            lambda: impl.check_proposer(seed, 1, 0, keys, [0, 1, 1], keys[0], bytes(80)),
        ),
    ]
    for exc, message, call in cases:
        with pytest.raises(exc, match=message) as info:
            call()
        assert not isinstance(info.value, leader.IneligibleProposer)
    assert impl.leader_order(seed, 1, keys, [1, 1, 1], 0) == []
    assert impl.leader_order(seed, 1, [bytearray(k) for k in keys], [1, 1, 1]) == leader.leader_order(
        seed, 1, keys, [1, 1, 1]
    )
