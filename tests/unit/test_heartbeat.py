"""Masternode heartbeats (DESIGN §5) and invariant 7 (DESIGN §12): liveness from signed
heartbeats, never an input to consensus.

* Encoding and signatures: a heartbeat round-trips, verifies, and any tampered byte (or another
  chain id) breaks it; malformed bytes are refused with ``bad-encoding``.
* The tracker, driven by a fake clock: unknown keys, wrong tier or network, bad signatures,
  stale, future and replayed heartbeats are refused with their code and change nothing; a
  masternode is online until 60 s pass without a heartbeat; the production gate needs 3 online.
* Invariant 7: two chains fed the same blocks, one with heartbeats arriving, expiring and being
  refused, have the same masternode set, weights, reward split and leader order at every height;
  importing the consensus path does not import the heartbeat module at all.
"""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import pytest

from timecoin import crypto
from timecoin.ledger.blockbuilder import assemble_block
from timecoin.ledger.chain import ChainState
from timecoin.ledger.genesis import build_genesis
from timecoin.masternode.heartbeat import (
    HEARTBEAT_REJECT_CODES,
    Heartbeat,
    HeartbeatRejected,
    HeartbeatTracker,
)
from timecoin.masternode.registry import Registry
from timecoin.masternode.status import masternode_list, masternode_status
from timecoin.params import DEVNET, HEARTBEAT_MAX_CLOCK_SKEW, Tier
from timecoin.testing.chaingen import Wallet, devnet_genesis

CONFIG, ACCOUNTS, MN_SEEDS = devnet_genesis(b"test-heartbeat", accounts=4, masternodes=3)
GENESIS = build_genesis(CONFIG)
CHAIN_ID = GENESIS.hash
T0 = 1_800_000_000.0


class Clock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def beat(i: int, at: float, **over: object) -> Heartbeat:
    fields = {"network": int(DEVNET.network), "tier": Tier.GOLD, "height": 7, "tip_hash": bytes(range(32))}
    fields.update(over)
    return Heartbeat.create(
        MN_SEEDS[i], over.pop("chain_id", CHAIN_ID), fields["network"], fields["tier"], fields["height"],
        fields["tip_hash"], int(at * 1000), "timecoind/0.1.0",
    )  # fmt: skip


@pytest.fixture
def tracker() -> tuple[HeartbeatTracker, Clock]:
    registry = Registry.from_genesis(DEVNET, GENESIS)
    clock = Clock()
    return HeartbeatTracker(DEVNET, CHAIN_ID, registry.tier_of, clock), clock


def refused(tracker: HeartbeatTracker, data: bytes | Heartbeat, code: str) -> None:
    before = {k: tracker.last(k) for k in map(crypto.public_key, MN_SEEDS)}
    with pytest.raises(HeartbeatRejected) as err:
        tracker.receive(data)
    assert err.value.code == code and code in HEARTBEAT_REJECT_CODES, str(err.value)
    assert {k: tracker.last(k) for k in before} == before


# -- encoding and signature ------------------------------------------------------------------------


def test_heartbeat_round_trips_and_verifies():
    hb = beat(0, T0)
    raw = hb.encode()
    assert len(raw) == 1 + 1 + 32 + 1 + 8 + 32 + 8 + 1 + len("timecoind/0.1.0") + 64
    assert Heartbeat.decode(raw) == hb and hb.verify(CHAIN_ID)
    assert hb.masternode_key == crypto.public_key(MN_SEEDS[0])
    assert not hb.verify(bytes(32))  # bound to the chain id
    assert hb.signing_message(CHAIN_ID).startswith(b"TIME Coin 2026-11-21 heartbeat v1\x00" + CHAIN_ID)


def test_every_tampered_byte_is_refused(tracker):
    t, _ = tracker
    raw = beat(0, T0).encode()
    for i in range(len(raw)):
        bad = raw[:i] + bytes([raw[i] ^ 0x01]) + raw[i + 1 :]
        with pytest.raises(HeartbeatRejected) as err:
            t.receive(bad)
        assert err.value.code in {"bad-encoding", "wrong-network", "unknown-masternode", "wrong-tier",
                                  "bad-signature", "stale", "future"}, i  # fmt: skip
    assert t.online() == []
    for bad in (b"", raw[:-1], raw + b"\x00", b"\x02" + raw[1:]):
        refused(t, bad, "bad-encoding")
    at = len(raw) - 64 - len("timecoind/0.1.0")
    refused(t, raw[:at] + b"\x00" + raw[at + 1 :], "bad-encoding")  # version string with a NUL
    t.receive(raw)
    assert t.online() == [crypto.public_key(MN_SEEDS[0])]


def test_tracker_refusals(tracker):
    t, clock = tracker
    refused(t, beat(0, T0, network=int(DEVNET.network) - 1), "wrong-network")
    refused(t, beat(0, T0, tier=Tier.SILVER), "wrong-tier")
    stranger = Heartbeat.create(
        bytes(32), CHAIN_ID, int(DEVNET.network), Tier.GOLD, 1, bytes(32), int(T0 * 1000), "x"
    )
    refused(t, stranger, "unknown-masternode")
    forged = dataclasses.replace(beat(0, T0), signature=beat(1, T0).signature)
    refused(t, forged, "bad-signature")
    refused(t, beat(0, T0, chain_id=bytes(32)), "bad-signature")
    refused(t, beat(0, T0 - DEVNET.heartbeat_expiry - 0.001), "stale")
    refused(t, beat(0, T0 + HEARTBEAT_MAX_CLOCK_SKEW + 0.001), "future")
    t.receive(beat(0, T0))
    refused(t, beat(0, T0), "replayed")
    refused(t, beat(0, T0 - 1), "replayed")
    clock.now += 30
    t.receive(beat(0, clock.now))


# -- liveness ------------------------------------------------------------------------------------


def test_offline_after_60_seconds_unseen(tracker):
    t, clock = tracker
    key = crypto.public_key(MN_SEEDS[0])
    assert not t.is_online(key) and t.last(key) is None
    t.receive(beat(0, clock.now))
    assert t.is_online(key) and t.last(key).received == T0
    clock.now = T0 + DEVNET.heartbeat_expiry - 0.001
    assert t.is_online(key)
    clock.now = T0 + DEVNET.heartbeat_expiry
    assert not t.is_online(key) and t.online() == []
    assert DEVNET.heartbeat_expiry == 60.0
    # A fresh heartbeat brings it back; pruning forgets only stale or unregistered ones.
    t.receive(beat(0, clock.now))
    assert t.is_online(key) and t.prune() == 0
    clock.now += 120
    assert t.prune() == 1 and t.last(key) is None


def test_production_gate_needs_three_online(tracker):
    t, clock = tracker
    assert DEVNET.min_active_masternodes == 3
    t.receive(beat(0, clock.now))
    t.receive(beat(1, clock.now))
    assert len(t.online()) == 2 and not t.can_produce()
    clock.now += 10
    t.receive(beat(2, clock.now))
    assert len(t.online()) == 3 and t.can_produce()
    clock.now = T0 + 60  # the first two expire, the third is still fresh
    assert t.online() == [crypto.public_key(MN_SEEDS[2])] and not t.can_produce()
    t.receive(beat(0, clock.now))
    t.receive(beat(1, clock.now))
    assert t.can_produce()


def test_deregistered_masternode_is_not_online():
    registry = Registry.from_genesis(DEVNET, GENESIS)
    members = {e.public_key: e.tier for e in registry.entries()}
    t = HeartbeatTracker(DEVNET, CHAIN_ID, members.get, Clock())
    t.receive(beat(0, T0))
    del members[crypto.public_key(MN_SEEDS[0])]
    assert t.online() == [] and t.last(crypto.public_key(MN_SEEDS[0])) is None and t.prune() == 1


# -- invariant 7 -----------------------------------------------------------------------------------


def consensus_view(chain: ChainState) -> tuple:
    h = chain.tip.height + 1
    return (
        chain.registry.snapshot(),
        chain.registry.weights(h),
        chain.masternode_weights(h),
        chain.leader_order(h),
        chain.expected_coinbase(h, 12_345),
        chain.utxos.set_hash(),
    )


def test_heartbeats_never_change_the_set_weights_or_leader_order(tmp_path):
    quiet = ChainState.open(tmp_path / "quiet", DEVNET, GENESIS)
    busy = ChainState.open(tmp_path / "busy", DEVNET, GENESIS)
    clock = Clock()
    tracker = HeartbeatTracker(DEVNET, CHAIN_ID, busy.registry.tier_of, clock)
    wallet = Wallet.from_genesis(quiet, ACCOUNTS)
    for senders in (3, 1, 2, 3, 1):
        assert consensus_view(busy) == consensus_view(quiet)
        # Heartbeats: some arrive, some are refused, some masternodes go offline.
        for i in range(senders):
            tracker.receive(beat(i, clock.now))
        with pytest.raises(HeartbeatRejected):
            tracker.receive(beat(0, clock.now - 1))
        clock.now += 45
        assert consensus_view(busy) == consensus_view(quiet)
        raw = assemble_block(busy, wallet.transfers(2, busy), busy.tip_header.timestamp + 2).encode()
        quiet.connect_block(raw)
        busy.connect_block(raw)
    assert len(tracker.online()) == 1 and not tracker.can_produce()  # liveness changed; consensus did not
    rows = masternode_list(busy, tracker)
    assert [r["weight"] for r in rows] == [w for _, w in quiet.masternode_weights(quiet.tip.height + 1)]
    assert {r["online"] for r in rows} == {True, False}
    quiet.close()
    busy.close()


def test_consensus_path_does_not_import_heartbeats():
    code = (
        "import sys, timecoin.ledger.chain, timecoin.ledger.blockbuilder, timecoin.masternode.registry, "
        "timecoin.masternode.weights, timecoin.masternode.leader; "
        "print('timecoin.masternode.heartbeat' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# -- status ------------------------------------------------------------------------------------------


def test_status_rows(tmp_path):
    chain = ChainState.open(tmp_path, DEVNET, GENESIS)
    wallet = Wallet.from_genesis(chain, ACCOUNTS)
    chain.connect_block(
        assemble_block(chain, wallet.transfers(1, chain), chain.tip_header.timestamp + 2).encode()
    )
    clock = Clock()
    tracker = HeartbeatTracker(DEVNET, CHAIN_ID, chain.registry.tier_of, clock)
    tracker.receive(beat(1, clock.now))
    rows = masternode_list(chain, tracker)
    assert [r["public_key"] for r in rows] == sorted(crypto.public_key(k).hex() for k in MN_SEEDS)
    key = crypto.public_key(MN_SEEDS[1])
    status = masternode_status(chain, key, tracker)
    assert status in rows
    assert status["tier"] == "gold" and status["collateral_sat"] == 100_000 * 10**8
    assert status["weight"] == 8_000_000 and status["weight_parts"] == {
        "base": 8, "longevity_percent": 0, "reputation": 10_000, "certificates_signed": 0,
        "certificates_counted": 0,
    }  # fmt: skip
    assert status["registered_height"] == 0 and status["last_paid_height"] == 1
    assert status["online"] is True and status["last_seen"] == T0 and type(status["last_seen"]) is int
    assert status["eligible"] is True and status["reason"] is None
    assert status["collateral"]["vout"] >= 0 and status["payout_address"].startswith("dtime1")
    other = masternode_status(chain, crypto.public_key(MN_SEEDS[0]), tracker)
    assert other["online"] is False and other["last_seen"] is None
    unknown = masternode_status(chain, bytes(32))
    assert (
        unknown["registered"] is False and not unknown["eligible"] and "not registered" in unknown["reason"]
    )
    chain.close()


def test_last_paid_heights_come_from_the_tip_in_memory(tmp_path, monkeypatch):
    """A status read after a block reads no block from the store (the dashboard samples
    ``masternodelist`` at every tip: reading, hashing and checking a whole 12,000-transaction
    block each time held the loop); after a restart, when the tip's coinbase is not in memory,
    the store gives the same answer."""
    chain = ChainState.open(tmp_path, DEVNET, GENESIS)
    wallet = Wallet.from_genesis(chain, ACCOUNTS)
    for _ in range(2):
        chain.connect_block(
            assemble_block(chain, wallet.transfers(1, chain), chain.tip_header.timestamp + 2).encode()
        )
    reads: list[bytes] = []
    read_block = chain.store.block
    monkeypatch.setattr(chain.store, "block", lambda h: reads.append(h) or read_block(h))
    rows = masternode_list(chain)
    assert reads == [] and {r["last_paid_height"] for r in rows} == {2}
    chain.close()
    reopened = ChainState.open(tmp_path, DEVNET, GENESIS)
    assert reopened.tip_coinbase_outputs is None
    assert masternode_list(reopened) == rows
    reopened.close()
