"""Argument checks shared by :mod:`timecoin.crypto` and its reference twin.

Both raise the same errors for the same bad input, so tests can compare them on bad input too.
Bad input is a ``TypeError`` (wrong type) or ``ValueError`` (wrong length or shape), never a
crash.
"""

from __future__ import annotations

from collections.abc import Sequence

SECRET_KEY_LEN = 32
"""Ed25519 secret key (RFC 8032 seed) length, bytes."""
PUBLIC_KEY_LEN = 32
"""Ed25519 public key length, bytes (RFC 8032 §5.1.5)."""
SIGNATURE_LEN = 64
"""Ed25519 signature length, bytes (RFC 8032 §5.1.6)."""
HASH_LEN = 32
"""BLAKE3-256 output length, bytes (DESIGN §3)."""
VRF_PROOF_LEN = 80
"""ECVRF-EDWARDS25519-SHA512-TAI proof (Gamma ‖ c ‖ s) length, bytes (RFC 9381 §5.5)."""
VRF_OUTPUT_LEN = 64
"""ECVRF-EDWARDS25519-SHA512-TAI output (beta, a SHA-512 digest) length, bytes (RFC 9381 §5.2)."""
MAX_MESSAGE_LEN = 2**32 - 1
"""Largest message one batch item may carry: its length crosses the boundary as a u32."""

BytesLike = bytes | bytearray | memoryview


def as_bytes(name: str, value: object, length: int | None = None) -> bytes:
    """``value`` as ``bytes``; ``TypeError`` if it is not bytes-like, ``ValueError`` on length."""
    if type(value) is not bytes:
        if not isinstance(value, (bytes, bytearray, memoryview)):
            raise TypeError(f"{name} must be bytes, not {type(value).__name__}")
        value = bytes(value)
    if length is not None and len(value) != length:
        raise ValueError(f"{name} must be {length} bytes, got {len(value)}")
    return value


def as_bytes_list(name: str, values: object, length: int | None = None) -> list[bytes]:
    """Each item of a sequence as ``bytes`` (see :func:`as_bytes`)."""
    if isinstance(values, (bytes, bytearray, memoryview, str)) or not isinstance(values, Sequence):
        raise TypeError(f"{name} must be a sequence of bytes, not {type(values).__name__}")
    return [as_bytes(f"{name}[{i}]", v, length) for i, v in enumerate(values)]


def batch(
    public_keys: object, messages: object, signatures: object
) -> tuple[list[bytes], list[bytes], list[bytes]]:
    """Checked (public_keys, messages, signatures) of one batch; equal lengths required."""
    pks = as_bytes_list("public_keys", public_keys, PUBLIC_KEY_LEN)
    msgs = as_bytes_list("messages", messages)
    sigs = as_bytes_list("signatures", signatures, SIGNATURE_LEN)
    if not len(pks) == len(msgs) == len(sigs):
        raise ValueError(
            f"batch sequences differ in length: {len(pks)} public keys, "
            f"{len(msgs)} messages, {len(sigs)} signatures"
        )
    for i, m in enumerate(msgs):
        if len(m) > MAX_MESSAGE_LEN:
            raise ValueError(f"messages[{i}] is {len(m)} bytes, over {MAX_MESSAGE_LEN}")
    return pks, msgs, sigs


def vrf_batch(
    public_keys: object, proofs: object, alphas: object
) -> tuple[list[bytes], list[bytes], list[bytes]]:
    """Checked (public_keys, proofs, alphas) of one VRF batch; equal lengths required."""
    pks = as_bytes_list("public_keys", public_keys, PUBLIC_KEY_LEN)
    pis = as_bytes_list("proofs", proofs, VRF_PROOF_LEN)
    msgs = as_bytes_list("alphas", alphas)
    if not len(pks) == len(pis) == len(msgs):
        raise ValueError(
            f"batch sequences differ in length: {len(pks)} public keys, {len(pis)} proofs, {len(msgs)} alphas"
        )
    for i, m in enumerate(msgs):
        if len(m) > MAX_MESSAGE_LEN:
            raise ValueError(f"alphas[{i}] is {len(m)} bytes, over {MAX_MESSAGE_LEN}")
    return pks, pis, msgs


def index(name: str, value: object) -> int:
    """A non-negative int (bools refused); ``TypeError``/``ValueError`` otherwise."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{name} must be an int, not {type(value).__name__}")
    if value < 0:
        raise ValueError(f"{name} must be >= 0, got {value}")
    return value
