"""The consensus of one node: the object its one consensus task owns (DESIGN §2, §6, §7; CometBFT
``consensus/state.go`` "receiveRoutine" is the model: one owner of the round state, everything
else sends it inputs).

Inputs are bytes and time; outputs are effects (``timecoin.consensus.effects``), to be run in
order by a driver (``timecoin.consensus.runner.EffectRunner``, or the node):

* :meth:`Consensus.start` — once, after construction;
* :meth:`Consensus.submit` — transactions from RPC or gossip;
* :meth:`Consensus.on_messages` — a batch of consensus messages from peers: all are decoded,
  filtered (height, membership: a key outside the set is ignored with a reason) and then all
  their signatures are checked in **one** ``crypto.verify_batch`` call before any is handled;
  :meth:`Consensus.receive` does the same and also says per message whether it was valid (the
  P2P layer relays only those and charges the sender for :data:`FAULTS`);
* :meth:`Consensus.on_timer` — a timer this engine scheduled has fired;
* :meth:`Consensus.on_block_applied` — the driver connected a block (one this engine committed,
  or one from sync).

:meth:`Consensus.info` is the ``getconsensusinfo`` / metrics view. Nothing here reads a clock, a
socket or the disk: time comes in as ``now`` (unix seconds), and persistence goes out as
``Persist`` effects. The state is read once from the store by :meth:`Consensus.from_store`.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable, Sequence
from typing import Any

from timecoin import crypto
from timecoin.consensus.bft import BftEngine
from timecoin.consensus.blocks import BlockRejected, CheckedBlock
from timecoin.consensus.context import Context, Outbox
from timecoin.consensus.effects import BuildBlock, CheckBlock, Effect, Timer
from timecoin.consensus.finality import FinalityEngine
from timecoin.consensus.messages import (
    BlockVote,
    CertificateRequest,
    Decision,
    DecisionRequest,
    MessageError,
    Proposal,
    SnowballQuery,
    SnowballResponse,
    Status,
    TxCertificate,
    TxVote,
    decode_message,
)
from timecoin.consensus.monitor import Monitor
from timecoin.consensus.signer import SignerState
from timecoin.consensus.store import load_finalized, load_signer_records, load_vote_batches
from timecoin.consensus.tally import VoteRecord
from timecoin.consensus.validators import ValidatorSet
from timecoin.core.types import Block, BlockView
from timecoin.ledger.chain import ChainState
from timecoin.ledger.mempool import Admission, Mempool

__all__ = ["FAULTS", "MAX_FUTURE_BYTES", "MAX_FUTURE_BYTES_PER_PEER", "MAX_FUTURE_MESSAGES", "Consensus"]

MAX_FUTURE_MESSAGES = 4096
"""Messages of the next height kept until this node gets there (bounded memory)."""
MAX_FUTURE_BYTES = 64 * 1024 * 1024
"""Bytes of next-height messages kept, all peers together (they are kept before their
signatures are checked, and a proposal may be 2 MiB)."""
MAX_FUTURE_BYTES_PER_PEER = 16 * 1024 * 1024
"""Bytes of next-height messages kept from one peer: a node ahead of us sends its proposal,
votes and statuses; one peer cannot crowd out the others' (DESIGN §13)."""
FAULTS = frozenset({"bad-encoding", "bad-signature", "bad-decision"})
"""Verdicts of :meth:`Consensus.receive` no honest peer causes: a message that does not decode,
or whose signatures do not verify, or a decision whose certified block, rebuilt from its bytes,
is not a valid block (an honest server sends the bytes it validated; DESIGN §13: bad data costs
its sender reputation). The other reasons (``wrong-height``, ``unknown-voter``,
``next-height``) befall honest peers at another height or with another set."""


def validator_set(chain: ChainState) -> ValidatorSet:
    """The masternode set of ``tip + 1`` from the chain (never from gossip, DESIGN §12 inv. 7)."""
    height = chain.tip.height + 1
    keys, weights = chain.leader_set(height)
    return ValidatorSet.of(height, keys, weights)


class Consensus:
    """Finality and block production of one node (see the module docstring).

    ``secret_key`` is the masternode's 32-byte Ed25519 seed, or None for a node that follows
    without voting. ``production_gate()`` says whether enough masternodes are online to produce
    blocks (``HeartbeatTracker.can_produce``, liveness only). ``signer_records`` and
    ``finalized`` are what :meth:`from_store` reads. ``rng`` drives Snowball sampling (local
    policy; seed it in simulations). ``perf`` times CPU phases for monitoring only.
    ``max_message_bytes`` is what its transport carries in one message (the P2P LARGE_VOTE item):
    the proposals it makes and the decisions it serves fit it (None: no limit). ``offload_blocks``:
    blocks are checked and built by the driver, off the step (``CheckBlock``, ``BuildBlock``,
    answered through :meth:`on_block_checked` and :meth:`on_block_built`), not inside it.
    """

    def __init__(
        self,
        chain: ChainState,
        mempool: Mempool,
        *,
        secret_key: bytes | None,
        production_gate: Callable[[], bool],
        signer_records: Sequence[tuple[bytes, bytes]] = (),
        finalized: Sequence[tuple[bytes, bytes, bytes, bytes]] = (),
        vote_batches: Sequence[tuple[int, bytes]] = (),
        rng: random.Random | None = None,
        perf: Callable[[], float] = time.perf_counter,
        max_message_bytes: int | None = None,
        offload_blocks: bool = False,
    ) -> None:
        public_key = crypto.public_key(secret_key) if secret_key is not None else None
        signer = SignerState.load(signer_records) if secret_key is not None else None
        self.ctx = Context(
            chain.params,
            chain,
            chain.genesis.hash,
            secret_key,
            public_key,
            signer,
            Monitor(),
            validator_set(chain),
            perf=perf,
            max_message_bytes=max_message_bytes,
            offload_blocks=offload_blocks,
        )
        self.finality = FinalityEngine(
            self.ctx, mempool, finalized, rng or random.Random(os.urandom(16)), vote_batches
        )
        self.bft = BftEngine(self.ctx, self.finality, production_gate)
        self._future: list[tuple[Any, bytes]] = []
        self._future_bytes: dict[Any, int] = {}
        """Bytes of ``_future`` per peer."""
        self._future_total = 0

    @classmethod
    def from_store(
        cls,
        chain: ChainState,
        mempool: Mempool,
        *,
        secret_key: bytes | None,
        production_gate: Callable[[], bool],
        rng: random.Random | None = None,
        perf: Callable[[], float] = time.perf_counter,
        max_message_bytes: int | None = None,
        offload_blocks: bool = False,
    ) -> Consensus:
        """A consensus restored from the chain's store: signer state and finalized pool."""
        return cls(
            chain,
            mempool,
            secret_key=secret_key,
            production_gate=production_gate,
            signer_records=load_signer_records(chain.store),
            finalized=load_finalized(chain.store),
            vote_batches=load_vote_batches(chain.store),
            rng=rng,
            perf=perf,
            max_message_bytes=max_message_bytes,
            offload_blocks=offload_blocks,
        )

    @property
    def monitor(self) -> Monitor:
        return self.ctx.monitor

    # -- inputs ------------------------------------------------------------------------------------------

    def start(self, now: float) -> list[Effect]:
        out = Outbox()
        self.finality.start(out, now)
        self.bft.enter_new_height(out, now)
        return out.effects()

    def submit(self, raws: Sequence[bytes], now: float) -> tuple[list[Admission], list[Effect]]:
        """Admits encoded transactions for finality voting; one :class:`Admission` each."""
        out = Outbox()
        admissions = self.finality.submit(raws, out, now)
        return admissions, out.effects()

    def on_timer(self, timer: Timer, now: float) -> list[Effect]:
        out = Outbox()
        self.ctx.monitor.counters[f"timer_{timer.name}"] += 1
        if timer.name == "flush":
            self.finality.on_flush(out, now, timer.round)
        elif timer.name == "snowball":
            if timer.height == self.ctx.height:
                self.finality.on_snowball_timeout(timer.round, out, now)
        else:
            self.bft.on_timer(timer, out, now)
        return out.effects()

    def on_block_applied(self, block: bytes | Block | BlockView, now: float) -> list[Effect]:
        """The driver connected ``block`` (the new tip): archive its transactions (the records it
        made useless go out as a ``Sweep``), move to the next height's set, start the next
        height, replay messages kept for it."""
        if isinstance(block, bytes):
            block = BlockView.decode(block)
        out = Outbox()
        self.finality.on_block(block, out, now)
        self.bft.on_applied(now)
        ctx = self.ctx
        ctx.prev_vset, ctx.vset = ctx.vset, validator_set(ctx.chain)
        ctx.behind = False
        self.finality.new_height(out, now)
        self.bft.enter_new_height(out, now)
        effects = out.effects()
        future, self._future = self._future, []
        self._future_bytes, self._future_total = {}, 0
        if future:
            effects += self.on_messages(future, now)
        return effects

    def on_block_checked(
        self, check: CheckBlock, verdict: CheckedBlock | BaseException, now: float
    ) -> list[Effect]:
        """The verdict on a block the driver checked for a ``CheckBlock`` effect: the
        ``CheckedBlock``, or the exception the check raised. A ``BlockRejected`` is the block's
        verdict; any other exception is raised here (a failed step, as if the check had run
        inside it), unless the check was for a height already decided."""
        out = Outbox()
        if isinstance(verdict, BaseException) and not isinstance(verdict, BlockRejected):
            if check.height == self.bft.height and check.block_hash in self.bft.checking:
                raise verdict
            return []
        self.bft.on_checked(check, verdict, out, now)
        return out.effects()

    def on_block_built(self, request: BuildBlock, built: bytes | BaseException, now: float) -> list[Effect]:
        """The block the driver built for a ``BuildBlock`` effect (encoded), or the exception the
        build raised: proposed, unless the engine has left that round. An exception is raised
        here (a failed step, as if the build had run inside it) unless the round has passed."""
        if isinstance(built, BaseException):
            if self.bft.builds_for(request):
                raise built
            return []
        out = Outbox()
        self.bft.on_built(request, built, out, now)
        return out.effects()

    def on_messages(self, items: Sequence[tuple[Any, bytes]], now: float) -> list[Effect]:
        """Handles a batch of (peer, encoded message). Every signature of the batch is checked in
        one ``verify_batch`` call; malformed, misaddressed or badly signed messages are dropped and
        counted (``info()["ignored"]``) without changing anything."""
        return self.receive(items, now)[0]

    def receive(self, items: Sequence[tuple[Any, bytes]], now: float) -> tuple[list[Effect], list[str]]:
        """:meth:`on_messages`, with a verdict per message, in order: ``""`` for one that decoded,
        verified and was handled (or, signed by a member, is kept for the next height:
        ``"next-height"``), else the reason it was dropped (``bad-encoding``, ``bad-signature``:
        :data:`FAULTS`; ``wrong-height``, ``unknown-voter``)."""
        out = Outbox()
        ctx = self.ctx
        monitor = ctx.monitor
        verdicts = [""] * len(items)
        admitted: list[tuple[int, Any, Any, ValidatorSet | None]] = []
        for i, (peer, data) in enumerate(items):
            try:
                msg = decode_message(data)
            except (MessageError, TypeError):
                monitor.ignore("bad-encoding")
                verdicts[i] = "bad-encoding"
                continue
            monitor.counters["messages_received"] += 1
            if isinstance(msg, DecisionRequest):
                self.bft.on_decision_request(msg, peer, out)
                continue
            if isinstance(msg, CertificateRequest):
                self.finality.on_certificate_request(msg, peer, self.bft.proposed_txids(), out)
                continue
            reason, vset = self._route(msg, peer, data, out, now)
            if reason:
                verdicts[i] = reason
            else:
                admitted.append((i, peer, msg, vset))
        if not admitted:
            return out.effects(), verdicts
        keys: list[bytes] = []
        signed: list[bytes] = []
        signatures: list[bytes] = []
        spans = []
        for _, _, msg, _ in admitted:
            sigs = msg.signatures(ctx.chain_id)
            spans.append((len(keys), len(keys) + len(sigs)))
            for k, m, s in sigs:
                keys.append(k)
                signed.append(m)
                signatures.append(s)
        valid = crypto.verify_batch(keys, signed, signatures) if keys else []
        monitor.counters["signatures_verified"] += len(keys)
        votes: list[VoteRecord] = []
        for (i, peer, msg, vset), (start, end) in zip(admitted, spans, strict=True):
            if not all(valid[start:end]):
                monitor.ignore("bad-signature")
                verdicts[i] = "bad-signature"
                continue
            if isinstance(msg, TxVote):
                assert vset is not None
                votes.append(VoteRecord(msg, vset.weight(msg.voter)))
                continue
            if votes:
                self.finality.on_votes(votes, out, now)
                votes = []
            verdicts[i] = self._dispatch(msg, peer, out, now)
        if votes:
            self.finality.on_votes(votes, out, now)
        return out.effects(), verdicts

    def _route(
        self, msg: Any, peer: Any, data: bytes, out: Outbox, now: float
    ) -> tuple[str, ValidatorSet | None]:
        """("" to handle the message now, else why not; the set its signer must belong to if
        any). A message not for now is kept for the next height (``next-height``) or ignored
        with a counted reason."""
        ctx = self.ctx
        monitor = ctx.monitor
        if isinstance(msg, (TxVote, Proposal, BlockVote)):
            signer = msg.voter if isinstance(msg, (TxVote, BlockVote)) else msg.proposer
            height = msg.height
            if isinstance(msg, Proposal):
                vset = ctx.vset if height == ctx.height else None
            else:  # last height's votes: late finality votes still count, late block votes are evidence
                vset = ctx.set_for(height)
            if vset is None:
                if height == ctx.height + 1:
                    self._keep_for_next_height(peer, data)
                    if not isinstance(msg, TxVote) and signer in ctx.vset:
                        # a member is already at the next height: it committed this one
                        self.bft.request_decision(signer, out, now)
                    return "next-height", None
                monitor.ignore("wrong-height")
                return "wrong-height", None
            if signer not in vset:
                monitor.ignore("unknown-voter")
                return "unknown-voter", None
            return "", vset
        if isinstance(msg, Status):
            if msg.sender not in ctx.vset and (ctx.prev_vset is None or msg.sender not in ctx.prev_vset):
                monitor.ignore("unknown-voter")
                return "unknown-voter", None
            return "", None
        if isinstance(msg, SnowballQuery):
            if msg.sender not in ctx.vset:
                monitor.ignore("unknown-voter")
                return "unknown-voter", None
            return "", None
        if isinstance(msg, SnowballResponse):
            if msg.responder not in ctx.vset:
                monitor.ignore("unknown-voter")
                return "unknown-voter", None
            return "", None
        return "", None  # Decision, TxCertificate: the certificate is checked after the signatures

    def _keep_for_next_height(self, peer: Any, data: bytes) -> None:
        """Keeps a next-height message for :meth:`on_block_applied` within
        :data:`MAX_FUTURE_MESSAGES`, :data:`MAX_FUTURE_BYTES` and
        :data:`MAX_FUTURE_BYTES_PER_PEER`; past them it is dropped (its sender repeats what
        matters: statuses, revotes at the new height, decision requests)."""
        from_peer = self._future_bytes.get(peer, 0)
        if (
            len(self._future) >= MAX_FUTURE_MESSAGES
            or self._future_total + len(data) > MAX_FUTURE_BYTES
            or from_peer + len(data) > MAX_FUTURE_BYTES_PER_PEER
        ):
            self.ctx.monitor.ignore("next-height-full")
            return
        self._future.append((peer, data))
        self._future_bytes[peer] = from_peer + len(data)
        self._future_total += len(data)

    def _dispatch(self, msg: Any, peer: Any, out: Outbox, now: float) -> str:
        """Hands a verified message on; its verdict (``""``, or a :data:`FAULTS` member)."""
        if isinstance(msg, Decision):
            return self.bft.on_decision(msg, peer, out, now)
        if isinstance(msg, BlockVote):
            self.bft.on_vote(msg, out, now)
        elif isinstance(msg, Proposal):
            self.bft.on_proposal(msg, out, now)
        elif isinstance(msg, Status):
            self.bft.on_status(msg, out, now)
        elif isinstance(msg, SnowballQuery):
            self.finality.on_snowball_query(msg, out)
        elif isinstance(msg, SnowballResponse):
            self.finality.on_snowball_response(msg, out, now)
        elif isinstance(msg, TxCertificate):
            if self.finality.on_certificate(msg, out, now):
                self.bft.on_certificate(out, now)
        return ""

    # -- views ---------------------------------------------------------------------------------------------

    def transaction_status(self, txid: bytes) -> dict[str, Any] | None:
        """Finality state of ``txid`` here (``gettransactionfinality``): final with its
        certificate, pending with its weights, rejected with the reason, or None."""
        return self.finality.status(txid)

    def info(self) -> dict[str, Any]:
        """Everything ``getconsensusinfo`` shows, as a JSON-ready dict."""
        ctx = self.ctx
        return {
            "masternode": ctx.public_key.hex() if ctx.public_key else None,
            "voter": ctx.is_voter,
            "set": {"height": ctx.vset.height, "size": len(ctx.vset), "total_weight": ctx.vset.total},
            "round_state": self.bft.info(),
            "finality": self.finality.info(),
            "signer": None
            if ctx.signer is None
            else {
                "last_signed": None
                if ctx.signer.last is None
                else dict(zip(("height", "round", "step"), ctx.signer.last[:3], strict=True)),
                "accept_records": ctx.signer.accept_count(),
            },
            **ctx.monitor.snapshot(),
        }
