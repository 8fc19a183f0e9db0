"""The operator's database tools behind ``timecoin db backup|rollback|reindex`` and
``timecoind --reindex`` (DESIGN §9, §10; docs/operator.md "Backup and restore", "Rolling back
and reindexing").

* :func:`backup`: an online, consistent copy of ``<datadir>/chain`` taken beside a running node:
  a read-only LMDB environment registers as a reader, so its one read transaction sees the last
  committed block and nothing later, and ``mdb_env_copy2`` with ``MDB_CP_COMPACT``
  (py-lmdb ``Environment.copy(path, compact=True)``) writes that snapshot, free pages left out.
  The writer never waits on it. The copy is then opened and checked like ``db check`` does.
* :func:`rollback`: the node stopped, the chain rolled back to a height through
  ``ChainState.rollback_to``, the undo path consensus uses for a reorganisation, within
  ``reorg_max_depth``; the commit certificates of the heights removed are dropped with them.
* :func:`reindex`: the UTXO set, the masternode registry and the transaction index rebuilt from
  the stored blocks: every block is validated again from genesis (``ChainState.connect_block``:
  the native ledger rules, the reward rule, the registry rules) and its stored commit
  certificate verified against the set of its height, into a new store beside the old one; the
  consensus records (signer state, accept votes, certificates, vote batches), the unarchived
  final transactions and the peer records are carried over unchanged; then the new store takes
  the old one's place. A block that fails ends the rebuilt chain below it (the node fetches the
  rest from its peers), and the report says which and why.

Each function raises :class:`DbToolError` with a message naming what to do; none of them runs
inside a node.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import lmdb

from timecoin.config import NodeConfig
from timecoin.ledger.genesis import Genesis, GenesisConfig, GenesisError, build_genesis
from timecoin.params import NetworkParams
from timecoin.store.chainstore import DATA_FILE, DATABASES, ChainStore, StoreError, Tip
from timecoin.store.integrity import CheckReport, check_store

log = logging.getLogger(__name__)

__all__ = [
    "REINDEX_DIR",
    "REPLACED_DIR",
    "BackupReport",
    "DbToolError",
    "ReindexReport",
    "backup",
    "load_genesis",
    "recover_interrupted",
    "reindex",
    "rollback",
]

CHAIN_DIR = "chain"
"""The chain store's directory in a data directory (``timecoin.node.CHAIN_DIR``)."""
GENESIS_COPY = "genesis.json"
"""The genesis file a node keeps in its data directory (``timecoin.node.GENESIS_COPY``)."""
REINDEX_DIR = "chain.reindex"
"""Where :func:`reindex` builds the new store; removed if a reindex was interrupted."""
REPLACED_DIR = "chain.pre-reindex"
"""Where the old store waits while the new one is moved in; restored if that was interrupted."""
CARRIED_DATABASES = (b"consensus", b"finalized", b"peers")
"""Databases :func:`reindex` copies unchanged: consensus records (signer safety, DESIGN §7),
final transactions not yet in a block, the address book and bans."""
COPY_BATCH = 10_000
"""Records per store transaction when :func:`reindex` carries databases over."""

Progress = Callable[[str, int, int], None]
"""``(phase, done, total)``, as :data:`timecoin.store.integrity.Progress`."""


class DbToolError(Exception):
    """The tool cannot do what was asked; the message says why and what to do."""


def _quiet(phase: str, done: int, total: int) -> None:
    return None


def load_genesis(config: NodeConfig) -> Genesis:
    """The genesis of the node's data directory: ``--genesis`` if given, else the copy the node
    keeps (``<datadir>/genesis.json``). :class:`DbToolError` if there is none or it is not the
    configured network's."""
    copy = config.datadir / GENESIS_COPY
    path = config.genesis or copy
    try:
        genesis_config = GenesisConfig.from_json(path.read_bytes())
    except OSError as e:
        raise DbToolError(
            f"cannot read the genesis file {path} ({e.strerror}); give --genesis FILE"
        ) from None
    except GenesisError as e:
        raise DbToolError(f"genesis file {path}: {e}") from None
    if genesis_config.params.network != config.params.network:
        raise DbToolError(
            f"genesis file {path} defines a {genesis_config.params.name} chain, not {config.params.name}"
        )
    return build_genesis(genesis_config)


# -- backup ----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BackupReport:
    """A backup taken: its directory, the chain store's tip in it, its data file's size (bytes)
    and the check of the copy."""

    dest: Path
    tip: Tip | None
    size: int
    check: CheckReport


def backup(datadir: Path, dest: Path, params: NetworkParams, progress: Progress = _quiet) -> BackupReport:
    """Copies ``<datadir>/chain`` (consistent, compacted) to ``<dest>/chain`` and the genesis
    copy to ``<dest>/genesis.json``, while a node may run on ``datadir``; then checks the copy
    (:func:`timecoin.store.integrity.check_store`, certificates included). ``dest`` must not exist
    or be an empty directory. :class:`DbToolError` if there is no store, ``dest`` is not empty, or
    LMDB fails; the check's findings are in the report (``check.damage``), not raised."""
    source = datadir / CHAIN_DIR
    if not (source / DATA_FILE).exists():
        raise DbToolError(f"no chain store at {source} (no {DATA_FILE}); is --datadir (or --network) right?")
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise DbToolError(f"{dest} exists and is not an empty directory; name a new one")
    target = dest / CHAIN_DIR
    target.mkdir(parents=True, mode=0o700)
    try:
        # A reader of the live environment: lock=True registers it in lock.mdb, so the writer
        # keeps the pages of its snapshot until the copy ends.
        env = lmdb.open(str(source), readonly=True, lock=True, max_dbs=len(DATABASES), readahead=False)
    except lmdb.Error as e:
        raise DbToolError(f"cannot open {source} to copy it: {e}") from None
    try:
        progress("copy", 0, 1)
        env.copy(str(target), compact=True)
        progress("copy", 1, 1)
    except lmdb.Error as e:
        raise DbToolError(f"copying {source} to {target} failed: {e}") from None
    finally:
        env.close()
    genesis = datadir / GENESIS_COPY
    if genesis.exists():
        shutil.copy2(genesis, dest / GENESIS_COPY)
    try:
        store = ChainStore.open(target, readonly=True)
    except StoreError as e:
        raise DbToolError(f"the copy in {target} does not open: {e}") from None
    try:
        report = check_store(store, params, progress)
    finally:
        store.close()
    return BackupReport(dest, report.tip, (target / DATA_FILE).stat().st_size, report)


# -- rollback --------------------------------------------------------------------------------------


def rollback(config: NodeConfig, height: int) -> tuple[Tip, Tip]:
    """Rolls the stopped node's chain back to ``height`` through ``ChainState.rollback_to``
    (the registry and UTXO set restored from the undo records, one store transaction per
    block), then drops the commit certificates of the heights removed. Returns (tip before, tip
    after). The caller holds the data directory's lock. :class:`DbToolError` beyond
    ``reorg_max_depth`` or below genesis, or if the store cannot be opened or rolled back."""
    from timecoin.consensus.store import CONSENSUS_DB, commit_key
    from timecoin.ledger.chain import ChainState

    genesis = load_genesis(config)
    try:
        chain = ChainState.open(config.datadir / CHAIN_DIR, config.params, genesis)
    except StoreError as e:
        raise DbToolError(str(e)) from None
    try:
        before = chain.tip
        if height > before.height:
            raise DbToolError(f"height {height} is above the tip {before.height}: nothing to roll back")
        try:
            chain.rollback_to(height)
        except ValueError as e:
            raise DbToolError(
                f"{e}; a deeper rollback is a resync (remove {config.datadir / CHAIN_DIR} and start "
                "the node, or `timecoin db reindex`)"
            ) from None
        except StoreError as e:
            raise DbToolError(f"rollback stopped at height {chain.tip.height}: {e}") from None
        chain.store.write([(CONSENSUS_DB, commit_key(h), None) for h in range(height + 1, before.height + 1)])
        return before, chain.tip
    finally:
        chain.close()


# -- reindex ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ReindexReport:
    """A rebuilt store: the old tip, the new tip, the blocks connected, the certificates
    verified, records carried over, and why it stopped below the old tip (``None`` if it
    reached it)."""

    old_tip: Tip
    tip: Tip
    blocks: int
    certificates: int
    carried: int
    stopped: str | None


def recover_interrupted(datadir: Path) -> None:
    """Undoes what an interrupted :func:`reindex` left: a half-built new store is removed, and
    an old store moved aside without its replacement in place is moved back."""
    chain, replaced, building = datadir / CHAIN_DIR, datadir / REPLACED_DIR, datadir / REINDEX_DIR
    if replaced.exists():
        if chain.exists():
            shutil.rmtree(replaced)  # the new store is in place: the old one is done with
        else:
            replaced.rename(chain)
            log.warning("an interrupted reindex left the old store aside; restored %s", chain)
    if building.exists():
        shutil.rmtree(building)


def reindex(config: NodeConfig, progress: Progress = _quiet) -> ReindexReport:
    """Rebuilds the chain store of the stopped node in ``config.datadir`` from its own blocks
    (module docstring). The caller holds the data directory's lock. :class:`DbToolError` if the
    store or genesis cannot be read; a block that fails validation or its certificate ends the
    new chain below it (``stopped``)."""
    from timecoin.consensus.certificates import CertificateError, verify_commit_certificate
    from timecoin.consensus.store import CONSENSUS_DB, commit_key
    from timecoin.ledger.chain import ChainState, ValidationError
    from timecoin.store.txindex import TxIndex

    datadir, params = config.datadir, config.params
    recover_interrupted(datadir)
    genesis = load_genesis(config)
    source_path, building = datadir / CHAIN_DIR, datadir / REINDEX_DIR
    try:
        source = ChainStore.open(source_path, readonly=True)
    except StoreError as e:
        raise DbToolError(f"{e}; with no readable store, resync: start the node without it") from None
    try:
        old_tip = source.tip()
        if old_tip is None or source.genesis_hash() != genesis.hash or source.network() != params.network:
            raise DbToolError(
                f"the store at {source_path} is not a {params.name} chain of genesis {genesis.hash.hex()}"
            )
        chain = ChainState.open(building, params, genesis)
        TxIndex(chain.store).catch_up(params.reorg_max_depth)  # the genesis block's transactions
        stopped: str | None = None
        certificates = 0
        try:
            for height in range(1, old_tip.height + 1):
                progress("blocks", height - 1, old_tip.height)
                block_hash = source.block_hash(height)
                raw = source.block(block_hash) if block_hash is not None else None
                if block_hash is None or raw is None:
                    what = source.block_damage(block_hash) if block_hash is not None else None
                    stopped = f"block {height} is {'damaged: ' + what if what else 'missing'}"
                    break
                certificate = source.get(CONSENSUS_DB, commit_key(height))
                try:
                    if certificate is not None:
                        verify_commit_certificate(
                            certificate, block_hash, height, chain.leader_set(height), genesis.hash
                        )
                    prepared = chain.prepare_block(raw)
                    index = TxIndex.block_writes(height, block_hash, raw, prepared.ledger.txids)
                    chain.connect_block(raw, index)
                except (ValidationError, CertificateError, ValueError) as e:
                    stopped = f"block {height} ({block_hash.hex()}) is invalid: {e}"
                    break
                if certificate is not None:
                    certificates += 1
            progress("blocks", chain.tip.height, old_tip.height)
            dropped = {commit_key(h) for h in range(chain.tip.height + 1, old_tip.height + 1)}
            carried = _carry_over(source, chain.store, dropped, progress)
            new_tip = chain.tip
        finally:
            chain.close()
    finally:
        source.close()
    replaced = datadir / REPLACED_DIR
    source_path.rename(replaced)
    building.rename(source_path)
    shutil.rmtree(replaced)
    return ReindexReport(old_tip, new_tip, new_tip.height, certificates, carried, stopped)


def _carry_over(source: ChainStore, target: ChainStore, dropped: set[bytes], progress: Progress) -> int:
    """Copies :data:`CARRIED_DATABASES` from ``source`` to ``target`` in batches, less the
    consensus keys ``dropped`` (the commit certificates of blocks the new chain does not hold);
    the count copied."""
    done = 0
    for db in CARRIED_DATABASES:
        try:
            items = [
                (bytes(k), bytes(v)) for k, v in source.items(db) if db != b"consensus" or k not in dropped
            ]
        except KeyError:  # a read-only store lacks a database it never wrote
            continue
        for start in range(0, len(items), COPY_BATCH):
            target.write([(db, k, v) for k, v in items[start : start + COPY_BATCH]])
            done += min(COPY_BATCH, len(items) - start)
            progress("records", done, done)
    return done
