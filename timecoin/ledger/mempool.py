"""The mempool: pending transactions, their input locks, conflicts and limits (DESIGN §4).

A transaction enters after the native checks against the UTXO set (decoding, rules, signatures,
in one batch call) and the mempool's own: not already present, no input locked by another
pending transaction (first seen wins: a conflict is rejected here and settled by the finality
votes, DESIGN §6), and room under the limits (≤ ``mempool_max_txs`` transactions, ≤
``mempool_max_bytes`` bytes). When full, a newcomer evicts the lowest fee-rate transactions only
if it pays a strictly higher fee rate; otherwise it is rejected.

Every rejection has a stable code and a message; a rejected transaction changes nothing. One
task owns a mempool; it does no I/O.
"""

from __future__ import annotations

import heapq
import itertools
import time
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass

import timecoin_native

from timecoin.params import NetworkParams

MASTERNODE_KINDS = frozenset({2, 3, 4})
"""Transaction kinds the masternode registry must also accept (docs/encoding.md)."""

FEE_RATE_SCALE = 1_000_000
"""Fee rates compare as integer sat per 10^6 bytes (policy only, never consensus)."""

ADMISSION_SHARE_PERCENT = 50
"""Share of the mempool limits (count and bytes, DESIGN §4) that pending transactions may fill
before the node answers its RPC clients "overloaded" (DESIGN §13, "Admission control"; §12
invariant 10). The mempool holds what finality has not decided yet, so its size is the node's
backlog: at the measured knee (~3,000 tx/s finalized with p99 < 1 s, DESIGN §11) a node holds
about rate × latency ≈ 3,000 pending transactions; half of the 10,000 default refuses only once
finality falls behind. The other half is room for what peers gossip meanwhile (each masternode
admits its own clients up to this share of a mempool that also holds everyone else's), so the
fee-rate eviction of DESIGN §4 stays a rare case."""


@dataclass(slots=True)
class MempoolEntry:
    """A pending transaction. Not frozen, like :class:`Admission`: one is made per admitted
    transaction on every node, and a frozen dataclass's ``__init__`` makes a call per field
    (645 ns against 119 ns for these six fields, measured with ``timeit``); nothing changes one
    after it is made."""

    txid: bytes
    raw: bytes
    fee: int
    """sat"""
    size: int
    """bytes"""
    inputs: tuple[bytes, ...]
    """the 36-byte outpoints it spends"""
    added: float
    """monotonic seconds"""

    @property
    def fee_rate(self) -> int:
        """sat per 10^6 bytes, rounded down."""
        return self.fee * FEE_RATE_SCALE // self.size


@dataclass(slots=True)
class Admission:
    """The outcome for one submitted transaction: ``code`` is ``""`` when accepted. Made for
    every transaction every node sees, so not frozen (see :class:`MempoolEntry`)."""

    txid: bytes | None
    code: str
    message: str

    @property
    def accepted(self) -> bool:
        return not self.code


@dataclass(frozen=True, slots=True)
class AdmissionLimit:
    """The pending work beyond which new transactions from RPC clients are refused as
    overloaded, with a retryable error (DESIGN §13 "Admission control"): ``max_txs`` pending
    transactions or ``max_bytes`` bytes of them in the node's mempool, or ``max_final_bytes``
    bytes of final transactions no block archives yet. Gossip from peers is not refused here
    (the mempool's own limits and eviction apply to it).

    The final ones are bounded because blocks can archive less than finality decides (leaders
    that leave final transactions out; when a proposal carried its whole block in one frame, a
    devnet at 6,000 tx/s saw the final transactions waiting for a block grow by ~1,350 a
    second), and nothing refused new ones while they did."""

    max_txs: int
    max_bytes: int
    max_final_bytes: int

    def __post_init__(self) -> None:
        if self.max_txs < 1 or self.max_bytes < 1 or self.max_final_bytes < 1:
            raise ValueError(
                f"admission limits must be >= 1, got {self.max_txs} txs, {self.max_bytes} bytes, "
                f"{self.max_final_bytes} final bytes"
            )

    @classmethod
    def for_network(
        cls, params: NetworkParams, max_txs: int | None = None, max_final_bytes: int | None = None
    ) -> AdmissionLimit:
        """:data:`ADMISSION_SHARE_PERCENT` of the network's mempool limits; ``max_txs`` (the
        node's ``admission_max_pending`` setting) replaces the count when given. Final bytes:
        ``max_final_bytes`` (``admission_max_final_bytes``), by default the mempool's byte limit
        (DESIGN §4: what the node holds for a block, decided or not, in the same bound)."""
        default_txs = max(1, params.mempool_max_txs * ADMISSION_SHARE_PERCENT // 100)
        return cls(
            max_txs if max_txs is not None else default_txs,
            max(1, params.mempool_max_bytes * ADMISSION_SHARE_PERCENT // 100),
            max_final_bytes if max_final_bytes is not None else params.mempool_max_bytes,
        )

    def room(self, mempool: Mempool, final_bytes: int = 0) -> int:
        """Transactions a client may submit now: ``max_txs`` minus those pending, 0 once their
        bytes reach ``max_bytes`` or the ``final_bytes`` of final transactions no block archives
        yet reach ``max_final_bytes``. A batch may bring the bytes past ``max_bytes`` by what it
        carries (the mempool's own byte limit still holds)."""
        if mempool.bytes >= self.max_bytes or final_bytes >= self.max_final_bytes:
            return 0
        return max(0, self.max_txs - len(mempool))


class Mempool:
    """Pending transactions with input locks, admitted in batches against a UTXO set."""

    def __init__(
        self,
        params: NetworkParams,
        utxos: object,
        rules: object,
        clock: Callable[[], float] = time.monotonic,
        special_check: Callable[[bytes], None] | None = None,
    ) -> None:
        """``special_check(raw)`` checks a masternode transaction (kinds 2-4) against the
        registry (``ChainState.check_masternode_transaction``), raising ``ValidationError``;
        without it such transactions are refused (``mn-unchecked``), never admitted unchecked."""
        self._params = params
        self._utxos = utxos
        self._rules = rules
        self._clock = clock
        self._special_check = special_check
        self._entries: dict[bytes, MempoolEntry] = {}
        self._locks: dict[bytes, bytes] = {}
        self._bytes = 0
        self._by_rate: list[tuple[int, int, bytes]] = []
        self._seq = itertools.count()

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, txid: object) -> bool:
        return txid in self._entries

    @property
    def bytes(self) -> int:
        """Total encoded size of the pending transactions."""
        return self._bytes

    def get(self, txid: bytes) -> MempoolEntry | None:
        """The pending transaction ``txid``, if any."""
        return self._entries.get(txid)

    def entries(self) -> Iterable[MempoolEntry]:
        """Pending transactions in arrival order."""
        return self._entries.values()

    def locked_by(self, outpoint: bytes) -> bytes | None:
        """The txid of the pending transaction spending ``outpoint``, if any."""
        return self._locks.get(outpoint)

    def add(self, raws: Sequence[bytes], height: int) -> list[Admission]:
        """Admits a batch of encoded transactions for a block at ``height``; one verdict each,
        in order. A conflict with an earlier transaction of the same batch is a conflict too.
        Every transaction reported accepted is in the mempool when the call returns: a later
        one of the same batch never evicts it (it is refused ``mempool-full`` instead, unless
        older transactions with a lower fee rate make room)."""
        verdicts = self._utxos.check_transactions(list(raws), self._rules, height)  # type: ignore[attr-defined]
        out = []
        # txids this call admitted: never evicted by a later transaction of the same call (the
        # caller gets an "accepted" verdict for each and acts on it after the call returns).
        batch: set[bytes] = set()
        for raw, v in zip(raws, verdicts, strict=True):
            if not v.ok:
                out.append(Admission(v.txid, v.code, v.message))
                continue
            if v.kind in MASTERNODE_KINDS:
                rejection = self._check_special(raw)
                if rejection is not None:
                    out.append(Admission(v.txid, *rejection))
                    continue
            txid = v.txid
            admission = self._admit(MempoolEntry(txid, raw, v.fee, v.size, v.outpoints, self._clock()), batch)
            if admission.accepted:
                batch.add(txid)
            out.append(admission)
        return out

    def _check_special(self, raw: bytes) -> tuple[str, str] | None:
        if self._special_check is None:
            return "mn-unchecked", "this mempool has no masternode registry to check the transaction against"
        try:
            self._special_check(raw)
        except timecoin_native.ValidationError as e:
            return e.code, e.message
        return None

    def _admit(self, entry: MempoolEntry, protected: Collection[bytes]) -> Admission:
        if entry.txid in self._entries:
            return Admission(entry.txid, "txn-already-in-mempool", "transaction already in the mempool")
        for outpoint in entry.inputs:
            holder = self._locks.get(outpoint)
            if holder is not None:
                return Admission(
                    entry.txid,
                    "txn-mempool-conflict",
                    f"input {outpoint[:32].hex()}:{int.from_bytes(outpoint[32:], 'little')} "
                    f"is already spent by pending transaction {holder.hex()}",
                )
        if not self._make_room(entry, protected):
            return Admission(
                entry.txid,
                "mempool-full",
                f"mempool full ({len(self._entries)} txs, {self._bytes} bytes) and the fee rate "
                f"{entry.fee_rate} sat/MB does not beat the lowest pending",
            )
        self._entries[entry.txid] = entry
        self._bytes += entry.size
        for outpoint in entry.inputs:
            self._locks[outpoint] = entry.txid
        heapq.heappush(self._by_rate, (entry.fee_rate, next(self._seq), entry.txid))
        return Admission(entry.txid, "", "")

    def _lowest(self) -> MempoolEntry | None:
        while self._by_rate:
            _, _, txid = self._by_rate[0]
            found = self._entries.get(txid)
            if found is not None:
                return found
            heapq.heappop(self._by_rate)
        return None

    def _make_room(self, entry: MempoolEntry, protected: Collection[bytes]) -> bool:
        """Evicts lower fee-rate transactions until ``entry`` fits; ``False`` (and nothing
        evicted) if it cannot fit without evicting one whose rate is not strictly lower. The
        ``protected`` txids (admitted earlier in the same :meth:`add` call) are never evicted:
        their callers already hold an "accepted" verdict for them."""
        max_txs, max_bytes = self._params.mempool_max_txs, self._params.mempool_max_bytes
        if len(self._entries) < max_txs and self._bytes + entry.size <= max_bytes:
            return True  # it fits: the common case, nothing to look at
        if entry.size > max_bytes:
            return False
        popped: list[tuple[int, int, bytes]] = []
        victims: dict[bytes, None] = {}
        count, size = len(self._entries), self._bytes
        while count + 1 > max_txs or size + entry.size > max_bytes:
            lowest = self._lowest()
            if lowest is None or lowest.fee_rate >= entry.fee_rate:
                for item in popped:
                    heapq.heappush(self._by_rate, item)
                return False
            popped.append(heapq.heappop(self._by_rate))
            if lowest.txid in protected or lowest.txid in victims:
                continue  # not evictable (or a second heap item of a victim): look further up
            victims[lowest.txid] = None
            count -= 1
            size -= lowest.size
        for item in popped:
            if item[2] not in victims:
                heapq.heappush(self._by_rate, item)
        self.remove(victims)
        return True

    def remove(self, txids: Iterable[bytes]) -> list[MempoolEntry]:
        """Removes these transactions (finalized, included in a block or evicted) and releases
        their locks; unknown txids are ignored. Returns what was removed."""
        discard = self.discard
        return [entry for entry in map(discard, txids) if entry is not None]

    def discard(self, txid: bytes) -> MempoolEntry | None:
        """Removes one transaction and releases its locks (:meth:`remove` without the list: the
        finality engine drops transactions one at a time). Returns it, or None if unknown."""
        entry = self._entries.pop(txid, None)
        if entry is None:
            return None
        self._bytes -= entry.size
        locks = self._locks
        for outpoint in entry.inputs:
            if locks.get(outpoint) == txid:
                del locks[outpoint]
        if len(self._by_rate) > 2 * len(self._entries) + 1024:
            # Drop the stale heap items that lazy deletion left behind.
            self._by_rate = [item for item in self._by_rate if item[2] in self._entries]
            heapq.heapify(self._by_rate)
        return entry

    def remove_conflicts(self, spent: Iterable[bytes]) -> list[MempoolEntry]:
        """Removes pending transactions that spend any of these outpoints (spent by a block or a
        finalized transaction): they can never be valid now."""
        return self.remove({self._locks[o] for o in spent if o in self._locks})
