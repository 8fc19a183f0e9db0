"""The cost of the encrypted P2P transport (docs/p2p.md "Transport", issue 14 item 1), as a ratio
in one run: the same stream of frames through the receive path with and without Noise.

* plaintext: 20,000 frames of 110 bytes (a one-item VOTE_BATCH of 100 bytes each, the consensus
  hot path) decoded from 64 KiB reads (``FrameDecoder.feed``), as the node did before the
  transport was encrypted;
* encrypted: the same frames encrypted as the sender's flushes do (one native call per 64 KiB of
  queued frames), then decrypted per 64 KiB read (one native call, GIL released) and decoded.

Best of alternating rounds; ``extra_info`` records frames/s of both, their ratio, and the
native encrypt and decrypt throughput in MB/s alone. The gossip figure before and after
(``benches/bench_p2p.py``, 4 nodes) is in docs/p2p.md "Performance". Run with
``pytest benches/bench_noise.py --benchmark-enable -s``.
"""

from __future__ import annotations

import os
import time

import timecoin_native

from timecoin.p2p import messages as m
from timecoin.p2p.framing import FrameDecoder, encode_frame
from timecoin.p2p.messages import MessageType

FRAMES = 20_000
READ = 64 * 1024
"""Bytes per socket read and per sender flush."""
ROUNDS = 5
MAGIC = b"DTME"


def _session() -> tuple[timecoin_native.NoiseTransport, timecoin_native.NoiseTransport]:
    a = timecoin_native.NoiseHandshake(True, b"bench", os.urandom(32))
    b = timecoin_native.NoiseHandshake(False, b"bench", os.urandom(32))
    b.read_message(a.write_message(b""))
    a.read_message(b.write_message(b""))
    b.read_message(a.write_message(b""))
    return a.finish(), b.finish()


def _chunks(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


def _plaintext(reads: list[bytes]) -> int:
    decoder = FrameDecoder(MAGIC, m.FRAME_LIMITS)
    return sum(len(decoder.feed(r)) for r in reads)


def _encrypted(flushes: list[bytes]) -> tuple[int, float, float]:
    """Frames decoded, seconds encrypting, seconds decrypting."""
    sender, receiver = _session()
    t0 = time.perf_counter()
    wire = b"".join(sender.encrypt(f) for f in flushes)
    t1 = time.perf_counter()
    decoder = FrameDecoder(MAGIC, m.FRAME_LIMITS)
    frames = 0
    decrypting = 0.0
    for r in _chunks(wire, READ):
        d0 = time.perf_counter()
        plain = receiver.decrypt(r)
        decrypting += time.perf_counter() - d0
        frames += len(decoder.feed(plain))
    return frames, t1 - t0, decrypting


def test_noise_frames_ratio(benchmark):
    stream = b"".join(
        encode_frame(MAGIC, MessageType.VOTE_BATCH, m.encode_items([os.urandom(100)])) for _ in range(FRAMES)
    )
    pieces = _chunks(stream, READ)

    def measure() -> dict[str, float]:
        best_plain = best_total = best_enc = best_dec = float("inf")
        for _ in range(ROUNDS):
            t0 = time.perf_counter()
            assert _plaintext(pieces) == FRAMES
            best_plain = min(best_plain, time.perf_counter() - t0)
            t0 = time.perf_counter()
            frames, enc, dec = _encrypted(pieces)
            assert frames == FRAMES
            best_total = min(best_total, time.perf_counter() - t0)
            best_enc, best_dec = min(best_enc, enc), min(best_dec, dec)
        return {
            "plaintext_frames_per_s": FRAMES / best_plain,
            "encrypted_frames_per_s": FRAMES / best_total,
            "cost_ratio": best_total / best_plain,
            "encrypt_mb_per_s": len(stream) / best_enc / 1e6,
            "decrypt_mb_per_s": len(stream) / best_dec / 1e6,
        }

    result = benchmark.pedantic(measure, rounds=1, iterations=1)
    for key, value in result.items():
        benchmark.extra_info[key] = round(value, 2)
    print(
        f"\nframes/s plaintext {result['plaintext_frames_per_s']:,.0f}, encrypted+decrypted "
        f"{result['encrypted_frames_per_s']:,.0f} (x{result['cost_ratio']:.2f} the time); "
        f"encrypt {result['encrypt_mb_per_s']:.0f} MB/s, decrypt {result['decrypt_mb_per_s']:.0f} MB/s"
    )
