"""Deterministic chains for tests, crash tests and benchmarks: a devnet genesis funding keys
derived from a seed, and blocks of real signed transfers spending them.

Everything is a function of the seed, so a crashed run and a reference replay build the very
same blocks.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from timecoin import crypto
from timecoin.consensus.messages import CommitCertificate, Kind, block_vote_signing_message
from timecoin.consensus.store import CONSENSUS_DB, commit_key
from timecoin.core.address import pubkey_hash
from timecoin.core.types import OutPoint, Transaction, TxOut, sign_transactions
from timecoin.ledger.blockbuilder import assemble_block
from timecoin.ledger.chain import ChainState
from timecoin.ledger.genesis import GenesisConfig, GenesisMasternode
from timecoin.params import COIN, DEVNET, NetworkParams, Tier


def seed_key(seed: bytes, i: int) -> bytes:
    """The i-th 32-byte Ed25519 seed derived from ``seed``."""
    return hashlib.blake2b(seed + i.to_bytes(8, "little"), digest_size=32).digest()


def devnet_genesis(
    seed: bytes = b"timecoin-dev",
    accounts: int = 16,
    amount: int = 1_000_000 * COIN,
    masternodes: int = 4,
    params: NetworkParams = DEVNET,
    timestamp: int = 1_763_683_200,
) -> tuple[GenesisConfig, list[bytes], list[bytes]]:
    """A genesis funding ``accounts`` keys with ``amount`` sat each and registering
    ``masternodes`` Gold masternodes. Returns (config, account seeds, masternode seeds)."""
    account_keys = [seed_key(seed + b"/account", i) for i in range(accounts)]
    mn_keys = [seed_key(seed + b"/masternode", i) for i in range(masternodes)]
    treasury = pubkey_hash(crypto.public_key(seed_key(seed + b"/treasury", 0)))
    config = GenesisConfig(
        params=params,
        timestamp=timestamp,
        treasury=treasury,
        allocations=tuple((pubkey_hash(crypto.public_key(k)), amount) for k in account_keys),
        masternodes=tuple(
            GenesisMasternode(
                public_key=crypto.public_key(k),
                tier=Tier.GOLD,
                collateral_owner=pubkey_hash(crypto.public_key(k)),
                payout=pubkey_hash(crypto.public_key(k)),
            )
            for k in mn_keys
        ),
    )
    return config, account_keys, mn_keys


@dataclass
class Wallet:
    """Spendable coins of known keys: outpoint → (value, secret key). Deterministic order."""

    coins: dict[OutPoint, tuple[int, bytes]] = field(default_factory=dict)

    @classmethod
    def from_genesis(cls, chain: ChainState, account_keys: list[bytes]) -> Wallet:
        owners = {pubkey_hash(crypto.public_key(k)): k for k in account_keys}
        coinbase = chain.genesis.block.transactions[0]
        wallet = cls()
        for vout, out in enumerate(coinbase.outputs):
            if out.pubkey_hash in owners and vout < len(chain.genesis.config.allocations):
                wallet.coins[OutPoint(coinbase.txid, vout)] = (out.value, owners[out.pubkey_hash])
        return wallet

    def transfers(self, count: int, chain: ChainState, fanout: int = 2) -> list[Transaction]:
        """``count`` signed transfers, each spending one of the largest coins into ``fanout``
        outputs to the same key, paying exactly the minimum fee; the wallet then holds the new
        outputs."""
        params = chain.params
        picked = sorted(self.coins.items(), key=lambda kv: (-kv[1][0], kv[0].txid, kv[0].vout))
        if len(picked) < count:
            raise ValueError(f"wallet has {len(picked)} coins, {count} transfers asked")
        unsigned, keys = [], []
        for outpoint, (value, key) in picked[:count]:
            owner = pubkey_hash(crypto.public_key(key))
            # Solve value = outputs + min_fee(outputs) for the largest outputs total.
            total = (value - params.min_fee_base) * 1000 // (1000 + params.min_fee_per_mille)
            while total + params.min_fee(total) > value:
                total -= 1
            share = total // fanout
            outputs = [TxOut(share, owner) for _ in range(fanout - 1)] + [
                TxOut(total - share * (fanout - 1), owner)
            ]
            unsigned.append(Transaction.transfer([outpoint], outputs))
            keys.append([key])
            del self.coins[outpoint]
        signed = sign_transactions(unsigned, keys, chain.genesis.hash, int(params.network))
        for tx, k in zip(signed, keys, strict=True):
            for vout, out in enumerate(tx.outputs):
                self.coins[OutPoint(tx.txid, vout)] = (out.value, k[0])
        return signed


def commit_certificate(
    chain_id: bytes, height: int, block_hash: bytes, masternode_keys: Sequence[bytes], round: int = 0
) -> bytes:
    """The encoded commit certificate of ``block_hash`` at ``height``: precommits of ``round``
    signed by every masternode seed of ``masternode_keys`` (DESIGN §7). It verifies against any
    set in which those keys hold 2/3 of the weight, e.g. every height of a chain whose set is
    the genesis masternodes of :func:`devnet_genesis` (which registers no others)."""
    msg = block_vote_signing_message(Kind.PRECOMMIT, chain_id, height, round, block_hash)
    signatures = sorted((crypto.public_key(k), crypto.sign(k, msg)) for k in masternode_keys)
    return CommitCertificate(height, round, block_hash, tuple(signatures)).encode()


def certified_writes(height: int, certificate: bytes) -> list[tuple[bytes, bytes, bytes | None]]:
    """The ``extra`` store writes that keep a block's commit certificate with it, as the node
    does (``timecoin.consensus.store``): pass them to ``ChainState.connect_block``."""
    return [(CONSENSUS_DB, commit_key(height), certificate)]


def grow_chain(
    chain: ChainState,
    wallet: Wallet,
    blocks: int,
    txs_per_block: int,
    masternode_keys: Sequence[bytes] = (),
) -> Iterator[bytes]:
    """Builds, connects and yields ``blocks`` encoded blocks of ``txs_per_block`` transfers; with
    ``masternode_keys``, each is stored with its :func:`commit_certificate` (so peers can sync
    it)."""
    for _ in range(blocks):
        block = assemble_block(chain, wallet.transfers(txs_per_block, chain), chain.tip_header.timestamp + 2)
        raw = block.encode()
        height = chain.tip.height + 1
        extra = (
            certified_writes(
                height, commit_certificate(chain.genesis.hash, height, block.hash, masternode_keys)
            )
            if masternode_keys
            else []
        )
        chain.connect_block(raw, extra)
        yield raw
