//! What the fuzz targets share: the ledger rules they validate under.
//!
//! The values are `NetworkParams`' defaults (timecoin/params.py); the fuzzer looks for panics,
//! not for rule outcomes, so any fixed rules serve, and these let small inputs reach past the
//! size checks into the rules proper.

use timecoin_native::validate::LedgerRules;

/// Chain id every fuzzed sighash commits to (any fixed hash).
pub const CHAIN_ID: [u8; 32] = [0x54; 32];
/// Network byte signed into every sighash: devnet (docs/encoding.md, "Signatures").
pub const NETWORK: u8 = 2;

/// The rules of `NetworkParams`' defaults (timecoin/params.py): dust limit 546 sat, minimum
/// fee 1,000 sat + 1‰ of the value sent to others, transactions up to 1,000,000 bytes, blocks
/// up to 2^31 − 1 bytes.
pub fn rules() -> LedgerRules {
    LedgerRules {
        chain_id: CHAIN_ID,
        network: NETWORK,
        dust_limit: 546,
        min_fee_base: 1_000,
        min_fee_per_mille: 1,
        max_tx_size: 1_000_000,
        max_block_size: (1 << 31) - 1,
    }
}
