//! LtHash16: the homomorphic hash of the UTXO set (DESIGN §3, docs/encoding.md "UTXO set hash").
//!
//! The lattice hash of Bellare–Micciancio as instantiated by Lewi et al., "Securing Update
//! Propagation with Homomorphic Hashing" (2019): each set element (`outpoint ‖ coin`, 85 bytes)
//! expands by BLAKE3-XOF in the `utxo_element` domain to 2,048 bytes, read as 1,024
//! little-endian u16 lanes; the state of a set is the lane-wise sum mod 2^16 of its elements.
//! Adding an element adds its lanes, removing it subtracts them, so the state is updated
//! incrementally and does not depend on order. The header commits
//! `hash_in("utxo_set", state as 2,048 bytes)`.
//!
//! The lane loops are plain wrapping adds over `[u16; 1024]`, which the compiler vectorizes.
//! Many elements are expanded in parallel (rayon), each thread summing into its own lanes, and
//! [`GROUP`] at a time: the first 64-byte block of an element is compressed for the whole
//! group at once (BLAKE3's SIMD `hash_many`), then each element's last block is extended to its
//! 2,048 bytes (`xof_many`), exactly what one BLAKE3 hasher per element gives.

use std::sync::LazyLock;

use blake3::platform::Platform;
use blake3::IncrementCounter;
use rayon::prelude::*;

use crate::hash::{hash_in, Domain, Hash, CHUNK_END, CHUNK_START, DERIVE_KEY_MATERIAL, ROOT};
use crate::types::{Coin, OutPoint, COIN_LEN, OUTPOINT_LEN};

/// Number of u16 lanes of the state.
pub const LANES: usize = 1024;
/// Bytes of the state (and of one element's expansion): 1,024 little-endian u16.
pub const STATE_LEN: usize = 2 * LANES;
/// Bytes of one set element: outpoint ‖ coin.
pub const ELEMENT_LEN: usize = OUTPOINT_LEN + COIN_LEN;

/// Below this many elements, a batch is summed on the calling thread only.
pub const PARALLEL_ELEMENTS: usize = 256;

/// Elements whose first blocks are compressed together: the widest SIMD lanes of BLAKE3's
/// `hash_many` (AVX-512).
pub const GROUP: usize = 16;

/// One BLAKE3 block, bytes; an element is one whole block and a last block of the rest.
const BLOCK_LEN: usize = 64;
const LAST_LEN: usize = ELEMENT_LEN - BLOCK_LEN;
const _: () = assert!(BLOCK_LEN < ELEMENT_LEN && ELEMENT_LEN <= 2 * BLOCK_LEN);

static ELEMENT_KEY: LazyLock<[u32; 8]> = LazyLock::new(|| Domain::UtxoElement.key_words());

/// The 85-byte set element of a coin: outpoint (36 bytes) ‖ coin (49 bytes), encoded as in
/// docs/encoding.md.
pub fn element(outpoint: &OutPoint, coin: &Coin) -> [u8; ELEMENT_LEN] {
    let mut e = [0u8; ELEMENT_LEN];
    e[..32].copy_from_slice(&outpoint.txid);
    e[32..36].copy_from_slice(&outpoint.vout.to_le_bytes());
    e[36..44].copy_from_slice(&coin.value.to_le_bytes());
    e[44..76].copy_from_slice(&coin.pubkey_hash);
    e[76..84].copy_from_slice(&coin.height.to_le_bytes());
    e[84] = coin.is_coinbase as u8;
    e
}

/// Lane-wise sums mod 2^16: a set's state, or a difference of two states.
#[derive(Clone, PartialEq, Eq)]
pub struct LtHash {
    lanes: Box<[u16; LANES]>,
}

impl Default for LtHash {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for LtHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "LtHash({:02x?}…)", &self.digest()[..8])
    }
}

/// Fills `bytes` with the expansion of one element (1,024 little-endian u16 lanes).
fn expand_into(element: &[u8; ELEMENT_LEN], bytes: &mut [u8; STATE_LEN]) {
    Domain::UtxoElement
        .hasher()
        .update(element)
        .finalize_xof()
        .fill(bytes);
}

/// Expands each of `elements` (at most [`GROUP`]) into `bytes` in turn and hands it to `each`:
/// the same bytes as [`expand_into`] (a derive-key BLAKE3 hash of the 85-byte element in the
/// element domain, read as an XOF), with the first blocks compressed all at once.
fn expand_group(
    elements: &[[u8; ELEMENT_LEN]],
    bytes: &mut [u8; STATE_LEN],
    mut each: impl FnMut(&[u8; STATE_LEN]),
) {
    debug_assert!(elements.len() <= GROUP);
    let platform = Platform::detect();
    let firsts: [&[u8; BLOCK_LEN]; GROUP] = std::array::from_fn(|i| {
        elements
            .get(i)
            .map_or(&[0u8; BLOCK_LEN], |e| e.first_chunk().expect("85 > 64"))
    });
    let mut cvs = [[0u8; 32]; GROUP];
    platform.hash_many(
        &firsts[..elements.len()],
        &ELEMENT_KEY,
        0,
        IncrementCounter::No,
        DERIVE_KEY_MATERIAL,
        CHUNK_START,
        0, // not the chunk's end: the output is the chaining value after the first block
        cvs[..elements.len()].as_flattened_mut(),
    );
    let mut last = [0u8; BLOCK_LEN];
    for (element, cv) in elements.iter().zip(&cvs) {
        let cv: [u32; 8] = std::array::from_fn(|i| {
            u32::from_le_bytes(cv[4 * i..4 * i + 4].try_into().expect("4 bytes"))
        });
        last[..LAST_LEN].copy_from_slice(&element[BLOCK_LEN..]);
        platform.xof_many(
            &cv,
            &last,
            LAST_LEN as u8,
            0,
            DERIVE_KEY_MATERIAL | CHUNK_END | ROOT,
            bytes,
        );
        each(bytes);
    }
}

impl LtHash {
    /// The state of the empty set (all lanes zero).
    pub fn new() -> Self {
        LtHash {
            lanes: Box::new([0; LANES]),
        }
    }

    /// The state of the set holding only `element`.
    pub fn of_element(element: &[u8; ELEMENT_LEN]) -> Self {
        let mut bytes = [0u8; STATE_LEN];
        expand_into(element, &mut bytes);
        Self::from_bytes(&bytes)
    }

    /// A state from its 2,048-byte encoding.
    pub fn from_bytes(bytes: &[u8; STATE_LEN]) -> Self {
        let mut h = Self::new();
        for (lane, pair) in h.lanes.iter_mut().zip(bytes.as_chunks::<2>().0) {
            *lane = u16::from_le_bytes(*pair);
        }
        h
    }

    /// The 2,048-byte encoding: lanes as little-endian u16.
    pub fn to_bytes(&self) -> [u8; STATE_LEN] {
        let mut out = [0u8; STATE_LEN];
        for (pair, lane) in out.as_chunks_mut::<2>().0.iter_mut().zip(self.lanes.iter()) {
            *pair = lane.to_le_bytes();
        }
        out
    }

    /// The committed digest: `hash_in("utxo_set", state bytes)`.
    pub fn digest(&self) -> Hash {
        hash_in(Domain::UtxoSet, &self.to_bytes())
    }

    /// Lane-wise `self += other`.
    pub fn add_assign(&mut self, other: &LtHash) {
        add_lanes(&mut self.lanes, &other.lanes);
    }

    /// Lane-wise `self -= other`.
    pub fn sub_assign(&mut self, other: &LtHash) {
        sub_lanes(&mut self.lanes, &other.lanes);
    }

    /// Adds one element.
    pub fn insert(&mut self, element: &[u8; ELEMENT_LEN]) {
        self.add_assign(&Self::of_element(element));
    }

    /// Removes one element (subtracts its lanes).
    pub fn remove(&mut self, element: &[u8; ELEMENT_LEN]) {
        self.sub_assign(&Self::of_element(element));
    }

    /// `Σ added − Σ removed`, with the elements expanded in parallel when there are at least
    /// [`PARALLEL_ELEMENTS`] of them (each rayon worker sums into its own lanes).
    pub fn delta(added: &[[u8; ELEMENT_LEN]], removed: &[[u8; ELEMENT_LEN]]) -> LtHash {
        if added.len() + removed.len() < PARALLEL_ELEMENTS {
            let mut acc = Accumulator::new();
            added.chunks(GROUP).for_each(|g| acc.push(g, false));
            removed.chunks(GROUP).for_each(|g| acc.push(g, true));
            return acc.sum;
        }
        added
            .par_chunks(GROUP)
            .map(|g| (g, false))
            .chain(removed.par_chunks(GROUP).map(|g| (g, true)))
            .fold(Accumulator::new, |mut acc, (g, sub)| {
                acc.push(g, sub);
                acc
            })
            .map(|acc| acc.sum)
            .reduce(LtHash::new, |mut a, b| {
                a.add_assign(&b);
                a
            })
    }
}

/// A running sum with its scratch buffer, so expanding an element allocates nothing.
struct Accumulator {
    sum: LtHash,
    bytes: Box<[u8; STATE_LEN]>,
}

impl Accumulator {
    fn new() -> Self {
        Accumulator {
            sum: LtHash::new(),
            bytes: Box::new([0; STATE_LEN]),
        }
    }

    /// Adds (or subtracts) the expansions of a group of at most [`GROUP`] elements, reading
    /// the lanes straight from the expanded bytes.
    fn push(&mut self, group: &[[u8; ELEMENT_LEN]], subtract: bool) {
        let sum = &mut self.sum.lanes;
        expand_group(group, &mut self.bytes, |expanded| {
            let lanes = sum.iter_mut().zip(expanded.as_chunks::<2>().0);
            if subtract {
                lanes.for_each(|(x, pair)| *x = x.wrapping_sub(u16::from_le_bytes(*pair)));
            } else {
                lanes.for_each(|(x, pair)| *x = x.wrapping_add(u16::from_le_bytes(*pair)));
            }
        });
    }
}

fn add_lanes(a: &mut [u16; LANES], b: &[u16; LANES]) {
    for (x, y) in a.iter_mut().zip(b.iter()) {
        *x = x.wrapping_add(*y);
    }
}

fn sub_lanes(a: &mut [u16; LANES], b: &[u16; LANES]) {
    for (x, y) in a.iter_mut().zip(b.iter()) {
        *x = x.wrapping_sub(*y);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn elem(i: u32) -> [u8; ELEMENT_LEN] {
        let op = OutPoint {
            txid: crate::hash::blake3(&i.to_le_bytes()),
            vout: i,
        };
        let coin = Coin {
            value: 1000 + i as u64,
            pubkey_hash: [i as u8; 32],
            height: i as u64 / 3,
            is_coinbase: i.is_multiple_of(5),
        };
        element(&op, &coin)
    }

    #[test]
    fn expansion_is_blake3_xof_in_the_element_domain() {
        let e = elem(7);
        let mut want = [0u8; STATE_LEN];
        blake3::Hasher::new_derive_key(Domain::UtxoElement.context())
            .update(&e)
            .finalize_xof()
            .fill(&mut want);
        assert_eq!(LtHash::of_element(&e).to_bytes(), want);
    }

    #[test]
    fn grouped_expansion_is_the_expansion_of_each_element() {
        let elems: Vec<_> = (0..2 * GROUP as u32 + 3).map(elem).collect();
        for n in [1, 2, GROUP - 1, GROUP] {
            for group in elems.chunks(n) {
                let mut got = Vec::new();
                let mut bytes = [0u8; STATE_LEN];
                expand_group(group, &mut bytes, |b| got.push(*b));
                let want: Vec<[u8; STATE_LEN]> = group
                    .iter()
                    .map(|e| LtHash::of_element(e).to_bytes())
                    .collect();
                assert_eq!(got, want);
            }
        }
    }

    #[test]
    fn order_independent_and_invertible() {
        let elems: Vec<_> = (0..600).map(elem).collect();
        let mut a = LtHash::new();
        for e in &elems {
            a.insert(e);
        }
        let mut b = LtHash::new();
        for e in elems.iter().rev() {
            b.insert(e);
        }
        assert_eq!(a, b);
        assert_eq!(LtHash::delta(&elems, &[]), a);
        assert_eq!(
            LtHash::delta(&elems[..10], &[]),
            LtHash::delta(&elems[..10], &[])
        );
        for e in &elems[100..] {
            a.remove(e);
        }
        assert_eq!(a, LtHash::delta(&elems[..100], &[]));
        let mut c = LtHash::delta(&elems, &elems[100..]);
        assert_eq!(c, a);
        c.sub_assign(&a);
        assert_eq!(c, LtHash::new());
        // 600 − 500 elements, serial and parallel paths agree.
        let mut serial = LtHash::new();
        for e in &elems[..300] {
            serial.insert(e);
        }
        for e in &elems[300..] {
            serial.remove(e);
        }
        assert_eq!(LtHash::delta(&elems[..300], &elems[300..]), serial);
    }

    #[test]
    fn bytes_round_trip_and_digest() {
        let h = LtHash::delta(&[elem(1), elem(2)], &[elem(3)]);
        assert_eq!(LtHash::from_bytes(&h.to_bytes()), h);
        assert_eq!(
            LtHash::new().digest(),
            blake3::derive_key(Domain::UtxoSet.context(), &[0u8; STATE_LEN])
        );
        assert_ne!(h.digest(), LtHash::new().digest());
    }
}
