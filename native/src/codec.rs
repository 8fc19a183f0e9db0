//! The canonical consensus encoding (docs/encoding.md, DESIGN §3).
//!
//! Fixed-width little-endian integers; a sequence is a `u32` count and its items. Decoding is
//! strict and total: it never panics and never allocates more than the input can hold. Each
//! count is checked against the bytes that remain (count × minimum item size) before anything is
//! allocated, every kind tag must be known, every payload is exactly its kind's length, a coin's
//! `is_coinbase` byte is 0 or 1, and no bytes may follow the value. Decoding and then encoding
//! gives back the input bytes exactly.

mod reader;
pub use reader::{CodecError, Reader};

use rayon::prelude::*;

use crate::ed25519;
use crate::hash::{hash_in, Domain, Hash, HASH_LEN};
use crate::types::{
    Block, BlockHeader, Coin, OutPoint, Transaction, TxKind, TxOut, Witness, COIN_LEN, HEADER_LEN,
    OUTPOINT_LEN, TXOUT_LEN, WITNESS_LEN,
};

/// Smallest encoded transaction, bytes: version, kind, four empty sequences and lock_time
/// (`4 + 1 + 4 + 4 + 4 + 4 + 4`). Bounds a block's transaction count before allocation.
pub const MIN_TRANSACTION_LEN: usize = 25;

/// Length of the message hashed into a sighash: chain id ‖ network ‖ txid ‖ index u32, bytes.
pub const SIGHASH_MESSAGE_LEN: usize = HASH_LEN + 1 + HASH_LEN + 4;

/// Blocks with at least this many transactions get their txids hashed on all cores.
pub const PARALLEL_TXIDS: usize = 512;

/// Decodes exactly one value with `read`, rejecting trailing bytes.
fn decode_all<'a, T>(
    bytes: &'a [u8],
    what: &'static str,
    read: impl FnOnce(&mut Reader<'a>) -> Result<T, CodecError>,
) -> Result<T, CodecError> {
    let mut r = Reader::new(bytes);
    let value = read(&mut r)?;
    r.finish(what)?;
    Ok(value)
}

fn put_u32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_le_bytes());
}

fn put_u64(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(&v.to_le_bytes());
}

/// Sequence lengths are u32 on the wire; a longer sequence cannot be encoded. Types built by
/// decoding always fit; the bindings check lengths before building a value to encode.
fn put_len(out: &mut Vec<u8>, len: usize) {
    let len = u32::try_from(len).expect("sequence longer than u32::MAX items cannot be encoded");
    put_u32(out, len);
}

impl OutPoint {
    /// Appends the 36-byte encoding: txid ‖ vout u32.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.txid);
        put_u32(out, self.vout);
    }

    /// Reads one outpoint.
    pub fn read(r: &mut Reader<'_>) -> Result<Self, CodecError> {
        Ok(OutPoint {
            txid: r.hash("outpoint txid")?,
            vout: r.u32("outpoint vout")?,
        })
    }

    /// Decodes exactly 36 bytes.
    pub fn decode(bytes: &[u8]) -> Result<Self, CodecError> {
        decode_all(bytes, "outpoint", Self::read)
    }
}

impl TxOut {
    /// Appends the 40-byte encoding: value u64 ‖ pubkey_hash.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        put_u64(out, self.value);
        out.extend_from_slice(&self.pubkey_hash);
    }

    /// Reads one output.
    pub fn read(r: &mut Reader<'_>) -> Result<Self, CodecError> {
        Ok(TxOut {
            value: r.u64("output value")?,
            pubkey_hash: r.hash("output pubkey_hash")?,
        })
    }

    /// Decodes exactly 40 bytes.
    pub fn decode(bytes: &[u8]) -> Result<Self, CodecError> {
        decode_all(bytes, "output", Self::read)
    }
}

impl Witness {
    /// Appends the 96-byte encoding: public_key ‖ signature.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.public_key);
        out.extend_from_slice(&self.signature);
    }

    /// Reads one witness.
    pub fn read(r: &mut Reader<'_>) -> Result<Self, CodecError> {
        Ok(Witness {
            public_key: r.array("witness public_key")?,
            signature: r.array("witness signature")?,
        })
    }

    /// Decodes exactly 96 bytes.
    pub fn decode(bytes: &[u8]) -> Result<Self, CodecError> {
        decode_all(bytes, "witness", Self::read)
    }
}

impl Coin {
    /// Appends the 49-byte encoding: value u64 ‖ pubkey_hash ‖ height u64 ‖ is_coinbase u8.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        put_u64(out, self.value);
        out.extend_from_slice(&self.pubkey_hash);
        put_u64(out, self.height);
        out.push(self.is_coinbase as u8);
    }

    /// The 49-byte encoding as an array.
    pub fn encode(&self) -> [u8; COIN_LEN] {
        let mut out = Vec::with_capacity(COIN_LEN);
        self.encode_into(&mut out);
        let mut arr = [0u8; COIN_LEN];
        arr.copy_from_slice(&out);
        arr
    }

    /// Reads one coin.
    pub fn read(r: &mut Reader<'_>) -> Result<Self, CodecError> {
        Ok(Coin {
            value: r.u64("coin value")?,
            pubkey_hash: r.hash("coin pubkey_hash")?,
            height: r.u64("coin height")?,
            is_coinbase: r.bool("coin is_coinbase")?,
        })
    }

    /// Decodes exactly 49 bytes.
    pub fn decode(bytes: &[u8]) -> Result<Self, CodecError> {
        decode_all(bytes, "coin", Self::read)
    }
}

impl BlockHeader {
    /// Appends the 296-byte encoding (field order of docs/encoding.md).
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        put_u32(out, self.version);
        put_u64(out, self.height);
        out.extend_from_slice(&self.prev_hash);
        out.extend_from_slice(&self.merkle_root);
        out.extend_from_slice(&self.utxo_set_hash);
        put_u64(out, self.timestamp);
        out.extend_from_slice(&self.proposer);
        out.extend_from_slice(&self.vrf_proof);
        out.extend_from_slice(&self.vrf_output);
        put_u32(out, self.round);
    }

    /// The 296-byte encoding.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER_LEN);
        self.encode_into(&mut out);
        out
    }

    /// Block hash: `hash_in(block_header, encoding)`.
    pub fn hash(&self) -> Hash {
        hash_in(Domain::BlockHeader, &self.encode())
    }

    /// Reads one header.
    pub fn read(r: &mut Reader<'_>) -> Result<Self, CodecError> {
        Ok(BlockHeader {
            version: r.u32("header version")?,
            height: r.u64("header height")?,
            prev_hash: r.hash("header prev_hash")?,
            merkle_root: r.hash("header merkle_root")?,
            utxo_set_hash: r.hash("header utxo_set_hash")?,
            timestamp: r.u64("header timestamp")?,
            proposer: r.array("header proposer")?,
            vrf_proof: r.array("header vrf_proof")?,
            vrf_output: r.array("header vrf_output")?,
            round: r.u32("header round")?,
        })
    }

    /// Decodes exactly 296 bytes.
    pub fn decode(bytes: &[u8]) -> Result<Self, CodecError> {
        decode_all(bytes, "block header", Self::read)
    }
}

impl Transaction {
    /// Appends the encoding without the witness section (what the txid hashes).
    pub fn encode_without_witnesses_into(&self, out: &mut Vec<u8>) {
        put_u32(out, self.version);
        out.push(self.kind as u8);
        put_len(out, self.inputs.len());
        for input in &self.inputs {
            input.encode_into(out);
        }
        put_len(out, self.outputs.len());
        for output in &self.outputs {
            output.encode_into(out);
        }
        put_u32(out, self.lock_time);
        put_len(out, self.payload.len());
        out.extend_from_slice(&self.payload);
    }

    /// Appends the full encoding, witnesses included.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        out.reserve(self.encoded_len());
        self.encode_without_witnesses_into(out);
        put_len(out, self.witnesses.len());
        for witness in &self.witnesses {
            witness.encode_into(out);
        }
    }

    /// The full encoding, witnesses included.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.encoded_len());
        self.encode_into(&mut out);
        out
    }

    /// Length of the encoding without the witness section, bytes.
    pub fn encoded_len_without_witnesses(&self) -> usize {
        MIN_TRANSACTION_LEN - 4
            + self.inputs.len() * OUTPOINT_LEN
            + self.outputs.len() * TXOUT_LEN
            + self.payload.len()
    }

    /// Length of the full encoding, bytes.
    pub fn encoded_len(&self) -> usize {
        self.encoded_len_without_witnesses() + 4 + self.witnesses.len() * WITNESS_LEN
    }

    /// txid: `hash_in(txid, encoding without witnesses)`.
    pub fn txid(&self) -> Hash {
        let mut buf = Vec::with_capacity(self.encoded_len_without_witnesses());
        self.encode_without_witnesses_into(&mut buf);
        hash_in(Domain::Txid, &buf)
    }

    /// Whether the payload is exactly its kind's length, as decoding requires. A transaction
    /// failing this encodes to bytes that do not decode; the bindings refuse to encode it.
    pub fn check_payload(&self) -> Result<(), CodecError> {
        let expected = self.kind.payload_len();
        if self.payload.len() != expected {
            return Err(CodecError::PayloadLength {
                kind: self.kind,
                offset: self.encoded_len_without_witnesses() - self.payload.len() - 4,
                expected,
                got: u32::try_from(self.payload.len()).unwrap_or(u32::MAX),
            });
        }
        Ok(())
    }

    /// Reads one transaction; also returns the offset (in the reader's input) where its witness
    /// section starts, so the txid can be hashed from the input bytes without re-encoding.
    pub fn read_with_witness_offset(r: &mut Reader<'_>) -> Result<(Self, usize), CodecError> {
        let version = r.u32("transaction version")?;
        let kind_offset = r.position();
        let tag = r.u8("transaction kind")?;
        let kind = TxKind::from_u8(tag).ok_or(CodecError::UnknownKind {
            offset: kind_offset,
            tag,
        })?;
        let n = r.count("inputs", OUTPOINT_LEN)?;
        let mut inputs = Vec::with_capacity(n);
        for _ in 0..n {
            inputs.push(OutPoint::read(r)?);
        }
        let n = r.count("outputs", TXOUT_LEN)?;
        let mut outputs = Vec::with_capacity(n);
        for _ in 0..n {
            outputs.push(TxOut::read(r)?);
        }
        let lock_time = r.u32("transaction lock_time")?;
        let payload_offset = r.position();
        let len = r.u32("payload length")?;
        let expected = kind.payload_len();
        if len as usize != expected {
            return Err(CodecError::PayloadLength {
                kind,
                offset: payload_offset,
                expected,
                got: len,
            });
        }
        let payload = r.take(expected, "payload")?.to_vec();
        let witness_offset = r.position();
        let n = r.count("witnesses", WITNESS_LEN)?;
        let mut witnesses = Vec::with_capacity(n);
        for _ in 0..n {
            witnesses.push(Witness::read(r)?);
        }
        let tx = Transaction {
            version,
            kind,
            inputs,
            outputs,
            lock_time,
            payload,
            witnesses,
        };
        Ok((tx, witness_offset))
    }

    /// Reads one transaction.
    pub fn read(r: &mut Reader<'_>) -> Result<Self, CodecError> {
        Ok(Self::read_with_witness_offset(r)?.0)
    }

    /// Decodes exactly one transaction.
    pub fn decode(bytes: &[u8]) -> Result<Self, CodecError> {
        decode_all(bytes, "transaction", Self::read)
    }

    /// The message witness `index` signs (docs/encoding.md, "Signatures").
    pub fn sighash(&self, chain_id: &Hash, network: u8, index: u32) -> Hash {
        sighash(chain_id, network, &self.txid(), index)
    }
}

impl Block {
    /// Appends the encoding: header ‖ u32 count ‖ transactions.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        self.header.encode_into(out);
        put_len(out, self.transactions.len());
        for tx in &self.transactions {
            tx.encode_into(out);
        }
    }

    /// The encoding: header ‖ u32 count ‖ transactions.
    pub fn encode(&self) -> Vec<u8> {
        let len = HEADER_LEN
            + 4
            + self
                .transactions
                .iter()
                .map(Transaction::encoded_len)
                .sum::<usize>();
        let mut out = Vec::with_capacity(len);
        self.encode_into(&mut out);
        out
    }

    /// Decodes exactly one block.
    pub fn decode(bytes: &[u8]) -> Result<Self, CodecError> {
        decode_block(bytes)
    }
}

/// Decodes exactly one transaction (no trailing bytes).
pub fn decode_transaction(bytes: &[u8]) -> Result<Transaction, CodecError> {
    Transaction::decode(bytes)
}

/// Decodes exactly one transaction and returns it with its txid, hashed from `bytes` (the part
/// before the witness section) without re-encoding.
pub fn decode_transaction_with_txid(bytes: &[u8]) -> Result<(Transaction, Hash), CodecError> {
    let (tx, witness_offset) =
        decode_all(bytes, "transaction", Transaction::read_with_witness_offset)?;
    Ok((tx, hash_in(Domain::Txid, &bytes[..witness_offset])))
}

/// The txid of one encoded transaction (checked strictly: the bytes must decode).
pub fn txid_of_encoded(bytes: &[u8]) -> Result<Hash, CodecError> {
    Ok(decode_transaction_with_txid(bytes)?.1)
}

/// Reads a block, recording each transaction's txid range `(start, witness_offset)` in `bytes`.
fn read_block(bytes: &[u8]) -> Result<(Block, Vec<(usize, usize)>), CodecError> {
    let mut r = Reader::new(bytes);
    let header = BlockHeader::read(&mut r)?;
    let n = r.count("transactions", MIN_TRANSACTION_LEN)?;
    let mut transactions = Vec::with_capacity(n);
    let mut ranges = Vec::with_capacity(n);
    for _ in 0..n {
        let start = r.position();
        let (tx, witness_offset) = Transaction::read_with_witness_offset(&mut r)?;
        transactions.push(tx);
        ranges.push((start, witness_offset));
    }
    r.finish("block")?;
    Ok((
        Block {
            header,
            transactions,
        },
        ranges,
    ))
}

/// [`split_block`]'s result: the header, each transaction's byte range, each txid.
pub type SplitBlock = (BlockHeader, Vec<(usize, usize)>, Vec<Hash>);

/// A block split without building its transactions for the caller: the header, then per
/// transaction its byte range in `bytes` (witnesses included) and its txid. Decodes as strictly
/// as [`decode_block`] (the same errors); blocks of at least [`PARALLEL_TXIDS`] transactions are
/// hashed on all cores.
pub fn split_block(bytes: &[u8]) -> Result<SplitBlock, CodecError> {
    let (header, spans, prefixes) = block_ranges(bytes)?;
    let hash = |&(start, end): &(usize, usize)| hash_in(Domain::Txid, &bytes[start..end]);
    let txids = if prefixes.len() >= PARALLEL_TXIDS {
        prefixes.par_iter().map(hash).collect()
    } else {
        prefixes.iter().map(hash).collect()
    };
    Ok((header, spans, txids))
}

/// Each transaction's (offset, length) in an encoded block, witnesses included, in block order:
/// what the transaction index stores. Decodes as strictly as [`decode_block`] (the same errors)
/// and hashes nothing.
pub fn transaction_spans(bytes: &[u8]) -> Result<Vec<(usize, usize)>, CodecError> {
    let (_, spans, _) = block_ranges(bytes)?;
    Ok(spans
        .into_iter()
        .map(|(start, end)| (start, end - start))
        .collect())
}

/// Ranges of a block's transactions: (header, each transaction's (start, end), each
/// transaction's (start, witness offset): the bytes its txid hashes).
type BlockRanges = (BlockHeader, Vec<(usize, usize)>, Vec<(usize, usize)>);

fn block_ranges(bytes: &[u8]) -> Result<BlockRanges, CodecError> {
    let mut r = Reader::new(bytes);
    let header = BlockHeader::read(&mut r)?;
    let n = r.count("transactions", MIN_TRANSACTION_LEN)?;
    let mut spans = Vec::with_capacity(n);
    let mut prefixes = Vec::with_capacity(n);
    for _ in 0..n {
        let start = r.position();
        let (_, witness_offset) = Transaction::read_with_witness_offset(&mut r)?;
        spans.push((start, r.position()));
        prefixes.push((start, witness_offset));
    }
    r.finish("block")?;
    Ok((header, spans, prefixes))
}

/// Decodes exactly one block (no trailing bytes).
pub fn decode_block(bytes: &[u8]) -> Result<Block, CodecError> {
    Ok(read_block(bytes)?.0)
}

/// Decodes a block and returns its transactions' txids in block order, each hashed from the
/// input bytes before that transaction's witness section (no re-encoding); blocks of at least
/// [`PARALLEL_TXIDS`] transactions are hashed on all cores.
pub fn decode_block_with_txids(bytes: &[u8]) -> Result<(Block, Vec<Hash>), CodecError> {
    let (block, ranges) = read_block(bytes)?;
    let hash = |&(start, end): &(usize, usize)| hash_in(Domain::Txid, &bytes[start..end]);
    let txids = if ranges.len() >= PARALLEL_TXIDS {
        ranges.par_iter().map(hash).collect()
    } else {
        ranges.iter().map(hash).collect()
    };
    Ok((block, txids))
}

/// The message witness `index` of transaction `txid` signs:
/// `hash_in(sighash, chain_id ‖ network u8 ‖ txid ‖ index u32)` (docs/encoding.md, "Signatures").
pub fn sighash(chain_id: &Hash, network: u8, txid: &Hash, index: u32) -> Hash {
    let mut msg = [0u8; SIGHASH_MESSAGE_LEN];
    msg[..HASH_LEN].copy_from_slice(chain_id);
    msg[HASH_LEN] = network;
    msg[HASH_LEN + 1..2 * HASH_LEN + 1].copy_from_slice(txid);
    msg[2 * HASH_LEN + 1..].copy_from_slice(&index.to_le_bytes());
    hash_in(Domain::Sighash, &msg)
}

/// Signs an encoded transaction: decodes `bytes` strictly, then writes to `out` its encoding
/// with the witness section replaced by one witness per secret key, witness `i` signing
/// `sighash(chain_id, network, txid, i)` with `secret_keys[i]` (any witnesses in `bytes` are
/// dropped). Used to build load; the keys-to-coins match is the validator's business.
pub fn sign_encoded(
    bytes: &[u8],
    secret_keys: &[[u8; ed25519::SECRET_KEY_LEN]],
    chain_id: &Hash,
    network: u8,
    out: &mut Vec<u8>,
) -> Result<(), CodecError> {
    let (_, witness_offset) =
        decode_all(bytes, "transaction", Transaction::read_with_witness_offset)?;
    let prefix = &bytes[..witness_offset];
    let txid = hash_in(Domain::Txid, prefix);
    out.reserve(prefix.len() + 4 + secret_keys.len() * WITNESS_LEN);
    out.extend_from_slice(prefix);
    put_len(out, secret_keys.len());
    for (i, sk) in secret_keys.iter().enumerate() {
        let index = u32::try_from(i).expect("more than u32::MAX witnesses");
        let witness = Witness {
            public_key: ed25519::public_key(sk),
            signature: ed25519::sign(sk, &sighash(chain_id, network, &txid, index)),
        };
        witness.encode_into(out);
    }
    Ok(())
}

#[cfg(test)]
mod tests;
