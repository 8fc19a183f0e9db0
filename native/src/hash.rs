//! BLAKE3-256 with domain separation (DESIGN §3).
//!
//! Each domain is a BLAKE3 `derive_key` context string, so a txid, a block hash, a merkle leaf and
//! a merkle node can never collide: they are outputs of independent keyed functions. The context
//! keys are derived once per process and reused, so a domain hash of one 64-byte block costs one
//! compression, exactly like a plain hash.

use std::sync::LazyLock;

use blake3::hazmat::{hash_derive_key_context, ContextKey, HasherExt};

/// Length of every hash in the protocol, in bytes.
pub const HASH_LEN: usize = 32;

/// A 32-byte BLAKE3 output.
pub type Hash = [u8; HASH_LEN];

/// The protocol's hash domains. The context strings are part of the consensus rules: changing
/// one changes every hash of that kind. They follow the BLAKE3 guidance for `derive_key`
/// contexts (application, date, purpose).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Domain {
    /// Transaction id: the transaction encoded without its witnesses.
    Txid,
    /// Block id: the encoded block header.
    BlockHeader,
    /// Merkle tree leaf: one txid.
    MerkleLeaf,
    /// Merkle tree inner node: left child ‖ right child.
    MerkleNode,
    /// Address payload: an Ed25519 public key.
    PublicKey,
    /// Message signed by an input's witness.
    Sighash,
    /// Expansion of one UTXO set element (outpoint ‖ coin) by BLAKE3-XOF for the LtHash.
    UtxoElement,
    /// Digest of the LtHash state committed in block headers.
    UtxoSet,
    /// Random stream of the weighted leader draw: seed ‖ height (docs/leader-selection.md).
    LeaderDraw,
}

impl Domain {
    /// Every domain, in a fixed order (used to export the table to Python).
    pub const ALL: [Domain; 9] = [
        Domain::Txid,
        Domain::BlockHeader,
        Domain::MerkleLeaf,
        Domain::MerkleNode,
        Domain::PublicKey,
        Domain::Sighash,
        Domain::UtxoElement,
        Domain::UtxoSet,
        Domain::LeaderDraw,
    ];

    /// Short stable name of the domain, as Python sees it.
    pub const fn name(self) -> &'static str {
        match self {
            Domain::Txid => "txid",
            Domain::BlockHeader => "block_header",
            Domain::MerkleLeaf => "merkle_leaf",
            Domain::MerkleNode => "merkle_node",
            Domain::PublicKey => "public_key",
            Domain::Sighash => "sighash",
            Domain::UtxoElement => "utxo_element",
            Domain::UtxoSet => "utxo_set",
            Domain::LeaderDraw => "leader_draw",
        }
    }

    /// The BLAKE3 `derive_key` context string of the domain.
    pub const fn context(self) -> &'static str {
        match self {
            Domain::Txid => "TIME Coin 2026-11-21 txid v1",
            Domain::BlockHeader => "TIME Coin 2026-11-21 block header v1",
            Domain::MerkleLeaf => "TIME Coin 2026-11-21 merkle leaf v1",
            Domain::MerkleNode => "TIME Coin 2026-11-21 merkle node v1",
            Domain::PublicKey => "TIME Coin 2026-11-21 public key v1",
            Domain::Sighash => "TIME Coin 2026-11-21 sighash v1",
            Domain::UtxoElement => "TIME Coin 2026-11-21 utxo element v1",
            Domain::UtxoSet => "TIME Coin 2026-11-21 utxo set v1",
            Domain::LeaderDraw => "TIME Coin 2026-11-21 leader draw v1",
        }
    }

    /// Looks a domain up by [`Domain::name`].
    pub fn from_name(name: &str) -> Option<Domain> {
        Domain::ALL.into_iter().find(|d| d.name() == name)
    }

    fn context_key(self) -> &'static ContextKey {
        static KEYS: LazyLock<[ContextKey; Domain::ALL.len()]> =
            LazyLock::new(|| Domain::ALL.map(|d| hash_derive_key_context(d.context())));
        &KEYS[self as usize]
    }

    /// The domain's derived key as the eight little-endian words BLAKE3's compression takes,
    /// for the many-input paths that drive `blake3::platform::Platform` directly (merkle.rs,
    /// lthash.rs).
    pub(crate) fn key_words(self) -> [u32; 8] {
        let key = self.context_key();
        std::array::from_fn(|i| u32::from_le_bytes(key[4 * i..4 * i + 4].try_into().unwrap()))
    }

    /// A hasher in this domain, for inputs that come in parts.
    pub fn hasher(self) -> blake3::Hasher {
        blake3::Hasher::new_from_context_key(self.context_key())
    }
}

// BLAKE3 flags (BLAKE3 specification §2.1, Table 3), for the paths above: a domain's message
// is hashed in derive-key mode, its key material flagged DERIVE_KEY_MATERIAL.
pub(crate) const CHUNK_START: u8 = 1 << 0;
pub(crate) const CHUNK_END: u8 = 1 << 1;
pub(crate) const ROOT: u8 = 1 << 3;
pub(crate) const DERIVE_KEY_MATERIAL: u8 = 1 << 6;

/// Plain BLAKE3-256 of `data`.
pub fn blake3(data: &[u8]) -> Hash {
    *blake3::hash(data).as_bytes()
}

/// BLAKE3-256 of `data` in `domain`: equal to `blake3::derive_key(domain.context(), data)`.
pub fn hash_in(domain: Domain, data: &[u8]) -> Hash {
    *domain.hasher().update(data).finalize().as_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domain_hash_is_derive_key_mode() {
        for d in Domain::ALL {
            for data in [&b""[..], b"abc", &[7u8; 1500]] {
                assert_eq!(hash_in(d, data), blake3::derive_key(d.context(), data));
            }
        }
    }

    #[test]
    fn domains_are_distinct() {
        let outs: Vec<Hash> = Domain::ALL
            .iter()
            .map(|d| hash_in(*d, b"same input"))
            .collect();
        for i in 0..outs.len() {
            for j in 0..i {
                assert_ne!(outs[i], outs[j]);
            }
        }
    }

    #[test]
    fn names_round_trip() {
        for d in Domain::ALL {
            assert_eq!(Domain::from_name(d.name()), Some(d));
        }
        assert_eq!(Domain::from_name("nope"), None);
    }

    #[test]
    fn plain_blake3_matches_spec_vector() {
        // BLAKE3 of the empty input (the BLAKE3 paper's test vectors).
        assert_eq!(
            hex::encode(blake3(b"")),
            "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262"
        );
    }
}
