"""Blocks of a slot (DESIGN §7): the emergency block is byte-identical on independently opened
chains; ``check_block`` refuses a wrong proposer, a bad VRF output, transactions in a reward-only
block, a tampered emergency block, a timestamp not after its parent and ledger faults, each with
its code and without changing the chain; the clock and proposal-round checks apart."""

from __future__ import annotations

import dataclasses

import pytest

from timecoin.consensus.blocks import (
    EMERGENCY_ROUND,
    BlockRejected,
    build_block,
    check_block,
    check_proposal_round,
    check_timely,
    emergency_block,
    rebuild_block,
    round_kind,
)
from timecoin.consensus.messages import CompactBlock
from timecoin.core.types import Block
from timecoin.crypto import public_key
from timecoin.ledger.chain import ChainState
from timecoin.ledger.genesis import build_genesis
from timecoin.params import MAX_BLOCK_TIME_DRIFT, REWARD_ONLY_ROUND
from timecoin.testing.chaingen import Wallet, devnet_genesis

CONFIG, ACCOUNTS, MASTERNODES = devnet_genesis(accounts=4)
GENESIS = build_genesis(CONFIG)
NOW = CONFIG.timestamp + 100


@pytest.fixture
def chain(tmp_path):
    state = ChainState.open(tmp_path / "a", CONFIG.params, GENESIS)
    yield state
    state.close()


def leader_seed(chain: ChainState, round: int) -> bytes:
    key = chain.leader_order(chain.tip.height + 1)[round % len(MASTERNODES)]
    return next(s for s in MASTERNODES if public_key(s) == key)


def check(chain: ChainState, block: Block) -> str:
    keys, weights = chain.leader_set(chain.tip.height + 1)
    before = chain.utxos.set_hash()
    with pytest.raises(BlockRejected) as e:
        check_block(chain, block.encode(), keys, weights)
    assert chain.utxos.set_hash() == before and chain.tip.height == 0
    return e.value.code


def test_round_kinds():
    assert [round_kind(r) for r in range(5)] == ["full", "full", "reward-only", "emergency", "emergency"]


def test_emergency_block_is_the_same_everywhere(chain, tmp_path):
    other = ChainState.open(tmp_path / "b", CONFIG.params, GENESIS)
    try:
        a, b = emergency_block(chain), emergency_block(other)
        assert a.encode() == b.encode()
        assert a.header.round == EMERGENCY_ROUND and a.header.proposer == bytes(32)
        assert a.header.vrf_output == bytes(64) and len(a.transactions) == 1
        assert a.header.timestamp == GENESIS.block.header.timestamp + 2
        keys, weights = chain.leader_set(1)
        assert check_block(chain, a.encode(), keys, weights).hash == a.hash
        other.connect_block(b.encode())
        assert other.tip.block_hash == a.hash
    finally:
        other.close()


def build(chain, seed, round_, txs):
    """``build_block`` for transaction objects, the block decoded."""
    pairs = [(tx.txid, tx.encode()) for tx in txs]
    return Block.decode(build_block(chain, seed, public_key(seed), round_, pairs, NOW))


def test_valid_blocks_pass(chain):
    wallet = Wallet.from_genesis(chain, ACCOUNTS)
    seed = leader_seed(chain, 0)
    block = build(chain, seed, 0, wallet.transfers(2, chain))
    keys, weights = chain.leader_set(1)
    view = check_block(chain, block.encode(), keys, weights).block
    assert view.header == block.header and list(view.txids) == block.txids and len(view) == 3
    assert [view.transaction(i) for i in range(3)] == list(block.transactions)
    assert list(view.raw_transactions) == [tx.encode() for tx in block.transactions]
    check_proposal_round(block.header, 0, None)
    check_proposal_round(block.header, 1, 0)
    check_timely(block.header, NOW, fresh=True)
    reward_only = build(chain, leader_seed(chain, 2), 2, [])
    assert check_block(chain, reward_only.encode(), keys, weights)
    with pytest.raises(ValueError):
        build(chain, seed, 3, [])


def test_bad_blocks_are_refused_with_codes(chain):
    wallet = Wallet.from_genesis(chain, ACCOUNTS)
    seed = leader_seed(chain, 0)
    good = build(chain, seed, 0, wallet.transfers(1, chain))
    h = good.header
    impostor = leader_seed(chain, 1)
    assert (
        check(chain, Block(dataclasses.replace(h, proposer=public_key(impostor)), good.transactions))
        == "bad-proposer"
    )
    assert (
        check(chain, Block(dataclasses.replace(h, vrf_output=bytes(64)), good.transactions)) == "bad-proposer"
    )
    assert check(chain, Block(dataclasses.replace(h, round=1), good.transactions)) == "bad-proposer"
    assert (
        check(
            chain, Block(dataclasses.replace(h, timestamp=GENESIS.block.header.timestamp), good.transactions)
        )
        == "bad-timestamp"
    )
    assert (
        check(chain, Block(dataclasses.replace(h, prev_hash=bytes(32)), good.transactions)) == "bad-prevblk"
    )
    assert (
        check(chain, Block(dataclasses.replace(h, utxo_set_hash=bytes(32)), good.transactions))
        == "bad-ledger"
    )
    reward_seed = leader_seed(chain, REWARD_ONLY_ROUND)
    stuffed = build(chain, reward_seed, 0, wallet.transfers(1, chain))
    stuffed = Block(dataclasses.replace(stuffed.header, round=REWARD_ONLY_ROUND), stuffed.transactions)
    assert check(chain, stuffed) == "bad-round"
    emergency = emergency_block(chain)
    assert (
        check(chain, Block(dataclasses.replace(emergency.header, timestamp=NOW), emergency.transactions))
        == "bad-emergency"
    )
    with pytest.raises(BlockRejected, match="bad-round"):
        check_proposal_round(h, 1, None)
    with pytest.raises(BlockRejected, match="bad-round"):
        check_proposal_round(emergency.header, REWARD_ONLY_ROUND, None)
    with pytest.raises(BlockRejected, match="bad-timestamp"):
        check_timely(dataclasses.replace(h, timestamp=NOW + MAX_BLOCK_TIME_DRIFT + 1), NOW, fresh=False)
    check_timely(emergency.header, 0, fresh=True)
    check_proposal_round(emergency.header, REWARD_ONLY_ROUND + 1, None)  # every round has a proposer
    with pytest.raises(BlockRejected, match="bad-timestamp"):  # a fresh proposal stamped in the past
        check_timely(h, h.timestamp + MAX_BLOCK_TIME_DRIFT + 1, fresh=True)
    check_timely(h, h.timestamp + MAX_BLOCK_TIME_DRIFT + 1, fresh=False)  # a re-proposal keeps its time
    keys, weights = chain.leader_set(1)
    with pytest.raises(BlockRejected, match="bad-encoding"):
        check_block(chain, good.encode()[:-1], keys, weights)


def test_a_compact_block_rebuilds_from_held_transactions(chain):
    """``rebuild_block`` takes each transaction from the prefilled ones, then from what the node
    holds; it reports the missing txids in block order, and refuses prefilled transactions that
    are not the block's (or the first is not its coinbase) without asking for anything."""
    wallet = Wallet.from_genesis(chain, ACCOUNTS)
    block = build(chain, leader_seed(chain, 0), 0, wallet.transfers(3, chain))
    raw = block.encode()
    held = {tx.txid: tx.encode() for tx in block.transactions[1:]}
    compact = CompactBlock.of_block(raw, lambda _, __: False)
    assert compact.txids == tuple(block.txids) and compact.prefilled == (block.transactions[0].encode(),)
    assert rebuild_block(compact, held.get) == (raw, [])
    lacking = {t: r for t, r in held.items() if t != block.txids[2]}
    assert rebuild_block(compact, lacking.get) == (None, [block.txids[2]])
    assert rebuild_block(CompactBlock.whole(raw), {}.get) == (raw, [])
    other_coinbase = dataclasses.replace(compact, prefilled=(block.transactions[1].encode(),))
    with pytest.raises(BlockRejected, match="first"):
        rebuild_block(other_coinbase, held.get)
    stranger = wallet.transfers(1, chain)[0].encode()
    with pytest.raises(BlockRejected, match="not one of the block's"):
        rebuild_block(dataclasses.replace(compact, prefilled=(compact.prefilled[0], stranger)), held.get)
    one_more = dataclasses.replace(compact, prefilled=(compact.prefilled[0], held[block.txids[1]]))
    assert rebuild_block(one_more, {}.get)[1] == [block.txids[2], block.txids[3]]
    with pytest.raises(BlockRejected, match="twice"):
        doubled = (compact.prefilled[0], held[block.txids[1]], held[block.txids[1]])
        rebuild_block(dataclasses.replace(compact, prefilled=doubled), held.get)
