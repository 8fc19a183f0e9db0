"""Who may propose the block of a (height, round): the VRF-weighted leader order (DESIGN §5, §7).

The rule, defined in ``docs/leader-selection.md`` and computed natively (``native/src/leader.rs``):

* **Seed.** The leader order of height h is drawn from ``seed`` = the 64-byte ``vrf_output`` of
  block h − 1 (for h = 1, the genesis header's ``vrf_output``). Each block's ``vrf_output`` is its
  proposer's VRF output over :func:`vrf_alpha` ``(seed, height, round)``, so the seed of h + 1 is
  fixed by the (unique) VRF output of h's proposer and nobody can grind it.
* **Order.** A weighted draw without replacement over the height's masternode set, sorted by public
  key, driven by BLAKE3-XOF in the ``leader_draw`` domain of ``seed ‖ height``; each draw picks a
  remaining masternode with probability exactly weight / (remaining total weight), in integers.
* **Round.** Round r's leader is entry ``r mod n`` of the order.
* **Eligibility.** A proposal at (height, round) is valid only if its proposer is that round's
  leader and its VRF proof verifies under the proposer's key over ``vrf_alpha(seed, height,
  round)`` (:func:`check_proposer`).

Masternodes are given as two parallel sequences: 32-byte Ed25519 public keys and integer weights
(1 ≤ weight < 2^64, from the tier table and the longevity/reputation rule of DESIGN §5). The
input order never matters; results are indices into the given sequences.

Pure functions: no I/O, clock or state. Bad input raises ``TypeError``/``ValueError``; an
ineligible proposer raises :class:`IneligibleProposer` (a ``ValueError``) with a stable ``code``.
"""

from __future__ import annotations

from array import array
from collections.abc import Callable, Sequence
from typing import TypeVar

import timecoin_native as _native

from timecoin import _args
from timecoin._args import PUBLIC_KEY_LEN, SECRET_KEY_LEN, VRF_OUTPUT_LEN, VRF_PROOF_LEN
from timecoin.crypto import vrf_prove

__all__ = [
    "MAX_HEIGHT",
    "MAX_ROUND",
    "MAX_WEIGHT",
    "SEED_LEN",
    "VRF_ALPHA_LEN",
    "IneligibleProposer",
    "check_proposer",
    "leader_order",
    "leader_rank",
    "prove_eligibility",
    "round_leader",
    "vrf_alpha",
]

_T = TypeVar("_T")

SEED_LEN = VRF_OUTPUT_LEN
"""Length of a leader seed: the previous block's VRF output, bytes."""
VRF_ALPHA_LEN: int = _native.VRF_ALPHA_LEN
"""Length of :func:`vrf_alpha`: seed ‖ height u64 ‖ round u32 = 76 bytes."""
MAX_HEIGHT = 2**64 - 1
"""Heights are u64 (docs/encoding.md, BlockHeader)."""
MAX_ROUND = 2**32 - 1
"""Rounds are u32 (docs/encoding.md, BlockHeader)."""
MAX_WEIGHT = 2**64 - 1
"""Weights are u64 integers (DESIGN §5: fixed point, no floats)."""

IneligibleProposer = _native.IneligibleProposer
"""Raised by :func:`check_proposer`; ``err.code`` is ``"not_in_set"``, ``"wrong_rank"`` or
``"bad_vrf_proof"``. A subclass of ``ValueError``."""

if array("Q").itemsize != 8:  # pragma: no cover - every platform CPython supports today
    raise ImportError("timecoin.masternode.leader needs an 8-byte array('Q') to pass weights")


def _uint(name: str, value: object, maximum: int) -> int:
    v = _args.index(name, value)
    if v > maximum:
        raise ValueError(f"{name} must be <= {maximum}, got {v}")
    return v


def _seed(seed: object) -> bytes:
    return _args.as_bytes("seed", seed, SEED_LEN)


def _weights_buffer(weights: object) -> bytes:
    """``weights`` as n little-endian u64 (the native layout). ``TypeError`` for anything but a
    sequence of ints, ``ValueError`` for a weight outside 0..2^64 − 1 (0 itself is refused by the
    set check, which names its index)."""
    if isinstance(weights, (bytes, bytearray, memoryview, str)) or not isinstance(weights, Sequence):
        raise TypeError(f"weights must be a sequence of ints, not {type(weights).__name__}")
    try:
        return array("Q", weights).tobytes()
    except (TypeError, OverflowError):
        pass
    for i, w in enumerate(weights):
        if not isinstance(w, int) or isinstance(w, bool):
            raise TypeError(f"weights[{i}] must be an int, not {type(w).__name__}")
        if not 0 <= w <= MAX_WEIGHT:
            raise ValueError(f"weights[{i}] must be in 1..{MAX_WEIGHT}, got {w}")
    raise TypeError("weights must be a sequence of ints")


def _with_keys(call: Callable[[list[bytes] | tuple[bytes, ...]], _T], public_keys: object) -> _T:
    """Calls ``call`` with the keys as a list/tuple the native side checks item by item; other
    sequence types, or bytes-like items, take the checked path of ``_args.as_bytes_list``. Every
    other argument is checked before this, so a native ``TypeError`` is about the keys."""
    if type(public_keys) is list or type(public_keys) is tuple:
        try:
            return call(public_keys)
        except TypeError:
            pass
    return call(_args.as_bytes_list("public_keys", public_keys, PUBLIC_KEY_LEN))


def vrf_alpha(seed: bytes, height: int, round: int) -> bytes:
    """The VRF input of the proposer of (height, round): ``seed ‖ height (u64 LE) ‖ round (u32
    LE)``, 76 bytes, where ``seed`` is the previous block's 64-byte VRF output."""
    return _native.vrf_alpha(
        _seed(seed), _uint("height", height, MAX_HEIGHT), _uint("round", round, MAX_ROUND)
    )


def prove_eligibility(secret_key: bytes, seed: bytes, height: int, round: int) -> tuple[bytes, bytes]:
    """The (80-byte proof, 64-byte output) a proposer puts in its block header: its VRF proof over
    :func:`vrf_alpha` ``(seed, height, round)`` with its 32-byte Ed25519 seed ``secret_key``."""
    sk = _args.as_bytes("secret_key", secret_key, SECRET_KEY_LEN)
    return vrf_prove(sk, vrf_alpha(seed, height, round))


def leader_order(
    seed: bytes,
    height: int,
    public_keys: Sequence[bytes],
    weights: Sequence[int],
    count: int | None = None,
) -> list[int]:
    """The leader order of ``height``: indices into ``public_keys``/``weights``, round 0's leader
    first, the first ``min(count, n)`` of them (all n if ``count`` is None).

    ``ValueError`` for an empty set, sequences of different lengths, a zero weight or a repeated
    key. O(n log n + count log n), natively, with the GIL released.
    """
    s, h, w = _seed(seed), _uint("height", height, MAX_HEIGHT), _weights_buffer(weights)
    limit = len(w) // 8 if count is None else min(_args.index("count", count), len(w) // 8)
    return _with_keys(lambda ks: _native.leader_order(s, h, ks, w, limit), public_keys)


def leader_rank(
    seed: bytes, height: int, public_keys: Sequence[bytes], weights: Sequence[int], public_key: bytes
) -> int:
    """The position of ``public_key`` in the leader order of ``height`` (0 leads round 0).
    ``ValueError`` if the key is not in the set (or the set is malformed)."""
    s, h, w = _seed(seed), _uint("height", height, MAX_HEIGHT), _weights_buffer(weights)
    key = _args.as_bytes("public_key", public_key, PUBLIC_KEY_LEN)
    return _with_keys(lambda ks: _native.leader_rank(s, h, ks, w, key), public_keys)


def round_leader(
    seed: bytes, height: int, round: int, public_keys: Sequence[bytes], weights: Sequence[int]
) -> int:
    """The index of the leader of ``round`` at ``height``: entry ``round mod n`` of the order."""
    s, h, w = _seed(seed), _uint("height", height, MAX_HEIGHT), _weights_buffer(weights)
    r = _uint("round", round, MAX_ROUND)
    return _with_keys(lambda ks: _native.round_leader(s, h, r, ks, w), public_keys)


def check_proposer(
    seed: bytes,
    height: int,
    round: int,
    public_keys: Sequence[bytes],
    weights: Sequence[int],
    proposer: bytes,
    proof: bytes,
) -> bytes:
    """The 64-byte VRF output of an eligible proposal: ``proposer`` leads ``round`` at ``height``
    and ``proof`` is its valid VRF proof over :func:`vrf_alpha` ``(seed, height, round)``. The
    output is what the block header's ``vrf_output`` must equal, and the seed of height + 1.

    Raises :class:`IneligibleProposer` (``code`` ``not_in_set``, ``wrong_rank`` or
    ``bad_vrf_proof``); ``ValueError``/``TypeError`` for malformed arguments or set.
    """
    s, h, w = _seed(seed), _uint("height", height, MAX_HEIGHT), _weights_buffer(weights)
    r = _uint("round", round, MAX_ROUND)
    pk = _args.as_bytes("proposer", proposer, PUBLIC_KEY_LEN)
    pi = _args.as_bytes("proof", proof, VRF_PROOF_LEN)
    return _with_keys(lambda ks: _native.check_proposer(s, h, r, ks, w, pk, pi), public_keys)
