"""The finality vote tally: accept and reject weight per txid at one height, and the finality
certificate of a txid once its accepts reach a quorum (DESIGN §6).

This is the per-vote hot path of the node (every masternode's batch names every pending txid),
so it is plain, allocation-light Python over dicts and lists, compiled by Cython in pure Python
mode (DESIGN §2; setup.py ``HOT_MODULES``, ``tally.pxd`` gives the C types; the ``.py`` stays the
reference); ``benches/bench_consensus.py`` and ``benches/bench_cython.py`` measure it.
Signatures are *not* checked here: the engine verifies all signatures of a batch of incoming
messages in one ``verify_batch`` call before any vote reaches a tally.

Rules: each voter counts once per txid. A voter that repeats its decision changes nothing; one
that contradicts itself (accepts and rejects the same txid, typically each towards other nodes)
is reported as evidence (DESIGN §12 invariant 3) and its weight no longer counts on that txid,
either way: its first decision is taken back (what already reached a quorum or a rejection
stays so; a certificate repairs a split outcome, docs/consensus.md §2).

**Votes for transactions this node does not hold** (DESIGN §8, §12 invariant 9, §13 "Bounded
work per source"). A vote may outrun its transaction by a gossip hop, so its decisions on txids
the node does not hold cannot simply be dropped; but every voter may be Byzantine and name
millions of txids nobody will ever see. Such decisions are *parked* per voter, never counted:
each voter's parked batches are charged their full txid count (a parked decision keeps its
whole batch alive) and only its newest :data:`MAX_PARKED_PER_VOTER` txids' worth of batches is
kept, the oldest dropped first. Parked memory is thus at most (set size ×
:data:`MAX_PARKED_PER_VOTER`) txids per tally, whatever the voters send. :meth:`Tally.admit`
counts a txid's parked decisions once the node holds the transaction.
"""

from __future__ import annotations

import struct
from collections import deque
from collections.abc import Container, Iterator, Sequence

import cython
import timecoin_native

from timecoin.consensus.messages import LIMITS, VERSION, CertificateEntry, FinalityCertificate, TxVote
from timecoin.consensus.validators import ValidatorSet

__all__ = [
    "MAX_PARKED_PER_VOTER",
    "CertificateRefs",
    "Tally",
    "VoteRecord",
    "encode_certificate",
    "merkle_levels",
    "proof_from_levels",
]

MAX_PARKED_PER_VOTER = 32_768
"""Txids' worth of one voter's vote batches kept for transactions this node does not hold (the
module docstring): four full batches (``LIMITS["txids_per_vote"]``), a few seconds of an honest
voter's batches at 10,000 tx/s (DESIGN §11), of which only the txids that outran their
transaction are parked. About 2.5 MB of batches per voter at the bound."""
assert MAX_PARKED_PER_VOTER >= LIMITS["txids_per_vote"]


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


@cython.no_gc
@cython.cclass
class VoteRecord:
    """A verified :class:`TxVote` as the tally keeps it, with its merkle tree built on demand
    (only when a certificate needs a proof from it).

    Compiled, it is not tracked by the cyclic garbage collector (``cython.no_gc``: it refers only
    to the vote, an int and bytes, so it can never be part of a cycle). Every certificate by
    reference holds (record, index) pairs, ~500,000 of them in the 100,000 certificates a node
    remembers; CPython untracks a tuple once all it holds is untracked, so with the record
    untracked those pairs leave the collector's scans (gen-1 and full collections of a node at
    5,500 tx/s took up to 0.7 s each before; docs/benchmarks.md)."""

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


_REJECT = cython.declare(cython.Py_ssize_t, -1)
_EQUIVOCATED = cython.declare(cython.Py_ssize_t, -2)
"""A voter's decision on a txid it both accepted and rejected: its weight no longer counts
either way there (DESIGN §6; docs/consensus.md §2)."""
_INDEX_BITS = cython.declare(cython.Py_ssize_t, 14)
_INDEX_MASK = cython.declare(cython.Py_ssize_t, (1 << 14) - 1)
"""A counted decision is one int, ``batch number << _INDEX_BITS | (index + 2)`` (index −2
equivocated, −1 a reject, else the txid's position in the batch's accepts, below
``LIMITS["txids_per_vote"]``), the batch number its place in the tally's batch list (0: no
batch, after :meth:`Tally.compact`). Ints and a dict of them are no work for the cyclic
collector, where a (batch, index) tuple per voter and txid was half the objects it scanned under
load (docs/operator.md, "Memory")."""
assert LIMITS["txids_per_vote"] + 2 <= 1 << 14
_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")
_CERT_HEAD = bytes((VERSION,))
"""A finality certificate's encoding starts with the message version (messages.py)."""


def _batch_size(record: VoteRecord) -> int:
    """Txids a batch holds."""
    vote = record.vote
    return len(vote.accepts) + len(vote.rejects)


class _Parked:
    """One voter's batches holding parked decisions, oldest first, and the txids they carry."""

    __slots__ = ("batches", "size")

    def __init__(self) -> None:
        self.batches: deque[tuple[VoteRecord, list[tuple[bytes, int]]]] = deque()
        """(batch, its parked (txid, index or −1 for a reject)), oldest first."""
        self.size = 0
        """Txids of the batches held (each charged in full: the record keeps all of them)."""


@cython.no_gc
@cython.cclass
class _TxState:
    """One txid's accept and reject weight and each voter's decision (voter → decision code,
    :data:`_INDEX_BITS`). Compiled, it is untracked by the cyclic collector (``cython.no_gc``: it
    refers only to ints and a dict of bytes and ints, so it can never be part of a cycle)."""

    __slots__ = ("accept", "reject", "decisions")

    def __init__(self) -> None:
        self.accept = 0
        self.reject = 0
        self.decisions: dict[bytes, int] = {}


def _index(code: int) -> int:
    """The index (−2 equivocated, −1 reject, else the position in the accepts) of a decision."""
    return (code & _INDEX_MASK) - 2


class Tally:
    """Accept/reject weight per txid for the votes of one height's set ``vset``.

    Per txid the state is a :class:`_TxState`; each voter's decision on it is one int naming
    the batch (by its number in the tally's batch list) and the txid's place in it
    (:data:`_INDEX_BITS`). A batch stays in the list while a decision names it (a count per
    batch; :meth:`compact` releases them). Decisions on txids the node does not hold are parked
    per voter within :data:`MAX_PARKED_PER_VOTER` (the module docstring)."""

    __slots__ = (
        "vset",
        "_txs",
        "_total",
        "_parked",
        "_waiting",
        "_parked_count",
        "_batches",
        "_batch_refs",
        "_batch_numbers",
        "_free_numbers",
    )

    def __init__(self, vset: ValidatorSet) -> None:
        self.vset = vset
        self._txs: dict[bytes, _TxState] = {}
        self._total = vset.total
        self._parked: dict[bytes, _Parked] = {}
        """voter → its batches holding parked decisions (only members of ``vset`` ever vote)."""
        self._waiting: dict[bytes, dict[bytes, tuple[VoteRecord, int]]] = {}
        """Parked decisions by txid: txid → {voter: (batch, index or −1)}."""
        self._parked_count = 0
        self._batches: list[VoteRecord | None] = [None]
        """Batch number → the batch counted decisions name (number 0: none)."""
        self._batch_refs: list[int] = [0]
        """Batch number → counted decisions naming it; at 0 the number is freed."""
        self._batch_numbers: dict[VoteRecord, int] = {}
        """Batch → its number, while decisions name it."""
        self._free_numbers: list[int] = []

    def _number(self, record: VoteRecord) -> int:
        """``record``'s batch number (a new one, reusing a freed one, when it has none)."""
        number = self._batch_numbers.get(record)
        if number is None:
            if self._free_numbers:
                number = self._free_numbers.pop()
                self._batches[number] = record
            else:
                number = len(self._batches)
                self._batches.append(record)
                self._batch_refs.append(0)
            self._batch_numbers[record] = number
        return number

    def _release(self, number: int, count: int) -> None:
        """``count`` decisions no longer name batch ``number``."""
        refs = self._batch_refs[number] - count
        self._batch_refs[number] = refs
        if refs == 0:
            record = self._batches[number]
            self._batches[number] = None
            del self._batch_numbers[record]
            self._free_numbers.append(number)

    def __len__(self) -> int:
        return len(self._txs)

    def __contains__(self, txid: object) -> bool:
        return txid in self._txs

    @property
    def parked(self) -> int:
        """Parked (voter, txid) decisions, all voters together."""
        return self._parked_count

    @property
    def batches_held(self) -> int:
        """Vote batches held because a counted decision names them."""
        return len(self._batch_numbers)

    @property
    def batch_slots(self) -> int:
        """Length of the numbered batch list: the most batches held at once since the tally
        began, plus the unused number 0 (freed numbers are reused, so it never shrinks)."""
        return len(self._batches)

    def parked_txids(self, voter: bytes) -> int:
        """Txids of ``voter``'s batches kept for parked decisions (≤ :data:`MAX_PARKED_PER_VOTER`)."""
        batches = self._parked.get(voter)
        return batches.size if batches is not None else 0

    def is_parked(self, txid: bytes, voter: bytes | None = None) -> bool:
        """Whether a decision on ``txid`` (by ``voter``, if given) is parked."""
        voters = self._waiting.get(txid)
        return voters is not None and (voter is None or voter in voters)

    def add(self, record: VoteRecord) -> tuple[list[bytes], list[bytes], list[bytes]]:
        """Counts one verified batch, every txid of it. Returns (txids whose accept weight just
        reached a quorum, txids whose reject weight just exceeded 1/3, txids this voter
        contradicted itself on)."""
        final, rejected, contradictions, _ = self.count(record, None)
        return final, rejected, contradictions

    def count(
        self, record: VoteRecord, held: Container[bytes] | None
    ) -> tuple[list[bytes], list[bytes], list[bytes], list[bytes]]:
        """Counts one verified batch. A txid neither tallied yet nor in ``held`` (the txids whose
        transaction this node holds; None: all) is parked, not counted (the module docstring).
        Returns (txids whose accept weight just reached a quorum, txids whose reject weight just
        exceeded 1/3, txids this voter contradicted itself on, txids this voter accepted that
        were parked for it just now: the transactions to fetch)."""
        vote, weight = record.vote, record.weight
        voter = vote.voter
        txs = self._txs
        two_total, total = 2 * self._total, self._total
        final: list[bytes] = []
        rejected: list[bytes] = []
        contradictions: list[bytes] = []
        parked: list[tuple[bytes, int]] = []
        number = self._number(record)
        base = number << _INDEX_BITS
        counted = 0
        for index, txid in enumerate(vote.accepts):
            state = txs.get(txid)
            if state is None:
                if held is not None and txid not in held:
                    parked.append((txid, index))
                    continue
                state = txs[txid] = _TxState()
            decisions = state.decisions
            seen = decisions.get(voter)
            if seen is not None:
                if _index(seen) == _REJECT:
                    self._discard(state, voter, seen, weight)
                    contradictions.append(txid)
                continue
            decisions[voter] = base | (index + 2)
            counted += 1
            before = state.accept
            state.accept = after = before + weight
            if 3 * after >= two_total > 3 * before:
                final.append(txid)
        for txid in vote.rejects:
            state = txs.get(txid)
            if state is None:
                if held is not None and txid not in held:
                    parked.append((txid, _REJECT))
                    continue
                state = txs[txid] = _TxState()
            decisions = state.decisions
            seen = decisions.get(voter)
            if seen is not None:
                if _index(seen) >= 0:
                    self._discard(state, voter, seen, weight)
                    contradictions.append(txid)
                continue
            decisions[voter] = base | (_REJECT + 2)
            counted += 1
            before = state.reject
            state.reject = after = before + weight
            if 3 * after > total >= 3 * before:
                rejected.append(txid)
        self._batch_refs[number] += counted
        if counted == 0:
            self._release(number, 0)  # a number for nothing: freed again
        fetch: list[bytes] = []
        if parked:
            self._park(record, parked, fetch, contradictions)
        return final, rejected, contradictions, fetch

    @staticmethod
    def _discard(state: _TxState, voter: bytes, seen: int, weight: int) -> None:
        """``voter`` contradicted its counted decision ``seen`` on this txid: that decision's
        weight is taken back and nothing it says on the txid counts again (the decision keeps
        naming its batch: :meth:`counted_batch`). A quorum or a rejection already reached stays
        (what was final is final: its certificate holds)."""
        if _index(seen) == _REJECT:
            state.reject -= weight
        else:
            state.accept -= weight
        state.decisions[voter] = seen & ~_INDEX_MASK | (_EQUIVOCATED + 2)

    def _park(
        self,
        record: VoteRecord,
        decisions: list[tuple[bytes, int]],
        fetch: list[bytes],
        contradictions: list[bytes],
    ) -> None:
        """Parks ``decisions`` (txid, index or −1) of ``record``'s voter, newest batch last, then
        drops the voter's oldest batches past :data:`MAX_PARKED_PER_VOTER` txids. A decision
        repeated keeps only its newest batch; a contradiction keeps the first (reported)."""
        voter = record.vote.voter
        own = self._parked.get(voter)
        if own is None:
            own = self._parked[voter] = _Parked()
        waiting = self._waiting
        kept: list[tuple[bytes, int]] = []
        for txid, index in decisions:
            voters = waiting.get(txid)
            if voters is None:
                voters = waiting[txid] = {}
            seen = voters.get(voter)
            if seen is None:
                self._parked_count += 1
                if index != _REJECT:
                    fetch.append(txid)
            elif seen[1] == _EQUIVOCATED:
                continue
            elif (seen[1] == _REJECT) != (index == _REJECT):
                voters[voter] = (seen[0], _EQUIVOCATED)
                contradictions.append(txid)
                continue
            voters[voter] = (record, index)
            kept.append((txid, index))
        if not kept:
            return
        own.batches.append((record, kept))
        own.size += _batch_size(record)
        while own.size > MAX_PARKED_PER_VOTER and len(own.batches) > 1:
            old, entries = own.batches.popleft()
            own.size -= _batch_size(old)
            for txid, _ in entries:
                voters = waiting.get(txid)
                if voters is None:
                    continue  # admitted since
                seen = voters.get(voter)
                if seen is not None and seen[0] is old:
                    del voters[voter]
                    self._parked_count -= 1
                    if not voters:
                        del waiting[txid]

    def admit(self, txid: bytes) -> None:
        """The node now holds ``txid``'s transaction: its parked decisions are counted (check
        :meth:`is_final` / :meth:`is_rejected` afterwards)."""
        voters = self._waiting.pop(txid, None)
        if voters is None:
            return
        self._parked_count -= len(voters)
        state = self._txs.get(txid)
        if state is None:
            state = self._txs[txid] = _TxState()
        decided = state.decisions
        for voter, (record, index) in voters.items():
            if voter in decided:
                continue
            number = self._number(record)
            self._batch_refs[number] += 1
            decided[voter] = number << _INDEX_BITS | (index + 2)
            if index == _REJECT:
                state.reject += record.weight
            elif index != _EQUIVOCATED:
                state.accept += record.weight

    def counted_batch(self, txid: bytes, voter: bytes) -> VoteRecord | None:
        """The batch whose decision of ``voter`` on ``txid`` was counted (or taken back as a
        contradiction), if it is still held (:meth:`compact` drops it)."""
        state = self._txs.get(txid)
        seen = state.decisions.get(voter) if state is not None else None
        return self._batches[seen >> _INDEX_BITS] if seen is not None else None

    def weights(self, txid: bytes) -> tuple[int, int]:
        """(accept weight, reject weight) of ``txid`` so far."""
        state = self._txs.get(txid)
        return (state.accept, state.reject) if state is not None else (0, 0)

    def accepters(self, txid: bytes) -> list[bytes]:
        """Voters that accepted ``txid``, ascending."""
        state = self._txs.get(txid)
        if state is None:
            return []
        return sorted(v for v, code in state.decisions.items() if _index(code) >= 0)

    def decisions(self, txid: bytes) -> Iterator[tuple[bytes, bool]]:
        """(voter, accepted?) for every voter that decided ``txid``."""
        state = self._txs.get(txid)
        if state is not None:
            for voter, code in state.decisions.items():
                index = _index(code)
                if index != _EQUIVOCATED:
                    yield voter, index != _REJECT

    def is_final(self, txid: bytes) -> bool:
        state = self._txs.get(txid)
        return state is not None and 3 * state.accept >= 2 * self._total

    def is_rejected(self, txid: bytes) -> bool:
        state = self._txs.get(txid)
        return state is not None and 3 * state.reject > self._total

    def _accept_codes(self, txid: bytes) -> list[int]:
        """The decision codes of every accept of ``txid`` counted so far, by voter ascending;
        ``ValueError`` unless they reach a quorum."""
        state = self._txs.get(txid)
        if state is None or not 3 * state.accept >= 2 * self._total:
            raise ValueError(f"txid {txid.hex()} has no quorum of accepts at height {self.vset.height}")
        return [code for _, code in sorted(state.decisions.items()) if _index(code) >= 0]

    def _accepts(self, txid: bytes) -> list[tuple[VoteRecord, int]]:
        """(batch, index) of every accept of ``txid`` counted so far, by voter ascending;
        ``ValueError`` unless they reach a quorum."""
        batches = self._batches
        return [(batches[code >> _INDEX_BITS], _index(code)) for code in self._accept_codes(txid)]

    def certificate(self, txid: bytes) -> FinalityCertificate:
        """The finality certificate of ``txid`` from every accept counted so far; ``ValueError``
        unless they reach a quorum."""
        entries = tuple(record.entry(index) for record, index in self._accepts(txid))
        return FinalityCertificate(txid, self.vset.height, entries)

    def certificate_refs(self, txid: bytes) -> CertificateRefs:
        """The certificate of ``txid`` by reference, from every accept counted so far;
        ``ValueError`` unless they reach a quorum. Made once per final transaction: the batches
        and indexes come straight from the decision codes, no (batch, index) pair in between."""
        codes = self._accept_codes(txid)
        batches = self._batches
        return CertificateRefs(
            txid,
            self.vset.height,
            tuple([batches[code >> _INDEX_BITS] for code in codes]),
            tuple([_index(code) for code in codes]),
        )

    def certificate_bytes(self, txid: bytes) -> bytes:
        """``self.certificate(txid).encode()`` without building the objects; ``ValueError``
        unless the accepts reach a quorum."""
        return encode_certificate(txid, self.vset.height, self._accepts(txid))

    def accepts(self, txid: bytes) -> list[tuple[VoteRecord, int]]:
        """(batch, index) of every accept of ``txid`` counted so far, by voter ascending: the
        certificate by reference (:func:`encode_certificate` builds its bytes); ``ValueError``
        unless they reach a quorum."""
        return self._accepts(txid)

    def compact(self, txid: bytes) -> None:
        """Keeps only each voter's decision on ``txid`` (final or rejected and dealt with): the
        references to whole vote batches go, so memory stays small over a long slot, while a
        late contradiction is still caught. No certificate can be built from it afterwards."""
        state = self._txs.get(txid)
        if state is not None:
            decisions = state.decisions
            for voter, code in decisions.items():
                number = code >> _INDEX_BITS
                if number:
                    decisions[voter] = code & _INDEX_MASK  # same keys: no resize while iterating
                    self._release(number, 1)


@cython.no_gc
@cython.cclass
class CertificateRefs:
    """A finality certificate by reference: the vote batches (and the index of the txid in each
    batch's accepts) whose accepts made ``txid`` final at ``height``, by voter ascending. The
    batches are stored once (``votes/`` records, :mod:`timecoin.consensus.store`) however many
    certificates refer to them; the bytes are built only when someone asks (:meth:`encode`).
    Compiled, it is untracked by the cyclic collector like :class:`VoteRecord`, and it keeps the
    batches and the indexes in two flat tuples (of records, of ints), which CPython untracks at
    their first collection whatever the order: a tuple of (batch, index) pairs stayed tracked
    (and was scanned again by every older-generation collection) while any pair still was, and the
    100,000 certificates a node remembers were half the objects the collector held under load
    (docs/benchmarks.md, "less for the collector to scan")."""

    __slots__ = ("txid", "height", "records", "indexes")

    def __init__(
        self, txid: bytes, height: int, records: tuple[VoteRecord, ...], indexes: tuple[int, ...]
    ) -> None:
        if len(records) != len(indexes):
            raise ValueError(f"{len(records)} batches but {len(indexes)} indexes")
        self.txid = txid
        self.height = height
        self.records = records
        self.indexes = indexes

    @property
    def accepts(self) -> tuple[tuple[VoteRecord, int], ...]:
        """(batch, index) of each entry, by voter ascending (made on each call)."""
        return tuple(zip(self.records, self.indexes, strict=True))

    def encode(self) -> bytes:
        """The encoded ``FinalityCertificate``: the bytes the tally would have built at once."""
        return encode_certificate(self.txid, self.height, self.accepts)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, CertificateRefs):
            return NotImplemented
        return (self.txid, self.height, self.records, self.indexes) == (
            other.txid,
            other.height,
            other.records,
            other.indexes,
        )

    def __hash__(self) -> int:
        return hash((self.txid, self.height, self.records, self.indexes))

    def __repr__(self) -> str:
        return f"CertificateRefs(txid={self.txid.hex()}, height={self.height}, accepts={len(self.records)})"


def encode_certificate(txid: bytes, height: int, accepts: Sequence[tuple[VoteRecord, int]]) -> bytes:
    """The encoded ``FinalityCertificate`` of ``txid`` at ``height`` whose entries are the
    ``index``-th accepts of the batches ``accepts`` (by voter ascending, as
    :meth:`Tally.accepts` gives them), built from parts each batch encodes once."""
    entries = [record.entry_bytes(index) for record, index in accepts]
    return b"".join((_CERT_HEAD, txid, _U64.pack(height), _U32.pack(len(entries)), *entries))
