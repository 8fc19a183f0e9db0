"""P2P messages: type ids, size and count limits, rate classes and payload codecs (DESIGN §8;
the table is docs/p2p.md).

Every payload has a fixed layout of little-endian integers and length-prefixed items, decoded
strictly: a wrong length, a count over its limit or trailing bytes raise ``ValueError`` and
nothing is allocated past what the frame already holds. Consensus objects inside (transactions,
blocks) stay encoded bytes here; they are decoded by the native codec where they are used.
Votes and heartbeats are opaque, size-limited items: their contents belong to the consensus and
masternode code, which plugs in through :mod:`timecoin.p2p.gossip`.

This module is the single definition of every P2P protocol constant.
"""

from __future__ import annotations

import enum
import ipaddress
import struct
from dataclasses import dataclass

from timecoin._args import PUBLIC_KEY_LEN, SIGNATURE_LEN
from timecoin.core.types import HEADER_LEN
from timecoin.p2p.items import decode_items as decode_items
from timecoin.p2p.items import encode_items as encode_items

PROTOCOL_VERSION = 3
"""The protocol this node speaks. 2: BLOCK and BLOCK_CHUNK carry each block's commit certificate
(issue 12). 3: proposals and decisions carry compact blocks (version-2 consensus layouts,
``timecoin.consensus.messages.BLOCK_CARRIER_VERSION``)."""
MIN_PROTOCOL_VERSION = 3
"""Oldest protocol version accepted in a handshake; older peers are disconnected (issue 5).
Version 2 masternodes sent proposals and decisions with whole blocks, which a node no longer
decodes, and version 1 synced blocks without their commit certificates."""

MAX_FRAME_PAYLOAD = 2 * 1024 * 1024
"""Largest payload of any frame, bytes (2 MiB)."""
BLOCK_CHUNK_SIZE = 2_000_000
"""Bytes of a certified block record per chunk (DESIGN §4: "ordered chunks (≤ 2 MB each)"); a
record of at most this size travels whole in one BLOCK message."""
MAX_SYNC_CERTIFICATE = BLOCK_CHUNK_SIZE - 4 - HEADER_LEN
"""Bytes of the commit certificate travelling with a synced block (DESIGN §8: "blocks travel ...
with their commit certificates"): small enough that the block header always lies in the first
chunk, where it is checked before the rest is buffered (~20,800 signers at 96 bytes each)."""
MAX_TX_BATCH_ITEMS = 10_000
"""Transactions per TX_BATCH frame."""
MAX_VOTE_ITEM = 256 * 1024
"""Bytes of one opaque vote item (a batched vote over many txids, DESIGN §6)."""
MAX_VOTE_BATCH_ITEMS = 1024
MAX_LARGE_VOTE_ITEM = MAX_FRAME_PAYLOAD - 8
"""Bytes of one opaque consensus item too large for a VOTE_BATCH (a proposal or decision whose
compact block is large): it travels alone in a LARGE_VOTE frame (count u32 = 1, len u32, item)."""
MAX_HEARTBEAT_ITEM = 1024
"""Bytes of one opaque heartbeat (DESIGN §5: id, tier, height, tip, version, reputation, sig)."""
MAX_HEARTBEAT_BATCH_ITEMS = 1024
MAX_ADDR_ITEMS = 1000
"""Addresses per ADDR message (Bitcoin Core's limit)."""
MAX_BLOCKS_PER_REQUEST = 128
"""Blocks one GETBLOCKS may ask for."""
MAX_GET_TRANSACTIONS = 1000
"""Txids one GET_TRANSACTIONS may ask for (transactions a vote named that the asker lacks)."""
MAX_RESPONSE_BYTES = 32 * 1024 * 1024
"""Bytes of blocks a node sends for one GETBLOCKS before it answers NOTFOUND for the rest."""

HANDSHAKE_DOMAIN = b"TIME Coin p2p handshake v1"
"""Prefix of the transcript a node key signed in AUTH (retired: the Noise handshake proves keys,
:mod:`timecoin.p2p.handshake`)."""
MASTERNODE_DOMAIN = b"TIME Coin p2p masternode v1"
"""Prefix of the transcript a masternode key signed in AUTH (retired)."""

FLAG_MASTERNODE = 1
"""HELLO flag: the sender proved a masternode key in its Noise handshake payload."""


class RateClass(enum.IntEnum):
    """Per-peer token bucket classes (DESIGN §8); budgets in :data:`RATE_LIMITS`."""

    HANDSHAKE = 0
    """HELLO (and the retired AUTH): once per connection, enforced by the handshake state."""
    CONTROL = 1
    """PING, PONG, BLOCK_ANNOUNCE."""
    REQUEST = 2
    """GETADDR, GETBLOCKS: ≤ 100 per minute (DESIGN §8)."""
    RESPONSE = 3
    """BLOCK, BLOCK_CHUNK, NOTFOUND: accepted only against an outstanding request."""
    TX = 4
    """Transactions, counted per item."""
    VOTE = 5
    """Consensus items (VOTE_BATCH, LARGE_VOTE), counted per :data:`VOTE_TOKEN_BYTES` of payload:
    per txid a vote batch names, not per frame or per item (DESIGN §13)."""
    HEARTBEAT = 6
    """Heartbeats, counted per item."""
    ADDR = 7
    """Addresses, counted per item."""


RATE_LIMITS: dict[RateClass, tuple[float, float]] = {
    RateClass.CONTROL: (2.0, 60.0),
    RateClass.REQUEST: (100 / 60, 100.0),
    # Gossip budgets: the goal is 10,000 tx/s network-wide (DESIGN §11); a peer may push twice
    # that sustained, with one second of burst on top.
    RateClass.TX: (20_000.0, 40_000.0),
    # VOTE tokens are txids' worth of bytes (VOTE_TOKEN_BYTES): each of the N masternodes'
    # votes names every transaction about twice (vote, revote), and a peer relays the others'
    # votes; plus proposals and decisions of up to 2 MiB each. 8 MB/s sustained, 32 MB burst.
    RateClass.VOTE: (250_000.0, 1_000_000.0),
    RateClass.HEARTBEAT: (1_000.0, 5_000.0),
    RateClass.ADDR: (10.0, 2_000.0),
}
"""(tokens per second, bucket capacity) per rate class. HANDSHAKE and RESPONSE have no bucket."""
VOTE_TOKEN_BYTES = 32
"""Payload bytes per VOTE token: one txid's worth, so a vote batch naming 8,000 txids costs
~8,000 tokens and a block vote a handful (``timecoin.p2p.ratelimit.frame_cost``)."""


class MessageType(enum.IntEnum):
    """Message type ids on the wire (docs/p2p.md)."""

    HELLO = 1
    AUTH = 2
    PING = 3
    PONG = 4
    GETADDR = 5
    ADDR = 6
    TX_BATCH = 7
    VOTE_BATCH = 8
    HEARTBEAT_BATCH = 9
    BLOCK_ANNOUNCE = 10
    GETBLOCKS = 11
    BLOCK = 12
    BLOCK_CHUNK = 13
    NOTFOUND = 14
    LARGE_VOTE = 15
    GET_TRANSACTIONS = 16
    TRANSACTIONS = 17


@dataclass(frozen=True, slots=True)
class MessageSpec:
    """Limits of one message type: ``max_payload`` bytes, its rate class, whether it needs a
    completed handshake and whether only a proven masternode may send it."""

    max_payload: int
    rate_class: RateClass
    after_handshake: bool = True
    masternode_only: bool = False


_HELLO = struct.Struct("<IB32sQ32s32s32sHB")
_AUTH = struct.Struct("<64s32s64s")
_U64 = struct.Struct("<Q")
_U32 = struct.Struct("<I")
_ANNOUNCE = struct.Struct("<Q32s")
_GETBLOCKS = struct.Struct("<QI")
_CHUNK_HEAD = struct.Struct("<Q32sIII")
_ADDR_ITEM = struct.Struct("<16sHQ")

SPECS: dict[MessageType, MessageSpec] = {
    MessageType.HELLO: MessageSpec(_HELLO.size, RateClass.HANDSHAKE, after_handshake=False),
    MessageType.AUTH: MessageSpec(_AUTH.size, RateClass.HANDSHAKE, after_handshake=False),
    MessageType.PING: MessageSpec(8, RateClass.CONTROL),
    MessageType.PONG: MessageSpec(8, RateClass.CONTROL),
    MessageType.GETADDR: MessageSpec(0, RateClass.REQUEST),
    MessageType.ADDR: MessageSpec(4 + MAX_ADDR_ITEMS * _ADDR_ITEM.size, RateClass.ADDR),
    MessageType.TX_BATCH: MessageSpec(MAX_FRAME_PAYLOAD, RateClass.TX),
    MessageType.VOTE_BATCH: MessageSpec(MAX_FRAME_PAYLOAD, RateClass.VOTE, masternode_only=True),
    MessageType.HEARTBEAT_BATCH: MessageSpec(1024 * 1024, RateClass.HEARTBEAT),
    MessageType.BLOCK_ANNOUNCE: MessageSpec(_ANNOUNCE.size, RateClass.CONTROL),
    MessageType.GETBLOCKS: MessageSpec(_GETBLOCKS.size, RateClass.REQUEST),
    MessageType.BLOCK: MessageSpec(8 + BLOCK_CHUNK_SIZE, RateClass.RESPONSE),
    MessageType.BLOCK_CHUNK: MessageSpec(_CHUNK_HEAD.size + BLOCK_CHUNK_SIZE, RateClass.RESPONSE),
    MessageType.NOTFOUND: MessageSpec(8, RateClass.RESPONSE),
    MessageType.LARGE_VOTE: MessageSpec(MAX_FRAME_PAYLOAD, RateClass.VOTE, masternode_only=True),
    MessageType.GET_TRANSACTIONS: MessageSpec(4 + 32 * MAX_GET_TRANSACTIONS, RateClass.TX),
    MessageType.TRANSACTIONS: MessageSpec(MAX_FRAME_PAYLOAD, RateClass.RESPONSE),
}

FRAME_LIMITS: tuple[int, ...] = tuple(
    SPECS[MessageType(t)].max_payload if t in MessageType._value2member_map_ else -1
    for t in range(max(MessageType) + 1)
)
"""Per type id, the largest payload or -1: the table :class:`~timecoin.p2p.framing.FrameDecoder`
checks headers against."""
assert max(FRAME_LIMITS) <= MAX_FRAME_PAYLOAD


def _exact(data: bytes, st: struct.Struct, name: str) -> tuple:  # type: ignore[type-arg]
    if len(data) != st.size:
        raise ValueError(f"{name} payload must be {st.size} bytes, got {len(data)}")
    return st.unpack(data)


# -- handshake ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Hello:
    """HELLO (144 bytes): who the sender is and where its chain is. ``listen_port`` 0 means it
    accepts no connections; ``flags`` bit 0 (:data:`FLAG_MASTERNODE`) says the Noise handshake
    proved a masternode key (checked against it)."""

    version: int
    network: int
    genesis_hash: bytes
    height: int
    tip_hash: bytes
    node_key: bytes
    nonce: bytes
    listen_port: int
    flags: int

    def encode(self) -> bytes:
        return _HELLO.pack(
            self.version,
            self.network,
            self.genesis_hash,
            self.height,
            self.tip_hash,
            self.node_key,
            self.nonce,
            self.listen_port,
            self.flags,
        )

    @classmethod
    def decode(cls, data: bytes) -> Hello:
        return cls(*_exact(data, _HELLO, "HELLO"))


@dataclass(frozen=True, slots=True)
class Auth:
    """AUTH (160 bytes), retired: nothing sends it and a peer that does is penalized (the Noise
    handshake proves the keys). It was the node key's signature over the handshake transcript,
    then a masternode key and its signature over the masternode transcript."""

    signature: bytes
    masternode_key: bytes = bytes(PUBLIC_KEY_LEN)
    masternode_signature: bytes = bytes(SIGNATURE_LEN)

    def encode(self) -> bytes:
        return _AUTH.pack(self.signature, self.masternode_key, self.masternode_signature)

    @classmethod
    def decode(cls, data: bytes) -> Auth:
        return cls(*_exact(data, _AUTH, "AUTH"))


def handshake_transcript(
    network: int,
    genesis_hash: bytes,
    signer_nonce: bytes,
    other_nonce: bytes,
    signer_key: bytes,
    other_key: bytes,
) -> bytes:
    """What a node key signs: both sides' nonces and keys on this network and chain. The
    other side's fresh nonce makes a recorded signature useless on any other connection."""
    return b"".join(
        (HANDSHAKE_DOMAIN, bytes([network]), genesis_hash, signer_nonce, other_nonce, signer_key, other_key)
    )


def masternode_transcript(handshake: bytes, masternode_key: bytes) -> bytes:
    """What a masternode key signs: the signer's handshake transcript (binding it to this
    connection and node key) and the masternode key."""
    return MASTERNODE_DOMAIN + handshake + masternode_key


# -- control --------------------------------------------------------------------------------------


def encode_u64(value: int) -> bytes:
    """PING, PONG (nonce) and NOTFOUND (height) payloads."""
    return _U64.pack(value)


def decode_u64(data: bytes, name: str) -> int:
    return int(_exact(data, _U64, name)[0])


def encode_announce(height: int, block_hash: bytes) -> bytes:
    """BLOCK_ANNOUNCE: height u64 ‖ block hash."""
    return _ANNOUNCE.pack(height, block_hash)


def decode_announce(data: bytes) -> tuple[int, bytes]:
    height, block_hash = _exact(data, _ANNOUNCE, "BLOCK_ANNOUNCE")
    return height, block_hash


def encode_getblocks(start: int, count: int) -> bytes:
    """GETBLOCKS: first height u64 ‖ count u32 (1..=:data:`MAX_BLOCKS_PER_REQUEST`)."""
    return _GETBLOCKS.pack(start, count)


def decode_getblocks(data: bytes) -> tuple[int, int]:
    start, count = _exact(data, _GETBLOCKS, "GETBLOCKS")
    if not 1 <= count <= MAX_BLOCKS_PER_REQUEST:
        raise ValueError(f"GETBLOCKS count must be in 1..={MAX_BLOCKS_PER_REQUEST}, got {count}")
    return start, count


# -- blocks ---------------------------------------------------------------------------------------


def encode_certified_block(certificate: bytes, raw: bytes) -> bytes:
    """The record a synced block travels as (DESIGN §8): certificate length u32 ‖ encoded commit
    certificate (≤ :data:`MAX_SYNC_CERTIFICATE`) ‖ encoded block. ``ValueError`` for a longer
    certificate."""
    if len(certificate) > MAX_SYNC_CERTIFICATE:
        raise ValueError(f"commit certificate of {len(certificate)} bytes over {MAX_SYNC_CERTIFICATE}")
    return _U32.pack(len(certificate)) + certificate + raw


def certified_block_header(data: bytes) -> tuple[int, bytes]:
    """(certificate length, the block header's bytes) at the start of a certified block record
    (a whole record, or its first chunk). ``ValueError`` if the length is over
    :data:`MAX_SYNC_CERTIFICATE` or the data ends before the header does. An empty certificate
    decodes: refusing it is the receiver's decision (docs/p2p.md, "Block sync")."""
    if len(data) < 4:
        raise ValueError(f"certified block record of {len(data)} bytes has no certificate length")
    n = _U32.unpack_from(data)[0]
    if n > MAX_SYNC_CERTIFICATE:
        raise ValueError(f"certificate length {n} over {MAX_SYNC_CERTIFICATE}")
    if len(data) < 4 + n + HEADER_LEN:
        raise ValueError(f"certified block record of {len(data)} bytes ends before the block header")
    return n, data[4 + n : 4 + n + HEADER_LEN]


def decode_certified_block(record: bytes) -> tuple[bytes, bytes]:
    """(certificate, block) of a whole certified block record; ``ValueError`` as
    :func:`certified_block_header`."""
    n, _ = certified_block_header(record)
    return record[4 : 4 + n], record[4 + n :]


def encode_block_message(height: int, certificate: bytes, raw: bytes) -> bytes:
    """BLOCK: height u64 ‖ certified block record (:func:`encode_certified_block`, ≤
    :data:`BLOCK_CHUNK_SIZE`; a larger one must travel as BLOCK_CHUNKs)."""
    record = encode_certified_block(certificate, raw)
    if len(record) > BLOCK_CHUNK_SIZE:
        raise ValueError(f"certified block of {len(record)} bytes must travel as BLOCK_CHUNKs")
    return _U64.pack(height) + record


def decode_block_message(data: bytes) -> tuple[int, bytes, bytes]:
    """(height, certificate, block) of a BLOCK payload; ``ValueError`` if malformed."""
    if len(data) < 8:
        raise ValueError(f"BLOCK payload of {len(data)} bytes has no height")
    certificate, raw = decode_certified_block(data[8:])
    return _U64.unpack_from(data)[0], certificate, raw


@dataclass(frozen=True, slots=True)
class BlockChunk:
    """BLOCK_CHUNK: chunk ``index`` of ``count`` of the certified block record
    (:func:`encode_certified_block`) of block ``block_hash`` at ``height``; the record is
    ``total_len`` bytes. Every chunk but the last carries exactly :data:`BLOCK_CHUNK_SIZE` bytes;
    chunks travel in order; the first one holds the certificate and the header whose hash is
    ``block_hash`` and whose merkle root commits the rest (DESIGN §4)."""

    height: int
    block_hash: bytes
    total_len: int
    index: int
    count: int
    data: bytes

    def encode(self) -> bytes:
        return (
            _CHUNK_HEAD.pack(self.height, self.block_hash, self.total_len, self.index, self.count) + self.data
        )

    @classmethod
    def decode(cls, data: bytes) -> BlockChunk:
        if len(data) < _CHUNK_HEAD.size:
            raise ValueError(f"BLOCK_CHUNK payload of {len(data)} bytes is shorter than its head")
        height, block_hash, total_len, index, count = _CHUNK_HEAD.unpack_from(data)
        chunk = cls(height, block_hash, total_len, index, count, data[_CHUNK_HEAD.size :])
        expected_count = -(-total_len // BLOCK_CHUNK_SIZE)
        if total_len <= BLOCK_CHUNK_SIZE or count != expected_count or index >= count:
            raise ValueError(
                f"BLOCK_CHUNK {index}/{count} of a {total_len}-byte block: a block that size takes "
                f"{expected_count} chunks and more than one"
            )
        size = BLOCK_CHUNK_SIZE if index + 1 < count else total_len - BLOCK_CHUNK_SIZE * (count - 1)
        if len(chunk.data) != size:
            raise ValueError(f"BLOCK_CHUNK {index}/{count} carries {len(chunk.data)} bytes, must be {size}")
        return chunk


def split_block(height: int, block_hash: bytes, record: bytes) -> list[bytes]:
    """The BLOCK_CHUNK payloads of a certified block record over :data:`BLOCK_CHUNK_SIZE`, in
    order."""
    count = -(-len(record) // BLOCK_CHUNK_SIZE)
    return [
        BlockChunk(
            height,
            block_hash,
            len(record),
            i,
            count,
            record[i * BLOCK_CHUNK_SIZE : (i + 1) * BLOCK_CHUNK_SIZE],
        ).encode()
        for i in range(count)
    ]


# -- transactions on request ---------------------------------------------------------------------


def encode_txids(txids: list[bytes]) -> bytes:
    """GET_TRANSACTIONS: count u32 (1..=:data:`MAX_GET_TRANSACTIONS`) ‖ txid (32 bytes)*. The
    answer is TRANSACTIONS (a TX_BATCH layout) holding those the peer has; it sends nothing for
    the others."""
    if not 1 <= len(txids) <= MAX_GET_TRANSACTIONS or any(len(t) != 32 for t in txids):
        raise ValueError(f"GET_TRANSACTIONS takes 1..={MAX_GET_TRANSACTIONS} txids of 32 bytes")
    return _U32.pack(len(txids)) + b"".join(txids)


def decode_txids(data: bytes) -> list[bytes]:
    """The txids of a GET_TRANSACTIONS payload; ``ValueError`` for a count out of range or a
    length that does not match it."""
    if len(data) < 4:
        raise ValueError("GET_TRANSACTIONS payload has no count")
    count = _U32.unpack_from(data)[0]
    if not 1 <= count <= MAX_GET_TRANSACTIONS or len(data) != 4 + 32 * count:
        raise ValueError(
            f"GET_TRANSACTIONS of {len(data)} bytes does not hold {count} txids (1..={MAX_GET_TRANSACTIONS})"
        )
    return [data[i : i + 32] for i in range(4, len(data), 32)]


# -- batches of opaque items ----------------------------------------------------------------------


# The codec, encode_items and decode_items, is timecoin.p2p.items (compiled on the message path).

ITEM_LIMITS: dict[MessageType, tuple[int, int]] = {
    MessageType.VOTE_BATCH: (MAX_VOTE_BATCH_ITEMS, MAX_VOTE_ITEM),
    MessageType.LARGE_VOTE: (1, MAX_LARGE_VOTE_ITEM),
    MessageType.HEARTBEAT_BATCH: (MAX_HEARTBEAT_BATCH_ITEMS, MAX_HEARTBEAT_ITEM),
}
"""(max items, max item bytes) of the opaque gossip batches; TX_BATCH items are bounded by the
network's ``max_tx_size``."""


# -- addresses ------------------------------------------------------------------------------------


def _pack_host(host: str) -> bytes:
    ip = ipaddress.ip_address(host)
    if isinstance(ip, ipaddress.IPv4Address):
        ip = ipaddress.IPv6Address(b"\0" * 10 + b"\xff\xff" + ip.packed)
    return ip.packed


def _unpack_host(packed: bytes) -> str:
    ip = ipaddress.IPv6Address(packed)
    return str(ip.ipv4_mapped) if ip.ipv4_mapped is not None else str(ip)


def encode_addr(entries: list[tuple[str, int, int]]) -> bytes:
    """ADDR: count u32 ‖ (IPv6 or IPv4-mapped address 16 ‖ port u16 ‖ last seen u64 unix s)*.
    ``entries`` are (IP literal, port, last seen)."""
    if len(entries) > MAX_ADDR_ITEMS:
        raise ValueError(f"{len(entries)} addresses, at most {MAX_ADDR_ITEMS} per ADDR")
    return _U32.pack(len(entries)) + b"".join(_ADDR_ITEM.pack(_pack_host(h), p, t) for h, p, t in entries)


def decode_addr(data: bytes) -> list[tuple[str, int, int]]:
    if len(data) < 4:
        raise ValueError("ADDR payload has no count")
    count = _U32.unpack_from(data)[0]
    if count > MAX_ADDR_ITEMS or len(data) != 4 + count * _ADDR_ITEM.size:
        raise ValueError(f"ADDR of {len(data)} bytes does not hold {count} addresses (max {MAX_ADDR_ITEMS})")
    out = []
    for i in range(count):
        packed, port, seen = _ADDR_ITEM.unpack_from(data, 4 + i * _ADDR_ITEM.size)
        if port == 0:
            raise ValueError(f"ADDR entry {i} has port 0")
        out.append((_unpack_host(packed), port, seen))
    return out
