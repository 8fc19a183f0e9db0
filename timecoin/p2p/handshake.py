"""The handshake (DESIGN §8): HELLO checks and the AUTH signatures that prove the node key and,
for a masternode, its registered key.

Both sides send HELLO on connect (version, network, genesis hash, height and tip, node key, a
fresh 32-byte nonce, listen port, flags). On the other's HELLO each side checks it
(:func:`check_hello`) and answers AUTH: its node key's signature over
:func:`~timecoin.p2p.messages.handshake_transcript` of both nonces and keys, plus, for a
masternode, the masternode key's signature over the same transcript. A side is connected once
the other's AUTH verifies (:func:`verify_auth`). A signature recorded on one connection is
useless on another: it covers the receiver's fresh nonce.

Pure functions over bytes; no I/O.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from timecoin import crypto
from timecoin._args import PUBLIC_KEY_LEN, SIGNATURE_LEN
from timecoin.p2p.messages import (
    FLAG_MASTERNODE,
    MIN_PROTOCOL_VERSION,
    PROTOCOL_VERSION,
    Auth,
    Hello,
    handshake_transcript,
    masternode_transcript,
)

NONCE_LEN = 32


class HandshakeError(Exception):
    """A handshake that cannot go on. ``code`` is stable (``wrong-network``, ``wrong-genesis``,
    ``old-version``, ``self-connection``, ``bad-signature``, ``bad-masternode-signature``);
    ``ban`` says whether the peer is to be banned for it."""

    def __init__(self, code: str, message: str, *, ban: bool) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.ban = ban


@dataclass(frozen=True, slots=True)
class LocalIdentity:
    """This node's side of every handshake."""

    network: int
    genesis_hash: bytes
    node_secret: bytes
    node_key: bytes
    masternode_secret: bytes | None = None
    masternode_key: bytes | None = None

    @classmethod
    def create(
        cls, network: int, genesis_hash: bytes, node_secret: bytes, masternode_secret: bytes | None = None
    ) -> LocalIdentity:
        return cls(
            network,
            genesis_hash,
            node_secret,
            crypto.public_key(node_secret),
            masternode_secret,
            crypto.public_key(masternode_secret) if masternode_secret is not None else None,
        )

    def hello(self, height: int, tip_hash: bytes, listen_port: int, nonce: bytes | None = None) -> Hello:
        """Our HELLO with a fresh random nonce (or ``nonce``)."""
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

    def auth(self, ours: Hello, theirs: Hello) -> Auth:
        """Our AUTH answering their HELLO."""
        transcript = handshake_transcript(
            self.network, self.genesis_hash, ours.nonce, theirs.nonce, self.node_key, theirs.node_key
        )
        signature = crypto.sign(self.node_secret, transcript)
        if self.masternode_secret is None or self.masternode_key is None:
            return Auth(signature)
        mn_sig = crypto.sign(self.masternode_secret, masternode_transcript(transcript, self.masternode_key))
        return Auth(signature, self.masternode_key, mn_sig)


def check_hello(local: LocalIdentity, theirs: Hello) -> None:
    """Raises :class:`HandshakeError` for a peer on another network or chain, with a protocol
    older than :data:`~timecoin.p2p.messages.MIN_PROTOCOL_VERSION` (all banned), or with our
    own node key (a connection to ourselves: not banned)."""
    if theirs.network != local.network:
        raise HandshakeError("wrong-network", f"peer is on network {theirs.network}", ban=True)
    if theirs.genesis_hash != local.genesis_hash:
        raise HandshakeError("wrong-genesis", f"peer's genesis is {theirs.genesis_hash.hex()}", ban=True)
    if theirs.version < MIN_PROTOCOL_VERSION:
        raise HandshakeError(
            "old-version", f"protocol {theirs.version} is older than {MIN_PROTOCOL_VERSION}", ban=True
        )
    if theirs.node_key == local.node_key:
        raise HandshakeError("self-connection", "peer has our own node key", ban=False)


def verify_auth(local: LocalIdentity, ours: Hello, theirs: Hello, auth: Auth) -> bytes | None:
    """Checks their AUTH against both HELLOs. Returns the masternode key they proved (``None``
    if they claimed none); raises :class:`HandshakeError` (banned) for a bad signature. Whether
    the masternode key is registered is the caller's question."""
    transcript = handshake_transcript(
        local.network, local.genesis_hash, theirs.nonce, ours.nonce, theirs.node_key, local.node_key
    )
    if not crypto.verify(theirs.node_key, transcript, auth.signature):
        raise HandshakeError(
            "bad-signature", "node key signature over the handshake does not verify", ban=True
        )
    claimed = bool(theirs.flags & FLAG_MASTERNODE)
    if not claimed:
        if auth.masternode_key != bytes(PUBLIC_KEY_LEN) or auth.masternode_signature != bytes(SIGNATURE_LEN):
            raise HandshakeError(
                "bad-masternode-signature", "masternode proof without the HELLO flag", ban=True
            )
        return None
    if not crypto.verify(
        auth.masternode_key, masternode_transcript(transcript, auth.masternode_key), auth.masternode_signature
    ):
        raise HandshakeError(
            "bad-masternode-signature",
            "masternode key signature over the handshake does not verify",
            ban=True,
        )
    return auth.masternode_key
