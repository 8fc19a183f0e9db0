"""Blocks of a slot: building a proposal (full, reward-only, emergency) and checking one
(DESIGN §7 phases 3 and 5).

* **Full block** (rounds below ``FULL_BLOCK_ROUNDS``): the coinbase with the rewards, then the
  transactions ordered by txid (``assemble_block``), timestamp ``max(prev + 1, now)``, the
  proposer's key and its VRF proof over ``vrf_alpha(prev vrf_output, height, round)``.
* **Reward-only block** (``REWARD_ONLY_ROUND``): the same without transactions.
* **Emergency block** (later rounds): what every node builds byte-identically from the chain
  alone, so it needs no proposer: coinbase only, timestamp = previous + ``ceil(block_slot)``,
  proposer, VRF proof and VRF output all zero, and ``round`` = :data:`EMERGENCY_ROUND`, a marker
  no proposal round can take. Its zero VRF output seeds the next height's leader draw, which the
  height still varies.

:func:`check_block` is the objective validity every node agrees on: linkage, timestamp window,
proposer eligibility (or exact equality with the emergency block), the round's block kind, and
the ledger rules (``ChainState.prepare_block``: native validation against the tip's UTXO set,
the reward rule, the masternode registry), leaving the chain unchanged and keeping the result
for the commit. Whether *this* masternode may vote for a
valid block is the finality engine's question (its accept records).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from timecoin_native import txids as txids_of

from timecoin.consensus.messages import CompactBlock
from timecoin.core.types import HEADER_LEN, Block, BlockHeader, BlockView, Transaction, TxOut
from timecoin.ledger.blockbuilder import NO_ELECTION, TX_COUNT, Election, assemble_block, assemble_raw
from timecoin.ledger.chain import ChainState, ValidationError
from timecoin.masternode import leader
from timecoin.params import FULL_BLOCK_ROUNDS, MAX_BLOCK_TIME_DRIFT, REWARD_ONLY_ROUND

log = logging.getLogger(__name__)

__all__ = [
    "BLOCK_REJECT_CODES",
    "EMERGENCY_ROUND",
    "BlockRejected",
    "CheckedBlock",
    "block_kind",
    "build_block",
    "build_elected",
    "check_block",
    "check_proposal_round",
    "check_timely",
    "coinbase_len",
    "election",
    "emergency_block",
    "header_of",
    "rebuild_block",
    "round_kind",
]

EMERGENCY_ROUND = 2**32 - 1
"""Header ``round`` of an emergency block (u32 max: no proposal round is ever this)."""

BLOCK_REJECT_CODES: dict[str, str] = {
    "bad-encoding": "Not a canonical block encoding.",
    "bad-prevblk": "Does not build on this node's tip.",
    "bad-height": "Not the next height.",
    "bad-timestamp": "Before the slot's start (previous block + block slot), or too far ahead of "
    "or, for a fresh proposal, too far behind this node's clock.",
    "bad-proposer": "The proposer is not the leader of the header's round, or its VRF proof fails.",
    "bad-round": "A block kind the round does not allow (transactions in a reward-only round, "
    "a fresh block past the reward-only round, a header round above the proposal round).",
    "bad-emergency": "Claims the emergency round but differs from the emergency block.",
    "bad-ledger": "Breaks a ledger rule (native validation, rewards, masternode registry).",
}


class BlockRejected(ValueError):
    """A block that is not valid at this node's tip; ``code`` in :data:`BLOCK_REJECT_CODES`."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class CheckedBlock:
    """A block that passed :func:`check_block`."""

    block: Block | BlockView
    """Our own proposal as objects, or a received block with its transactions still encoded."""
    raw: bytes

    @property
    def hash(self) -> bytes:
        return self.block.hash


def block_kind(header_round: int) -> str:
    """``full``, ``reward-only`` or ``emergency`` for a header round."""
    if header_round == EMERGENCY_ROUND:
        return "emergency"
    return "full" if header_round < FULL_BLOCK_ROUNDS else "reward-only"


def round_kind(round: int) -> str:
    """What a proposal round produces (DESIGN §7 fallback): rounds below ``FULL_BLOCK_ROUNDS``
    full blocks, ``REWARD_ONLY_ROUND`` a reward-only block, later rounds the emergency block."""
    if round < FULL_BLOCK_ROUNDS:
        return "full"
    return "reward-only" if round == REWARD_ONLY_ROUND else "emergency"


def slot_start(chain: ChainState) -> int:
    """The earliest timestamp of the next block: the tip's plus one block slot, rounded up to a
    whole second (DESIGN §7 "timestamp window": not before the slot's start)."""
    return chain.tip_header.timestamp + math.ceil(chain.params.block_slot)


def emergency_timestamp(chain: ChainState) -> int:
    """The emergency block's timestamp: the slot's start."""
    return slot_start(chain)


def emergency_block(chain: ChainState) -> Block:
    """The emergency block on the chain's tip (see the module docstring): the same bytes on
    every node with the same chain."""
    return assemble_block(
        chain,
        [],
        emergency_timestamp(chain),
        election=NO_ELECTION,
        round=EMERGENCY_ROUND,
    )


def coinbase_len(chain: ChainState, height: int) -> int:
    """Bytes of the coinbase of a block at ``height`` (tip + 1) without fees: the rewards' outputs
    (DESIGN §4), whose count fees change only when they make an output reach the dust limit."""
    outputs = [TxOut(v, h) for v, h in chain.expected_coinbase(height, 0)]
    return Transaction.coinbase(height, outputs).encoded_len()


def election(chain: ChainState, secret_key: bytes, public_key: bytes, round: int) -> Election:
    """This masternode's VRF proof that it may propose ``round`` at the next height (DESIGN §5)."""
    proof, output = leader.prove_eligibility(
        secret_key, chain.tip_header.vrf_output, chain.tip.height + 1, round
    )
    return Election(public_key, proof, output)


def build_block(
    chain: ChainState,
    secret_key: bytes,
    public_key: bytes,
    round: int,
    transactions: Sequence[tuple[bytes, bytes]],
    now: float,
) -> bytes:
    """:func:`build_elected` with this masternode's :func:`election`."""
    return build_elected(chain, election(chain, secret_key, public_key, round), round, transactions, now)


def build_elected(
    chain: ChainState,
    elected: Election,
    round: int,
    transactions: Sequence[tuple[bytes, bytes]],
    now: float,
) -> bytes:
    """The encoded block the leader ``elected`` proposes for ``round`` at the next height: full
    (with ``transactions``, (txid, encoded transaction) pairs) or reward-only (``transactions``
    ignored) by :func:`round_kind`, assembled from the encodings (:func:`assemble_raw`). A
    transaction the chain refuses is dropped (logged) and the block rebuilt without it. Only
    reads the chain (another thread may run it, as :func:`check_block`). Raises ``ValueError``
    for an emergency round, ``ValidationError`` for a block refused without a transaction to
    blame."""
    kind = round_kind(round)
    if kind == "emergency":
        raise ValueError(f"round {round} takes the emergency block, which nobody proposes")
    timestamp = max(slot_start(chain), int(now))
    txs = list(transactions) if kind == "full" else []
    while True:
        try:
            _, raw = assemble_raw(chain, txs, timestamp, election=elected, round=round)
            return raw
        except ValidationError as e:
            if e.tx_index is None or not 0 <= e.tx_index < len(txs):
                raise
            log.warning("dropping transaction %s from the proposal: %s", txs[e.tx_index][0].hex(), e)
            del txs[e.tx_index]


def check_block(chain: ChainState, raw: bytes, keys: Sequence[bytes], weights: Sequence[int]) -> CheckedBlock:
    """Checks ``raw`` as the next block on the chain's tip: everything every honest node agrees
    on (see the module docstring), with ``keys``/``weights`` the set of the height. The clock
    (:func:`check_timely`) and the proposal round (:func:`check_proposal_round`) are checked
    apart, since they depend on the voter and the round. Raises :class:`BlockRejected`; the
    chain is unchanged either way.
    """
    try:
        block = BlockView.decode(raw)
    except ValueError as e:
        raise BlockRejected("bad-encoding", str(e)) from None
    header = block.header
    tip = chain.tip_header
    height = tip.height + 1
    if header.prev_hash != tip.hash:
        raise BlockRejected("bad-prevblk", f"builds on {header.prev_hash.hex()}, tip is {tip.hash.hex()}")
    if header.height != height:
        raise BlockRejected("bad-height", f"height {header.height}, expected {height}")
    if header.round == EMERGENCY_ROUND:
        if raw != emergency_block(chain).encode():
            raise BlockRejected("bad-emergency", "differs from the emergency block every node builds")
        return CheckedBlock(block, raw)
    if header.timestamp < slot_start(chain):
        raise BlockRejected(
            "bad-timestamp",
            f"timestamp {header.timestamp} is before the slot's start {slot_start(chain)} "
            f"(previous block {tip.timestamp} + block slot)",
        )
    if header.round > REWARD_ONLY_ROUND:
        raise BlockRejected(
            "bad-round", f"header round {header.round}: past the reward-only round only the emergency block"
        )
    if header.round == REWARD_ONLY_ROUND and len(block) != 1:
        raise BlockRejected("bad-round", "a reward-only block carries only the coinbase")
    try:
        output = leader.check_proposer(
            tip.vrf_output, height, header.round, keys, weights, header.proposer, header.vrf_proof
        )
    except ValueError as e:
        raise BlockRejected("bad-proposer", str(e)) from None
    if output != header.vrf_output:
        raise BlockRejected("bad-proposer", "header vrf_output is not the proof's output")
    _check_ledger(chain, raw)
    return CheckedBlock(block, raw)


def check_timely(header: BlockHeader, now: float, fresh: bool) -> None:
    """A voter's clock check (DESIGN §7 "timestamp window"): a proposed block's timestamp may
    lie at most ``MAX_BLOCK_TIME_DRIFT`` seconds ahead of ``now``; a ``fresh`` proposal (no
    proof-of-lock round: made in this round) also at most ``MAX_BLOCK_TIME_DRIFT`` seconds behind
    it. A re-proposed valid value keeps the time it was first proposed at; the
    emergency block, fixed by the chain, is always timely. Together with :func:`check_block`'s
    slot-start rule, a lying leader cannot make the chain's clock run faster than real time.
    Raises :class:`BlockRejected` (``bad-timestamp``)."""
    if header.round == EMERGENCY_ROUND:
        return
    if header.timestamp > now + MAX_BLOCK_TIME_DRIFT:
        raise BlockRejected(
            "bad-timestamp",
            f"timestamp {header.timestamp} is over {MAX_BLOCK_TIME_DRIFT} s ahead of {int(now)}",
        )
    if fresh and header.timestamp < now - MAX_BLOCK_TIME_DRIFT:
        raise BlockRejected(
            "bad-timestamp",
            f"timestamp {header.timestamp} is over {MAX_BLOCK_TIME_DRIFT} s behind {int(now)}",
        )


def check_proposal_round(header: BlockHeader, proposal_round: int, valid_round: int | None) -> None:
    """A block proposed in ``proposal_round`` with proof-of-lock round ``valid_round`` (None: a
    fresh proposal). The emergency block may be proposed in the emergency rounds only (past the
    reward-only round); any other block's header round is not later than the proposal round, and
    equal for a fresh proposal, so a fresh proposal in the reward-only round is reward-only and
    a fresh proposal past it is the emergency block. Raises :class:`BlockRejected`."""
    if header.round == EMERGENCY_ROUND:
        ok = proposal_round > REWARD_ONLY_ROUND
    else:
        ok = header.round <= proposal_round and (valid_round is not None or header.round == proposal_round)
    if not ok:
        raise BlockRejected("bad-round", f"header round {header.round} in proposal round {proposal_round}")


def _check_ledger(chain: ChainState, raw: bytes) -> None:
    """The ledger rules ``ChainState.connect_block`` applies, without changing anything; the
    chain keeps the result, so committing this block later does not validate it again."""
    try:
        chain.prepare_block(raw)
    except ValidationError as e:
        raise BlockRejected("bad-ledger", f"{e.code}: {e.message}") from None


def rebuild_block(
    compact: CompactBlock, held: Callable[[bytes], bytes | None]
) -> tuple[bytes | None, list[bytes]]:
    """The encoded block of a :class:`~timecoin.consensus.messages.CompactBlock` (DESIGN §7 phase
    4): each transaction from its prefilled bytes, else ``held(txid)`` (this node's own copy:
    final or pending, so already validated). ``(block, [])`` when every transaction is there,
    ``(None, the missing txids in block order)`` otherwise. Whether the block is valid is
    :func:`check_block`'s question: the header's merkle root binds the txids. Raises
    :class:`BlockRejected` (``bad-encoding``) if a prefilled transaction does not decode, is not
    one of the block's, is carried twice, or the first one is not the block's first."""
    try:
        prefilled_txids = txids_of(list(compact.prefilled))
    except ValueError as e:
        raise BlockRejected("bad-encoding", f"prefilled transaction: {e}") from None
    txids = compact.txids
    if prefilled_txids[0] != txids[0]:
        raise BlockRejected("bad-encoding", "the first prefilled transaction is not the block's first")
    prefilled = dict(zip(prefilled_txids, compact.prefilled, strict=True))
    if len(prefilled) != len(compact.prefilled):
        raise BlockRejected("bad-encoding", "a prefilled transaction is carried twice")
    raws: list[bytes] = []
    missing: list[bytes] = []
    used = 0
    for txid in txids:
        raw = prefilled.get(txid)
        if raw is not None:
            used += 1
        else:
            raw = held(txid)
            if raw is None:
                missing.append(txid)
                continue
        raws.append(raw)
    if used != len(prefilled):
        raise BlockRejected("bad-encoding", "a prefilled transaction is not one of the block's")
    if missing:
        return None, missing
    return b"".join([compact.header, TX_COUNT.pack(len(raws)), *raws]), []


def header_of(raw: bytes) -> BlockHeader:
    """The decoded header of an encoded block; ``BlockRejected`` if it is too short."""
    if len(raw) < HEADER_LEN:
        raise BlockRejected("bad-encoding", "shorter than a block header")
    try:
        return BlockHeader.decode(raw[:HEADER_LEN])
    except ValueError as e:
        raise BlockRejected("bad-encoding", str(e)) from None
