"""The handshake (DESIGN §8; docs/p2p.md "Handshake"): the Noise XX handshake that encrypts
the connection and proves each side's node key (and a masternode's registered key), then HELLO.

**Noise** (``Noise_XX_25519_ChaChaPoly_SHA256``, :mod:`timecoin_native`'s binding of the
``snow`` crate). The prologue (:func:`noise_prologue`) binds the network (its magic and id) and
the genesis hash: a peer of another network or chain fails the second handshake message. The
X25519 static key of each node is fresh per process; the node's Ed25519 identity key vouches for
it inside the handshake payload, as libp2p-noise binds identities: the responder's payload (in
message 2) and the initiator's (in message 3), both encrypted, are :func:`identity_payload`

    node key (32) ‖ Ed25519 signature by the node key over STATIC_KEY_DOMAIN ‖ Noise static key (64)
    [ ‖ masternode key (32) ‖ its signature over MASTERNODE_KEY_DOMAIN ‖ static key ‖ node key (64) ]

:func:`verify_identity` checks it against the static key the Noise handshake proved the sender
holds: whoever holds the static secret is the node key's owner, and nobody can present another
node's signature with a static key of their own. That is the only identity proof; the session
keys then authenticate every byte after it.

**HELLO** (version, network, genesis, height and tip, node key, listen port, flags) is the first
frame each side sends inside the encrypted channel; :func:`check_hello` checks the version and
the chain and that its node key and masternode flag are the ones the Noise payload proved (its
nonce field is unused: every Noise session has fresh ephemeral keys). AUTH is no longer sent or
accepted.

No I/O here: :class:`NoiseSession` turns received bytes into bytes to send.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass

import timecoin_native

from timecoin import crypto
from timecoin._args import PUBLIC_KEY_LEN, SIGNATURE_LEN
from timecoin.p2p.messages import (
    FLAG_MASTERNODE,
    MIN_PROTOCOL_VERSION,
    PROTOCOL_VERSION,
    Hello,
)

NONCE_LEN = 32
NOISE_PROTOCOL: str = timecoin_native.NOISE_PROTOCOL
"""``Noise_XX_25519_ChaChaPoly_SHA256``: SHA-256 as libp2p-noise and Lightning's BOLT 8 use it
(the hash runs only in the handshake, so BLAKE2s's speed would buy nothing)."""
NOISE_KEY_LEN = 32
"""Bytes of an X25519 key (the Noise DHLEN)."""
NOISE_TAG_LEN: int = timecoin_native.NOISE_TAG_LEN
PROLOGUE_DOMAIN = b"TIME Coin p2p noise v1"
STATIC_KEY_DOMAIN = b"TIME Coin p2p noise static key v1:"
"""What a node key signs, followed by the Noise static key (libp2p-noise's
``noise-libp2p-static-key:``)."""
MASTERNODE_KEY_DOMAIN = b"TIME Coin p2p noise masternode key v1:"
"""What a masternode key signs, followed by the Noise static key and the node key."""
IDENTITY_LEN = PUBLIC_KEY_LEN + SIGNATURE_LEN
"""Bytes of a node's identity payload (96); a masternode's has twice that (192)."""
LENGTH_PREFIX = struct.Struct(">H")
"""Each Noise message on the stream follows its length, a big-endian u16 (Noise spec §13)."""
HANDSHAKE_MESSAGE_MAX = (
    NOISE_KEY_LEN,
    NOISE_KEY_LEN + (NOISE_KEY_LEN + NOISE_TAG_LEN) + 2 * IDENTITY_LEN + NOISE_TAG_LEN,
    (NOISE_KEY_LEN + NOISE_TAG_LEN) + 2 * IDENTITY_LEN + NOISE_TAG_LEN,
)
"""Largest length of handshake messages 1, 2 and 3 (bytes): message 1 is the bare ephemeral key
(empty payload); 2 and 3 carry an encrypted static key and identity payload. A longer declared
length fails the handshake at once, before its bytes are buffered."""


class HandshakeError(Exception):
    """A handshake that cannot go on. ``code`` is stable (``noise-failed``, ``bad-handshake``,
    ``bad-signature``, ``bad-masternode-signature``, ``self-connection``, ``identity-mismatch``,
    ``wrong-network``, ``wrong-genesis``, ``old-version``); ``ban`` says whether the peer is to
    be banned for it."""

    def __init__(self, code: str, message: str, *, ban: bool) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.ban = ban


def noise_prologue(magic: bytes, network: int, genesis_hash: bytes) -> bytes:
    """The Noise prologue: :data:`PROLOGUE_DOMAIN` ‖ magic (4) ‖ network id (1) ‖ genesis hash
    (32). Both sides mix it into the handshake hash; it differs across networks and chains."""
    return PROLOGUE_DOMAIN + magic + bytes([network]) + genesis_hash


def identity_payload(node_secret: bytes, noise_key: bytes, masternode_secret: bytes | None = None) -> bytes:
    """The handshake payload vouching for ``noise_key`` (module docstring): 96 bytes, or 192
    with a masternode key's proof."""
    node_key = crypto.public_key(node_secret)
    payload = node_key + crypto.sign(node_secret, STATIC_KEY_DOMAIN + noise_key)
    if masternode_secret is None:
        return payload
    mn_key = crypto.public_key(masternode_secret)
    return payload + mn_key + crypto.sign(masternode_secret, MASTERNODE_KEY_DOMAIN + noise_key + node_key)


@dataclass(frozen=True, slots=True)
class PeerIdentity:
    """What a finished Noise handshake proved about the other side."""

    node_key: bytes
    masternode_key: bytes | None
    """The masternode key it proved, registered or not (the caller asks the registry)."""


@dataclass(frozen=True, slots=True)
class LocalIdentity:
    """This node's side of every handshake: its keys, its Noise static key (fresh per process)
    and the identity payload vouching for it."""

    network: int
    genesis_hash: bytes
    node_secret: bytes
    node_key: bytes
    noise_secret: bytes
    noise_key: bytes
    identity: bytes
    masternode_secret: bytes | None = None
    masternode_key: bytes | None = None

    @classmethod
    def create(
        cls, network: int, genesis_hash: bytes, node_secret: bytes, masternode_secret: bytes | None = None
    ) -> LocalIdentity:
        noise_secret = os.urandom(NOISE_KEY_LEN)
        noise_key = timecoin_native.noise_public_key(noise_secret)
        return cls(
            network,
            genesis_hash,
            node_secret,
            crypto.public_key(node_secret),
            noise_secret,
            noise_key,
            identity_payload(node_secret, noise_key, masternode_secret),
            masternode_secret,
            crypto.public_key(masternode_secret) if masternode_secret is not None else None,
        )

    def hello(self, height: int, tip_hash: bytes, listen_port: int, nonce: bytes | None = None) -> Hello:
        """Our HELLO (``nonce`` random unless given; unused by the receiver)."""
        return Hello(
            PROTOCOL_VERSION,
            self.network,
            self.genesis_hash,
            height,
            tip_hash,
            self.node_key,
            nonce if nonce is not None else os.urandom(NONCE_LEN),
            listen_port,
            FLAG_MASTERNODE if self.masternode_secret is not None else 0,
        )


def verify_identity(local: LocalIdentity, payload: bytes, remote_static: bytes) -> PeerIdentity:
    """Checks a peer's identity payload against the Noise static key it proved holding.
    Raises :class:`HandshakeError`: ``bad-handshake`` (wrong length), ``bad-signature`` or
    ``bad-masternode-signature`` (banned), ``self-connection`` (our own node key; not banned)."""
    if len(payload) not in (IDENTITY_LEN, 2 * IDENTITY_LEN):
        raise HandshakeError(
            "bad-handshake",
            f"identity payload of {len(payload)} bytes, not {IDENTITY_LEN} or {2 * IDENTITY_LEN}",
            ban=True,
        )
    node_key, signature = payload[:PUBLIC_KEY_LEN], payload[PUBLIC_KEY_LEN:IDENTITY_LEN]
    if not crypto.verify(node_key, STATIC_KEY_DOMAIN + remote_static, signature):
        raise HandshakeError(
            "bad-signature", "the node key's signature does not cover this Noise static key", ban=True
        )
    if node_key == local.node_key:
        raise HandshakeError("self-connection", "peer has our own node key", ban=False)
    if len(payload) == IDENTITY_LEN:
        return PeerIdentity(node_key, None)
    mn_key = payload[IDENTITY_LEN : IDENTITY_LEN + PUBLIC_KEY_LEN]
    mn_sig = payload[IDENTITY_LEN + PUBLIC_KEY_LEN :]
    if not crypto.verify(mn_key, MASTERNODE_KEY_DOMAIN + remote_static + node_key, mn_sig):
        raise HandshakeError(
            "bad-masternode-signature",
            "the masternode key's signature does not cover this static key and node key",
            ban=True,
        )
    return PeerIdentity(node_key, mn_key)


class NoiseSession:
    """The Noise XX handshake of one connection, as bytes in and bytes out (no I/O).

    The initiator sends :meth:`start`'s bytes on connect; every received chunk goes to
    :meth:`feed`, whose result is written back. Once :attr:`peer` is set the handshake is done:
    :attr:`transport` encrypts and decrypts from then on, and :attr:`leftover` holds bytes
    received past the last handshake message (already transport data)."""

    def __init__(
        self, local: LocalIdentity, magic: bytes, *, initiator: bool, identity: bytes | None = None
    ) -> None:
        self._local = local
        self._magic = magic
        self._initiator = initiator
        self._identity = local.identity if identity is None else identity
        """Our payload (tests substitute another to break it)."""
        self._state = timecoin_native.NoiseHandshake(
            initiator, noise_prologue(magic, local.network, local.genesis_hash), local.noise_secret
        )
        self._buf = bytearray()
        self._received = 0
        """Handshake messages read so far."""
        self.transport: timecoin_native.NoiseTransport | None = None
        self.peer: PeerIdentity | None = None
        self.leftover = b""

    def start(self) -> bytes:
        """Message 1 (the initiator's), length-prefixed; ``b""`` for the responder."""
        if not self._initiator:
            return b""
        return self._write(b"")

    def _write(self, payload: bytes) -> bytes:
        message = self._state.write_message(payload)
        return LENGTH_PREFIX.pack(len(message)) + message

    def feed(self, data: bytes) -> bytes:
        """Bytes to send in answer to ``data`` (maybe none). Raises :class:`HandshakeError`."""
        if self.peer is not None:
            raise RuntimeError("the handshake is finished")
        self._buf += data
        out = b""
        if self._received == 0 and self._buf[: len(self._magic)] == self._magic:
            # A frame header where a Noise message should be: a node from before the encrypted
            # transport, speaking plaintext frames (HELLO first).
            # Disconnected, never banned: it is an honest node waiting for its upgrade, and a ban
            # would keep it out for a day after it upgraded.
            raise HandshakeError(
                "old-version", "peer speaks plaintext frames, not the encrypted transport", ban=False
            )
        while self.peer is None and len(self._buf) >= LENGTH_PREFIX.size:
            (length,) = LENGTH_PREFIX.unpack_from(self._buf)
            # Message numbers: the responder reads 1 and 3, the initiator 2.
            number = 2 if self._initiator else 1 + 2 * self._received
            if length > HANDSHAKE_MESSAGE_MAX[number - 1]:
                raise HandshakeError(
                    "bad-handshake",
                    f"handshake message {number} declares {length} bytes, "
                    f"at most {HANDSHAKE_MESSAGE_MAX[number - 1]}",
                    ban=True,
                )
            end = LENGTH_PREFIX.size + length
            if len(self._buf) < end:
                break
            message = bytes(self._buf[LENGTH_PREFIX.size : end])
            del self._buf[:end]
            self._received += 1
            try:
                payload = self._state.read_message(message)
            except ValueError as e:
                raise HandshakeError(
                    "noise-failed",
                    f"handshake message {number} does not authenticate (another network or "
                    f"genesis, or tampered): {e}",
                    ban=True,
                ) from e
            if number == 1:
                if payload:
                    raise HandshakeError("bad-handshake", "handshake message 1 carries a payload", ban=True)
                out += self._write(self._identity)
                continue
            remote = self._state.remote_static
            assert remote is not None  # read with messages 2 and 3 of XX
            peer = verify_identity(self._local, payload, remote)
            if number == 2:
                out += self._write(self._identity)
            self.transport = self._state.finish()
            self.leftover = bytes(self._buf)
            self._buf.clear()
            self.peer = peer
        return out


def check_hello(local: LocalIdentity, theirs: Hello, proven: PeerIdentity) -> None:
    """Raises :class:`HandshakeError` for a HELLO of another network or chain, with a protocol
    older than :data:`~timecoin.p2p.messages.MIN_PROTOCOL_VERSION`, or whose node key or
    masternode flag is not what the Noise handshake proved (all banned)."""
    if theirs.network != local.network:
        raise HandshakeError("wrong-network", f"peer is on network {theirs.network}", ban=True)
    if theirs.genesis_hash != local.genesis_hash:
        raise HandshakeError("wrong-genesis", f"peer's genesis is {theirs.genesis_hash.hex()}", ban=True)
    if theirs.version < MIN_PROTOCOL_VERSION:
        raise HandshakeError(  # not banned: see the plaintext case above
            "old-version", f"protocol {theirs.version} is older than {MIN_PROTOCOL_VERSION}", ban=False
        )
    if theirs.node_key != proven.node_key:
        raise HandshakeError(
            "identity-mismatch", "HELLO's node key is not the one the Noise handshake proved", ban=True
        )
    if bool(theirs.flags & FLAG_MASTERNODE) != (proven.masternode_key is not None):
        raise HandshakeError(
            "identity-mismatch", "HELLO's masternode flag does not match the Noise handshake", ban=True
        )
