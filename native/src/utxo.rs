//! The in-memory UTXO set with its LtHash, undo records and dirty tracking (DESIGN §3, §9).
//!
//! The whole set lives in memory as a hash map from the 36-byte outpoint encoding to the 49-byte
//! coin encoding (docs/encoding.md), 85 bytes of payload per entry and no pointers, so 1M coins
//! take about 180 MB. The map uses hashbrown's randomly seeded foldhash: keys start with txids,
//! which a peer can grind, but cannot aim at a seed it does not know.
//!
//! Dirty tracking follows Bitcoin Core's CCoinsViewCache: the set mirrors a persisted store, and
//! every outpoint touched since the last [`UtxoSet::take_delta`] remembers what the store holds
//! for it (`None` = not in the store, the FRESH flag). The delta is then exactly the outpoints
//! whose current state differs from the store's: a coin created and spent between two flushes,
//! or spent and restored by a rollback, costs no write. The store keys a coin by its creation
//! height, then its outpoint ([`store_key`]), so the coins of new blocks go to the end of the
//! store instead of all over it.
//!
//! A delta can also be taken in two halves ([`UtxoSet::take_dirty`], then
//! [`UtxoSet::dirty_writes`] a slice at a time), so that the table of touched outpoints leaves
//! the set at once and its writes are worked out later, elsewhere, while the set moves on. That
//! gives exactly the writes of the moment of the take because every change records an outpoint's
//! value before its first change since the take: the value at the take is that record if there
//! is one, else the set's current value.
//!
//! This module never validates transactions (that is `validate`): it applies changes a
//! validator has checked, and checks only what keeps the map and the hash consistent.

use crate::sigcache::SigCache;
use std::collections::HashSet;

use hashbrown::HashMap;
use rayon::prelude::*;

use crate::codec::Reader;
use crate::hash::{Hash, HASH_LEN};
use crate::lthash::{LtHash, ELEMENT_LEN};
use crate::types::{Coin, OutPoint, COIN_LEN, OUTPOINT_LEN};

/// An outpoint in its 36-byte encoding (txid ‖ vout u32): the key of the set.
pub type OutPointKey = [u8; OUTPOINT_LEN];
/// A coin in its 49-byte encoding (value ‖ pubkey_hash ‖ height ‖ is_coinbase).
pub type CoinBytes = [u8; COIN_LEN];

/// Version byte of the undo record format (docs/encoding.md, "Undo record").
pub const UNDO_VERSION: u8 = 1;

/// Length of a coin's key in the store: [`store_key`].
pub const STORE_KEY_LEN: usize = 8 + OUTPOINT_LEN;

/// Changes (created plus spent coins) from which a block's commit updates the coins table and
/// the table of touched outpoints on two threads (a few milliseconds each at 12,000 transfers).
pub const PARALLEL_COMMIT: usize = 4096;

/// A coin's key in the store: [`store_key`].
pub type StoreKey = [u8; STORE_KEY_LEN];

/// The store key of the coin `coin` of `outpoint`: the coin's creation height (u64 big-endian)
/// ‖ the outpoint (docs/operator.md, "Data layout"). Sorted by it, the coins of a new block come
/// after every older coin, so LMDB writes them into the last pages of the database, not into
/// random pages all over it (`benches/bench_coins.py`, docs/benchmarks.md).
pub fn store_key(outpoint: &OutPointKey, coin: &CoinBytes) -> StoreKey {
    let mut key = [0u8; STORE_KEY_LEN];
    key[..8].copy_from_slice(&coin[40..48]);
    key[..8].reverse(); // little-endian in the coin, big-endian in the key
    key[8..].copy_from_slice(outpoint);
    key
}

/// The key of an outpoint.
pub fn outpoint_key(outpoint: &OutPoint) -> OutPointKey {
    let mut key = [0u8; OUTPOINT_LEN];
    key[..HASH_LEN].copy_from_slice(&outpoint.txid);
    key[HASH_LEN..].copy_from_slice(&outpoint.vout.to_le_bytes());
    key
}

/// The set element `outpoint ‖ coin` hashed into the LtHash.
pub fn element(key: &OutPointKey, coin: &CoinBytes) -> [u8; ELEMENT_LEN] {
    let mut e = [0u8; ELEMENT_LEN];
    e[..OUTPOINT_LEN].copy_from_slice(key);
    e[OUTPOINT_LEN..].copy_from_slice(coin);
    e
}

/// Checks that 49 bytes are a canonical coin (the `is_coinbase` byte is 0 or 1).
pub fn check_coin(coin: &CoinBytes) -> Result<(), String> {
    Coin::decode(coin).map(|_| ()).map_err(|e| e.to_string())
}

/// Why a load or rollback was refused. The set is unchanged whenever one is returned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UtxoError {
    /// A coin that is not a canonical 49-byte encoding.
    BadCoin { index: usize, reason: String },
    /// An outpoint given twice, or one already in the set.
    DuplicateOutPoint { index: usize, outpoint: OutPointKey },
    /// An undo record that does not decode.
    MalformedUndo(String),
    /// An undo record that decodes but does not fit the set (it is not the undo of the last
    /// applied block).
    UndoMismatch(String),
}

impl std::fmt::Display for UtxoError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            UtxoError::BadCoin { index, reason } => write!(f, "entry {index}: bad coin: {reason}"),
            UtxoError::DuplicateOutPoint { index, outpoint } => write!(
                f,
                "entry {index}: outpoint {} is already in the set",
                display_outpoint(outpoint)
            ),
            UtxoError::MalformedUndo(why) => write!(f, "malformed undo record: {why}"),
            UtxoError::UndoMismatch(why) => write!(f, "undo record does not match the set: {why}"),
        }
    }
}

impl std::error::Error for UtxoError {}

/// `txid-hex:vout` of an outpoint key, for messages.
pub fn display_outpoint(key: &OutPointKey) -> String {
    let hex: String = key[..HASH_LEN].iter().map(|b| format!("{b:02x}")).collect();
    let vout = u32::from_le_bytes(key[HASH_LEN..].try_into().unwrap_or([0; 4]));
    format!("{hex}:{vout}")
}

/// What rolling back one block needs (docs/encoding.md, "Undo record"): the block's identity,
/// the set hash before it was applied, the outpoints it added and the coins it removed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Undo {
    pub height: u64,
    pub block_hash: Hash,
    /// `utxo_set_hash` of the set before the block: a rollback must arrive at it again.
    pub prior_set_hash: Hash,
    /// Outpoints the block added to the set (outputs it created and did not itself spend).
    pub created: Vec<OutPointKey>,
    /// Coins the block removed from the set (inputs spent that existed before it).
    pub spent: Vec<(OutPointKey, CoinBytes)>,
}

impl Undo {
    /// Encoded length, bytes.
    pub fn encoded_len(&self) -> usize {
        1 + 8
            + 2 * HASH_LEN
            + 4
            + self.created.len() * OUTPOINT_LEN
            + 4
            + self.spent.len() * (OUTPOINT_LEN + COIN_LEN)
    }

    /// The encoding: version u8 ‖ height u64 ‖ block_hash ‖ prior_set_hash ‖
    /// u32 count ‖ OutPoint* ‖ u32 count ‖ (OutPoint ‖ Coin)*.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.encoded_len());
        out.push(UNDO_VERSION);
        out.extend_from_slice(&self.height.to_le_bytes());
        out.extend_from_slice(&self.block_hash);
        out.extend_from_slice(&self.prior_set_hash);
        // Counts are below u32::MAX: they are bounded by a decoded block's outputs and inputs.
        out.extend_from_slice(&(self.created.len() as u32).to_le_bytes());
        for key in &self.created {
            out.extend_from_slice(key);
        }
        out.extend_from_slice(&(self.spent.len() as u32).to_le_bytes());
        for (key, coin) in &self.spent {
            out.extend_from_slice(key);
            out.extend_from_slice(coin);
        }
        out
    }

    /// Decodes strictly: known version, counts bounded by the remaining bytes, canonical coins,
    /// no outpoint twice, no trailing bytes.
    pub fn decode(bytes: &[u8]) -> Result<Undo, UtxoError> {
        let bad = |e: crate::codec::CodecError| UtxoError::MalformedUndo(e.to_string());
        let mut r = Reader::new(bytes);
        let version = r.u8("undo version").map_err(bad)?;
        if version != UNDO_VERSION {
            return Err(UtxoError::MalformedUndo(format!(
                "unknown undo version {version} (expected {UNDO_VERSION})"
            )));
        }
        let height = r.u64("undo height").map_err(bad)?;
        let block_hash = r.hash("undo block_hash").map_err(bad)?;
        let prior_set_hash = r.hash("undo prior_set_hash").map_err(bad)?;
        let n = r
            .count("undo created outpoints", OUTPOINT_LEN)
            .map_err(bad)?;
        let mut created = Vec::with_capacity(n);
        for _ in 0..n {
            created.push(
                r.array::<OUTPOINT_LEN>("undo created outpoint")
                    .map_err(bad)?,
            );
        }
        let n = r
            .count("undo spent coins", OUTPOINT_LEN + COIN_LEN)
            .map_err(bad)?;
        let mut spent = Vec::with_capacity(n);
        for i in 0..n {
            let key = r
                .array::<OUTPOINT_LEN>("undo spent outpoint")
                .map_err(bad)?;
            let coin = r.array::<COIN_LEN>("undo spent coin").map_err(bad)?;
            check_coin(&coin)
                .map_err(|why| UtxoError::MalformedUndo(format!("spent coin {i}: {why}")))?;
            spent.push((key, coin));
        }
        r.finish("undo record").map_err(bad)?;
        let mut seen = HashSet::with_capacity(created.len() + spent.len());
        for key in created.iter().chain(spent.iter().map(|(k, _)| k)) {
            if !seen.insert(*key) {
                return Err(UtxoError::MalformedUndo(format!(
                    "outpoint {} appears twice",
                    display_outpoint(key)
                )));
            }
        }
        Ok(Undo {
            height,
            block_hash,
            prior_set_hash,
            created,
            spent,
        })
    }
}

/// The outpoints [`UtxoSet::take_dirty`] took from a set, each with what the persisted store
/// holds for it (`None`: nothing): [`UtxoSet::dirty_writes`] turns them into store writes.
pub struct DirtyCoins {
    stored: HashMap<OutPointKey, Option<CoinBytes>>,
    /// The set's take count this came from.
    take: u64,
}

impl DirtyCoins {
    /// The number of outpoints taken: an upper bound on the number of writes.
    pub fn len(&self) -> usize {
        self.stored.len()
    }

    /// Whether no outpoint was taken.
    pub fn is_empty(&self) -> bool {
        self.stored.is_empty()
    }

    /// The outpoints taken with their stored values, in an order that stays the same.
    pub fn entries(&self) -> impl Iterator<Item = (&OutPointKey, &Option<CoinBytes>)> + '_ {
        self.stored.iter()
    }
}

/// [`UtxoSet::dirty_writes`] for a [`DirtyCoins`] of an earlier take (or one before a load).
#[derive(Debug, PartialEq, Eq)]
pub struct StaleDirty;

impl std::fmt::Display for StaleDirty {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the set's changes were taken again, or coins loaded, since these were taken")
    }
}

/// Sorts store writes by key, the order the store wants them in ([`store_key`]).
pub fn sort_delta(delta: &mut [(StoreKey, Option<CoinBytes>)]) {
    delta.sort_unstable_by_key(|(key, _)| *key);
}

/// The UTXO set: contents, LtHash state and the store's value of every outpoint touched since
/// the last [`UtxoSet::take_delta`].
#[derive(Clone, Default)]
pub struct UtxoSet {
    coins: HashMap<OutPointKey, CoinBytes>,
    /// Outpoint → what the persisted store holds for it (`None`: not in the store, FRESH), for
    /// every outpoint changed since the last delta. Outpoints not in here hold in the store
    /// exactly what they hold in `coins` (or are absent from both).
    touched: HashMap<OutPointKey, Option<CoinBytes>>,
    hash: LtHash,
    /// Counts the changes to the contents: a block prepared against one generation may only be
    /// committed at that generation (see `apply::commit_prepared`).
    generation: u64,
    /// Counts the takes of `touched` and the loads: the writes of a [`DirtyCoins`] are worked
    /// out only at the count it was taken at (see [`UtxoSet::dirty_writes`]).
    takes: u64,
    /// Signatures this set's admissions and blocks already verified (not state: a clone starts
    /// empty, and it never changes a verdict).
    pub sig_cache: SigCache,
}

impl UtxoSet {
    /// An empty set (and an empty store).
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of unspent coins.
    pub fn len(&self) -> usize {
        self.coins.len()
    }

    /// Whether the set holds no coin.
    pub fn is_empty(&self) -> bool {
        self.coins.is_empty()
    }

    /// The coin at `outpoint`, if unspent.
    pub fn get(&self, outpoint: &OutPointKey) -> Option<&CoinBytes> {
        self.coins.get(outpoint)
    }

    /// Whether `outpoint` is unspent.
    pub fn contains(&self, outpoint: &OutPointKey) -> bool {
        self.coins.contains_key(outpoint)
    }

    /// The LtHash state.
    pub fn state(&self) -> &LtHash {
        &self.hash
    }

    /// The number of changes to the contents so far (loads, blocks, rollbacks): equal values
    /// mean the same contents.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// The committed set hash: `hash_in("utxo_set", state)`.
    pub fn set_hash(&self) -> Hash {
        self.hash.digest()
    }

    /// Adds coins that the persisted store already holds (startup): they update the hash and
    /// are clean (no write in the next delta). All entries are checked before any is added:
    /// a non-canonical coin or an outpoint given twice or already present changes nothing.
    pub fn load(&mut self, entries: &[(OutPointKey, CoinBytes)]) -> Result<(), UtxoError> {
        let mut seen = HashSet::with_capacity(entries.len());
        for (index, (key, coin)) in entries.iter().enumerate() {
            check_coin(coin).map_err(|reason| UtxoError::BadCoin { index, reason })?;
            if self.coins.contains_key(key) || !seen.insert(*key) {
                return Err(UtxoError::DuplicateOutPoint {
                    index,
                    outpoint: *key,
                });
            }
        }
        drop(seen);
        self.generation += 1;
        // Stored values change below: a take in progress would be worked out wrong.
        self.takes += 1;
        let elements: Vec<[u8; ELEMENT_LEN]> = entries.iter().map(|(k, c)| element(k, c)).collect();
        self.hash.add_assign(&LtHash::delta(&elements, &[]));
        self.coins.reserve(entries.len());
        for (key, coin) in entries {
            self.coins.insert(*key, *coin);
            // The store holds it: if it was touched before, the store's value is now this coin.
            if let Some(stored) = self.touched.get_mut(key) {
                *stored = Some(*coin);
            }
        }
        Ok(())
    }

    /// Applies checked block changes and returns the undo record. The caller (the validator)
    /// guarantees that no `created` outpoint is in the set, that each `spent` coin is in the set
    /// with exactly that value, that no outpoint repeats, and that `new_hash` is the current
    /// state plus the created and minus the spent elements.
    pub(crate) fn commit_block(
        &mut self,
        height: u64,
        block_hash: Hash,
        created: &[(OutPointKey, CoinBytes)],
        spent: Vec<(OutPointKey, CoinBytes)>,
        new_hash: LtHash,
    ) -> Undo {
        let prior_set_hash = self.set_hash();
        self.generation += 1;
        let (touched, coins) = (&mut self.touched, &mut self.coins);
        // The store's value of a key touched for the first time is what the set held: the
        // spent coin, or nothing for a created one.
        let mut mark = || {
            touched.reserve(created.len() + spent.len());
            for (key, coin) in &spent {
                touched.entry(*key).or_insert(Some(*coin));
            }
            for (key, _) in created {
                touched.entry(*key).or_insert(None);
            }
        };
        let mut change = || {
            coins.reserve(created.len().saturating_sub(spent.len()));
            for (key, coin) in &spent {
                let removed = coins.remove(key);
                debug_assert_eq!(removed.as_ref(), Some(coin));
            }
            for (key, coin) in created {
                let previous = coins.insert(*key, *coin);
                debug_assert!(previous.is_none());
            }
        };
        // Two tables, one pass each: side by side on a large block.
        if created.len() + spent.len() >= PARALLEL_COMMIT {
            rayon::join(mark, change);
        } else {
            mark();
            change();
        }
        self.hash = new_hash;
        Undo {
            height,
            block_hash,
            prior_set_hash,
            created: created.iter().map(|(k, _)| *k).collect(),
            spent,
        }
    }

    /// Rolls back the block whose undo record is `undo` (it must be the last block applied):
    /// removes the coins it created, restores the coins it spent and the hash before it. The
    /// record is checked in full first (it decodes strictly, every created coin is in the set,
    /// no spent coin is, and the restored hash equals the record's `prior_set_hash`); on any
    /// error nothing changes.
    pub fn rollback(&mut self, undo: &[u8]) -> Result<Undo, UtxoError> {
        let undo = Undo::decode(undo)?;
        let mut removed = Vec::with_capacity(undo.created.len());
        for key in &undo.created {
            let coin = self.coins.get(key).ok_or_else(|| {
                UtxoError::UndoMismatch(format!(
                    "created outpoint {} is not in the set",
                    display_outpoint(key)
                ))
            })?;
            removed.push(element(key, coin));
        }
        let mut restored = Vec::with_capacity(undo.spent.len());
        for (key, coin) in &undo.spent {
            if self.coins.contains_key(key) {
                return Err(UtxoError::UndoMismatch(format!(
                    "spent outpoint {} is already in the set",
                    display_outpoint(key)
                )));
            }
            restored.push(element(key, coin));
        }
        let mut new_hash = self.hash.clone();
        new_hash.add_assign(&LtHash::delta(&restored, &removed));
        if new_hash.digest() != undo.prior_set_hash {
            return Err(UtxoError::UndoMismatch(
                "the rolled-back set hash differs from the record's prior set hash".into(),
            ));
        }
        self.generation += 1;
        self.touched.reserve(undo.created.len() + undo.spent.len());
        for key in &undo.created {
            if let Some(coin) = self.coins.remove(key) {
                self.touched.entry(*key).or_insert(Some(coin));
            }
        }
        for (key, coin) in &undo.spent {
            self.touched.entry(*key).or_insert(None);
            self.coins.insert(*key, *coin);
        }
        self.hash = new_hash;
        Ok(undo)
    }

    /// Replays a block's changes onto a set loaded from a store that may already hold some of
    /// them (DESIGN §9, "Coins flush"): every outpoint of `spent` that is in the set is removed,
    /// every `created` coin not in the set is added. Applied in block order over the blocks
    /// after the store's coins marker, it brings the store's coins (whichever of the flushed
    /// writes landed before a crash) to the set after the last block, whose header hash the
    /// caller then checks. Nothing is validated: the blocks were when they were connected.
    ///
    /// Refused, with nothing changed, if a created outpoint is in the set with another coin
    /// (a store that is not this chain's).
    pub fn replay(
        &mut self,
        created: &[(OutPointKey, CoinBytes)],
        spent: &[OutPointKey],
    ) -> Result<(), UtxoError> {
        for (index, (key, coin)) in created.iter().enumerate() {
            if let Some(held) = self.coins.get(key) {
                if held != coin {
                    return Err(UtxoError::DuplicateOutPoint {
                        index,
                        outpoint: *key,
                    });
                }
            }
        }
        self.generation += 1;
        let mut add = Vec::new();
        let mut sub = Vec::new();
        for key in spent {
            if let Some(coin) = self.coins.remove(key) {
                self.touched.entry(*key).or_insert(Some(coin));
                sub.push(element(key, &coin));
            }
        }
        for (key, coin) in created {
            if !self.coins.contains_key(key) {
                self.touched.entry(*key).or_insert(None);
                self.coins.insert(*key, *coin);
                add.push(element(key, coin));
            }
        }
        self.hash.add_assign(&LtHash::delta(&add, &sub));
        Ok(())
    }

    /// The writes that bring the persisted store from the last delta to the current set, for
    /// the outpoints whose stored coin differs from the current one, keyed by [`store_key`] and
    /// sorted by it: `(key, Some(coin))` to put, `(key of the stored coin, None)` to delete.
    /// Everything is clean afterwards. [`UtxoSet::take_dirty`] then
    /// [`UtxoSet::dirty_writes`] and [`sort_delta`], at once.
    pub fn take_delta(&mut self) -> Vec<(StoreKey, Option<CoinBytes>)> {
        let dirty = self.take_dirty();
        let mut delta = Vec::with_capacity(dirty.len());
        self.dirty_writes(&dirty, dirty.stored.iter(), &mut delta)
            .expect("nothing was taken or loaded since");
        sort_delta(&mut delta);
        delta
    }

    /// Takes the table of outpoints touched since the last take, with what the store holds for
    /// each, and leaves the set clean: O(1), the table moves out whole. The writes it stands
    /// for, as of now, come from [`UtxoSet::dirty_writes`] while no later take or load happens.
    pub fn take_dirty(&mut self) -> DirtyCoins {
        self.takes += 1;
        // A take after a large apply would keep a large table; the next one starts smaller.
        let capacity = self.touched.len().min(65_536);
        let fresh = HashMap::with_capacity_and_hasher(capacity, Default::default());
        DirtyCoins {
            stored: std::mem::replace(&mut self.touched, fresh),
            take: self.takes,
        }
    }

    /// Appends to `writes` the store writes of `entries` (some of `dirty`'s, each once) as of
    /// the moment `dirty` was taken, unsorted: for each outpoint whose value then differs from
    /// what the store holds, the delete of the stored coin's key and the put of the current
    /// one. The value at the take is what `touched` recorded before the outpoint's first change
    /// since (every change records it), else the current value.
    ///
    /// Refused ([`StaleDirty`], nothing appended) once the set has been taken from again or
    /// loaded: the records would no longer be of that moment.
    pub fn dirty_writes<'a>(
        &self,
        dirty: &DirtyCoins,
        entries: impl IntoIterator<Item = (&'a OutPointKey, &'a Option<CoinBytes>)>,
        writes: &mut Vec<(StoreKey, Option<CoinBytes>)>,
    ) -> Result<(), StaleDirty> {
        if dirty.take != self.takes {
            return Err(StaleDirty);
        }
        for (outpoint, stored) in entries {
            let current = match self.touched.get(outpoint) {
                Some(at_take) => *at_take,
                None => self.coins.get(outpoint).copied(),
            };
            if current == *stored {
                continue;
            }
            let put = current.map(|coin| store_key(outpoint, &coin));
            if let Some(old) = stored.map(|coin| store_key(outpoint, &coin)) {
                if put != Some(old) {
                    writes.push((old, None));
                }
            }
            if let (Some(key), Some(coin)) = (put, current) {
                writes.push((key, Some(coin)));
            }
        }
        Ok(())
    }

    /// (number of coins, sum of their values in sat), one pass over the set.
    pub fn totals(&self) -> (usize, u128) {
        let total = self
            .coins
            .values()
            .map(|coin| u64::from_le_bytes(coin[..8].try_into().expect("8 bytes")) as u128)
            .sum();
        (self.coins.len(), total)
    }

    /// Number of outpoints changed since the last delta (an upper bound on its length).
    pub fn dirty_count(&self) -> usize {
        self.touched.len()
    }

    /// Estimated heap and inline memory of the set, bytes: the two tables' allocations and the
    /// LtHash state.
    pub fn memory_usage(&self) -> usize {
        std::mem::size_of::<Self>()
            + self.coins.allocation_size()
            + self.touched.allocation_size()
            + crate::lthash::STATE_LEN
    }

    /// Iterates over `(outpoint, coin)` in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&OutPointKey, &CoinBytes)> {
        self.coins.iter()
    }

    /// Every `(outpoint, coin)` whose owner (`pubkey_hash`, coin bytes 8..40) is one of
    /// `owners`, sorted by outpoint: one parallel scan of the set (a wallet's balance,
    /// `listunspent`). Each coin is first tested against a 65,536-bit table of the owners'
    /// first two bytes (key hashes are uniform, so almost every other coin stops there), and
    /// only a hit is compared in full.
    pub fn coins_of(&self, owners: &[Hash]) -> Vec<(OutPointKey, CoinBytes)> {
        if owners.is_empty() {
            return Vec::new();
        }
        let mut prefixes = vec![0u64; PREFIX_TABLE_BITS / 64];
        for owner in owners {
            let p = owner_prefix(owner);
            prefixes[p / 64] |= 1 << (p % 64);
        }
        let wanted: HashSet<&[u8]> = owners.iter().map(|o| o.as_slice()).collect();
        let mut found: Vec<(OutPointKey, CoinBytes)> = self
            .coins
            .par_iter()
            .filter(|(_, coin)| {
                let owner = coin_owner(coin);
                let p = owner_prefix(owner);
                prefixes[p / 64] & (1 << (p % 64)) != 0 && wanted.contains(owner)
            })
            .map(|(k, c)| (*k, *c))
            .collect();
        found.par_sort_unstable_by_key(|(key, _)| *key);
        found
    }
}

/// Bits of the owner prefix table of [`UtxoSet::coins_of`]: one per value of a key hash's first
/// two bytes (8 KiB, stays in L1).
const PREFIX_TABLE_BITS: usize = 1 << 16;

/// The first two bytes of a 32-byte key hash as a table index.
fn owner_prefix(owner: &[u8]) -> usize {
    usize::from(owner[0]) << 8 | usize::from(owner[1])
}

/// The owner's public key hash inside a coin encoding (value u64 ‖ pubkey_hash ‖ ...).
fn coin_owner(coin: &CoinBytes) -> &[u8] {
    &coin[8..8 + HASH_LEN]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(i: u32) -> OutPointKey {
        outpoint_key(&OutPoint {
            txid: crate::hash::blake3(&i.to_le_bytes()),
            vout: i % 3,
        })
    }

    fn coin(i: u32, height: u64) -> CoinBytes {
        Coin {
            value: 546 + i as u64,
            pubkey_hash: [i as u8; 32],
            height,
            is_coinbase: false,
        }
        .encode()
    }

    fn recomputed(set: &UtxoSet) -> LtHash {
        let elements: Vec<_> = set.iter().map(|(k, c)| element(k, c)).collect();
        LtHash::delta(&elements, &[])
    }

    fn commit(
        set: &mut UtxoSet,
        created: &[(OutPointKey, CoinBytes)],
        spent: &[OutPointKey],
    ) -> Vec<u8> {
        let spent: Vec<_> = spent.iter().map(|k| (*k, *set.get(k).unwrap())).collect();
        let add: Vec<_> = created.iter().map(|(k, c)| element(k, c)).collect();
        let sub: Vec<_> = spent.iter().map(|(k, c)| element(k, c)).collect();
        let mut h = set.state().clone();
        h.add_assign(&LtHash::delta(&add, &sub));
        set.commit_block(7, [7; 32], created, spent, h).encode()
    }

    #[test]
    fn a_large_commit_updates_both_tables_as_a_small_one_would() {
        // Above PARALLEL_COMMIT changes the coins and the touched outpoints are updated on two
        // threads: the set, its delta for the store and the rollback must be as in sequence.
        let n = PARALLEL_COMMIT as u32;
        let mut set = UtxoSet::new();
        let funding: Vec<_> = (0..n).map(|i| (key(i), coin(i, 1))).collect();
        set.load(&funding).unwrap();
        set.take_delta();
        let before = set.clone();
        let created: Vec<_> = (n..2 * n).map(|i| (key(i), coin(i, 2))).collect();
        let spent: Vec<_> = (0..n / 2).map(key).collect();
        assert!(created.len() + spent.len() >= PARALLEL_COMMIT);
        let undo = commit(&mut set, &created, &spent);
        assert_eq!(set.len(), (n + n / 2) as usize);
        assert!(spent.iter().all(|k| set.get(k).is_none()));
        assert!(created.iter().all(|(k, c)| set.get(k) == Some(c)));
        assert_eq!(set.state(), &recomputed(&set));
        let mut want: Vec<(StoreKey, Option<CoinBytes>)> = spent
            .iter()
            .map(|k| (store_key(k, before.get(k).unwrap()), None))
            .chain(created.iter().map(|(k, c)| (store_key(k, c), Some(*c))))
            .collect();
        sort_delta(&mut want);
        assert_eq!(set.clone().take_delta(), want);
        set.rollback(&undo).unwrap();
        assert_eq!(set.state(), before.state());
        assert!(before.iter().all(|(k, c)| set.get(k) == Some(c)) && set.len() == before.len());
    }

    /// Two blocks over a store that holds any subset of the flushed writes: replaying both
    /// gives the set after them, and the delta then brings that store to it.
    #[test]
    fn replay_over_any_partly_flushed_store() {
        let mut live = UtxoSet::new();
        let base: Vec<_> = (0..4).map(|i| (key(i), coin(i, 1))).collect();
        live.load(&base).unwrap();
        // Block 1 spends 0 and creates 10, 11; block 2 spends 1 and 10 and creates 12.
        let b1 = ([(key(10), coin(10, 2)), (key(11), coin(11, 2))], [key(0)]);
        let b2 = ([(key(12), coin(12, 3))], [key(1), key(10)]);
        commit(&mut live, &b1.0, &b1.1);
        commit(&mut live, &b2.0, &b2.1);
        let delta = live.take_delta();
        assert_eq!(delta.len(), 4, "0, 1 deleted; 11, 12 put; 10 never stored");
        let stored = |coins: &mut dyn Iterator<Item = (OutPointKey, CoinBytes)>| {
            coins
                .map(|(k, c)| (store_key(&k, &c), c))
                .collect::<std::collections::BTreeMap<_, _>>()
        };
        for landed in 0..(1u32 << delta.len()) {
            let mut store = stored(&mut base.iter().copied());
            for (i, (k, c)) in delta.iter().enumerate() {
                if landed & (1 << i) != 0 {
                    match c {
                        Some(c) => store.insert(*k, *c),
                        None => store.remove(k),
                    };
                }
            }
            let mut set = UtxoSet::new();
            let loaded: Vec<(OutPointKey, CoinBytes)> = store
                .iter()
                .map(|(k, c)| (k[8..].try_into().unwrap(), *c))
                .collect();
            set.load(&loaded).unwrap();
            set.replay(&b1.0, &b1.1).unwrap();
            set.replay(&b2.0, &b2.1).unwrap();
            assert_eq!(set.set_hash(), live.set_hash(), "landed {landed:b}");
            assert_eq!(set.state(), &recomputed(&set));
            for (k, c) in set.take_delta() {
                match c {
                    Some(c) => store.insert(k, c),
                    None => store.remove(&k),
                };
            }
            assert_eq!(store, stored(&mut live.iter().map(|(k, c)| (*k, *c))));
        }
    }

    #[test]
    fn replay_refuses_another_coin_and_changes_nothing() {
        let mut set = UtxoSet::new();
        set.load(&[(key(1), coin(1, 1)), (key(2), coin(2, 1))])
            .unwrap();
        let before = (set.set_hash(), set.generation(), set.dirty_count());
        let refused = set.replay(&[(key(3), coin(3, 2)), (key(2), coin(2, 9))], &[key(1)]);
        assert!(matches!(
            refused,
            Err(UtxoError::DuplicateOutPoint { index: 1, .. })
        ));
        assert_eq!(
            (set.set_hash(), set.generation(), set.dirty_count()),
            before
        );
        assert!(set.contains(&key(1)) && !set.contains(&key(3)));
    }

    #[test]
    fn totals_count_and_sum_every_coin() {
        let mut set = UtxoSet::new();
        assert_eq!(set.totals(), (0, 0));
        set.load(&[(key(1), coin(1, 1)), (key(2), coin(2, 1))])
            .unwrap();
        assert_eq!(set.totals(), (2, 547 + 548));
    }

    #[test]
    fn load_apply_rollback_delta() {
        let mut set = UtxoSet::new();
        let initial: Vec<_> = (0..10).map(|i| (key(i), coin(i, 1))).collect();
        set.load(&initial).unwrap();
        assert!(set.take_delta().is_empty());
        let before = set.clone();
        let undo = commit(
            &mut set,
            &[(key(20), coin(20, 2)), (key(21), coin(21, 2))],
            &[key(0), key(1)],
        );
        assert_eq!(set.state(), &recomputed(&set));
        assert_eq!(set.len(), 10);
        set.rollback(&undo).unwrap();
        assert_eq!(set.state(), before.state());
        assert_eq!(set.coins, before.coins);
        // Spent and restored, created and removed: nothing to write.
        assert!(set.take_delta().is_empty());
        let undo = commit(&mut set, &[(key(20), coin(20, 2))], &[key(3)]);
        let delta = set.take_delta();
        let (created, spent) = (
            store_key(&key(20), &coin(20, 2)),
            store_key(&key(3), &coin(3, 1)),
        );
        // Height 1 (the spent coin) sorts before height 2 (the created one).
        assert_eq!(delta, vec![(spent, None), (created, Some(coin(20, 2)))]);
        set.rollback(&undo).unwrap();
        assert_eq!(
            set.take_delta(),
            vec![(spent, Some(coin(3, 1))), (created, None)]
        );
        assert_eq!(set.state(), before.state());
        // A stored coin spent, then its outpoint created again at another height: deleted
        // under its old key, put under the new one.
        commit(&mut set, &[], &[key(4)]);
        commit(&mut set, &[(key(4), coin(4, 5))], &[]);
        assert_eq!(
            set.take_delta(),
            vec![
                (store_key(&key(4), &coin(4, 1)), None),
                (store_key(&key(4), &coin(4, 5)), Some(coin(4, 5)))
            ]
        );
        assert_eq!(&store_key(&key(4), &coin(4, 5))[..8], &5u64.to_be_bytes());
    }

    #[test]
    fn bad_undo_changes_nothing() {
        let mut set = UtxoSet::new();
        set.load(&[(key(1), coin(1, 1)), (key(2), coin(2, 1))])
            .unwrap();
        let undo = commit(&mut set, &[(key(5), coin(5, 2))], &[key(1)]);
        let snapshot = set.clone();
        let check = |set: &UtxoSet| {
            assert_eq!(set.coins, snapshot.coins);
            assert_eq!(set.state(), snapshot.state());
            assert_eq!(set.touched, snapshot.touched);
        };
        for cut in [0, 1, 10, undo.len() - 1] {
            assert!(matches!(
                set.rollback(&undo[..cut]),
                Err(UtxoError::MalformedUndo(_))
            ));
            check(&set);
        }
        let mut trailing = undo.clone();
        trailing.push(0);
        assert!(set.rollback(&trailing).is_err());
        let mut wrong_hash = undo.clone();
        wrong_hash[9 + 32] ^= 1;
        assert!(matches!(
            set.rollback(&wrong_hash),
            Err(UtxoError::UndoMismatch(_))
        ));
        let mut bad_flag = undo.clone();
        *bad_flag.last_mut().unwrap() = 2;
        assert!(matches!(
            set.rollback(&bad_flag),
            Err(UtxoError::MalformedUndo(_))
        ));
        check(&set);
        set.rollback(&undo).unwrap();
        assert!(matches!(
            set.rollback(&undo),
            Err(UtxoError::UndoMismatch(_))
        ));
    }

    #[test]
    fn coins_of_finds_exactly_the_owners_coins_sorted() {
        let mut set = UtxoSet::new();
        // coin(i) is owned by [i as u8; 32]: owners 0..=5 hold a few coins each.
        let entries: Vec<_> = (0..60).map(|i| (key(i), coin(i % 6, 1))).collect();
        set.load(&entries).unwrap();
        for owners in [
            vec![],
            vec![[2u8; 32]],
            vec![[2u8; 32], [5u8; 32], [9u8; 32]],
        ] {
            let mut want: Vec<_> = entries
                .iter()
                .filter(|(_, c)| owners.iter().any(|o| c[8..40] == o[..]))
                .copied()
                .collect();
            want.sort();
            assert_eq!(set.coins_of(&owners), want);
        }
        // An owner sharing a coin owner's first two bytes passes the prefix table, not the
        // full comparison.
        let mut near = [2u8; 32];
        near[31] = 0;
        assert!(set.coins_of(&[near]).is_empty());
        let many: Vec<Hash> = (0..20u8).map(|i| [i; 32]).collect();
        let mut all = entries.clone();
        all.sort();
        assert_eq!(set.coins_of(&many), all);
        assert_eq!(set.coins_of(&many[..6]), all);
    }

    #[test]
    fn load_checks_before_changing() {
        let mut set = UtxoSet::new();
        set.load(&[(key(1), coin(1, 1))]).unwrap();
        let mut bad = coin(2, 1);
        bad[48] = 7;
        assert!(matches!(
            set.load(&[(key(2), coin(2, 1)), (key(3), bad)]),
            Err(UtxoError::BadCoin { index: 1, .. })
        ));
        assert!(matches!(
            set.load(&[(key(2), coin(2, 1)), (key(1), coin(1, 1))]),
            Err(UtxoError::DuplicateOutPoint { index: 1, .. })
        ));
        assert_eq!(set.len(), 1);
        assert_eq!(set.state(), &recomputed(&set));
    }

    /// Dirty coins taken, then the set moves on (blocks spend and create the taken outpoints,
    /// one is rolled back): their writes are still those of the moment of the take, what
    /// `take_delta` on a copy of the set gave then. A second take or a load makes them stale.
    #[test]
    fn dirty_coins_give_the_writes_of_their_take_whatever_the_set_did_since() {
        let mut set = UtxoSet::new();
        set.load(&(0..6).map(|i| (key(i), coin(i, 1))).collect::<Vec<_>>())
            .unwrap();
        commit(
            &mut set,
            &[(key(10), coin(10, 2)), (key(11), coin(11, 2))],
            &[key(0), key(1)],
        );
        let mut at_take = set.clone();
        let expected = at_take.take_delta();
        assert_eq!(expected.len(), 4);
        let dirty = set.take_dirty();
        assert_eq!(dirty.len(), 4);
        assert_eq!(set.dirty_count(), 0);
        // After the take: spend a taken coin and an untaken one, create one, roll one back.
        commit(&mut set, &[(key(12), coin(12, 3))], &[key(10), key(2)]);
        let undo = commit(&mut set, &[(key(13), coin(13, 4))], &[key(11)]);
        set.rollback(&undo).unwrap();
        let mut writes = Vec::new();
        set.dirty_writes(&dirty, dirty.entries(), &mut writes)
            .unwrap();
        sort_delta(&mut writes);
        assert_eq!(writes, expected);
        // A slice at a time gives the same writes.
        let mut sliced = Vec::new();
        let all: Vec<_> = dirty.entries().collect();
        for part in all.chunks(3) {
            set.dirty_writes(&dirty, part.iter().copied(), &mut sliced)
                .unwrap();
        }
        sort_delta(&mut sliced);
        assert_eq!(sliced, expected);
        // The changes since the take are the next delta's, as for a set that took at once.
        commit(&mut at_take, &[(key(12), coin(12, 3))], &[key(10), key(2)]);
        let undo = commit(&mut at_take, &[(key(13), coin(13, 4))], &[key(11)]);
        at_take.rollback(&undo).unwrap();
        assert_eq!(set.take_delta(), at_take.take_delta());
        let mut stale = Vec::new();
        assert_eq!(
            set.dirty_writes(&dirty, dirty.entries(), &mut stale),
            Err(StaleDirty)
        );
        let dirty = set.take_dirty();
        set.load(&[(key(20), coin(20, 5))]).unwrap();
        assert_eq!(
            set.dirty_writes(&dirty, dirty.entries(), &mut stale),
            Err(StaleDirty)
        );
        assert!(stale.is_empty());
    }
}
