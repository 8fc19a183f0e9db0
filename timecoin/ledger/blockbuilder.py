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
    (``ValidationError`` naming the index of the first that is not). The chain keeps the
    block's validation for its commit (``ChainState.prepare_built``). Built from the encodings
    as they are (a block is ``header ‖ u32 count ‖ transactions``, docs/encoding.md): no
    transaction is decoded into objects or encoded again, which at thousands per block was
    most of a leader's stall."""
    height = chain.tip.height + 1
    raws = [raw for _, raw in transactions]
    fees = 0
    for i, verdict in enumerate(chain.utxos.check_transactions(raws, chain.rules, height)):
        if not verdict.ok:
            raise ValidationError(verdict.code, f"transaction {i}: {verdict.message}", i)
        fees += verdict.fee
    coinbase = Transaction.coinbase(height, [TxOut(v, h) for v, h in chain.expected_coinbase(height, fees)])
    ordered = sorted(transactions)
    body = b"".join([TX_COUNT.pack(1 + len(ordered)), coinbase.encode(), *(raw for _, raw in ordered)])
    root = merkle_root([coinbase.txid, *(txid for txid, _ in ordered)])

    def header(utxo_set_hash: bytes) -> BlockHeader:
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

    prepared = chain.utxos.prepare_block(
        header(bytes(32)).encode() + body, chain.rules, check_utxo_hash=False
    )
    final = header(prepared.utxo_set_hash)
    raw = final.encode() + body
    chain.prepare_built(raw, prepared)  # kept: the block's commit only applies it
    return final.hash, raw


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
