//! A cache of signatures already verified, after Bitcoin Core's `CSignatureCache`: a transaction
//! is verified at mempool admission, again when a proposal carrying it is validated and again
//! when the committed block is applied; with the cache only the first pays for Ed25519.
//!
//! Only items that verified are remembered, keyed by BLAKE3 of public key ‖ signature ‖ message
//! (the key and signature have fixed lengths, so the encoding is unambiguous), so a cached
//! verdict is always the verdict [`ed25519::verify`] gives. Bounded memory: two generations of
//! [`GENERATION`] keys, the older dropped whole when the newer fills (at most ~2 × 32 B × 2^18
//! plus table overhead, about 20 MB).

use std::sync::{Mutex, MutexGuard};

use hashbrown::HashSet;

use crate::ed25519::{self, Item};
use crate::hash::Hash;

/// Keys per generation.
pub const GENERATION: usize = 1 << 18;

#[derive(Default)]
struct Generations {
    current: HashSet<Hash>,
    previous: HashSet<Hash>,
}

impl Generations {
    fn contains(&self, key: &Hash) -> bool {
        self.current.contains(key) || self.previous.contains(key)
    }

    fn insert(&mut self, key: Hash) {
        if self.current.len() >= GENERATION {
            self.previous = std::mem::take(&mut self.current);
        }
        self.current.insert(key);
    }
}

/// Verified signatures (see the module docs). Cloning gives an empty cache.
#[derive(Default)]
pub struct SigCache {
    inner: Mutex<Generations>,
}

impl Clone for SigCache {
    fn clone(&self) -> Self {
        Self::default()
    }
}

fn key(item: &Item<'_>) -> Hash {
    let mut hasher = blake3::Hasher::new();
    hasher.update(item.public_key);
    hasher.update(item.signature);
    hasher.update(item.message);
    *hasher.finalize().as_bytes()
}

impl SigCache {
    fn lock(&self) -> MutexGuard<'_, Generations> {
        // A panic elsewhere while holding the lock leaves a valid set: keep using it.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Verdicts of [`ed25519::verify_batch`] on `items`, verifying only those not cached and
    /// caching those that verify.
    pub fn verify_batch(&self, items: &[Item<'_>], parallel: bool) -> Vec<bool> {
        let keys: Vec<Hash> = items.iter().map(key).collect();
        let mut verdicts = vec![false; items.len()];
        let mut todo = Vec::new();
        {
            let cache = self.lock();
            for (i, k) in keys.iter().enumerate() {
                if cache.contains(k) {
                    verdicts[i] = true;
                } else {
                    todo.push(i);
                }
            }
        }
        if todo.is_empty() {
            return verdicts;
        }
        let batch: Vec<Item<'_>> = todo.iter().map(|&i| items[i]).collect();
        let checked = ed25519::verify_batch(&batch, parallel);
        let mut cache = self.lock();
        for (&i, ok) in todo.iter().zip(checked) {
            verdicts[i] = ok;
            if ok {
                cache.insert(keys[i]);
            }
        }
        verdicts
    }

    /// Forgets every cached signature (benchmarks that verify the same items again).
    pub fn clear(&self) {
        *self.lock() = Generations::default();
    }

    /// Signatures cached now.
    pub fn len(&self) -> usize {
        let cache = self.lock();
        cache.current.len() + cache.previous.len()
    }

    /// Whether nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signed(n: u32) -> Vec<([u8; 32], Vec<u8>, [u8; 64])> {
        (0..n)
            .map(|i| {
                let mut sk = [7u8; 32];
                sk[..4].copy_from_slice(&i.to_le_bytes());
                let msg = i.to_be_bytes().to_vec();
                (
                    ed25519::public_key(&sk),
                    msg.clone(),
                    ed25519::sign(&sk, &msg),
                )
            })
            .collect()
    }

    #[test]
    fn cached_verdicts_equal_fresh_ones_and_bad_ones_are_never_cached() {
        let mut data = signed(200);
        for i in [3usize, 77, 150] {
            data[i].2[5] ^= 1; // broken signatures
        }
        let items: Vec<Item<'_>> = data
            .iter()
            .map(|(pk, msg, sig)| Item {
                public_key: pk,
                message: msg,
                signature: sig,
            })
            .collect();
        let expected = ed25519::verify_batch(&items, false);
        assert_eq!(expected.iter().filter(|ok| !**ok).count(), 3);
        let cache = SigCache::default();
        assert_eq!(cache.verify_batch(&items, true), expected);
        assert_eq!(cache.len(), 197);
        assert_eq!(cache.verify_batch(&items, true), expected); // cached and uncached mixed
        assert_eq!(cache.len(), 197);
        // The same key and signature over another message is another item.
        let other = Item {
            public_key: items[0].public_key,
            message: b"other",
            signature: items[0].signature,
        };
        assert_eq!(cache.verify_batch(&[other], false), vec![false]);
        cache.clear();
        assert!(cache.is_empty());
        assert_eq!(cache.verify_batch(&items, false), expected);
    }

    #[test]
    fn generations_bound_the_size() {
        let mut g = Generations::default();
        for i in 0..(2 * GENERATION + 10) as u64 {
            let mut k = [0u8; 32];
            k[..8].copy_from_slice(&i.to_le_bytes());
            g.insert(k);
        }
        assert!(g.current.len() + g.previous.len() <= 2 * GENERATION);
        let mut last = [0u8; 32];
        last[..8].copy_from_slice(&((2 * GENERATION + 9) as u64).to_le_bytes());
        assert!(g.contains(&last));
    }
}
