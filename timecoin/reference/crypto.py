"""Pure-Python twin of :mod:`timecoin.crypto`: same entry points, same errors, no native code.

Signing is PyNaCl (libsodium). Verification is the ZIP-215 rule of :mod:`.zip215`, with
libsodium as a fast path: libsodium is stricter than ZIP-215 (it rejects small-order and
non-canonical points), so whatever it accepts ZIP-215 accepts too, and only its rejections are
re-checked in pure Python. Hashing is the ``blake3`` package in ``derive_key`` mode with the
native module's domain contexts; merkle trees are a Python loop over it.
"""

from __future__ import annotations

from collections.abc import Sequence

import nacl.bindings
import nacl.exceptions
from blake3 import blake3 as _blake3

from timecoin import _args
from timecoin._args import HASH_LEN, PUBLIC_KEY_LEN, SECRET_KEY_LEN, SIGNATURE_LEN
from timecoin.crypto import HASH_DOMAINS
from timecoin.reference import zip215


def public_key(secret_key: bytes) -> bytes:
    seed = _args.as_bytes("secret_key", secret_key, SECRET_KEY_LEN)
    pk, _ = nacl.bindings.crypto_sign_seed_keypair(seed)
    return pk


def sign(secret_key: bytes, message: bytes) -> bytes:
    seed = _args.as_bytes("secret_key", secret_key, SECRET_KEY_LEN)
    message = _args.as_bytes("message", message)
    _, sk = nacl.bindings.crypto_sign_seed_keypair(seed)
    return nacl.bindings.crypto_sign(message, sk)[:SIGNATURE_LEN]


def verify(public_key: bytes, message: bytes, signature: bytes) -> bool:
    pk = _args.as_bytes("public_key", public_key, PUBLIC_KEY_LEN)
    message = _args.as_bytes("message", message)
    sig = _args.as_bytes("signature", signature, SIGNATURE_LEN)
    try:
        nacl.bindings.crypto_sign_open(sig + message, pk)
        return True
    except (nacl.exceptions.CryptoError, ValueError):
        return zip215.verify(pk, message, sig)


def verify_batch(
    public_keys: Sequence[bytes],
    messages: Sequence[bytes],
    signatures: Sequence[bytes],
    *,
    parallel: bool = True,
) -> list[bool]:
    """One by one; ``parallel`` is accepted for signature parity and ignored."""
    pks, msgs, sigs = _args.batch(public_keys, messages, signatures)
    return [verify(pk, m, s) for pk, m, s in zip(pks, msgs, sigs, strict=True)]


def blake3(data: bytes) -> bytes:
    return _blake3(_args.as_bytes("data", data)).digest()


def hash_in(domain: str, data: bytes) -> bytes:
    if not isinstance(domain, str):
        raise TypeError(f"domain must be a str, not {type(domain).__name__}")
    if domain not in HASH_DOMAINS:
        raise ValueError(f"unknown hash domain {domain!r}")
    return _blake3(_args.as_bytes("data", data), derive_key_context=HASH_DOMAINS[domain]).digest()


def _node(left: bytes, right: bytes) -> bytes:
    return _blake3(left + right, derive_key_context=HASH_DOMAINS["merkle_node"]).digest()


_LEAF_PADDING = bytes(HASH_LEN)


def _leaves(leaves: Sequence[bytes]) -> list[bytes]:
    """Leaf hashes: ``H_leaf(txid ‖ 0^32)``, one full BLAKE3 block (see native/src/merkle.rs)."""
    context = HASH_DOMAINS["merkle_leaf"]
    return [_blake3(leaf + _LEAF_PADDING, derive_key_context=context).digest() for leaf in leaves]


def _up(level: list[bytes]) -> list[bytes]:
    nxt = [_node(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
    if len(level) % 2:
        nxt.append(level[-1])
    return nxt


def merkle_root(leaves: Sequence[bytes], *, parallel: bool = True) -> bytes:
    checked = _args.as_bytes_list("leaves", leaves, HASH_LEN)
    if not checked:
        return hash_in("merkle_node", b"")
    level = _leaves(checked)
    while len(level) > 1:
        level = _up(level)
    return level[0]


def merkle_proof(leaves: Sequence[bytes], index: int) -> list[bytes]:
    checked = _args.as_bytes_list("leaves", leaves, HASH_LEN)
    i = _args.index("index", index)
    if i >= len(checked):
        raise ValueError(f"leaf index {i} out of range for {len(checked)} leaves")
    level = _leaves(checked)
    path = []
    while len(level) > 1:
        if i ^ 1 < len(level):
            path.append(level[i ^ 1])
        level = _up(level)
        i //= 2
    return path


def verify_merkle_proof(leaf: bytes, index: int, count: int, proof: Sequence[bytes], root: bytes) -> bool:
    leaf = _args.as_bytes("leaf", leaf, HASH_LEN)
    i, n = _args.index("index", index), _args.index("count", count)
    siblings = _args.as_bytes_list("proof", proof, HASH_LEN)
    root = _args.as_bytes("root", root, HASH_LEN)
    if i >= n:
        return False
    h = _leaves([leaf])[0]
    used = 0
    while n > 1:
        if not (i == n - 1 and n % 2 == 1):
            if used == len(siblings):
                return False
            sib = siblings[used]
            used += 1
            h = _node(h, sib) if i % 2 == 0 else _node(sib, h)
        i //= 2
        n = (n + 1) // 2
    return used == len(siblings) and h == root
