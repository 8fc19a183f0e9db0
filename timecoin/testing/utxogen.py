"""Real signed transactions and blocks over a bare UTXO set (no store, no chain state), for the
ledger's tests and benchmarks (tests/unit/test_validation.py, tests/native/test_utxo_model.py,
benches/bench_ledger.py). Everything is a function of its arguments.

Keys are numbered: key ``i`` is a 32-byte seed derived from ``i``; :func:`owner` is the
``pubkey_hash`` its coins are paid to. Funding coins get synthetic txids (they stand for the
outputs of earlier blocks) and are loaded into a set with ``UtxoSet.load``.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable, Sequence

from timecoin import crypto
from timecoin.core.types import (
    Block,
    BlockHeader,
    Coin,
    OutPoint,
    Transaction,
    TxOut,
    sign_transactions,
)
from timecoin.ledger import LedgerRules, UtxoSet, ValidationError
from timecoin.params import DEVNET, NetworkParams

CHAIN_ID = crypto.hash_in("block_header", b"timecoin.testing.utxogen chain")
"""Chain id (genesis hash) the generated transactions sign."""


def rules(params: NetworkParams = DEVNET, chain_id: bytes = CHAIN_ID, **overrides: int) -> LedgerRules:
    """The ledger rules of ``params`` (DESIGN §4 defaults), with ``overrides`` by field name."""
    fields = {
        "dust_limit": params.dust_limit,
        "min_fee_base": params.min_fee_base,
        "min_fee_per_mille": params.min_fee_per_mille,
        "max_tx_size": params.max_tx_size,
        "max_block_size": params.max_block_size,
    }
    unknown = set(overrides) - set(fields)
    if unknown:
        raise ValueError(f"unknown rule fields {sorted(unknown)}")
    fields.update(overrides)
    return LedgerRules(chain_id, int(params.network), **fields)


@functools.cache
def secret_key(i: int) -> bytes:
    """The 32-byte Ed25519 seed of key ``i``."""
    return hashlib.blake2b(b"utxogen key" + i.to_bytes(8, "little"), digest_size=32).digest()


@functools.cache
def public_key(i: int) -> bytes:
    return crypto.public_key(secret_key(i))


@functools.cache
def owner(i: int) -> bytes:
    """``pubkey_hash`` of key ``i``."""
    return crypto.hash_public_key(public_key(i))


def funding_outpoint(i: int) -> OutPoint:
    """The synthetic outpoint of funding coin ``i``."""
    return OutPoint(
        hashlib.blake2b(b"utxogen funding" + i.to_bytes(8, "little"), digest_size=32).digest(), i % 4
    )


def funding(count: int, value: int, *, start: int = 0, height: int = 0) -> list[tuple[bytes, bytes]]:
    """(outpoint, coin) encodings of funding coins ``start .. start+count``: coin ``i`` is worth
    ``value`` sat, owned by key ``i``, created at ``height``."""
    return [
        (funding_outpoint(i).encode(), Coin(value, owner(i), height, False).encode())
        for i in range(start, start + count)
    ]


def unsigned_transfer(
    inputs: Sequence[OutPoint], outputs: Sequence[tuple[int, int]], *, lock_time: int = 0
) -> Transaction:
    """A transfer of ``inputs`` to ``outputs`` given as (value sat, key index)."""
    return Transaction.transfer(inputs, [TxOut(v, owner(k)) for v, k in outputs], lock_time=lock_time)


def transfer(
    inputs: Sequence[tuple[OutPoint, int]],
    outputs: Sequence[tuple[int, int]],
    *,
    lock_time: int = 0,
    chain_id: bytes = CHAIN_ID,
    network: int = int(DEVNET.network),
) -> Transaction:
    """A signed transfer: ``inputs`` as (outpoint, key index of its owner), ``outputs`` as
    (value sat, key index of the payee)."""
    tx = unsigned_transfer([op for op, _ in inputs], outputs, lock_time=lock_time)
    return tx.signed_with([secret_key(k) for _, k in inputs], chain_id, network)


def sign_all(
    txs: Sequence[Transaction], signers: Sequence[Sequence[int]], *, chain_id: bytes = CHAIN_ID
) -> list[Transaction]:
    """Signs many transactions in one native call; ``signers[i]`` are the key indices of
    transaction ``i``'s witnesses."""
    keys = [[secret_key(k) for k in ks] for ks in signers]
    return sign_transactions(txs, keys, chain_id, int(DEVNET.network))


def coinbase(height: int, outputs: Sequence[tuple[int, int]] = ((100, 0),)) -> Transaction:
    """A coinbase for ``height`` paying (value sat, key index) outputs."""
    return Transaction.coinbase(height, [TxOut(v, owner(k)) for v, k in outputs])


def assemble(
    txs: Sequence[Transaction],
    height: int,
    *,
    set_hash: bytes | Callable[[bytes], bytes] = bytes(32),
    coinbase_tx: Transaction | None = None,
    order: bool = True,
    with_coinbase: bool = True,
) -> bytes:
    """An encoded block at ``height``: a coinbase (``coinbase_tx``, default :func:`coinbase`;
    none if not ``with_coinbase``), then ``txs`` (sorted by txid when ``order``), with the
    merkle root of their txids. ``set_hash`` is the header's UTXO set hash, or a function of the
    block encoded with a zero hash that returns it (see :func:`set_hash_after`).
    """
    body = sorted(txs, key=lambda t: t.txid) if order else list(txs)
    ordered = [coinbase_tx or coinbase(height), *body] if with_coinbase else body

    def encode(utxo_set_hash: bytes) -> bytes:
        header = BlockHeader(
            version=1,
            height=height,
            prev_hash=bytes(32),
            merkle_root=crypto.merkle_root([t.txid for t in ordered]),
            utxo_set_hash=utxo_set_hash,
            timestamp=1_763_683_200 + height,
            proposer=bytes(32),
            vrf_proof=bytes(80),
            vrf_output=bytes(64),
            round=0,
        )
        return Block(header, tuple(ordered)).encode()

    if callable(set_hash):
        return encode(set_hash(encode(bytes(32))))
    return encode(set_hash)


def set_hash_after(utxos: UtxoSet, rules: LedgerRules) -> Callable[[bytes], bytes]:
    """For :func:`assemble`: the set hash of ``utxos`` after the block (applied without the hash
    check, then rolled back), or 32 zero bytes if the block is invalid (for rejection tests)."""

    def compute(draft: bytes) -> bytes:
        try:
            applied = utxos.apply_block(draft, rules, check_utxo_hash=False)
        except ValidationError:
            return bytes(32)
        after = utxos.set_hash()
        utxos.rollback(applied.undo)
        return after

    return compute
