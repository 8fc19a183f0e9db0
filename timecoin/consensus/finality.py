"""Transaction finality: batched votes, finality certificates, conflicts, Snowball, and the
finalized pool that blocks archive (DESIGN §6; docs/consensus.md).

A transaction enters through :meth:`FinalityEngine.submit`: mempool admission, or, for a valid
spend that conflicts with a pending one, the conflict table (every masternode must learn both
sides of a conflict, so conflicting spends are voted on, not dropped). A masternode decides each
pending transaction at a vote flush at least ``finality_vote_interval`` after first seeing it:

* **reject** it if one of its outpoints is recorded as accepted for another txid by this
  signer, or is spent by a final transaction;
* else, if another live transaction spends one of its outpoints, run **Snowball** on that
  outpoint and decide when it has (accept the preference, reject the others);
* else **accept** it, recording ``outpoint → txid`` for each input in the signer state.

All decisions of a flush go out in one signed :class:`~timecoin.consensus.messages.TxVote`, after
the signer records are persisted. Every node tallies every vote: accepts reaching 2/3 of the
set's weight make the transaction **final** (certificate built, record persisted, then
reported); rejects above 1/3 make it **rejected** (locks released). Decisions still open after
``finality_revote_interval`` are voted again (votes lost in a partition), and a new height (a
new set) votes everything open again. A transaction pending that long is also sent to every
peer again (:class:`~timecoin.consensus.effects.RelayTransactions`): a masternode that missed or
dropped it cannot vote on it. A conflict unsettled ``conflict_deadline`` after it was
seen is settled by the next block (:meth:`FinalityEngine.block_transactions`,
:meth:`FinalityEngine.check_block_transactions`).

Safety (DESIGN §12 invariant 1): two conflicting final transactions would need 2/3 of the weight
each, so more than 1/3 would have accepted both, which honest masternodes never do; a block that
settles a conflict is precommitted by 2/3 that each recorded an accept for what it contains, the
same argument. Liveness gives way where safety must: an owner who signs two spends that split the
honest accepts sees both rejected and that coin stays unspendable (the signer records are kept
while the outpoint is unspent), like an equivocating owner's object in FastPay and Sui.

No I/O: durable writes, messages, timers and notices go to the :class:`Outbox`.
"""

from __future__ import annotations

import logging
import random
import sys
from collections import OrderedDict, deque
from collections.abc import Container, Sequence
from typing import Any

from timecoin._args import HASH_LEN
from timecoin.consensus.certificates import CertificateError, check_certificate_structure
from timecoin.consensus.context import Context, Outbox
from timecoin.consensus.effects import (
    Broadcast,
    Evidence,
    FetchTransactions,
    RelayTransactions,
    Reply,
    Resend,
    SendTo,
    Timer,
    TransactionFinalized,
    TransactionRejected,
)
from timecoin.consensus.messages import (
    LIMITS,
    CertificateRequest,
    FinalityCertificate,
    SnowballQuery,
    SnowballResponse,
    TxCertificate,
    TxVote,
)
from timecoin.consensus.settle import StoredBatch, archive_final, settle_spent
from timecoin.consensus.snowball import Poll, Snowball
from timecoin.consensus.store import (
    CONSENSUS_DB,
    FINALIZED_DB,
    decode_certificate_refs,
    encode_certificate_refs,
    encode_finalized_entry,
    finalized_group_key,
    finalized_sequence,
    vote_batch_key,
)
from timecoin.consensus.tally import CertificateRefs, Tally, VoteRecord
from timecoin.consensus.txstate import FinalEntry, PendingTx
from timecoin.core.types import Block, BlockView, Transaction
from timecoin.ledger.mempool import Admission, Mempool

log = logging.getLogger(__name__)

__all__ = ["CertificateRefs", "FinalEntry", "FinalityEngine", "PendingTx"]

MAX_CONFLICTING = 10_000
"""Valid spends kept beside the mempool because they conflict with a pending one."""
REJECTED_MEMORY = 100_000
"""Recently rejected txids remembered, so a resubmission is refused at once."""
NEW_HEIGHT_REVOTE_DELAY = 0.1
"""Seconds after a new height before this masternode votes again on the decisions it left open
at the previous one (docs/consensus.md §2, "Revotes"). The previous height's votes still in
flight (a flush, at most ``finality_vote_interval`` after a decision, plus the network) count
first, in the previous tally, where most of those transactions become final; voting on them all
again at once doubled the votes and tally work at every block (measured at 5,500 tx/s: ~2,000
txids per node per block, counted by every node)."""


class _Held:
    """The txids whose transaction this node holds: pending or final (a container view)."""

    __slots__ = ("_pending", "_finalized")

    def __init__(self, pending: dict[bytes, PendingTx], finalized: dict[bytes, FinalEntry]) -> None:
        self._pending = pending
        self._finalized = finalized

    def __contains__(self, txid: object) -> bool:
        return txid in self._pending or txid in self._finalized


class FinalityEngine:
    """The finality half of one node's consensus (see the module docstring)."""

    def __init__(
        self,
        ctx: Context,
        mempool: Mempool,
        finalized: Sequence[tuple[bytes, bytes, bytes, bytes]],
        rng: random.Random,
        vote_batches: Sequence[tuple[int, bytes]] = (),
    ) -> None:
        self.ctx = ctx
        self.mempool = mempool
        self.rng = rng
        self.pending: dict[bytes, PendingTx] = {}
        self.spenders: dict[bytes, set[bytes]] = {}
        self.finalized: dict[bytes, FinalEntry] = {}
        self.finalized_bytes = 0
        """Bytes of the transactions in :attr:`finalized` (final, no block archives them yet):
        the node's admission control bounds it (``timecoin.ledger.mempool.AdmissionLimit``)."""
        self.spent_final: dict[bytes, bytes] = {}
        self.rejected: OrderedDict[bytes, str] = OrderedDict()
        self.tally = Tally(ctx.vset)
        self.prev_tally: Tally | None = None
        self.snowballs: dict[bytes, Snowball] = {}
        self.polls: dict[int, bytes] = {}
        self.conflicting = 0
        self._accepted_by: dict[tuple[bytes, bytes], tuple[bytes, TxVote]] = {}
        self._equivocators: set[bytes] = set()
        """Voters caught contradicting themselves at this height, whose contradicting batch was
        re-sent to every peer (so every tally sees both sides and discards them)."""
        self._certificates_sent: dict[Any, set[bytes]] = {}
        """Per peer, the txids whose certificates it was sent at this height (at most the txids
        of this node's proposals at the height, per peer: :meth:`on_certificate_request`)."""
        self._flush_at: float | None = None
        """When the scheduled vote flush runs (None: none is scheduled)."""
        self._flush_seq = 0
        """Sequence number of the scheduled flush's timer (its ``round``): a timer superseded by
        an earlier flush is ignored when it fires, so timers never pile up (:meth:`on_flush`)."""
        self._fresh: dict[bytes, None] = {}
        """Pending txids not yet considered for a decision (waiting out the vote interval), in
        arrival order."""
        self._undecided: dict[bytes, None] = {}
        """Pending txids considered but not decided (waiting on Snowball)."""
        self._revotes: deque[tuple[float, bytes]] = deque()
        """(when due, txid) of the votes to send again, in due order; stale entries are skipped."""
        self._revote_all: list[bytes] = []
        """Decided txids to vote on again at the first flush from :attr:`_revote_all_at` (a new
        height)."""
        self._revote_all_at = 0.0
        self._query_seq = rng.getrandbits(63)
        self._held = _Held(self.pending, self.finalized)
        """The txids whose votes are tallied at once; a vote's other txids are parked (on_votes)."""
        self._stale: list[bytes] = []
        """Keys of finalized records a committed block already archived."""
        self._record_refs: dict[bytes, int] = {}
        """Key of each stored finalized record → how many of its transactions :attr:`finalized`
        holds (a group record holds a step's; it is swept when a block archives the last)."""
        self._next_key = 0
        """Sequence number of the next finalized group record (``store.FINALIZED_GROUP_KEY``)."""
        self._batches: dict[VoteRecord, StoredBatch] = {}
        """The stored vote batches that certificates by reference of :attr:`finalized` name."""
        self._next_batch = 0
        """Sequence number of the next stored vote batch."""
        self._load(finalized, vote_batches)

    def _load(
        self,
        finalized: Sequence[tuple[bytes, bytes, bytes, bytes]],
        vote_batches: Sequence[tuple[int, bytes]],
    ) -> None:
        """The finalized pool from the store. ``ValueError`` if a record is malformed or names a
        vote batch that is not stored."""
        records = {}
        for sequence, data in vote_batches:
            records[sequence] = VoteRecord(TxVote.decode(data), 0)
            self._next_batch = max(self._next_batch, sequence + 1)
        utxos = self.ctx.chain.utxos
        live = self._record_refs
        for key, txid, raw, proof in finalized:
            sequence = finalized_sequence(key)
            if sequence is not None:
                self._next_key = max(self._next_key, sequence + 1)
            live.setdefault(key, 0)
            tx = Transaction.decode(raw)
            inputs = tuple(o.encode() for o in tx.inputs)
            if txid in self.finalized or not all(utxos.get(o) is not None for o in inputs):
                # Archived by a block committed before the record's delete (or spent otherwise).
                continue
            refs = decode_certificate_refs(proof)
            cert: bytes | CertificateRefs = proof
            if refs is not None:
                height, entries = refs
                missing = [seq for seq, _ in entries if seq not in records]
                if missing:
                    raise ValueError(
                        f"finalized record of {txid.hex()} names vote batch {missing[0]}, which is not stored"
                    )
                cert = CertificateRefs(
                    txid, height, tuple([records[seq] for seq, _ in entries]), tuple([i for _, i in entries])
                )
                for seq, _ in entries:
                    stored = self._batches.setdefault(records[seq], StoredBatch(seq))
                    stored.refs += 1
            self.finalized[txid] = FinalEntry(raw, cert, inputs, key)
            live[key] += 1
            self.finalized_bytes += len(raw)
            for o in inputs:
                self.spent_final[o] = txid
        # Records whose every transaction a block archived (swept at start).
        self._stale = [key for key, count in live.items() if not count]
        for key in self._stale:
            del live[key]
        # Batches no stored record names any more (their last record went in a block).
        self._stale_batches = [seq for seq, record in records.items() if record not in self._batches]

    # -- entry points ------------------------------------------------------------------------------

    def start(self, out: Outbox, now: float) -> None:
        """Drops finalized records a committed block already archived (crash between the block and
        the delete)."""
        out.writes.extend((FINALIZED_DB, key, None) for key in self._stale)
        out.writes.extend((CONSENSUS_DB, vote_batch_key(seq), None) for seq in self._stale_batches)
        self._stale = []
        self._stale_batches = []

    def submit(self, raws: Sequence[bytes], out: Outbox, now: float) -> list[Admission]:
        """Admits encoded transactions for voting (mempool rules, then finality state). Codes
        beyond the mempool's: ``txn-already-final``, ``txn-spent-final`` (an input is spent by a
        final transaction), ``txn-rejected`` (rejected by votes recently)."""
        raws = list(raws)
        admissions = self.mempool.add(raws, self.ctx.height)
        result = []
        for raw, adm in zip(raws, admissions, strict=True):
            txid = adm.txid
            if txid is not None and txid in self.finalized:
                if adm.accepted:
                    self.mempool.remove([txid])
                result.append(Admission(txid, "txn-already-final", "transaction is already final"))
            elif adm.accepted:
                assert txid is not None
                entry = self.mempool.get(txid)
                assert entry is not None
                refusal = self._refusal(txid, entry.inputs)
                if refusal is not None:
                    self.mempool.remove([txid])
                    result.append(Admission(txid, *refusal))
                    continue
                self._add_pending(txid, raw, entry.inputs, now, True, out)
                result.append(adm)
            elif adm.code == "txn-mempool-conflict" and txid is not None:
                result.append(self._admit_conflict(txid, raw, out, now, adm))
            else:
                result.append(adm)
        return result

    def _admit_conflict(self, txid: bytes, raw: bytes, out: Outbox, now: float, adm: Admission) -> Admission:
        if txid in self.pending:
            return Admission(txid, "txn-already-in-mempool", "transaction is already pending (in conflict)")
        inputs = tuple(o.encode() for o in Transaction.decode(raw).inputs)
        refusal = self._refusal(txid, inputs)
        if refusal is not None:
            return Admission(txid, *refusal)
        if self.conflicting >= MAX_CONFLICTING:
            return adm
        self._add_pending(txid, raw, inputs, now, False, out)
        return Admission(txid, "", "")

    def on_votes(self, records: Sequence[VoteRecord], out: Outbox, now: float) -> None:
        """Tallies verified vote batches of the current or previous height. Decisions on txids
        this node holds no transaction for are parked in the tally within a per-voter bound
        (``tally.MAX_PARKED_PER_VOTER``), counted once the transaction arrives (``_add_pending``);
        the ones a voter accepted are fetched from it (:class:`FetchTransactions`) unless
        rejected here recently."""
        held = self._held
        for record in records:
            tally = self.tally if record.vote.height == self.tally.vset.height else self.prev_tally
            if tally is None:
                continue
            final, rejected, contradictions, unknown = tally.count(record, held)
            if unknown:
                wanted = tuple(t for t in unknown if t not in self.rejected)
                if wanted:
                    out.sends.append(FetchTransactions(record.vote.voter, wanted))
            if contradictions:  # one piece of evidence per batch: the batch shows them all
                self._evidence(out, "contradictory-tx-vote", record.vote, contradictions[0])
                voter = record.vote.voter
                if voter not in self._equivocators:  # spread both sides once per voter and height
                    self._equivocators.add(voter)
                    earlier = tally.counted_batch(contradictions[0], voter)
                    if earlier is not None and earlier is not record:
                        out.sends.append(Resend(earlier.vote.encode()))
                    out.sends.append(Resend(record.vote.encode()))
            if self.conflicting:
                self._check_conflicting_accepts(record.vote, out)
            for txid in final:
                if txid in self.pending and txid not in self.finalized:
                    self._finalize(txid, tally.certificate_refs(txid), out, now)
            for txid in rejected:
                if txid in self.pending and txid not in self.finalized:
                    self._reject(txid, "rejected-by-votes", out, now)

    def on_certificate_request(
        self, request: CertificateRequest, peer: Any, proposed: Container[bytes], out: Outbox
    ) -> None:
        """Answers ``peer`` with a :class:`TxCertificate` for each requested txid this node holds
        as final and not yet archived, if it is in a block this node proposed at this height
        (``proposed``: what a validator of that proposal may lack) and ``peer`` was not sent it
        yet at this height. The request is unsigned and each answer ~1.2 KB per 32-byte txid:
        without those two bounds one peer could make the node send ~37 times what it sends, again
        and again (docs/consensus.md §4, "Validation")."""
        answered = self._certificates_sent.setdefault(peer, set())
        refused = 0
        for txid in request.txids:
            entry = self.finalized.get(txid)
            if entry is None or txid not in proposed or txid in answered:
                refused += 1
                continue
            answered.add(txid)
            cert = FinalityCertificate.decode(entry.certificate_bytes())
            out.sends.append(Reply(peer, TxCertificate(entry.raw, cert).encode()))
        if refused:
            self.ctx.monitor.counters["certificates_not_sent"] += refused

    def on_certificate(self, message: TxCertificate, out: Outbox, now: float) -> bool:
        """A final transaction whose certificate signatures already verified (gossiped, or the
        answer to a :class:`CertificateRequest`): checked against the set and made final here
        too, even if this node had seen it rejected (an equivocating voter can split the tallies:
        the certificate proves 2/3 accepted it, so no conflicting spend can ever be final; the
        conflicting ones are rejected). True if it became final."""
        try:
            tx = Transaction.decode(message.transaction)
        except ValueError:
            self.ctx.monitor.ignore("bad-encoding")
            return False
        cert = message.certificate
        vset = self.ctx.set_for(cert.height)
        if vset is None:
            self.ctx.monitor.ignore("wrong-height")
            return False
        try:
            check_certificate_structure(cert, tx.txid, vset)
        except CertificateError as e:
            self.ctx.monitor.ignore(e.code)
            return False
        if tx.txid in self.finalized:
            return False
        if tx.txid not in self.pending:
            inputs = tuple(o.encode() for o in tx.inputs)
            if any(self.spent_final.get(o, tx.txid) != tx.txid for o in inputs):
                log.critical(
                    "SAFETY: certificate for %s conflicts with a final transaction",
                    tx.txid.hex(),
                    extra={"txid": tx.txid.hex()},
                )
                self.ctx.monitor.counters["safety_violations"] += 1
                return False
            verdict = self.ctx.chain.utxos.check_transactions(
                [message.transaction], self.ctx.chain.rules, self.ctx.height
            )[0]
            if not verdict.ok:
                self.ctx.monitor.ignore("certified-invalid")
                return False
            if self.rejected.pop(tx.txid, None) is not None:
                self.ctx.monitor.counters["rejections_overturned"] += 1
            self._add_pending(tx.txid, message.transaction, inputs, now, False, out, certified=True)
        if tx.txid in self.pending and tx.txid not in self.finalized:
            self._finalize(tx.txid, cert.encode(), out, now)
        return tx.txid in self.finalized

    def on_flush(self, out: Outbox, now: float, seq: int | None = None) -> None:
        """The vote flush timer: decides what waited long enough, signs one batch (after
        persisting the new accept records), counts it locally, and schedules the next flush, at
        least ``finality_vote_interval`` later (:meth:`_schedule_next_flush`). ``seq``: the
        timer's sequence number; a timer another flush superseded is ignored (None: run now)."""
        if seq is not None and seq != self._flush_seq:
            return
        self._flush_at = None
        ctx = self.ctx
        if not ctx.is_voter or ctx.behind:
            return
        assert ctx.signer is not None and ctx.secret_key is not None and ctx.public_key is not None
        interval = ctx.params.finality_vote_interval
        revote = ctx.params.finality_revote_interval
        voting: dict[bytes, PendingTx] = {}
        claimed: dict[bytes, bytes] = {}  # outpoint → txid: this flush's accepts, one signer record
        for p in self._due_for_decision(now, interval):
            decision = self._decide(p, out, now)
            if decision is None:
                self._undecided[p.txid] = None  # waiting on Snowball: looked at every flush
                continue
            self._undecided.pop(p.txid, None)
            if decision:
                txid = p.txid
                if any(claimed.get(o, txid) != txid for o in p.inputs):
                    decision = False  # an input another accept of this flush spends
                else:
                    for o in p.inputs:
                        claimed[o] = txid
            p.decision = decision
            voting[p.txid] = p
        if claimed:  # persisted (Persist) before the vote leaves (Broadcast)
            out.writes.extend(ctx.signer.accept(claimed.items()))
        for p in self._due_for_revote(now, revote):
            voting.setdefault(p.txid, p)
        accepts: list[bytes] = []
        rejects: list[bytes] = []
        relay: list[bytes] = []
        for p in voting.values():
            (accepts if p.decision else rejects).append(p.txid)
            p.last_voted = now
            self._revotes.append((now + revote, p.txid))
            if now - (p.last_relayed or p.first_seen) >= revote - 1e-9:
                relay.append(p.raw)
                p.last_relayed = now
        if relay:
            out.sends.append(RelayTransactions(tuple(relay)))
        limit = LIMITS["txids_per_vote"]
        decided = [(t, True) for t in accepts] + [(t, False) for t in rejects]
        weight = ctx.vset.weight(ctx.public_key)
        for i in range(0, len(decided), limit):
            chunk = decided[i : i + limit]
            vote = TxVote.create(
                ctx.secret_key,
                ctx.chain_id,
                ctx.height,
                [t for t, a in chunk if a],
                [t for t, a in chunk if not a],
            )
            out.sends.append(Broadcast(vote.encode()))
            ctx.monitor.counters["tx_votes_signed"] += 1
            self.on_votes([VoteRecord(vote, weight)], out, now)
        self._schedule_next_flush(out, now)

    def _due_for_decision(self, now: float, interval: float) -> list[PendingTx]:
        """Fresh transactions that waited out the vote interval (arrival order, so the scan
        stops at the first that has not), then those waiting on Snowball."""
        due: list[PendingTx] = []
        fresh = self._fresh
        while fresh:
            txid = next(iter(fresh))
            p = self.pending[txid]
            if now - p.first_seen < interval - 1e-9:
                break
            del fresh[txid]
            due.append(p)
        due.extend(self.pending[t] for t in self._undecided if t in self.pending)
        return due

    def _due_for_revote(self, now: float, revote: float) -> list[PendingTx]:
        """Decided transactions whose vote is due again: those open at a new height once
        :data:`NEW_HEIGHT_REVOTE_DELAY` has passed, and those last voted ``revote`` seconds ago
        (the queue is in due order; entries of transactions since decided or voted again are
        skipped)."""
        due = []
        if self._revote_all and now >= self._revote_all_at - 1e-9:
            due = [self.pending[t] for t in self._revote_all if t in self.pending]
            self._revote_all = []
        queue = self._revotes
        while queue and queue[0][0] <= now + 1e-9:
            at, txid = queue.popleft()
            p = self.pending.get(txid)
            if p is not None and p.last_voted is not None and p.last_voted + revote == at:
                due.append(p)
        return [p for p in due if p.decision is not None]

    # -- blocks --------------------------------------------------------------------------------------

    def new_height(self, out: Outbox, now: float) -> None:
        """The set of the new height (``ctx.vset``) takes over: votes restart; open decisions
        are voted again :data:`NEW_HEIGHT_REVOTE_DELAY` later if still open."""
        self.prev_tally = self.tally
        self.tally = Tally(self.ctx.vset)
        self._accepted_by.clear()
        self._equivocators.clear()
        self._certificates_sent.clear()
        for p in self.pending.values():
            p.last_voted = None
        self._revotes.clear()
        self._revote_all = [p.txid for p in self.pending.values() if p.decision is not None]
        self._revote_all_at = now + NEW_HEIGHT_REVOTE_DELAY
        if self._revote_all:
            self._schedule_flush(out, self._revote_all_at)

    def block_transactions(
        self, now: float, max_bytes: int, max_compact: int | None = None
    ) -> list[tuple[bytes, bytes]]:
        """What this node's full block proposal carries: every final transaction not yet archived
        (up to ``max_bytes`` of them), then, for each conflict past ``conflict_deadline``, the
        candidate with the most accept weight (ties: lowest txid) if this signer may accept it and
        the masternodes that accepted none of its rivals reach 2/3 (else the block could not
        commit and would stall the height). ``max_compact`` (None: no bound) bounds what they add
        to the proposal's compact form (``messages.CompactBlock``): 32 bytes per final
        transaction (a txid), the txid and the length-prefixed encoding per settlement (carried
        whole). (txid, encoded transaction) pairs, never decoded."""
        out: list[tuple[bytes, bytes]] = []
        used: set[bytes] = set()
        size = 0
        compact = 0
        room = max_compact if max_compact is not None else sys.maxsize
        for txid, entry in self.finalized.items():
            if size + len(entry.raw) > max_bytes or compact + HASH_LEN > room:
                break
            out.append((txid, entry.raw))
            used.update(entry.inputs)
            size += len(entry.raw)
            compact += HASH_LEN
        for p in self._settlements(now):
            cost = HASH_LEN + 4 + len(p.raw)
            if used.isdisjoint(p.inputs) and size + len(p.raw) <= max_bytes and compact + cost <= room:
                out.append((p.txid, p.raw))
                used.update(p.inputs)
                size += len(p.raw)
                compact += cost
                self.ctx.monitor.counters["settlements_proposed"] += 1
        return out

    def _settlements(self, now: float) -> list[PendingTx]:
        ctx = self.ctx
        deadline = ctx.params.conflict_deadline
        picks: dict[bytes, PendingTx] = {}
        for spenders in self.spenders.values():
            if len(spenders) < 2:
                continue
            live = [self.pending[t] for t in spenders]
            since = min((p.conflict_since for p in live if p.conflict_since is not None), default=now)
            if now < since + deadline:
                continue
            best = min(live, key=lambda p: (-self.tally.weights(p.txid)[0], p.txid))
            if ctx.signer is not None and not ctx.signer.can_accept(best.txid, best.inputs):
                continue
            if any(self.spent_final.get(o, best.txid) != best.txid for o in best.inputs):
                continue
            rivals: set[bytes] = set()
            for t in spenders:
                if t != best.txid:
                    rivals.update(self.tally.accepters(t))
            rivals.difference_update(self.tally.accepters(best.txid))
            if ctx.vset.is_quorum(ctx.vset.total - ctx.vset.weight_of(rivals)):
                picks[best.txid] = best
        return sorted(picks.values(), key=lambda p: p.txid)

    def check_block_transactions(
        self, block: Block | BlockView
    ) -> tuple[str | None, list[tuple[bytes, bytes]]]:
        """Whether this node may vote for ``block`` as far as finality goes: (reason it may not,
        or None; the (outpoint, txid) accepts voting for it records). A transaction without a
        certificate here is settled by the block, so voting for it is accepting it: refused if
        it spends an outpoint this signer accepted for another txid or a final transaction
        spends (DESIGN §6: "settled by the next block")."""
        pairs: list[tuple[bytes, bytes]] = []
        signer = self.ctx.signer
        txids = block.txids
        for i in range(1, len(txids)):
            txid = txids[i]
            if txid in self.finalized:
                continue
            inputs = [o.encode() for o in block.transaction(i).inputs]
            for o in inputs:
                holder = self.spent_final.get(o)
                if holder is not None and holder != txid:
                    return f"spends outpoint {o.hex()} of final transaction {holder.hex()}", []
            if signer is not None and not signer.can_accept(txid, inputs):
                return f"transaction {txid.hex()} conflicts with an accept this masternode signed", []
            pairs.extend((o, txid) for o in inputs)
        return None, pairs

    def transaction(self, txid: bytes) -> bytes | None:
        """The encoded transaction ``txid`` if this node holds it final (not archived) or
        pending: what rebuilds a proposed or decided block (``blocks.rebuild_block``)."""
        entry = self.finalized.get(txid)
        if entry is not None:
            return entry.raw
        p = self.pending.get(txid)
        return p.raw if p is not None else None

    def on_block(self, block: Block | BlockView, out: Outbox, now: float) -> None:
        """A committed block is applied: its transactions are archived (their finalized records,
        and the vote batches only those named, swept: ``out.sweeps``), whatever else spent their
        outpoints is rejected, the signer forgets those outpoints (the chain settled them for
        good; their accept records swept too). The per-transaction loops are compiled
        (:mod:`timecoin.consensus.settle`)."""
        height = block.header.height
        txids = block.txids
        sweeps = out.sweeps
        archived = archive_final(
            txids, self.finalized, self.rejected, self._record_refs, self._batches, self.spent_final
        )
        self.finalized_bytes -= archived.archived_bytes
        for key in archived.records:
            group = out.parts.get(FINALIZED_DB)
            if group is not None and group[0] == key:
                del out.parts[FINALIZED_DB]  # made and archived in this step: never written
            else:
                sweeps.append((FINALIZED_DB, key))
        sweeps.extend((CONSENSUS_DB, vote_batch_key(sequence)) for sequence in archived.batches)
        spent = archived.spent
        for i in archived.unknown:
            txid = txids[i]
            p = self.pending.get(txid)
            if p is None:
                spent.extend(o.encode() for o in block.transaction(i).inputs)
            else:  # settled by this block
                spent.extend(p.inputs)
                self._drop_pending(txid, out, now)
                out.notices.append(TransactionFinalized(txid, p.raw, b"", now - p.first_seen, height))
                self.ctx.monitor.counters["tx_settled_by_block"] += 1
        violations, contested = settle_spent(spent, self.spent_final, self.spenders, self.snowballs)
        for o, holder in violations:
            log.critical(
                "SAFETY: block %d spends outpoint %s of final transaction %s", height, o.hex(), holder.hex()
            )
            self.ctx.monitor.counters["safety_violations"] += 1
        for o in contested:
            rivals = self.spenders.get(o)
            if rivals:
                for txid in list(rivals):
                    self._reject(txid, "inputs-spent-by-block", out, now)
            self.snowballs.pop(o, None)
        self.mempool.remove_conflicts(spent)
        if self.ctx.signer is not None:
            sweeps.extend(self.ctx.signer.forget(spent))

    # -- Snowball --------------------------------------------------------------------------------------

    def on_snowball_query(self, query: SnowballQuery, out: Outbox) -> None:
        """Answers a verified query with this masternode's preference for the outpoint: what it
        accepted, else its Snowball preference, else the first-seen live spender among the
        candidates, else none."""
        ctx = self.ctx
        if not ctx.is_voter:
            return
        assert ctx.secret_key is not None and ctx.signer is not None
        preference = ctx.signer.accepted(query.outpoint)
        if preference is None and query.outpoint in self.snowballs:
            preference = self.snowballs[query.outpoint].preference
        if preference is None:
            known = [self.pending[t] for t in query.candidates if t in self.pending]
            if known:
                preference = min(known, key=lambda p: (p.first_seen, p.txid)).txid
        response = SnowballResponse.create(ctx.secret_key, ctx.chain_id, query, preference)
        out.sends.append(SendTo(query.sender, response.encode()))

    def on_snowball_response(self, response: SnowballResponse, out: Outbox, now: float) -> None:
        outpoint = self.polls.get(response.query_id)
        if outpoint is None or response.querier != self.ctx.public_key or response.outpoint != outpoint:
            self.ctx.monitor.ignore("unexpected-snowball-response")
            return
        sb = self.snowballs.get(outpoint)
        poll = sb.poll if sb is not None else None
        if (
            sb is None
            or poll is None
            or poll.query_id != response.query_id
            or response.responder not in poll.sampled
        ):
            self.ctx.monitor.ignore("unexpected-snowball-response")
            return
        poll.answers[response.responder] = response.preference
        if poll.complete:
            self._conclude_poll(sb, out, now)

    def on_snowball_timeout(self, query_id: int, out: Outbox, now: float) -> None:
        outpoint = self.polls.get(query_id)
        sb = self.snowballs.get(outpoint) if outpoint is not None else None
        if sb is not None and sb.poll is not None and sb.poll.query_id == query_id:
            self._conclude_poll(sb, out, now)

    def _start_snowball(self, outpoint: bytes, out: Outbox, now: float) -> Snowball:
        spenders = [self.pending[t] for t in self.spenders[outpoint]]
        first = min(spenders, key=lambda p: (p.first_seen, p.txid))
        p = self.ctx.params
        sb = Snowball(
            outpoint, [s.txid for s in spenders], first.txid, p.snowball_k, p.snowball_alpha, p.snowball_beta
        )
        self.snowballs[outpoint] = sb
        self.ctx.monitor.counters["snowball_instances"] += 1
        self._start_poll(sb, out, now)
        return sb

    def _start_poll(self, sb: Snowball, out: Outbox, now: float) -> None:
        ctx = self.ctx
        assert ctx.secret_key is not None
        since = min(
            (self.pending[t].conflict_since or now for t in sb.candidates if t in self.pending), default=now
        )
        if now >= since + ctx.params.conflict_deadline:
            return  # past the deadline the next block settles the conflict
        sampled = ctx.vset.sample(self.rng, ctx.params.snowball_k, exclude=ctx.public_key)
        if not sampled:
            sb.decided = True
            return
        self._query_seq = (self._query_seq + 1) % 2**64
        query_id = self._query_seq
        timeout = ctx.params.snowball_round_timeout
        sb.poll = Poll(query_id, sampled, now + timeout)
        self.polls[query_id] = sb.outpoint
        candidates = sorted(sb.candidates)[: LIMITS["snowball_candidates"]]
        query = SnowballQuery.create(
            ctx.secret_key, ctx.chain_id, ctx.height, query_id, sb.outpoint, candidates
        )
        data = query.encode()
        for key in sorted(set(sampled)):
            out.sends.append(SendTo(key, data))
        out.timer(Timer("snowball", ctx.height, query_id), now + timeout)

    def _conclude_poll(self, sb: Snowball, out: Outbox, now: float) -> None:
        poll = sb.poll
        assert poll is not None
        sb.poll = None
        self.polls.pop(poll.query_id, None)
        sb.record(poll.slot_answers())
        self.ctx.monitor.counters["snowball_polls"] += 1
        if sb.decided:
            self.ctx.monitor.counters["snowball_decided"] += 1
            self._schedule_flush(out, now)
        else:
            self._start_poll(sb, out, now)

    # -- internals -----------------------------------------------------------------------------------

    def _refusal(self, txid: bytes, inputs: Sequence[bytes]) -> tuple[str, str] | None:
        reason = self.rejected.get(txid)
        if reason is not None:
            return "txn-rejected", f"transaction was rejected: {reason}"
        for o in inputs:
            holder = self.spent_final.get(o)
            if holder is not None and holder != txid:
                return (
                    "txn-spent-final",
                    f"input {o[:32].hex()}:{int.from_bytes(o[32:], 'little')} is spent by final "
                    f"transaction {holder.hex()}",
                )
        return None

    def _add_pending(
        self,
        txid: bytes,
        raw: bytes,
        inputs: tuple[bytes, ...],
        now: float,
        in_mempool: bool,
        out: Outbox,
        *,
        certified: bool = False,
    ) -> None:
        """Registers a pending transaction and its spends; unless ``certified`` (the caller
        finalizes it at once), decides it from votes that outran it or schedules a vote."""
        p = PendingTx(txid, raw, inputs, now, in_mempool)
        self.pending[txid] = p
        if not in_mempool:
            self.conflicting += 1
        for o in inputs:
            spenders = self.spenders.get(o)
            if spenders is None:
                self.spenders[o] = {txid}
                continue
            spenders.add(txid)
            if len(spenders) > 1:
                for t in spenders:
                    other = self.pending[t]
                    if other.conflict_since is None:
                        other.conflict_since = now
                if len(spenders) == 2:
                    self.ctx.monitor.counters["conflicts"] += 1
                sb = self.snowballs.get(o)
                if sb is not None:
                    sb.add_candidate(txid)
        for tally in (self.tally, self.prev_tally):
            if tally is not None:
                tally.admit(txid)  # votes that outran the transaction count now
        if certified:
            return
        for tally in (self.tally, self.prev_tally):
            if tally is not None and tally.is_final(txid):
                self._finalize(txid, tally.certificate_refs(txid), out, now)
                return
        if self.tally.is_rejected(txid):
            self._reject(txid, "rejected-by-votes", out, now)
            return
        self._fresh[txid] = None
        self._schedule_flush(out, now + self.ctx.params.finality_vote_interval)

    def _decide(self, p: PendingTx, out: Outbox, now: float) -> bool | None:
        signer = self.ctx.signer
        assert signer is not None
        mine = True
        for o in p.inputs:
            held = signer.accepted(o)
            if held is not None and held != p.txid:
                return False
            if held is None:
                mine = False
            holder = self.spent_final.get(o)
            if holder is not None and holder != p.txid:
                return False
        if mine:
            return True  # accepted before (a restart, or a block this node voted for)
        conflicted = [o for o in p.inputs if len(self.spenders.get(o, ())) > 1]
        if not conflicted:
            return True
        verdict: bool | None = True
        for o in conflicted:
            sb = self.snowballs.get(o) or self._start_snowball(o, out, now)
            if not sb.decided:
                verdict = None
            elif sb.preference != p.txid:
                return False
        return verdict

    def _finalize(self, txid: bytes, cert: bytes | CertificateRefs, out: Outbox, now: float) -> None:
        """``cert``: the encoded finality certificate (from a peer), or this node's tally's by
        reference, whose batches are stored once each (the first certificate naming a batch
        writes it). Once per final transaction on every node: written for that (no list built
        unless a rival exists, the previous tally and Snowball looked at only when present)."""
        p = self.pending[txid]
        inputs = p.inputs
        spent_final = self.spent_final
        for o in inputs:
            holder = spent_final.get(o)
            if holder is not None and holder != txid:
                log.critical(
                    "SAFETY: %s and %s are both certified final",
                    holder.hex(),
                    txid.hex(),
                    extra={"txid": txid.hex(), "conflicting_txid": holder.hex()},
                )
                self.ctx.monitor.counters["safety_violations"] += 1
                return
        self.tally.compact(txid)  # its certificate is built
        if self.prev_tally is not None:
            self.prev_tally.compact(txid)
        # One group record for every transaction this step makes final (store.py, "finalized").
        group = out.parts.get(FINALIZED_DB)
        if group is None:
            group = out.parts[FINALIZED_DB] = (finalized_group_key(self._next_key), [])
            self._next_key += 1
        key, entries = group
        self._record_refs[key] = self._record_refs.get(key, 0) + 1
        self.finalized[txid] = FinalEntry(p.raw, cert, inputs, key)
        self.finalized_bytes += len(p.raw)
        for o in inputs:
            spent_final[o] = txid
        entries.append(encode_finalized_entry(txid, p.raw, self._stored_proof(cert, out)))
        latency = now - p.first_seen
        out.notices.append(TransactionFinalized(txid, p.raw, cert, latency, None))
        monitor = self.ctx.monitor
        monitor.counters["tx_finalized"] += 1
        monitor.finality_latency.append(latency)
        self._drop_pending(txid, out, now)
        spenders = self.spenders
        for o in inputs:
            rivals = spenders.get(o)
            if rivals:
                for other in list(rivals):
                    self._reject(other, "conflicts-with-final", out, now)
        if self.snowballs:
            for o in inputs:
                self.snowballs.pop(o, None)

    def _stored_proof(self, cert: bytes | CertificateRefs, out: Outbox) -> bytes:
        """The proof a finalized record stores for ``cert``: the bytes, or the references, after
        storing (in the same ``Persist``) each batch not stored yet."""
        if isinstance(cert, bytes):
            return cert
        batches = self._batches
        refs = []
        for record, index in zip(cert.records, cert.indexes, strict=True):
            stored = batches.get(record)
            if stored is None:
                stored = batches[record] = StoredBatch(self._next_batch)
                self._next_batch += 1
                out.writes.append((CONSENSUS_DB, vote_batch_key(stored.sequence), record.vote.encode()))
            stored.refs += 1
            refs.append((stored.sequence, index))
        return encode_certificate_refs(cert.height, refs)

    def _drop_pending(self, txid: bytes, out: Outbox, now: float) -> PendingTx | None:
        p = self.pending.pop(txid, None)
        if p is None:
            return None
        self._fresh.pop(txid, None)
        self._undecided.pop(txid, None)
        if not p.in_mempool:
            self.conflicting -= 1
        spenders = self.spenders
        snowballs = self.snowballs
        for o in p.inputs:
            rivals = spenders.get(o)
            if rivals is not None:
                rivals.discard(txid)
                if not rivals:
                    del spenders[o]
            if snowballs:
                sb = snowballs.get(o)
                if sb is not None:
                    sb.remove_candidate(txid)
                    if len(sb.candidates) <= 1:
                        del snowballs[o]
                        self._schedule_flush(out, now)  # the survivor is unconflicted now
        if p.in_mempool:
            self.mempool.discard(txid)
        return p

    def _reject(self, txid: bytes, reason: str, out: Outbox, now: float) -> None:
        if self._drop_pending(txid, out, now) is None:
            return
        self.rejected[txid] = reason
        self.tally.compact(txid)
        if len(self.rejected) > REJECTED_MEMORY:
            self.rejected.popitem(last=False)
        out.notices.append(TransactionRejected(txid, reason))
        self.ctx.monitor.counters["tx_rejected"] += 1

    def _check_conflicting_accepts(self, vote: TxVote, out: Outbox) -> None:
        """Evidence of a voter accepting two transactions that spend one outpoint (only
        outpoints with a known conflict are watched)."""
        for txid in vote.accepts:
            p = self.pending.get(txid)
            if p is None or p.conflict_since is None:
                continue
            for o in p.inputs:
                key = (o, vote.voter)
                seen = self._accepted_by.get(key)
                if seen is None:
                    self._accepted_by[key] = (txid, vote)
                elif seen[0] != txid:
                    self._evidence(out, "conflicting-accept", vote, txid, seen[1])

    def _evidence(
        self, out: Outbox, kind: str, vote: TxVote, txid: bytes, other: TxVote | None = None
    ) -> None:
        self.ctx.monitor.evidence[kind] += 1
        messages = (vote.encode(),) if other is None else (other.encode(), vote.encode())
        out.notices.append(Evidence(kind, vote.voter, vote.height, messages))
        log.warning(
            "evidence %s by %s on %s",
            kind,
            vote.voter.hex(),
            txid.hex(),
            extra={"txid": txid.hex(), "voter": vote.voter.hex(), "height": vote.height},
        )

    def _schedule_flush(self, out: Outbox, at: float) -> None:
        """Makes sure a vote flush runs no later than ``at`` (masternodes only)."""
        if not self.ctx.is_voter or not self.pending:
            return
        if self._flush_at is not None and self._flush_at <= at:
            return
        self._flush_at = at
        self._flush_seq += 1
        out.timer(Timer("flush", 0, self._flush_seq), at)

    def _schedule_next_flush(self, out: Outbox, now: float) -> None:
        """After a flush, no earlier than ``finality_vote_interval`` later (else the arrivals,
        which come in many small gossip and RPC batches, each set off a flush and a signed vote
        of their own: ~1,000 flush timers a second per node at 4,000 tx/s): when a new height's
        revotes are due (if they are still waiting), and one interval after the oldest
        transaction still waiting for its first decision, else when the oldest open vote is due
        again. Transactions waiting on Snowball need no timer: a decided poll, or a rival
        leaving, schedules a flush."""
        interval = self.ctx.params.finality_vote_interval
        earliest = now + interval  # one batch per interval, however the arrivals are spread
        if self._revote_all:
            self._schedule_flush(out, max(self._revote_all_at, earliest))
        if self._fresh:
            at = self.pending[next(iter(self._fresh))].first_seen + interval
            self._schedule_flush(out, max(at, earliest))
            return
        revote = self.ctx.params.finality_revote_interval
        queue = self._revotes
        while queue:
            at, txid = queue[0]
            p = self.pending.get(txid)
            if p is not None and p.last_voted is not None and p.last_voted + revote == at:
                self._schedule_flush(out, at)
                return
            queue.popleft()

    # -- queries ---------------------------------------------------------------------------------

    def status(self, txid: bytes) -> dict[str, Any] | None:
        """What this node knows of ``txid``: ``final`` (with the certificate), ``pending``,
        ``rejected`` (with the reason), or None."""
        entry = self.finalized.get(txid)
        if entry is not None:
            return {"state": "final", "certificate": entry.certificate_bytes().hex()}
        p = self.pending.get(txid)
        if p is not None:
            accept, reject = self.tally.weights(txid)
            return {
                "state": "pending",
                "accept_weight": accept,
                "reject_weight": reject,
                "total_weight": self.ctx.vset.total,
                "conflicted": p.conflict_since is not None,
            }
        reason = self.rejected.get(txid)
        if reason is not None:
            return {"state": "rejected", "reason": reason}
        return None

    def info(self) -> dict[str, Any]:
        return {
            "pending": len(self.pending),
            "conflicting": self.conflicting,
            "finalized_pool": len(self.finalized),
            "finalized_pool_bytes": self.finalized_bytes,
            "snowball_active": len(self.snowballs),
            "undecided": len(self._undecided),
            "tallied_txids": len(self.tally),
            "parked_votes": self.tally.parked + (self.prev_tally.parked if self.prev_tally else 0),
        }
