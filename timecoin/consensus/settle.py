"""What a committed block settles in one node's finality state, transaction by transaction and
outpoint by outpoint: the loops of ``FinalityEngine.on_block`` and ``SignerState.forget`` (DESIGN
§4: a final transaction leaves "spent-final" when a block archives it).

They run on every node at the same moment, once per block, over every transaction and input of
the block (~8,000 transactions a block at 6,000 tx/s on the devnet), and held each node's event
loop 65–80 ms p50 interpreted (timed in situ, docs/benchmarks.md). Compiled by Cython in pure
Python mode (setup.py ``HOT_MODULES``, ``settle.pxd`` types the dictionaries and records; the
``.py`` stays the reference, ``benches/bench_cython.py`` compares the two). The callers keep
everything that is not per transaction: notices, rejections, sweeps and the outbox.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import cython

from timecoin.consensus.txstate import FinalEntry

if TYPE_CHECKING:
    from timecoin.consensus.tally import CertificateRefs

__all__ = ["Archived", "StoredBatch", "archive_final", "forget_accepts", "settle_spent"]


@cython.no_gc
@cython.cclass
class StoredBatch:
    """A vote batch stored for the certificates that refer to it (its ``consensus`` database
    record, ``store.vote_batch_key(sequence)``). Refers to numbers only, so it is safe untracked
    by the cyclic collector (``cython.no_gc``)."""

    __slots__ = ("sequence", "refs")

    def __init__(self, sequence: int, refs: int = 0) -> None:
        self.sequence = sequence
        self.refs = refs
        """The certificates of the finalized pool that refer to it."""

    def __repr__(self) -> str:
        return f"StoredBatch(sequence={self.sequence}, refs={self.refs})"


@cython.cclass
class Archived:
    """What :func:`archive_final` did."""

    __slots__ = ("spent", "unknown", "records", "batches", "archived_bytes")

    def __init__(self) -> None:
        self.spent: list[bytes] = []
        """The outpoints (36 bytes) the archived transactions spent, in block order."""
        self.unknown: list[int] = []
        """The indexes, in the block, of the transactions that were not final here."""
        self.records: list[bytes] = []
        """``finalized`` database keys whose last transaction was archived."""
        self.batches: list[int] = []
        """Sequences of the stored vote batches no certificate refers to any more."""
        self.archived_bytes = 0
        """The encoded size of the archived transactions (bytes)."""


def archive_final(
    txids: Sequence[bytes],
    finalized: dict[bytes, FinalEntry],
    rejected: Any,
    record_refs: dict[bytes, int],
    batches: dict[Any, StoredBatch],
    spent_final: dict[bytes, bytes],
) -> Archived:
    """Archives the final transactions among a block's ``txids`` (the coinbase, index 0, is
    skipped): each leaves ``finalized`` and frees its inputs in ``spent_final``; its record key
    loses a reference in ``record_refs`` (dropped, and listed, at none), and each vote batch its
    certificate refers to by reference (``CertificateRefs.records``) loses one in ``batches``
    (dropped, and its sequence listed, at none). Every txid of the block also leaves
    ``rejected`` (an ``OrderedDict``: a split tally saw it rejected, the chain settled it)."""
    archived = Archived()
    spent: list[bytes] = archived.spent
    n: cython.Py_ssize_t = len(txids)
    i: cython.Py_ssize_t
    for i in range(1, n):
        txid = txids[i]
        if rejected:
            rejected.pop(txid, None)
        entry = finalized.pop(txid, None)
        if entry is None:
            archived.unknown.append(i)
            continue
        archived.archived_bytes += len(entry.raw)
        inputs = entry.inputs
        spent.extend(inputs)
        key = entry.key
        left = record_refs[key] - 1
        if left:
            record_refs[key] = left
        else:  # the record's last transaction
            del record_refs[key]
            archived.records.append(key)
        cert = entry.certificate
        if not isinstance(cert, bytes):
            refs: CertificateRefs = cert  # by reference: its vote batches are stored
            for record in refs.records:
                stored = batches[record]
                stored.refs -= 1
                if stored.refs == 0:
                    del batches[record]
                    archived.batches.append(stored.sequence)
        for o in inputs:
            spent_final.pop(o, None)
    return archived


def settle_spent(
    spent: list[bytes],
    spent_final: dict[bytes, bytes],
    spenders: dict[bytes, Any],
    snowballs: dict[bytes, Any],
) -> tuple[list[tuple[bytes, bytes]], list[bytes]]:
    """For the outpoints a block spent: ``(violations, contested)``. A violation is an outpoint
    still held by a final transaction in ``spent_final`` (taken out: the block spent it another
    way), as ``(outpoint, holder txid)``; a contested outpoint has live rival spenders in
    ``spenders``, which the caller rejects and then drops the outpoint's Snowball. Every other
    outpoint's Snowball leaves ``snowballs`` here."""
    violations: list[tuple[bytes, bytes]] = []
    contested: list[bytes] = []
    for o in spent:
        if spent_final:
            holder = spent_final.pop(o, None)
            if holder is not None:
                violations.append((o, holder))
        if spenders.get(o):
            contested.append(o)
        elif snowballs:
            snowballs.pop(o, None)
    return violations, contested


def forget_accepts(
    outpoints: list[bytes],
    accepts: dict[bytes, bytes],
    accept_keys: dict[bytes, bytes],
    refs: dict[bytes, int],
) -> list[bytes]:
    """A signer forgets its accepts of spent ``outpoints``: each leaves ``accepts`` and
    ``accept_keys``; its record key loses a reference in ``refs`` (dropped, and listed, at
    none). Returns the record keys no outpoint holds any more."""
    released: list[bytes] = []
    for outpoint in outpoints:
        if accepts.pop(outpoint, None) is not None:
            key = accept_keys.pop(outpoint)
            left = refs[key] - 1
            if left:
                refs[key] = left
            else:
                del refs[key]
                released.append(key)
    return released
