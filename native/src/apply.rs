//! Block validation and application to the UTXO set (DESIGN §4, §7, §9).
//!
//! A block is validated in full against the set before anything changes, so a rejected block
//! leaves the set byte-identical (contents, LtHash state, dirty tracking). The checks, in order:
//! size; canonical decoding; a coinbase at position 0 and nowhere else, with the header's
//! height; the header's merkle root over the txids; the transactions after the coinbase in
//! strictly increasing txid order (DESIGN §7: "finalized transactions ordered by txid"); the
//! rules of `validate` on every transaction; no block output already unspent; then the inputs.
//!
//! Because transactions are ordered by txid, a child may come before its parent: all outputs
//! of the block are created first, then all inputs are spent, from the set or from the block's
//! own outputs. An outpoint spent twice in one block is `double-spend-in-block`. Cycles cannot
//! happen (a txid commits to its inputs). Finally all witness signatures are verified in one
//! parallel batch while the LtHash delta is computed, and (if asked) the header's UTXO set hash
//! is checked against the set after the block.
//!
//! [`prepare_block`] does all of this without changing the set and keeps the result;
//! [`commit_prepared`] then applies it (coins and hash only) if the set is still as it was, so a
//! node that validates a proposal and later commits it validates once. [`apply_block`] is both.
//!
//! Not checked here: reward amounts (the caller compares `coinbase_outputs` and `fees` with the
//! reward rule and rolls back on a mismatch), header linkage, timestamps, the proposer and its
//! VRF, and masternode registry semantics (see `validate`).

use hashbrown::{HashMap, HashSet};
use rayon::prelude::*;

use crate::codec;
use crate::ed25519;
use crate::hash::Hash;
use crate::lthash::{LtHash, ELEMENT_LEN};
use crate::merkle;
use crate::types::{BlockHeader, OutPoint, Transaction, TxKind, COIN_LEN};
use crate::utxo::{
    display_outpoint, element, outpoint_key, CoinBytes, OutPointKey, Undo, UtxoError, UtxoSet,
};
use crate::validate::{
    bad_signature, check_coinbase, check_fee, check_input_key, check_stateless, codec_reject,
    sent_to_others, witness_digests, LedgerRules, Reject, RejectCode, ValidationError,
    WitnessDigests, PARALLEL_TXS,
};

/// What applying a block did, for the chain state and the store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppliedBlock {
    pub height: u64,
    pub block_hash: Hash,
    /// txids in block order, coinbase first.
    pub txids: Vec<Hash>,
    /// Sum of the fees of the non-coinbase transactions, sat.
    pub fees: u64,
    /// The undo record (docs/encoding.md, "Undo record"), for [`UtxoSet::rollback`].
    pub undo: Vec<u8>,
    /// The coinbase's outputs (value sat, pubkey_hash), for the reward check.
    pub coinbase_outputs: Vec<(u64, Hash)>,
    /// Masternode transactions (index in the block, kind, payload) for the registry, which
    /// checks what `validate` leaves to it.
    pub masternode_txs: Vec<(usize, TxKind, Vec<u8>)>,
    /// The full encodings (witnesses included) of the transactions of `masternode_txs`, in the
    /// same order: the registry checks which keys signed their extra witnesses.
    pub masternode_tx_encodings: Vec<Vec<u8>>,
}

fn at(tx_index: usize) -> impl Fn(Reject) -> ValidationError {
    move |(code, message)| ValidationError::new(code, message, Some(tx_index))
}

/// A block validated against a UTXO set and not applied yet: everything [`apply_block`]
/// computes, kept so that committing it later only changes the set (no second validation).
/// Valid for the set's contents it was prepared on: [`commit_prepared`] refuses it once the set
/// has changed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PreparedBlock {
    /// [`UtxoSet::generation`] of the set it was prepared on.
    pub generation: u64,
    /// What applying it does (its `undo` is empty until it is committed).
    pub applied: AppliedBlock,
    /// Outputs of the block not spent inside it: the coins it adds.
    kept: Vec<(OutPointKey, CoinBytes)>,
    /// Coins of the set it spends, in spend order.
    spent: Vec<(OutPointKey, CoinBytes)>,
    /// The set's LtHash state after the block.
    new_hash: LtHash,
    /// The header's merkle root: the transactions it was prepared with.
    merkle_root: Hash,
    /// The encoded size of the block, bytes, and of its coinbase (for [`Self::with_coinbase`]).
    block_len: usize,
    coinbase_len: usize,
    /// `spent` and `kept` by outpoint (`None`: spent), built on the first [`Self::coin_after`].
    changes: std::sync::OnceLock<HashMap<OutPointKey, Option<CoinBytes>>>,
}

impl PreparedBlock {
    /// The merkle root over the block's txids.
    pub fn merkle_root(&self) -> Hash {
        self.merkle_root
    }

    /// The UTXO set hash after the block.
    pub fn utxo_set_hash(&self) -> Hash {
        self.new_hash.digest()
    }

    /// The same block under `header` instead of the header it was prepared with, without
    /// validating it again: what [`prepare_block`] returns for the block with that header,
    /// since validation reads of the header only its height, its merkle root (which binds the
    /// transactions) and its UTXO set hash. A block builder prepares its transactions under a
    /// draft header without a set hash (`check_utxo_hash` false), then puts the hash it
    /// learnt in the final header. Refuses a header of another height or merkle root, or
    /// whose UTXO set hash is not the set's after the block.
    pub fn with_header(&self, header: &BlockHeader) -> Result<PreparedBlock, String> {
        if header.height != self.applied.height {
            return Err(format!(
                "header height {} is not the prepared block's {}",
                header.height, self.applied.height
            ));
        }
        if header.merkle_root != self.merkle_root {
            return Err("header merkle root is not the prepared block's".to_string());
        }
        if header.utxo_set_hash != self.utxo_set_hash() {
            return Err("header UTXO set hash differs from the set after the block".to_string());
        }
        let mut prepared = self.clone();
        prepared.applied.block_hash = header.hash();
        Ok(prepared)
    }

    /// The same block with the encoded transaction `coinbase` in place of its coinbase, without
    /// validating the other transactions again: what [`prepare_block`] gives for that block
    /// (under a header with the new merkle root, which [`Self::with_header`] then takes), since
    /// the coinbase spends nothing and its outputs are new coins. A block builder prepares its
    /// transactions under a draft coinbase, learns their fees from the result, and puts the
    /// coinbase that pays them in: one validation of the transactions, not two. The block hash
    /// stays the draft's until [`Self::with_header`].
    ///
    /// Checks the coinbase as [`prepare_block`] does (decoding, [`check_coinbase`] at the
    /// block's height), the block size with it, and that none of its outputs is already a coin:
    /// [`SwapError::Invalid`]. [`SwapError::Refused`] for a `set` other than the one it was
    /// prepared on, a block one of whose transactions spends an output of the draft coinbase,
    /// and a coinbase with the txid of another transaction of the block.
    pub fn with_coinbase(
        &self,
        set: &UtxoSet,
        coinbase: &[u8],
        rules: &LedgerRules,
    ) -> Result<PreparedBlock, SwapError> {
        if self.generation != set.generation() {
            let stale = StalePrepared {
                prepared_at: self.generation,
                now: set.generation(),
            };
            return Err(SwapError::Refused(stale.to_string()));
        }
        let height = self.applied.height;
        let block_len = self.block_len - self.coinbase_len + coinbase.len();
        if block_len > rules.max_block_size {
            return Err(SwapError::Invalid(ValidationError::new(
                RejectCode::BlockTooLarge,
                format!(
                    "block is {block_len} bytes, over the limit of {} bytes",
                    rules.max_block_size
                ),
                None,
            )));
        }
        let invalid = |r: Reject| SwapError::Invalid(at(0)(r));
        let (tx, txid) =
            codec::decode_transaction_with_txid(coinbase).map_err(|e| invalid(codec_reject(&e)))?;
        if tx.kind != TxKind::Coinbase {
            return Err(invalid((
                RejectCode::CoinbaseNotFirst,
                "the first transaction of a block must be its coinbase".into(),
            )));
        }
        check_coinbase(&tx, coinbase.len(), rules, height).map_err(invalid)?;
        if self.applied.txids[1..].contains(&txid) {
            return Err(SwapError::Refused(
                "the coinbase has the txid of another transaction of the block".into(),
            ));
        }
        // The draft coinbase's outputs lead `kept` (outputs are created in block order and kept
        // in that order), unless a transaction of the block spends one.
        let old_txid = self.applied.txids[0];
        let n_old = self.applied.coinbase_outputs.len();
        let draft_kept = self.kept.len() >= n_old
            && self.kept[..n_old]
                .iter()
                .enumerate()
                .all(|(vout, (key, _))| {
                    *key == outpoint_key(&OutPoint {
                        txid: old_txid,
                        vout: vout as u32,
                    })
                });
        if !draft_kept {
            return Err(SwapError::Refused(
                "a transaction of the block spends an output of its coinbase".into(),
            ));
        }
        let (created, _) = created_outputs(std::slice::from_ref(&tx), &[txid], height);
        if let Some((vout, (key, _))) = created
            .iter()
            .enumerate()
            .find(|(_, (k, _))| set.contains(k))
        {
            return Err(invalid((
                RejectCode::OutputExists,
                format!(
                    "output {vout} ({}) is already an unspent coin",
                    display_outpoint(key)
                ),
            )));
        }
        let add: Vec<[u8; ELEMENT_LEN]> = created.iter().map(|(k, c)| element(k, c)).collect();
        let sub: Vec<[u8; ELEMENT_LEN]> = self.kept[..n_old]
            .iter()
            .map(|(k, c)| element(k, c))
            .collect();
        let mut new_hash = self.new_hash.clone();
        new_hash.add_assign(&LtHash::delta(&add, &sub));
        let mut applied = self.applied.clone();
        applied.txids[0] = txid;
        applied.coinbase_outputs = tx
            .outputs
            .iter()
            .map(|o| (o.value, o.pubkey_hash))
            .collect();
        let merkle_root = merkle::root(&applied.txids, true);
        let mut kept = created;
        kept.extend_from_slice(&self.kept[n_old..]);
        Ok(PreparedBlock {
            generation: self.generation,
            applied,
            kept,
            spent: self.spent.clone(),
            new_hash,
            merkle_root,
            block_len,
            coinbase_len: coinbase.len(),
            changes: std::sync::OnceLock::new(),
        })
    }

    /// The coin at `outpoint` in `set` after this block (`set` must be the set it was prepared
    /// on): spent by the block → `None`, created and kept → that coin, else the set's. The
    /// first call indexes the block's changes (one hash-map build); later calls are lookups.
    pub fn coin_after<'a>(
        &'a self,
        set: &'a UtxoSet,
        outpoint: &OutPointKey,
    ) -> Option<&'a CoinBytes> {
        let changes = self.changes.get_or_init(|| {
            self.spent
                .iter()
                .map(|(k, _)| (*k, None))
                .chain(self.kept.iter().map(|(k, c)| (*k, Some(*c))))
                .collect()
        });
        match changes.get(outpoint) {
            Some(change) => change.as_ref(),
            None => set.get(outpoint),
        }
    }
}

/// Why [`PreparedBlock::with_coinbase`] gave no block.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SwapError {
    /// The coinbase is invalid (at index 0) or makes the block too large.
    Invalid(ValidationError),
    /// The prepared block cannot take a new coinbase (see the method).
    Refused(String),
}

/// Why [`commit_prepared`] refused a prepared block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StalePrepared {
    pub prepared_at: u64,
    pub now: u64,
}

impl std::fmt::Display for StalePrepared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the block was prepared on UTXO set generation {}, the set is at {}: prepare it again",
            self.prepared_at, self.now
        )
    }
}

impl std::error::Error for StalePrepared {}

/// Validates the encoded block `bytes` against `set` and applies it. On any error the set is
/// unchanged. `check_utxo_hash`: compare the header's `utxo_set_hash` with the set after the
/// block (off only for building a block, where the hash is not known yet).
pub fn apply_block(
    set: &mut UtxoSet,
    bytes: &[u8],
    rules: &LedgerRules,
    check_utxo_hash: bool,
) -> Result<AppliedBlock, ValidationError> {
    let prepared = prepare_block(set, bytes, rules, check_utxo_hash)?;
    Ok(commit_prepared(set, &prepared).expect("prepared on this very generation"))
}

/// Applies a block [`prepare_block`] validated against `set`, if the set has not changed since
/// (else [`StalePrepared`] and nothing changes): the coins and the hash only, no validation.
/// Committing changes the set, so the same prepared block cannot be committed twice.
pub fn commit_prepared(
    set: &mut UtxoSet,
    prepared: &PreparedBlock,
) -> Result<AppliedBlock, StalePrepared> {
    if prepared.generation != set.generation() {
        return Err(StalePrepared {
            prepared_at: prepared.generation,
            now: set.generation(),
        });
    }
    let mut applied = prepared.applied.clone();
    let undo = set.commit_block(
        applied.height,
        applied.block_hash,
        &prepared.kept,
        prepared.spent.clone(),
        prepared.new_hash.clone(),
    );
    applied.undo = undo.encode();
    Ok(applied)
}

/// Why [`replay_block`] refused a block.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReplayError {
    /// The block does not decode.
    Block(codec::CodecError),
    /// The undo record does not decode, is not the block's, or names an outpoint the block
    /// does not create.
    Undo(String),
    /// The set refused the changes ([`UtxoSet::replay`]).
    Set(UtxoError),
}

impl std::fmt::Display for ReplayError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReplayError::Block(e) => write!(f, "block does not decode: {e}"),
            ReplayError::Undo(why) => write!(f, "undo record: {why}"),
            ReplayError::Set(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for ReplayError {}

/// Replays the committed block `bytes` with its undo record onto `set` without validating it
/// ([`UtxoSet::replay`]): the coins the undo record says it created, built from the block's
/// outputs, and the outpoints it spent. For the start of a node whose stored coins lag its
/// stored blocks (DESIGN §9, "Coins flush").
pub fn replay_block(set: &mut UtxoSet, bytes: &[u8], undo: &[u8]) -> Result<(), ReplayError> {
    let (block, txids) = codec::decode_block_with_txids(bytes).map_err(ReplayError::Block)?;
    let undo = Undo::decode(undo).map_err(|e| ReplayError::Undo(e.to_string()))?;
    let height = block.header.height;
    if undo.height != height || undo.block_hash != block.header.hash() {
        return Err(ReplayError::Undo(format!(
            "it is the record of block {} at height {}, not of this block",
            display_hash(&undo.block_hash),
            undo.height
        )));
    }
    let (outputs, _) = created_outputs(&block.transactions, &txids, height);
    let outputs: HashMap<OutPointKey, CoinBytes> = outputs.into_iter().collect();
    let created = undo
        .created
        .iter()
        .map(|key| {
            outputs.get(key).map(|coin| (*key, *coin)).ok_or_else(|| {
                ReplayError::Undo(format!(
                    "created outpoint {} is not an output of the block",
                    display_outpoint(key)
                ))
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let spent: Vec<OutPointKey> = undo.spent.iter().map(|(key, _)| *key).collect();
    set.replay(&created, &spent).map_err(ReplayError::Set)
}

fn display_hash(hash: &Hash) -> String {
    hash.iter().map(|b| format!("{b:02x}")).collect()
}

/// Validates the encoded block `bytes` against `set` (see the module docs) without changing it:
/// everything [`apply_block`] checks, with the changes kept for [`commit_prepared`].
pub fn prepare_block(
    set: &UtxoSet,
    bytes: &[u8],
    rules: &LedgerRules,
    check_utxo_hash: bool,
) -> Result<PreparedBlock, ValidationError> {
    if bytes.len() > rules.max_block_size {
        return Err(ValidationError::new(
            RejectCode::BlockTooLarge,
            format!(
                "block is {} bytes, over the limit of {} bytes",
                bytes.len(),
                rules.max_block_size
            ),
            None,
        ));
    }
    let (block, txids) = codec::decode_block_with_txids(bytes).map_err(|e| {
        let (code, message) = codec_reject(&e);
        ValidationError::new(code, message, None)
    })?;
    let header = &block.header;
    let txs = &block.transactions;
    let height = header.height;

    // Coinbase placement, merkle root, order.
    match txs.first() {
        None => {
            return Err(ValidationError::new(
                RejectCode::CoinbaseNotFirst,
                "block has no transactions; the first must be its coinbase",
                None,
            ))
        }
        Some(tx) if tx.kind != TxKind::Coinbase => {
            return Err(ValidationError::new(
                RejectCode::CoinbaseNotFirst,
                "the first transaction of a block must be its coinbase",
                Some(0),
            ))
        }
        Some(_) => {}
    }
    if let Some(i) = txs
        .iter()
        .skip(1)
        .position(|tx| tx.kind == TxKind::Coinbase)
    {
        return Err(ValidationError::new(
            RejectCode::MultipleCoinbase,
            "a block has exactly one coinbase, at position 0",
            Some(i + 1),
        ));
    }
    let root = merkle::root(&txids, true);
    if root != header.merkle_root {
        return Err(ValidationError::new(
            RejectCode::BadMerkleRoot,
            "header merkle root is not the root of the block's txids",
            None,
        ));
    }
    if let Some(i) = (2..txids.len()).find(|&i| txids[i - 1] >= txids[i]) {
        return Err(ValidationError::new(
            RejectCode::BadTxOrder,
            "transactions after the coinbase must be in strictly increasing txid order",
            Some(i),
        ));
    }

    // Stateless rules and witness digests, on all cores for large blocks.
    let stateless = |i: usize| -> Result<(u64, WitnessDigests), ValidationError> {
        let tx = &txs[i];
        let size = tx.encoded_len();
        let total_out = if i == 0 {
            check_coinbase(tx, size, rules, height)
        } else {
            check_stateless(tx, size, rules, height)
        }
        .map_err(at(i))?;
        Ok((total_out, witness_digests(tx, &txids[i], rules)))
    };
    // Collected in full, then the first error in block order, so the verdict is deterministic.
    let checked: Vec<Result<(u64, WitnessDigests), ValidationError>> = if txs.len() >= PARALLEL_TXS
    {
        (0..txs.len()).into_par_iter().map(stateless).collect()
    } else {
        (0..txs.len()).map(stateless).collect()
    };
    let checked: Vec<(u64, WitnessDigests)> = checked.into_iter().collect::<Result<_, _>>()?;

    // The signatures (one batch) side by side with the coins: outputs, input lookups and the
    // LtHash delta. A coin error still comes before a signature error, as if run in turn.
    let n_witnesses: usize = txs.iter().map(|tx| tx.witnesses.len()).sum();
    let mut items = Vec::with_capacity(n_witnesses);
    let mut owners = Vec::with_capacity(n_witnesses);
    for (i, (tx, (_, digests))) in txs.iter().zip(&checked).enumerate().skip(1) {
        for (j, (w, msg)) in tx.witnesses.iter().zip(&digests.sighashes).enumerate() {
            items.push(ed25519::Item {
                public_key: &w.public_key,
                message: msg,
                signature: &w.signature,
            });
            owners.push((i, j));
        }
    }
    let (sig_ok, coins) = rayon::join(
        || set.sig_cache.verify_batch(&items, true),
        || coin_changes(set, txs, &txids, height, &checked, rules),
    );
    let CoinChanges {
        kept,
        spent,
        fees,
        delta,
    } = coins?;
    if let Some(first) = sig_ok.iter().position(|ok| !ok) {
        let (i, _) = owners[first];
        let bad: Vec<usize> = owners
            .iter()
            .zip(&sig_ok)
            .filter(|((t, _), ok)| *t == i && !**ok)
            .map(|((_, j), _)| *j)
            .collect();
        return Err(at(i)(bad_signature(&bad)));
    }
    let mut new_hash = set.state().clone();
    new_hash.add_assign(&delta);
    if check_utxo_hash && new_hash.digest() != header.utxo_set_hash {
        return Err(ValidationError::new(
            RejectCode::BadUtxoHash,
            "header UTXO set hash differs from the set after the block",
            None,
        ));
    }

    let block_hash = header.hash();
    let applied = AppliedBlock {
        height,
        block_hash,
        coinbase_outputs: txs[0]
            .outputs
            .iter()
            .map(|o| (o.value, o.pubkey_hash))
            .collect(),
        masternode_txs: txs
            .iter()
            .enumerate()
            .filter(|(_, tx)| is_masternode(tx.kind))
            .map(|(i, tx)| (i, tx.kind, tx.payload.clone()))
            .collect(),
        masternode_tx_encodings: txs
            .iter()
            .filter(|tx| is_masternode(tx.kind))
            .map(Transaction::encode)
            .collect(),
        txids,
        fees,
        undo: Vec::new(),
    };
    Ok(PreparedBlock {
        generation: set.generation(),
        applied,
        kept,
        spent,
        new_hash,
        merkle_root: header.merkle_root,
        block_len: bytes.len(),
        coinbase_len: txs[0].encoded_len(),
        changes: std::sync::OnceLock::new(),
    })
}

/// What a block does to the coins, found by [`coin_changes`].
struct CoinChanges {
    /// Outputs of the block not spent inside it.
    kept: Coins,
    /// Coins of the set it spends, in spend order.
    spent: Coins,
    /// Sum of its transactions' fees, in sat.
    fees: u64,
    /// `Σ kept − Σ spent` as LtHash elements.
    delta: LtHash,
}

/// The coins `txs` (a block at `height` whose stateless checks gave `checked`) create and
/// spend, refusing an output that is already a coin, a missing or doubly spent input and a
/// fee rule broken; then the LtHash delta of the change. Reads `set`, changes nothing.
fn coin_changes(
    set: &UtxoSet,
    txs: &[Transaction],
    txids: &[Hash],
    height: u64,
    checked: &[(u64, WitnessDigests)],
    rules: &LedgerRules,
) -> Result<CoinChanges, ValidationError> {
    // Create every output first (a child may precede its parent), then spend.
    let (created, created_tx) = created_outputs(txs, txids, height);
    let exists = if created.len() >= PARALLEL_TXS {
        created.par_iter().position_first(|(k, _)| set.contains(k))
    } else {
        created.iter().position(|(k, _)| set.contains(k))
    };
    if let Some(c) = exists {
        let (i, vout) = created_tx[c];
        return Err(at(i)((
            RejectCode::OutputExists,
            format!(
                "output {vout} ({}) is already an unspent coin",
                display_outpoint(&created[c].0)
            ),
        )));
    }
    let created_index: HashMap<OutPointKey, usize> = created
        .iter()
        .enumerate()
        .map(|(c, (k, _))| (*k, c))
        .collect();
    let (spent, created_spent, fees) =
        spend_inputs(set, txs, checked, &created, &created_index, rules)?;
    let kept: Coins = created
        .iter()
        .zip(&created_spent)
        .filter(|(_, &s)| !s)
        .map(|(c, _)| *c)
        .collect();
    let add: Vec<[u8; ELEMENT_LEN]> = kept.iter().map(|(k, c)| element(k, c)).collect();
    let sub: Vec<[u8; ELEMENT_LEN]> = spent.iter().map(|(k, c)| element(k, c)).collect();
    let delta = LtHash::delta(&add, &sub);
    Ok(CoinChanges {
        kept,
        spent,
        fees,
        delta,
    })
}

fn is_masternode(kind: TxKind) -> bool {
    matches!(
        kind,
        TxKind::MasternodeRegister | TxKind::MasternodeDeregister | TxKind::MasternodePayout
    )
}

/// Where an input's coin comes from: an output of this block (index into `created`) or the set.
#[derive(Clone, Copy)]
enum Source {
    Created(usize),
    Set(CoinBytes),
}

/// What looking up one transaction's inputs found: the sources of the inputs checked so far,
/// and the fee, or the first rejection with the input it is about (None: the fee).
struct Lookup {
    sources: Vec<Source>,
    result: Result<u64, (Option<usize>, Reject)>,
}

/// The 49-byte coin encoding (docs/encoding.md), without allocating.
fn coin_bytes(value: u64, pubkey_hash: &Hash, height: u64, is_coinbase: bool) -> CoinBytes {
    let mut c = [0u8; COIN_LEN];
    c[..8].copy_from_slice(&value.to_le_bytes());
    c[8..40].copy_from_slice(pubkey_hash);
    c[40..48].copy_from_slice(&height.to_le_bytes());
    c[48] = is_coinbase as u8;
    c
}

/// (outpoint, coin) pairs.
type Coins = Vec<(OutPointKey, CoinBytes)>;

/// Every output of the block as (outpoint, coin), in block order, with (tx index, vout) of each.
fn created_outputs(txs: &[Transaction], txids: &[Hash], height: u64) -> (Coins, Vec<(usize, u32)>) {
    let n: usize = txs.iter().map(|tx| tx.outputs.len()).sum();
    let mut created = Vec::with_capacity(n);
    let mut owners = Vec::with_capacity(n);
    for (i, (tx, txid)) in txs.iter().zip(txids).enumerate() {
        let coinbase = tx.kind == TxKind::Coinbase;
        for (vout, out) in tx.outputs.iter().enumerate() {
            let vout = vout as u32;
            let key = outpoint_key(&OutPoint { txid: *txid, vout });
            created.push((
                key,
                coin_bytes(out.value, &out.pubkey_hash, height, coinbase),
            ));
            owners.push((i, vout));
        }
    }
    (created, owners)
}

/// Looks up the inputs of one transaction (read-only), checks their keys and its fee (DESIGN
/// §4: the proportional part on the value sent to others only).
fn lookup_inputs(
    set: &UtxoSet,
    tx: &Transaction,
    total_out: u64,
    digests: &WitnessDigests,
    created: &[(OutPointKey, CoinBytes)],
    created_index: &HashMap<OutPointKey, usize>,
    rules: &LedgerRules,
) -> Lookup {
    let mut sources = Vec::with_capacity(tx.inputs.len());
    let mut total_in = 0u128;
    for (j, input) in tx.inputs.iter().enumerate() {
        let key = outpoint_key(input);
        let (source, coin) = if let Some(&c) = created_index.get(&key) {
            (Source::Created(c), created[c].1)
        } else if let Some(coin) = set.get(&key) {
            (Source::Set(*coin), *coin)
        } else {
            let why = format!(
                "input {j} spends {}, which is not an unspent coin",
                display_outpoint(&key)
            );
            return Lookup {
                sources,
                result: Err((Some(j), (RejectCode::MissingInput, why))),
            };
        };
        sources.push(source);
        match check_input_key(j, &coin, &digests.key_hashes[j]) {
            Ok(value) => total_in += value as u128,
            Err(r) => {
                return Lookup {
                    sources,
                    result: Err((Some(j), r)),
                }
            }
        }
    }
    // Every input key hashes to its coin's pubkey_hash now: those are the addresses spent from.
    let sent = sent_to_others(&tx.outputs, &digests.key_hashes[..tx.inputs.len()]);
    Lookup {
        sources,
        result: check_fee(total_in, total_out, sent, rules).map_err(|r| (None, r)),
    }
}

/// Spends every input of the block: lookups and key and fee checks on all cores, then, in
/// block order, the double-spend check. The first rejection in block order (input by input, a
/// double spend before that input's own errors, the fee after all inputs) is returned, exactly
/// as a one-input-at-a-time pass would find it. Returns the coins spent from the set (in spend
/// order), which block outputs were spent, and the total fee (sat).
fn spend_inputs(
    set: &UtxoSet,
    txs: &[Transaction],
    checked: &[(u64, WitnessDigests)],
    created: &[(OutPointKey, CoinBytes)],
    created_index: &HashMap<OutPointKey, usize>,
    rules: &LedgerRules,
) -> Result<(Coins, Vec<bool>, u64), ValidationError> {
    let one = |i: usize| {
        let (total_out, digests) = &checked[i];
        lookup_inputs(
            set,
            &txs[i],
            *total_out,
            digests,
            created,
            created_index,
            rules,
        )
    };
    let lookups: Vec<Lookup> = if txs.len() >= PARALLEL_TXS {
        (1..txs.len()).into_par_iter().map(one).collect()
    } else {
        (1..txs.len()).map(one).collect()
    };
    let n_inputs: usize = txs.iter().map(|tx| tx.inputs.len()).sum();
    let mut created_spent = vec![false; created.len()];
    let mut spent = Vec::with_capacity(n_inputs);
    let mut spent_seen: HashSet<OutPointKey> = HashSet::with_capacity(n_inputs);
    let mut fees = 0u128;
    for (i, lookup) in lookups.into_iter().enumerate().map(|(k, l)| (k + 1, l)) {
        for (j, source) in lookup.sources.iter().enumerate() {
            let key = outpoint_key(&txs[i].inputs[j]);
            let again = match *source {
                Source::Created(c) => std::mem::replace(&mut created_spent[c], true),
                Source::Set(coin) => {
                    let again = !spent_seen.insert(key);
                    if !again {
                        spent.push((key, coin));
                    }
                    again
                }
            };
            if again {
                return Err(at(i)((
                    RejectCode::DoubleSpendInBlock,
                    format!(
                        "input {j} spends {}, already spent in this block",
                        display_outpoint(&key)
                    ),
                )));
            }
        }
        match lookup.result {
            Ok(fee) => fees += fee as u128,
            Err((_, reject)) => return Err(at(i)(reject)),
        }
    }
    let fees = u64::try_from(fees).map_err(|_| {
        ValidationError::new(RejectCode::ValueOverflow, "total fees overflow u64", None)
    })?;
    Ok((spent, created_spent, fees))
}
