"""Native hot paths of the TIME Coin node (Rust, pyo3).

The compiled module is private (``timecoin_native._native``); this package re-exports it. Most
code should use :mod:`timecoin.crypto`, which checks arguments and builds the contiguous buffers
these functions take.
"""

from timecoin_native._native import (
    HASH_DOMAINS,
    __version__,
    blake3,
    build_profile,
    hash_in,
    merkle_proof,
    merkle_root,
    public_key,
    sign,
    verify,
    verify_batch,
    verify_merkle_proof,
)

__all__ = [
    "HASH_DOMAINS",
    "__version__",
    "blake3",
    "build_profile",
    "hash_in",
    "merkle_proof",
    "merkle_root",
    "public_key",
    "sign",
    "verify",
    "verify_batch",
    "verify_merkle_proof",
]
