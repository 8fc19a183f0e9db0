"""Type stub of the compiled module; ``python -m mypy.stubtest timecoin_native`` checks it."""

from typing import final, overload

__all__ = [
    "NOISE_MAX_MESSAGE_LEN",
    "NOISE_MAX_PLAINTEXT",
    "NOISE_PROTOCOL",
    "NOISE_TAG_LEN",
    "NoiseHandshake",
    "NoiseTransport",
    "noise_public_key",
    "AppliedBlock",
    "CoinDelta",
    "DirtyCoins",
    "LedgerRules",
    "PreparedBlock",
    "REJECT_CODES",
    "TxVerdict",
    "UtxoSet",
    "ValidationError",
    "__version__",
    "build_profile",
    "HASH_DOMAINS",
    "public_key",
    "sign",
    "verify",
    "verify_batch",
    "blake3",
    "hash_in",
    "merkle_root",
    "merkle_levels",
    "merkle_proof",
    "verify_merkle_proof",
    "block_hash",
    "decode_block",
    "decode_block_header",
    "decode_block_with_txids",
    "split_block",
    "transaction_spans",
    "index_entries",
    "decode_coin",
    "decode_outpoint",
    "decode_transaction",
    "decode_tx_out",
    "decode_witness",
    "encode_block",
    "encode_block_header",
    "encode_coin",
    "encode_outpoint",
    "encode_transaction",
    "encode_tx_out",
    "encode_witness",
    "sighash",
    "sign_transactions",
    "txid",
    "txids",
    "VRF_PROOF_LEN",
    "VRF_OUTPUT_LEN",
    "VRF_ALPHA_LEN",
    "IneligibleProposer",
    "vrf_prove",
    "vrf_verify",
    "vrf_verify_batch",
    "vrf_alpha",
    "leader_order",
    "leader_rank",
    "round_leader",
    "check_proposer",
]

__version__: str
build_profile: str
HASH_DOMAINS: dict[str, str]

def public_key(secret_key: bytes) -> bytes:
    """Ed25519 public key (32 bytes) of a 32-byte RFC 8032 seed."""

def sign(secret_key: bytes, message: bytes) -> bytes:
    """RFC 8032 Ed25519 signature (64 bytes) of ``message`` by a 32-byte seed."""

def verify(public_key: bytes, message: bytes, signature: bytes) -> bool:
    """ZIP-215 verification of one signature; raises ValueError on wrong key/signature lengths."""

def verify_batch(
    public_keys: bytes,
    messages: bytes,
    message_lengths: bytes,
    signatures: bytes,
    parallel: bool = True,
) -> list[bool]:
    """ZIP-215 verification of n signatures in one call.

    ``public_keys`` is n×32 bytes, ``signatures`` n×64 bytes, ``messages`` the concatenated
    messages and ``message_lengths`` n little-endian u32 lengths.
    """

def blake3(data: bytes) -> bytes:
    """Plain BLAKE3-256 of ``data``."""

def hash_in(domain: str, data: bytes) -> bytes:
    """BLAKE3-256 ``derive_key`` of ``data`` in one of :data:`HASH_DOMAINS`."""

def merkle_root(leaves: bytes | list[bytes] | tuple[bytes, ...], parallel: bool = True) -> bytes:
    """Merkle root of 32-byte leaves: one buffer of n concatenated leaves, or a list/tuple."""

def merkle_proof(leaves: bytes | list[bytes] | tuple[bytes, ...], index: int) -> list[bytes]:
    """Sibling hashes from leaf ``index`` to the root, bottom first."""

def merkle_levels(leaves: bytes | list[bytes] | tuple[bytes, ...]) -> list[bytes]:
    """Every level of the tree (leaf hashes first, root last), each as one buffer of 32-byte
    hashes; ``ValueError`` without leaves."""

def verify_merkle_proof(
    leaf: bytes, index: int, count: int, proof: bytes | list[bytes] | tuple[bytes, ...], root: bytes
) -> bool:
    """Whether ``proof`` (32-byte hashes, concatenated or listed) proves ``leaf`` at ``index``
    of ``count``."""

# Canonical codec (docs/encoding.md). Values are plain tuples in the spec's field order; encoding
# also accepts lists for the sequences. Bytes that are not a canonical encoding raise ValueError
# with the codec's message; malformed tuples raise TypeError/ValueError naming the field.

_OutPointFields = tuple[bytes, int]
_TxOutFields = tuple[int, bytes]
_WitnessFields = tuple[bytes, bytes]
_CoinFields = tuple[int, bytes, int, bool]
_TransactionFields = tuple[
    int, int, tuple[_OutPointFields, ...], tuple[_TxOutFields, ...], int, bytes, tuple[_WitnessFields, ...]
]
_HeaderFields = tuple[int, int, bytes, bytes, bytes, int, bytes, bytes, bytes, int]
_BlockFields = tuple[_HeaderFields, tuple[_TransactionFields, ...]]
_TransactionInput = tuple[
    int,
    int,
    tuple[_OutPointFields, ...] | list[_OutPointFields],
    tuple[_TxOutFields, ...] | list[_TxOutFields],
    int,
    bytes,
    tuple[_WitnessFields, ...] | list[_WitnessFields],
]
_BlockInput = tuple[_HeaderFields, tuple[_TransactionInput, ...] | list[_TransactionInput]]

def encode_outpoint(fields: _OutPointFields) -> bytes:
    """36 bytes: ``(txid, vout)``."""

def decode_outpoint(data: bytes) -> _OutPointFields:
    """``(txid, vout)`` of exactly 36 bytes."""

def encode_tx_out(fields: _TxOutFields) -> bytes:
    """40 bytes: ``(value, pubkey_hash)``."""

def decode_tx_out(data: bytes) -> _TxOutFields:
    """``(value, pubkey_hash)`` of exactly 40 bytes."""

def encode_witness(fields: _WitnessFields) -> bytes:
    """96 bytes: ``(public_key, signature)``."""

def decode_witness(data: bytes) -> _WitnessFields:
    """``(public_key, signature)`` of exactly 96 bytes."""

def encode_coin(fields: _CoinFields) -> bytes:
    """49 bytes: ``(value, pubkey_hash, height, is_coinbase)``."""

def decode_coin(data: bytes) -> _CoinFields:
    """``(value, pubkey_hash, height, is_coinbase)`` of exactly 49 bytes (flag byte 0 or 1)."""

def encode_block_header(fields: _HeaderFields) -> bytes:
    """296 bytes: ``(version, height, prev_hash, merkle_root, utxo_set_hash, timestamp, proposer,
    vrf_proof, vrf_output, round)``."""

def decode_block_header(data: bytes) -> _HeaderFields:
    """Header fields of exactly 296 bytes."""

def encode_transaction(fields: _TransactionInput) -> bytes:
    """Full encoding of ``(version, kind, inputs, outputs, lock_time, payload, witnesses)``; the
    payload must be exactly the kind's length."""

def decode_transaction(data: bytes) -> _TransactionFields:
    """Fields of exactly one encoded transaction (strict: no trailing bytes)."""

def encode_block(fields: _BlockInput) -> bytes:
    """Encoding of ``(header, transactions)``."""

def decode_block(data: bytes) -> _BlockFields:
    """Fields of exactly one encoded block (strict: no trailing bytes)."""

def decode_block_with_txids(data: bytes) -> tuple[_BlockFields, list[bytes]]:
    """Block fields and each transaction's txid, hashed from ``data`` without re-encoding."""

def split_block(data: bytes) -> tuple[_HeaderFields, list[bytes], list[bytes]]:
    """(header fields, each transaction's encoding, each txid) of exactly one block, decoded as
    strictly as ``decode_block``; ``ValueError`` with the codec's message otherwise."""

def transaction_spans(data: bytes) -> list[tuple[int, int]]:
    """(offset, length) in bytes of each transaction of exactly one encoded block, witnesses
    included, in block order; decoded as strictly as ``decode_block`` (``ValueError`` with the
    codec's message otherwise), nothing hashed."""

def index_entries(
    block: bytes, txids: list[bytes] | tuple[bytes, ...], height: int
) -> list[tuple[bytes, bytes]]:
    """(txid, entry) of each transaction of exactly one encoded ``block`` at ``height``, sorted
    by txid: the transaction index's entries (16 bytes: height u64 BE ‖ offset u32 BE ‖ length
    u32 BE, the transaction's span in ``block``). ``txids`` are the block's, in block order (the
    same objects come back). ``ValueError`` with the codec's message if ``block`` is not exactly
    one block, or if ``txids`` is not one 32-byte txid per transaction."""

def txid(transaction: bytes) -> bytes:
    """txid (32 bytes) of one full transaction encoding, decoded strictly."""

def txids(transactions: list[bytes] | tuple[bytes, ...], parallel: bool = True) -> list[bytes]:
    """txids of many full transaction encodings in one call (GIL released; with ``parallel``,
    on all cores from 512 transactions); a bad item raises ValueError naming its index."""

def block_hash(header: bytes) -> bytes:
    """Block hash of a 296-byte encoded header."""

def sighash(chain_id: bytes, network: int, txid: bytes, index: int) -> bytes:
    """``hash_in("sighash", chain_id ‖ network u8 ‖ txid ‖ index u32)``."""

def sign_transactions(
    transactions: bytes,
    transaction_lengths: bytes,
    secret_keys: bytes,
    key_counts: bytes,
    chain_id: bytes,
    network: int,
    parallel: bool = True,
) -> list[bytes]:
    """Signs n encoded transactions in one call (GIL released, all cores if ``parallel``).

    ``transactions`` is the n encodings concatenated and ``transaction_lengths`` n u32 LE byte
    lengths; ``secret_keys`` is the 32-byte seeds concatenated and ``key_counts`` n u32 LE counts
    of seeds per transaction. Each result is its transaction with the witness section replaced by
    one witness per seed, witness i signing ``sighash(chain_id, network, txid, i)``.
    """

# VRF (RFC 9381 ECVRF-EDWARDS25519-SHA512-TAI) and the weighted leader order
# (docs/leader-selection.md). `seed` is the previous block's 64-byte VRF output; `public_keys` is
# n×32 bytes (one buffer, or a list/tuple of 32-byte keys); `weights` is n little-endian u64.

VRF_PROOF_LEN: int
VRF_OUTPUT_LEN: int
VRF_ALPHA_LEN: int

class IneligibleProposer(ValueError):
    """A block proposer that may not propose at this (height, round); ``code`` attribute:
    ``not_in_set``, ``wrong_rank`` or ``bad_vrf_proof``."""

    code: str

def vrf_prove(secret_key: bytes, alpha: bytes) -> tuple[bytes, bytes]:
    """(80-byte proof, 64-byte output) of ``alpha`` by a 32-byte Ed25519 seed."""

def vrf_verify(public_key: bytes, proof: bytes, alpha: bytes) -> bytes:
    """64-byte output of a valid proof; ValueError on an invalid key or proof."""

def vrf_verify_batch(
    public_keys: bytes, proofs: bytes, alphas: bytes, alpha_lengths: bytes, parallel: bool = True
) -> list[bytes | None]:
    """Output or None per item: keys n×32, proofs n×80, alphas concatenated with n u32 LE lengths."""

def vrf_alpha(seed: bytes, height: int, round: int) -> bytes:
    """The proposer's VRF input: seed ‖ height u64 LE ‖ round u32 LE (76 bytes)."""

def leader_order(
    seed: bytes, height: int, public_keys: bytes | list[bytes] | tuple[bytes, ...], weights: bytes, count: int
) -> list[int]:
    """The first min(count, n) indices of the leader order of ``height``."""

def leader_rank(
    seed: bytes,
    height: int,
    public_keys: bytes | list[bytes] | tuple[bytes, ...],
    weights: bytes,
    public_key: bytes,
) -> int:
    """Position of ``public_key`` in the leader order; ValueError if it is not in the set."""

def round_leader(
    seed: bytes, height: int, round: int, public_keys: bytes | list[bytes] | tuple[bytes, ...], weights: bytes
) -> int:
    """Index of the leader of ``round``: the (round mod n)-th of the order."""

def check_proposer(
    seed: bytes,
    height: int,
    round: int,
    public_keys: bytes | list[bytes] | tuple[bytes, ...],
    weights: bytes,
    proposer: bytes,
    proof: bytes,
) -> bytes:
    """The proposer's VRF output if it leads ``round`` and ``proof`` verifies over
    ``vrf_alpha(seed, height, round)``; IneligibleProposer otherwise."""

# --- ledger (native/src/python/ledger.rs) ---

REJECT_CODES: list[str]

@final
class LedgerRules:
    """Consensus parameters of validation (DESIGN §4), built from ``timecoin.params``.

    ``chain_id`` 32 bytes (genesis hash), ``network`` 0/1/2, amounts in sat, sizes in bytes.
    Minimum fee = ``min_fee_base + sent_to_others * min_fee_per_mille // 1000``, where
    ``sent_to_others`` is the value of the outputs paying a ``pubkey_hash`` that none of the
    coins the inputs spend has (DESIGN §4: change and self-sends pay the base only).
    """

    def __new__(
        cls,
        chain_id: bytes,
        network: int,
        dust_limit: int,
        min_fee_base: int,
        min_fee_per_mille: int,
        max_tx_size: int,
        max_block_size: int,
    ) -> LedgerRules: ...
    @property
    def chain_id(self) -> bytes: ...
    @property
    def network(self) -> int: ...
    @property
    def dust_limit(self) -> int: ...
    @property
    def min_fee_base(self) -> int: ...
    @property
    def min_fee_per_mille(self) -> int: ...
    @property
    def max_tx_size(self) -> int: ...
    @property
    def max_block_size(self) -> int: ...
    def min_fee(self, sent_to_others: int) -> int:
        """Minimum fee (sat) of a transaction sending ``sent_to_others`` sat to others."""

@final
class ValidationError(ValueError):
    """A rejected transaction or block: ``code`` (one of REJECT_CODES), ``message``,
    ``tx_index`` (index in the block or batch, or None)."""

    def __new__(cls, code: str, message: str, tx_index: int | None = None) -> ValidationError: ...
    @property
    def code(self) -> str: ...
    @property
    def message(self) -> str: ...
    @property
    def tx_index(self) -> int | None: ...

@final
class AppliedBlock:
    """What ``UtxoSet.apply_block`` did: fees in sat (non-coinbase txs), ``undo`` for rollback,
    ``coinbase_outputs`` as (value sat, pubkey_hash), ``masternode_txs`` as (tx index, kind,
    payload) for the masternode registry."""

    @property
    def height(self) -> int: ...
    @property
    def block_hash(self) -> bytes: ...
    @property
    def txids(self) -> list[bytes]: ...
    @property
    def fees(self) -> int: ...
    @property
    def undo(self) -> bytes: ...
    @property
    def coinbase_outputs(self) -> list[tuple[int, bytes]]: ...
    @property
    def masternode_txs(self) -> list[tuple[int, int, bytes]]: ...
    @property
    def masternode_transactions(self) -> list[tuple[int, bytes]]:
        """(tx index, full encoding with witnesses) of the same transactions as ``masternode_txs``."""

@final
class PreparedBlock:
    """A block ``UtxoSet.prepare_block`` validated without applying it: the same fields as
    ``AppliedBlock`` (no undo yet), the set hash after it, and the set ``generation`` it was
    prepared on; ``UtxoSet.commit_prepared`` applies it while the set is unchanged."""

    @property
    def height(self) -> int: ...
    @property
    def block_hash(self) -> bytes: ...
    @property
    def txids(self) -> list[bytes]: ...
    @property
    def fees(self) -> int: ...
    @property
    def coinbase_outputs(self) -> list[tuple[int, bytes]]: ...
    @property
    def masternode_transactions(self) -> list[tuple[int, bytes]]: ...
    @property
    def utxo_set_hash(self) -> bytes:
        """The UTXO set hash after the block (32 bytes)."""
    @property
    def merkle_root(self) -> bytes:
        """The merkle root over its txids (after ``with_coinbase``, the new one)."""
    @property
    def generation(self) -> int: ...
    def coin_after(self, outpoint: bytes) -> bytes | None:
        """The coin at a 36-byte outpoint after this block in the set it was prepared on
        (ValueError once that set changed): None if the block spends it."""
    def with_coinbase(self, coinbase: bytes, rules: LedgerRules) -> PreparedBlock:
        """This block with the encoded transaction ``coinbase`` in place of its coinbase, the
        other transactions not validated again: a block builder's transactions, prepared under
        a draft coinbase, with the coinbase that pays their fees. Its ``utxo_set_hash`` and
        merkle root are the new block's; ``block_hash`` stays the draft's until
        ``with_header``. ValidationError (index 0) for an invalid coinbase or a block it makes
        too large; ValueError once the set it was prepared on has changed, or if a transaction
        of the block spends the draft coinbase."""
    def with_header(self, header: bytes) -> PreparedBlock:
        """This block under a 296-byte ``header`` instead of the one it was prepared with, not
        validated again: what ``UtxoSet.prepare_block`` of the block with that header gives
        (validation reads only the header's height, merkle root and UTXO set hash). For a
        block builder's draft under its final header. ValueError for a header that does not
        decode, or of another height or merkle root, or whose UTXO set hash is not the set's
        after the block."""

@final
class TxVerdict:
    """Verdict on one transaction of ``UtxoSet.check_transactions``; ``code`` is "" when ok."""

    @property
    def ok(self) -> bool: ...
    @property
    def txid(self) -> bytes | None: ...
    @property
    def kind(self) -> int | None: ...
    @property
    def fee(self) -> int: ...
    @property
    def size(self) -> int: ...
    @property
    def inputs(self) -> bytes:
        """The outpoints the transaction spends (n × 36 bytes), b"" if it did not decode."""
    @property
    def outpoints(self) -> tuple[bytes, ...]:
        """The outpoints the transaction spends, 36 bytes each, in input order; () if it did
        not decode."""
    @property
    def code(self) -> str: ...
    @property
    def message(self) -> str: ...

@final
class UtxoSet:
    """The in-memory UTXO set: 36-byte outpoint -> 49-byte coin, its LtHash (``state``, 2,048
    bytes; ``set_hash``, 32 bytes) and the writes pending for the store (``take_delta``).

    Safe to use from several threads: reads (``get``, ``check_transactions``,
    ``prepare_block``, ...) share the set, and a call that changes it (``load``,
    ``apply_block``, ``commit_prepared``, ``rollback``, ``replay_block``, ``take_delta``,
    ``take_dirty``) waits, with the GIL released, until the reads in progress end. A
    panic inside a call that changed it leaves every later call raising ``RuntimeError``."""

    def __init__(self) -> None: ...
    def __len__(self) -> int: ...
    def get(self, outpoint: bytes) -> bytes | None:
        """The 49-byte coin at a 36-byte outpoint, or None if it is not unspent."""
    def load(self, entries: list[tuple[bytes, bytes]]) -> None:
        """Adds (outpoint, coin) pairs the store already holds (clean); ValueError, changing
        nothing, on a bad coin or an outpoint given twice or already present."""
    def set_hash(self) -> bytes: ...
    @property
    def signature_cache_size(self) -> int:
        """Signatures verified by this set's admissions and blocks and remembered (a verified
        signature is not verified again; at most 2 × 2^18)."""
    def clear_signature_cache(self) -> None:
        """Forgets the verified signatures (benchmarks that verify the same items again)."""
    def state(self) -> bytes: ...
    def apply_block(self, block: bytes, rules: LedgerRules, check_utxo_hash: bool = True) -> AppliedBlock:
        """Validates and applies an encoded block; ValidationError (set unchanged) if invalid."""
    def prepare_block(self, block: bytes, rules: LedgerRules, check_utxo_hash: bool = True) -> PreparedBlock:
        """Validates an encoded block as ``apply_block`` does without changing the set;
        ValidationError if invalid. Runs with the GIL released: a worker thread may prepare a
        block while the caller's loop goes on reading the set."""
    def commit_prepared(self, prepared: PreparedBlock) -> AppliedBlock:
        """Applies a block ``prepare_block`` validated on this set, without validating again;
        ValueError (set unchanged) if the set changed since (so never twice)."""
    @property
    def generation(self) -> int:
        """Changes to the contents so far (loads, blocks, rollbacks)."""
    def rollback(self, undo: bytes) -> None:
        """Rolls back the last applied block; ValueError (set unchanged) on a malformed undo
        record or one that does not match the set."""
    def replay_block(self, block: bytes, undo: bytes) -> None:
        """Replays a committed block with its undo record, unvalidated and idempotently: spent
        outpoints removed if present, created coins added if absent (a start whose stored coins
        lag the blocks). ValueError (set unchanged) for a block or undo record that does not
        decode or fit."""
    def totals(self) -> tuple[int, int]:
        """(number of coins, sum of their values in sat)."""
    def check_transactions(self, txs: list[bytes], rules: LedgerRules, height: int) -> list[TxVerdict]:
        """Mempool admission: one verdict per encoded tx against the set; changes nothing."""
    def take_delta(self) -> list[tuple[bytes, bytes | None]]:
        """Store writes since the last call for the outpoints whose stored coin differs, as
        (44-byte store key, coin to put) or (store key of the stored coin, None to delete),
        sorted by key. A store key is the coin's creation height (u64 big-endian) then its
        outpoint (docs/operator.md, "Data layout")."""
    def take_dirty(self) -> DirtyCoins:
        """Takes the outpoints changed since the last take (``take_delta`` included), leaving the
        set clean, without working out their writes: O(1). ``DirtyCoins.delta()`` does, later,
        as of this moment."""
    def memory_usage(self) -> int:
        """Estimated memory of the set, bytes."""
    def coins_of(self, pubkey_hashes: bytes) -> list[tuple[bytes, bytes]]:
        """Every (36-byte outpoint, 49-byte coin) owned by one of the 32-byte public key hashes
        in ``pubkey_hashes`` (n × 32 bytes), sorted by outpoint: one scan, GIL released.
        ValueError if the length is not a multiple of 32 bytes."""

# The encrypted P2P transport (native/src/noise.rs; docs/p2p.md "Transport").

NOISE_PROTOCOL: str
"""``Noise_XX_25519_ChaChaPoly_SHA256``."""
NOISE_MAX_MESSAGE_LEN: int
"""65,535: the largest Noise message (Noise specification §3)."""
NOISE_MAX_PLAINTEXT: int
"""65,519: plaintext bytes of one transport message (the rest is the tag)."""
NOISE_TAG_LEN: int
"""16: bytes of the ChaCha20-Poly1305 tag of each encrypted payload."""

def noise_public_key(secret: bytes) -> bytes:
    """The 32-byte X25519 public key of a 32-byte Noise static secret."""

@final
class NoiseHandshake:
    """One side of a Noise XX handshake. ``ephemeral_secret`` fixes the ephemeral key: for the
    published test vectors only. Messages here are bare (no length prefix). ValueError for a
    bad length, a message that does not authenticate or one out of turn."""

    def __new__(
        cls, initiator: bool, prologue: bytes, static_secret: bytes, ephemeral_secret: bytes | None = None
    ) -> NoiseHandshake: ...
    def write_message(self, payload: bytes) -> bytes:
        """Our next handshake message carrying ``payload``."""
    def read_message(self, message: bytes) -> bytes:
        """The payload of the peer's next handshake message."""
    @property
    def finished(self) -> bool: ...
    @property
    def initiator(self) -> bool: ...
    @property
    def remote_static(self) -> bytes | None:
        """The peer's 32-byte static key, once read."""
    @property
    def handshake_hash(self) -> bytes:
        """The 32-byte handshake hash ``h`` (Noise specification §11.2)."""
    def finish(self) -> NoiseTransport:
        """The transport of a finished handshake (RuntimeError before, or twice)."""

@final
class NoiseTransport:
    """An established session. On the stream each transport message is a big-endian u16
    length and the message (at most 65,535 bytes)."""

    def encrypt(self, plaintext: bytes) -> bytes:
        """``plaintext`` as length-prefixed transport messages of at most NOISE_MAX_PLAINTEXT
        plaintext bytes each (b"" for b""); GIL released."""
    def decrypt(self, data: bytes) -> bytes:
        """The plaintext of every message completed by ``data`` (a trailing partial message is
        kept); ValueError, returning nothing, if one fails to authenticate. GIL released."""
    @property
    def buffered(self) -> int:
        """Bytes held of a partial incoming message (at most 2 + 65,535)."""
    @property
    def sending_nonce(self) -> int: ...
    @property
    def receiving_nonce(self) -> int: ...
    @property
    def remote_static(self) -> bytes | None: ...
    @property
    def handshake_hash(self) -> bytes: ...

@final
class DirtyCoins:
    """The outpoints ``UtxoSet.take_dirty`` took, each with what the store holds for it."""

    def __len__(self) -> int:
        """The number of outpoints taken: an upper bound on the writes."""
    def delta(self) -> CoinDelta:
        """The store writes as of the take, as ``take_delta`` would have returned them then,
        however the set changed since. Runs with the GIL released, reading the set under its
        read lock 16,384 outpoints at a time (a write to the set waits for one slice at most),
        so it may run on a worker thread. ``ValueError`` once the set has been taken from again
        (``take_dirty``, ``take_delta``) or loaded since."""

@final
class CoinDelta:
    """A store delta of ``DirtyCoins.delta``, sorted by store key: ``take_delta``'s writes kept
    native, converted a slice at a time."""

    def __len__(self) -> int: ...
    @overload
    def __getitem__(self, key: int, /) -> tuple[bytes, bytes | None]: ...
    @overload
    def __getitem__(self, key: slice, /) -> list[tuple[bytes, bytes | None]]: ...
