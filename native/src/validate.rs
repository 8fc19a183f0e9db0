//! Transaction validation rules (DESIGN §4, docs/encoding.md) and mempool admission checks.
//!
//! A transaction is valid when it decodes canonically, is at most `max_tx_size` bytes, every
//! input exists unspent, every witness key hashes to the spent coin's `pubkey_hash` and its
//! signature verifies (ZIP-215, all of a batch in one [`ed25519::verify_batch`] call), every
//! output is at least the dust limit, and `sum(in) − sum(out) ≥ min fee`, where the minimum fee
//! is `min_fee_base + min_fee_per_mille ‰` of the value *sent to others* (outputs paying a
//! `pubkey_hash` that none of the spent coins has: change and self-sends pay the base only;
//! [`sent_to_others`]). Each rejection has a
//! stable [`RejectCode`] and a message naming the offending input, output or witness.
//!
//! Masternode kinds (register, deregister, payout change) get the generic checks here: inputs,
//! fee, the input witnesses, the witness count (inputs + the kind's extra witnesses), the
//! extra witnesses' signatures over their sighash indices, and for a registration that the
//! masternode-key witness is the payload's key. Registry semantics (collateral amount and
//! ownership, locking the collateral, tiers) are NOT checked here: they belong to the
//! masternode registry, which receives these transactions through
//! `AppliedBlock::masternode_txs` (blocks) and the verdict's `kind` (mempool) and must reject
//! what the registry does not allow.
//!
//! Nothing here mutates state; `apply` uses these checks and then commits to the UTXO set.

use rayon::prelude::*;

use crate::codec::{self, CodecError};
use crate::ed25519;
use crate::hash::{hash_in, Domain, Hash};
use crate::types::{Transaction, TxKind, TxOut, OUTPOINT_LEN};
use crate::utxo::{display_outpoint, outpoint_key, CoinBytes, OutPointKey, UtxoSet};

/// Transaction format version this node validates (docs/encoding.md).
pub const TX_VERSION: u32 = 1;

/// Batches of at least this many transactions are checked on all cores. Below it the work
/// (decoding and input lookups, ~2 µs a transaction) is on the calling thread: handing it to
/// rayon costs more than it gains, and on a busy machine the caller waits for a worker to be
/// scheduled (see [`crate::ed25519::MIN_PARALLEL_CHUNK`]).
pub const PARALLEL_TXS: usize = 512;

/// The consensus parameters validation needs (DESIGN §4; defined in `timecoin/params.py`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LedgerRules {
    /// Genesis block hash, signed into every sighash.
    pub chain_id: Hash,
    /// 0 mainnet, 1 testnet, 2 devnet; signed into every sighash.
    pub network: u8,
    /// Smallest output value, sat (outputs below it are rejected).
    pub dust_limit: u64,
    /// Fixed part of the minimum fee, sat.
    pub min_fee_base: u64,
    /// Proportional part of the minimum fee, in thousandths of the value sent to others
    /// ([`sent_to_others`]).
    pub min_fee_per_mille: u64,
    /// Largest encoded transaction, bytes.
    pub max_tx_size: usize,
    /// Largest encoded block, bytes.
    pub max_block_size: usize,
}

impl LedgerRules {
    /// Minimum fee of a transaction sending `sent_to_others` sat to others (DESIGN §4: the
    /// value of its outputs that pay no address its inputs spend from, [`sent_to_others`]):
    /// `min_fee_base + sent_to_others × min_fee_per_mille / 1000` (integer division), in sat;
    /// exact in u128.
    pub fn min_fee(&self, sent_to_others: u64) -> u128 {
        self.min_fee_base as u128 + sent_to_others as u128 * self.min_fee_per_mille as u128 / 1000
    }
}

/// Inputs up to which [`sent_to_others`] compares addresses one by one; above, it hashes them.
const LINEAR_SPENDERS: usize = 16;

/// The value (sat) a transaction sends to others (DESIGN §4): the sum of its `outputs` whose
/// `pubkey_hash` is none of `spent_from`, the `pubkey_hash`es of the coins its inputs spend
/// (repeats allowed). Change and self-sends are not counted. Saturates at `u64::MAX` (callers
/// check the total output value first, so it never does). Linear in inputs + outputs.
pub fn sent_to_others(outputs: &[TxOut], spent_from: &[Hash]) -> u64 {
    let others = |own: &dyn Fn(&Hash) -> bool| {
        outputs
            .iter()
            .filter(|o| !own(&o.pubkey_hash))
            .fold(0u64, |sum, o| sum.saturating_add(o.value))
    };
    if spent_from.len() <= LINEAR_SPENDERS {
        others(&|h| spent_from.contains(h))
    } else {
        let own: std::collections::HashSet<&Hash> = spent_from.iter().collect();
        others(&|h| own.contains(h))
    }
}

macro_rules! reject_codes {
    ($($variant:ident => $code:literal, $doc:literal;)*) => {
        /// Why a transaction or block is invalid. The string codes are stable: peers, RPC
        /// clients and tests match on them.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum RejectCode { $(#[doc = $doc] $variant,)* }

        impl RejectCode {
            /// Every code, in declaration order.
            pub const ALL: &'static [RejectCode] = &[$(RejectCode::$variant,)*];

            /// The stable string code.
            pub const fn as_str(self) -> &'static str {
                match self { $(RejectCode::$variant => $code,)* }
            }
        }
    };
}

reject_codes! {
    BadEncoding => "bad-encoding", "Not a canonical encoding (docs/encoding.md).";
    BadVersion => "bad-version", "A transaction version other than 1.";
    TxTooLarge => "tx-too-large", "A transaction over `max_tx_size` bytes.";
    BlockTooLarge => "block-too-large", "A block over `max_block_size` bytes.";
    NoInputs => "no-inputs", "A non-coinbase transaction without inputs.";
    NoOutputs => "no-outputs", "A non-coinbase transaction without outputs.";
    DustOutput => "dust-output", "An output below the dust limit.";
    DuplicateInput => "duplicate-input", "One outpoint spent twice by one transaction.";
    MissingInput => "missing-input", "An input that is not an unspent coin.";
    BadWitnessCount => "bad-witness-count", "Witnesses != inputs + the kind's extra witnesses.";
    WrongKey => "wrong-key", "A witness key that does not hash to the spent coin's pubkey_hash.";
    BadSignature => "bad-signature", "A witness signature that does not verify.";
    ValueOverflow => "value-overflow", "Input or output values that overflow u64.";
    InsufficientFee => "insufficient-fee", "sum(in) − sum(out) below the minimum fee.";
    LockTime => "lock-time", "A lock_time above the height of the block that would hold it.";
    CoinbaseNotFirst => "coinbase-not-first", "A block not starting with a coinbase, or a coinbase outside a block.";
    MultipleCoinbase => "multiple-coinbase", "A coinbase after the first transaction.";
    BadCoinbase => "bad-coinbase", "A coinbase with inputs or witnesses.";
    BadCoinbaseHeight => "bad-coinbase-height", "A coinbase payload height other than the header's.";
    BadTxOrder => "bad-tx-order", "Transactions after the coinbase not in strictly increasing txid order.";
    BadMerkleRoot => "bad-merkle-root", "A header merkle root other than the root of the txids.";
    BadUtxoHash => "bad-utxo-hash", "A header UTXO set hash other than the set's after the block.";
    DoubleSpendInBlock => "double-spend-in-block", "One outpoint spent twice in one block.";
    OutputExists => "output-exists", "A block output whose outpoint is already unspent.";
}

/// A rejection: the code, a message for humans and, when one transaction is at fault, its
/// index (in the block, or in the checked batch).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValidationError {
    pub code: RejectCode,
    pub message: String,
    pub tx_index: Option<usize>,
}

impl ValidationError {
    pub fn new(code: RejectCode, message: impl Into<String>, tx_index: Option<usize>) -> Self {
        ValidationError {
            code,
            message: message.into(),
            tx_index,
        }
    }
}

impl std::fmt::Display for ValidationError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.tx_index {
            Some(i) => write!(
                f,
                "{}: transaction {i}: {}",
                self.code.as_str(),
                self.message
            ),
            None => write!(f, "{}: {}", self.code.as_str(), self.message),
        }
    }
}

impl std::error::Error for ValidationError {}

/// A rejection of one transaction, before its index is known.
pub type Reject = (RejectCode, String);

/// The rejection of bytes that do not decode (an unknown kind tag included: docs/encoding.md
/// makes it a decoding error).
pub fn codec_reject(e: &CodecError) -> Reject {
    (RejectCode::BadEncoding, e.to_string())
}

/// The public key a register transaction names as the masternode key (payload bytes 36..68).
fn registered_key(tx: &Transaction) -> Option<&[u8]> {
    (tx.kind == TxKind::MasternodeRegister).then(|| &tx.payload[OUTPOINT_LEN..OUTPOINT_LEN + 32])
}

/// Checks what needs no UTXO set: version, size, lock time, inputs and outputs, witness count.
/// `height` is the height of the block that would hold the transaction; `size` its encoded
/// length. Returns the total output value, sat. Coinbases are checked by [`check_coinbase`].
pub fn check_stateless(
    tx: &Transaction,
    size: usize,
    rules: &LedgerRules,
    height: u64,
) -> Result<u64, Reject> {
    check_common(tx, size, rules, height)?;
    if tx.inputs.is_empty() {
        return Err((
            RejectCode::NoInputs,
            "a transaction must spend at least one input".into(),
        ));
    }
    if tx.outputs.is_empty() {
        return Err((
            RejectCode::NoOutputs,
            "a transaction must have at least one output".into(),
        ));
    }
    for (i, out) in tx.outputs.iter().enumerate() {
        if out.value < rules.dust_limit {
            return Err((
                RejectCode::DustOutput,
                format!(
                    "output {i} pays {} sat, below the dust limit of {} sat",
                    out.value, rules.dust_limit
                ),
            ));
        }
    }
    let total_out = total_output(tx)?;
    check_duplicate_inputs(tx)?;
    let want = tx.inputs.len() + tx.kind.extra_witnesses();
    if tx.witnesses.len() != want {
        return Err((
            RejectCode::BadWitnessCount,
            format!(
                "{} witnesses for {} inputs and {} extra witnesses of kind {:?}",
                tx.witnesses.len(),
                tx.inputs.len(),
                tx.kind.extra_witnesses(),
                tx.kind
            ),
        ));
    }
    if let Some(key) = registered_key(tx) {
        if tx.witnesses[tx.inputs.len()].public_key[..] != *key {
            return Err((
                RejectCode::WrongKey,
                format!(
                    "witness {} must be the registered masternode key",
                    tx.inputs.len()
                ),
            ));
        }
    }
    Ok(total_out)
}

/// Checks a block's coinbase (position 0): version, size, lock time, no inputs, no witnesses,
/// payload height equal to the block height. Reward amounts are checked by the caller.
pub fn check_coinbase(
    tx: &Transaction,
    size: usize,
    rules: &LedgerRules,
    height: u64,
) -> Result<u64, Reject> {
    check_common(tx, size, rules, height)?;
    if !tx.inputs.is_empty() || !tx.witnesses.is_empty() {
        return Err((
            RejectCode::BadCoinbase,
            format!(
                "a coinbase has no inputs and no witnesses, got {} and {}",
                tx.inputs.len(),
                tx.witnesses.len()
            ),
        ));
    }
    let payload_height = u64::from_le_bytes(tx.payload[..8].try_into().unwrap_or([0xff; 8]));
    if payload_height != height {
        return Err((
            RejectCode::BadCoinbaseHeight,
            format!("coinbase height {payload_height} differs from the block height {height}"),
        ));
    }
    total_output(tx)
}

fn check_common(
    tx: &Transaction,
    size: usize,
    rules: &LedgerRules,
    height: u64,
) -> Result<(), Reject> {
    if size > rules.max_tx_size {
        return Err((
            RejectCode::TxTooLarge,
            format!(
                "transaction is {size} bytes, over the limit of {} bytes",
                rules.max_tx_size
            ),
        ));
    }
    if tx.version != TX_VERSION {
        return Err((
            RejectCode::BadVersion,
            format!("transaction version {} is not {TX_VERSION}", tx.version),
        ));
    }
    if tx.lock_time as u64 > height {
        return Err((
            RejectCode::LockTime,
            format!(
                "lock_time {} is above the block height {height}",
                tx.lock_time
            ),
        ));
    }
    Ok(())
}

fn total_output(tx: &Transaction) -> Result<u64, Reject> {
    tx.outputs
        .iter()
        .try_fold(0u64, |sum, out| sum.checked_add(out.value))
        .ok_or_else(|| {
            (
                RejectCode::ValueOverflow,
                "total output value overflows u64".into(),
            )
        })
}

fn check_duplicate_inputs(tx: &Transaction) -> Result<(), Reject> {
    let dup = |i: usize| {
        Err((
            RejectCode::DuplicateInput,
            format!(
                "input {i} spends {} again",
                display_outpoint(&outpoint_key(&tx.inputs[i]))
            ),
        ))
    };
    if tx.inputs.len() <= 16 {
        for i in 1..tx.inputs.len() {
            if tx.inputs[..i].contains(&tx.inputs[i]) {
                return dup(i);
            }
        }
        return Ok(());
    }
    let mut seen = std::collections::HashSet::with_capacity(tx.inputs.len());
    for (i, input) in tx.inputs.iter().enumerate() {
        if !seen.insert(input) {
            return dup(i);
        }
    }
    Ok(())
}

/// Per-witness data computed once: the address (hash) of each witness key and the message it
/// signs.
pub struct WitnessDigests {
    pub key_hashes: Vec<Hash>,
    pub sighashes: Vec<Hash>,
}

/// Key hashes and sighashes of every witness of `tx`.
pub fn witness_digests(tx: &Transaction, txid: &Hash, rules: &LedgerRules) -> WitnessDigests {
    let key_hashes = tx
        .witnesses
        .iter()
        .map(|w| hash_in(Domain::PublicKey, &w.public_key))
        .collect();
    let sighashes = (0..tx.witnesses.len())
        .map(|i| codec::sighash(&rules.chain_id, rules.network, txid, i as u32))
        .collect();
    WitnessDigests {
        key_hashes,
        sighashes,
    }
}

/// Value (sat) and pubkey_hash of an encoded coin.
pub fn coin_value(coin: &CoinBytes) -> u64 {
    u64::from_le_bytes(coin[..8].try_into().unwrap_or([0; 8]))
}

fn coin_pubkey_hash(coin: &CoinBytes) -> &[u8] {
    &coin[8..40]
}

/// Checks input `i` spending `coin` against its witness key, and returns the coin's value.
pub fn check_input_key(i: usize, coin: &CoinBytes, key_hash: &Hash) -> Result<u64, Reject> {
    if coin_pubkey_hash(coin) != key_hash {
        return Err((
            RejectCode::WrongKey,
            format!(
                "witness {i}'s public key does not hash to the pubkey_hash of the coin it spends"
            ),
        ));
    }
    Ok(coin_value(coin))
}

/// The fee (sat) of a transaction with inputs worth `total_in` and outputs `total_out`, of
/// which `sent_to_others` go to others ([`sent_to_others`]), if it is at least the minimum fee
/// ([`LedgerRules::min_fee`]).
pub fn check_fee(
    total_in: u128,
    total_out: u64,
    sent_to_others: u64,
    rules: &LedgerRules,
) -> Result<u64, Reject> {
    let total_in = u64::try_from(total_in).map_err(|_| {
        (
            RejectCode::ValueOverflow,
            "total input value overflows u64".to_string(),
        )
    })?;
    let Some(fee) = total_in.checked_sub(total_out) else {
        return Err((
            RejectCode::InsufficientFee,
            format!("outputs ({total_out} sat) exceed inputs ({total_in} sat)"),
        ));
    };
    let min = rules.min_fee(sent_to_others);
    if (fee as u128) < min {
        return Err((
            RejectCode::InsufficientFee,
            format!(
                "fee {fee} sat is below the minimum {min} sat for {sent_to_others} sat sent to others"
            ),
        ));
    }
    Ok(fee)
}

/// Verdict on one transaction of a mempool batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TxVerdict {
    /// None when the bytes did not decode.
    pub txid: Option<Hash>,
    /// The kind tag, when the bytes decoded.
    pub kind: Option<TxKind>,
    /// sat; 0 unless the stateful checks passed.
    pub fee: u64,
    /// Encoded length, bytes.
    pub size: usize,
    /// The outpoints it spends, when the bytes decoded (for the mempool's locks).
    pub inputs: Vec<OutPointKey>,
    /// None when valid.
    pub reject: Option<Reject>,
}

struct Checked {
    txid: Hash,
    kind: TxKind,
    fee: u64,
    tx: Transaction,
    sighashes: Vec<Hash>,
}

fn check_one(
    set: &UtxoSet,
    bytes: &[u8],
    rules: &LedgerRules,
    height: u64,
) -> Result<Checked, TxVerdict> {
    let size = bytes.len();
    let mut verdict = TxVerdict {
        txid: None,
        kind: None,
        fee: 0,
        size,
        inputs: Vec::new(),
        reject: None,
    };
    if size > rules.max_tx_size {
        verdict.reject = Some((
            RejectCode::TxTooLarge,
            format!(
                "transaction is {size} bytes, over the limit of {} bytes",
                rules.max_tx_size
            ),
        ));
        return Err(verdict);
    }
    let (tx, txid) = match codec::decode_transaction_with_txid(bytes) {
        Ok(v) => v,
        Err(e) => {
            verdict.reject = Some(codec_reject(&e));
            return Err(verdict);
        }
    };
    verdict.txid = Some(txid);
    verdict.kind = Some(tx.kind);
    verdict.inputs = tx.inputs.iter().map(outpoint_key).collect();
    let mut fail = |r: Reject| {
        verdict.reject = Some(r);
        verdict.clone()
    };
    if tx.kind == TxKind::Coinbase {
        return Err(fail((
            RejectCode::CoinbaseNotFirst,
            "a coinbase is only valid as the first transaction of a block".into(),
        )));
    }
    let total_out = check_stateless(&tx, size, rules, height).map_err(&mut fail)?;
    let digests = witness_digests(&tx, &txid, rules);
    let mut total_in = 0u128;
    for (i, input) in tx.inputs.iter().enumerate() {
        let key = outpoint_key(input);
        let coin = set.get(&key).ok_or_else(|| {
            fail((
                RejectCode::MissingInput,
                format!(
                    "input {i} spends {}, which is not an unspent coin",
                    display_outpoint(&key)
                ),
            ))
        })?;
        total_in += check_input_key(i, coin, &digests.key_hashes[i]).map_err(&mut fail)? as u128;
    }
    // Every input key hashes to its coin's pubkey_hash now: those are the addresses spent from.
    let sent = sent_to_others(&tx.outputs, &digests.key_hashes[..tx.inputs.len()]);
    let fee = check_fee(total_in, total_out, sent, rules).map_err(&mut fail)?;
    Ok(Checked {
        txid,
        kind: tx.kind,
        fee,
        tx,
        sighashes: digests.sighashes,
    })
}

/// Mempool admission: one verdict per encoded transaction, each checked alone against `set`
/// (decoding, the stateless rules at block `height`, inputs, keys, fee) and then all witness
/// signatures of the passing ones in one parallel batch. Conflicts between transactions of the
/// batch are not checked (that is the mempool's job). Changes nothing.
pub fn check_transactions(
    set: &UtxoSet,
    txs: &[&[u8]],
    rules: &LedgerRules,
    height: u64,
) -> Vec<TxVerdict> {
    let one = |bytes: &&[u8]| check_one(set, bytes, rules, height);
    let results: Vec<Result<Checked, TxVerdict>> = if txs.len() >= PARALLEL_TXS {
        txs.par_iter().map(one).collect()
    } else {
        txs.iter().map(one).collect()
    };
    let mut items = Vec::new();
    for checked in results.iter().flatten() {
        for (w, msg) in checked.tx.witnesses.iter().zip(&checked.sighashes) {
            items.push(ed25519::Item {
                public_key: &w.public_key,
                message: msg,
                signature: &w.signature,
            });
        }
    }
    let mut verdicts = set.sig_cache.verify_batch(&items, true).into_iter();
    results
        .iter()
        .zip(txs)
        .map(|(result, bytes)| match result {
            Err(verdict) => verdict.clone(),
            Ok(checked) => {
                // One verdict per witness, in the order the items were queued.
                let bad: Vec<usize> = (0..checked.tx.witnesses.len())
                    .filter(|_| !verdicts.next().unwrap_or(false))
                    .collect();
                TxVerdict {
                    txid: Some(checked.txid),
                    kind: Some(checked.kind),
                    fee: if bad.is_empty() { checked.fee } else { 0 },
                    size: bytes.len(),
                    inputs: checked.tx.inputs.iter().map(outpoint_key).collect(),
                    reject: (!bad.is_empty()).then(|| bad_signature(&bad)),
                }
            }
        })
        .collect()
}

/// The rejection for failing witness signatures (indices in the transaction).
pub fn bad_signature(witnesses: &[usize]) -> Reject {
    (
        RejectCode::BadSignature,
        format!("signature of witness {witnesses:?} does not verify"),
    )
}

#[cfg(test)]
#[path = "validate_tests.rs"]
mod tests;
