"""P2P bookkeeping (DESIGN §8): token buckets, the seen-cache, the address book and ban list
persisted in the datadir, and the handshake's checks: the Noise XX handshake between two
:class:`NoiseSession` objects proves both node keys; another node's identity payload, a forged
masternode proof, a different genesis (the prologue) and a tampered message are refused; HELLO of
a wrong network or genesis, an old protocol or another key than the proven one is refused."""

from __future__ import annotations

import dataclasses
import os

import pytest

from timecoin.p2p import messages as m
from timecoin.p2p.addrman import AddrMan
from timecoin.p2p.banman import BanMan, host_target, key_target
from timecoin.p2p.gossip import SeenCache, item_key
from timecoin.p2p.handshake import (
    IDENTITY_LEN,
    HandshakeError,
    LocalIdentity,
    NoiseSession,
    PeerIdentity,
    check_hello,
    identity_payload,
)
from timecoin.p2p.ratelimit import PeerLimits, TokenBucket
from timecoin.store.chainstore import ChainStore


class Clock:
    def __init__(self, t: float = 1000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def test_token_bucket_burst_then_rate():
    bucket = TokenBucket(rate=10.0, capacity=5.0, now=0.0)
    assert all(bucket.take(1, 0.0) for _ in range(5))
    assert not bucket.take(1, 0.0)
    assert not bucket.take(1, 0.05)  # half a token back
    assert bucket.take(1, 0.1)
    assert bucket.tokens(100.0) == 5.0  # capped at capacity


def test_request_class_allows_100_per_minute():
    limits = PeerLimits(0.0)
    allowed = sum(limits.allow(m.RateClass.REQUEST, 1, 0.0) for _ in range(150))
    assert allowed == 100
    assert not limits.allow(m.RateClass.REQUEST, 1, 0.3)
    assert limits.allow(m.RateClass.REQUEST, 1, 0.6)  # 100/min refills one per 0.6 s
    assert limits.allow(m.RateClass.RESPONSE, 10**9, 0.0)  # no bucket: limited elsewhere


def test_seen_cache_remembers_at_least_capacity():
    cache = SeenCache(100)
    keys = [item_key(i.to_bytes(4, "little")) for i in range(250)]
    assert all(cache.add(k) for k in keys)
    assert not any(cache.add(k) for k in keys[-100:])  # the last `capacity` keys are remembered
    assert keys[0] not in cache
    assert len(cache) <= 200
    # A forgotten key (a transaction a full mempool dropped) counts as new again.
    cache.discard(keys[-1])
    cache.discard(keys[-150])  # in the older generation
    assert cache.add(keys[-1]) and cache.add(keys[-150])
    assert not cache.add(keys[-1])


def test_bans_persist_and_expire(tmp_path):
    clock = Clock()
    store = ChainStore.open(tmp_path)
    bans = BanMan(store, clock)
    bans.ban(key_target(b"k" * 32), 60, "bad block")
    bans.ban(host_target("10.0.0.1"), 10, "garbage")
    store.close()
    store = ChainStore.open(tmp_path)
    reopened = BanMan(store, clock)
    assert reopened.is_banned(key_target(b"k" * 32)) and reopened.is_banned(host_target("10.0.0.1"))
    assert [b.reason for b in reopened.bans()] == ["garbage", "bad block"]
    clock.t += 30
    assert not reopened.is_banned(host_target("10.0.0.1"))
    assert reopened.is_banned(key_target(b"k" * 32))
    clock.t += 31
    assert BanMan(store, clock).bans() == []
    assert list(store.items(b"peers", b"ban:")) == []
    store.close()


def test_addrman_persists_and_backs_off(tmp_path):
    clock, wall = Clock(), Clock(1_700_000_000)
    store = ChainStore.open(tmp_path)
    book = AddrMan(store, clock, wall)
    assert book.add([("127.0.0.1", 1, 5), ("::1", 2, 6), ("example.com", 3, 7), ("10.0.0.1", 0, 1)]) == 2
    book.mark_failed("127.0.0.1", 1)
    assert book.select(set()) == ("::1", 2)  # the failed one waits out its retry delay
    assert book.select({("::1", 2)}) is None
    clock.t += 61
    assert book.select({("::1", 2)}) == ("127.0.0.1", 1)
    book.flush()
    store.close()
    store = ChainStore.open(tmp_path)
    again = AddrMan(store, clock, wall)
    assert ("127.0.0.1", 1) in again and ("::1", 2) in again and len(again) == 2
    store.close()


# -- handshake -------------------------------------------------------------------------------------

GENESIS = b"g" * 32


MAGIC = b"TEST"


def pair(masternode: bytes | None = None):
    a = LocalIdentity.create(2, GENESIS, os.urandom(32))
    b = LocalIdentity.create(2, GENESIS, os.urandom(32), masternode)
    return a, b, a.hello(0, bytes(32), 1), b.hello(0, bytes(32), 2)


def handshake(
    initiator: LocalIdentity,
    responder: LocalIdentity,
    *,
    identity: bytes | None = None,
    flip: int | None = None,
) -> tuple[NoiseSession, NoiseSession]:
    """Runs the three messages between two sessions (``identity`` replaces the responder's
    payload; ``flip`` flips a byte of message 2 at that offset)."""
    i = NoiseSession(initiator, MAGIC, initiator=True)
    r = NoiseSession(responder, MAGIC, initiator=False, identity=identity)
    m2 = bytearray(r.feed(i.start()))
    if flip is not None:
        m2[flip] ^= 1
    m3 = i.feed(bytes(m2))
    assert r.feed(m3) == b""
    return i, r


def test_noise_handshake_proves_keys_both_ways():
    a, b, _, _ = pair()
    i, r = handshake(a, b)
    assert i.peer == PeerIdentity(b.node_key, None) and r.peer == PeerIdentity(a.node_key, None)
    assert i.transport is not None and r.transport is not None
    assert i.transport.handshake_hash == r.transport.handshake_hash
    assert r.transport.decrypt(i.transport.encrypt(b"frames")) == b"frames"
    assert i.transport.decrypt(r.transport.encrypt(b"back")) == b"back"


def test_another_nodes_identity_is_refused():
    a, b, _, _ = pair()
    victim = LocalIdentity.create(2, GENESIS, os.urandom(32))
    # b presents the victim's genuine payload (its signature covers the victim's static key)...
    with pytest.raises(HandshakeError) as e:
        handshake(a, b, identity=victim.identity)
    assert e.value.code == "bad-signature" and e.value.ban
    # ...or claims the victim's key with a signature of its own over its static key.
    forged = victim.node_key + identity_payload(b.node_secret, b.noise_key)[32:]
    with pytest.raises(HandshakeError) as e:
        handshake(a, b, identity=forged)
    assert e.value.code == "bad-signature"
    with pytest.raises(HandshakeError) as e:
        handshake(a, b, identity=b.identity[:-1])
    assert e.value.code == "bad-handshake"


def test_masternode_proof_and_forgery():
    mn_secret = os.urandom(32)
    a, b, _, _ = pair(mn_secret)
    i, _ = handshake(a, b)
    assert i.peer is not None and i.peer.masternode_key == b.masternode_key
    # Claiming someone else's masternode key without its secret fails.
    other = LocalIdentity.create(2, GENESIS, os.urandom(32)).node_key
    forged = b.identity[:IDENTITY_LEN] + other + b.identity[IDENTITY_LEN + 32 :]
    with pytest.raises(HandshakeError) as e:
        handshake(a, b, identity=forged)
    assert e.value.code == "bad-masternode-signature"


def test_wrong_genesis_or_a_tampered_message_fails_the_noise_handshake():
    a, _, _, _ = pair()
    elsewhere = LocalIdentity.create(2, b"h" * 32, os.urandom(32))
    with pytest.raises(HandshakeError) as e:
        handshake(a, elsewhere)
    assert e.value.code == "noise-failed" and e.value.ban
    _, b, _, _ = pair()
    with pytest.raises(HandshakeError) as e:
        handshake(a, b, flip=40)  # inside message 2's encrypted static key
    assert e.value.code == "noise-failed"
    responder = NoiseSession(b, MAGIC, initiator=False)
    with pytest.raises(HandshakeError) as e:
        responder.feed(b"GET / HTTP/1.1\r\n")  # declares 18,245 bytes for the 32-byte message 1
    assert e.value.code == "bad-handshake"
    # A node from before the encrypted transport opens with a plaintext HELLO frame.
    with pytest.raises(HandshakeError) as e:
        NoiseSession(b, MAGIC, initiator=False).feed(
            MAGIC + bytes([m.MessageType.HELLO, 0]) + b"\x90\x00\x00\x00"
        )
    # Refused, not banned: an honest node waiting for its upgrade must get back in after it.
    assert (e.value.code, e.value.ban) == ("old-version", False)


def test_a_self_connection_is_refused_without_a_ban():
    a, _, _, _ = pair()
    with pytest.raises(HandshakeError) as e:
        handshake(a, a)
    assert (e.value.code, e.value.ban) == ("self-connection", False)


@pytest.mark.parametrize(
    "change,code,ban",
    [
        ({"network": 0}, "wrong-network", True),
        ({"genesis_hash": b"x" * 32}, "wrong-genesis", True),
        ({"version": m.MIN_PROTOCOL_VERSION - 1}, "old-version", False),
        ({"node_key": b"k" * 32}, "identity-mismatch", True),
        ({"flags": m.FLAG_MASTERNODE}, "identity-mismatch", True),
    ],
)
def test_check_hello(change, code, ban):
    a, b, _, hb = pair()
    proven = PeerIdentity(b.node_key, None)
    check_hello(a, hb, proven)
    with pytest.raises(HandshakeError) as e:
        check_hello(a, dataclasses.replace(hb, **change), proven)
    assert (e.value.code, e.value.ban) == (code, ban)
