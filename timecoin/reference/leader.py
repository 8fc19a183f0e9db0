"""Pure-Python twin of :mod:`timecoin.masternode.leader`: the leader order rule in Python.

The rule (``docs/leader-selection.md``): sort the masternodes by public key; read BLAKE3-XOF in
the ``leader_draw`` domain of ``seed ‖ height (u64 LE)`` as little-endian u128 words; each draw
takes the remaining total weight T, the next word u that is at most 2^128 − (2^128 mod T) − 1
(rejection sampling), r = u mod T, and picks the first remaining masternode, in key order, whose
running weight sum exceeds r. A Fenwick tree over the sorted weights finds that masternode in
O(log n), so this twin is usable as a benchmark baseline; the tests also check it against a
plain linear scan.

Same entry points, errors and messages as the native module. Never on a node's hot path.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterator, Sequence

from blake3 import blake3 as _blake3

from timecoin import _args
from timecoin._args import PUBLIC_KEY_LEN, SECRET_KEY_LEN, VRF_PROOF_LEN
from timecoin.crypto import HASH_DOMAINS
from timecoin.masternode.leader import (
    MAX_HEIGHT,
    MAX_ROUND,
    IneligibleProposer,
    _seed,
    _uint,
    _weights_buffer,
)
from timecoin.reference import vrf

_WORD = 16
_CHUNK = 256
_U128 = 1 << 128


class _Stream:
    """Little-endian u128 words of BLAKE3-XOF(leader_draw, seed ‖ height)."""

    def __init__(self, seed: bytes, height: int) -> None:
        self._hasher = _blake3(
            seed + height.to_bytes(8, "little"), derive_key_context=HASH_DOMAINS["leader_draw"]
        )
        self._offset = 0
        self._buf = b""
        self._pos = 0

    def word(self) -> int:
        if self._pos == len(self._buf):
            self._buf = self._hasher.digest(length=_CHUNK, seek=self._offset)
            self._offset += _CHUNK
            self._pos = 0
        w = int.from_bytes(self._buf[self._pos : self._pos + _WORD], "little")
        self._pos += _WORD
        return w

    def below(self, bound: int) -> int:
        """Uniform in [0, bound) by rejection sampling (bound ≥ 1)."""
        max_accepted = _U128 - (_U128 % bound) - 1
        while True:
            u = self.word()
            if u <= max_accepted:
                return u % bound


def _canonical(public_keys: list[bytes], weights: list[int]) -> list[int]:
    """Caller indices in canonical (public key) order; the native set checks, in its order."""
    if len(public_keys) != len(weights):
        raise ValueError(f"{len(public_keys)} public keys but {len(weights)} weights")
    if not public_keys:
        raise ValueError("the masternode set is empty")
    for i, w in enumerate(weights):
        if w == 0:
            raise ValueError(f"weights[{i}] is 0; weights must be >= 1")
    order = sorted(range(len(public_keys)), key=lambda i: (public_keys[i], i))
    for a, b in zip(order, order[1:], strict=False):
        if public_keys[a] == public_keys[b]:
            raise ValueError(f"public_keys[{b}] appears more than once in the set")
    return order


def _draws(seed: bytes, height: int, weights: list[int], order: list[int]) -> Iterator[int]:
    """The whole leader order of a checked set in canonical ``order``, lazily, as caller indices."""
    n = len(order)
    w = [weights[i] for i in order]
    tree = [0] * (n + 1)  # Fenwick tree, 1-based
    for pos in range(1, n + 1):
        tree[pos] += w[pos - 1]
        parent = pos + (pos & -pos)
        if parent <= n:
            tree[parent] += tree[pos]
    remaining = sum(w)
    top = 1 << (n.bit_length() - 1)
    stream = _Stream(seed, height)
    for _ in range(n):
        r = stream.below(remaining)
        pos, step = 0, top
        while step:
            nxt = pos + step
            if nxt <= n and tree[nxt] <= r:
                pos = nxt
                r -= tree[nxt]
            step >>= 1
        weight, w[pos] = w[pos], 0
        i = pos + 1
        while i <= n:
            tree[i] -= weight
            i += i & -i
        remaining -= weight
        yield order[pos]


def _keys(public_keys: object) -> list[bytes]:
    return _args.as_bytes_list("public_keys", public_keys, PUBLIC_KEY_LEN)


def _weights(weights: object) -> list[int]:
    return array("Q", _weights_buffer(weights)).tolist()


def vrf_alpha(seed: bytes, height: int, round: int) -> bytes:
    s, h, r = _seed(seed), _uint("height", height, MAX_HEIGHT), _uint("round", round, MAX_ROUND)
    return s + h.to_bytes(8, "little") + r.to_bytes(4, "little")


def prove_eligibility(secret_key: bytes, seed: bytes, height: int, round: int) -> tuple[bytes, bytes]:
    sk = _args.as_bytes("secret_key", secret_key, SECRET_KEY_LEN)
    return vrf.vrf_prove(sk, vrf_alpha(seed, height, round))


def leader_order(
    seed: bytes,
    height: int,
    public_keys: Sequence[bytes],
    weights: Sequence[int],
    count: int | None = None,
) -> list[int]:
    s, h, ws = _seed(seed), _uint("height", height, MAX_HEIGHT), _weights(weights)
    limit = len(ws) if count is None else min(_args.index("count", count), len(ws))
    keys = _keys(public_keys)
    draws = _draws(s, h, ws, _canonical(keys, ws))
    return [next(draws) for _ in range(limit)]


def leader_rank(
    seed: bytes, height: int, public_keys: Sequence[bytes], weights: Sequence[int], public_key: bytes
) -> int:
    s, h, ws = _seed(seed), _uint("height", height, MAX_HEIGHT), _weights(weights)
    key = _args.as_bytes("public_key", public_key, PUBLIC_KEY_LEN)
    keys = _keys(public_keys)
    order = _canonical(keys, ws)
    if key not in keys:
        raise ValueError("the public key is not in the masternode set")
    target = keys.index(key)
    for rank, i in enumerate(_draws(s, h, ws, order)):
        if i == target:
            return rank
    raise AssertionError("every masternode is drawn exactly once")


def _leader_of(s: bytes, h: int, r: int, ws: list[int], order: list[int]) -> int:
    draws = _draws(s, h, ws, order)
    for _ in range(r % len(order)):
        next(draws)
    return next(draws)


def round_leader(
    seed: bytes, height: int, round: int, public_keys: Sequence[bytes], weights: Sequence[int]
) -> int:
    s, h, ws = _seed(seed), _uint("height", height, MAX_HEIGHT), _weights(weights)
    r = _uint("round", round, MAX_ROUND)
    keys = _keys(public_keys)
    return _leader_of(s, h, r, ws, _canonical(keys, ws))


def _ineligible(code: str, message: str) -> IneligibleProposer:
    err = IneligibleProposer(f"{code}: {message}")
    err.code = code
    return err


def check_proposer(
    seed: bytes,
    height: int,
    round: int,
    public_keys: Sequence[bytes],
    weights: Sequence[int],
    proposer: bytes,
    proof: bytes,
) -> bytes:
    s, h, ws = _seed(seed), _uint("height", height, MAX_HEIGHT), _weights(weights)
    r = _uint("round", round, MAX_ROUND)
    pk = _args.as_bytes("proposer", proposer, PUBLIC_KEY_LEN)
    pi = _args.as_bytes("proof", proof, VRF_PROOF_LEN)
    keys = _keys(public_keys)
    order = _canonical(keys, ws)
    if pk not in keys:
        raise _ineligible("not_in_set", "the public key is not in the masternode set")
    proposer_index = keys.index(pk)
    leader_index = _leader_of(s, h, r, ws, order)
    if leader_index != proposer_index:
        raise _ineligible(
            "wrong_rank",
            f"round {r} belongs to public_keys[{leader_index}], not to public_keys[{proposer_index}]",
        )
    try:
        return vrf.vrf_verify(pk, pi, vrf_alpha(s, h, r))
    except vrf.VrfError as e:
        raise _ineligible("bad_vrf_proof", str(e)) from None
