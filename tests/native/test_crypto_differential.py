"""Native crypto against the pure-Python reference (differential, property-based), and ZIP-215
agreement of single and batch verification on adversarial signatures.

The adversarial cases are built with the reference curve arithmetic: small-order keys and R,
non-canonical encodings, torsion components that only the cofactored ZIP-215 equation accepts,
and S ≥ ℓ.
"""

import hashlib

import nacl.bindings
import pytest
from hypothesis import given
from hypothesis import strategies as st

from timecoin import crypto
from timecoin.reference import crypto as reference
from timecoin.reference import zip215

seeds = st.binary(min_size=32, max_size=32)
messages = st.binary(max_size=300)
leaf_lists = st.lists(st.binary(min_size=32, max_size=32), max_size=300)


# --- random inputs ------------------------------------------------------------------------------


@given(seeds, messages)
def test_sign_and_public_key_agree(seed, message):
    assert crypto.public_key(seed) == reference.public_key(seed)
    sig = crypto.sign(seed, message)
    assert sig == reference.sign(seed, message)
    assert crypto.verify(reference.public_key(seed), message, sig)


@given(seeds, messages, st.integers(min_value=0, max_value=3), st.integers(min_value=0, max_value=511))
def test_verify_agrees_on_corrupted_signatures(seed, message, where, bit):
    pk, sig = crypto.public_key(seed), crypto.sign(seed, message)
    if where == 0:
        sig = _flip(sig, bit)
    elif where == 1:
        pk = _flip(pk, bit % 256)
    elif where == 2:
        message = message + bytes([bit % 256])
    want = reference.verify(pk, message, sig)
    assert crypto.verify(pk, message, sig) == want
    assert crypto.verify_batch([pk], [message], [sig]) == [want]


@given(st.lists(st.tuples(seeds, messages, st.booleans()), min_size=1, max_size=200), st.booleans())
def test_verify_batch_agrees_with_one_by_one(items, parallel):
    pks = [crypto.public_key(s) for s, _, _ in items]
    msgs = [m for _, m, _ in items]
    sigs = [crypto.sign(s, m) if ok else _flip(crypto.sign(s, m), 7) for s, m, ok in items]
    verdicts = crypto.verify_batch(pks, msgs, sigs, parallel=parallel)
    assert verdicts == [ok for _, _, ok in items]
    assert verdicts == [crypto.verify(*t) for t in zip(pks, msgs, sigs, strict=True)]


@given(st.binary(max_size=5000))
def test_hashes_agree(data):
    assert crypto.blake3(data) == reference.blake3(data)
    for domain in crypto.HASH_DOMAINS:
        assert crypto.hash_in(domain, data) == reference.hash_in(domain, data)


@given(leaf_lists, st.data())
def test_merkle_agrees(leaves, data):
    root = crypto.merkle_root(leaves)
    assert root == reference.merkle_root(leaves)
    assert root == crypto.merkle_root(leaves, parallel=False)
    if leaves:
        i = data.draw(st.integers(min_value=0, max_value=len(leaves) - 1))
        proof = crypto.merkle_proof(leaves, i)
        assert proof == reference.merkle_proof(leaves, i)
        assert crypto.verify_merkle_proof(leaves[i], i, len(leaves), proof, root)


def test_merkle_agrees_on_a_large_parallel_tree():
    leaves = [hashlib.sha256(i.to_bytes(4, "little")).digest() for i in range(10_001)]
    assert crypto.merkle_root(leaves) == reference.merkle_root(leaves)


# --- ZIP-215 edge cases -------------------------------------------------------------------------

SMALL_ORDER = zip215.small_order_encodings()


def _flip(data: bytes, bit: int) -> bytes:
    out = bytearray(data)
    out[bit // 8] ^= 1 << (bit % 8)
    return bytes(out)


def _expanded(seed: bytes) -> tuple[int, bytes]:
    h = hashlib.sha512(seed).digest()
    a = int.from_bytes(h[:32], "little")
    a &= (1 << 254) - 8
    a |= 1 << 254
    return a, h[32:]


def _sign_with_torsion(seed: bytes, message: bytes, torsion_r: int, torsion_a: int) -> tuple[bytes, bytes]:
    """A signature whose R and/or A carry a small-order component. The cofactored equation of
    ZIP-215 accepts it; a cofactorless verifier (libsodium) does not."""
    t = zip215.decompress(SMALL_ORDER[1])  # a point of order 8 (the 2nd canonical multiple)
    a, prefix = _expanded(seed)
    big_a = zip215._add(zip215._mul(a, zip215.BASE), zip215._mul(torsion_a, t))
    pk = zip215.compress(big_a)
    r = int.from_bytes(hashlib.sha512(prefix + message).digest(), "little") % zip215.L
    big_r = zip215._add(zip215._mul(r, zip215.BASE), zip215._mul(torsion_r, t))
    r_enc = zip215.compress(big_r)
    k = int.from_bytes(hashlib.sha512(r_enc + pk + message).digest(), "little") % zip215.L
    s = (r + k * a) % zip215.L
    return pk, r_enc + s.to_bytes(32, "little")


def _edge_cases() -> list[tuple[str, bytes, bytes, bytes, bool]]:
    """(name, public key, message, signature, ZIP-215 verdict)."""
    cases = []
    for i, a in enumerate(SMALL_ORDER):
        for j, r in enumerate(SMALL_ORDER):
            # [8]([0]B - R - [k]A) = 0 for any small-order A and R: valid under ZIP-215.
            cases.append((f"small-order A{i} R{j} S=0", a, b"Zcash", r + bytes(32), True))
    seed = bytes(range(32))
    for tr, ta in [(1, 0), (0, 1), (3, 5), (4, 4)]:
        pk, sig = _sign_with_torsion(seed, b"torsion", tr, ta)
        cases.append((f"torsion R+{tr}T A+{ta}T", pk, b"torsion", sig, True))
        cases.append((f"torsion R+{tr}T A+{ta}T, other msg", pk, b"other", sig, False))
    pk, sig = crypto.public_key(seed), crypto.sign(seed, b"s")
    s = int.from_bytes(sig[32:], "little")
    for name, bad_s in [("S+l", s + zip215.L), ("S=l", zip215.L), ("S=2^256-1", 2**256 - 1)]:
        cases.append((name, pk, b"s", sig[:32] + bad_s.to_bytes(32, "little"), False))
        small = SMALL_ORDER[0]
        cases.append((f"small-order {name}", small, b"s", small + bad_s.to_bytes(32, "little"), False))
    not_on_curve = (2).to_bytes(32, "little")
    cases.append(("A not on curve", not_on_curve, b"s", sig, False))
    cases.append(("R not on curve", pk, b"s", not_on_curve + sig[32:], False))
    cases.append(("valid", pk, b"s", sig, True))
    return cases


EDGE_CASES = _edge_cases()


@pytest.mark.parametrize("case", EDGE_CASES, ids=[c[0] for c in EDGE_CASES])
def test_edge_case_single(case):
    _, pk, msg, sig, want = case
    assert zip215.verify(pk, msg, sig) == want
    assert reference.verify(pk, msg, sig) == want
    assert crypto.verify(pk, msg, sig) == want


@pytest.mark.parametrize("parallel", [False, True])
def test_edge_cases_batch_agrees_with_single(parallel):
    pks = [c[1] for c in EDGE_CASES]
    msgs = [c[2] for c in EDGE_CASES]
    sigs = [c[3] for c in EDGE_CASES]
    assert crypto.verify_batch(pks, msgs, sigs, parallel=parallel) == [c[4] for c in EDGE_CASES]
    # All-valid subset as one batch: takes the batch path without fallback.
    valid = [c for c in EDGE_CASES if c[4]]
    assert all(crypto.verify_batch([c[1] for c in valid], [c[2] for c in valid], [c[3] for c in valid]))


def test_libsodium_is_stricter_than_zip215():
    """Why the reference does not stop at PyNaCl: libsodium rejects the small-order and torsion
    cases that ZIP-215 (and therefore every node) accepts."""
    rejected = 0
    for _, pk, msg, sig, want in EDGE_CASES:
        try:
            nacl.bindings.crypto_sign_open(sig + msg, pk)
            sodium = True
        except Exception:
            sodium = False
        assert not (sodium and not want), "libsodium accepted what ZIP-215 rejects"
        rejected += want and not sodium
    assert rejected > 100
