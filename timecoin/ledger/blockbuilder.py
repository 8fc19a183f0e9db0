"""Block assembly (DESIGN §7, "block construction"): coinbase with the rewards, then the
transactions ordered by txid, the merkle root, and the UTXO set hash after applying it all.

It changes nothing: the transactions are prepared on the in-memory UTXO set (validated, not
applied) under a draft header, to learn the set hash the final header must commit; the chain
keeps that result under the final header (``ChainState.prepare_built``), so committing the block
only applies it.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass

from timecoin.core.types import Block, BlockHeader, Transaction, TxOut
from timecoin.crypto import merkle_root
from timecoin.ledger.chain import ChainState, ValidationError
from timecoin.ledger.genesis import BLOCK_VERSION


@dataclass(frozen=True, slots=True)
class Election:
    """Who proposes a block and the VRF proof that they may (DESIGN §5, §7)."""

    proposer: bytes
    """the proposer's masternode public key, 32 bytes"""
    vrf_proof: bytes
    """80 bytes (RFC 9381)"""
    vrf_output: bytes
    """64 bytes: the seed of the next height's leader draw"""


NO_ELECTION = Election(proposer=bytes(32), vrf_proof=bytes(80), vrf_output=bytes(64))
"""The all-zero election of blocks nobody is elected for: the genesis block, the emergency
block every node builds alike (docs/consensus.md), and chains built offline for tests. Consensus
rejects it on any other block (``timecoin.consensus.blocks.check_block``)."""
TX_COUNT = struct.Struct("<I")
"""A block's transaction count (docs/encoding.md: ``header ‖ u32 count ‖ transactions``)."""


def assemble_raw(
    chain: ChainState,
    transactions: Sequence[tuple[bytes, bytes]],
    timestamp: int,
    *,
    election: Election = NO_ELECTION,
    round: int = 0,
) -> tuple[bytes, bytes]:
    """(block hash, encoded block) on the chain's tip holding ``transactions``, given as (txid,
    encoded transaction) pairs, each valid against the tip's UTXO set and masternode registry
    (``ValidationError`` naming the index in ``transactions`` of the first that is not; with no
    index if the block fails for another reason). The chain keeps the block's validation for
    its commit (``ChainState.prepare_built``). Built from the encodings as they are (a block is
    ``header ‖ u32 count ‖ transactions``, docs/encoding.md): no transaction is decoded into
    objects or encoded again, which at thousands per block was most of a leader's stall.

    The transactions are validated once: the block is prepared under a draft coinbase (fees 0)
    and a draft header, which gives their fees, then the coinbase that pays them replaces the
    draft (``PreparedBlock.with_coinbase``) and the final header takes the set hash after it
    (``ChainState.prepare_built``). Checking each transaction alone first, for its fee, cost a
    third of a leader's build (12,000 transfers a block at 6,000 tx/s)."""
    height = chain.tip.height + 1
    ordered = sorted(transactions)
    txids = [txid for txid, _ in ordered]
    count = TX_COUNT.pack(1 + len(ordered))
    tail = b"".join([raw for _, raw in ordered])

    def coinbase(fees: int) -> Transaction:
        return Transaction.coinbase(height, [TxOut(v, h) for v, h in chain.expected_coinbase(height, fees)])

    def header(root: bytes, utxo_set_hash: bytes) -> BlockHeader:
        return BlockHeader(
            version=BLOCK_VERSION,
            height=height,
            prev_hash=chain.tip.block_hash,
            merkle_root=root,
            utxo_set_hash=utxo_set_hash,
            timestamp=timestamp,
            proposer=election.proposer,
            vrf_proof=election.vrf_proof,
            vrf_output=election.vrf_output,
            round=round,
        )

    draft = coinbase(0)
    try:
        drafted = chain.utxos.prepare_block(
            header(merkle_root([draft.txid, *txids]), bytes(32)).encode() + count + draft.encode() + tail,
            chain.rules,
            check_utxo_hash=False,
        )
        paying = coinbase(drafted.fees)
        paying_raw = paying.encode()
        prepared = drafted.with_coinbase(paying_raw, chain.rules)
        final = header(prepared.merkle_root, prepared.utxo_set_hash)
        raw = final.encode() + count + paying_raw + tail
        chain.prepare_built(raw, prepared)  # kept: the block's commit only applies it
    except ValidationError as e:
        raise _blame(e, ordered, transactions) from None
    return final.hash, raw


def _blame(
    error: ValidationError,
    ordered: Sequence[tuple[bytes, bytes]],
    transactions: Sequence[tuple[bytes, bytes]],
) -> ValidationError:
    """``error`` of a block holding ``ordered`` after its coinbase, with the transaction it names
    (by index in the block) indexed in ``transactions`` instead, for the caller that drops it
    and builds again; a coinbase or block error is no transaction's (no index)."""
    index = error.tx_index
    if index is None or not 1 <= index <= len(ordered):
        return ValidationError(error.code, error.message, None)
    txid = ordered[index - 1][0]
    at = next(i for i, (t, _) in enumerate(transactions) if t == txid)
    return ValidationError(error.code, f"transaction {at}: {error.message}", at)


def assemble_block(
    chain: ChainState,
    transactions: Sequence[Transaction],
    timestamp: int,
    *,
    election: Election = NO_ELECTION,
    round: int = 0,
) -> Block:
    """:func:`assemble_raw` for transactions as objects, the block as one."""
    _, raw = assemble_raw(
        chain, [(tx.txid, tx.encode()) for tx in transactions], timestamp, election=election, round=round
    )
    return Block.decode(raw)
