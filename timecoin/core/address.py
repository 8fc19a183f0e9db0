"""Addresses: bech32m (BIP-350) over the hash of an Ed25519 public key (DESIGN §3).

An address is ``<hrp>1<data><checksum>`` with the network's human-readable part (``time``,
``ttime``, ``dtime``; ``timecoin.params``), data = address version 0 followed by the 32-byte
``hash_public_key(public_key)`` in 5-bit groups. The bech32m checksum catches any single typo
and most multiple ones, so a mistyped address is rejected, never paid. Encoding is the
``bech32m`` package (the BIP-350 reference code); nothing here is our own checksum code.
"""

from __future__ import annotations

from bech32m.codecs import DecodeError, Encoding, bech32_decode, bech32_encode, convertbits

from timecoin import crypto
from timecoin.params import NETWORKS, NetworkParams

ADDRESS_VERSION = 0
"""The only address version: payload is a 32-byte public key hash."""
PUBKEY_HASH_LEN = 32


class AddressError(ValueError):
    """A string that is not a valid address of the expected network."""


def pubkey_hash(public_key: bytes) -> bytes:
    """The 32-byte address payload of an Ed25519 public key."""
    return crypto.hash_public_key(public_key)


def encode_address(pubkey_hash: bytes, params: NetworkParams) -> str:
    """The bech32m address of a 32-byte public key hash on ``params``' network."""
    if not isinstance(pubkey_hash, bytes) or len(pubkey_hash) != PUBKEY_HASH_LEN:
        raise ValueError(f"pubkey_hash must be {PUBKEY_HASH_LEN} bytes")
    data = convertbits(pubkey_hash, 8, 5)
    assert data is not None
    return bech32_encode(params.address_hrp, bytes([ADDRESS_VERSION, *data]), Encoding.BECH32M)


def address_of_key(public_key: bytes, params: NetworkParams) -> str:
    """The address paying to ``public_key`` (32 bytes) on ``params``' network."""
    return encode_address(pubkey_hash(public_key), params)


def decode_address(address: str, params: NetworkParams) -> bytes:
    """The 32-byte public key hash in ``address``.

    Raises :class:`AddressError` for a bad checksum (or a bech32 rather than bech32m one), an
    address of another network (naming it), an unknown version or a wrong payload length.
    """
    if not isinstance(address, str):
        raise TypeError(f"address must be a str, not {type(address).__name__}")
    try:
        hrp, data, spec = bech32_decode(address)
    except DecodeError:
        hrp = data = spec = None
    if hrp is None or data is None:
        raise AddressError(f"invalid address {address!r}: bad characters, length or checksum")
    if spec != Encoding.BECH32M:
        raise AddressError(f"invalid address {address!r}: not a bech32m checksum")
    if hrp != params.address_hrp:
        other = next((p.name for p in NETWORKS.values() if p.address_hrp == hrp), None)
        where = f"a {other} address" if other else f"unknown prefix {hrp!r}"
        raise AddressError(f"address {address!r} is {where}, expected {params.name} ({params.address_hrp}1…)")
    if not data or data[0] != ADDRESS_VERSION:
        raise AddressError(f"address {address!r} has unknown version {data[0] if data else None}")
    try:
        payload = convertbits(data[1:], 5, 8, False)
    except DecodeError:
        payload = None
    if payload is None or len(payload) != PUBKEY_HASH_LEN:
        raise AddressError(f"address {address!r} does not carry a {PUBKEY_HASH_LEN}-byte key hash")
    return bytes(payload)
