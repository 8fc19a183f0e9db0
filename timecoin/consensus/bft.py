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
* later rounds: no proposer. Every node treats the emergency block (or, if it has one, its valid
  value with its proof-of-lock round, the paper's line 16 re-proposal) as the round's proposal
  and votes at once (``voting_window``).

Departures from the paper, for liveness only (safety never depends on timeouts): the prevote and
precommit timeouts start when the step is entered, not on seeing 2/3 of any votes, so a node cut
off from 2/3 still moves through rounds and meets the others after a partition heals; rules 36
and 49 accept any known block with the quorum's hash (CometBFT does the same); a node that
cannot vote for a valid block because of its accept records (finality) votes nil.

A node that learns a peer committed its height (a status, or messages of the next height) asks
for the :class:`~timecoin.consensus.messages.Decision` and stops voting: it syncs instead.

No I/O: the :class:`~timecoin.consensus.context.Outbox` collects writes, messages and timers.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from timecoin.consensus.blocks import (
    BlockRejected,
    CheckedBlock,
    block_kind,
    build_block,
    check_block,
    check_proposal_round,
    check_timely,
    emergency_block,
    round_kind,
)
from timecoin.consensus.certificates import CertificateError, check_commit_structure
from timecoin.consensus.context import Context, Outbox
from timecoin.consensus.effects import ApplyBlock, Broadcast, Evidence, SendTo, ServeDecision, Timer
from timecoin.consensus.finality import FinalityEngine
from timecoin.consensus.messages import (
    NIL,
    BlockVote,
    CommitCertificate,
    Decision,
    DecisionRequest,
    Kind,
    Proposal,
    Status,
)
from timecoin.consensus.monitor import RoundRecord
from timecoin.consensus.signer import DoubleSignRefused, Step
from timecoin.core.types import HEADER_LEN
from timecoin.crypto import hash_block_header
from timecoin.params import FULL_BLOCK_ROUNDS, REWARD_ONLY_ROUND

log = logging.getLogger(__name__)

__all__ = ["MAX_FUTURE_ROUNDS", "BftEngine"]

MAX_FUTURE_ROUNDS = 64
"""Votes and proposals for rounds further ahead than this are dropped (bounded memory)."""
BLOCK_SIZE_MARGIN = 1_000_000
"""Bytes of ``max_block_size`` left for the header, coinbase and framing."""


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
        self.peer_tips: dict[bytes, int] = {}
        """Tip height each member last announced in a status: who to ask while behind."""
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
        self.verdicts: dict[bytes, CheckedBlock | BlockRejected] = {}
        self.votes = {}
        self.weights: dict[tuple[Kind, int], dict[bytes, int]] = {}
        self.round_voters: dict[int, set[bytes]] = {}
        self.rule36_done: set[int] = set()
        self.precommit_timer_set: set[int] = set()
        self.decided: tuple[int, bytes] | None = None
        self.decision_asked: float | None = None
        self.leaders: list[bytes] | None = None
        self._emergency: CheckedBlock | None = None
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
        self.start_round = start_round
        self._send_status(out)
        ahead = [k for k, tip in self.peer_tips.items() if tip >= self.height]
        if ahead:  # still behind a peer: keep syncing, one decision after the other
            ctx.behind = True
            self.request_decision(None, out, now)
        slot_start = tip.timestamp + ctx.params.block_slot
        out.timer(Timer("slot", self.height, 0), max(now, slot_start))

    def _restore_own(self, data: bytes) -> None:
        """Counts this node's own re-sent message (signed before a restart) in the round state."""
        if data[0] in (Kind.PREVOTE, Kind.PRECOMMIT):
            self._add_vote(BlockVote.decode(data), None)
        elif data[0] == Kind.PROPOSAL:
            p = Proposal.decode(data)
            self.proposals.setdefault(p.round, p)
            self.raw_blocks.setdefault(p.block_hash, p.block)

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
        kind = round_kind(round)
        t0 = ctx.perf()
        leader = self.leader(round)
        election = ctx.perf() - t0
        if self.record is not None and self.record.outcome == "running":
            self.record.outcome = "timeout"
        self.record = ctx.monitor.start_round(self.height, round, kind, now, leader)
        self.record.add_phase("election", election)
        if first:
            self.record.add_phase("sync", now - self.entered)
        self.marks = {"round": now}
        self.record.event(now, f"enter round {round} ({kind})")
        if round > 0:
            self._send_status(out)
        self.enter_propose(leader, out, now)
        self.evaluate(out, now)

    def enter_propose(self, leader: bytes | None, out: Outbox, now: float) -> None:
        """The PROPOSE step of the current round: the leader proposes (lines 14-19) and everyone
        waits up to the round's propose timeout; past the reward-only round, the implicit
        proposal is voted on at once."""
        ctx = self.ctx
        round = self.round
        kind = round_kind(round)
        if kind == "emergency":
            self._emergency_round(out, now)
            return
        if leader == ctx.public_key and ctx.is_voter and not ctx.behind and round not in self.proposals:
            self._propose(round, out, now)
        timeout = ctx.params.leader_timeout if kind == "full" else ctx.params.reward_only_window
        out.timer(Timer("propose", self.height, round), now + timeout)

    def _propose(self, round: int, out: Outbox, now: float) -> None:
        """Lines 14-19: the valid value with its round if there is one, else a new block."""
        ctx = self.ctx
        assert ctx.secret_key is not None and ctx.public_key is not None and ctx.signer is not None
        if self.valid is not None and self.valid[1] in self.raw_blocks:
            valid_round: int | None = self.valid[0]
            raw = self.raw_blocks[self.valid[1]]
        else:
            valid_round = None
            t0 = ctx.perf()
            txs = []
            if round_kind(round) == "full":
                limit = ctx.params.max_block_size - BLOCK_SIZE_MARGIN
                if ctx.max_transaction_bytes is not None:
                    limit = min(limit, ctx.max_transaction_bytes)
                txs = self.finality.block_transactions(now, limit)
            block = build_block(ctx.chain, ctx.secret_key, ctx.public_key, round, txs, now)
            raw = block.encode()
            self.verdicts[block.hash] = CheckedBlock(block, raw)
            assert self.record is not None
            self.record.add_phase("construction", ctx.perf() - t0)
        proposal = Proposal.create(ctx.secret_key, ctx.chain_id, self.height, round, valid_round, raw)
        try:
            out.writes.extend(
                ctx.signer.sign(self.height, round, Step.PROPOSE, proposal.block_hash, proposal.encode())
            )
        except DoubleSignRefused as e:
            log.warning("%s", e)
            return
        out.sends.append(Broadcast(proposal.encode()))
        ctx.monitor.counters["proposals_signed"] += 1
        self.on_proposal(proposal, out, now)

    def _emergency_round(self, out: Outbox, now: float) -> None:
        """Rounds past the reward-only round: the implicit proposal is this node's valid value
        (line 28 with its proof-of-lock round) or the emergency block (line 22)."""
        if self.valid is not None and self._known_block(self.valid[1]) is not None:
            vr, block_hash = self.valid
            ok = self.locked is None or self.locked[0] <= vr or self.locked[1] == block_hash
            self.enter_prevote(block_hash if ok else NIL, out, now)
            return
        emergency = self.emergency()
        ok = self.locked is None or self.locked[1] == emergency.hash
        self.enter_prevote(emergency.hash if ok else NIL, out, now)

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
        out.apply = ApplyBlock(self.height, checked.hash, checked.raw, certificate.encode())

    def on_applied(self, now: float) -> None:
        """The driver applied the committed block: the finalization phase ends."""
        if self.record is not None and "commit" in self.marks:
            self.record.add_phase("finalization", now - self.marks["commit"])

    # -- inputs ------------------------------------------------------------------------------------------

    def on_proposal(self, proposal: Proposal, out: Outbox, now: float) -> None:
        """A proposal whose signature verified (or this node's own)."""
        if proposal.height != self.height or self.step == Step.COMMIT:
            return
        if proposal.round > self.round + MAX_FUTURE_ROUNDS:
            self.ctx.monitor.ignore("round-too-far")
            return
        if round_kind(proposal.round) == "emergency":
            self.ctx.monitor.ignore("proposal-in-emergency-round")
            return
        if proposal.proposer != self.leader(proposal.round):
            self.ctx.monitor.ignore("wrong-proposer")
            return
        known = self.proposals.get(proposal.round)
        if known is not None:
            if known.block_hash != proposal.block_hash:
                self.ctx.monitor.evidence["double-proposal"] += 1
                out.notices.append(
                    Evidence(
                        "double-proposal", proposal.proposer, self.height, (known.encode(), proposal.encode())
                    )
                )
            return
        self.proposals[proposal.round] = proposal
        self.raw_blocks.setdefault(proposal.block_hash, proposal.block)
        self.evaluate(out, now)

    def on_vote(self, vote: BlockVote, out: Outbox, now: float) -> None:
        """A prevote or precommit whose signature verified, from a member of the set (of this
        height, or of the last one: those only count as evidence of double votes)."""
        if vote.height == self.height - 1:
            height, votes = self.last_height_votes
            if height == vote.height and vote.round <= MAX_FUTURE_ROUNDS + max(
                (r for _, r in votes), default=0
            ):
                table = votes.setdefault((vote.kind, vote.round), {})
                known = table.setdefault(vote.voter, vote)
                if known.block_hash != vote.block_hash:
                    self._evidence(known, vote, out)
            return
        if vote.height != self.height:
            return
        if vote.round > self.round + MAX_FUTURE_ROUNDS:
            self.ctx.monitor.ignore("round-too-far")
            return
        if self._add_vote(vote, out) and self.step != Step.COMMIT:
            self.evaluate(out, now)

    def on_decision(self, decision: Decision, out: Outbox, now: float) -> None:
        """A committed block from a peer, certificate signatures verified: checked against the
        set and the ledger, then applied (this is how a node that fell behind catches up)."""
        cert = decision.certificate
        if self.step == Step.COMMIT or cert.height != self.height:
            if cert.height > self.height:
                self.ctx.behind = True
            return
        block_hash = hash_block_header(decision.block[:HEADER_LEN])
        try:
            check_commit_structure(cert, block_hash, self.height, self.ctx.vset)
        except CertificateError as e:
            self.ctx.monitor.ignore(f"decision-{e.code}")
            return
        checked = self._verdict(block_hash, decision.block)
        if isinstance(checked, BlockRejected):
            log.error(
                "a commit certificate of 2/3 certifies an invalid block %s: %s", block_hash.hex(), checked
            )
            self.ctx.monitor.counters["invalid_decisions"] += 1
            return
        self.ctx.monitor.counters["decisions_synced"] += 1
        self._commit(cert, checked, out, now)

    def on_status(self, status: Status, out: Outbox, now: float) -> None:
        """A member's verified status: if it committed the height being decided, this node is
        behind: it stops voting and asks that member for the decision."""
        self.peer_tips[status.sender] = max(status.height, self.peer_tips.get(status.sender, -1))
        if status.height >= self.height and self.step != Step.COMMIT:
            self.ctx.behind = True
            self.request_decision(status.sender, out, now)

    def on_decision_request(self, request: DecisionRequest, peer: Any, out: Outbox) -> None:
        if request.height <= self.ctx.chain.tip.height:
            out.sends.append(ServeDecision(peer, request.height))

    def request_decision(self, masternode: bytes | None, out: Outbox, now: float) -> None:
        """Asks ``masternode`` (None: the next member known to be ahead, in turn) for the
        decision of this height, at most once per voting window."""
        if self.decision_asked is not None and now - self.decision_asked < self.ctx.params.voting_window:
            return
        if masternode is None:
            ahead = sorted(k for k, tip in self.peer_tips.items() if tip >= self.height)
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
        if self.ctx.behind:
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
        for _ in range(8 + MAX_FUTURE_ROUNDS):
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
                checked = self._known_block(block_hash)
                if checked is not None:
                    self.enter_commit(r, checked, out, now)
                    return True
                voter = next(v for v, vote in self.votes[(kind, r)].items() if vote.block_hash == block_hash)
                self.request_decision(voter, out, now)
        return False

    def _rule_skip(self, out: Outbox, now: float) -> bool:
        """Line 55: messages of a later round from more than 1/3 of the weight: go there."""
        for r in sorted(self.round_voters):
            if r > self.round and self.ctx.vset.is_blocking(self.ctx.vset.weight_of(self.round_voters[r])):
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
        good = self._votable(proposal, now)
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
            checked = self._known_block(block_hash)
            if checked is None:
                continue
            self.rule36_done.add(r)
            self.valid = (r, block_hash)
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

    def leader(self, round: int) -> bytes | None:
        """The proposer of ``round`` (None past the reward-only round: the emergency block)."""
        if round > REWARD_ONLY_ROUND:
            return None
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

    def _verdict(self, block_hash: bytes, raw: bytes) -> CheckedBlock | BlockRejected:
        """Objective validity of a block (cached per hash)."""
        verdict = self.verdicts.get(block_hash)
        if verdict is None:
            try:
                verdict = check_block(self.ctx.chain, raw, self.ctx.vset.keys, self.ctx.vset.weights)
            except BlockRejected as e:
                verdict = e
                self.ctx.monitor.ignore(f"block-{e.code}")
                log.info("block %s rejected: %s", block_hash.hex(), e)
            self.verdicts[block_hash] = verdict
        return verdict

    def _known_block(self, block_hash: bytes) -> CheckedBlock | None:
        """A block with this hash that this node holds and that is valid."""
        if self.round > REWARD_ONLY_ROUND or self._emergency is not None:
            if self.emergency().hash == block_hash:
                return self._emergency
        raw = self.raw_blocks.get(block_hash)
        if raw is None:
            return None
        verdict = self._verdict(block_hash, raw)
        return verdict if isinstance(verdict, CheckedBlock) else None

    def _votable(self, proposal: Proposal, now: float) -> bool:
        """valid(v) of lines 22/28 for this node: objectively valid, timely by its clock, of a
        kind the proposal round allows, and acceptable to its signer records (finality)."""
        checked = self._known_block(proposal.block_hash)
        if checked is None:
            return False
        try:
            check_proposal_round(checked.block.header, proposal.round, proposal.valid_round is None)
            check_timely(checked.block.header, now)
        except BlockRejected as e:
            self.ctx.monitor.ignore(f"proposal-{e.code}")
            return False
        reason, _ = self.finality.check_block_transactions(checked.block)
        if reason is not None:
            self.ctx.monitor.counters["nil_votes_for_accepts"] += 1
            log.info("prevoting nil at %d/%d: %s", self.height, self.round, reason)
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
            checked = self._known_block(block_hash)
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
        self.round_voters.setdefault(vote.round, set()).add(vote.voter)
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
        log.warning("evidence %s by %s at %d/%d", kind, vote.voter.hex(), vote.height, vote.round)
        if out is not None:
            out.notices.append(Evidence(kind, vote.voter, vote.height, (known.encode(), vote.encode())))

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
            "leader": (self.leader(self.round) or b"").hex() or None,
            "locked": None
            if self.locked is None
            else {"round": self.locked[0], "block": self.locked[1].hex()},
            "valid": None if self.valid is None else {"round": self.valid[0], "block": self.valid[1].hex()},
            "proposals": len(self.proposals),
            "behind": self.ctx.behind,
            "full_block_rounds": FULL_BLOCK_ROUNDS,
        }
