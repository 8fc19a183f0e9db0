"""The node's public cryptography API, over the native module (DESIGN §3).

Everything here runs in Rust (``timecoin_native``); this module checks arguments and packs
batches into the contiguous buffers the native calls take, one call per batch. Its pure-Python
twin, :mod:`timecoin.reference.crypto`, has the same entry points and is the test oracle and the
benchmark baseline.

* Signatures: RFC 8032 Ed25519 (32-byte seed, 32-byte public key, 64-byte signature), verified
  under the ZIP-215 rules, so :func:`verify` and :func:`verify_batch` accept exactly the same
  signatures on every node.
* Hashes: BLAKE3-256. Protocol hashes are domain-separated: each domain is a BLAKE3
  ``derive_key`` context (``HASH_DOMAINS``), so a txid can never equal a block hash or a merkle
  node.
* VRF: ECVRF-EDWARDS25519-SHA512-TAI (RFC 9381, suite 0x03) over the Ed25519 key: an 80-byte
  proof and a 64-byte output per (key, alpha), unique, checkable by anyone with the public key.
* Merkle trees: binary, over 32-byte leaves, distinct leaf and node domains (a leaf is
  ``H_leaf(leaf ‖ 0^32)``, a node ``H_node(left ‖ right)``), odd last node carried up (never
  duplicated).

Bad arguments raise ``TypeError`` (not bytes, not a sequence) or ``ValueError`` (wrong length,
batch sequences of different lengths); nothing here can crash the interpreter.
"""

from __future__ import annotations

from array import array
from collections.abc import Callable, Sequence
from typing import TypeVar

import timecoin_native as _native

from timecoin import _args
from timecoin._args import (
    HASH_LEN,
    PUBLIC_KEY_LEN,
    SECRET_KEY_LEN,
    SIGNATURE_LEN,
    VRF_OUTPUT_LEN,
    VRF_PROOF_LEN,
)

__all__ = [
    "HASH_DOMAINS",
    "HASH_LEN",
    "PUBLIC_KEY_LEN",
    "SECRET_KEY_LEN",
    "SIGNATURE_LEN",
    "VRF_OUTPUT_LEN",
    "VRF_PROOF_LEN",
    "blake3",
    "hash_block_header",
    "hash_in",
    "hash_public_key",
    "hash_sighash",
    "hash_txid",
    "merkle_proof",
    "merkle_root",
    "public_key",
    "sign",
    "verify",
    "verify_batch",
    "verify_merkle_proof",
    "vrf_prove",
    "vrf_verify",
    "vrf_verify_batch",
]

_T = TypeVar("_T")

HASH_DOMAINS: dict[str, str] = dict(_native.HASH_DOMAINS)
"""Domain name → BLAKE3 ``derive_key`` context string; defined once, in ``native/src/hash.rs``."""

if array("I").itemsize != 4:  # pragma: no cover - every platform CPython supports today
    raise ImportError("timecoin.crypto needs a 4-byte array('I') to pass message lengths")


def public_key(secret_key: bytes) -> bytes:
    """The 32-byte Ed25519 public key of a 32-byte seed (RFC 8032 §5.1.5)."""
    return _native.public_key(_args.as_bytes("secret_key", secret_key, SECRET_KEY_LEN))


def sign(secret_key: bytes, message: bytes) -> bytes:
    """The 64-byte RFC 8032 Ed25519 signature of ``message`` by the 32-byte seed ``secret_key``.

    Raises ``TypeError`` for non-bytes and ``ValueError`` for a seed that is not 32 bytes.
    """
    return _native.sign(
        _args.as_bytes("secret_key", secret_key, SECRET_KEY_LEN), _args.as_bytes("message", message)
    )


def verify(public_key: bytes, message: bytes, signature: bytes) -> bool:
    """Whether ``signature`` (64 bytes) by ``public_key`` (32 bytes) over ``message`` is valid
    under ZIP-215. A key or signature that is well-sized but malformed is ``False``; wrong sizes
    raise ``ValueError``.
    """
    return _native.verify(
        _args.as_bytes("public_key", public_key, PUBLIC_KEY_LEN),
        _args.as_bytes("message", message),
        _args.as_bytes("signature", signature, SIGNATURE_LEN),
    )


def verify_batch(
    public_keys: Sequence[bytes],
    messages: Sequence[bytes],
    signatures: Sequence[bytes],
    *,
    parallel: bool = True,
) -> list[bool]:
    """One verdict per item, each equal to :func:`verify` on that item, in one native call.

    The batch is checked as random linear combinations of chunks (``parallel``: chunks of at
    least 256 signatures spread over all cores, so a smaller batch stays on the calling thread;
    else one chunk on the calling thread); a failing chunk falls back to single verification to
    find the bad items. The GIL is released while it runs. Sequences of different lengths raise
    ``ValueError``.
    """
    pks, msgs, sigs = _args.batch(public_keys, messages, signatures)
    return _native.verify_batch(
        b"".join(pks),
        b"".join(msgs),
        array("I", map(len, msgs)).tobytes(),
        b"".join(sigs),
        parallel,
    )


def blake3(data: bytes) -> bytes:
    """Plain BLAKE3-256 of ``data`` (32 bytes). Protocol hashes use the domain helpers."""
    return _native.blake3(_args.as_bytes("data", data))


def hash_in(domain: str, data: bytes) -> bytes:
    """BLAKE3-256 of ``data`` in ``domain`` (a key of :data:`HASH_DOMAINS`): equal to
    ``blake3.derive_key(HASH_DOMAINS[domain], data)``. Unknown domains raise ``ValueError``.
    """
    if not isinstance(domain, str):
        raise TypeError(f"domain must be a str, not {type(domain).__name__}")
    return _native.hash_in(domain, _args.as_bytes("data", data))


def hash_txid(transaction_without_witnesses: bytes) -> bytes:
    """txid: hash of a transaction's encoding without its witnesses (DESIGN §3)."""
    return hash_in("txid", transaction_without_witnesses)


def hash_block_header(header: bytes) -> bytes:
    """Block hash: hash of the encoded block header."""
    return hash_in("block_header", header)


def hash_public_key(public_key: bytes) -> bytes:
    """Address payload: hash of a 32-byte Ed25519 public key (DESIGN §3, addresses)."""
    return hash_in("public_key", _args.as_bytes("public_key", public_key, PUBLIC_KEY_LEN))


def hash_sighash(message: bytes) -> bytes:
    """Hash of the message an input's witness signs (chain id ‖ network ‖ txid ‖ input index)."""
    return hash_in("sighash", message)


def _with_hashes(call: Callable[[list[bytes] | tuple[bytes, ...]], _T], name: str, hashes: object) -> _T:
    """Calls ``call`` with a list or tuple of 32-byte hashes that the native side checks item by
    item without a Python loop; items that are bytes-like but not ``bytes`` (or other sequence
    types) take the slower checked path of :func:`timecoin._args.as_bytes_list`."""
    if type(hashes) is list or type(hashes) is tuple:
        try:
            return call(hashes)
        except TypeError:
            pass
    return call(_args.as_bytes_list(name, hashes, HASH_LEN))


def merkle_root(leaves: Sequence[bytes], *, parallel: bool = True) -> bytes:
    """Merkle root (32 bytes) of 32-byte leaves (txids), computed natively in one call.

    Leaves are hashed in the ``merkle_leaf`` domain, pairs in ``merkle_node``; an odd last node
    is carried up. The root of no leaves is ``hash_in("merkle_node", b"")``.
    """
    return _with_hashes(lambda hs: _native.merkle_root(hs, parallel), "leaves", leaves)


def merkle_proof(leaves: Sequence[bytes], index: int) -> list[bytes]:
    """Sibling hashes (32 bytes each) from leaf ``index`` up to the root, bottom first; a level
    where the node is carried up adds none. ``ValueError`` if ``index`` is out of range.
    """
    i = _args.index("index", index)
    return _with_hashes(lambda hs: _native.merkle_proof(hs, i), "leaves", leaves)


def verify_merkle_proof(leaf: bytes, index: int, count: int, proof: Sequence[bytes], root: bytes) -> bool:
    """Whether ``proof`` shows ``leaf`` is leaf ``index`` of ``count`` under ``root``. Every proof
    element must be used; an index at or past ``count`` is ``False``.
    """
    leaf = _args.as_bytes("leaf", leaf, HASH_LEN)
    i, n = _args.index("index", index), _args.index("count", count)
    root = _args.as_bytes("root", root, HASH_LEN)
    return _with_hashes(lambda hs: _native.verify_merkle_proof(leaf, i, n, hs, root), "proof", proof)


def vrf_prove(secret_key: bytes, alpha: bytes) -> tuple[bytes, bytes]:
    """ECVRF proof of ``alpha`` by the 32-byte Ed25519 seed ``secret_key`` (RFC 9381 §5.1, suite
    ECVRF-EDWARDS25519-SHA512-TAI): ``(proof, output)``, 80 and 64 bytes. Deterministic; the
    matching VRF public key is :func:`public_key` of the seed.

    Raises ``TypeError`` for non-bytes and ``ValueError`` for a seed that is not 32 bytes.
    """
    return _native.vrf_prove(
        _args.as_bytes("secret_key", secret_key, SECRET_KEY_LEN), _args.as_bytes("alpha", alpha)
    )


def vrf_verify(public_key: bytes, proof: bytes, alpha: bytes) -> bytes:
    """The 64-byte VRF output of a valid ``proof`` (80 bytes) of ``alpha`` under ``public_key``
    (32 bytes) (RFC 9381 §5.3, with the key validation of §5.4.5).

    Raises ``ValueError`` if the proof is invalid: a key or Gamma that is not a canonical RFC 8032
    point encoding, a small-order key, ``s`` not below the group order, or a challenge mismatch.
    Wrong sizes also raise ``ValueError``; non-bytes raise ``TypeError``.
    """
    return _native.vrf_verify(
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
    """One result per item, in one native call: the 64-byte output where :func:`vrf_verify`
    would return it, ``None`` where it would raise. The GIL is released; with ``parallel`` the
    items are spread over all cores. Sequences of different lengths raise ``ValueError``.
    """
    pks, pis, msgs = _args.vrf_batch(public_keys, proofs, alphas)
    return _native.vrf_verify_batch(
        b"".join(pks), b"".join(pis), b"".join(msgs), array("I", map(len, msgs)).tobytes(), parallel
    )
