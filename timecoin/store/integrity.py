"""Integrity of the stored chain (DESIGN §9, §12 invariant 11, §13 "Storage integrity").

* :func:`block_damage` is the check every block read goes through (``ChainStore.block``): the
  stored bytes must be the block their key names, i.e. the header hashes to the key and the
  transactions hash to the header's merkle root (docs/encoding.md: "block hash", "merkle root"),
  and, since txids leave the witnesses out, the whole encoding must hash to the
  :func:`block_digest` stored with it. Four native calls per block (header hash, strict split
  with txids, merkle root, BLAKE3 of the bytes), no Python loop over transactions.
* :func:`check_store` is ``timecoin db check``: every block of the height index checked as above
  and linked to its parent, the tip and genesis records, the undo records, the UTXO set hashed
  against the tip header's commitment and, given the network's parameters, every stored commit
  certificate verified against the masternode set of its height (DESIGN §7;
  :func:`timecoin.consensus.certificates.verify_commit_certificate`). The sets come from the
  stored registry walked back from the tip through its undo records
  (``Registry.disconnect``, in memory: the same records a rollback applies), so no block is
  re-executed.

This module reads and reports; it never writes the store and never judges validity (the ledger
rules were applied when each block was connected; an intact block is that block).
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import timecoin_native

from timecoin.core.types import HEADER_LEN, BlockHeader

if TYPE_CHECKING:
    from timecoin.params import NetworkParams
    from timecoin.store.chainstore import ChainStore, Tip

Progress = Callable[[str, int, int], None]
"""Called as ``(phase, done, total)`` while :func:`check_store` works: phase ``"blocks"`` (blocks
checked of those up to the tip), ``"utxos"`` (0 or 1 of 1) and ``"certificates"`` (heights
walked of the tip's)."""

__all__ = ["CheckReport", "Damage", "block_damage", "block_digest", "check_store"]

_HEADER_MERKLE_ROOT = 3
"""Index of ``merkle_root`` in the header fields ``split_block`` returns (docs/encoding.md)."""
_TX_COUNT_LEN = 4
"""The u32 transaction count after the header (docs/encoding.md: "Block")."""


def block_digest(raw: bytes) -> bytes:
    """BLAKE3-256 (32 bytes) of a block's whole encoding, witnesses included: stored beside each
    block so a damaged witness (outside every txid) is caught on read, not by a peer that then
    bans us for serving an invalid signature."""
    return timecoin_native.blake3(raw)


def block_damage(block_hash: bytes, raw: bytes, digest: bytes | None = None) -> str | None:
    """Why ``raw`` is not the encoded block ``block_hash`` (32 bytes), or ``None`` if it is: its
    296-byte header must decode and hash to ``block_hash``, the rest must decode strictly as the
    block's transactions, their txids' merkle root must be the header's, and, if ``digest`` (the
    stored :func:`block_digest`) is given, the whole encoding must hash to it."""
    if len(raw) < HEADER_LEN + _TX_COUNT_LEN:
        return f"{len(raw)} bytes, shorter than a header and its transaction count"
    try:
        header_hash = timecoin_native.block_hash(raw[:HEADER_LEN])
    except ValueError as e:
        return f"its header does not decode ({e})"
    if header_hash != block_hash:
        return f"its header hashes to {header_hash.hex()}"
    try:
        header, _, txids = timecoin_native.split_block(raw)
    except ValueError as e:
        return f"its transactions do not decode ({e})"
    root = timecoin_native.merkle_root(txids)
    if root != header[_HEADER_MERKLE_ROOT]:
        return f"its transactions hash to merkle root {root.hex()}, not the header's"
    if digest is not None and block_digest(raw) != digest:
        return "its bytes (a witness, say) do not hash to the digest stored with them"
    return None


@dataclass(frozen=True, slots=True)
class Damage:
    """One thing wrong in the store: the height it concerns (``None``: the store as a whole) and
    what is wrong, in words."""

    height: int | None
    what: str


@dataclass(slots=True)
class CheckReport:
    """What :func:`check_store` found. ``damage`` is empty for an intact store."""

    tip: Tip | None = None
    blocks: int = 0
    """Blocks checked (hash, merkle root, digest, linkage)."""
    undigested: int = 0
    """Intact blocks stored before digests were kept: their witnesses could not be checked."""
    utxos: int | None = None
    """Coins whose set hash matched the tip header's; ``None`` if that check did not run."""
    certificates: int | None = None
    """Commit certificates verified; ``None`` if that check did not run."""
    uncertified: int = 0
    """Blocks above genesis stored without a commit certificate (``submitblock``, or connected
    before certificates were kept): not damage, but such blocks cannot be served to peers."""
    notes: list[str] = field(default_factory=list)
    """Checks skipped, and why (not damage)."""
    damage: list[Damage] = field(default_factory=list)

    @property
    def first_damaged_height(self) -> int | None:
        """The lowest height with damage, if any damage concerns a height."""
        heights = [d.height for d in self.damage if d.height is not None]
        return min(heights) if heights else None


def check_store(
    store: ChainStore, params: NetworkParams | None = None, progress: Progress | None = None
) -> CheckReport:
    """Checks everything the store can prove about itself (module docstring); the commit
    certificates only if ``params`` (the store's network) are given. ``progress`` is told how
    far it got (:data:`Progress`). Safe beside a running node on a store opened ``readonly``:
    blocks it commits meanwhile are not checked, and the UTXO check is skipped (a note) if the
    tip moves under it. Raises ``StoreDamaged`` when LMDB itself fails."""
    report = CheckReport()
    tell: Progress = progress if progress is not None else (lambda phase, done, total: None)
    tip = report.tip = store.tip()
    if tip is None:
        report.damage.append(Damage(None, "the store has no tip record (no chain)"))
        return report
    genesis = store.genesis_hash()
    prev_hash: bytes | None = None
    tip_header: BlockHeader | None = None
    parents: dict[int, bytes] = {}
    """height → the parent hash in the header of the intact block there (the certificate walk)."""
    expected = 0
    for key, block_hash in store.items(b"index"):
        if len(key) != 8:
            report.damage.append(Damage(None, f"index key {key.hex()} is not a height"))
            continue
        (height,) = struct.unpack(">Q", key)
        if height > tip.height:
            break  # committed after the tip was read (a running node): not checked
        for missing in range(expected, height):
            report.damage.append(Damage(missing, "no index entry for this height"))
            prev_hash = None
        expected = height + 1
        header = _check_height(store, report, height, block_hash, prev_hash, genesis)
        prev_hash = block_hash if header is not None else None
        if header is not None:
            parents[height] = header.prev_hash
        tell("blocks", height + 1, tip.height + 1)
        if height == tip.height:
            tip_header = header
            if block_hash != tip.block_hash:
                report.damage.append(
                    Damage(
                        height, f"the tip record names {tip.block_hash.hex()}, the index {block_hash.hex()}"
                    )
                )
    for missing in range(expected, tip.height + 1):
        report.damage.append(Damage(missing, "no index entry for this height"))
    if report.undigested:
        report.notes.append(
            f"{report.undigested} blocks were stored before block digests were kept: "
            "checked against their hashes, but their witnesses could not be"
        )
    if tip_header is not None:
        _check_utxos(store, report, tip, tip_header)
    else:
        report.notes.append("UTXO set not checked: the tip block is damaged or missing")
    tell("utxos", 1, 1)
    if params is not None:
        _check_certificates(store, report, params, tip, parents, tell)
    return report


def _check_height(
    store: ChainStore,
    report: CheckReport,
    height: int,
    block_hash: bytes,
    prev_hash: bytes | None,
    genesis: bytes | None,
) -> BlockHeader | None:
    """Checks the block the index names at ``height``; its header if the block is intact."""
    report.blocks += 1
    raw = store.block(block_hash)
    if raw is None:
        what = store.block_damage(block_hash)
        report.damage.append(
            Damage(height, f"block {block_hash.hex()} is {'damaged: ' + what if what else 'missing'}")
        )
        return None
    if store.get(b"digests", block_hash) is None:
        report.undigested += 1
    header = BlockHeader.decode(raw[:HEADER_LEN])
    if header.height != height:
        report.damage.append(Damage(height, f"block {block_hash.hex()} has header height {header.height}"))
    if height == 0:
        if block_hash != genesis:
            report.damage.append(Damage(0, f"the genesis record names {(genesis or b'').hex()}"))
    else:
        if prev_hash is not None and header.prev_hash != prev_hash:
            report.damage.append(
                Damage(
                    height,
                    f"block {block_hash.hex()} links to {header.prev_hash.hex()}, not block {height - 1}",
                )
            )
        if store.undo(block_hash) is None:
            report.damage.append(Damage(height, f"the undo record of block {block_hash.hex()} is missing"))
    return header


def _check_utxos(store: ChainStore, report: CheckReport, tip: Tip, tip_header: BlockHeader) -> None:
    # The stored coins and the blocks after them replayed, as a start loads them.
    from timecoin.store.chainstore import StoreError
    from timecoin.store.coins import load_utxo_set

    try:
        utxos, _ = load_utxo_set(store, tip)
    except StoreError as e:
        report.damage.append(Damage(tip.height, f"the stored UTXO set cannot be loaded: {e}"))
        return
    if store.tip() != tip:
        report.notes.append("UTXO set not checked: the node committed blocks during the check")
        return
    if utxos.set_hash() != tip_header.utxo_set_hash:
        report.damage.append(
            Damage(
                tip.height,
                f"the UTXO set ({len(utxos)} coins) hashes to {utxos.set_hash().hex()}, "
                f"the tip header commits {tip_header.utxo_set_hash.hex()}",
            )
        )
        return
    report.utxos = len(utxos)


def _check_certificates(
    store: ChainStore,
    report: CheckReport,
    params: NetworkParams,
    tip: Tip,
    parents: dict[int, bytes],
    tell: Progress,
) -> None:
    """Verifies the stored commit certificate of every height from the tip down to 1 against the
    masternode set of its height: the stored registry (after the tip) is rolled back in memory,
    block by block, through its undo records, so before checking height h it is the registry
    after block h − 1, whose set is that of height h. Stops (a note) where the walk cannot go on:
    a damaged block or registry record below which the sets are unknown."""
    from timecoin.consensus.certificates import CertificateError, verify_commit_certificate
    from timecoin.consensus.store import CONSENSUS_DB, commit_key
    from timecoin.masternode.registry import MASTERNODE_DB, STATE_PREFIXES, Registry, undo_key

    chain_id = store.genesis_hash()
    if chain_id is None:
        report.notes.append("commit certificates not checked: the store has no genesis record")
        return
    items = [item for prefix in STATE_PREFIXES for item in store.items(MASTERNODE_DB, prefix)]
    if not items and tip.height == 0:
        report.certificates = 0  # genesis only: its registry is written at the first open
        return
    try:
        registry = Registry.load(params, items)
    except ValueError as e:
        report.damage.append(Damage(None, f"the stored masternode registry does not load: {e}"))
        return
    if (registry.height, registry.block_hash) != (tip.height, tip.block_hash):
        report.damage.append(
            Damage(
                tip.height,
                f"the masternode registry is at block {registry.height}, the tip at {tip.height}",
            )
        )
        return
    verified = 0
    for height in range(tip.height, 0, -1):
        tell("certificates", tip.height - height, tip.height)
        prev_hash = parents.get(height)
        if prev_hash is None:
            report.notes.append(
                f"commit certificates at and below height {height} not checked: block {height} "
                "is damaged or missing, so the masternode sets below it are unknown"
            )
            break
        try:
            registry.apply(registry.disconnect(store.get(MASTERNODE_DB, undo_key(height)), prev_hash))
        except ValueError as e:
            report.damage.append(Damage(height, f"the masternode registry cannot be rolled back: {e}"))
            report.notes.append(f"commit certificates at and below height {height} not checked")
            break
        certificate = store.get(CONSENSUS_DB, commit_key(height))
        block_hash = store.block_hash(height)
        if certificate is None or block_hash is None:
            report.uncertified += 1
            continue
        try:
            verify_commit_certificate(certificate, block_hash, height, registry.leader_set(height), chain_id)
        except (CertificateError, ValueError) as e:
            report.damage.append(Damage(height, f"its commit certificate does not verify: {e}"))
            continue
        verified += 1
    tell("certificates", tip.height, tip.height)
    report.certificates = verified
    if report.uncertified:
        report.notes.append(
            f"{report.uncertified} blocks have no commit certificate stored (connected through "
            "submitblock or before certificates were kept): peers cannot sync them from this node"
        )
