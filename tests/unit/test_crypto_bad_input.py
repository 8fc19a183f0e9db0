"""Bad input to the crypto API raises TypeError/ValueError with a clear message, never crashes,
on both the public facade and the raw native module."""

import pytest
import timecoin_native

from timecoin import crypto
from timecoin.reference import crypto as reference

SK = bytes(range(32))
PK = crypto.public_key(SK)
SIG = crypto.sign(SK, b"m")
ROOT = crypto.merkle_root([bytes(32)])


@pytest.mark.parametrize("impl", [crypto, reference], ids=["native", "reference"])
class TestFacade:
    def test_wrong_lengths(self, impl):
        with pytest.raises(ValueError, match="secret_key must be 32 bytes, got 31"):
            impl.sign(SK[:31], b"m")
        with pytest.raises(ValueError, match="public_key must be 32 bytes, got 33"):
            impl.verify(PK + b"\0", b"m", SIG)
        with pytest.raises(ValueError, match="signature must be 64 bytes, got 63"):
            impl.verify(PK, b"m", SIG[:63])
        with pytest.raises(ValueError, match=r"signatures\[1\] must be 64 bytes"):
            impl.verify_batch([PK, PK], [b"m", b"m"], [SIG, SIG[:10]])
        with pytest.raises(ValueError, match=r"leaves\[0\] must be 32 bytes"):
            impl.merkle_root([b"short"])
        with pytest.raises(ValueError, match="root must be 32 bytes"):
            impl.verify_merkle_proof(bytes(32), 0, 1, [], b"")

    def test_mismatched_sequence_lengths(self, impl):
        with pytest.raises(ValueError, match="differ in length: 2 public keys, 1 messages, 2 signatures"):
            impl.verify_batch([PK, PK], [b"m"], [SIG, SIG])

    def test_non_bytes(self, impl):
        with pytest.raises(TypeError, match="message must be bytes, not str"):
            impl.sign(SK, "m")
        with pytest.raises(TypeError, match="public_key must be bytes, not NoneType"):
            impl.verify(None, b"m", SIG)
        with pytest.raises(TypeError, match="public_keys must be a sequence of bytes, not bytes"):
            impl.verify_batch(PK, [b"m"], [SIG])
        with pytest.raises(TypeError, match=r"messages\[0\] must be bytes, not int"):
            impl.verify_batch([PK], [5], [SIG])
        with pytest.raises(TypeError, match="leaves must be a sequence of bytes"):
            impl.merkle_root(42)
        with pytest.raises(TypeError, match="index must be an int"):
            impl.merkle_proof([bytes(32)], "0")
        with pytest.raises(ValueError, match="index must be >= 0"):
            impl.verify_merkle_proof(bytes(32), -1, 1, [], ROOT)
        with pytest.raises(TypeError, match="domain must be a str"):
            impl.hash_in(b"txid", b"")
        with pytest.raises(ValueError, match="unknown hash domain"):
            impl.hash_in("nope", b"")

    def test_bytes_like_accepted(self, impl):
        assert impl.verify(bytearray(PK), memoryview(b"m"), bytearray(SIG))

    def test_well_sized_garbage_is_false_not_an_error(self, impl):
        # y = 2 is not the y of any curve point: the key does not decode.
        bad_point = (2).to_bytes(32, "little")
        assert not impl.verify(bad_point, b"m", SIG)
        assert impl.verify_batch([bad_point, PK], [b"m", b"m"], [SIG, SIG]) == [False, True]


def test_raw_native_module_checks_buffers():
    n = timecoin_native
    with pytest.raises(ValueError, match="concatenation of 32-byte items"):
        n.verify_batch(PK[:31], b"", b"\0\0\0\0", SIG)
    with pytest.raises(ValueError, match="batch sizes differ"):
        n.verify_batch(PK, b"m", b"\1\0\0\0\1\0\0\0", SIG)
    with pytest.raises(ValueError, match="add up to more than messages"):
        n.verify_batch(PK, b"m", b"\xff\xff\xff\xff", SIG)
    with pytest.raises(ValueError, match="add up to 1 bytes but messages has 2"):
        n.verify_batch(PK, b"mm", b"\1\0\0\0", SIG)
    with pytest.raises(TypeError):
        n.verify_batch([PK], b"m", b"\1\0\0\0", SIG)
    with pytest.raises(ValueError, match="leaves must be a concatenation"):
        n.merkle_root(b"\0" * 33)
    with pytest.raises(ValueError, match="leaf index 5 out of range for 1 leaves"):
        n.merkle_proof(bytes(32), 5)
    with pytest.raises(OverflowError):
        n.merkle_proof(bytes(32), -1)
    assert n.verify_batch(b"", b"", b"", b"") == []


@pytest.mark.parametrize("impl", [crypto, reference], ids=["native", "reference"])
def test_bytes_like_leaves_accepted(impl):
    ls = [bytes(32), bytearray(b"\1" * 32), memoryview(b"\2" * 32)]
    assert impl.merkle_root(ls) == crypto.merkle_root([bytes(x) for x in ls])
    assert impl.merkle_root(tuple(ls)) == impl.merkle_root(ls)
