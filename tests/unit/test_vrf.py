"""The VRF (RFC 9381 ECVRF-EDWARDS25519-SHA512-TAI) on native and reference: the RFC's
Appendix B.3 vectors, rejection of every tampered or malformed proof and key, and argument checks.

The vectors were taken from RFC 9381 Appendix B.3 (Examples 16-18) and agree with several
independent implementations' copies of that appendix.
"""

import hashlib

import pytest
import timecoin_native

from timecoin import crypto
from timecoin.reference import vrf as reference
from timecoin.reference import zip215

IMPLS = pytest.mark.parametrize("impl", [crypto, reference], ids=["native", "reference"])

# RFC 9381 Appendix B.3, Examples 16-18: SK, PK, alpha, pi, beta (hex).
B3 = [
    (
        "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
        "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
        "",
        "8657106690b5526245a92b003bb079ccd1a92130477671f6fc01ad16f26f723f"
        "26f8a57ccaed74ee1b190bed1f479d9727d2d0f9b005a6e456a35d4fb0daab12"
        "68a1b0db10836d9826a528ca76567805",
        "90cf1df3b703cce59e2a35b925d411164068269d7b2d29f3301c03dd757876ff"
        "66b71dda49d2de59d03450451af026798e8f81cd2e333de5cdf4f3e140fdd8ae",
    ),
    (
        "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
        "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
        "72",
        "f3141cd382dc42909d19ec5110469e4feae18300e94f304590abdced48aed593"
        "3bf0864a62558b3ed7f2fea45c92a465301b3bbf5e3e54ddf2d935be3b67926d"
        "a3ef39226bbc355bdc9850112c8f4b02",
        "eb4440665d3891d668e7e0fcaf587f1b4bd7fbfe99d0eb2211ccec90496310eb"
        "5e33821bc613efb94db5e5b54c70a848a0bef4553a41befc57663b56373a5031",
    ),
    (
        "c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7",
        "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025",
        "af82",
        "9bc0f79119cc5604bf02d23b4caede71393cedfbb191434dd016d30177ccbf80"
        "96bb474e53895c362d8628ee9f9ea3c0e52c7a5c691b6c18c9979866568add7a"
        "2d41b00b05081ed0f58ee5e31b3a970e",
        "645427e5d00c62a23fb703732fa5d892940935942101e456ecca7bb217c61c45"
        "2118fec1219202a0edcf038bb6373241578be7217ba85a2687f7a0310b2df19f",
    ),
]
# try_and_increment succeeded on ctr = 0, 1, 0 (RFC 9381 B.3): H of each example.
B3_H = [
    "91bbed02a99461df1ad4c6564a5f5d829d0b90cfc7903e7a5797bd658abf3318",
    "5b659fc3d4e9263fd9a4ed1d022d75eaacc20df5e09f9ea937502396598dc551",
    "bf4339376f5542811de615e3313d2b36f6f53c0acfebb482159711201192576a",
]

SK = hashlib.sha256(b"vrf test key").digest()
PK = crypto.public_key(SK)
ALPHA = b"previous vrf output || height || round"
PROOF, OUTPUT = crypto.vrf_prove(SK, ALPHA)
L_BYTES = zip215.L


@IMPLS
@pytest.mark.parametrize("vector", B3, ids=["example16", "example17", "example18"])
def test_rfc9381_b3(impl, vector):
    sk, pk, alpha, pi, beta = (bytes.fromhex(v) for v in vector)
    assert crypto.public_key(sk) == pk
    assert impl.vrf_prove(sk, alpha) == (pi, beta)
    assert impl.vrf_verify(pk, pi, alpha) == beta
    assert impl.vrf_verify_batch([pk, pk], [pi, pi], [alpha, alpha + b"!"]) == [beta, None]


@pytest.mark.parametrize("index", range(3))
def test_rfc9381_b3_encode_to_curve(index):
    pk, alpha = bytes.fromhex(B3[index][1]), bytes.fromhex(B3[index][2])
    assert reference.point_to_string(reference.encode_to_curve(pk, alpha)).hex() == B3_H[index]


def test_constants():
    assert crypto.VRF_PROOF_LEN == timecoin_native.VRF_PROOF_LEN == 80
    assert crypto.VRF_OUTPUT_LEN == timecoin_native.VRF_OUTPUT_LEN == 64
    assert len(PROOF) == 80 and len(OUTPUT) == 64


@IMPLS
def test_deterministic_and_unique(impl):
    assert impl.vrf_prove(SK, ALPHA) == (PROOF, OUTPUT)
    other_proof, other_output = impl.vrf_prove(SK, ALPHA + b"x")
    assert other_output != OUTPUT and other_proof != PROOF
    assert impl.vrf_prove(bytes(32), ALPHA)[1] != OUTPUT


@IMPLS
def test_changed_alpha_or_key_is_rejected(impl):
    with pytest.raises(ValueError, match="challenge does not match"):
        impl.vrf_verify(PK, PROOF, ALPHA + b"\0")
    with pytest.raises(ValueError, match="challenge does not match"):
        impl.vrf_verify(PK, PROOF, ALPHA[:-1])
    with pytest.raises(ValueError, match="challenge does not match"):
        impl.vrf_verify(crypto.public_key(bytes(32)), PROOF, ALPHA)


def _flip(data: bytes, byte: int, bit: int) -> bytes:
    out = bytearray(data)
    out[byte] ^= 1 << bit
    return bytes(out)


def test_every_single_bit_flip_of_the_proof_is_rejected_native():
    for byte in range(80):
        for bit in range(8):
            with pytest.raises(ValueError, match="invalid VRF proof"):
                crypto.vrf_verify(PK, _flip(PROOF, byte, bit), ALPHA)
    tampered = [_flip(PROOF, byte, byte % 8) for byte in range(80)]
    assert crypto.vrf_verify_batch([PK] * 80, tampered, [ALPHA] * 80) == [None] * 80


def test_every_proof_byte_is_checked_reference():
    for byte in range(80):
        with pytest.raises(ValueError, match="invalid VRF proof"):
            reference.vrf_verify(PK, _flip(PROOF, byte, (byte * 5) % 8), ALPHA)


@IMPLS
def test_non_canonical_s_is_rejected(impl):
    # s + ℓ is the same scalar mod ℓ in a different encoding: accepting it would make proofs
    # malleable. RFC 9381 §5.4.4 rejects s ≥ ℓ.
    s = int.from_bytes(PROOF[48:], "little")
    forged = PROOF[:48] + (s + L_BYTES).to_bytes(32, "little")
    with pytest.raises(ValueError, match="s is not below the group order"):
        impl.vrf_verify(PK, forged, ALPHA)


@IMPLS
def test_small_order_and_non_canonical_keys_are_rejected(impl):
    # The 14 small-order encodings of zip215 (8 canonical, 6 not): canonical ones decode and
    # fail ECVRF_validate_key, the others fail RFC 8032 decoding.
    encodings = zip215.small_order_encodings()
    for enc in encodings[:8]:
        with pytest.raises(ValueError, match="point of small order"):
            impl.vrf_verify(enc, PROOF, ALPHA)
    for enc in encodings[8:]:
        with pytest.raises(ValueError, match="not a point encoding"):
            impl.vrf_verify(enc, PROOF, ALPHA)
    # y = 2 names no curve point.
    with pytest.raises(ValueError, match="not a point encoding"):
        impl.vrf_verify((2).to_bytes(32, "little"), PROOF, ALPHA)
    # The key with its sign bit flipped is −A: a valid point but another key.
    with pytest.raises(ValueError, match="challenge does not match"):
        impl.vrf_verify(_flip(PK, 31, 7), PROOF, ALPHA)


@IMPLS
def test_small_order_or_non_canonical_gamma_is_rejected(impl):
    encodings = zip215.small_order_encodings()
    for enc in encodings[:8]:
        with pytest.raises(ValueError, match="challenge does not match"):
            impl.vrf_verify(PK, enc + PROOF[32:], ALPHA)
    for enc in encodings[8:]:
        with pytest.raises(ValueError, match="Gamma is not a point encoding"):
            impl.vrf_verify(PK, enc + PROOF[32:], ALPHA)


@IMPLS
def test_garbage_proofs_raise_value_error(impl):
    for i in range(20):
        garbage = hashlib.sha512(i.to_bytes(4, "little")).digest() + bytes(16)
        with pytest.raises(ValueError, match="invalid VRF"):
            impl.vrf_verify(PK, garbage, ALPHA)
    with pytest.raises(ValueError, match="invalid VRF"):
        impl.vrf_verify(PK, bytes(80), ALPHA)
    with pytest.raises(ValueError, match="invalid VRF"):
        impl.vrf_verify(PK, b"\xff" * 80, ALPHA)


@IMPLS
def test_argument_checks(impl):
    with pytest.raises(ValueError, match="secret_key must be 32 bytes, got 31"):
        impl.vrf_prove(SK[:31], ALPHA)
    with pytest.raises(TypeError, match="alpha must be bytes, not str"):
        impl.vrf_prove(SK, "alpha")
    with pytest.raises(ValueError, match="public_key must be 32 bytes, got 33"):
        impl.vrf_verify(PK + b"\0", PROOF, ALPHA)
    with pytest.raises(ValueError, match="proof must be 80 bytes, got 79"):
        impl.vrf_verify(PK, PROOF[:79], ALPHA)
    with pytest.raises(TypeError, match="proof must be bytes, not NoneType"):
        impl.vrf_verify(PK, None, ALPHA)
    with pytest.raises(TypeError, match="public_keys must be a sequence of bytes, not bytes"):
        impl.vrf_verify_batch(PK, [PROOF], [ALPHA])
    with pytest.raises(ValueError, match=r"proofs\[1\] must be 80 bytes"):
        impl.vrf_verify_batch([PK, PK], [PROOF, PROOF[:8]], [ALPHA, ALPHA])
    with pytest.raises(ValueError, match="differ in length: 2 public keys, 1 proofs, 2 alphas"):
        impl.vrf_verify_batch([PK, PK], [PROOF], [ALPHA, ALPHA])
    assert impl.vrf_verify(bytearray(PK), memoryview(PROOF), bytearray(ALPHA)) == OUTPUT
    assert impl.vrf_verify_batch([], [], []) == []


def test_batch_agrees_with_single_on_mixed_items():
    seeds = [hashlib.sha256(i.to_bytes(2, "little")).digest() for i in range(100)]
    pks = [crypto.public_key(s) for s in seeds]
    alphas = [i.to_bytes(2, "little") * (i % 5) for i in range(100)]
    proofs = [crypto.vrf_prove(s, a)[0] for s, a in zip(seeds, alphas, strict=True)]
    proofs[13] = _flip(proofs[13], 40, 1)
    pks[77] = zip215.small_order_encodings()[3]
    for parallel in (True, False):
        got = crypto.vrf_verify_batch(pks, proofs, alphas, parallel=parallel)
        for i, out in enumerate(got):
            if i in (13, 77):
                assert out is None
            else:
                assert out == crypto.vrf_verify(pks[i], proofs[i], alphas[i])


def test_raw_native_module_checks_buffers():
    n = timecoin_native
    with pytest.raises(ValueError, match="concatenation of 80-byte items"):
        n.vrf_verify_batch(PK, PROOF[:79], b"", b"\0\0\0\0")
    with pytest.raises(ValueError, match="batch sizes differ"):
        n.vrf_verify_batch(PK, PROOF, b"", b"")
    with pytest.raises(ValueError, match="add up to more than alphas"):
        n.vrf_verify_batch(PK, PROOF, b"", b"\xff\xff\xff\xff")
    with pytest.raises(ValueError, match="add up to 0 bytes but alphas has 1"):
        n.vrf_verify_batch(PK, PROOF, b"a", b"\0\0\0\0")
    with pytest.raises(TypeError):
        n.vrf_verify_batch([PK], PROOF, b"", b"\0\0\0\0")
    got = n.vrf_verify_batch(PK, PROOF, ALPHA, len(ALPHA).to_bytes(4, "little"))
    assert got == [OUTPUT]
