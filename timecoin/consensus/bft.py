"""Block production: one height at a time, Tendermint rounds with locking (DESIGN §7; Buchman,
Kwon, Milosevic, "The latest gossip on BFT consensus", arXiv:1807.04938, Algorithm 1).

Steps are the ordered :class:`~timecoin.consensus.signer.Step` enum with explicit ``enter_*``
transitions; the comments name the paper's lines. Quorums are 2/3 of the whole set's weight
(``validators.is_quorum``), the round skip needs more than 1/3.

Per height: ``NEW_HEIGHT`` (slot synchronization: status broadcast, wait for the slot start
``prev.timestamp + block_slot`` and the production gate) → round 0. Per round r:

* rounds ``< FULL_BLOCK_ROUNDS``: the r-th leader of the VRF-weighted order proposes a full block
  (``leader_timeout``, then ``voting_window`` per voting step);
* ``REWARD_ONLY_ROUND``: its leader proposes a reward-only block (``reward_only_window`` for
  every step);
* later rounds (the emergency rounds): the round's leader, rotating through the same order,
  proposes the emergency block (the same bytes on every node, built from the chain alone) or,
  if it has one, its valid value with its proof-of-lock round (``reward_only_window``).

In every round a proposer holding a valid value re-proposes it with its proof-of-lock round
(line 16) and re-sends the 2/3 prevotes that prove it, so a node that missed them can take line
28; the lock and the valid value (block and proof) are persisted together, so a restarted node
can do the same. Nobody prevotes a value nobody proposed.

Catch-up that cannot be outrun: messages of rounds up to ``ROUND_WINDOW`` ahead are kept in full;
beyond it, only each signer's messages of its highest round (bounded by the set's size). Messages
of later rounds from more than 1/3 of the weight make a node jump to the highest round they back
(line 55), however far ahead.

Behind only on proof (DESIGN §7 "slot synchronization", §13): a node stops voting to sync only
on a commit certificate above its height signed by 2/3 of its set, or on statuses at or above its
height from more than 1/3 of the weight; a single status is a hint that schedules a decision
request. Peer tips expire after ``tip_ttl`` seconds.

Departures from the paper, for liveness only (safety never depends on timeouts): the prevote and
precommit timeouts start when the step is entered, not on seeing 2/3 of any votes, so a node cut
off from 2/3 still moves through rounds and meets the others after a partition heals; rules 36
and 49 accept any known block with the quorum's hash (CometBFT does the same); a node that
cannot vote for a valid block because of its accept records (finality) votes nil.

A node that learns a peer committed its height (a status, or messages of the next height) asks
that peer for the :class:`~timecoin.consensus.messages.Decision`; it stops voting only on the
proof above.

No I/O: the :class:`~timecoin.consensus.context.Outbox` collects writes, messages and timers.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

from timecoin.consensus.blocks import (
    BlockRejected,
    CheckedBlock,
    block_kind,
    build_block,
    check_block,
    check_proposal_round,
    check_timely,
    coinbase_len,
    election,
    emergency_block,
    rebuild_block,
    round_kind,
)
from timecoin.consensus.certificates import CertificateError, check_commit_signers, check_commit_structure
from timecoin.consensus.context import Context, Outbox
from timecoin.consensus.effects import (
    ApplyBlock,
    Broadcast,
    BuildBlock,
    CheckBlock,
    Evidence,
    Resend,
    SendTo,
    ServeDecision,
    SyncBlock,
    Timer,
)
from timecoin.consensus.finality import FinalityEngine
from timecoin.consensus.messages import (
    LIMITS,
    NIL,
    PROPOSAL_OVERHEAD,
    BlockVote,
    CertificateRequest,
    CommitCertificate,
    CompactBlock,
    Decision,
    DecisionRequest,
    Kind,
    MessageError,
    Proposal,
    Status,
    encoded_compact_len,
)
from timecoin.consensus.monitor import RoundRecord
from timecoin.consensus.signer import DoubleSignRefused, Step
from timecoin.core.types import BlockView
from timecoin.params import FULL_BLOCK_ROUNDS, REWARD_ONLY_ROUND

log = logging.getLogger(__name__)

__all__ = ["ROUND_WINDOW", "BftEngine"]

ROUND_WINDOW = 64
"""Rounds ahead of the current one whose votes and proposals are kept in full; of later rounds
only each signer's highest round is kept (memory bounded by the set's size, DESIGN §13)."""
FAR_MESSAGES_PER_SIGNER = 3
"""Messages of its highest far round kept per signer: a proposal, a prevote and a precommit."""
TIP_TTL_ROUNDS = 4
"""A peer's status expires after this many full rounds (``leader_timeout + 2 voting_window``)
without a newer one: claims are hints that expire with the peer (DESIGN §8)."""
BLOCK_SIZE_MARGIN = 1_000_000
"""Bytes of ``max_block_size`` left for the header, coinbase and framing."""


class _CompactWait:
    """A proposed block in compact form that is not rebuilt yet: the txids found missing at the
    last try (block order; None before the first) and how many of them arrived since."""

    __slots__ = ("compact", "found", "missing")

    def __init__(self, compact: CompactBlock) -> None:
        self.compact = compact
        self.missing: list[bytes] | None = None
        self.found = 0


class BftEngine:
    """The round state of the height being decided, owned by one task (see the module docstring)."""

    def __init__(self, ctx: Context, finality: FinalityEngine, gate: Callable[[], bool]) -> None:
        self.ctx = ctx
        self.finality = finality
        self.gate = gate
        self.height = -1
        self.round = 0
        self.step = Step.NEW_HEIGHT
        self.votes: dict[tuple[Kind, int], dict[bytes, BlockVote]] = {}
        self.last_height_votes: tuple[int, dict[tuple[Kind, int], dict[bytes, BlockVote]]] = (-1, {})
        self.peer_tips: dict[bytes, tuple[int, float]] = {}
        """(tip height, time received) each member last announced in a signed status: who to ask
        while behind, and with more than 1/3 of the weight at or above our height, proof that we
        are behind. Entries expire after :meth:`tip_ttl` seconds."""
        self.certified_height = -1
        """The highest height of a commit certificate signed by 2/3 of our set (proof that the
        network is ahead)."""
        self._ask_turn = 0

    # -- height and round transitions ----------------------------------------------------------------

    def enter_new_height(self, out: Outbox, now: float) -> None:
        """Starts deciding ``tip + 1``: resets the round state, restores what the signer signed at
        this height before a restart (lock, round, the messages themselves, re-sent), broadcasts
        the status and waits for the slot."""
        ctx = self.ctx
        tip = ctx.chain.tip_header
        if self.height == tip.height:
            self.last_height_votes = (self.height, self.votes)
        else:
            self.last_height_votes = (-1, {})
        self.height = tip.height + 1
        self.round = 0
        self.step = Step.NEW_HEIGHT
        self.entered = now
        self.locked: tuple[int, bytes] | None = None
        self.valid: tuple[int, bytes] | None = None
        self.proposals: dict[int, Proposal] = {}
        self.raw_blocks: dict[bytes, bytes] = {}
        """Encoded blocks by hash: this node's own, the restored valid value, rebuilt proposals."""
        self.compacts: dict[bytes, _CompactWait] = {}
        """Proposed blocks not rebuilt yet (:func:`rebuild_block`), by hash."""
        self.verdicts: dict[bytes, CheckedBlock | BlockRejected] = {}
        self.building: tuple[int, float] | None = None
        """(round, ``ctx.perf()`` when asked) of the block this node asked the driver to build
        (``Context.offload_blocks``) and has not proposed yet."""
        self.checking: set[bytes] = set()
        """Blocks handed to the driver to check (``Context.offload_blocks``) whose verdict has not
        come back yet."""
        self.votes = {}
        self.weights: dict[tuple[Kind, int], dict[bytes, int]] = {}
        self.highest: dict[bytes, int] = {}
        """signer → the highest round it was seen in at this height (votes and proposals, in the
        window or beyond it): what the skip rule counts."""
        self._skip_due = False
        """A signer reached a round above ours since the skip rule last looked."""
        self.far: dict[bytes, tuple[int, list[BlockVote | Proposal]]] = {}
        """signer → (its highest round beyond the window, its messages of that round)."""
        self.pol: dict[int, list[bytes]] = {}
        """Proof-of-lock round → the encoded prevotes of the valid value there (re-sent with a
        re-proposal), restored from the signer after a restart."""
        self.rule36_done: set[int] = set()
        self.certificates_asked: set[bytes] = set()
        """Blocks whose missing finality certificates were asked from their proposer."""
        self.precommit_timer_set: set[int] = set()
        self.decided: tuple[int, bytes] | None = None
        self.decision_asked: float | None = None
        self.leaders: list[bytes] | None = None
        self._emergency: CheckedBlock | None = None
        self._proposed: tuple[object, set[bytes]] = (None, set())
        """(height and own proposals, their txids): :meth:`proposed_txids`, cached."""
        self.record: RoundRecord | None = None
        self.marks: dict[str, float] = {}
        start_round = 0
        if ctx.signer is not None:
            last = ctx.signer.last
            if last is not None and last[0] == self.height:
                start_round = last[1]
                self.locked = ctx.signer.locked(self.height)
                for data in ctx.signer.signed_at(self.height):
                    out.sends.append(Broadcast(data))
                    self._restore_own(data)
            valid = ctx.signer.valid_value(self.height)
            if valid is not None:
                vr, block_hash, raw, prevotes = valid
                self.valid = (vr, block_hash)
                self.raw_blocks.setdefault(block_hash, raw)
                self.pol[vr] = list(prevotes)
                for data in prevotes:
                    self._add_vote(BlockVote.decode(data), None)
        self.start_round = start_round
        self._send_status(out)
        self._update_behind(now)
        if self._ahead(now):  # a peer claims to be ahead: ask it (a hint, one decision at a time)
            self.request_decision(None, out, now)
        slot_start = tip.timestamp + ctx.params.block_slot
        out.timer(Timer("slot", self.height, 0), max(now, slot_start))

    def _restore_own(self, data: bytes) -> None:
        """Counts this node's own re-sent message (signed before a restart) in the round state."""
        if data[0] in (Kind.PREVOTE, Kind.PRECOMMIT):
            self._add_vote(BlockVote.decode(data), None)
        elif data[0] == Kind.PROPOSAL:
            try:
                p = Proposal.decode(data)
            except MessageError as e:  # signed by an older version of the node: not re-sent
                log.info("not restoring a proposal signed before the upgrade: %s", e)
                return
            self.proposals.setdefault(p.round, p)
            self.compacts.setdefault(p.block_hash, _CompactWait(p.compact))

    def on_slot(self, out: Outbox, now: float) -> None:
        """The slot started: round ``start_round`` begins if the production gate holds (at least
        ``min_active_masternodes`` online, DESIGN §5; liveness only), else the gate is asked again
        after half a heartbeat interval or one block slot, whichever is shorter (a devnet whose
        masternodes come online in its first seconds starts within a slot)."""
        if self.step != Step.NEW_HEIGHT:
            return
        if not self.gate():
            self.ctx.monitor.counters["gate_closed"] += 1
            params = self.ctx.params
            retry = min(params.heartbeat_interval / 2, params.block_slot)
            out.timer(Timer("slot", self.height, 0), now + retry)
            return
        self.enter_round(self.start_round, out, now)

    def enter_round(self, round: int, out: Outbox, now: float) -> None:
        """StartRound(round) (lines 11-21)."""
        ctx = self.ctx
        first = self.step == Step.NEW_HEIGHT
        self.round = round
        self.step = Step.PROPOSE
        self._skip_due = True  # signers may still be ahead of the new round
        self._absorb_far(out)
        kind = round_kind(round)
        t0 = ctx.perf()
        leader = self.leader(round)
        elected_in = ctx.perf() - t0
        if self.record is not None and self.record.outcome == "running":
            self.record.outcome = "timeout"
        self.record = ctx.monitor.start_round(self.height, round, kind, now, leader)
        self.record.add_phase("election", elected_in)
        if first:
            self.record.add_phase("sync", now - self.entered)
        self.marks = {"round": now}
        self.record.event(now, f"enter round {round} ({kind})")
        if round > 0:
            self._send_status(out)
            self._resend_own(out)
        self.enter_propose(leader, out, now)
        self.evaluate(out, now)

    def enter_propose(self, leader: bytes, out: Outbox, now: float) -> None:
        """The PROPOSE step of the current round: the leader proposes (lines 14-19) and everyone
        waits up to the round's propose timeout."""
        ctx = self.ctx
        round = self.round
        kind = round_kind(round)
        if leader == ctx.public_key and ctx.is_voter and not ctx.behind and round not in self.proposals:
            self._propose(round, out, now)
        timeout = ctx.params.leader_timeout if kind == "full" else ctx.params.reward_only_window
        out.timer(Timer("propose", self.height, round), now + timeout)

    def _propose(self, round: int, out: Outbox, now: float) -> None:
        """Lines 14-19: the valid value with its round if there is one, else a new block (with
        ``Context.offload_blocks``, built by the driver: proposed in :meth:`on_built`)."""
        ctx = self.ctx
        assert ctx.secret_key is not None and ctx.public_key is not None and ctx.signer is not None
        valid = self._known_block(self.valid[1], out, wait=True) if self.valid is not None else None
        if self.valid is not None and valid is not None:
            self._send_proposal(round, self.valid[0], self._compact(valid.raw), out, now)
        elif round_kind(round) == "emergency":
            self._send_proposal(round, None, self._compact(self.emergency().raw), out, now)
        elif ctx.offload_blocks:
            if self.building is None or self.building[0] != round:
                self.building = (round, ctx.perf())
                out.offloaded.append(self._build_request(round, self._block_transactions(round, now), now))
        else:
            t0 = ctx.perf()
            compact = self._build(round, now)
            assert self.record is not None
            self.record.add_phase("construction", ctx.perf() - t0)
            self._send_proposal(round, None, compact, out, now)

    def _send_proposal(
        self, round: int, valid_round: int | None, compact: CompactBlock, out: Outbox, now: float
    ) -> None:
        """Signs the proposal of ``compact`` (persisted before it leaves), broadcasts it (with
        the proof-of-lock prevotes of a re-proposal) and takes it as received."""
        ctx = self.ctx
        assert ctx.secret_key is not None and ctx.signer is not None
        proposal = Proposal.create(ctx.secret_key, ctx.chain_id, self.height, round, valid_round, compact)
        try:
            out.writes.extend(
                ctx.signer.sign(self.height, round, Step.PROPOSE, proposal.block_hash, proposal.encode())
            )
        except DoubleSignRefused as e:
            log.warning("%s", e)
            return
        out.sends.append(Broadcast(proposal.encode()))
        if valid_round is not None:  # the proof of lock travels with the re-proposal (line 28)
            out.sends.extend(Resend(data) for data in self.pol.get(valid_round, ()))
        ctx.monitor.counters["proposals_signed"] += 1
        self.on_proposal(proposal, out, now)

    def _block_transactions(self, round: int, now: float) -> list[tuple[bytes, bytes]]:
        """The final transactions a new block of ``round`` carries (none in a reward-only
        round): at most ``max_block_size`` (less ``BLOCK_SIZE_MARGIN``), whose compact form fits
        one message."""
        ctx = self.ctx
        if round_kind(round) != "full":
            return []
        room = None
        if ctx.max_message_bytes is not None:
            coinbase = coinbase_len(ctx.chain, ctx.chain.tip.height + 1)
            room = ctx.max_message_bytes - PROPOSAL_OVERHEAD - encoded_compact_len(1, [coinbase])
        return self.finality.block_transactions(now, ctx.params.max_block_size - BLOCK_SIZE_MARGIN, room)

    def _build(self, round: int, now: float) -> CompactBlock:
        """A new block for ``round`` (full or reward-only), built in this step, kept as this
        node's own and checked, in the compact form its proposal carries."""
        ctx = self.ctx
        assert ctx.secret_key is not None and ctx.public_key is not None
        txs = self._block_transactions(round, now)
        while True:
            raw = build_block(ctx.chain, ctx.secret_key, ctx.public_key, round, txs, now)
            compact = self._keep_built(raw, bool(txs))
            if compact is not None:
                return compact
            txs = txs[: len(txs) // 2]

    def _keep_built(self, raw: bytes, halvable: bool) -> CompactBlock | None:
        """The compact form of this node's new block ``raw``, kept as its own and checked; None
        if its proposal would not fit one message and its transactions can be halved."""
        ctx = self.ctx
        view = BlockView.decode(raw)
        compact = self._compact(raw, view)
        size = PROPOSAL_OVERHEAD + compact.encoded_len()
        if ctx.max_message_bytes is not None and size > ctx.max_message_bytes and halvable:
            # The fees paid a coinbase output the estimate had no room for: rare, and cheap to redo.
            log.warning("a proposal of %d bytes does not fit one message: halving its transactions", size)
            return None
        checked = CheckedBlock(view, raw)
        self.verdicts[checked.hash] = checked
        self.raw_blocks[checked.hash] = raw
        return compact

    def _build_request(self, round: int, txs: Sequence[tuple[bytes, bytes]], now: float) -> BuildBlock:
        ctx = self.ctx
        assert ctx.secret_key is not None and ctx.public_key is not None
        return BuildBlock(
            self.height, round, election(ctx.chain, ctx.secret_key, ctx.public_key, round), tuple(txs), now
        )

    def on_built(self, request: BuildBlock, raw: bytes, out: Outbox, now: float) -> None:
        """The driver built the block of a ``BuildBlock``: proposed, unless the engine has left
        that round (or its proposal step, or proposes no more: behind, or a proposal of the round
        is already held); too large for one message, it is asked for again with half the
        transactions."""
        ctx = self.ctx
        if not self.builds_for(request):
            return
        compact = self._keep_built(raw, bool(request.transactions))
        if compact is None:
            half = request.transactions[: len(request.transactions) // 2]
            out.offloaded.append(self._build_request(request.round, half, request.now))
            return
        assert self.building is not None and self.record is not None
        self.record.add_phase("construction", ctx.perf() - self.building[1])
        self.building = None
        if ctx.is_voter and not ctx.behind and request.round not in self.proposals:
            self._send_proposal(request.round, None, compact, out, now)

    def builds_for(self, request: BuildBlock) -> bool:
        """Whether ``request`` is the build this engine waits for: its height, its round, still
        in the proposal step."""
        return (
            request.height == self.height
            and request.round == self.round
            and self.step == Step.PROPOSE
            and self.building is not None
            and self.building[0] == request.round
        )

    def _compact(self, raw: bytes, view: BlockView | None = None) -> CompactBlock:
        """The compact form of a block this node proposes (``view``: its decoding, if at hand):
        the coinbase and every transaction it does not hold as final (a settlement, DESIGN §6)
        carried whole, the final ones by txid (every masternode holds those, or fetches their
        certificates)."""
        final = self.finality.finalized
        return CompactBlock.of_block(raw, lambda _, txid: txid not in final, view)

    def enter_prevote(self, block_hash: bytes, out: Outbox, now: float) -> None:
        """Signs and sends a prevote (after persisting the signer state and, for a block, the
        accepts that voting for it records), and enters PREVOTE."""
        block_hash = self._sign_vote(Kind.PREVOTE, block_hash, out, now)
        self.step = Step.PREVOTE
        self._mark("proposal", "prevote", now)
        if self.record is not None:
            self.record.event(now, "prevote " + ("nil" if block_hash == NIL else block_hash.hex()[:16]))
        window = self._window(self.round)
        out.timer(Timer("prevote", self.height, self.round), now + window)

    def enter_precommit(self, block_hash: bytes, out: Outbox, now: float) -> None:
        """Signs and sends a precommit (a non-nil one with the lock it sets), enters PRECOMMIT."""
        block_hash = self._sign_vote(Kind.PRECOMMIT, block_hash, out, now)
        self.step = Step.PRECOMMIT
        self._mark("voting", "precommit", now)
        if self.record is not None:
            self.record.event(now, "precommit " + ("nil" if block_hash == NIL else block_hash.hex()[:16]))
        self._schedule_precommit_timeout(self.round, out, now)

    def enter_commit(self, round: int, checked: CheckedBlock, out: Outbox, now: float) -> None:
        """Line 49: 2/3 precommitted ``checked`` in ``round``; builds the commit certificate from
        those precommits and hands the block to the driver (``ApplyBlock``)."""
        votes = self.votes.get((Kind.PRECOMMIT, round), {})
        pairs = tuple(sorted((v.voter, v.signature) for v in votes.values() if v.block_hash == checked.hash))
        certificate = CommitCertificate(self.height, round, checked.hash, pairs)
        self._commit(certificate, checked, out, now)

    def _commit(self, certificate: CommitCertificate, checked: CheckedBlock, out: Outbox, now: float) -> None:
        self.step = Step.COMMIT
        self.decided = (certificate.round, checked.hash)
        self.marks["commit"] = now
        kind = block_kind(checked.block.header.round)
        monitor = self.ctx.monitor
        monitor.counters["blocks_committed"] += 1
        if kind != "full":
            monitor.counters[f"{kind}_blocks"] += 1
        if self.record is not None:
            if "precommit" in self.marks:
                self.record.add_phase("collection", now - self.marks["precommit"])
            self.record.outcome = f"committed {kind} block"
            self.record.event(now, f"commit {checked.hash.hex()[:16]} (round {certificate.round})")
        out.apply = ApplyBlock(self.height, checked.hash, checked.raw, certificate.encode(), checked.block)

    def on_applied(self, now: float) -> None:
        """The driver applied the committed block: the finalization phase ends."""
        if self.record is not None and "commit" in self.marks:
            self.record.add_phase("finalization", now - self.marks["commit"])

    # -- inputs ------------------------------------------------------------------------------------------

    def on_proposal(self, proposal: Proposal, out: Outbox, now: float) -> None:
        """A proposal whose signature verified (or this node's own)."""
        if proposal.height != self.height or self.step == Step.COMMIT:
            return
        if proposal.proposer != self.leader(proposal.round):
            self.ctx.monitor.ignore("wrong-proposer")
            return
        if proposal.round > self.round + ROUND_WINDOW:
            self._keep_far(proposal.proposer, proposal.round, proposal)
            self.evaluate(out, now)
            return
        self._store_proposal(proposal, out)
        self.evaluate(out, now)

    def _store_proposal(self, proposal: Proposal, out: Outbox | None) -> None:
        """Keeps the first proposal of each round (a second, different one is evidence)."""
        self._seen_in(proposal.proposer, proposal.round)
        known = self.proposals.get(proposal.round)
        if known is not None:
            if known.block_hash != proposal.block_hash:
                self.ctx.monitor.evidence["double-proposal"] += 1
                if out is not None:
                    out.notices.append(
                        Evidence(
                            "double-proposal",
                            proposal.proposer,
                            self.height,
                            (known.encode(), proposal.encode()),
                        )
                    )
            return
        self.proposals[proposal.round] = proposal
        if proposal.block_hash not in self.raw_blocks:
            self.compacts.setdefault(proposal.block_hash, _CompactWait(proposal.compact))

    def _seen_in(self, signer: bytes, round: int) -> None:
        if round > self.highest.get(signer, -1):
            self.highest[signer] = round
            if round > self.round:
                self._skip_due = True

    def _keep_far(self, signer: bytes, round: int, message: BlockVote | Proposal) -> None:
        """Keeps a message of a round beyond the window: only the signer's highest round, at most
        ``FAR_MESSAGES_PER_SIGNER`` messages of it (DESIGN §13 bounded work per source)."""
        self._seen_in(signer, round)
        known = self.far.get(signer)
        if known is None or round > known[0]:
            self.far[signer] = (round, [message])
        elif round == known[0] and len(known[1]) < FAR_MESSAGES_PER_SIGNER:
            known[1].append(message)

    def _absorb_far(self, out: Outbox) -> None:
        """Moves kept far-round messages that the window now reaches into the round state."""
        limit = self.round + ROUND_WINDOW
        for signer in [s for s, (r, _) in self.far.items() if r <= limit]:
            _, messages = self.far.pop(signer)
            for message in messages:
                if isinstance(message, Proposal):
                    self._store_proposal(message, out)
                else:
                    self._add_vote(message, out)

    def on_vote(self, vote: BlockVote, out: Outbox, now: float) -> None:
        """A prevote or precommit whose signature verified, from a member of the set (of this
        height, or of the last one: those only count as evidence of double votes)."""
        if vote.height == self.height - 1:
            height, votes = self.last_height_votes
            if height == vote.height and vote.round <= ROUND_WINDOW + max((r for _, r in votes), default=0):
                table = votes.setdefault((vote.kind, vote.round), {})
                known = table.setdefault(vote.voter, vote)
                if known.block_hash != vote.block_hash:
                    self._evidence(known, vote, out)
            return
        if vote.height != self.height:
            return
        if vote.round > self.round + ROUND_WINDOW:
            self._keep_far(vote.voter, vote.round, vote)
            if self.step != Step.COMMIT:
                self.evaluate(out, now)
            return
        if self._add_vote(vote, out) and self.step != Step.COMMIT:
            self.evaluate(out, now)

    def on_decision(self, decision: Decision, peer: Any, out: Outbox, now: float) -> str:
        """A committed block from ``peer``, certificate signatures verified: checked against the
        set and the ledger, then applied (this is how a node that fell behind catches up).
        Returns ``"bad-decision"`` (charged to ``peer``, ``engine.FAULTS``) if the block rebuilt
        from it is not valid, else ``""``."""
        cert = decision.certificate
        if self.step == Step.COMMIT or cert.height != self.height:
            if cert.height > self.height:
                self._certificate_ahead(cert, out, now)
            return ""
        block_hash = decision.compact.block_hash
        try:
            check_commit_structure(cert, block_hash, self.height, self.ctx.vset)
        except CertificateError as e:
            self.ctx.monitor.ignore(f"decision-{e.code}")
            return ""
        try:
            checked = self._decided_block(block_hash, decision, peer, out)
        except BlockRejected as e:
            log.warning("decision of %s from a peer: its block fails here: %s", block_hash.hex(), e)
            self.ctx.monitor.counters["invalid_decisions"] += 1
            return "bad-decision"
        if checked is not None:
            self.ctx.monitor.counters["decisions_synced"] += 1
            self._commit(cert, checked, out, now)
        return ""

    def _decided_block(
        self, block_hash: bytes, decision: Decision, peer: Any, out: Outbox
    ) -> CheckedBlock | None:
        """The block a verified decision certifies, checked: a valid one this node holds, else
        rebuilt from the decision (its prefilled transactions, then this node's own). If this
        node lacks some, ``peer`` (which served the decision from its store) is asked for the
        block by block sync (:class:`SyncBlock`): that carries blocks of any size; None then.
        Raises :class:`BlockRejected` if the rebuilt block is not valid: a commit certificate of
        2/3 certifies a valid block, so the decision's own bytes (its prefilled transactions,
        which nothing signs) are at fault. That is not remembered for the block: the next
        decision, from another server, is checked afresh."""
        verdict = self.verdicts.get(block_hash)
        if isinstance(verdict, CheckedBlock):
            return verdict
        raw, _ = rebuild_block(decision.compact, self.finality.transaction)
        if raw is None:
            out.sends.append(SyncBlock(peer, self.height))
            self.ctx.monitor.counters["decisions_to_sync"] += 1
            return None
        checked = check_block(self.ctx.chain, raw, self.ctx.vset.keys, self.ctx.vset.weights)
        self._keep_verdict(block_hash, checked)
        self.raw_blocks[block_hash] = raw
        return checked

    def _certificate_ahead(self, cert: CommitCertificate, out: Outbox, now: float) -> None:
        """A commit certificate above the height being decided, signatures verified: proof that
        the network is ahead only if its signers are members of our set with 2/3 of its weight
        (the nearest set we know); anything else is ignored with a reason."""
        try:
            check_commit_signers(cert, self.ctx.vset)
        except CertificateError as e:
            self.ctx.monitor.ignore(f"decision-ahead-{e.code}")
            return
        if cert.height > self.certified_height:
            self.certified_height = cert.height
            self._update_behind(now)
            self._ask_turn += 1
            self.request_decision(cert.voters[self._ask_turn % len(cert.voters)], out, now)

    def on_status(self, status: Status, out: Outbox, now: float) -> None:
        """A member's verified status: its tip is a hint (it may lie) that makes this node ask it
        for the decision; statuses at or above our height from more than 1/3 of the weight are
        proof that we are behind (DESIGN §7 "slot synchronization")."""
        self.peer_tips[status.sender] = (status.height, now)
        if status.height >= self.height and self.step != Step.COMMIT:
            self._update_behind(now)
            self.request_decision(status.sender, out, now)

    def tip_ttl(self) -> float:
        """Seconds a peer's status counts (``TIP_TTL_ROUNDS`` full rounds)."""
        p = self.ctx.params
        return TIP_TTL_ROUNDS * (p.leader_timeout + 2 * p.voting_window)

    def _ahead(self, now: float) -> list[bytes]:
        """Members whose unexpired status claims our height or more (expired ones are dropped)."""
        ttl = self.tip_ttl()
        for key in [k for k, (_, seen) in self.peer_tips.items() if now - seen > ttl]:
            del self.peer_tips[key]
        return [k for k, (tip, _) in self.peer_tips.items() if tip >= self.height]

    def _update_behind(self, now: float) -> None:
        """``ctx.behind`` from proof only: a certified height at or above ours, or statuses from
        more than 1/3 of the weight (see the module docstring)."""
        vset = self.ctx.vset
        self.ctx.behind = self.certified_height >= self.height or vset.is_blocking(
            vset.weight_of(self._ahead(now))
        )

    def on_decision_request(self, request: DecisionRequest, peer: Any, out: Outbox) -> None:
        if request.height <= self.ctx.chain.tip.height:
            out.sends.append(ServeDecision(peer, request.height))

    def request_decision(self, masternode: bytes | None, out: Outbox, now: float) -> None:
        """Asks ``masternode`` (None: the next member known to be ahead, in turn) for the
        decision of this height, at most once per voting window."""
        if self.decision_asked is not None and now - self.decision_asked < self.ctx.params.voting_window:
            return
        if masternode is None:
            ahead = sorted(self._ahead(now))
            if not ahead:
                return
            self._ask_turn += 1
            masternode = ahead[self._ask_turn % len(ahead)]
        self.decision_asked = now
        self.ctx.monitor.counters["decision_requests"] += 1
        out.sends.append(SendTo(masternode, DecisionRequest(self.height).encode()))

    def on_timer(self, timer: Timer, out: Outbox, now: float) -> None:
        if timer.height != self.height:
            return
        self._update_behind(now)
        if self._ahead(now):
            self.request_decision(None, out, now)
        if timer.name == "slot":
            self.on_slot(out, now)
        elif timer.round != self.round or self.step == Step.COMMIT:
            return
        elif timer.name == "propose" and self.step == Step.PROPOSE:  # line 57
            self.enter_prevote(NIL, out, now)
            self.evaluate(out, now)
        elif timer.name == "prevote" and self.step == Step.PREVOTE:  # line 61
            self.enter_precommit(NIL, out, now)
            self.evaluate(out, now)
        elif timer.name == "precommit":  # line 65
            self.enter_round(self.round + 1, out, now)

    # -- the upon-rules ----------------------------------------------------------------------------------

    def evaluate(self, out: Outbox, now: float) -> None:
        """Applies every rule whose condition holds, until none does."""
        for _ in range(8 + ROUND_WINDOW):
            if self.step in (Step.COMMIT, Step.NEW_HEIGHT):
                if self.step == Step.NEW_HEIGHT:
                    self._rule_commit(out, now)
                return
            if self._rule_commit(out, now):
                return
            if self._rule_skip(out, now) or self._rule_proposal(out, now) or self._rule_polka(out, now):
                continue
            if self._rule_nil_polka(out, now):
                continue
            self._rule_precommit_any(out, now)
            return

    def _rule_commit(self, out: Outbox, now: float) -> bool:
        """Line 49: 2/3 precommits for a known valid block in any round: commit. For an unknown
        block, ask a precommitter for the decision."""
        for (kind, r), weights in self.weights.items():
            if kind != Kind.PRECOMMIT:
                continue
            for block_hash, weight in weights.items():
                if block_hash == NIL or not self.ctx.vset.is_quorum(weight):
                    continue
                checked = self._known_block(block_hash, out)
                if checked is not None:
                    self.enter_commit(r, checked, out, now)
                    return True
                if block_hash in self.checking:
                    continue  # held and being checked: its verdict comes back as an input
                voter = next(v for v, vote in self.votes[(kind, r)].items() if vote.block_hash == block_hash)
                self.request_decision(voter, out, now)
        return False

    def _rule_skip(self, out: Outbox, now: float) -> bool:
        """Line 55: messages of later rounds from more than 1/3 of the weight: go to the highest
        round that signers with more than 1/3 of the weight have reached (each signer counted at
        its highest round seen, in the window or beyond it)."""
        if not self._skip_due:
            return False
        self._skip_due = False
        ahead = [(r, signer) for signer, r in self.highest.items() if r > self.round]
        vset = self.ctx.vset
        weight = 0
        for r, signer in sorted(ahead, reverse=True):
            weight += vset.weight(signer)
            if vset.is_blocking(weight):
                self.ctx.monitor.counters["round_skips"] += 1
                self.enter_round(r, out, now)
                return True
        return False

    def _rule_proposal(self, out: Outbox, now: float) -> bool:
        """Lines 22 and 28: the round's proposal decides this node's prevote."""
        if self.step != Step.PROPOSE:
            return False
        proposal = self.proposals.get(self.round)
        if proposal is None:
            return False
        block_hash = proposal.block_hash
        vr = proposal.valid_round
        if vr is not None and not self._quorum(Kind.PREVOTE, vr, block_hash):
            return False  # line 28 waits for the proof-of-lock prevotes
        good = self._votable(proposal, out, now)
        if good is None:
            return False  # its transactions' certificates were asked for: wait (line 57 bounds it)
        if vr is None:
            ok = good and (self.locked is None or self.locked[1] == block_hash)
        else:
            ok = good and (self.locked is None or self.locked[0] <= vr or self.locked[1] == block_hash)
        self.enter_prevote(block_hash if ok else NIL, out, now)
        return True

    def _rule_polka(self, out: Outbox, now: float) -> bool:
        """Line 36: 2/3 prevotes for a known valid block in this round: lock and precommit it (in
        PREVOTE), and make it the valid value."""
        r = self.round
        if r in self.rule36_done or self.step < Step.PREVOTE:
            return False
        for block_hash, weight in self.weights.get((Kind.PREVOTE, r), {}).items():
            if block_hash == NIL or not self.ctx.vset.is_quorum(weight):
                continue
            checked = self._known_block(block_hash, out)
            if checked is None:
                continue
            self.rule36_done.add(r)
            self._set_valid(r, checked, out)
            if self.step == Step.PREVOTE:
                reason, _ = self.finality.check_block_transactions(checked.block)
                if reason is None:
                    self.locked = (r, block_hash)
                    self.enter_precommit(block_hash, out, now)
                else:
                    self.enter_precommit(NIL, out, now)
            return True
        return False

    def _rule_nil_polka(self, out: Outbox, now: float) -> bool:
        """Line 44: 2/3 prevotes for nil in this round: precommit nil."""
        if self.step == Step.PREVOTE and self._quorum(Kind.PREVOTE, self.round, NIL):
            self.enter_precommit(NIL, out, now)
            return True
        return False

    def _rule_precommit_any(self, out: Outbox, now: float) -> None:
        """Line 47: 2/3 precommits of any kind in this round start the precommit timeout."""
        r = self.round
        total = sum(self.weights.get((Kind.PRECOMMIT, r), {}).values())
        if self.ctx.vset.is_quorum(total):
            self._schedule_precommit_timeout(r, out, now)

    # -- helpers -------------------------------------------------------------------------------------------

    def leader(self, round: int) -> bytes:
        """The proposer of ``round``: the VRF-weighted order of the height, rotating (DESIGN §5)."""
        if self.leaders is None:
            self.leaders = self.ctx.chain.leader_order(self.height)
        return self.leaders[round % len(self.leaders)]

    def emergency(self) -> CheckedBlock:
        if self._emergency is None:
            block = emergency_block(self.ctx.chain)
            self._emergency = CheckedBlock(block, block.encode())
            self.raw_blocks.setdefault(block.hash, self._emergency.raw)
            self.verdicts[block.hash] = self._emergency
        return self._emergency

    def _verdict(
        self, block_hash: bytes, raw: bytes, out: Outbox, wait: bool = False
    ) -> CheckedBlock | BlockRejected | None:
        """Objective validity of a block (cached per hash). With ``Context.offload_blocks`` and not
        ``wait``, None until the driver's verdict comes back (:meth:`on_checked`): the first
        call asks for it with a ``CheckBlock``."""
        verdict = self.verdicts.get(block_hash)
        if verdict is not None:
            return verdict
        if self.ctx.offload_blocks and not wait:
            if block_hash not in self.checking:
                self.checking.add(block_hash)
                vset = self.ctx.vset
                out.offloaded.append(
                    CheckBlock(self.height, block_hash, raw, tuple(vset.keys), tuple(vset.weights))
                )
            return None
        try:
            verdict = check_block(self.ctx.chain, raw, self.ctx.vset.keys, self.ctx.vset.weights)
        except BlockRejected as e:
            verdict = e
        self._keep_verdict(block_hash, verdict)
        return verdict

    def on_checked(
        self, check: CheckBlock, verdict: CheckedBlock | BlockRejected, out: Outbox, now: float
    ) -> None:
        """The driver's verdict on a block this engine asked it to check (``CheckBlock``): kept,
        then the rules looked at again. Ignored once the height has passed or for a block not
        asked for (a driver's late answer, or one for an engine rebuilt since)."""
        if check.height != self.height or check.block_hash not in self.checking:
            return
        self._keep_verdict(check.block_hash, verdict)
        self.evaluate(out, now)

    def _keep_verdict(self, block_hash: bytes, verdict: CheckedBlock | BlockRejected) -> None:
        self.checking.discard(block_hash)
        if isinstance(verdict, BlockRejected):
            self.ctx.monitor.ignore(f"block-{verdict.code}")
            log.info("block %s rejected: %s", block_hash.hex(), verdict)
        self.verdicts[block_hash] = verdict

    def _known_block(self, block_hash: bytes, out: Outbox, wait: bool = False) -> CheckedBlock | None:
        """A block with this hash that this node holds (or can rebuild from a proposal's
        compact form) and that is valid (None too while its check is in progress, see
        :meth:`_verdict`; ``wait``: checked in this step all the same)."""
        if self.round > REWARD_ONLY_ROUND or self._emergency is not None:
            if self.emergency().hash == block_hash:
                return self._emergency
        raw = self.raw_blocks.get(block_hash)
        if raw is None:
            raw = self._rebuild(block_hash)
            if raw is None:
                return None
        verdict = self._verdict(block_hash, raw, out, wait)
        return verdict if isinstance(verdict, CheckedBlock) else None

    def _rebuild(self, block_hash: bytes) -> bytes | None:
        """The proposed block ``block_hash`` rebuilt from its compact form once this node holds
        every transaction it names (None until then). The txids found missing are looked at in
        block order, each until it arrives, so a block waiting for many transactions costs one
        look per arrival, not a pass per vote. A compact form the proposer signed wrongly (its
        prefilled transactions) makes the block rejected."""
        wait = self.compacts.get(block_hash)
        if wait is None:
            return None
        held = self.finality.transaction
        if wait.missing:
            while wait.found < len(wait.missing) and held(wait.missing[wait.found]) is not None:
                wait.found += 1
            if wait.found < len(wait.missing):
                return None
        try:
            raw, missing = rebuild_block(wait.compact, held)
        except BlockRejected as e:
            del self.compacts[block_hash]
            self.verdicts[block_hash] = e
            self.ctx.monitor.ignore(f"block-{e.code}")
            log.info("block %s rejected: %s", block_hash.hex(), e)
            return None
        if raw is None:
            wait.missing, wait.found = missing, 0
            return None
        del self.compacts[block_hash]
        self.raw_blocks[block_hash] = raw
        return raw

    def missing_transactions(self, block_hash: bytes) -> list[bytes]:
        """The txids of proposed block ``block_hash`` this node lacked at its last rebuild (empty
        if it holds them all or knows no such proposal)."""
        wait = self.compacts.get(block_hash)
        if wait is None or wait.missing is None:
            return []
        return wait.missing[wait.found :]

    def _votable(self, proposal: Proposal, out: Outbox, now: float) -> bool | None:
        """valid(v) of lines 22/28 for this node: objectively valid, timely by its clock, of a
        kind the proposal round allows, and acceptable to its signer records (finality). None
        while the finality certificates of its transactions that this node lacks are being
        fetched from the proposer (a transaction final elsewhere may be rejected here)."""
        checked = self._known_block(proposal.block_hash, out)
        if checked is None:
            if proposal.block_hash in self.checking:
                return None  # its verdict comes back as an input (line 57 bounds the wait)
            missing = self.missing_transactions(proposal.block_hash)
            return None if missing and self._fetch_certificates(proposal, missing, out) else False
        try:
            check_proposal_round(checked.block.header, proposal.round, proposal.valid_round)
            check_timely(checked.block.header, now, proposal.valid_round is None)
        except BlockRejected as e:
            self.ctx.monitor.ignore(f"proposal-{e.code}")
            return False
        reason, _ = self.finality.check_block_transactions(checked.block)
        if reason is not None and self._fetch_certificates(proposal, checked.block.txids[1:], out):
            return None
        if reason is not None:
            self.ctx.monitor.counters["nil_votes_for_accepts"] += 1
            log.info(
                "prevoting nil at %d/%d: %s",
                self.height,
                self.round,
                reason,
                extra={"height": self.height, "round": self.round},
            )
            return False
        return True

    def _sign_vote(self, kind: Kind, block_hash: bytes, out: Outbox, now: float) -> bytes:
        """Signs a vote unless this node is no voter or is syncing; for a block, records the
        accepts voting for it implies (and, for a precommit, the lock) first. A signature the
        signer refuses (signed otherwise before a restart) is not made. Returns the hash voted."""
        ctx = self.ctx
        if not ctx.is_voter or ctx.behind:
            return block_hash
        assert ctx.secret_key is not None and ctx.signer is not None
        step = Step.PREVOTE if kind == Kind.PREVOTE else Step.PRECOMMIT
        writes = []
        if block_hash != NIL:
            checked = self._known_block(block_hash, out)
            reason, pairs = (
                self.finality.check_block_transactions(checked.block) if checked else ("unknown", [])
            )
            if reason is not None:
                block_hash = NIL
            else:
                writes = ctx.signer.accept(pairs)
                if kind == Kind.PRECOMMIT:
                    writes += ctx.signer.set_lock(self.height, self.round, block_hash)
        vote = BlockVote.create(ctx.secret_key, ctx.chain_id, kind, self.height, self.round, block_hash)
        data = vote.encode()
        try:
            writes += ctx.signer.sign(self.height, self.round, step, block_hash, data)
        except DoubleSignRefused as e:
            log.warning("%s", e)
            ctx.monitor.counters["signatures_refused"] += 1
            out.writes.extend(writes)
            return block_hash
        out.writes.extend(writes)
        out.sends.append(Broadcast(data))
        ctx.monitor.counters["block_votes_signed"] += 1
        self._add_vote(vote, out)
        return block_hash

    def _add_vote(self, vote: BlockVote, out: Outbox | None) -> bool:
        key = (vote.kind, vote.round)
        table = self.votes.setdefault(key, {})
        known = table.get(vote.voter)
        if known is not None:
            if known.block_hash != vote.block_hash:
                self._evidence(known, vote, out)
            return False
        table[vote.voter] = vote
        weight = self.ctx.vset.weight(vote.voter)
        tally = self.weights.setdefault(key, {})
        tally[vote.block_hash] = tally.get(vote.block_hash, 0) + weight
        self._seen_in(vote.voter, vote.round)
        if self.record is not None and vote.round == self.round:
            if vote.kind == Kind.PREVOTE:
                self.record.prevotes += 1
                self.record.prevote_weight += weight
            else:
                self.record.precommits += 1
                self.record.precommit_weight += weight
        return True

    def _evidence(self, known: BlockVote, vote: BlockVote, out: Outbox | None) -> None:
        kind = "double-prevote" if vote.kind == Kind.PREVOTE else "double-precommit"
        self.ctx.monitor.evidence[kind] += 1
        log.warning(
            "evidence %s by %s at %d/%d",
            kind,
            vote.voter.hex(),
            vote.height,
            vote.round,
            extra={"height": vote.height, "round": vote.round, "voter": vote.voter.hex()},
        )
        if out is not None:
            out.notices.append(Evidence(kind, vote.voter, vote.height, (known.encode(), vote.encode())))

    def proposed_txids(self) -> set[bytes]:
        """The txids of the blocks this node proposed at this height (fresh or re-proposed): what
        a validator of those proposals may ask it the finality certificates of. Built once per
        set of own proposals, not per request: an unsigned request naming one txid must not cost
        a pass over a whole block."""
        own = tuple(p.block_hash for p in self.proposals.values() if p.proposer == self.ctx.public_key)
        key = (self.height, own)
        if self._proposed[0] != key:
            txids: set[bytes] = set()
            for block_hash in own:
                checked = self.verdicts.get(block_hash)
                if isinstance(checked, CheckedBlock):
                    txids.update(checked.block.txids)
            self._proposed = (key, txids)
        return self._proposed[1]

    def _fetch_certificates(self, proposal: Proposal, txids: Sequence[bytes], out: Outbox) -> bool:
        """Asks the proposer, once per block, for the certificates (each with its transaction) of
        those of ``txids`` (the proposed block's) this node does not hold as final; True while
        that request is open (this round's propose step). A proposer that holds none sends
        nothing, and the propose timeout ends the wait."""
        if self.step != Step.PROPOSE:
            return False
        if proposal.block_hash in self.certificates_asked:
            return True
        final = self.finality.finalized
        missing = sorted(t for t in txids if t not in final)
        if not missing:
            return False
        self.certificates_asked.add(proposal.block_hash)
        self.ctx.monitor.counters["certificate_requests"] += 1
        limit = LIMITS["certificate_request_txids"]
        for i in range(0, len(missing), limit):
            request = CertificateRequest(tuple(missing[i : i + limit]))
            out.sends.append(SendTo(proposal.proposer, request.encode()))
        return True

    def on_certificate(self, out: Outbox, now: float) -> None:
        """A transaction became final by a received certificate: a proposal waiting for it may
        now be voted on."""
        if self.step == Step.PROPOSE:
            self.evaluate(out, now)

    def _set_valid(self, round: int, checked: CheckedBlock, out: Outbox) -> None:
        """Lines 36-43: ``checked`` is the valid value of ``round``; it is persisted with the 2/3
        prevotes that prove it (a restarted node re-proposes it with them)."""
        self.valid = (round, checked.hash)
        prevotes = [
            v.encode()
            for v in self.votes.get((Kind.PREVOTE, round), {}).values()
            if v.block_hash == checked.hash
        ]
        self.pol = {round: prevotes}
        if self.ctx.signer is not None:
            out.writes.extend(
                self.ctx.signer.set_valid(self.height, round, checked.hash, checked.raw, prevotes)
            )

    def _resend_own(self, out: Outbox) -> None:
        """Re-sends the votes this node signed at this height (its last round's prevote and
        precommit) to every peer, even those the seen-cache says have them: a peer that was away
        or restarted gets them. Proposals are not re-sent: a valid value is re-proposed."""
        if self.ctx.signer is not None:
            votes = (Kind.PREVOTE, Kind.PRECOMMIT)
            out.sends.extend(Resend(d) for d in self.ctx.signer.signed_at(self.height) if d[0] in votes)

    def _quorum(self, kind: Kind, round: int, block_hash: bytes) -> bool:
        return self.ctx.vset.is_quorum(self.weights.get((kind, round), {}).get(block_hash, 0))

    def _window(self, round: int) -> float:
        p = self.ctx.params
        return p.reward_only_window if round == REWARD_ONLY_ROUND else p.voting_window

    def _schedule_precommit_timeout(self, round: int, out: Outbox, now: float) -> None:
        if round not in self.precommit_timer_set:
            self.precommit_timer_set.add(round)
            out.timer(Timer("precommit", self.height, round), now + self._window(round))

    def _mark(self, phase: str, mark: str, now: float) -> None:
        previous = {"proposal": "round", "voting": "prevote"}[phase]
        if self.record is not None and previous in self.marks and mark not in self.marks:
            self.record.add_phase(phase, now - self.marks[previous])
        self.marks.setdefault(mark, now)

    def _send_status(self, out: Outbox) -> None:
        ctx = self.ctx
        if ctx.is_voter:
            assert ctx.secret_key is not None
            tip = ctx.chain.tip
            status = Status.create(ctx.secret_key, ctx.chain_id, tip.height, tip.block_hash, self.round)
            out.sends.append(Broadcast(status.encode()))

    def info(self) -> dict[str, Any]:
        return {
            "height": self.height,
            "round": self.round,
            "step": self.step.name.lower(),
            "round_kind": round_kind(self.round),
            "leader": self.leader(self.round).hex(),
            "locked": None
            if self.locked is None
            else {"round": self.locked[0], "block": self.locked[1].hex()},
            "valid": None if self.valid is None else {"round": self.valid[0], "block": self.valid[1].hex()},
            "proposals": len(self.proposals),
            "behind": self.ctx.behind,
            "full_block_rounds": FULL_BLOCK_ROUNDS,
        }
