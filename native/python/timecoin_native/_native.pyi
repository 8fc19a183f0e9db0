"""Type stub of the compiled module; ``python -m mypy.stubtest timecoin_native`` checks it."""

__all__ = [
    "__version__",
    "build_profile",
    "HASH_DOMAINS",
    "public_key",
    "sign",
    "verify",
    "verify_batch",
    "blake3",
    "hash_in",
    "merkle_root",
    "merkle_proof",
    "verify_merkle_proof",
]

__version__: str
build_profile: str
HASH_DOMAINS: dict[str, str]

def public_key(secret_key: bytes) -> bytes:
    """Ed25519 public key (32 bytes) of a 32-byte RFC 8032 seed."""

def sign(secret_key: bytes, message: bytes) -> bytes:
    """RFC 8032 Ed25519 signature (64 bytes) of ``message`` by a 32-byte seed."""

def verify(public_key: bytes, message: bytes, signature: bytes) -> bool:
    """ZIP-215 verification of one signature; raises ValueError on wrong key/signature lengths."""

def verify_batch(
    public_keys: bytes,
    messages: bytes,
    message_lengths: bytes,
    signatures: bytes,
    parallel: bool = True,
) -> list[bool]:
    """ZIP-215 verification of n signatures in one call.

    ``public_keys`` is n×32 bytes, ``signatures`` n×64 bytes, ``messages`` the concatenated
    messages and ``message_lengths`` n little-endian u32 lengths.
    """

def blake3(data: bytes) -> bytes:
    """Plain BLAKE3-256 of ``data``."""

def hash_in(domain: str, data: bytes) -> bytes:
    """BLAKE3-256 ``derive_key`` of ``data`` in one of :data:`HASH_DOMAINS`."""

def merkle_root(leaves: bytes | list[bytes] | tuple[bytes, ...], parallel: bool = True) -> bytes:
    """Merkle root of 32-byte leaves: one buffer of n concatenated leaves, or a list/tuple."""

def merkle_proof(leaves: bytes | list[bytes] | tuple[bytes, ...], index: int) -> list[bytes]:
    """Sibling hashes from leaf ``index`` to the root, bottom first."""

def verify_merkle_proof(
    leaf: bytes, index: int, count: int, proof: bytes | list[bytes] | tuple[bytes, ...], root: bytes
) -> bool:
    """Whether ``proof`` (32-byte hashes, concatenated or listed) proves ``leaf`` at ``index`` of ``count``."""
