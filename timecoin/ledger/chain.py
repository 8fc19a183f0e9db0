"""Chain state: the native UTXO set and the LMDB store kept in step, block by block (DESIGN §4, §9).

:class:`ChainState` validates a block without changing anything (:meth:`ChainState.prepare_block`:
native validation, the reward check, the registry; the result kept until the tip moves),
connects it (the kept coin changes applied, one store transaction) and disconnects it again
(native rollback from the undo record, one store transaction). The stored coins follow behind
the blocks (:mod:`timecoin.store.coins`: :attr:`ChainState.coins` writes them; a node runs its
task). On open it recovers to the last committed block, replays the coins of the blocks after
the stored ones, and proves the UTXO set hashes to what the tip header commits. One task owns a
ChainState; it never blocks on the network.

It also keeps the masternode registry (:mod:`timecoin.masternode.registry`) at the same block:
a block's masternode transactions are validated and applied with it, the registry's writes
(undo record included) commit in the block's store transaction, and a rollback restores them
from that undo record. The masternode set, weights, reward split and leader order of the next
height all come from the registry, never from gossip (DESIGN §5, §12 invariant 7).

Not here: proposer/VRF eligibility and timestamps (``timecoin.consensus.blocks``). Reputation
from commit certificates is not fed to the registry (every masternode's reputation is 1.0): a
commit certificate is stored beside its block, not in it, and two honest nodes may hold
different precommit sets for the same block, so it cannot decide consensus state until a block
carries its parent's certificate.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import timecoin_native

from timecoin.core.types import HEADER_LEN, Block, BlockHeader, Transaction
from timecoin.ledger.genesis import Genesis
from timecoin.ledger.rewards import coinbase_outputs
from timecoin.masternode import leader
from timecoin.masternode.registry import (
    MASTERNODE_DB,
    STATE_PREFIXES,
    Registry,
    RegistryUpdate,
    undo_key,
)
from timecoin.params import NetworkParams
from timecoin.store.chainstore import ChainStore, ExtraWrites, StoreError, Tip
from timecoin.store.coins import CoinsFlusher, load_utxo_set

log = logging.getLogger(__name__)

ValidationError = timecoin_native.ValidationError

PREPARED_BLOCKS = 4
"""Blocks validated on the tip and kept for their commit (:meth:`ChainState.prepare_block`): the
proposals of the last few rounds of one height. Each holds the block's coin changes (about
100 bytes per output and spent coin), so the bound is what a leader can make this node hold."""


@dataclass(frozen=True, slots=True)
class PreparedBlock:
    """A block validated on the tip and not applied yet (:meth:`ChainState.prepare_block`)."""

    raw: bytes
    header: BlockHeader
    ledger: timecoin_native.PreparedBlock
    """The native validation: coin changes, set hash after, fees, txids."""
    registry: RegistryUpdate
    """What the block does to the masternode registry."""


def ledger_rules(params: NetworkParams, chain_id: bytes) -> timecoin_native.LedgerRules:
    """The native rule set of a network, from its one parameter table."""
    return timecoin_native.LedgerRules(
        chain_id,
        int(params.network),
        params.dust_limit,
        params.min_fee_base,
        params.min_fee_per_mille,
        params.max_tx_size,
        params.max_block_size,
    )


class ChainState:
    """The UTXO set in memory and the chain on disk, always at the same block."""

    def __init__(
        self,
        params: NetworkParams,
        genesis: Genesis,
        store: ChainStore,
        utxos: timecoin_native.UtxoSet,
        tip_header: BlockHeader,
        registry: Registry,
    ) -> None:
        self.params = params
        self.genesis = genesis
        self.store = store
        self.utxos = utxos
        self.rules = ledger_rules(params, genesis.hash)
        self._tip_header = tip_header
        self.tip_coinbase_outputs: list[tuple[int, bytes]] | None = None
        """(value sat, pubkey_hash) of the tip block's coinbase outputs, kept from its connect so
        status reads (``masternodelist``: the last height each payout was paid) need not read and
        hash the whole block from the store; ``None`` after a start or a rollback."""
        self.deep_rollbacks = 0
        """Rollbacks deeper than ``reorg_alert_depth`` so far (a metric)."""
        self.registry = registry
        """The masternode registry after the tip block: the set of height tip + 1."""
        self._prepared: OrderedDict[bytes, PreparedBlock] = OrderedDict()
        """Blocks prepared on the tip, by block hash (at most :data:`PREPARED_BLOCKS`; emptied
        whenever the tip moves). Changed under :attr:`_prepared_lock`: a consensus check or build
        may prepare a block on a worker thread (``timecoin.consensus.runner.run_offloaded``)."""
        self._prepared_lock = threading.Lock()
        self.coins = CoinsFlusher(store, self._take_dirty_coins)
        """Writes the set's changes to the store behind the blocks; a node runs its task."""

    @classmethod
    def open(cls, path: Path, params: NetworkParams, genesis: Genesis) -> ChainState:
        """Opens the chain in directory ``path``, creating it from ``genesis`` if empty.

        Raises :class:`StoreError` if the store belongs to another network or genesis, or if the
        UTXO set it holds does not hash to what its tip block commits.
        """
        if genesis.config.params.network != params.network:
            raise StoreError(f"genesis is for {genesis.config.params.name}, node runs {params.name}")
        store = ChainStore.open(path, unsafe_nosync=params.lmdb_unsafe_nosync)
        try:
            if store.tip() is None:
                store.write_genesis(int(params.network), genesis.hash, genesis.encoded, list(genesis.coins))
            if store.genesis_hash() != genesis.hash or store.network() != params.network:
                raise StoreError(
                    f"store at {path} belongs to network {store.network()} with genesis "
                    f"{(store.genesis_hash() or b'').hex()}, not {params.name} {genesis.hash.hex()}"
                )
            tip = store.tip()
            assert tip is not None
            raw = store.block(tip.block_hash)
            if raw is None:
                raise StoreError(f"tip block {tip.block_hash.hex()} is missing from the store")
            header = BlockHeader.decode(raw[:HEADER_LEN])
            utxos, replayed = load_utxo_set(store, tip)
            if utxos.set_hash() != header.utxo_set_hash:
                raise StoreError(
                    f"UTXO set in {path} hashes to {utxos.set_hash().hex()}, but tip block "
                    f"{tip.height} commits {header.utxo_set_hash.hex()}: the store is corrupt"
                )
            registry = _open_registry(store, params, genesis, tip, utxos)
        except BaseException:
            store.close()
            raise
        log.info(
            "chain open at height %d (%s), %d UTXOs, %d masternodes",
            tip.height,
            tip.block_hash.hex(),
            len(utxos),
            len(registry),
        )
        chain = cls(params, genesis, store, utxos, header, registry)
        if replayed:
            chain.coins.note_block(replayed)
        return chain

    def close(self) -> None:
        """Writes the coins not stored yet, then closes the store (a failed write is logged: the
        next start replays them)."""
        try:
            self.coins.flush()
        except StoreError:
            log.exception("writing the coins at close failed; the next start replays their blocks")
        self.store.close()

    def _take_dirty_coins(self) -> tuple[timecoin_native.DirtyCoins, Tip]:
        return self.utxos.take_dirty(), self.tip

    @property
    def tip(self) -> Tip:
        """The last committed block."""
        return Tip(self._tip_header.height, self._tip_header.hash)

    @property
    def tip_header(self) -> BlockHeader:
        return self._tip_header

    def masternode_weights(self, height: int) -> Sequence[tuple[bytes, int]]:
        """(payout pubkey_hash, weight) of the masternodes paid at ``height`` (tip + 1; else
        ``ValueError``): the registry's set and fixed-point weights (docs/masternodes.md)."""
        return self.registry.reward_weights(height)

    def leader_set(self, height: int) -> tuple[list[bytes], list[int]]:
        """(public keys, weights) of the masternode set of ``height`` (tip + 1), by key."""
        return self.registry.leader_set(height)

    def leader_order(self, height: int, count: int | None = None) -> list[bytes]:
        """The public keys of the leaders of ``height`` (tip + 1; else ``ValueError``), round 0's
        first (the first ``count`` of them if given), drawn with the registry's weights from the
        tip's VRF output (docs/leader-selection.md). ``ValueError`` for an empty set."""
        keys, weights = self.leader_set(height)
        seed = self._tip_header.vrf_output
        return [keys[i] for i in leader.leader_order(seed, height, keys, weights, count)]

    def expected_coinbase(self, height: int, fees: int) -> list[tuple[int, bytes]]:
        """The coinbase outputs (value, pubkey_hash) a block at ``height`` with ``fees`` must pay."""
        return coinbase_outputs(
            self.params, fees, self.masternode_weights(height), self.genesis.config.treasury
        )

    def check_masternode_transaction(self, raw: bytes) -> None:
        """Checks an encoded masternode transaction against the registry and the UTXO set at the
        tip, for the mempool. Raises ``ValidationError`` (registry codes) or ``ValueError``."""
        self.registry.check_transaction(Transaction.decode(raw), self.utxos.get)

    def prepare_block(self, raw: bytes) -> PreparedBlock:
        """Validates the encoded block ``raw`` as the next block on the tip without changing
        anything: linkage, the native ledger rules (``UtxoSet.prepare_block``), the reward rule
        and the masternode registry. The result is kept (the last :data:`PREPARED_BLOCKS`, until
        the tip moves), so :meth:`connect_block` of the same bytes only applies it: a proposal
        is validated once, not again when it commits. It only reads the chain, so it may run on
        another thread than the one that changes it; a result prepared while the tip moved is
        never used (its UTXO set generation or its linkage no longer matches).

        Raises ``ValidationError`` (``.code``: ``bad-encoding``, ``bad-prevblk``,
        ``bad-height``, ``bad-coinbase-amount``, a native rule's code or a masternode registry
        code, ``timecoin.masternode.registry.REJECT_CODES``).
        """
        header = _header(raw)
        tip = self.tip
        kept = self._prepared.get(header.hash)
        if (
            kept is not None
            and kept.raw == raw
            and kept.ledger.generation == self.utxos.generation
            and header.prev_hash == tip.block_hash
        ):
            return kept
        _check_linkage(header, tip)
        return self._keep(raw, header, self.utxos.prepare_block(raw, self.rules))

    def prepare_built(self, raw: bytes, draft: timecoin_native.PreparedBlock) -> PreparedBlock:
        """:meth:`prepare_block` of a block this node assembled (``timecoin.ledger.blockbuilder``)
        from ``draft``, the native prepare of its transactions under a draft header without the
        UTXO set hash, instead of validating them again: the leader's own block then commits
        without a second native prepare. Raises ``ValidationError`` as :meth:`prepare_block`
        does, ``ValueError`` if ``raw``'s header is not the draft's with the set hash filled in
        (``PreparedBlock.with_header``)."""
        header = _header(raw)
        _check_linkage(header, self.tip)
        return self._keep(raw, header, draft.with_header(raw[:HEADER_LEN]))

    def _keep(self, raw: bytes, header: BlockHeader, ledger: timecoin_native.PreparedBlock) -> PreparedBlock:
        """The rules of :meth:`prepare_block` after the native ones (reward, masternode registry)
        on the native result ``ledger``; the result kept for :meth:`connect_block`."""
        expected = self.expected_coinbase(header.height, ledger.fees)
        if list(ledger.coinbase_outputs) != expected:
            raise ValidationError(
                "bad-coinbase-amount",
                f"coinbase pays {list(ledger.coinbase_outputs)}, the reward rule says {expected}",
                0,
            )
        update = self.registry.connect(
            header.height,
            ledger.block_hash,
            [(i, Transaction.decode(tx)) for i, tx in ledger.masternode_transactions],
            ledger.coin_after,
        )
        prepared = PreparedBlock(raw, header, ledger, update)
        with self._prepared_lock:
            self._prepared[header.hash] = prepared
            while len(self._prepared) > PREPARED_BLOCKS:
                self._prepared.popitem(last=False)
        return prepared

    def connect_block(self, raw: bytes, extra: ExtraWrites = ()) -> timecoin_native.AppliedBlock:
        """Validates the encoded block ``raw`` on the tip (:meth:`prepare_block`, or what it
        kept for these bytes), applies it and commits it, with the ``extra`` subsystem writes
        (e.g. its commit certificate, the finalized transactions it archives, the transaction
        index) in the same store transaction.

        Raises ``ValidationError`` as :meth:`prepare_block` does and leaves the chain unchanged:
        UTXO set, registry and store.
        """
        prepared = self.prepare_block(raw)
        applied = self.utxos.commit_prepared(prepared.ledger)
        try:
            self.store.commit_block(
                prepared.header.height,
                applied.block_hash,
                raw,
                applied.undo,
                [*prepared.registry.store_writes(), *extra],
            )
        except BaseException:
            # Nothing was written; undo in memory. The outpoints the block and its rollback
            # touched stay marked for the next coins flush, which writes what the store lacks.
            self.utxos.rollback(applied.undo)
            raise
        self.registry.apply(prepared.registry)
        self._set_tip(prepared.header)
        self.tip_coinbase_outputs = list(applied.coinbase_outputs)
        self.coins.note_block()
        return applied

    def _set_tip(self, header: BlockHeader) -> None:
        self._tip_header = header
        self.tip_coinbase_outputs = None
        with self._prepared_lock:
            self._prepared.clear()

    def disconnect_tip(self) -> None:
        """Rolls the tip block back (DESIGN §4, §9). Raises :class:`StoreError` at genesis."""
        tip = self.tip
        if tip.height == 0:
            raise StoreError("cannot roll back the genesis block")
        undo = self.store.undo(tip.block_hash)
        prev_raw = self.store.block(self._tip_header.prev_hash)
        if undo is None or prev_raw is None:
            raise StoreError(f"undo data or parent of block {tip.height} is missing")
        self.coins.flush()
        try:
            update = self.registry.disconnect(
                self.store.get(MASTERNODE_DB, undo_key(tip.height)), self._tip_header.prev_hash
            )
        except ValueError as e:
            raise StoreError(f"cannot roll back the masternode registry: {e}") from None
        self.utxos.rollback(undo)
        delta = self.utxos.take_delta()
        self.store.commit_rollback(tip, self._tip_header.prev_hash, delta, update.store_writes())
        self.registry.apply(update)
        self._set_tip(BlockHeader.decode(prev_raw[:HEADER_LEN]))

    def rollback_to(self, height: int) -> None:
        """Rolls back to ``height``: at most ``reorg_max_depth`` blocks (else ``ValueError``);
        deeper than ``reorg_alert_depth`` is logged as an alert and counted."""
        depth = self.tip.height - height
        if depth < 0 or height < 0:
            raise ValueError(f"cannot roll back to height {height} from {self.tip.height}")
        if depth > self.params.reorg_max_depth:
            raise ValueError(f"rollback of {depth} blocks exceeds the limit of {self.params.reorg_max_depth}")
        if depth > self.params.reorg_alert_depth:
            self.deep_rollbacks += 1
            log.warning(
                "ALERT: rolling back %d blocks (alert depth %d)", depth, self.params.reorg_alert_depth
            )
        for _ in range(depth):
            self.disconnect_tip()

    def block(self, height: int) -> Block | None:
        """The committed block at ``height``."""
        block_hash = self.store.block_hash(height)
        raw = self.store.block(block_hash) if block_hash is not None else None
        return Block.decode(raw) if raw is not None else None


def _open_registry(
    store: ChainStore, params: NetworkParams, genesis: Genesis, tip: Tip, utxos: timecoin_native.UtxoSet
) -> Registry:
    """The registry stored beside the chain, checked against the tip and the UTXO set. A store
    still at genesis without one (new, or crashed between the genesis write and this) gets the
    genesis registry. Raises :class:`StoreError` on any inconsistency."""
    items = [item for prefix in STATE_PREFIXES for item in store.items(MASTERNODE_DB, prefix)]
    if not items:
        if tip.height != 0:
            raise StoreError(f"the store is at height {tip.height} but holds no masternode registry")
        registry = Registry.from_genesis(params, genesis)
        store.write([(MASTERNODE_DB, k, v) for k, v in registry.snapshot()])
        return registry
    try:
        registry = Registry.load(params, items)
    except ValueError as e:
        raise StoreError(f"the stored masternode registry is corrupt: {e}") from None
    if (registry.height, registry.block_hash) != (tip.height, tip.block_hash):
        raise StoreError(
            f"the masternode registry is at block {registry.height} ({registry.block_hash.hex()}), "
            f"the chain at {tip.height} ({tip.block_hash.hex()})"
        )
    try:
        registry.verify(utxos.get)
    except ValueError as e:
        raise StoreError(f"the stored masternode registry disagrees with the UTXO set: {e}") from None
    return registry


def _header(raw: bytes) -> BlockHeader:
    """The header of the encoded block ``raw``; ``ValidationError`` (``bad-encoding``) if it is
    shorter than one."""
    if len(raw) < HEADER_LEN:
        raise ValidationError("bad-encoding", "block shorter than its header", None)
    return BlockHeader.decode(raw[:HEADER_LEN])


def _check_linkage(header: BlockHeader, tip: Tip) -> None:
    """``header`` must build on ``tip``: ``ValidationError`` (``bad-prevblk``, ``bad-height``)."""
    if header.prev_hash != tip.block_hash:
        raise ValidationError(
            "bad-prevblk",
            f"block builds on {header.prev_hash.hex()}, tip is {tip.block_hash.hex()}",
            None,
        )
    if header.height != tip.height + 1:
        raise ValidationError("bad-height", f"block height {header.height}, expected {tip.height + 1}", None)
