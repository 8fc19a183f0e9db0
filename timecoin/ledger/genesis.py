"""Genesis: the file format and the block built from it (docs/genesis.md).

The genesis block is built, never validated: it is the network's definition, and its hash is
the chain id every signature commits to (docs/encoding.md), so a node given another genesis file
is on another network. It holds

* the coinbase at height 0 (payload height 0, no reward rule): one output per allocation, in
  file order, then one collateral output per non-Free initial masternode;
* one masternode registration per initial masternode (no inputs, no witnesses: the genesis file
  is the authority), pointing at its collateral output (the null outpoint for Free tier);
* a header with ``prev_hash`` zero, the merkle root of the txids, the UTXO set hash of the
  coinbase outputs, proposer, VRF proof and VRF output zero (there is no election at height 0;
  the zero VRF output is the public seed of height 1's leader draw), round 0.

Parsing errors name the offending key (``GenesisError``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import orjson
import timecoin_native

from timecoin import params as network_params
from timecoin.core.address import AddressError, decode_address, encode_address
from timecoin.core.types import (
    Block,
    BlockHeader,
    Coin,
    MasternodeRegistration,
    OutPoint,
    Transaction,
    TxOut,
)
from timecoin.crypto import merkle_root
from timecoin.params import TIER_COLLATERAL, NetworkParams, Tier

BLOCK_VERSION = 1
"""Version of every block header this node builds and accepts."""

U64_MAX = 2**64 - 1


class GenesisError(ValueError):
    """A genesis file that cannot define a network; the message names the key."""


@dataclass(frozen=True, slots=True)
class GenesisMasternode:
    """An initial masternode: its key, tier, the key hash owning its collateral and its payout."""

    public_key: bytes
    tier: Tier
    collateral_owner: bytes
    payout: bytes


@dataclass(frozen=True, slots=True)
class GenesisConfig:
    """The content of a genesis file. Amounts in sat, timestamp in unix seconds."""

    params: NetworkParams
    timestamp: int
    treasury: bytes
    allocations: tuple[tuple[bytes, int], ...]
    masternodes: tuple[GenesisMasternode, ...]

    @classmethod
    def from_json(cls, data: bytes | str) -> GenesisConfig:
        """Parses a genesis file (docs/genesis.md). Raises :class:`GenesisError`."""
        try:
            doc = orjson.loads(data)
        except orjson.JSONDecodeError as e:
            raise GenesisError(f"genesis file is not JSON: {e}") from None
        if not isinstance(doc, dict):
            raise GenesisError("genesis file must be a JSON object")
        try:
            net = network_params.by_name(_get(doc, "network", str))
        except ValueError as e:
            raise GenesisError(f"network: {e}") from None
        timestamp = _get(doc, "timestamp", int)
        if not 0 <= timestamp <= U64_MAX:
            raise GenesisError("timestamp: must be a u64")
        treasury = _address(net, _get(doc, "treasury", str), "treasury")
        allocations = []
        for i, a in enumerate(_get(doc, "allocations", list)):
            where = f"allocations[{i}]"
            if not isinstance(a, dict):
                raise GenesisError(f"{where}: must be an object")
            amount = _get(a, "amount_sat", int, where)
            if not net.dust_limit <= amount <= U64_MAX:
                raise GenesisError(f"{where}.amount_sat: must be between the dust limit and u64 max")
            allocations.append((_address(net, _get(a, "address", str, where), f"{where}.address"), amount))
        masternodes = []
        for i, m in enumerate(_get(doc, "masternodes", list)):
            where = f"masternodes[{i}]"
            if not isinstance(m, dict):
                raise GenesisError(f"{where}: must be an object")
            try:
                key = bytes.fromhex(_get(m, "public_key", str, where))
            except ValueError:
                key = b""
            if len(key) != 32:
                raise GenesisError(f"{where}.public_key: must be 64 hex digits")
            tier_name = _get(m, "tier", str, where)
            try:
                tier = Tier[tier_name.upper()]
            except KeyError:
                raise GenesisError(f"{where}.tier: unknown tier {tier_name!r}") from None
            masternodes.append(
                GenesisMasternode(
                    key,
                    tier,
                    _address(net, _get(m, "collateral_address", str, where), f"{where}.collateral_address"),
                    _address(net, _get(m, "payout_address", str, where), f"{where}.payout_address"),
                )
            )
        if len({m.public_key for m in masternodes}) != len(masternodes):
            raise GenesisError("masternodes: a public key is listed twice")
        return cls(net, timestamp, treasury, tuple(allocations), tuple(masternodes))

    def to_json(self) -> bytes:
        """The genesis file of this configuration (inverse of :meth:`from_json`)."""
        net = self.params
        return orjson.dumps(
            {
                "network": net.name,
                "timestamp": self.timestamp,
                "treasury": encode_address(self.treasury, net),
                "allocations": [
                    {"address": encode_address(h, net), "amount_sat": v} for h, v in self.allocations
                ],
                "masternodes": [
                    {
                        "public_key": m.public_key.hex(),
                        "tier": m.tier.name.lower(),
                        "collateral_address": encode_address(m.collateral_owner, net),
                        "payout_address": encode_address(m.payout, net),
                    }
                    for m in self.masternodes
                ],
            },
            option=orjson.OPT_INDENT_2,
        )

    @classmethod
    def load(cls, path: Path) -> GenesisConfig:
        """Reads and parses a genesis file."""
        return cls.from_json(path.read_bytes())


def _get(doc: dict[str, object], key: str, kind: type, where: str = "") -> object:
    name = f"{where}.{key}" if where else key
    if key not in doc:
        raise GenesisError(f"{name}: missing")
    value = doc[key]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise GenesisError(f"{name}: must be {kind.__name__}, got {type(value).__name__}")
    return value


def _address(net: NetworkParams, text: str, name: str) -> bytes:
    try:
        return decode_address(text, net)
    except AddressError as e:
        raise GenesisError(f"{name}: {e}") from None


@dataclass(frozen=True, slots=True)
class Genesis:
    """The genesis block of a configuration and what a store needs to start from it."""

    config: GenesisConfig
    block: Block
    encoded: bytes
    coins: tuple[tuple[bytes, bytes], ...]
    """(outpoint, coin) encodings of the coinbase outputs: the UTXO set at height 0."""

    @property
    def hash(self) -> bytes:
        """The genesis block hash: the chain id."""
        return self.block.hash

    @property
    def registrations(self) -> list[tuple[bytes, MasternodeRegistration]]:
        """(txid, registration) of the initial masternodes."""
        return [(tx.txid, tx.masternode_registration) for tx in self.block.transactions[1:]]


def build_genesis(config: GenesisConfig) -> Genesis:
    """Builds the genesis block of ``config`` (see the module docstring)."""
    outputs = [TxOut(amount, owner) for owner, amount in config.allocations]
    collateral_vout: dict[bytes, int] = {}
    for m in config.masternodes:
        if m.tier != Tier.FREE:
            collateral_vout[m.public_key] = len(outputs)
            outputs.append(TxOut(TIER_COLLATERAL[m.tier], m.collateral_owner))
    coinbase = Transaction.coinbase(0, outputs)
    registrations = [
        Transaction.masternode(
            MasternodeRegistration(
                OutPoint(coinbase.txid, collateral_vout[m.public_key])
                if m.public_key in collateral_vout
                else OutPoint(bytes(32), 2**32 - 1),
                m.public_key,
                m.payout,
            )
        )
        for m in config.masternodes
    ]
    transactions = [coinbase, *sorted(registrations, key=lambda tx: tx.txid)]
    coins = tuple(
        (OutPoint(coinbase.txid, vout).encode(), Coin(out.value, out.pubkey_hash, 0, True).encode())
        for vout, out in enumerate(outputs)
    )
    utxos = timecoin_native.UtxoSet()
    utxos.load(list(coins))
    header = BlockHeader(
        version=BLOCK_VERSION,
        height=0,
        prev_hash=bytes(32),
        merkle_root=merkle_root([tx.txid for tx in transactions]),
        utxo_set_hash=utxos.set_hash(),
        timestamp=config.timestamp,
        proposer=bytes(32),
        vrf_proof=bytes(80),
        vrf_output=bytes(64),
        round=0,
    )
    block = Block(header, tuple(transactions))
    return Genesis(config, block, block.encode(), coins)
