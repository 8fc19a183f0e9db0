"""Signer safety: what this masternode has signed, so that it never signs a conflicting message,
not even across a crash and restart (DESIGN §6, §7, §12 invariant 3; CometBFT's
``privval/file.go`` last-signed height/round/step is the model).

Two rules, each checked before a signature is made and persisted before the message leaves
(the engine emits ``Persist`` then ``Broadcast``):

* **Blocks.** Proposals, prevotes and precommits are ordered by (height, round, step) with
  step propose < prevote < precommit. A new signature must be strictly later than the last
  one, or at exactly the same (height, round, step) for the same block hash (the same bytes
  again: Ed25519 is deterministic). Anything else raises :class:`DoubleSignRefused`. The
  Tendermint lock (locked round and block hash) is persisted with the precommit that sets it,
  and the valid value (round, block and the 2/3 prevotes that prove it) whenever it changes, so
  a restarted node can re-propose it with its proof of lock (arXiv:1807.04938, line 16).
* **Outpoints.** At most one accepted txid per outpoint, ever: accepting a transaction records
  ``outpoint → txid`` for each of its inputs; accepting another txid for a recorded outpoint
  raises :class:`DoubleSignRefused`. Records are dropped when a block spends the outpoint
  (the question is then settled by the chain for good). The accepts of one :meth:`accept` call
  (a vote flush's, a block's) are stored as one record, ``accept/<sequence>`` (8 bytes
  big-endian, in the order they are made) with the value ``outpoint ‖ txid`` for each, deleted
  once every one of its outpoints is forgotten: one put and one delete per vote flush, where a
  record per outpoint cost a put and a delete per transaction input
  (``benches/bench_finality_records.py``).
  Records of earlier versions, one pair each or keyed ``accept/<outpoint>`` with the txid as
  value, are still read.

The in-memory state changes together with the writes this module returns; the engine hands
those writes to the driver in a ``Persist`` that precedes the message. No I/O here.
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Iterable

from timecoin.consensus.settle import forget_accepts
from timecoin.consensus.store import (
    ACCEPT_PREFIX,
    CONSENSUS_DB,
    SIGNER_LAST,
    SIGNER_LOCK,
    SIGNER_MSG_PREFIX,
    SIGNER_VALID,
)

__all__ = ["DoubleSignRefused", "SignerState", "Step"]

_LAST = struct.Struct("<QIB32s")
_LOCK = struct.Struct("<QI32s")
_LEN = struct.Struct("<I")
_SEQUENCE = struct.Struct(">Q")
_ACCEPT_KEY = len(ACCEPT_PREFIX) + _SEQUENCE.size
_PAIR = 36 + 32
"""Bytes of one (outpoint, txid) pair of an accept record."""


class Step(enum.IntEnum):
    """The ordered steps of a round (CometBFT ``RoundStepType``), also the signer's step order."""

    NEW_HEIGHT = 0
    PROPOSE = 1
    PREVOTE = 2
    PRECOMMIT = 3
    COMMIT = 4


class DoubleSignRefused(Exception):
    """A signature that would conflict with one this masternode already made."""


class SignerState:
    """The persisted signing history of one masternode key."""

    def __init__(self) -> None:
        self.last: tuple[int, int, int, bytes] | None = None
        """(height, round, step, block hash) of the last signed block message."""
        self.lock: tuple[int, int, bytes] | None = None
        """(height, round, block hash) of the Tendermint lock."""
        self.valid: tuple[int, int, bytes, bytes, tuple[bytes, ...]] | None = None
        """(height, round, block hash, encoded block, encoded prevotes) of the valid value."""
        self.messages: dict[int, bytes] = {}
        """step → the encoded message last signed at that step."""
        self._accepts: dict[bytes, bytes] = {}
        """outpoint → the txid accepted for it."""
        self._accept_keys: dict[bytes, bytes] = {}
        """outpoint → the key of its record."""
        self._accept_refs: dict[bytes, int] = {}
        """Key of each accept record → how many of its outpoints are not forgotten yet."""
        self._next_accept = 0
        """Sequence number of the next accept record."""

    @classmethod
    def load(cls, records: Iterable[tuple[bytes, bytes]]) -> SignerState:
        """The state held in (key, value) records of the ``consensus`` database
        (``store.load_signer_records``). ``ValueError`` on a malformed record."""
        state = cls()
        for key, value in records:
            if key == SIGNER_LAST:
                if len(value) != _LAST.size:
                    raise ValueError("signer/last record has the wrong length")
                h, r, s, bh = _LAST.unpack(value)
                state.last = (h, r, s, bh)
            elif key == SIGNER_LOCK:
                if len(value) != _LOCK.size:
                    raise ValueError("signer/lock record has the wrong length")
                h, r, bh = _LOCK.unpack(value)
                state.lock = (h, r, bh)
            elif key == SIGNER_VALID:
                state.valid = _decode_valid(value)
            elif key.startswith(SIGNER_MSG_PREFIX) and len(key) == len(SIGNER_MSG_PREFIX) + 1:
                state.messages[key[-1]] = value
            elif key.startswith(ACCEPT_PREFIX) and len(key) == len(ACCEPT_PREFIX) + 36 and len(value) == 32:
                state._hold(key, key[len(ACCEPT_PREFIX) :], value)  # a record of an earlier version
            elif (
                key.startswith(ACCEPT_PREFIX)
                and len(key) == _ACCEPT_KEY
                and len(value) % _PAIR == 0
                and len(value) > 0
            ):
                for i in range(0, len(value), _PAIR):
                    state._hold(key, value[i : i + 36], value[i + 36 : i + _PAIR])
                (sequence,) = _SEQUENCE.unpack_from(key, len(ACCEPT_PREFIX))
                state._next_accept = max(state._next_accept, sequence + 1)
            else:
                raise ValueError(f"unknown signer record {key!r}")
        return state

    # -- block messages ----------------------------------------------------------------------------

    def check(self, height: int, round: int, step: Step, block_hash: bytes) -> bool:
        """Whether signing (height, round, step, block_hash) is allowed: ``True`` for a new,
        later message, ``False`` for an exact repeat of the last one (allowed: same bytes).
        Raises :class:`DoubleSignRefused` for anything earlier or conflicting."""
        if self.last is None:
            return True
        lh, lr, ls, lb = self.last
        here, there = (height, round, int(step)), (lh, lr, ls)
        if here > there:
            return True
        if here == there and block_hash == lb:
            return False
        raise DoubleSignRefused(
            f"refusing to sign {step.name.lower()} {block_hash.hex()[:16]} at height {height} round {round}: "
            f"already signed {Step(ls).name.lower()} {lb.hex()[:16]} at height {lh} round {lr}"
        )

    def sign(
        self, height: int, round: int, step: Step, block_hash: bytes, message: bytes
    ) -> list[tuple[bytes, bytes, bytes | None]]:
        """Records a signed block message (after :meth:`check`); returns the store writes that
        must be durable before ``message`` leaves."""
        self.check(height, round, step, block_hash)
        self.last = (height, round, int(step), block_hash)
        self.messages[int(step)] = message
        return [
            (CONSENSUS_DB, SIGNER_LAST, _LAST.pack(height, round, int(step), block_hash)),
            (CONSENSUS_DB, SIGNER_MSG_PREFIX + bytes([int(step)]), message),
        ]

    def set_lock(self, height: int, round: int, block_hash: bytes) -> list[tuple[bytes, bytes, bytes | None]]:
        """Records the Tendermint lock; returns its store write."""
        self.lock = (height, round, block_hash)
        return [(CONSENSUS_DB, SIGNER_LOCK, _LOCK.pack(height, round, block_hash))]

    def set_valid(
        self, height: int, round: int, block_hash: bytes, block: bytes, prevotes: list[bytes]
    ) -> list[tuple[bytes, bytes, bytes | None]]:
        """Records the valid value of ``height`` (its round, hash, encoded block and the encoded
        prevotes that prove it); returns its store write."""
        self.valid = (height, round, block_hash, block, tuple(prevotes))
        parts = [
            _LOCK.pack(height, round, block_hash),
            _LEN.pack(len(block)),
            block,
            _LEN.pack(len(prevotes)),
        ]
        for vote in prevotes:
            parts += (_LEN.pack(len(vote)), vote)
        return [(CONSENSUS_DB, SIGNER_VALID, b"".join(parts))]

    def valid_value(self, height: int) -> tuple[int, bytes, bytes, tuple[bytes, ...]] | None:
        """(round, block hash, encoded block, encoded prevotes) of the valid value recorded at
        ``height``, if any."""
        if self.valid is None or self.valid[0] != height:
            return None
        return self.valid[1:]

    def locked(self, height: int) -> tuple[int, bytes] | None:
        """(round, block hash) this signer is locked on at ``height``, if any."""
        if self.lock is None or self.lock[0] != height:
            return None
        return self.lock[1], self.lock[2]

    def signed_at(self, height: int) -> list[bytes]:
        """The encoded messages last signed at ``height`` (step order): what a restarted node
        re-sends instead of signing anew."""
        if self.last is None or self.last[0] != height:
            return []
        return [
            self.messages[s]
            for s in sorted(self.messages)
            if s <= self.last[2] and self._at(self.messages[s], height)
        ]

    @staticmethod
    def _at(message: bytes, height: int) -> bool:
        # Every block message encodes kind u8 ‖ version u8 ‖ height u64 first.
        return len(message) >= 10 and struct.unpack_from("<Q", message, 2)[0] == height

    # -- outpoints ------------------------------------------------------------------------------

    def accepted(self, outpoint: bytes) -> bytes | None:
        """The txid this signer accepted for ``outpoint``, if any."""
        return self._accepts.get(outpoint)

    def can_accept(self, txid: bytes, outpoints: Iterable[bytes]) -> bool:
        """Whether accepting ``txid`` (spending ``outpoints``) conflicts with no earlier accept."""
        return all(self._accepts.get(o, txid) == txid for o in outpoints)

    def accept(self, pairs: Iterable[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes, bytes | None]]:
        """Records (outpoint, txid) accepts; returns the write of one record holding the new
        ones (none if none is new). Raises :class:`DoubleSignRefused` (recording nothing) if any
        outpoint has another txid."""
        pairs = list(pairs)
        for outpoint, txid in pairs:
            held = self._accepts.get(outpoint)
            if held is not None and held != txid:
                raise DoubleSignRefused(
                    f"refusing to accept {txid.hex()} for outpoint {outpoint.hex()}: "
                    f"already accepted {held.hex()}"
                )
        key = ACCEPT_PREFIX + _SEQUENCE.pack(self._next_accept)
        value = []
        for outpoint, txid in pairs:
            if outpoint not in self._accepts:
                self._hold(key, outpoint, txid)
                value += (outpoint, txid)
        if not value:
            return []
        self._next_accept += 1
        return [(CONSENSUS_DB, key, b"".join(value))]

    def _hold(self, key: bytes, outpoint: bytes, txid: bytes) -> None:
        self._accepts[outpoint] = txid
        self._accept_keys[outpoint] = key
        self._accept_refs[key] = self._accept_refs.get(key, 0) + 1

    def forget(self, outpoints: Iterable[bytes]) -> list[tuple[bytes, bytes]]:
        """Forgets the accepts of outpoints a committed block spent; returns the (database, key)
        pairs of the records none of whose outpoints is held any more, to delete, which may be
        deleted later (``timecoin.store.sweeper``): each only keeps this masternode from
        accepting another spend of a spent coin."""
        spent = outpoints if isinstance(outpoints, list) else list(outpoints)
        released = forget_accepts(spent, self._accepts, self._accept_keys, self._accept_refs)
        return [(CONSENSUS_DB, key) for key in released]

    def accept_count(self) -> int:
        return len(self._accepts)


def _decode_valid(value: bytes) -> tuple[int, int, bytes, bytes, tuple[bytes, ...]]:
    """The ``signer/valid`` record written by :meth:`SignerState.set_valid`; ``ValueError`` if
    it is malformed."""
    try:
        height, round, block_hash = _LOCK.unpack_from(value, 0)
        at = _LOCK.size
        (size,) = _LEN.unpack_from(value, at)
        at += _LEN.size
        block = value[at : at + size]
        at += size
        (count,) = _LEN.unpack_from(value, at)
        at += _LEN.size
        prevotes = []
        for _ in range(count):
            (size,) = _LEN.unpack_from(value, at)
            at += _LEN.size
            prevotes.append(value[at : at + size])
            at += size
    except struct.error:
        raise ValueError("signer/valid record is truncated") from None
    if at != len(value) or len(block) == 0:
        raise ValueError("signer/valid record has the wrong length")
    return height, round, block_hash, block, tuple(prevotes)
