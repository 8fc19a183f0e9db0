"""Native VRF against the pure-Python reference (differential, property-based): prove, verify and
batch verify agree on random keys and alphas, and reject tampered proofs, random garbage and
random keys with the same error."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from timecoin import crypto
from timecoin.reference import vrf as reference

seeds = st.binary(min_size=32, max_size=32)
alphas = st.binary(max_size=200)


def _verdict(impl, pk, proof, alpha):
    try:
        return impl.vrf_verify(pk, proof, alpha)
    except ValueError as e:
        return ("error", str(e))


@given(seeds, alphas)
def test_prove_and_verify_agree(seed, alpha):
    proof, output = crypto.vrf_prove(seed, alpha)
    assert reference.vrf_prove(seed, alpha) == (proof, output)
    pk = crypto.public_key(seed)
    assert crypto.vrf_verify(pk, proof, alpha) == output
    assert reference.vrf_verify(pk, proof, alpha) == output


@given(seeds, alphas, st.integers(min_value=0, max_value=3), st.integers(min_value=0, max_value=639))
def test_verify_agrees_on_tampered_inputs(seed, alpha, where, bit):
    pk = crypto.public_key(seed)
    proof, _ = crypto.vrf_prove(seed, alpha)
    if where == 0:
        tampered = bytearray(proof)
        tampered[bit // 8] ^= 1 << (bit % 8)
        proof = bytes(tampered)
    elif where == 1:
        tampered = bytearray(pk)
        tampered[(bit // 8) % 32] ^= 1 << (bit % 8)
        pk = bytes(tampered)
    elif where == 2:
        alpha = alpha + bytes([bit % 256])
    want = _verdict(reference, pk, proof, alpha)
    assert _verdict(crypto, pk, proof, alpha) == want
    if where != 3:
        assert isinstance(want, tuple)
    assert crypto.vrf_verify_batch([pk], [proof], [alpha]) == [None if isinstance(want, tuple) else want]


@given(st.binary(min_size=32, max_size=32), st.binary(min_size=80, max_size=80), alphas)
def test_verify_agrees_on_garbage(pk, proof, alpha):
    want = _verdict(reference, pk, proof, alpha)
    assert isinstance(want, tuple)
    assert _verdict(crypto, pk, proof, alpha) == want


@given(st.lists(st.tuples(seeds, alphas, st.booleans()), max_size=16), st.booleans())
def test_batch_agrees_with_reference(items, parallel):
    pks = [crypto.public_key(s) for s, _, _ in items]
    msgs = [a for _, a, _ in items]
    proofs = []
    for s, a, ok in items:
        proof, _ = crypto.vrf_prove(s, a)
        proofs.append(proof if ok else proof[:40] + bytes([proof[40] ^ 1]) + proof[41:])
    got = crypto.vrf_verify_batch(pks, proofs, msgs, parallel=parallel)
    assert got == reference.vrf_verify_batch(pks, proofs, msgs)
    assert [g is not None for g in got] == [ok for _, _, ok in items]


@pytest.mark.parametrize("seed", [bytes(32), b"\xff" * 32])
def test_extreme_seeds(seed):
    assert crypto.vrf_prove(seed, b"") == reference.vrf_prove(seed, b"")
