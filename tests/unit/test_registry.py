"""The masternode registry (DESIGN §5, docs/masternodes.md) on a real chain: ChainState over LMDB in
temp dirs, blocks of real signed transactions assembled by the block builder.

* Validation: too little collateral, a used collateral or key, a missing collateral, the wrong
  owner, bad or missing signatures, deregistration and payout change by a stranger are rejected
  with their code, and leave the chain (tip, UTXO set, registry, store) unchanged.
* Effects: a valid registration is in the set from the next height with the tier of its
  collateral and is paid; deregistration, payout change and spending the collateral take effect
  at the next height.
* Persistence: rollback of a block undoes its registry changes exactly; reopening reloads the same
  registry and refuses a stored registry that disagrees with the chain.
* Weights: longevity and reputation at their boundaries, in integers.
* Determinism: independent chains and registries fed the same blocks agree; the order of the
  genesis file or of stored items does not matter.
"""

from __future__ import annotations

import dataclasses
import random

import pytest

from timecoin import crypto
from timecoin.core.address import pubkey_hash
from timecoin.core.types import (
    Block,
    BlockHeader,
    MasternodeDeregistration,
    MasternodePayoutChange,
    MasternodeRegistration,
    OutPoint,
    Transaction,
    TxOut,
)
from timecoin.crypto import merkle_root
from timecoin.ledger.blockbuilder import assemble_block
from timecoin.ledger.chain import ChainState, ValidationError
from timecoin.ledger.genesis import BLOCK_VERSION, GenesisConfig, build_genesis
from timecoin.masternode import leader
from timecoin.masternode.registry import MASTERNODE_DB, REJECT_CODES, Registry
from timecoin.masternode.weights import (
    WEIGHT_UNIT,
    longevity_percent,
    longevity_step_blocks,
    masternode_weight,
    reputation,
)
from timecoin.params import (
    COIN,
    DEVNET,
    LONGEVITY_STEP_SECONDS,
    MAINNET,
    REPUTATION_WINDOW,
    TIER_COLLATERAL,
    Tier,
)
from timecoin.store.chainstore import ChainStore, StoreError
from timecoin.testing.chaingen import Wallet, devnet_genesis, seed_key

GOLD = masternode_weight(Tier.GOLD, 0, 10_000)


def seed(name: str) -> bytes:
    return seed_key(b"test-registry/" + name.encode(), 0)


def owner_of(secret: bytes) -> bytes:
    return pubkey_hash(crypto.public_key(secret))


class Node:
    """A chain in a temp dir, a wallet of its funded accounts, and builders of signed txs."""

    def __init__(self, path, config: GenesisConfig, accounts: list[bytes]) -> None:
        self.path, self.config = path, config
        self.genesis = build_genesis(config)
        self.chain = ChainState.open(path, config.params, self.genesis)
        self.wallet = Wallet.from_genesis(self.chain, accounts)
        self.owners = {owner_of(k): k for k in accounts}
        self.reserved: set[OutPoint] = set()

    @property
    def params(self):
        return self.chain.params

    def reopen(self) -> None:
        self.chain.close()
        self.reopen_fresh()

    def reopen_fresh(self) -> None:
        self.chain = ChainState.open(self.path, self.config.params, self.genesis)

    def sign(self, tx: Transaction, keys: list[bytes]) -> Transaction:
        return tx.signed_with(keys, self.genesis.hash, int(self.params.network))

    def fee_coin(self) -> tuple[OutPoint, int, bytes]:
        """The largest wallet coin not used by a transaction built since the last block."""
        free = [(op, vk) for op, vk in self.wallet.coins.items() if op not in self.reserved]
        outpoint, (value, key) = max(free, key=lambda kv: (kv[1][0], kv[0].txid))
        self.reserved.add(outpoint)
        return outpoint, value, key

    def settle(self, txs: list[Transaction]) -> None:
        """The wallet after a block of ``txs``: inputs gone, outputs to the accounts added."""
        for tx in txs:
            for i in tx.inputs:
                self.wallet.coins.pop(i, None)
            for vout, out in enumerate(tx.outputs):
                if out.pubkey_hash in self.owners:
                    self.wallet.coins[OutPoint(tx.txid, vout)] = (out.value, self.owners[out.pubkey_hash])
        self.reserved.clear()

    def pay(self, outputs: list[tuple[int, bytes]]) -> Transaction:
        """A transfer from the wallet's largest coin paying ``outputs``, change back to it."""
        outpoint, value, key = self.fee_coin()
        change = value - sum(v for v, _ in outputs) - self.params.min_fee(value)
        outs = [TxOut(v, h) for v, h in outputs] + [TxOut(change, owner_of(key))]
        return self.sign(Transaction.transfer([outpoint], outs), [key])

    def masternode_tx(self, payload, extra_keys: list[bytes], spend: OutPoint | None = None, spend_key=None):
        """A masternode tx of ``payload`` paying its fee from a wallet coin (or ``spend``), signed
        by the input owner then ``extra_keys``."""
        if spend is None:
            outpoint, value, key = self.fee_coin()
        else:
            outpoint, key = spend, spend_key
            value = self.chain.utxos.get(outpoint.encode())
            value = int.from_bytes(value[:8], "little")
        change = value - self.params.min_fee(value)
        return self.sign(
            Transaction.masternode(payload, [outpoint], [TxOut(change, owner_of(key))]), [key, *extra_keys]
        )

    def register(self, collateral: OutPoint, mn: bytes, owner: bytes, payout: bytes | None = None):
        payload = MasternodeRegistration(collateral, crypto.public_key(mn), payout or owner_of(mn))
        return self.masternode_tx(payload, [mn, owner])

    def block(self, txs: list[Transaction]) -> bytes:
        return assemble_block(self.chain, txs, self.chain.tip_header.timestamp + 2).encode()

    def connect(self, txs: list[Transaction] = ()) -> bytes:
        raw = self.block(list(txs))
        self.chain.connect_block(raw)
        self.settle(list(txs))
        return raw

    def collateral(self, owner: bytes, amount: int) -> OutPoint:
        """Connects a block creating a coin of ``amount`` sat owned by ``owner``'s key."""
        tx = self.pay([(amount, owner_of(owner))])
        self.connect([tx])
        return OutPoint(tx.txid, 0)

    def state(self):
        c = self.chain
        return (c.tip, c.utxos.set_hash(), len(c.utxos), c.registry.snapshot(), c.store.tip(),
                sorted(c.store.items(MASTERNODE_DB)))  # fmt: skip

    def raw_block(self, txs: list[Transaction]) -> bytes:
        """A block of ``txs`` built without the block builder's checks (which refuse what the
        registry refuses): its UTXO set hash is the set's after it if the native rules accept it,
        so the registry's rules are the ones left to refuse it, else zero."""
        c = self.chain
        height = c.tip.height + 1
        fees = sum(
            int.from_bytes(c.utxos.get(i.encode())[:8], "little") for tx in txs for i in tx.inputs
        ) - sum(o.value for tx in txs for o in tx.outputs)
        coinbase = Transaction.coinbase(height, [TxOut(v, h) for v, h in c.expected_coinbase(height, fees)])
        ordered = [coinbase, *sorted(txs, key=lambda t: t.txid)]
        root, timestamp = merkle_root([t.txid for t in ordered]), c.tip_header.timestamp + 2
        header = BlockHeader(
            BLOCK_VERSION,
            height,
            c.tip.block_hash,
            root,
            bytes(32),
            timestamp,
            bytes(32),
            bytes(80),
            bytes(64),
            0,
        )
        draft = Block(header, tuple(ordered)).encode()
        try:
            set_hash = c.utxos.prepare_block(draft, c.rules, check_utxo_hash=False).utxo_set_hash
        except ValidationError:
            return draft
        return Block(dataclasses.replace(header, utxo_set_hash=set_hash), tuple(ordered)).encode()


def make_node(path, masternodes: int = 3, params=DEVNET) -> tuple[Node, list[bytes]]:
    config, accounts, mn_keys = devnet_genesis(
        b"test-registry", accounts=6, masternodes=masternodes, params=params
    )
    return Node(path, config, accounts), mn_keys


@pytest.fixture
def node(tmp_path):
    n, _ = make_node(tmp_path / "a")
    yield n
    n.chain.close()


def rejected(node: Node, txs: list[Transaction], code: str) -> ValidationError:
    """Connecting a block of ``txs`` (:meth:`Node.raw_block`) fails with ``code`` and changes
    nothing."""
    before = node.state()
    block = node.raw_block(txs)
    node.reserved.clear()
    with pytest.raises(ValidationError) as err:
        node.chain.connect_block(block)
    assert err.value.code == code, str(err.value)
    assert err.value.message and str(err.value).startswith(code)
    assert node.state() == before
    return err.value


# -- the genesis set -------------------------------------------------------------------------------


def test_genesis_masternodes_are_the_set_of_height_1(node):
    keys = sorted(crypto.public_key(k) for k in devnet_genesis(b"test-registry", masternodes=3)[2])
    reg = node.chain.registry
    assert (reg.height, reg.block_hash) == (0, node.genesis.hash)
    assert [e.public_key for e in reg.entries()] == keys
    assert all(
        e.tier is Tier.GOLD and e.collateral_amount == TIER_COLLATERAL[Tier.GOLD] for e in reg.entries()
    )
    assert node.chain.leader_set(1) == (keys, [GOLD] * 3)
    assert GOLD == 8 * WEIGHT_UNIT
    assert sorted(node.chain.leader_order(1)) == keys
    with pytest.raises(ValueError, match="set of height 1, not 2"):
        node.chain.masternode_weights(2)


# -- registration -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("amount", "tier"), [(1_000 * COIN, Tier.BRONZE), (10_000 * COIN + 5, Tier.SILVER)])
def test_valid_registration_joins_the_set_at_the_next_height(node, amount, tier):
    owner, mn, payout = seed("owner"), seed("mn"), owner_of(seed("payout"))
    collateral = node.collateral(owner, amount)
    assert payout not in dict(node.chain.masternode_weights(2))
    node.connect([node.register(collateral, mn, owner, payout)])
    entry = node.chain.registry.get(crypto.public_key(mn))
    assert entry is not None
    assert (entry.tier, entry.collateral, entry.collateral_amount, entry.registered_height) == (
        tier, collateral, amount, 2
    )  # fmt: skip
    assert (entry.owner, entry.payout) == (owner_of(owner), payout)
    keys, weights = node.chain.leader_set(3)
    assert crypto.public_key(mn) in keys
    assert dict(zip(keys, weights, strict=True))[crypto.public_key(mn)] == masternode_weight(tier, 0, 10_000)
    node.connect()
    coinbase = node.chain.block(3).transactions[0]
    assert payout in [o.pubkey_hash for o in coinbase.outputs]


def test_free_tier_registration_has_no_collateral_and_owns_itself(node):
    mn = seed("free")
    node.connect([node.register(OutPoint.NULL, mn, mn)])
    entry = node.chain.registry.get(crypto.public_key(mn))
    assert (entry.tier, entry.collateral_amount, entry.owner) == (Tier.FREE, 0, owner_of(mn))
    rejected(node, [node.register(OutPoint.NULL, seed("free2"), seed("other"))], "mn-wrong-owner")
    # Only its own key can deregister it.
    rejected(
        node,
        [node.masternode_tx(MasternodeDeregistration(OutPoint.NULL), [seed("other")])],
        "mn-not-registered",
    )
    node.connect([node.masternode_tx(MasternodeDeregistration(OutPoint.NULL), [mn])])
    assert crypto.public_key(mn) not in node.chain.registry


def test_registration_with_too_little_collateral_is_rejected(node):
    owner = seed("owner")
    collateral = node.collateral(owner, TIER_COLLATERAL[Tier.BRONZE] - 1)
    err = rejected(node, [node.register(collateral, seed("mn"), owner)], "mn-collateral-too-low")
    assert err.tx_index == 1 and "below the Bronze tier" in err.message


def test_double_registration_of_one_collateral_is_rejected(node):
    owner = seed("owner")
    collateral = node.collateral(owner, TIER_COLLATERAL[Tier.SILVER])
    # Twice in one block: the second (in block order) fails.
    err = rejected(
        node, [node.register(collateral, seed("mn1"), owner), node.register(collateral, seed("mn2"), owner)],
        "mn-collateral-used",
    )  # fmt: skip
    assert err.tx_index == 2
    node.connect([node.register(collateral, seed("mn1"), owner)])
    rejected(node, [node.register(collateral, seed("mn2"), owner)], "mn-collateral-used")
    # A genesis masternode's collateral is used too.
    gold = node.chain.registry.entries()[0]
    rejected(node, [node.register(gold.collateral, seed("mn3"), owner)], "mn-collateral-used")


def test_key_collateral_and_owner_rules(node):
    owner, stranger = seed("owner"), seed("stranger")
    collateral = node.collateral(owner, TIER_COLLATERAL[Tier.BRONZE])
    genesis_key = node.chain.registry.entries()[0].public_key
    rejected(node, [node.register(collateral, seed("mn"), stranger)], "mn-wrong-owner")
    rejected(node, [node.register(OutPoint(bytes(32), 7), seed("mn"), owner)], "mn-collateral-missing")
    # The masternode key already registered (a genesis masternode's): the payload names it, and
    # so must witness 1, so this needs the genesis masternode's own seed.
    mn_seeds = devnet_genesis(b"test-registry", masternodes=3)[2]
    mn_seed = next(k for k in mn_seeds if crypto.public_key(k) == genesis_key)
    rejected(node, [node.register(collateral, mn_seed, owner)], "mn-key-registered")
    # A collateral spent in the same block is not unspent after it.
    spend = node.masternode_tx(
        MasternodeRegistration(collateral, crypto.public_key(seed("mn")), owner_of(owner)),
        [seed("mn"), owner],
        spend=collateral,
        spend_key=owner,
    )
    rejected(node, [spend], "mn-collateral-missing")


def test_bad_or_missing_signatures_are_rejected(node):
    owner = seed("owner")
    collateral = node.collateral(owner, TIER_COLLATERAL[Tier.BRONZE])
    tx = node.register(collateral, seed("mn"), owner)
    witnesses = list(tx.witnesses)
    bad_sig = dataclasses.replace(witnesses[2], signature=bytes(64))
    rejected(node, [dataclasses.replace(tx, witnesses=(*witnesses[:2], bad_sig))], "bad-signature")
    rejected(node, [dataclasses.replace(tx, witnesses=tuple(witnesses[:2]))], "bad-witness-count")
    # The owner witness made by another key over the right message: a valid signature, wrong owner.
    input_key = node.wallet.coins[tx.inputs[0]][1]
    other = node.sign(dataclasses.replace(tx, witnesses=()), [input_key, seed("mn"), seed("x")])
    rejected(node, [other], "mn-wrong-owner")
    # And the registry's own check of the witness count (a tx that never went through the native
    # validator, e.g. from the mempool path).
    with pytest.raises(ValidationError) as err:
        node.chain.registry.check_transaction(
            dataclasses.replace(tx, witnesses=tuple(witnesses[:2])), node.chain.utxos.get
        )
    assert err.value.code == "bad-witness-count"
    node.chain.registry.check_transaction(tx, node.chain.utxos.get)


# -- deregistration, payout change, spending the collateral ---------------------------------------


def registered(node: Node, amount: int = TIER_COLLATERAL[Tier.BRONZE]) -> tuple[OutPoint, bytes, bytes]:
    owner, mn = seed("owner"), seed("mn")
    collateral = node.collateral(owner, amount)
    node.connect([node.register(collateral, mn, owner)])
    return collateral, owner, crypto.public_key(mn)


def test_deregistration_and_payout_change_by_a_stranger_are_rejected(node):
    collateral, owner, key = registered(node)
    stranger = seed("stranger")
    err = rejected(
        node, [node.masternode_tx(MasternodeDeregistration(collateral), [stranger])], "mn-not-owner"
    )
    assert "not by its owner" in err.message
    payout = MasternodePayoutChange(collateral, owner_of(stranger))
    rejected(node, [node.masternode_tx(payout, [stranger])], "mn-not-owner")
    # The masternode key itself is not the owner of a collateralised masternode either.
    rejected(node, [node.masternode_tx(MasternodeDeregistration(collateral), [seed("mn")])], "mn-not-owner")
    unknown = MasternodeDeregistration(OutPoint(collateral.txid, 9))
    rejected(node, [node.masternode_tx(unknown, [owner])], "mn-not-registered")
    assert key in node.chain.registry


def test_owner_deregisters_and_changes_payout(node):
    collateral, owner, key = registered(node)
    new_payout = owner_of(seed("new payout"))
    node.connect([node.masternode_tx(MasternodePayoutChange(collateral, new_payout), [owner])])
    assert node.chain.registry.get(key).payout == new_payout
    assert new_payout in dict(node.chain.masternode_weights(node.chain.tip.height + 1))
    node.connect([node.masternode_tx(MasternodeDeregistration(collateral), [owner])])
    assert key not in node.chain.registry
    assert key not in node.chain.leader_set(node.chain.tip.height + 1)[0]
    # The collateral is free again: it can back a new registration.
    node.connect([node.register(collateral, seed("mn again"), owner)])
    assert node.chain.registry.by_collateral(collateral).public_key == crypto.public_key(seed("mn again"))


def test_spending_the_collateral_deregisters(node):
    collateral, owner, key = registered(node)
    spend = Transaction.transfer(
        [collateral], [TxOut(TIER_COLLATERAL[Tier.BRONZE] - 2 * COIN, owner_of(owner))]
    )
    node.connect([node.sign(spend, [owner])])
    assert key not in node.chain.registry and node.chain.registry.by_collateral(collateral) is None
    # A genesis masternode too.
    config, _, mn_keys = devnet_genesis(b"test-registry", masternodes=3)
    gold = node.chain.registry.entries()[0]
    gold_seed = next(k for k in mn_keys if crypto.public_key(k) == gold.public_key)
    value = TIER_COLLATERAL[Tier.GOLD]
    spend = Transaction.transfer(
        [gold.collateral], [TxOut(value - node.params.min_fee(value), owner_of(gold_seed))]
    )
    node.connect([node.sign(spend, [gold_seed])])
    assert gold.public_key not in node.chain.registry and len(node.chain.registry) == 2


# -- rollback and reopen ---------------------------------------------------------------------------


def test_rollback_undoes_each_block_exactly(node):
    states = [node.state()]
    owner, mn = seed("owner"), seed("mn")
    collateral = node.collateral(owner, TIER_COLLATERAL[Tier.BRONZE])
    states.append(node.state())
    node.connect([node.register(collateral, mn, owner)])
    states.append(node.state())
    node.connect([node.masternode_tx(MasternodePayoutChange(collateral, owner_of(seed("p"))), [owner])])
    states.append(node.state())
    spend = Transaction.transfer([collateral], [TxOut(TIER_COLLATERAL[Tier.BRONZE] - COIN, owner_of(owner))])
    node.connect([node.sign(spend, [owner])])
    assert crypto.public_key(mn) not in node.chain.registry
    while node.chain.tip.height > 0:
        node.chain.disconnect_tip()
        assert node.state() == states[node.chain.tip.height]
        node.reopen()
        assert node.state() == states[node.chain.tip.height]
    assert crypto.public_key(mn) not in node.chain.registry and len(node.chain.registry) == 3


def test_rollback_of_a_registering_block_removes_the_masternode(node):
    owner, mn = seed("owner"), seed("mn")
    collateral = node.collateral(owner, TIER_COLLATERAL[Tier.BRONZE])
    before = node.chain.registry.snapshot()
    node.connect([node.register(collateral, mn, owner)])
    assert crypto.public_key(mn) in node.chain.registry
    node.chain.disconnect_tip()
    assert crypto.public_key(mn) not in node.chain.registry
    assert node.chain.registry.snapshot() == before
    assert crypto.public_key(mn) not in node.chain.leader_set(node.chain.tip.height + 1)[0]


def test_reopen_reloads_the_same_registry_and_refuses_a_corrupt_one(tmp_path):
    node, _ = make_node(tmp_path)
    _, _, key = registered(node)
    snapshot, weights = node.chain.registry.snapshot(), node.chain.registry.weights(node.chain.tip.height + 1)
    node.reopen()
    assert node.chain.registry.snapshot() == snapshot
    assert node.chain.registry.weights(node.chain.tip.height + 1) == weights
    entry = node.chain.registry.get(key)
    node.chain.close()

    def reopen_with(writes, match: str) -> None:
        store = ChainStore.open(tmp_path)
        store.write([(MASTERNODE_DB, k, v) for k, v in writes])
        store.close()
        with pytest.raises(StoreError, match=match):
            ChainState.open(tmp_path, node.params, node.genesis)

    tip = b"tip"
    right_tip = dict(snapshot)[tip]
    # An entry whose collateral is not in the UTXO set.
    moved = dataclasses.replace(entry, collateral=OutPoint(bytes(32), 1))
    reopen_with([(b"mn/" + key, moved.encode())], "disagrees with the UTXO set")
    # A registry at another block than the chain.
    reopen_with(
        [(b"mn/" + key, entry.encode()), (tip, (1).to_bytes(8, "big") + bytes(32))], "registry is at block 1"
    )
    reopen_with([(tip, b"short")], "corrupt")
    reopen_with([(tip, None)], "corrupt: the masternode registry has no tip record")
    # Repaired, it opens again with the same registry.
    store = ChainStore.open(tmp_path)
    store.write([(MASTERNODE_DB, tip, right_tip), (MASTERNODE_DB, b"mn/" + key, entry.encode())])
    everything = [(MASTERNODE_DB, k, None) for k, _ in store.items(MASTERNODE_DB)]
    store.close()
    node.reopen_fresh()
    assert node.chain.registry.snapshot() == snapshot
    # A store past genesis with no registry at all.
    node.chain.close()
    reopen_with([(k, None) for _, k, _ in everything], "height 2 but holds no masternode registry")


def test_missing_undo_record_refuses_rollback(node):
    registered(node)
    node.chain.store.write([(MASTERNODE_DB, b"undo/" + node.chain.tip.height.to_bytes(8, "big"), None)])
    before = node.state()
    with pytest.raises(StoreError, match="undo record of block 2 is missing"):
        node.chain.disconnect_tip()
    assert node.state() == before


# -- weights ---------------------------------------------------------------------------------------


def test_longevity_boundaries():
    step = longevity_step_blocks(MAINNET)
    assert step == LONGEVITY_STEP_SECONDS // 600 == 4_320
    assert longevity_step_blocks(DEVNET) == 1_296_000
    assert [longevity_percent(MAINNET, 10, 10 + a) for a in (1, step - 1, step, 2 * step - 1, 2 * step)] == [
        0,
        0,
        1,
        1,
        2,
    ]
    assert longevity_percent(MAINNET, 0, 100 * step - 1) == 99
    assert longevity_percent(MAINNET, 0, 100 * step) == 100 == longevity_percent(MAINNET, 0, 10**9)
    with pytest.raises(ValueError):
        longevity_percent(MAINNET, 5, 5)
    odd = dataclasses.replace(DEVNET, block_slot=0.1)  # not a binary fraction: read exactly
    assert longevity_step_blocks(odd) == 25_919_999  # 2,592,000 / 0.1000000000000000055...


def test_reputation_boundaries():
    assert reputation(0, 0) == 10_000
    assert reputation(0, 10) == 5_000 and reputation(10, 10) == 15_000 and reputation(5, 10) == 10_000
    assert reputation(1, 3) == 8_333 and reputation(2, 3) == 11_666
    for bad in ((-1, 3), (4, 3)):
        with pytest.raises(ValueError):
            reputation(*bad)
    assert masternode_weight(Tier.FREE, 0, 5_000) == WEIGHT_UNIT // 2
    assert masternode_weight(Tier.GOLD, 100, 15_000) == 8 * 2 * WEIGHT_UNIT * 3 // 2
    with pytest.raises(ValueError):
        masternode_weight(Tier.GOLD, 101, 10_000)
    with pytest.raises(ValueError):
        masternode_weight(Tier.GOLD, 0, 4_999)


def test_longevity_grows_with_the_chain(tmp_path):
    params = dataclasses.replace(DEVNET, block_slot=float(LONGEVITY_STEP_SECONDS) / 2)  # a step is 2 blocks
    node, _ = make_node(tmp_path, params=params)
    for height in range(1, 6):
        parts = node.chain.registry.weights(height)
        assert {p.longevity for p in parts} == {height // 2}
        assert {p.weight for p in parts} == {masternode_weight(Tier.GOLD, height // 2, 10_000)}
        node.connect()
    node.chain.close()


def synthetic(masternodes: int = 3) -> tuple[Registry, dict[bytes, bytes], list[bytes]]:
    """A registry from a devnet genesis, without a chain: blocks are connected directly."""
    config, _, mn_keys = devnet_genesis(b"test-registry", masternodes=masternodes)
    genesis = build_genesis(config)
    registry = Registry.from_genesis(DEVNET, genesis)
    return registry, dict(genesis.coins), sorted(crypto.public_key(k) for k in mn_keys)


def connect_empty(registry: Registry, coins: dict[bytes, bytes], signers=None) -> None:
    h = registry.height + 1
    registry.apply(registry.connect(h, h.to_bytes(32, "little"), [], coins.get, signers))


def test_reputation_follows_commit_certificates_in_the_window():
    registry, coins, (a, b, c) = synthetic()
    for i in range(10):  # a signs all, b none, c every other
        connect_empty(registry, coins, [a] + ([c] if i % 2 else []))
    parts = {p.public_key: p for p in registry.weights(registry.height + 1)}
    assert [(parts[k].signed, parts[k].counted, parts[k].reputation) for k in (a, b, c)] == [
        (10, 10, 15_000), (0, 10, 5_000), (5, 10, 10_000)
    ]  # fmt: skip
    assert parts[a].weight == 3 * parts[b].weight
    # Blocks without a certificate do not count.
    connect_empty(registry, coins, None)
    assert [p.counted for p in registry.weights(registry.height + 1)] == [10, 10, 10]
    # Certificates leave the window after REPUTATION_WINDOW blocks: at height 154 the window is
    # blocks 10..153, holding only block 10's certificate (c signed it).
    while registry.height < REPUTATION_WINDOW + 9:
        connect_empty(registry, coins, None)
    parts = registry.weights(registry.height + 1)
    assert [(p.signed, p.counted) for p in parts] == [(1, 1), (0, 1), (1, 1)]
    assert [p.reputation for p in parts] == [15_000, 5_000, 15_000]
    assert registry.absent_at(9) is None and registry.absent_at(10) == {b}
    connect_empty(registry, coins, None)
    assert [p.reputation for p in registry.weights(registry.height + 1)] == [10_000] * 3
    # Signers outside the set are ignored.
    connect_empty(registry, coins, [a, b, c, bytes(32)])
    assert [p.reputation for p in registry.weights(registry.height + 1)] == [15_000] * 3
    # A masternode counts only the certificates of blocks after its registration.
    d = seed("free")
    free = Transaction.masternode(
        MasternodeRegistration(OutPoint.NULL, crypto.public_key(d), owner_of(d)),
        [OutPoint(bytes(32), 0)],
        [TxOut(10_000, owner_of(d))],
    ).signed_with([d, d, d], bytes(32), int(DEVNET.network))
    h = registry.height + 1
    registry.apply(registry.connect(h, bytes(32), [(1, free)], coins.get, [a]))
    connect_empty(registry, coins, [crypto.public_key(d)])
    parts = {p.public_key: p for p in registry.weights(registry.height + 1)}
    assert (parts[crypto.public_key(d)].signed, parts[crypto.public_key(d)].counted) == (1, 1)
    assert (parts[a].signed, parts[a].counted) == (2, 3)
    # Absent from block 158, then deregistered (159) and registered again (160): the new
    # registration's reputation starts afresh.
    connect_empty(registry, coins, [a])
    assert registry.height == 158 and registry.absent_at(158) == {b, c, crypto.public_key(d)}
    dereg = Transaction.masternode(
        MasternodeDeregistration(OutPoint.NULL), [OutPoint(bytes(32), 1)], [TxOut(10_000, owner_of(d))]
    ).signed_with([d, d], bytes(32), int(DEVNET.network))
    registry.apply(registry.connect(159, bytes(32), [(1, dereg)], coins.get, [a]))
    assert crypto.public_key(d) not in registry
    registry.apply(registry.connect(160, bytes(32), [(1, free)], coins.get, [a]))
    connect_empty(registry, coins, [a, crypto.public_key(d)])
    parts = {p.public_key: p for p in registry.weights(registry.height + 1)}
    assert (parts[crypto.public_key(d)].signed, parts[crypto.public_key(d)].counted) == (1, 1)
    assert parts[crypto.public_key(d)].reputation == 15_000


def test_absent_records_are_rolled_back_with_their_block():
    registry, coins, (a, _, _) = synthetic()
    updates = []
    for _ in range(REPUTATION_WINDOW + 2):
        before = registry.snapshot()
        h = registry.height + 1
        update = registry.connect(h, h.to_bytes(32, "little"), [], coins.get, [a])
        registry.apply(update)
        updates.append((before, dict(update.writes)[b"undo/" + h.to_bytes(8, "big")]))
    assert registry.absent_at(1) is None and registry.absent_at(registry.height) is not None
    for before, undo in reversed(updates):
        h = registry.height
        registry.apply(
            registry.disconnect(undo, (h - 1).to_bytes(32, "little") if h > 1 else registry_genesis_hash())
        )
        assert registry.snapshot() == before


def registry_genesis_hash() -> bytes:
    config, _, _ = devnet_genesis(b"test-registry", masternodes=3)
    return build_genesis(config).hash


def test_update_of_a_moved_registry_is_refused():
    registry, coins, _ = synthetic()
    update = registry.connect(1, bytes(32), [], coins.get)
    registry.apply(update)
    with pytest.raises(ValueError, match="computed at block 0"):
        registry.apply(update)
    with pytest.raises(ValueError, match="cannot connect block 3"):
        registry.connect(3, bytes(32), [], coins.get)


# -- determinism -----------------------------------------------------------------------------------


def test_independent_chains_agree(tmp_path):
    a, _ = make_node(tmp_path / "a")
    b, _ = make_node(tmp_path / "b")
    owner, mn = seed("owner"), seed("mn")
    collateral = a.collateral(owner, TIER_COLLATERAL[Tier.GOLD])
    a.connect([a.register(collateral, mn, owner), a.register(OutPoint.NULL, seed("f"), seed("f"))])
    a.connect([a.masternode_tx(MasternodePayoutChange(collateral, owner_of(seed("p"))), [owner])])
    for height in range(1, a.chain.tip.height + 1):
        b.chain.connect_block(a.chain.store.block(a.chain.store.block_hash(height)))
    assert b.chain.registry.snapshot() == a.chain.registry.snapshot() and len(b.chain.registry) == 5
    h = a.chain.tip.height + 1
    assert b.chain.registry.weights(h) == a.chain.registry.weights(h)
    assert b.chain.leader_order(h) == a.chain.leader_order(h)
    assert b.chain.masternode_weights(h) == a.chain.masternode_weights(h)
    # A registry loaded from the stored items, in any order, is the same registry.
    items = list(a.chain.store.items(MASTERNODE_DB))
    random.Random(7).shuffle(items)
    loaded = Registry.load(DEVNET, items)
    assert loaded.snapshot() == a.chain.registry.snapshot() and loaded.weights(h) == a.chain.registry.weights(
        h
    )
    a.chain.close()
    b.chain.close()


def test_the_set_does_not_depend_on_the_genesis_file_order():
    config, _, _ = devnet_genesis(b"test-registry", masternodes=5)
    shuffled = dataclasses.replace(config, masternodes=tuple(reversed(config.masternodes)))
    one = Registry.from_genesis(DEVNET, build_genesis(config)).weights(1)
    two = Registry.from_genesis(DEVNET, build_genesis(shuffled)).weights(1)
    strip = [(p.public_key, p.tier, p.weight, p.payout) for p in one]
    assert strip == [(p.public_key, p.tier, p.weight, p.payout) for p in two]
    assert [p.public_key for p in one] == sorted(p.public_key for p in one)
    seed_ = bytes(64)
    keys, weights = [p.public_key for p in one], [p.weight for p in one]
    assert leader.leader_order(seed_, 1, keys, weights) == leader.leader_order(
        seed_, 1, [p.public_key for p in two], [p.weight for p in two]
    )


def test_reject_codes_are_documented():
    assert set(REJECT_CODES) >= {
        "mn-key-registered", "mn-collateral-missing", "mn-collateral-too-low", "mn-collateral-used",
        "mn-wrong-key", "mn-wrong-owner", "mn-not-registered", "mn-not-owner",
    }  # fmt: skip
