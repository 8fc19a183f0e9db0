"""Pure-Python ECVRF-EDWARDS25519-SHA512-TAI (RFC 9381 §5, suite 0x03): the test oracle.

The slow, readable statement of the VRF that ``native/src/vrf.rs`` implements, step by step under
the RFC's names, over the curve arithmetic of :mod:`.zip215` (RFC 8032 §5.1):

* keys are RFC 8032 keys (32-byte seed, 32-byte public key);
* ``string_to_point`` is RFC 8032 §5.1.3 decoding: y ≥ p, and x = 0 with the sign bit set, are
  invalid (stricter than ZIP-215, so that each point has one encoding and outputs are unique);
* ``encode_to_curve`` is try-and-increment (§5.4.1.1) salted with the public key;
* the nonce is RFC 8032's (§5.4.2.2), the challenge 16 bytes (§5.4.3);
* verification rejects small-order public keys (§5.4.5) and ``s ≥ ℓ`` (§5.4.4).

Same entry points and errors as the VRF part of :mod:`timecoin.crypto`. It must never run on a
node: it is thousands of times slower. It does not import the native module.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from timecoin import _args
from timecoin._args import PUBLIC_KEY_LEN, SECRET_KEY_LEN, VRF_PROOF_LEN
from timecoin.reference import zip215
from timecoin.reference.zip215 import BASE, L, P, Point

SUITE = b"\x03"
"""``suite_string`` of ECVRF-EDWARDS25519-SHA512-TAI (RFC 9381 §5.5)."""
C_LEN = 16
"""Challenge length, bytes (``cLen``, RFC 9381 §5.5)."""
COFACTOR = 8


class VrfError(ValueError):
    """An invalid VRF proof or public key (RFC 9381 "INVALID")."""


def string_to_point(encoding: bytes) -> Point | None:
    """RFC 8032 §5.1.3 decoding of a 32-byte point encoding; ``None`` if invalid."""
    value = int.from_bytes(encoding, "little")
    y = value & ((1 << 255) - 1)
    if y >= P:
        return None
    point = zip215.decompress(encoding)
    if point is None:
        return None
    if point[0] == 0 and value >> 255:
        return None
    return point


def point_to_string(point: Point) -> bytes:
    """RFC 8032 §5.1.2 encoding."""
    return zip215.compress(point)


def _expand(secret_key: bytes) -> tuple[int, bytes]:
    """(x, nonce key): the clamped secret scalar and the upper half of SHA-512(seed)."""
    h = hashlib.sha512(secret_key).digest()
    a = int.from_bytes(h[:32], "little")
    a &= (1 << 254) - 8
    a |= 1 << 254
    return a, h[32:]


def encode_to_curve(public_key: bytes, alpha: bytes) -> Point:
    """``ECVRF_encode_to_curve_try_and_increment`` (RFC 9381 §5.4.1.1), salt = public key."""
    for ctr in range(256):
        digest = hashlib.sha512(SUITE + b"\x01" + public_key + alpha + bytes([ctr, 0])).digest()
        point = string_to_point(digest[:32])
        if point is not None:
            return zip215.mul(COFACTOR, point)
    raise VrfError("VRF encode_to_curve found no point")


def _challenge(*points: bytes) -> bytes:
    """``ECVRF_challenge_generation`` (RFC 9381 §5.4.3) over point encodings."""
    return hashlib.sha512(SUITE + b"\x02" + b"".join(points) + b"\x00").digest()[:C_LEN]


def _gamma_to_hash(gamma: Point) -> bytes:
    """``ECVRF_proof_to_hash`` (RFC 9381 §5.2) on a decoded Gamma."""
    cleared = zip215.mul(COFACTOR, gamma)
    return hashlib.sha512(SUITE + b"\x03" + point_to_string(cleared) + b"\x00").digest()


def vrf_prove(secret_key: bytes, alpha: bytes) -> tuple[bytes, bytes]:
    """``ECVRF_prove`` (RFC 9381 §5.1): (80-byte proof, 64-byte output)."""
    sk = _args.as_bytes("secret_key", secret_key, SECRET_KEY_LEN)
    alpha = _args.as_bytes("alpha", alpha)
    x, nonce_key = _expand(sk)
    y = point_to_string(zip215.mul(x, BASE))
    h = encode_to_curve(y, alpha)
    h_string = point_to_string(h)
    gamma = zip215.mul(x, h)
    k = int.from_bytes(hashlib.sha512(nonce_key + h_string).digest(), "little") % L
    c = _challenge(
        y,
        h_string,
        point_to_string(gamma),
        point_to_string(zip215.mul(k, BASE)),
        point_to_string(zip215.mul(k, h)),
    )
    s = (k + int.from_bytes(c, "little") * x) % L
    proof = point_to_string(gamma) + c + s.to_bytes(32, "little")
    return proof, _gamma_to_hash(gamma)


def _verify(public_key: bytes, proof: bytes, alpha: bytes) -> bytes:
    y = string_to_point(public_key)
    if y is None:
        raise VrfError("invalid VRF public key: not a point encoding")
    if zip215.is_identity(zip215.mul(COFACTOR, y)):
        raise VrfError("invalid VRF public key: point of small order")
    gamma = string_to_point(proof[:32])
    if gamma is None:
        raise VrfError("invalid VRF proof: Gamma is not a point encoding")
    c = int.from_bytes(proof[32:48], "little")
    s = int.from_bytes(proof[48:], "little")
    if s >= L:
        raise VrfError("invalid VRF proof: s is not below the group order")
    h = encode_to_curve(public_key, alpha)
    u = zip215.add(zip215.mul(s, BASE), zip215.negate(zip215.mul(c, y)))
    v = zip215.add(zip215.mul(s, h), zip215.negate(zip215.mul(c, gamma)))
    expected = _challenge(public_key, point_to_string(h), proof[:32], point_to_string(u), point_to_string(v))
    if expected != proof[32:48]:
        raise VrfError("invalid VRF proof: challenge does not match")
    return _gamma_to_hash(gamma)


def vrf_verify(public_key: bytes, proof: bytes, alpha: bytes) -> bytes:
    """``ECVRF_verify`` (RFC 9381 §5.3) with key validation: the output, or ``ValueError``."""
    return _verify(
        _args.as_bytes("public_key", public_key, PUBLIC_KEY_LEN),
        _args.as_bytes("proof", proof, VRF_PROOF_LEN),
        _args.as_bytes("alpha", alpha),
    )


def vrf_verify_batch(
    public_keys: Sequence[bytes],
    proofs: Sequence[bytes],
    alphas: Sequence[bytes],
    *,
    parallel: bool = True,
) -> list[bytes | None]:
    """One by one; ``parallel`` is accepted for signature parity and ignored."""
    pks, pis, msgs = _args.vrf_batch(public_keys, proofs, alphas)
    out: list[bytes | None] = []
    for pk, pi, alpha in zip(pks, pis, msgs, strict=True):
        try:
            out.append(_verify(pk, pi, alpha))
        except VrfError:
            out.append(None)
    return out
