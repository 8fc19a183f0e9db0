"""The masternode registry's records and their bytes in the chain store's ``masternodes``
database (docs/masternodes.md, "Storage").

=====================  ========================================================================
key                    value
=====================  ========================================================================
``tip``                height u64 BE ‖ block hash: the block the registry follows
``mn/`` ‖ key          :class:`MasternodeEntry` (181 bytes), one per registered masternode
``cert/`` ‖ height BE  count u32 ‖ keys: the set of that height absent from the block's commit
                       certificate (only blocks with a certificate, only the reputation window)
``undo/`` ‖ height BE  the registry undo record of that block: the previous value of every key
                       the block changed
=====================  ========================================================================

Encoding and decoding only; the rules are in :mod:`timecoin.masternode.registry`. Malformed
bytes raise ``ValueError``.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from dataclasses import dataclass

from timecoin.core.types import OutPoint
from timecoin.params import Tier

__all__ = [
    "CERT_PREFIX",
    "ENTRY_PREFIX",
    "MASTERNODE_DB",
    "STATE_PREFIXES",
    "TIP_KEY",
    "UNDO_PREFIX",
    "MasternodeEntry",
    "cert_key",
    "decode_absent",
    "decode_tip",
    "decode_undo",
    "encode_absent",
    "encode_tip",
    "encode_undo",
    "entry_key",
    "undo_key",
]

MASTERNODE_DB = b"masternodes"
"""The chain store database holding the registry (timecoin/store/chainstore.py)."""

TIP_KEY = b"tip"
ENTRY_PREFIX = b"mn/"
CERT_PREFIX = b"cert/"
UNDO_PREFIX = b"undo/"
STATE_PREFIXES = (TIP_KEY, ENTRY_PREFIX, CERT_PREFIX)
"""Key prefixes of the registry's state (everything but the undo records)."""

UNDO_VERSION = 1

_ENTRY = struct.Struct("<32sB32sIQ32s32sQ32s")
_TIP = struct.Struct(">Q32s")
_HEIGHT = struct.Struct(">Q")
_UNDO_HEAD = struct.Struct("<BQI")


def entry_key(public_key: bytes) -> bytes:
    """The key of a masternode's entry."""
    return ENTRY_PREFIX + public_key


def cert_key(height: int) -> bytes:
    """The key of the certificate absence record of block ``height``."""
    return CERT_PREFIX + _HEIGHT.pack(height)


def undo_key(height: int) -> bytes:
    """The key of the registry undo record of block ``height``."""
    return UNDO_PREFIX + _HEIGHT.pack(height)


def cert_height(key: bytes) -> int:
    """The height in a :func:`cert_key`; ``ValueError`` for another key."""
    if not key.startswith(CERT_PREFIX) or len(key) != len(CERT_PREFIX) + _HEIGHT.size:
        raise ValueError(f"not a certificate record key: {key!r}")
    return int(_HEIGHT.unpack(key[len(CERT_PREFIX) :])[0])


def encode_tip(height: int, block_hash: bytes) -> bytes:
    """The ``tip`` value: height u64 BE ‖ block hash."""
    return _TIP.pack(height, block_hash)


def decode_tip(value: bytes) -> tuple[int, bytes]:
    """(height, block hash) of a ``tip`` value."""
    if len(value) != _TIP.size:
        raise ValueError(f"registry tip must be {_TIP.size} bytes, got {len(value)}")
    height, block_hash = _TIP.unpack(value)
    return int(height), bytes(block_hash)


@dataclass(frozen=True, slots=True)
class MasternodeEntry:
    """A registered masternode. Amounts in sat.

    ``owner`` is the pubkey_hash that must sign its deregistration and payout changes: the
    collateral coin's owner, or for the Free tier (no collateral) the masternode key's own hash.
    """

    public_key: bytes
    tier: Tier
    collateral: OutPoint
    """``OutPoint.NULL`` for the Free tier."""
    collateral_amount: int
    owner: bytes
    payout: bytes
    """pubkey_hash its rewards pay."""
    registered_height: int
    """Height of the block holding the registration; in the set from the next height on."""
    registration_txid: bytes

    def encode(self) -> bytes:
        """181 bytes: key ‖ tier u8 ‖ collateral (txid ‖ vout u32) ‖ amount u64 ‖ owner ‖ payout ‖
        registered height u64 ‖ registration txid (integers little-endian)."""
        return _ENTRY.pack(
            self.public_key,
            int(self.tier),
            self.collateral.txid,
            self.collateral.vout,
            self.collateral_amount,
            self.owner,
            self.payout,
            self.registered_height,
            self.registration_txid,
        )

    @classmethod
    def decode(cls, data: bytes) -> MasternodeEntry:
        """Inverse of :meth:`encode`; ``ValueError`` for another length or an unknown tier."""
        if len(data) != _ENTRY.size:
            raise ValueError(f"masternode entry must be {_ENTRY.size} bytes, got {len(data)}")
        key, tier, txid, vout, amount, owner, payout, height, reg_txid = _ENTRY.unpack(data)
        return cls(key, Tier(tier), OutPoint(txid, vout), amount, owner, payout, height, reg_txid)


def encode_absent(keys: Iterable[bytes]) -> bytes:
    """A certificate absence record: count u32 ‖ the 32-byte keys, ascending."""
    ordered = sorted(keys)
    return struct.pack("<I", len(ordered)) + b"".join(ordered)


def decode_absent(value: bytes) -> frozenset[bytes]:
    """The keys of a certificate absence record."""
    if len(value) < 4:
        raise ValueError("certificate record shorter than its count")
    (count,) = struct.unpack_from("<I", value)
    if len(value) != 4 + 32 * count:
        raise ValueError(f"certificate record of {count} keys must be {4 + 32 * count} bytes")
    return frozenset(value[4 + 32 * i : 36 + 32 * i] for i in range(count))


def encode_undo(height: int, old: Iterable[tuple[bytes, bytes | None]]) -> bytes:
    """The undo record of block ``height``: version u8 (1) ‖ height u64 ‖ count u32 ‖
    (key length u16 ‖ key ‖ 0, or 1 ‖ value length u32 ‖ value)* — the value every changed key
    had before the block (0: absent). Integers little-endian."""
    items = list(old)
    parts = [_UNDO_HEAD.pack(UNDO_VERSION, height, len(items))]
    for key, value in items:
        parts.append(struct.pack("<H", len(key)) + key)
        parts.append(b"\x00" if value is None else b"\x01" + struct.pack("<I", len(value)) + value)
    return b"".join(parts)


def decode_undo(data: bytes) -> tuple[int, list[tuple[bytes, bytes | None]]]:
    """(height, [(key, previous value or None)]) of an undo record; strict: known version, no
    truncation, no trailing bytes."""
    try:
        version, height, count = _UNDO_HEAD.unpack_from(data)
        if version != UNDO_VERSION:
            raise ValueError(f"unknown registry undo version {version}")
        at = _UNDO_HEAD.size
        old: list[tuple[bytes, bytes | None]] = []
        for _ in range(count):
            (n,) = struct.unpack_from("<H", data, at)
            key, at = data[at + 2 : at + 2 + n], at + 2 + n
            if len(key) != n or data[at] not in (0, 1):
                raise ValueError("truncated or malformed entry")
            if data[at] == 0:
                old.append((key, None))
                at += 1
                continue
            (m,) = struct.unpack_from("<I", data, at + 1)
            value, at = data[at + 5 : at + 5 + m], at + 5 + m
            if len(value) != m:
                raise ValueError("truncated value")
            old.append((key, value))
        if at != len(data):
            raise ValueError("trailing bytes")
    except (struct.error, IndexError) as e:
        raise ValueError(f"malformed registry undo record: {e}") from None
    return int(height), old
