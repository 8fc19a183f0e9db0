//! Binary BLAKE3 merkle tree over 32-byte leaves (txids) (DESIGN §3).
//!
//! * a leaf is `H_leaf(txid ‖ 0^32)` and an inner node `H_node(left ‖ right)`, in distinct hash
//!   domains, so a leaf can never be mistaken for a node (second-preimage safety). The leaf is
//!   padded to one full 64-byte block so that both levels hash equal-length single blocks, which
//!   BLAKE3 computes 8 or 16 at a time with SIMD (`hash_many`);
//! * an odd last node of a level is carried up unchanged, never paired with itself, so no two
//!   different leaf lists share a root (the CVE-2012-2459 ambiguity of duplicating it);
//! * the root of no leaves is `H_node("")`, which no inner node can equal (those hash exactly
//!   64 bytes).

use std::sync::LazyLock;

use blake3::platform::Platform;
use blake3::IncrementCounter;
use rayon::prelude::*;

use crate::hash::{
    hash_in, Domain, Hash, CHUNK_END, CHUNK_START, DERIVE_KEY_MATERIAL, HASH_LEN, ROOT,
};

/// Trees of at least this many leaves are hashed on all cores; smaller ones on the calling thread.
pub const PARALLEL_THRESHOLD: usize = 4096;

/// The root is computed as the roots of aligned subtrees of this many leaves, then the tree over
/// those. A power of two, so subtree boundaries never split a pair at any level: the subtree
/// roots are exactly the nodes of level log2(SUBTREE) of the whole tree, the last one included
/// (the odd-node carry happens inside the last subtree just as in the whole tree). It also keeps
/// every buffer small (64 KiB of blocks), so the allocator reuses memory instead of mapping fresh
/// pages for each call, which cost more than the hashing on this machine.
const SUBTREE: usize = 1024;

/// One BLAKE3 block: a padded leaf or a pair of children.
type Block = [u8; 64];

static LEAF_KEY: LazyLock<[u32; 8]> = LazyLock::new(|| Domain::MerkleLeaf.key_words());
static NODE_KEY: LazyLock<[u32; 8]> = LazyLock::new(|| Domain::MerkleNode.key_words());

/// Hashes each single-block input as a whole `derive_key` message in the domain of `key`, many
/// at a time with the widest SIMD the CPU has. Equal, block by block, to
/// `hash_in(domain, block)`; the unit tests check it.
fn hash_blocks(key: &[u32; 8], blocks: &[Block], out: &mut [Hash]) {
    debug_assert_eq!(blocks.len(), out.len());
    let refs: Vec<&Block> = blocks.iter().collect();
    Platform::detect().hash_many(
        &refs,
        key,
        0,
        IncrementCounter::No,
        DERIVE_KEY_MATERIAL,
        CHUNK_START,
        CHUNK_END | ROOT,
        out.as_flattened_mut(),
    );
}

fn hash_level(key: &[u32; 8], blocks: &[Block]) -> Vec<Hash> {
    let mut out = vec![[0u8; HASH_LEN]; blocks.len()];
    hash_blocks(key, blocks, &mut out);
    out
}

/// Error of a merkle proof request.
#[derive(Debug, PartialEq, Eq)]
pub enum MerkleError {
    /// `index` is not below the number of leaves.
    IndexOutOfRange { index: usize, count: usize },
}

impl std::fmt::Display for MerkleError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MerkleError::IndexOutOfRange { index, count } => {
                write!(f, "leaf index {index} out of range for {count} leaves")
            }
        }
    }
}

fn padded(leaf: &Hash) -> Block {
    let mut block = [0u8; 64];
    block[..HASH_LEN].copy_from_slice(leaf);
    block
}

/// Hash of one leaf: `H_leaf(leaf ‖ 0^32)`.
pub fn leaf_hash(leaf: &Hash) -> Hash {
    hash_in(Domain::MerkleLeaf, &padded(leaf))
}

/// Hash of an inner node from its two children.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    *Domain::MerkleNode
        .hasher()
        .update(left)
        .update(right)
        .finalize()
        .as_bytes()
}

fn leaf_level(leaves: &[Hash]) -> Vec<Hash> {
    let blocks: Vec<Block> = leaves.iter().map(padded).collect();
    hash_level(&LEAF_KEY, &blocks)
}

fn next_level(level: &[Hash]) -> Vec<Hash> {
    let pairs = level.len() / 2;
    // Adjacent children are contiguous: the first 2·pairs hashes are `pairs` 64-byte blocks.
    let (blocks, _) = level[..2 * pairs].as_flattened().as_chunks::<64>();
    let mut next = hash_level(&NODE_KEY, blocks);
    if level.len() % 2 == 1 {
        next.push(level[level.len() - 1]);
    }
    next
}

/// Root of a non-empty level, pairing up with the odd node carried.
fn reduce(mut level: Vec<Hash>) -> Hash {
    while level.len() > 1 {
        level = next_level(&level);
    }
    level[0]
}

fn subtree_root(leaves: &[Hash]) -> Hash {
    reduce(leaf_level(leaves))
}

/// Merkle root of `leaves`.
pub fn root(leaves: &[Hash], parallel: bool) -> Hash {
    if leaves.is_empty() {
        return hash_in(Domain::MerkleNode, b"");
    }
    let subtree_roots: Vec<Hash> = if parallel && leaves.len() >= PARALLEL_THRESHOLD {
        leaves.par_chunks(SUBTREE).map(subtree_root).collect()
    } else {
        leaves.chunks(SUBTREE).map(subtree_root).collect()
    };
    reduce(subtree_roots)
}

/// The sibling hashes from leaf `index` up to the root, bottom first. A level where the node is
/// the carried-up odd last one contributes no sibling.
pub fn proof(leaves: &[Hash], index: usize) -> Result<Vec<Hash>, MerkleError> {
    if index >= leaves.len() {
        return Err(MerkleError::IndexOutOfRange {
            index,
            count: leaves.len(),
        });
    }
    let mut path = Vec::new();
    let mut level = leaf_level(leaves);
    let mut i = index;
    while level.len() > 1 {
        let sibling = i ^ 1;
        if sibling < level.len() {
            path.push(level[sibling]);
        }
        level = next_level(&level);
        i /= 2;
    }
    Ok(path)
}

/// Every level of the tree of `leaves` (non-empty): the leaf hashes first, the root last, an
/// odd last node carried up. Any leaf's proof is one sibling per level, so a batch of proofs
/// costs one tree instead of one tree per proof.
pub fn levels(leaves: &[Hash]) -> Result<Vec<Vec<Hash>>, MerkleError> {
    if leaves.is_empty() {
        return Err(MerkleError::IndexOutOfRange { index: 0, count: 0 });
    }
    let mut out = vec![leaf_level(leaves)];
    while out[out.len() - 1].len() > 1 {
        let next = next_level(&out[out.len() - 1]);
        out.push(next);
    }
    Ok(out)
}

/// Whether `proof` proves that `leaf` is leaf number `index` of `count` leaves under `root`.
/// Every proof element must be used: a longer or shorter proof is `false`.
pub fn verify_proof(leaf: &Hash, index: usize, count: usize, proof: &[Hash], root: &Hash) -> bool {
    if index >= count {
        return false;
    }
    let mut hash = leaf_hash(leaf);
    let mut siblings = proof.iter();
    let (mut i, mut n) = (index, count);
    while n > 1 {
        let carried = i == n - 1 && n % 2 == 1;
        if !carried {
            let Some(sibling) = siblings.next() else {
                return false;
            };
            hash = if i % 2 == 0 {
                node_hash(&hash, sibling)
            } else {
                node_hash(sibling, &hash)
            };
        }
        i /= 2;
        n = n.div_ceil(2);
    }
    siblings.next().is_none() && hash == *root
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaves(n: usize) -> Vec<Hash> {
        (0..n as u32)
            .map(|i| crate::hash::blake3(&i.to_le_bytes()))
            .collect()
    }

    #[test]
    fn simd_levels_equal_one_hash_at_a_time() {
        for n in [1, 2, 15, 16, 17, 33, 1000] {
            let l = leaves(n);
            let level = leaf_level(&l);
            assert_eq!(level, l.iter().map(leaf_hash).collect::<Vec<_>>());
            let next = next_level(&level);
            let want: Vec<Hash> = level
                .chunks(2)
                .map(|c| {
                    if c.len() == 2 {
                        node_hash(&c[0], &c[1])
                    } else {
                        c[0]
                    }
                })
                .collect();
            assert_eq!(next, want);
        }
    }

    /// The whole tree, level by level, one hash at a time: the definition.
    fn root_by_levels(leaves: &[Hash]) -> Hash {
        let mut level: Vec<Hash> = leaves.iter().map(leaf_hash).collect();
        while level.len() > 1 {
            level = level
                .chunks(2)
                .map(|c| {
                    if c.len() == 2 {
                        node_hash(&c[0], &c[1])
                    } else {
                        c[0]
                    }
                })
                .collect();
        }
        level[0]
    }

    #[test]
    fn subtree_split_equals_whole_tree() {
        for n in [
            1,
            SUBTREE - 1,
            SUBTREE,
            SUBTREE + 1,
            3 * SUBTREE + 7,
            PARALLEL_THRESHOLD * 2 + 3,
        ] {
            let l = leaves(n);
            let want = root_by_levels(&l);
            assert_eq!(root(&l, false), want, "n={n}");
            assert_eq!(root(&l, true), want, "n={n}");
        }
    }

    #[test]
    fn levels_give_every_proof_and_the_root() {
        for n in [1usize, 2, 3, 5, 8, 13, 1025] {
            let l = leaves(n);
            let lv = levels(&l).unwrap();
            assert_eq!(lv.last().unwrap(), &vec![root(&l, false)]);
            for i in [0, n / 2, n - 1] {
                let mut path = Vec::new();
                let mut j = i;
                for level in &lv[..lv.len() - 1] {
                    if j ^ 1 < level.len() {
                        path.push(level[j ^ 1]);
                    }
                    j /= 2;
                }
                assert_eq!(path, proof(&l, i).unwrap());
            }
        }
        assert!(levels(&[]).is_err());
    }

    #[test]
    fn small_trees_by_hand() {
        let l = leaves(3);
        let (a, b, c) = (leaf_hash(&l[0]), leaf_hash(&l[1]), leaf_hash(&l[2]));
        assert_eq!(root(&l[..1], false), a);
        assert_eq!(root(&l[..2], false), node_hash(&a, &b));
        // The odd third leaf is carried up, not paired with itself.
        assert_eq!(root(&l, false), node_hash(&node_hash(&a, &b), &c));
    }

    #[test]
    fn duplicated_last_leaf_changes_root() {
        let mut l = leaves(3);
        let r3 = root(&l, false);
        l.push(l[2]);
        assert_ne!(r3, root(&l, false));
    }

    #[test]
    fn proofs_round_trip_and_fail_when_tampered() {
        for n in 1..=17 {
            let l = leaves(n);
            let r = root(&l, false);
            for i in 0..n {
                let p = proof(&l, i).unwrap();
                assert!(verify_proof(&l[i], i, n, &p, &r), "n={n} i={i}");
                let other = crate::hash::blake3(b"not a leaf");
                assert!(!verify_proof(&other, i, n, &p, &r));
                if !p.is_empty() {
                    let mut bad = p.clone();
                    bad[0][0] ^= 1;
                    assert!(!verify_proof(&l[i], i, n, &bad, &r));
                    assert!(!verify_proof(&l[i], i, n, &p[..p.len() - 1], &r));
                }
                let mut long = p.clone();
                long.push(r);
                assert!(!verify_proof(&l[i], i, n, &long, &r));
            }
            assert_eq!(
                proof(&l, n),
                Err(MerkleError::IndexOutOfRange { index: n, count: n })
            );
        }
    }
}
