"""Merkle trees (DESIGN §3): structure by hand, proofs round-trip, tampering fails."""

import pytest

from timecoin import crypto
from timecoin.reference import crypto as reference


def leaves(n):
    return [crypto.blake3(i.to_bytes(4, "little")) for i in range(n)]


def leaf(x):
    return crypto.hash_in("merkle_leaf", x + bytes(32))


def node(a, b):
    return crypto.hash_in("merkle_node", a + b)


def test_structure_by_hand():
    a, b, c = leaves(3)
    assert crypto.merkle_root([a]) == leaf(a)
    assert crypto.merkle_root([a, b]) == node(leaf(a), leaf(b))
    # The odd last node is carried up, not paired with itself.
    assert crypto.merkle_root([a, b, c]) == node(node(leaf(a), leaf(b)), leaf(c))
    assert crypto.merkle_root([]) == crypto.hash_in("merkle_node", b"")


def test_duplicating_the_last_leaf_changes_the_root():
    a, b, c = leaves(3)
    assert crypto.merkle_root([a, b, c]) != crypto.merkle_root([a, b, c, c])


def test_a_leaf_is_never_an_inner_node():
    a, b = leaves(2)
    inner = node(leaf(a), leaf(b))
    assert crypto.merkle_root([inner]) != crypto.merkle_root([a, b])


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 7, 8, 9, 16, 33, 100])
def test_proofs_round_trip(n):
    ls = leaves(n)
    root = crypto.merkle_root(ls)
    for i in range(n):
        proof = crypto.merkle_proof(ls, i)
        assert proof == reference.merkle_proof(ls, i)
        assert crypto.verify_merkle_proof(ls[i], i, n, proof, root)
        assert reference.verify_merkle_proof(ls[i], i, n, proof, root)


@pytest.mark.parametrize("impl", [crypto, reference], ids=["native", "reference"])
@pytest.mark.parametrize("n", [2, 3, 5, 8, 13])
def test_tampered_proofs_fail(impl, n):
    ls = leaves(n)
    root = impl.merkle_root(ls)
    for i in range(n):
        proof = impl.merkle_proof(ls, i)
        assert not impl.verify_merkle_proof(crypto.blake3(b"other"), i, n, proof, root)
        assert not impl.verify_merkle_proof(ls[i], i, n, proof, crypto.blake3(b"root"))
        assert not impl.verify_merkle_proof(ls[i], i, n, [*proof, root], root)
        assert not impl.verify_merkle_proof(ls[i], n, n, proof, root)
        for j in range(len(proof)):
            bad = list(proof)
            bad[j] = bytes([bad[j][0] ^ 1]) + bad[j][1:]
            assert not impl.verify_merkle_proof(ls[i], i, n, bad, root)
        assert not impl.verify_merkle_proof(ls[i], i, n, proof[:-1], root)
        if i + 1 < n:
            assert not impl.verify_merkle_proof(ls[i], i + 1, n, proof, root)


@pytest.mark.parametrize("impl", [crypto, reference], ids=["native", "reference"])
def test_proof_index_out_of_range(impl):
    with pytest.raises(ValueError, match="out of range"):
        impl.merkle_proof(leaves(3), 3)
