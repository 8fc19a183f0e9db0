"""Where consensus state lives in the chain store (DESIGN §9) and how it is read back on start.

Layout (written only through ``effects.Persist``; read here once, at start):

``consensus`` database

=================================  ===========================================================
``signer/last``                    height u64 ‖ round u32 ‖ step u8 ‖ block hash: the last
                                   signed proposal/prevote/precommit (signer safety, DESIGN §7)
``signer/msg/`` ‖ step u8          the encoded message last signed at that step (re-sent after
                                   a restart instead of signing anything new)
``signer/lock``                    height u64 ‖ round u32 ‖ block hash: the Tendermint lock
``accept/`` ‖ outpoint (36)        txid: the one transaction this masternode accepted for that
                                   outpoint, ever (DESIGN §6); dropped once a block spends it
``commit/`` ‖ height u64 BE        the commit certificate of the block at that height
``votes/`` ‖ sequence u64 BE       an encoded, verified ``TxVote`` batch that the finality
                                   certificates of stored final transactions refer to; dropped
                                   with the last record referring to it
=================================  ===========================================================

``finalized`` database: sequence u64 BE (:data:`FINALIZED_KEY`) → ``txid ‖ tx length u32 ‖
transaction ‖ proof``: final transactions not yet archived in a block (DESIGN §4
"spent-final"), deleted when a block includes them. The proof is either the encoded finality
certificate (it starts with the message version, 1: a certificate a peer sent) or **by
reference** (:func:`encode_certificate_refs`: tag 0 ‖ height u64 ‖ count u16 ‖ count × (vote
batch sequence u64 ‖ index u32), about 45 bytes where the certificate is ~1.2 KB): the
certificate is rebuilt from the stored ``votes/`` batches when someone asks for it, byte for
byte what it would have been.

All integers little-endian except the big-endian height keys (cursor order).
"""

from __future__ import annotations

import functools
import itertools
import struct
from collections.abc import Iterable, Sequence

from timecoin.store.chainstore import ChainStore, StoreError

__all__ = [
    "ACCEPT_PREFIX",
    "COMMIT_PREFIX",
    "CONSENSUS_DB",
    "FINALIZED_DB",
    "VOTES_PREFIX",
    "commit_key",
    "decode_certificate_refs",
    "decode_finalized",
    "encode_certificate_refs",
    "encode_finalized",
    "finalized_key",
    "load_commit_certificate",
    "load_finalized",
    "load_signer_records",
    "load_vote_batches",
    "vote_batch_key",
]

CONSENSUS_DB = b"consensus"
FINALIZED_DB = b"finalized"
SIGNER_LAST = b"signer/last"
SIGNER_MSG_PREFIX = b"signer/msg/"
SIGNER_LOCK = b"signer/lock"
SIGNER_VALID = b"signer/valid"
ACCEPT_PREFIX = b"accept/"
COMMIT_PREFIX = b"commit/"
VOTES_PREFIX = b"votes/"
_VOTES_KEY = struct.Struct(">Q")
REFS_TAG = 0
"""First byte of a proof by reference; an encoded certificate starts with the message version
(``messages.VERSION``, 1)."""
_REFS_HEAD = struct.Struct("<BQH")
_TX_LEN = struct.Struct("<I")
_REF = struct.Struct(">QI")
MAX_REFS = 0xFFFF
"""Entries a proof by reference can name (u16): far above any masternode set."""


def commit_key(height: int) -> bytes:
    return COMMIT_PREFIX + struct.pack(">Q", height)


FINALIZED_KEY = struct.Struct(">Q")
"""Key of a ``finalized`` record: the node's finalization sequence number, big-endian, so
records finalized together are neighbours in the B-tree: a batch of them writes a few pages
where txid keys (random) wrote a page each, and so do their deletes when a block archives them
(measured with py-lmdb, 1.4 KB records: 4.8 µs and 4.8 KB written per record put and deleted,
against 22 µs and 18 KB with txid keys). Stores written before keyed records by txid (32 bytes,
the txid then not repeated in the value); both are read."""
LEGACY_FINALIZED_KEY_LEN = 32


def finalized_key(sequence: int) -> bytes:
    return FINALIZED_KEY.pack(sequence)


def encode_finalized(txid: bytes, transaction: bytes, proof: bytes) -> bytes:
    """The value of a sequence-keyed ``finalized`` record: ``txid ‖ len u32 ‖ transaction ‖
    proof`` (an encoded certificate or :func:`encode_certificate_refs`)."""
    return b"".join((txid, _TX_LEN.pack(len(transaction)), transaction, proof))


def vote_batch_key(sequence: int) -> bytes:
    """The ``consensus`` key of the stored vote batch ``sequence``."""
    return VOTES_PREFIX + _VOTES_KEY.pack(sequence)


def encode_certificate_refs(height: int, refs: Sequence[tuple[int, int]]) -> bytes:
    """A proof by reference: the certificate of height ``height`` whose entries are, in order,
    the ``index``-th accept of the stored vote batch ``sequence`` for each (sequence, index).
    ``ValueError`` for more than :data:`MAX_REFS` entries."""
    count = len(refs)
    if count > MAX_REFS:
        raise ValueError(f"{count} certificate entries, at most {MAX_REFS}")
    entries = _refs_struct(count).pack(*itertools.chain.from_iterable(refs))
    return _REFS_HEAD.pack(REFS_TAG, height, count) + entries


@functools.cache
def _refs_struct(count: int) -> struct.Struct:
    """The entries of a proof by reference of ``count`` entries as one struct (one ``pack`` per
    certificate: one is written per final transaction on every node)."""
    return struct.Struct(">" + _REF.format.lstrip(">") * count)


def decode_certificate_refs(proof: bytes) -> tuple[int, list[tuple[int, int]]] | None:
    """(height, [(vote batch sequence, index)]) of a proof by reference; None if ``proof`` is an
    encoded certificate; ``ValueError`` if it is neither."""
    if not proof or proof[0] != REFS_TAG:
        return None
    if len(proof) < _REFS_HEAD.size:
        raise ValueError("proof by reference shorter than its head")
    _, height, count = _REFS_HEAD.unpack_from(proof)
    if len(proof) != _REFS_HEAD.size + count * _REF.size:
        raise ValueError(f"proof by reference of {len(proof)} bytes does not hold {count} entries")
    return height, [_REF.unpack_from(proof, _REFS_HEAD.size + i * _REF.size) for i in range(count)]


def load_vote_batches(store: ChainStore) -> list[tuple[int, bytes]]:
    """Every stored (sequence, encoded ``TxVote``) batch, in sequence order. ``StoreError`` on
    a malformed key."""
    out = []
    for key, value in store.items(CONSENSUS_DB, VOTES_PREFIX):
        suffix = bytes(key)[len(VOTES_PREFIX) :]
        if len(suffix) != _VOTES_KEY.size:
            raise StoreError(f"vote batch key {bytes(key).hex()} is malformed")
        out.append((_VOTES_KEY.unpack(suffix)[0], bytes(value)))
    return out


def decode_finalized(value: bytes) -> tuple[bytes, bytes]:
    """(transaction, proof) of a ``finalized`` record after its txid; ``ValueError`` if
    malformed."""
    if len(value) < 4:
        raise ValueError("finalized record shorter than its length prefix")
    (n,) = struct.unpack_from("<I", value)
    if 4 + n > len(value):
        raise ValueError("finalized record shorter than its transaction")
    return value[4 : 4 + n], value[4 + n :]


def load_finalized(store: ChainStore) -> list[tuple[bytes, bytes, bytes, bytes]]:
    """Every (key, txid, transaction, proof) of the ``finalized`` database, in key order
    (sequence-keyed records, then any keyed by txid). ``StoreError`` on a malformed record."""
    out = []
    for raw_key, raw_value in store.items(FINALIZED_DB):
        key, value = bytes(raw_key), bytes(raw_value)
        try:
            if len(key) == LEGACY_FINALIZED_KEY_LEN:
                txid = key
            elif len(key) == FINALIZED_KEY.size and len(value) >= 32:
                txid, value = value[:32], value[32:]
            else:
                raise ValueError(f"key of {len(key)} bytes")
            tx, cert = decode_finalized(value)
        except ValueError as e:
            raise StoreError(f"finalized record {key.hex()} is corrupt: {e}") from None
        out.append((key, txid, tx, cert))
    return out


def load_signer_records(store: ChainStore) -> list[tuple[bytes, bytes]]:
    """Every (key, value) of the signer state: ``signer/*`` and ``accept/*`` records."""
    items: Iterable[tuple[bytes, bytes]] = [
        *store.items(CONSENSUS_DB, b"signer/"),
        *store.items(CONSENSUS_DB, ACCEPT_PREFIX),
    ]
    return [(bytes(k), bytes(v)) for k, v in items]


def load_commit_certificate(store: ChainStore, height: int) -> bytes | None:
    """The stored commit certificate of the block at ``height``, if any."""
    return store.get(CONSENSUS_DB, commit_key(height))
