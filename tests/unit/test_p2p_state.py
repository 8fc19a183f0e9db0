"""P2P bookkeeping (DESIGN §8): token buckets, the seen-cache, the address book and ban list
persisted in the datadir, and the handshake's signature checks (a replayed signature, a forged
masternode proof, wrong network or genesis, an old protocol)."""

from __future__ import annotations

import dataclasses
import os

import pytest

from timecoin.p2p import messages as m
from timecoin.p2p.addrman import AddrMan
from timecoin.p2p.banman import BanMan, host_target, key_target
from timecoin.p2p.gossip import SeenCache, item_key
from timecoin.p2p.handshake import HandshakeError, LocalIdentity, check_hello, verify_auth
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


def pair(masternode: bytes | None = None):
    a = LocalIdentity.create(2, GENESIS, os.urandom(32))
    b = LocalIdentity.create(2, GENESIS, os.urandom(32), masternode)
    return a, b, a.hello(0, bytes(32), 1), b.hello(0, bytes(32), 2)


def test_handshake_proves_keys_both_ways():
    a, b, ha, hb = pair()
    assert verify_auth(a, ha, hb, b.auth(hb, ha)) is None
    assert verify_auth(b, hb, ha, a.auth(ha, hb)) is None


def test_replayed_signature_fails_on_a_new_nonce():
    a, b, ha, hb = pair()
    recorded = b.auth(hb, ha)
    fresh = a.hello(0, bytes(32), 1)  # a's next connection has a new nonce
    with pytest.raises(HandshakeError) as e:
        verify_auth(a, fresh, hb, recorded)
    assert e.value.code == "bad-signature" and e.value.ban


def test_masternode_proof_and_forgery():
    mn_secret = os.urandom(32)
    a, b, ha, hb = pair(mn_secret)
    auth = b.auth(hb, ha)
    assert verify_auth(a, ha, hb, auth) == b.masternode_key
    # Claiming someone else's masternode key without its secret fails.
    forged = dataclasses.replace(
        auth, masternode_key=LocalIdentity.create(2, GENESIS, os.urandom(32)).node_key
    )
    with pytest.raises(HandshakeError) as e:
        verify_auth(a, ha, hb, forged)
    assert e.value.code == "bad-masternode-signature"
    # A proof without the HELLO flag is refused too.
    with pytest.raises(HandshakeError):
        verify_auth(a, ha, dataclasses.replace(hb, flags=0), auth)


@pytest.mark.parametrize(
    "change,code,ban",
    [
        ({"network": 0}, "wrong-network", True),
        ({"genesis_hash": b"x" * 32}, "wrong-genesis", True),
        ({"version": m.MIN_PROTOCOL_VERSION - 1}, "old-version", True),
    ],
)
def test_check_hello(change, code, ban):
    a, _, ha, hb = pair()
    check_hello(a, hb)
    with pytest.raises(HandshakeError) as e:
        check_hello(a, dataclasses.replace(hb, **change))
    assert (e.value.code, e.value.ban) == (code, ban)
    with pytest.raises(HandshakeError) as e:
        check_hello(a, ha)
    assert (e.value.code, e.value.ban) == ("self-connection", False)
