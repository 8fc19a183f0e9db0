"""The Noise transport's native binding (native/src/noise.rs through ``timecoin_native``) against
the published Cacophony test vector of ``Noise_XX_25519_ChaChaPoly_SHA256`` (the one the snow
crate's repository ships, tests/data/noise/): with the vector's static and ephemeral keys and
prologue, every handshake message written is the vector's ciphertext byte for byte, every one
read gives back its payload, the handshake hash matches, and the transport messages after it,
alternating direction as the vector does, encrypt to the vector's ciphertexts behind the u16
big-endian length prefix of our stream framing and decrypt back. Also: a transport message with
one flipped byte is refused and nothing of it is returned; a plaintext over one message's
maximum is split into consecutive messages of at most 65,519 plaintext bytes."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import timecoin_native as tn

VECTORS = Path(__file__).parent.parent / "data" / "noise" / "cacophony_XX_25519_ChaChaPoly_SHA256.json"


def test_the_protocol_is_the_vectors():
    (vector,) = json.loads(VECTORS.read_text())["vectors"]
    assert vector["protocol_name"] == tn.NOISE_PROTOCOL == "Noise_XX_25519_ChaChaPoly_SHA256"


def test_cacophony_vector_through_the_binding():
    (vector,) = json.loads(VECTORS.read_text())["vectors"]
    h = bytes.fromhex
    initiator = tn.NoiseHandshake(
        True, h(vector["init_prologue"]), h(vector["init_static"]), h(vector["init_ephemeral"])
    )
    responder = tn.NoiseHandshake(
        False, h(vector["resp_prologue"]), h(vector["resp_static"]), h(vector["resp_ephemeral"])
    )
    messages = [(h(m["payload"]), h(m["ciphertext"])) for m in vector["messages"]]
    sides = [initiator, responder]
    for i, (payload, ciphertext) in enumerate(messages[:3]):
        sender, receiver = sides[i % 2], sides[1 - i % 2]
        assert sender.write_message(payload) == ciphertext
        assert receiver.read_message(ciphertext) == payload
    assert initiator.finished and responder.finished
    assert initiator.handshake_hash == responder.handshake_hash == h(vector["handshake_hash"])
    assert initiator.remote_static == tn.noise_public_key(h(vector["resp_static"]))
    assert responder.remote_static == tn.noise_public_key(h(vector["init_static"]))
    transports = [initiator.finish(), responder.finish()]
    for i, (payload, ciphertext) in enumerate(messages[3:], start=3):
        sender, receiver = transports[i % 2], transports[1 - i % 2]
        wire = sender.encrypt(payload)
        assert wire == len(ciphertext).to_bytes(2, "big") + ciphertext
        assert receiver.decrypt(wire) == payload
    with pytest.raises(RuntimeError):
        initiator.finish()


def _session() -> tuple[tn.NoiseTransport, tn.NoiseTransport]:
    a = tn.NoiseHandshake(True, b"p", os.urandom(32))
    b = tn.NoiseHandshake(False, b"p", os.urandom(32))
    b.read_message(a.write_message(b""))
    a.read_message(b.write_message(b""))
    b.read_message(a.write_message(b""))
    return a.finish(), b.finish()


def test_a_flipped_byte_is_refused_and_nothing_returned():
    a, b = _session()
    wire = bytearray(a.encrypt(b"one") + a.encrypt(b"two"))
    wire[-1] ^= 0x01
    with pytest.raises(ValueError, match="decrypt"):
        b.decrypt(bytes(wire))


def test_large_plaintext_is_split_and_reassembled_across_reads():
    a, b = _session()
    plaintext = os.urandom(3 * tn.NOISE_MAX_PLAINTEXT + 7)
    wire = a.encrypt(plaintext)
    assert len(wire) == len(plaintext) + 4 * (2 + tn.NOISE_TAG_LEN)
    assert a.sending_nonce == 4
    first = int.from_bytes(wire[:2], "big")
    assert first == tn.NOISE_MAX_MESSAGE_LEN
    got = b"".join(b.decrypt(wire[i : i + 1000]) for i in range(0, len(wire), 1000))
    assert got == plaintext and b.buffered == 0 and b.receiving_nonce == 4
