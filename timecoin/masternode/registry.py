"""The masternode registry: the set, tiers and weights of each height as a pure function of the
chain before it (DESIGN §5; the rules are in docs/masternodes.md).

The registry starts from the genesis block's registrations and follows the chain block by block.
For each block it validates the masternode transactions (kinds 2, 3, 4) in block order against
the UTXO set after the block and the registry as the earlier transactions of the block left it,
applies their effects, deregisters every masternode whose collateral the block spent, and records
who was absent from the block's commit certificate (the reputation input). The set of height h is
the registry after block h − 1.

Its state is a key/value map that mirrors the ``masternodes`` database of the chain store
exactly (layout in docs/masternodes.md): :meth:`Registry.connect` and :meth:`Registry.disconnect`
compute a :class:`RegistryUpdate` (the writes, including the undo record a rollback needs)
without changing anything; the chain commits the writes in the block's store transaction and
then calls :meth:`Registry.apply`. So memory and disk change together or not at all.

Pure logic: no I/O, no clock, no gossip. Heartbeats are never an input (DESIGN §12 invariant 7).
Witness signatures (including the extra witnesses) are verified by the native validator before
the registry sees a transaction; the registry checks which keys signed.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Collection, Iterable, Iterator
from dataclasses import dataclass

import timecoin_native

from timecoin.core.address import pubkey_hash
from timecoin.core.types import Coin, OutPoint, Transaction, TxKind
from timecoin.ledger.genesis import Genesis
from timecoin.masternode.records import (
    CERT_PREFIX,
    ENTRY_PREFIX,
    MASTERNODE_DB,
    STATE_PREFIXES,
    TIP_KEY,
    UNDO_PREFIX,
    MasternodeEntry,
    cert_height,
    cert_key,
    decode_absent,
    decode_tip,
    decode_undo,
    encode_absent,
    encode_tip,
    encode_undo,
    entry_key,
    undo_key,
)
from timecoin.masternode.weights import WeightParts, longevity_step_blocks
from timecoin.params import REPUTATION_WINDOW, TIER_COLLATERAL, NetworkParams, Tier, tier_for_collateral

__all__ = [
    "MASTERNODE_DB",
    "REJECT_CODES",
    "STATE_PREFIXES",
    "CoinLookup",
    "MasternodeEntry",
    "Registry",
    "RegistryUpdate",
    "undo_key",
]

ValidationError = timecoin_native.ValidationError

CoinLookup = Callable[[bytes], "bytes | None"]
"""36-byte outpoint → 49-byte coin encoding, or None if not unspent (``UtxoSet.get``)."""

REJECT_CODES: dict[str, str] = {
    "mn-key-registered": "A registration whose masternode key is already registered.",
    "mn-collateral-missing": "A registration whose collateral is not an unspent coin after the block.",
    "mn-collateral-too-low": "A registration whose collateral coin is below the Bronze collateral.",
    "mn-collateral-used": "A registration whose collateral another masternode already uses.",
    "mn-wrong-key": "A registration whose first extra witness is not the payload's masternode key.",
    "mn-wrong-owner": "A registration whose second extra witness does not own the collateral "
    "(for the Free tier: is not the masternode key).",
    "mn-not-registered": "A deregistration or payout change naming no registered masternode.",
    "mn-not-owner": "A deregistration or payout change not signed by the masternode's owner.",
    "bad-witness-count": "Witnesses != inputs + the kind's extra witnesses (also a native code).",
}
"""The registry's stable rejection codes (``ValidationError.code``)."""


@dataclass(frozen=True, slots=True)
class RegistryUpdate:
    """What connecting or disconnecting one block does to the registry: ``writes`` to the
    ``masternodes`` database (value None deletes), including the undo record, to commit in the
    block's store transaction, then :meth:`Registry.apply`."""

    base_height: int
    base_hash: bytes
    height: int
    block_hash: bytes
    writes: tuple[tuple[bytes, bytes | None], ...]
    registered: tuple[bytes, ...] = ()
    """Keys that enter the set (for logs and metrics)."""
    deregistered: tuple[bytes, ...] = ()
    """Keys that leave the set."""
    payout_changed: tuple[bytes, ...] = ()
    """Keys whose payout changes."""

    def store_writes(self) -> list[tuple[bytes, bytes, bytes | None]]:
        """``writes`` as the chain store's ``ExtraWrites`` (database, key, value)."""
        return [(MASTERNODE_DB, k, v) for k, v in self.writes]


def _reject(code: str, message: str, tx_index: int | None) -> ValidationError:
    return ValidationError(code, message, tx_index)


def _coin(lookup: CoinLookup, outpoint: OutPoint) -> Coin | None:
    raw = lookup(outpoint.encode())
    return Coin.decode(raw) if raw is not None else None


class _Pending:
    """The registry as the transactions of one block change it, over the unchanged registry."""

    def __init__(self, registry: Registry) -> None:
        self.base = registry
        self.entries: dict[bytes, MasternodeEntry | None] = {}
        self.collateral: dict[OutPoint, bytes | None] = {}
        self.registered: list[bytes] = []
        self.deregistered: list[bytes] = []
        self.payout_changed: list[bytes] = []

    def get(self, key: bytes) -> MasternodeEntry | None:
        if key in self.entries:
            return self.entries[key]
        return self.base._entries.get(key)

    def by_collateral(self, outpoint: OutPoint) -> MasternodeEntry | None:
        key = (
            self.collateral[outpoint]
            if outpoint in self.collateral
            else self.base._by_collateral.get(outpoint)
        )
        return self.get(key) if key is not None else None

    def add(self, entry: MasternodeEntry) -> None:
        self.entries[entry.public_key] = entry
        if entry.collateral != OutPoint.NULL:
            self.collateral[entry.collateral] = entry.public_key
        self.registered.append(entry.public_key)

    def remove(self, entry: MasternodeEntry) -> None:
        self.entries[entry.public_key] = None
        if entry.collateral != OutPoint.NULL:
            self.collateral[entry.collateral] = None
        self.deregistered.append(entry.public_key)

    def replace(self, entry: MasternodeEntry) -> None:
        self.entries[entry.public_key] = entry
        self.payout_changed.append(entry.public_key)

    def keys(self) -> set[bytes]:
        return set(self.base._entries) | set(self.entries)


class Registry:
    """The masternode registry after block :attr:`height` (:attr:`block_hash`): the masternode
    set of height ``height + 1``. Build with :meth:`from_genesis` or :meth:`load`."""

    def __init__(self, params: NetworkParams) -> None:
        self.params = params
        self.height = -1
        self.block_hash = bytes(32)
        self._raw: dict[bytes, bytes] = {}
        """The ``masternodes`` database without undo records, key → value."""
        self._entries: dict[bytes, MasternodeEntry] = {}
        self._by_collateral: dict[OutPoint, bytes] = {}
        self._absent: dict[int, frozenset[bytes]] = {}
        """Height → keys of the set of that height absent from its block's commit certificate."""
        self._weights: tuple[int, list[WeightParts]] | None = None
        self._step = longevity_step_blocks(params)

    # -- construction ----------------------------------------------------------------------------

    @classmethod
    def from_genesis(cls, params: NetworkParams, genesis: Genesis) -> Registry:
        """The registry after the genesis block (docs/genesis.md): one masternode per
        registration transaction of the block, whose collateral is its coin among the genesis
        coins, registered at height 0. The genesis file is the authority: its registrations carry
        no witnesses and are not validated. The owner of a Free masternode is its own key."""
        transactions, coins, genesis_block_hash = genesis.block.transactions, genesis.coins, genesis.hash
        utxos = dict(coins)
        registry = cls(params)
        writes: dict[bytes, bytes] = {}
        for tx in transactions:
            if tx.kind is not TxKind.MASTERNODE_REGISTER:
                continue
            reg = tx.masternode_registration
            if reg.collateral == OutPoint.NULL:
                tier, amount, owner = Tier.FREE, 0, pubkey_hash(reg.masternode_key)
            else:
                raw = utxos.get(reg.collateral.encode())
                if raw is None:
                    raise ValueError(f"genesis registration {tx.txid.hex()} has no collateral coin")
                coin = Coin.decode(raw)
                tier, amount, owner = tier_for_collateral(coin.value), coin.value, coin.pubkey_hash
            entry = MasternodeEntry(
                reg.masternode_key, tier, reg.collateral, amount, owner, reg.payout_pubkey_hash, 0, tx.txid
            )
            writes[entry_key(entry.public_key)] = entry.encode()
        writes[TIP_KEY] = encode_tip(0, genesis_block_hash)
        for k, v in writes.items():
            registry._put(k, v)
        return registry

    @classmethod
    def load(cls, params: NetworkParams, items: Iterable[tuple[bytes, bytes]]) -> Registry:
        """The registry held in a ``masternodes`` database's (key, value) pairs (undo records
        are skipped). ``ValueError`` if a value is malformed or the tip is missing."""
        registry = cls(params)
        for key, value in items:
            if not key.startswith(UNDO_PREFIX):
                registry._put(bytes(key), bytes(value))
        if TIP_KEY not in registry._raw:
            raise ValueError("the masternode registry has no tip record")
        return registry

    def snapshot(self) -> list[tuple[bytes, bytes]]:
        """Every (key, value) of the registry's database without undo records, sorted: two
        registries with equal snapshots are equal."""
        return sorted(self._raw.items())

    # -- reads -----------------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, public_key: object) -> bool:
        return public_key in self._entries

    def get(self, public_key: bytes) -> MasternodeEntry | None:
        """The masternode registered with ``public_key``, if any."""
        return self._entries.get(public_key)

    def tier_of(self, public_key: bytes) -> Tier | None:
        """The tier of the masternode registered with ``public_key``, or None."""
        entry = self._entries.get(public_key)
        return entry.tier if entry is not None else None

    def by_collateral(self, outpoint: OutPoint) -> MasternodeEntry | None:
        """The masternode whose collateral is ``outpoint`` (not for ``OutPoint.NULL``)."""
        key = self._by_collateral.get(outpoint)
        return self._entries[key] if key is not None else None

    def entries(self) -> list[MasternodeEntry]:
        """Every registered masternode, by public key ascending."""
        return [self._entries[k] for k in sorted(self._entries)]

    def __iter__(self) -> Iterator[MasternodeEntry]:
        return iter(self.entries())

    def weights(self, height: int) -> list[WeightParts]:
        """The masternode set of ``height`` (which must be :attr:`height` + 1: ``ValueError``
        otherwise) with each weight and its parts, by public key ascending.

        Reputation counts the blocks ``max(1, height − REPUTATION_WINDOW) … height − 1`` that
        carry a commit certificate and were produced after the masternode's registration; it
        signed those whose absence record does not list it (docs/masternodes.md).
        """
        if height != self.height + 1:
            raise ValueError(
                f"the registry after block {self.height} gives the set of height "
                f"{self.height + 1}, not {height}"
            )
        if self._weights is not None and self._weights[0] == height:
            return list(self._weights[1])
        first = height - REPUTATION_WINDOW
        window = sorted(b for b in self._absent if b >= first)
        absences: dict[bytes, list[int]] = {}
        for b in window:
            for key in self._absent[b]:
                absences.setdefault(key, []).append(b)
        parts = []
        for key in sorted(self._entries):
            e = self._entries[key]
            counted = len(window) - bisect.bisect_right(window, e.registered_height)
            absent = sum(1 for b in absences.get(key, ()) if b > e.registered_height)
            parts.append(
                WeightParts.of(
                    self.params,
                    key,
                    e.payout,
                    e.tier,
                    e.registered_height,
                    height,
                    counted - absent,
                    counted,
                    self._step,
                )
            )
        self._weights = (height, parts)
        return list(parts)

    def reward_weights(self, height: int) -> list[tuple[bytes, int]]:
        """(payout pubkey_hash, weight) of the set of ``height``: the coinbase reward input."""
        return [(p.payout, p.weight) for p in self.weights(height)]

    def leader_set(self, height: int) -> tuple[list[bytes], list[int]]:
        """(public keys, weights) of the set of ``height``: the leader order's input
        (``timecoin.masternode.leader``)."""
        parts = self.weights(height)
        return [p.public_key for p in parts], [p.weight for p in parts]

    def absent_at(self, height: int) -> frozenset[bytes] | None:
        """Keys absent from the commit certificate of block ``height`` (None: no certificate, or
        outside the kept window)."""
        return self._absent.get(height)

    # -- validation ------------------------------------------------------------------------------

    def check_transaction(self, tx: Transaction, coin: CoinLookup, tx_index: int | None = None) -> None:
        """Checks one masternode transaction against this registry and the UTXO set ``coin``
        (for the mempool). Raises ``ValidationError`` with a code of :data:`REJECT_CODES`;
        ``ValueError`` if ``tx`` is not a masternode transaction."""
        self._check(_Pending(self), tx, coin, tx_index, self.height + 1)

    def _check(
        self, pending: _Pending, tx: Transaction, coin: CoinLookup, index: int | None, height: int
    ) -> None:
        if tx.kind not in (
            TxKind.MASTERNODE_REGISTER,
            TxKind.MASTERNODE_DEREGISTER,
            TxKind.MASTERNODE_PAYOUT,
        ):
            raise ValueError(f"transaction {tx.txid.hex()} is {tx.kind.name}, not a masternode transaction")
        n = len(tx.inputs)
        if len(tx.witnesses) != tx.witness_count:
            raise _reject(
                "bad-witness-count",
                f"{len(tx.witnesses)} witnesses for {n} inputs and {tx.kind.extra_witnesses} extra witnesses",
                index,
            )
        if tx.kind is TxKind.MASTERNODE_REGISTER:
            self._check_registration(pending, tx, coin, index, height)
            return
        collateral = (
            tx.masternode_deregistration.collateral
            if tx.kind is TxKind.MASTERNODE_DEREGISTER
            else tx.masternode_payout_change.collateral
        )
        signer = tx.witnesses[n].public_key
        if collateral == OutPoint.NULL:
            entry = pending.get(signer)
            if entry is None or entry.collateral != OutPoint.NULL:
                raise _reject(
                    "mn-not-registered", f"no Free-tier masternode has key {signer.hex()} (the signer)", index
                )
        else:
            entry = pending.by_collateral(collateral)
            if entry is None:
                raise _reject("mn-not-registered", f"no masternode has collateral {_show(collateral)}", index)
        if pubkey_hash(signer) != entry.owner:
            raise _reject(
                "mn-not-owner",
                f"{tx.kind.name} of masternode {entry.public_key.hex()} is signed by key {signer.hex()}, "
                f"not by its owner {entry.owner.hex()}",
                index,
            )
        if tx.kind is TxKind.MASTERNODE_DEREGISTER:
            pending.remove(entry)
        else:
            payout = tx.masternode_payout_change.payout_pubkey_hash
            pending.replace(
                MasternodeEntry(
                    entry.public_key,
                    entry.tier,
                    entry.collateral,
                    entry.collateral_amount,
                    entry.owner,
                    payout,
                    entry.registered_height,
                    entry.registration_txid,
                )
            )

    def _check_registration(
        self, pending: _Pending, tx: Transaction, coin: CoinLookup, index: int | None, height: int
    ) -> None:
        reg = tx.masternode_registration
        n = len(tx.inputs)
        key_witness, owner_witness = tx.witnesses[n].public_key, tx.witnesses[n + 1].public_key
        if key_witness != reg.masternode_key:
            raise _reject(
                "mn-wrong-key",
                f"witness {n} is key {key_witness.hex()}, not the masternode key {reg.masternode_key.hex()}",
                index,
            )
        if pending.get(reg.masternode_key) is not None:
            raise _reject(
                "mn-key-registered", f"masternode key {reg.masternode_key.hex()} is already registered", index
            )
        if reg.collateral == OutPoint.NULL:
            if owner_witness != reg.masternode_key:
                raise _reject(
                    "mn-wrong-owner",
                    f"a Free-tier registration's witness {n + 1} must be the masternode key, "
                    f"got {owner_witness.hex()}",
                    index,
                )
            tier, amount, owner = Tier.FREE, 0, pubkey_hash(reg.masternode_key)
        else:
            found = _coin(coin, reg.collateral)
            if found is None:
                raise _reject(
                    "mn-collateral-missing",
                    f"collateral {_show(reg.collateral)} is not an unspent coin",
                    index,
                )
            tier = tier_for_collateral(found.value)
            if tier is Tier.FREE:
                raise _reject(
                    "mn-collateral-too-low",
                    f"collateral {_show(reg.collateral)} holds {found.value} sat, below the Bronze tier's "
                    f"{TIER_COLLATERAL[Tier.BRONZE]} sat (a Free registration names no collateral)",
                    index,
                )
            used = pending.by_collateral(reg.collateral)
            if used is not None:
                raise _reject(
                    "mn-collateral-used",
                    f"collateral {_show(reg.collateral)} is already the collateral of masternode "
                    f"{used.public_key.hex()}",
                    index,
                )
            if pubkey_hash(owner_witness) != found.pubkey_hash:
                raise _reject(
                    "mn-wrong-owner",
                    f"witness {n + 1} key {owner_witness.hex()} does not own collateral "
                    f"{_show(reg.collateral)}",
                    index,
                )
            amount, owner = found.value, found.pubkey_hash
        pending.add(
            MasternodeEntry(
                reg.masternode_key,
                tier,
                reg.collateral,
                amount,
                owner,
                reg.payout_pubkey_hash,
                height,
                tx.txid,
            )
        )

    # -- blocks ----------------------------------------------------------------------------------

    def connect(
        self,
        height: int,
        block_hash: bytes,
        transactions: Iterable[tuple[int, Transaction]],
        coin: CoinLookup,
        certificate_signers: Collection[bytes] | None = None,
    ) -> RegistryUpdate:
        """The update that block ``height`` (``block_hash``) makes, without changing anything.

        ``transactions``: the block's masternode transactions as (index in the block,
        transaction), in block order. ``coin``: the UTXO set *after* the block.
        ``certificate_signers``: the keys that signed the commit certificate the block carries,
        or None if it carries none (blocks carry none until the consensus issue adds them).

        Raises ``ValueError`` unless ``height`` is :attr:`height` + 1, and ``ValidationError``
        (code in :data:`REJECT_CODES`, ``tx_index`` = the block index) for the first invalid
        transaction.
        """
        if height != self.height + 1:
            raise ValueError(f"registry is at block {self.height}; cannot connect block {height}")
        pending = _Pending(self)
        for index, tx in transactions:
            self._check(pending, tx, coin, index, height)
        # Spending a registered collateral deregisters its masternode.
        for key in sorted(pending.keys()):
            entry = pending.get(key)
            if (
                entry is not None
                and entry.collateral != OutPoint.NULL
                and coin(entry.collateral.encode()) is None
            ):
                pending.remove(entry)
        changes: dict[bytes, bytes | None] = {}
        for key, new_entry in pending.entries.items():
            changes[entry_key(key)] = new_entry.encode() if new_entry is not None else None
        if certificate_signers is not None:
            signers = set(certificate_signers)
            changes[cert_key(height)] = encode_absent(k for k in self._entries if k not in signers)
        expired = height - REPUTATION_WINDOW
        if expired in self._absent:
            changes[cert_key(expired)] = None
        changes[TIP_KEY] = encode_tip(height, block_hash)
        writes = [(k, v) for k, v in sorted(changes.items()) if self._raw.get(k) != v]
        undo = encode_undo(height, [(k, self._raw.get(k)) for k, _ in writes])
        writes.append((undo_key(height), undo))
        return RegistryUpdate(
            self.height,
            self.block_hash,
            height,
            block_hash,
            tuple(writes),
            tuple(k for k in pending.registered if pending.entries.get(k) is not None),
            tuple(dict.fromkeys(k for k in pending.deregistered if k in self._entries)),
            tuple(dict.fromkeys(k for k in pending.payout_changed if pending.entries.get(k) is not None)),
        )

    def disconnect(self, undo: bytes | None, prev_hash: bytes) -> RegistryUpdate:
        """The update that rolls block :attr:`height` back, from its undo record ``undo`` (read
        from the store at :func:`undo_key`), onto the block ``prev_hash``. ``ValueError`` if the
        record is missing or malformed, or is not this block's."""
        if self.height <= 0:
            raise ValueError("cannot roll the registry back past genesis")
        if undo is None:
            raise ValueError(f"the registry undo record of block {self.height} is missing")
        height, old = decode_undo(undo)
        if height != self.height:
            raise ValueError(f"undo record is for block {height}, the registry is at block {self.height}")
        writes = [*old, (undo_key(height), None)]
        tip = dict(old).get(TIP_KEY)
        if tip is None or decode_tip(tip) != (height - 1, prev_hash):
            raise ValueError(f"undo record of block {height} does not restore block {height - 1}")
        registered = [
            k[len(ENTRY_PREFIX) :]
            for k, v in old
            if k.startswith(ENTRY_PREFIX) and v is not None and k not in self._raw
        ]
        deregistered = [k[len(ENTRY_PREFIX) :] for k, v in old if k.startswith(ENTRY_PREFIX) and v is None]
        return RegistryUpdate(
            self.height,
            self.block_hash,
            height - 1,
            prev_hash,
            tuple(writes),
            tuple(registered),
            tuple(deregistered),
        )

    def apply(self, update: RegistryUpdate) -> None:
        """Applies an update computed on this registry (after the store committed its writes).
        ``ValueError`` if the registry moved since the update was computed."""
        if (update.base_height, update.base_hash) != (self.height, self.block_hash):
            raise ValueError(
                f"update was computed at block {update.base_height}, the registry is at block {self.height}"
            )
        for key, value in update.writes:
            if not key.startswith(UNDO_PREFIX):
                self._put(key, value)

    def verify(self, coin: CoinLookup) -> None:
        """Checks the registry against the UTXO set ``coin`` (on open): every collateral is an
        unspent coin of the recorded owner and amount, in the recorded tier, used once; every
        Free masternode has no collateral and owns itself. ``ValueError`` naming the first
        inconsistency."""
        seen: set[OutPoint] = set()
        for entry in self.entries():
            who = f"masternode {entry.public_key.hex()}"
            if entry.collateral == OutPoint.NULL:
                if (entry.tier, entry.collateral_amount, entry.owner) != (
                    Tier.FREE,
                    0,
                    pubkey_hash(entry.public_key),
                ):
                    raise ValueError(f"{who} has no collateral but is not a self-owned Free masternode")
                continue
            if entry.collateral in seen:
                raise ValueError(f"{who} shares collateral {_show(entry.collateral)}")
            seen.add(entry.collateral)
            found = _coin(coin, entry.collateral)
            if found is None:
                raise ValueError(f"{who}: collateral {_show(entry.collateral)} is not in the UTXO set")
            if (found.value, found.pubkey_hash) != (entry.collateral_amount, entry.owner):
                raise ValueError(f"{who}: collateral coin differs from the registered amount or owner")
            if tier_for_collateral(found.value) != entry.tier or entry.tier is Tier.FREE:
                raise ValueError(f"{who}: tier {entry.tier.name} does not match its collateral")
        for height in self._absent:
            if not self.height - REPUTATION_WINDOW < height <= self.height:
                raise ValueError(f"certificate record of block {height} is outside the reputation window")

    # -- the key/value mirror --------------------------------------------------------------------

    def _put(self, key: bytes, value: bytes | None) -> None:
        """Sets one key of the mirrored database and the decoded views; ``ValueError`` for a
        malformed key or value."""
        self._weights = None
        if key == TIP_KEY:
            if value is None:
                raise ValueError("the registry tip cannot be deleted")
            self.height, self.block_hash = decode_tip(value)
        elif key.startswith(ENTRY_PREFIX) and len(key) == len(ENTRY_PREFIX) + 32:
            public_key = key[len(ENTRY_PREFIX) :]
            old = self._entries.pop(public_key, None)
            if old is not None and old.collateral != OutPoint.NULL:
                self._by_collateral.pop(old.collateral, None)
            if value is not None:
                entry = MasternodeEntry.decode(value)
                if entry.public_key != public_key:
                    raise ValueError(
                        f"registry entry under key {public_key.hex()} names {entry.public_key.hex()}"
                    )
                self._entries[public_key] = entry
                if entry.collateral != OutPoint.NULL:
                    self._by_collateral[entry.collateral] = public_key
        elif key.startswith(CERT_PREFIX):
            height = cert_height(key)
            if value is None:
                self._absent.pop(height, None)
            else:
                self._absent[height] = decode_absent(value)
        else:
            raise ValueError(f"unknown registry key {key!r}")
        if value is None:
            self._raw.pop(key, None)
        else:
            self._raw[key] = value


def _show(outpoint: OutPoint) -> str:
    return f"{outpoint.txid.hex()}:{outpoint.vout}"
