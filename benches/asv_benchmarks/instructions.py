"""Instructions per call of the native and Cython hot paths under callgrind (:mod:`callgrind`,
:data:`workloads.CALLGRIND`): deterministic to well under 0.1 % on one build, so ``.ci/bench``
fails when one grows by more than its stated factor. Skipped where valgrind is not installed."""

from __future__ import annotations

import callgrind


class Instructions:
    """One ``track_`` per workload: instructions per call (lower is better)."""

    unit = "instructions"
    timeout = callgrind.TIMEOUT
    number = 1
    repeat = 1

    def track_verify_batch_256(self) -> int:
        """Ed25519 batch verification of 256 signatures on one core (native, ZIP-215)."""
        return callgrind.instructions("verify_batch_256")

    def track_merkle_root_10k(self) -> int:
        """The merkle root of 10,000 txids on one core (native BLAKE3)."""
        return callgrind.instructions("merkle_root_10k")

    def track_vrf_prove_16(self) -> int:
        """16 VRF proofs (native RFC 9381 ECVRF-EDWARDS25519-SHA512-TAI)."""
        return callgrind.instructions("vrf_prove_16")

    def track_frame_decoder_2k(self) -> int:
        """2,000 P2P frames through the Cython FrameDecoder from 4 KiB reads."""
        return callgrind.instructions("frame_decoder_2k")
