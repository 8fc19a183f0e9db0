"""A transaction's finality state while it is in flight (DESIGN §4: "pending", then
"spent-final" until a block archives it): one record per transaction, of which a node holds tens
of thousands under load (a 2-s devnet slot of final transactions, ~37,000 at 6,000 tx/s offered).

Compiled by Cython in pure Python mode (setup.py ``HOT_MODULES``, ``txstate.pxd``; the ``.py``
stays the reference) for one reason: as ``cython.no_gc`` classes the records are untracked by
the cyclic collector, which otherwise scanned every one of them at every young collection while
they lived (docs/benchmarks.md, "less for the collector to scan"). That is safe only because a
record refers to bytes, numbers, ``None``, tuples of bytes and certificates by reference (an
untracked class too), so no reference cycle can pass through it: keep it so.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import cython

if TYPE_CHECKING:
    from timecoin.consensus.tally import CertificateRefs

__all__ = ["FinalEntry", "PendingTx"]


@cython.no_gc
@cython.cclass
class PendingTx:
    """A valid transaction that is neither final nor rejected."""

    __slots__ = (
        "txid",
        "raw",
        "inputs",
        "first_seen",
        "in_mempool",
        "decision",
        "last_voted",
        "last_relayed",
        "conflict_since",
    )

    def __init__(
        self, txid: bytes, raw: bytes, inputs: tuple[bytes, ...], first_seen: float, in_mempool: bool
    ) -> None:
        self.txid = txid
        self.raw = raw
        self.inputs = inputs
        """Its outpoints (36 bytes each)."""
        self.first_seen = first_seen
        """When this node admitted it (seconds, the consensus clock)."""
        self.in_mempool = in_mempool
        """False for a valid spend kept beside the mempool because it conflicts with a pending one."""
        self.decision: bool | None = None
        """This masternode's decision: accept, reject, or not yet."""
        self.last_voted: float | None = None
        """When this masternode last voted on it at the current height."""
        self.last_relayed: float | None = None
        """When this masternode last sent it to its peers again (``RelayTransactions``)."""
        self.conflict_since: float | None = None
        """When a second spender of one of its inputs arrived."""

    def __repr__(self) -> str:
        return f"PendingTx(txid={self.txid.hex()}, decision={self.decision}, in_mempool={self.in_mempool})"


@cython.no_gc
@cython.cclass
class FinalEntry:
    """A final transaction not yet archived in a block (UTXO state "spent-final", DESIGN §4)."""

    __slots__ = ("raw", "certificate", "inputs", "key")

    def __init__(
        self, raw: bytes, certificate: bytes | CertificateRefs, inputs: tuple[bytes, ...], key: bytes
    ) -> None:
        self.raw = raw
        self.certificate = certificate
        """The encoded certificate (one a peer sent) or this node's own, by reference."""
        self.inputs = inputs
        self.key = key
        """Its record's key in the ``finalized`` database (the group record of the step that made
        it final, ``store.FINALIZED_GROUP_KEY``, or a per-transaction record of an older store)."""

    def certificate_bytes(self) -> bytes:
        """The encoded finality certificate."""
        cert = self.certificate
        return cert if isinstance(cert, bytes) else cert.encode()
