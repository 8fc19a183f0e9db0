"""The finality vote tally: accept and reject weight per txid at one height, and the finality
certificate of a txid once its accepts reach a quorum (DESIGN §6).

This is the per-vote hot path of the node (every masternode's batch names every pending txid),
so it is plain, allocation-light Python over dicts and lists, a candidate for Cython compilation
(DESIGN §2); ``benches/bench_consensus.py`` measures it. Signatures are *not* checked here: the
engine verifies all signatures of a batch of incoming messages in one ``verify_batch`` call
before any vote reaches a tally.

Rules: each voter counts once per txid. A voter that repeats its decision changes nothing; one
that contradicts itself (accepts and rejects the same txid) keeps its first decision and the
contradiction is reported as evidence (DESIGN §12 invariant 3).
"""

from __future__ import annotations

import struct
from collections.abc import Iterator

import timecoin_native

from timecoin.consensus.messages import VERSION, CertificateEntry, FinalityCertificate, TxVote
from timecoin.consensus.validators import ValidatorSet

__all__ = ["Tally", "VoteRecord", "merkle_levels", "proof_from_levels"]


def merkle_levels(leaves: list[bytes]) -> list[bytes]:
    """Every level of the merkle tree of ``leaves`` (the leaf hashes first, the root last), each
    level one buffer of 32-byte hashes, exactly as ``timecoin.crypto.merkle_root`` builds it
    (native ``merkle_levels``): one tree for every proof of a batch, where n calls of
    ``merkle_proof`` would build n trees."""
    return timecoin_native.merkle_levels(leaves)


def proof_from_levels(levels: list[bytes], index: int) -> list[bytes]:
    """The merkle proof of leaf ``index`` (siblings bottom first; a carried-up level adds none),
    equal to ``timecoin.crypto.merkle_proof``."""
    proof = []
    for level in levels[:-1]:
        at = (index ^ 1) * 32
        if at < len(level):
            proof.append(level[at : at + 32])
        index //= 2
    return proof


class VoteRecord:
    """A verified :class:`TxVote` as the tally keeps it, with its merkle tree built on demand
    (only when a certificate needs a proof from it)."""

    __slots__ = ("vote", "weight", "_levels", "_head", "_middle")

    def __init__(self, vote: TxVote, weight: int) -> None:
        self.vote = vote
        self.weight = weight
        self._levels: list[bytes] | None = None
        self._head: bytes | None = None
        self._middle = b""

    def entry_bytes(self, index: int) -> bytes:
        """``self.entry(index).encode()``, from parts encoded once per batch: every finality
        certificate repeats the batch's voter, counts, roots and signature."""
        if self._head is None:
            vote = self.vote
            accept_root, reject_root = vote.roots
            self._head = vote.voter + _U32.pack(len(vote.accepts)) + accept_root
            self._middle = _U32.pack(len(vote.rejects)) + reject_root
            self._levels = self._levels or merkle_levels(list(vote.accepts))
        assert self._levels is not None
        proof = proof_from_levels(self._levels, index)
        return b"".join(
            (self._head, _U32.pack(index), self._middle, bytes((len(proof),)), *proof, self.vote.signature)
        )

    def entry(self, index: int) -> CertificateEntry:
        """The certificate entry for the ``index``-th accepted txid of this batch."""
        if self._levels is None:
            self._levels = merkle_levels(list(self.vote.accepts))
        vote = self.vote
        accept_root, reject_root = vote.roots
        return CertificateEntry(
            vote.voter,
            len(vote.accepts),
            accept_root,
            index,
            len(vote.rejects),
            reject_root,
            tuple(proof_from_levels(self._levels, index)),
            vote.signature,
        )


_REJECT = -1
_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")
_CERT_HEAD = bytes((VERSION,))
"""A finality certificate's encoding starts with the message version (messages.py)."""


class Tally:
    """Accept/reject weight per txid for the votes of one height's set ``vset``.

    Per txid the state is a list ``[accept weight, reject weight, {voter: (record, index)}]``
    (``index`` −1 for a reject), the cheapest shape CPython offers for this loop."""

    __slots__ = ("vset", "_txs", "_total")

    def __init__(self, vset: ValidatorSet) -> None:
        self.vset = vset
        self._txs: dict[bytes, list] = {}  # type: ignore[type-arg]
        self._total = vset.total

    def __len__(self) -> int:
        return len(self._txs)

    def __contains__(self, txid: object) -> bool:
        return txid in self._txs

    def add(self, record: VoteRecord) -> tuple[list[bytes], list[bytes], list[bytes]]:
        """Counts one verified batch. Returns (txids whose accept weight just reached a quorum,
        txids whose reject weight just exceeded 1/3, txids this voter contradicted itself on)."""
        vote, weight = record.vote, record.weight
        voter = vote.voter
        txs = self._txs
        two_total, total = 2 * self._total, self._total
        final: list[bytes] = []
        rejected: list[bytes] = []
        contradictions: list[bytes] = []
        for index, txid in enumerate(vote.accepts):
            state = txs.get(txid)
            if state is None:
                state = txs[txid] = [0, 0, {}]
            seen = state[2].get(voter)
            if seen is not None:
                if seen[1] == _REJECT:
                    contradictions.append(txid)
                continue
            state[2][voter] = (record, index)
            before = state[0]
            state[0] = after = before + weight
            if 3 * after >= two_total > 3 * before:
                final.append(txid)
        for txid in vote.rejects:
            state = txs.get(txid)
            if state is None:
                state = txs[txid] = [0, 0, {}]
            seen = state[2].get(voter)
            if seen is not None:
                if seen[1] != _REJECT:
                    contradictions.append(txid)
                continue
            state[2][voter] = (record, _REJECT)
            before = state[1]
            state[1] = after = before + weight
            if 3 * after > total >= 3 * before:
                rejected.append(txid)
        return final, rejected, contradictions

    def weights(self, txid: bytes) -> tuple[int, int]:
        """(accept weight, reject weight) of ``txid`` so far."""
        state = self._txs.get(txid)
        return (state[0], state[1]) if state is not None else (0, 0)

    def accepters(self, txid: bytes) -> list[bytes]:
        """Voters that accepted ``txid``, ascending."""
        state = self._txs.get(txid)
        if state is None:
            return []
        return sorted(v for v, (_, i) in state[2].items() if i != _REJECT)

    def decisions(self, txid: bytes) -> Iterator[tuple[bytes, bool]]:
        """(voter, accepted?) for every voter that decided ``txid``."""
        state = self._txs.get(txid)
        if state is not None:
            for voter, (_, index) in state[2].items():
                yield voter, index != _REJECT

    def is_final(self, txid: bytes) -> bool:
        state = self._txs.get(txid)
        return state is not None and 3 * state[0] >= 2 * self._total

    def is_rejected(self, txid: bytes) -> bool:
        state = self._txs.get(txid)
        return state is not None and 3 * state[1] > self._total

    def _accepts(self, txid: bytes) -> list[tuple[VoteRecord, int]]:
        """(batch, index) of every accept of ``txid`` counted so far, by voter ascending;
        ``ValueError`` unless they reach a quorum."""
        state = self._txs.get(txid)
        if state is None or not 3 * state[0] >= 2 * self._total:
            raise ValueError(f"txid {txid.hex()} has no quorum of accepts at height {self.vset.height}")
        return [seen for _, seen in sorted(state[2].items(), key=lambda item: item[0]) if seen[1] != _REJECT]

    def certificate(self, txid: bytes) -> FinalityCertificate:
        """The finality certificate of ``txid`` from every accept counted so far; ``ValueError``
        unless they reach a quorum."""
        entries = tuple(record.entry(index) for record, index in self._accepts(txid))
        return FinalityCertificate(txid, self.vset.height, entries)

    def certificate_bytes(self, txid: bytes) -> bytes:
        """``self.certificate(txid).encode()`` without building the objects (the per-transaction
        hot path of finality); ``ValueError`` unless the accepts reach a quorum."""
        entries = [record.entry_bytes(index) for record, index in self._accepts(txid)]
        return b"".join((_CERT_HEAD, txid, _U64.pack(self.vset.height), _U32.pack(len(entries)), *entries))

    def compact(self, txid: bytes) -> None:
        """Keeps only each voter's decision on ``txid`` (final or rejected and dealt with): the
        references to whole vote batches go, so memory stays small over a long slot, while a
        late contradiction is still caught. No certificate can be built from it afterwards."""
        state = self._txs.get(txid)
        if state is not None:
            state[2] = {voter: (None, index) for voter, (_, index) in state[2].items()}
