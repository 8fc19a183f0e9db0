//! Consensus types (docs/encoding.md). Plain data: encoding and decoding live in `codec`,
//! validation in `validate`, the UTXO set in `utxo`.

use crate::hash::Hash;

/// Ed25519 public key, bytes.
pub type PublicKey = [u8; 32];
/// Ed25519 signature, bytes.
pub type SignatureBytes = [u8; 64];

/// Length of an encoded [`OutPoint`], bytes.
pub const OUTPOINT_LEN: usize = 36;
/// Length of an encoded [`TxOut`], bytes.
pub const TXOUT_LEN: usize = 40;
/// Length of an encoded [`Witness`], bytes.
pub const WITNESS_LEN: usize = 96;
/// Length of an encoded [`BlockHeader`], bytes.
pub const HEADER_LEN: usize = 296;
/// Length of an encoded [`Coin`], bytes.
pub const COIN_LEN: usize = 49;
/// Length of a VRF proof (RFC 9381, ECVRF-EDWARDS25519-SHA512-TAI), bytes.
pub const VRF_PROOF_LEN: usize = 80;
/// Length of a VRF output (RFC 9381, SHA-512), bytes.
pub const VRF_OUTPUT_LEN: usize = 64;

/// A reference to one output of one transaction.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OutPoint {
    pub txid: Hash,
    pub vout: u32,
}

impl OutPoint {
    /// The null outpoint (all-zero txid, vout u32::MAX): "no collateral" in a Free-tier
    /// masternode registration.
    pub const NULL: OutPoint = OutPoint {
        txid: [0; 32],
        vout: u32::MAX,
    };
}

/// A transaction output: `value` sat paid to the key whose hash is `pubkey_hash`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TxOut {
    pub value: u64,
    pub pubkey_hash: Hash,
}

/// A signature with the key that made it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Witness {
    pub public_key: PublicKey,
    pub signature: SignatureBytes,
}

/// Transaction kinds (docs/encoding.md, "Payloads by kind").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum TxKind {
    Transfer = 0,
    Coinbase = 1,
    MasternodeRegister = 2,
    MasternodeDeregister = 3,
    MasternodePayout = 4,
}

impl TxKind {
    /// The kind of an encoded tag, if known.
    pub fn from_u8(tag: u8) -> Option<TxKind> {
        Some(match tag {
            0 => TxKind::Transfer,
            1 => TxKind::Coinbase,
            2 => TxKind::MasternodeRegister,
            3 => TxKind::MasternodeDeregister,
            4 => TxKind::MasternodePayout,
            _ => return None,
        })
    }

    /// Exact payload length of the kind, bytes.
    pub const fn payload_len(self) -> usize {
        match self {
            TxKind::Transfer => 0,
            TxKind::Coinbase => 8,
            TxKind::MasternodeRegister => OUTPOINT_LEN + 32 + 32,
            TxKind::MasternodeDeregister => OUTPOINT_LEN,
            TxKind::MasternodePayout => OUTPOINT_LEN + 32,
        }
    }

    /// Witnesses the kind needs after the input witnesses.
    pub const fn extra_witnesses(self) -> usize {
        match self {
            TxKind::Transfer | TxKind::Coinbase => 0,
            TxKind::MasternodeRegister => 2,
            TxKind::MasternodeDeregister | TxKind::MasternodePayout => 1,
        }
    }
}

/// A transaction. `payload` holds the kind's payload bytes (exact length checked by the codec).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transaction {
    pub version: u32,
    pub kind: TxKind,
    pub inputs: Vec<OutPoint>,
    pub outputs: Vec<TxOut>,
    pub lock_time: u32,
    pub payload: Vec<u8>,
    pub witnesses: Vec<Witness>,
}

/// A block header (296 bytes encoded).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlockHeader {
    pub version: u32,
    pub height: u64,
    pub prev_hash: Hash,
    pub merkle_root: Hash,
    pub utxo_set_hash: Hash,
    pub timestamp: u64,
    pub proposer: PublicKey,
    pub vrf_proof: [u8; VRF_PROOF_LEN],
    pub vrf_output: [u8; VRF_OUTPUT_LEN],
    pub round: u32,
}

/// A block: header and transactions, coinbase first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Block {
    pub header: BlockHeader,
    pub transactions: Vec<Transaction>,
}

/// A UTXO set entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Coin {
    pub value: u64,
    pub pubkey_hash: Hash,
    /// Height of the block that created it.
    pub height: u64,
    pub is_coinbase: bool,
}
