"""Pure-Python Ed25519 verification under the ZIP-215 rules: the test oracle.

This is the slow, readable statement of the rule the native verifier implements
(https://zips.z.cash/zip-0215, over the arithmetic of RFC 8032 §5.1):

* A and R are decoded as in RFC 8032 §5.1.3 except that y need not be below p (it is reduced)
  and x = 0 with the sign bit set is accepted: every encoding that names a curve point is valid,
  including non-canonical ones and points of small order;
* S must be canonical: S ≥ ℓ is rejected;
* k = SHA-512(R_bytes ‖ A_bytes ‖ M) mod ℓ over the bytes as received;
* the check is cofactored: [8]([S]B − R − [k]A) is the identity.

It exists to test the native code against, never to verify anything on a node: it is about a
thousand times slower. It must not import the native module.
"""

from __future__ import annotations

import hashlib

P = 2**255 - 19
"""The field prime (RFC 8032 §5.1)."""
L = 2**252 + 27742317777372353535851937790883648493
"""The prime order ℓ of the base point (RFC 8032 §5.1)."""
D = -121665 * pow(121666, -1, P) % P
"""The Edwards curve constant d (RFC 8032 §5.1)."""
SQRT_M1 = pow(2, (P - 1) // 4, P)

Point = tuple[int, int, int, int]
"""A point in extended homogeneous coordinates (X, Y, Z, T), x = X/Z, y = Y/Z, xy = T/Z."""

IDENTITY: Point = (0, 1, 1, 0)


def _add(p: Point, q: Point) -> Point:
    # RFC 8032 §5.1.4, "add-2008-hwcd-3".
    a = (p[1] - p[0]) * (q[1] - q[0]) % P
    b = (p[1] + p[0]) * (q[1] + q[0]) % P
    c = 2 * p[3] * q[3] * D % P
    dd = 2 * p[2] * q[2] % P
    e, f, g, h = b - a, dd - c, dd + c, b + a
    return (e * f % P, g * h % P, f * g % P, e * h % P)


def _mul(s: int, p: Point) -> Point:
    q = IDENTITY
    while s > 0:
        if s & 1:
            q = _add(q, p)
        p = _add(p, p)
        s >>= 1
    return q


def _is_identity(p: Point) -> bool:
    # x = 0 and y = 1, projectively.
    return p[0] % P == 0 and (p[1] - p[2]) % P == 0


def add(p: Point, q: Point) -> Point:
    """P + Q (RFC 8032 §5.1.4)."""
    return _add(p, q)


def mul(s: int, p: Point) -> Point:
    """[s]P by double-and-add, for s ≥ 0 (variable time: for public data and tests only)."""
    return _mul(s, p)


def negate(p: Point) -> Point:
    """−P: (x, y) ↦ (−x, y)."""
    return ((P - p[0]) % P, p[1], p[2], (P - p[3]) % P)


def is_identity(p: Point) -> bool:
    """Whether P is the neutral element (0, 1)."""
    return _is_identity(p)


def decompress(encoding: bytes) -> Point | None:
    """Decodes a 32-byte point encoding under ZIP-215; ``None`` if it names no curve point."""
    if len(encoding) != 32:
        raise ValueError(f"a point encoding is 32 bytes, got {len(encoding)}")
    value = int.from_bytes(encoding, "little")
    sign = value >> 255
    y = (value & ((1 << 255) - 1)) % P
    x2 = (y * y - 1) * pow(D * y * y + 1, -1, P) % P
    x = pow(x2, (P + 3) // 8, P)
    if (x * x - x2) % P != 0:
        x = x * SQRT_M1 % P
    if (x * x - x2) % P != 0:
        return None
    if x & 1 != sign:
        x = (P - x) % P
    return (x, y, 1, x * y % P)


BASE: Point = decompress(bytes.fromhex("5866666666666666666666666666666666666666666666666666666666666666"))  # type: ignore[assignment]


def compress(p: Point) -> bytes:
    """Canonical 32-byte encoding of a point (RFC 8032 §5.1.2)."""
    zinv = pow(p[2], -1, P)
    x, y = p[0] * zinv % P, p[1] * zinv % P
    return int.to_bytes(y | ((x & 1) << 255), 32, "little")


def verify(public_key: bytes, message: bytes, signature: bytes) -> bool:
    """ZIP-215 verdict on one signature (lengths must already be 32 and 64 bytes)."""
    s = int.from_bytes(signature[32:], "little")
    if s >= L:
        return False
    a = decompress(public_key)
    r = decompress(signature[:32])
    if a is None or r is None:
        return False
    k = int.from_bytes(hashlib.sha512(signature[:32] + public_key + message).digest(), "little") % L
    neg_r = (P - r[0], r[1], r[2], P - r[3])
    ka = _mul(k, a)
    neg_ka = (P - ka[0], ka[1], ka[2], P - ka[3])
    return _is_identity(_mul(8, _add(_add(_mul(s, BASE), neg_r), neg_ka)))


def small_order_encodings() -> list[bytes]:
    """The 14 encodings of the 8 points of small order: 8 canonical and 6 non-canonical.

    Non-canonical ones are y + p for y ∈ {0, 1} (which fit in 255 bits), with either sign bit,
    and x = 0 points (y = 1, y = −1) with the sign bit set. These are the ZIP-215 edge cases.
    """
    canonical: list[bytes] = []
    torsion = _find_torsion_generator()
    point = IDENTITY
    for _ in range(8):
        canonical.append(compress(point))
        point = _add(point, torsion)
    assert len(set(canonical)) == 8
    non_canonical = [
        int.to_bytes(1 | (1 << 255), 32, "little"),  # identity, sign bit set
        int.to_bytes((P - 1) | (1 << 255), 32, "little"),  # (0, -1), sign bit set
        int.to_bytes(P + 1, 32, "little"),  # y = 1 + p
        int.to_bytes((P + 1) | (1 << 255), 32, "little"),
        int.to_bytes(P, 32, "little"),  # y = 0 + p, a point of order 4
        int.to_bytes(P | (1 << 255), 32, "little"),
    ]
    for enc in non_canonical:
        assert decompress(enc) is not None
    return canonical + non_canonical


def _find_torsion_generator() -> Point:
    """A point of order exactly 8, found as [ℓ]Q for a curve point Q with such a component."""
    y = 2
    while True:
        q = decompress(int.to_bytes(y, 32, "little"))
        y += 1
        if q is None:
            continue
        t = _mul(L, q)
        if not _is_identity(_mul(4, t)):
            return t
