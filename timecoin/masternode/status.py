"""The data behind the ``masternodelist`` and ``masternodestatus`` RPCs (DESIGN §5, §10).

Plain dicts of JSON types (str, int, bool, None, lists, dicts): bytes as hex, addresses as
bech32m, amounts in sat, weights as the registry's fixed-point integers with their parts. Chain
facts (tier, collateral, weight, registered height, last paid height, eligibility) come from the
chain state and its registry; liveness (last seen, online) from a heartbeat tracker, which never
changes a chain fact (DESIGN §12 invariant 7).

Reads only: nothing here changes the chain, the registry or the tracker.
"""

from __future__ import annotations

import struct
from typing import Any

from timecoin.core.address import encode_address
from timecoin.core.types import HEADER_LEN, OutPoint, Transaction
from timecoin.ledger.chain import ChainState
from timecoin.masternode.heartbeat import HeartbeatTracker
from timecoin.masternode.registry import MasternodeEntry
from timecoin.masternode.weights import WeightParts

__all__ = ["PAID_LOOKBACK", "last_paid_heights", "masternode_list", "masternode_status"]

PAID_LOOKBACK = 1_000
"""Blocks scanned back from the tip to find when a payout was last paid (status only). Every
block pays every masternode of its set, so the scan normally stops at the tip block, whose
coinbase the chain state keeps from its connect (``ChainState.tip_coinbase_outputs``): no block is
read from the store unless a payout was not paid by the tip, or after a start or rollback."""


def _coinbase(raw: bytes) -> Transaction:
    """The coinbase of an encoded (valid, stored) block, decoding nothing else."""
    at = HEADER_LEN + 4  # header, transaction count
    (n_inputs,) = struct.unpack_from("<I", raw, at + 5)
    at_outputs = at + 9 + 36 * n_inputs
    (n_outputs,) = struct.unpack_from("<I", raw, at_outputs)
    at_payload = at_outputs + 4 + 40 * n_outputs + 4
    (payload_len,) = struct.unpack_from("<I", raw, at_payload)
    at_witnesses = at_payload + 4 + payload_len
    (n_witnesses,) = struct.unpack_from("<I", raw, at_witnesses)
    return Transaction.decode(raw[at : at_witnesses + 4 + 96 * n_witnesses])


def _paid_at(chain: ChainState, height: int) -> list[bytes] | None:
    """The payout pubkey_hashes the coinbase at ``height`` paid (output 0, the treasury's, left
    out): the tip's from memory, any other's from the store; None if the block is missing."""
    if height == chain.tip.height and chain.tip_coinbase_outputs is not None:
        return [pubkey_hash for _, pubkey_hash in chain.tip_coinbase_outputs[1:]]
    block_hash = chain.store.block_hash(height)
    raw = chain.store.block(block_hash) if block_hash is not None else None
    return None if raw is None else [out.pubkey_hash for out in _coinbase(raw).outputs[1:]]


def last_paid_heights(
    chain: ChainState, payouts: set[bytes], lookback: int = PAID_LOOKBACK
) -> dict[bytes, int]:
    """payout pubkey_hash → the last height (≥ 1) whose coinbase paid it a masternode reward,
    for those of ``payouts`` paid within ``lookback`` blocks of the tip."""
    found: dict[bytes, int] = {}
    height = chain.tip.height
    while height >= 1 and height > chain.tip.height - lookback and len(found) < len(payouts):
        paid = _paid_at(chain, height)
        if paid is None:
            break
        for pubkey_hash in paid:
            if pubkey_hash in payouts:
                found.setdefault(pubkey_hash, height)
        height -= 1
    return found


def _outpoint(outpoint: OutPoint) -> dict[str, Any] | None:
    if outpoint == OutPoint.NULL:
        return None
    return {"txid": outpoint.txid.hex(), "vout": outpoint.vout}


def _ineligible_reason(chain: ChainState, parts: WeightParts, total: int) -> str | None:
    pool = chain.params.block_reward - chain.params.treasury_reward
    if pool * parts.weight // total < chain.params.dust_limit:
        return (
            f"its reward share at height {chain.tip.height + 1} is below the dust limit "
            f"of {chain.params.dust_limit} sat"
        )
    return None


def _entry(
    chain: ChainState,
    entry: MasternodeEntry,
    parts: WeightParts,
    total: int,
    paid: dict[bytes, int],
    tracker: HeartbeatTracker | None,
) -> dict[str, Any]:
    params = chain.params
    sighting = tracker.last(entry.public_key) if tracker is not None else None
    reason = _ineligible_reason(chain, parts, total)
    return {
        "public_key": entry.public_key.hex(),
        "registered": True,
        "tier": entry.tier.name.lower(),
        "collateral": _outpoint(entry.collateral),
        "collateral_sat": entry.collateral_amount,
        "owner_address": encode_address(entry.owner, params),
        "payout_address": encode_address(entry.payout, params),
        "registered_height": entry.registered_height,
        "registration_txid": entry.registration_txid.hex(),
        "weight": parts.weight,
        "weight_parts": {
            "base": parts.base,
            "longevity_percent": parts.longevity,
            "reputation": parts.reputation,
            "certificates_signed": parts.signed,
            "certificates_counted": parts.counted,
        },
        "height": chain.tip.height + 1,
        "last_paid_height": paid.get(entry.payout),
        "last_seen": int(sighting.received) if sighting is not None else None,
        "online": tracker.is_online(entry.public_key) if tracker is not None else None,
        "eligible": reason is None,
        "reason": reason,
    }


def masternode_list(chain: ChainState, tracker: HeartbeatTracker | None = None) -> list[dict[str, Any]]:
    """Every masternode of the set of height tip + 1, by public key: the ``masternodelist``
    rows. ``online``/``last_seen`` are None without a tracker. ``weight`` is the fixed-point
    weight (``timecoin.masternode.weights.WEIGHT_UNIT`` = 1.0); ``reputation`` is in units of
    ``REPUTATION_SCALE``; ``collateral_sat`` is in sat; ``last_seen`` is integer unix seconds (when
    the last heartbeat arrived, rounded down)."""
    height = chain.tip.height + 1
    parts = chain.registry.weights(height)
    total = sum(p.weight for p in parts)
    paid = last_paid_heights(chain, {p.payout for p in parts})
    entries = {e.public_key: e for e in chain.registry.entries()}
    return [_entry(chain, entries[p.public_key], p, total, paid, tracker) for p in parts]


def masternode_status(
    chain: ChainState, public_key: bytes, tracker: HeartbeatTracker | None = None
) -> dict[str, Any]:
    """The ``masternodestatus`` of ``public_key`` (32 bytes): a :func:`masternode_list` row, or
    for an unregistered key ``{"public_key", "registered": False, "eligible": False,
    "reason"}``."""
    entry = chain.registry.get(public_key)
    if entry is None:
        return {
            "public_key": public_key.hex(),
            "registered": False,
            "eligible": False,
            "reason": "not registered: no registration transaction in the chain names this key, "
            "or its masternode was deregistered (deregistration or collateral spent)",
        }
    height = chain.tip.height + 1
    parts = chain.registry.weights(height)
    total = sum(p.weight for p in parts)
    mine = next(p for p in parts if p.public_key == public_key)
    paid = last_paid_heights(chain, {entry.payout})
    return _entry(chain, entry, mine, total, paid, tracker)
