"""Where consensus state lives in the chain store (DESIGN §9) and how it is read back on start.

Layout (written only through ``effects.Persist``; read here once, at start):

``consensus`` database

=================================  ===========================================================
``signer/last``                    height u64 ‖ round u32 ‖ step u8 ‖ block hash: the last
                                   signed proposal/prevote/precommit (signer safety, DESIGN §7)
``signer/msg/`` ‖ step u8          the encoded message last signed at that step (re-sent after
                                   a restart instead of signing anything new)
``signer/lock``                    height u64 ‖ round u32 ‖ block hash: the Tendermint lock
``accept/`` ‖ sequence u64 BE      ``outpoint ‖ txid`` for each outpoint one vote flush
                                   accepted: the one transaction this masternode accepted for
                                   it, ever (DESIGN §6); dropped once blocks spent them all
                                   (``signer.py``; older stores: ``accept/`` ‖ outpoint → txid)
``commit/`` ‖ height u64 BE        the commit certificate of the block at that height
``votes/`` ‖ sequence u64 BE       an encoded, verified ``TxVote`` batch that the finality
                                   certificates of stored final transactions refer to; dropped
                                   with the last record referring to it
=================================  ===========================================================

``finalized`` database: final transactions not yet archived in a block (DESIGN §4
"spent-final"). A **group** record holds the transactions one step of the finality engine made
final (a vote batch's worth): key ``G`` ‖ sequence u64 BE (:data:`FINALIZED_GROUP_KEY`), value
the entries one after another, each ``txid ‖ tx length u32 ‖ transaction ‖ proof length u32 ‖
proof`` (:func:`encode_finalized_entry`); it is deleted once a block archives the last of them.
One record per step, not per transaction: with the accept records grouped alike, 12,000
transactions' records cost 13.9 ms of writes and deletes instead of 43.5 ms
(``benches/bench_finality_records.py``; docs/benchmarks.md). Stores written before hold one
record per transaction, still read: key sequence u64 BE (:data:`FINALIZED_KEY`), value ``txid
‖ tx length u32 ‖ transaction ‖ proof``; or, older, key txid with the value not repeating it.
The proof is either the encoded finality
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
    "decode_finalized_group",
    "encode_finalized_entry",
    "finalized_group_key",
    "finalized_sequence",
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
"""Key of a per-transaction ``finalized`` record of stores written before group records: the
node's finalization sequence number, big-endian (neighbours in the B-tree: measured with
py-lmdb, 1.4 KB records, 4.8 µs and 4.8 KB written per record put and deleted, against 22 µs
and 18 KB with txid keys). Stores older still keyed them by txid (32 bytes, the txid then not
repeated in the value). Both are read."""
LEGACY_FINALIZED_KEY_LEN = 32


FINALIZED_GROUP_KEY = struct.Struct(">cQ")
"""Key of a group record of the ``finalized`` database: ``G`` ‖ the node's finalization sequence
number, big-endian (groups made together are neighbours in the B-tree)."""
_GROUP_TAG = b"G"


def finalized_group_key(sequence: int) -> bytes:
    return FINALIZED_GROUP_KEY.pack(_GROUP_TAG, sequence)


def finalized_sequence(key: bytes) -> int | None:
    """The sequence number of a group or sequence-keyed record's key (None: a txid key)."""
    if len(key) == FINALIZED_GROUP_KEY.size and key[:1] == _GROUP_TAG:
        return FINALIZED_GROUP_KEY.unpack(key)[1]
    if len(key) == FINALIZED_KEY.size:
        return FINALIZED_KEY.unpack(key)[0]
    return None


def encode_finalized_entry(txid: bytes, transaction: bytes, proof: bytes) -> bytes:
    """One entry of a group record: ``txid ‖ len u32 ‖ transaction ‖ len u32 ‖ proof`` (the
    proof an encoded certificate or :func:`encode_certificate_refs`)."""
    return b"".join((txid, _TX_LEN.pack(len(transaction)), transaction, _TX_LEN.pack(len(proof)), proof))


def decode_finalized_group(value: bytes) -> list[tuple[bytes, bytes, bytes]]:
    """Each (txid, transaction, proof) of a group record's value; ``ValueError`` if malformed
    (empty, or an entry cut short)."""
    out = []
    pos, end = 0, len(value)
    while pos < end:
        if end - pos < 32 + 4:
            raise ValueError(f"group entry at {pos} shorter than its txid and length")
        txid = value[pos : pos + 32]
        (n,) = _TX_LEN.unpack_from(value, pos + 32)
        start = pos + 36
        if end - start < n + 4:
            raise ValueError(f"group entry at {pos} shorter than its transaction")
        transaction = value[start : start + n]
        (m,) = _TX_LEN.unpack_from(value, start + n)
        proof_start = start + n + 4
        if end - proof_start < m:
            raise ValueError(f"group entry at {pos} shorter than its proof")
        out.append((txid, transaction, value[proof_start : proof_start + m]))
        pos = proof_start + m
    if not out:
        raise ValueError("empty group record")
    return out


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
    """Every (key, txid, transaction, proof) of the ``finalized`` database, in key order (a
    group record gives one per entry, all with its key). ``StoreError`` on a malformed record."""
    out = []
    for raw_key, raw_value in store.items(FINALIZED_DB):
        key, value = bytes(raw_key), bytes(raw_value)
        try:
            if len(key) == FINALIZED_GROUP_KEY.size and key[:1] == _GROUP_TAG:
                out.extend((key, txid, tx, proof) for txid, tx, proof in decode_finalized_group(value))
                continue
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
