//! The VRF-weighted leader order of a (height, round) and the proposer eligibility check
//! (DESIGN §5, §7 phase 2; the full rule is in docs/leader-selection.md).
//!
//! The order is a weighted draw without replacement over the height's masternode set, driven by
//! a random stream that every node derives from the same chained seed:
//!
//! * the set is sorted canonically by public key (bytes, ascending), so the caller's list order
//!   never matters; keys must be distinct and weights ≥ 1;
//! * the stream is BLAKE3-XOF in the `leader_draw` domain of `seed ‖ height (u64 LE)`, read as
//!   consecutive little-endian u128 words, where `seed` is the previous block's 64-byte VRF
//!   output;
//! * draw j takes the total weight T of the masternodes not drawn yet, a uniform integer
//!   r ∈ [0, T) from the stream by rejection sampling (a word u is used only if
//!   u < 2^128 − (2^128 mod T), then r = u mod T; rejected words are skipped), and picks the
//!   first remaining masternode, in canonical order, whose running weight sum exceeds r.
//!
//! Each draw picks a remaining masternode with probability exactly weight / T: integers only,
//! no floats, no modulo bias. Round r's leader is the (r mod n)-th draw. A Fenwick tree over the
//! canonical weights makes each draw O(log n).
//!
//! Pure functions: no I/O, no clock, no state between calls.

use std::fmt;

use crate::ed25519::PUBLIC_KEY_LEN;
use crate::hash::Domain;
use crate::vrf::{self, VrfError, VRF_OUTPUT_LEN, VRF_PROOF_LEN};

/// A masternode public key (Ed25519, 32 bytes).
pub type PublicKey = [u8; PUBLIC_KEY_LEN];

/// Length of the VRF input a proposer proves: previous VRF output ‖ height u64 ‖ round u32.
pub const VRF_ALPHA_LEN: usize = VRF_OUTPUT_LEN + 8 + 4;

/// Why a masternode set or a query on it was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LeaderError {
    /// No masternodes: there is no leader.
    EmptySet,
    /// The key and weight lists differ in length.
    LengthMismatch { keys: usize, weights: usize },
    /// A weight of 0 (index into the caller's list): a masternode in the set has weight ≥ 1.
    ZeroWeight { index: usize },
    /// The same key twice (index into the caller's list of the second occurrence).
    DuplicateKey { index: usize },
    /// The key asked about is not in the set.
    NotInSet,
}

impl fmt::Display for LeaderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LeaderError::EmptySet => write!(f, "the masternode set is empty"),
            LeaderError::LengthMismatch { keys, weights } => {
                write!(f, "{keys} public keys but {weights} weights")
            }
            LeaderError::ZeroWeight { index } => {
                write!(f, "weights[{index}] is 0; weights must be >= 1")
            }
            LeaderError::DuplicateKey { index } => {
                write!(f, "public_keys[{index}] appears more than once in the set")
            }
            LeaderError::NotInSet => write!(f, "the public key is not in the masternode set"),
        }
    }
}

impl std::error::Error for LeaderError {}

/// Why a block proposer is not eligible.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProposerError {
    /// The set or the proposer key is refused (see [`LeaderError`]).
    Set(LeaderError),
    /// The proposer is not the leader of this round.
    WrongRank {
        round: u32,
        leader_index: usize,
        proposer_index: usize,
    },
    /// The VRF proof does not verify under the proposer's key for this (seed, height, round).
    BadProof(VrfError),
}

impl ProposerError {
    /// A short stable code for logs, metrics and Python exceptions.
    pub const fn code(&self) -> &'static str {
        match self {
            ProposerError::Set(LeaderError::NotInSet) => "not_in_set",
            ProposerError::Set(_) => "bad_set",
            ProposerError::WrongRank { .. } => "wrong_rank",
            ProposerError::BadProof(_) => "bad_vrf_proof",
        }
    }
}

impl fmt::Display for ProposerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProposerError::Set(e) => write!(f, "{}: {e}", self.code()),
            ProposerError::WrongRank { round, leader_index, proposer_index } => write!(
                f,
                "{}: round {round} belongs to public_keys[{leader_index}], not to public_keys[{proposer_index}]",
                self.code()
            ),
            ProposerError::BadProof(e) => write!(f, "{}: {e}", self.code()),
        }
    }
}

impl std::error::Error for ProposerError {}

impl From<LeaderError> for ProposerError {
    fn from(e: LeaderError) -> Self {
        ProposerError::Set(e)
    }
}

/// A masternode set in canonical order (sorted by public key), validated once.
#[derive(Clone, Debug)]
pub struct MasternodeSet {
    keys: Vec<PublicKey>,
    /// Caller's index of each canonical position.
    index: Vec<usize>,
    /// Weight of each canonical position.
    weights: Vec<u64>,
    /// Fenwick tree (1-based) over the canonical weights.
    tree: Vec<u128>,
    total: u128,
}

impl MasternodeSet {
    /// Validates and sorts the set: equal lengths, n ≥ 1, weights ≥ 1, distinct keys.
    pub fn new(keys: &[PublicKey], weights: &[u64]) -> Result<Self, LeaderError> {
        if keys.len() != weights.len() {
            return Err(LeaderError::LengthMismatch {
                keys: keys.len(),
                weights: weights.len(),
            });
        }
        if keys.is_empty() {
            return Err(LeaderError::EmptySet);
        }
        if let Some(index) = weights.iter().position(|&w| w == 0) {
            return Err(LeaderError::ZeroWeight { index });
        }
        // Sort (first 8 key bytes as a big-endian u64, key, index): integer comparisons decide
        // almost every pair, the full key the rest, so the order is plain byte order of the
        // keys. The index only names the entry (a tie on the key is a duplicate, refused).
        let mut sorted: Vec<(u64, PublicKey, usize)> = keys
            .iter()
            .enumerate()
            .map(|(i, k)| {
                (
                    u64::from_be_bytes(k[..8].try_into().expect("32 ≥ 8")),
                    *k,
                    i,
                )
            })
            .collect();
        sorted.sort_unstable();
        if let Some(pair) = sorted.windows(2).find(|p| p[0].1 == p[1].1) {
            return Err(LeaderError::DuplicateKey { index: pair[1].2 });
        }
        let n = keys.len();
        let index: Vec<usize> = sorted.iter().map(|&(_, _, i)| i).collect();
        let canonical_weights: Vec<u64> = index.iter().map(|&i| weights[i]).collect();
        // O(n) Fenwick build over a power-of-two size (positions past n weigh 0, so they are
        // never drawn and `locate` needs no bounds test): each node adds itself to its parent.
        let size = n.next_power_of_two();
        let mut tree = vec![0u128; size + 1];
        for node in 1..=size {
            if let Some(&w) = canonical_weights.get(node - 1) {
                tree[node] += u128::from(w);
            }
            let parent = node + (node & node.wrapping_neg());
            if parent <= size {
                tree[parent] += tree[node];
            }
        }
        // n ≤ isize::MAX items of < 2^64 each: the total is below 2^128.
        let total = canonical_weights.iter().map(|&w| u128::from(w)).sum();
        Ok(MasternodeSet {
            keys: sorted.into_iter().map(|(_, k, _)| k).collect(),
            index,
            weights: canonical_weights,
            tree,
            total,
        })
    }

    /// Number of masternodes.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Always false: a set has at least one masternode.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Total weight of the set.
    pub fn total_weight(&self) -> u128 {
        self.total
    }

    /// The caller's index of `key`, if it is in the set.
    pub fn position(&self, key: &PublicKey) -> Option<usize> {
        self.keys.binary_search(key).ok().map(|pos| self.index[pos])
    }

    /// The leader order for `height` under `seed`, lazily: the caller's indices, one per draw.
    pub fn draws(&self, seed: &[u8; VRF_OUTPUT_LEN], height: u64) -> Draws<'_> {
        Draws {
            set: self,
            tree: self.tree.clone(),
            weights: self.weights.clone(),
            remaining: self.total,
            left: self.len(),
            stream: Stream::new(seed, height),
        }
    }
}

/// The random words of one (seed, height): BLAKE3-XOF in the `leader_draw` domain.
struct Stream {
    reader: blake3::OutputReader,
    buf: [u8; 256],
    pos: usize,
}

impl Stream {
    fn new(seed: &[u8; VRF_OUTPUT_LEN], height: u64) -> Self {
        let mut hasher = Domain::LeaderDraw.hasher();
        hasher.update(seed);
        hasher.update(&height.to_le_bytes());
        Stream {
            reader: hasher.finalize_xof(),
            buf: [0; 256],
            pos: 256,
        }
    }

    fn next_word(&mut self) -> u128 {
        if self.pos == self.buf.len() {
            self.reader.fill(&mut self.buf);
            self.pos = 0;
        }
        let word: [u8; 16] = self.buf[self.pos..self.pos + 16]
            .try_into()
            .expect("16-byte slice");
        self.pos += 16;
        u128::from_le_bytes(word)
    }

    /// A uniform integer in [0, bound) by rejection sampling; `bound` ≥ 1.
    fn below(&mut self, bound: u128) -> u128 {
        let max_accepted = max_accepted(bound);
        loop {
            let u = self.next_word();
            if u <= max_accepted {
                return u % bound;
            }
        }
    }
}

/// The largest word accepted when drawing below `bound`: 2^128 − (2^128 mod bound) − 1. The
/// accepted words 0 ..= max are a whole number of copies of [0, bound), so `u mod bound` is
/// exactly uniform; at most `bound − 1` of the 2^128 words are rejected.
fn max_accepted(bound: u128) -> u128 {
    let rem = (u128::MAX % bound + 1) % bound; // 2^128 mod bound, without overflow
    u128::MAX - rem
}

/// The draws of one (set, seed, height), in order: each item is the caller's index of the next
/// masternode drawn. Ends after every masternode is drawn.
pub struct Draws<'a> {
    set: &'a MasternodeSet,
    tree: Vec<u128>,
    /// Canonical weights, zeroed as masternodes are drawn.
    weights: Vec<u64>,
    remaining: u128,
    left: usize,
    stream: Stream,
}

impl Draws<'_> {
    /// Canonical position (0-based) of the first masternode whose running weight exceeds `r`.
    fn locate(&self, mut r: u128) -> usize {
        // Binary descent over the power-of-two tree, branch-free: the comparisons are random.
        let mut pos = 0usize;
        let mut step = (self.tree.len() - 1) / 2;
        while step > 0 {
            let t = self.tree[pos + step];
            let take = 0u128.wrapping_sub(u128::from(t <= r));
            r -= t & take;
            pos += step & (take as usize);
            step >>= 1;
        }
        pos
    }

    fn remove(&mut self, pos: usize, weight: u128) {
        let mut i = pos + 1;
        while i < self.tree.len() {
            self.tree[i] -= weight;
            i += i & i.wrapping_neg();
        }
        self.remaining -= weight;
    }
}

impl Iterator for Draws<'_> {
    type Item = usize;

    fn next(&mut self) -> Option<usize> {
        if self.left == 0 {
            return None;
        }
        let r = self.stream.below(self.remaining);
        let pos = self.locate(r);
        let weight = u128::from(std::mem::take(&mut self.weights[pos]));
        self.remove(pos, weight);
        self.left -= 1;
        Some(self.set.index[pos])
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
    }
}

/// The first `min(count, n)` masternodes of the leader order of `height` under `seed` (the
/// previous block's VRF output), as indices into `keys`/`weights`.
pub fn leader_order(
    seed: &[u8; VRF_OUTPUT_LEN],
    height: u64,
    keys: &[PublicKey],
    weights: &[u64],
    count: usize,
) -> Result<Vec<usize>, LeaderError> {
    let set = MasternodeSet::new(keys, weights)?;
    Ok(set.draws(seed, height).take(count).collect())
}

/// The position of `key` in the leader order (0 = leads round 0).
pub fn leader_rank(
    seed: &[u8; VRF_OUTPUT_LEN],
    height: u64,
    keys: &[PublicKey],
    weights: &[u64],
    key: &PublicKey,
) -> Result<usize, LeaderError> {
    let set = MasternodeSet::new(keys, weights)?;
    let target = set.position(key).ok_or(LeaderError::NotInSet)?;
    Ok(set
        .draws(seed, height)
        .position(|i| i == target)
        .expect("every masternode is drawn exactly once"))
}

/// The index of the leader of `round`: the (round mod n)-th draw.
pub fn round_leader(
    seed: &[u8; VRF_OUTPUT_LEN],
    height: u64,
    round: u32,
    keys: &[PublicKey],
    weights: &[u64],
) -> Result<usize, LeaderError> {
    let set = MasternodeSet::new(keys, weights)?;
    Ok(leader_of(&set, seed, height, round))
}

fn leader_of(set: &MasternodeSet, seed: &[u8; VRF_OUTPUT_LEN], height: u64, round: u32) -> usize {
    let slot = (round as usize) % set.len();
    set.draws(seed, height).nth(slot).expect("slot < n draws")
}

/// The VRF input of the proposer of (height, round): previous VRF output ‖ height u64 LE ‖
/// round u32 LE (docs/leader-selection.md).
pub fn vrf_alpha(seed: &[u8; VRF_OUTPUT_LEN], height: u64, round: u32) -> [u8; VRF_ALPHA_LEN] {
    let mut alpha = [0u8; VRF_ALPHA_LEN];
    alpha[..VRF_OUTPUT_LEN].copy_from_slice(seed);
    alpha[VRF_OUTPUT_LEN..VRF_OUTPUT_LEN + 8].copy_from_slice(&height.to_le_bytes());
    alpha[VRF_OUTPUT_LEN + 8..].copy_from_slice(&round.to_le_bytes());
    alpha
}

/// Whether `proposer` may propose at (height, round): it is the round's leader under `seed`
/// (the previous block's VRF output) and `proof` is its valid VRF proof over
/// [`vrf_alpha`]`(seed, height, round)`. Returns the proof's VRF output: the block's
/// `vrf_output` and the seed of height + 1.
#[allow(clippy::too_many_arguments)]
pub fn check_proposer(
    seed: &[u8; VRF_OUTPUT_LEN],
    height: u64,
    round: u32,
    keys: &[PublicKey],
    weights: &[u64],
    proposer: &PublicKey,
    proof: &[u8; VRF_PROOF_LEN],
) -> Result<[u8; VRF_OUTPUT_LEN], ProposerError> {
    let set = MasternodeSet::new(keys, weights)?;
    let proposer_index = set.position(proposer).ok_or(LeaderError::NotInSet)?;
    let leader_index = leader_of(&set, seed, height, round);
    if leader_index != proposer_index {
        return Err(ProposerError::WrongRank {
            round,
            leader_index,
            proposer_index,
        });
    }
    vrf::verify(proposer, proof, &vrf_alpha(seed, height, round)).map_err(ProposerError::BadProof)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(n: usize) -> Vec<PublicKey> {
        (0..n)
            .map(|i| *blake3::hash(&(i as u64).to_le_bytes()).as_bytes())
            .collect()
    }

    /// The rule as stated in the module docs, with a linear scan instead of the Fenwick tree.
    fn linear_order(
        seed: &[u8; 64],
        height: u64,
        keys: &[PublicKey],
        weights: &[u64],
    ) -> Vec<usize> {
        let mut left: Vec<usize> = (0..keys.len()).collect();
        left.sort_by_key(|&i| keys[i]);
        let mut stream = Stream::new(seed, height);
        let mut out = Vec::new();
        while !left.is_empty() {
            let total: u128 = left.iter().map(|&i| u128::from(weights[i])).sum();
            let r = stream.below(total);
            let mut acc = 0u128;
            let at = left
                .iter()
                .position(|&i| {
                    acc += u128::from(weights[i]);
                    acc > r
                })
                .unwrap();
            out.push(left.remove(at));
        }
        out
    }

    #[test]
    fn fenwick_matches_linear_scan() {
        for n in [1usize, 2, 3, 7, 8, 9, 64, 100, 257] {
            let ks = keys(n);
            let ws: Vec<u64> = (0..n as u64)
                .map(|i| 1 + (i * 7919) % 13 + if i % 5 == 0 { u64::MAX / 4 } else { 0 })
                .collect();
            for height in 0..5u64 {
                let seed = [height as u8 ^ 0x5a; 64];
                let got = leader_order(&seed, height, &ks, &ws, usize::MAX).unwrap();
                assert_eq!(
                    got,
                    linear_order(&seed, height, &ks, &ws),
                    "n={n} height={height}"
                );
                let mut sorted = got.clone();
                sorted.sort();
                assert_eq!(sorted, (0..n).collect::<Vec<_>>());
            }
        }
    }

    #[test]
    fn golden_vector_of_the_docs() {
        // docs/leader-selection.md, "Worked example": key_i = SHA-256("mn" ‖ i as u32 LE).
        use sha2::{Digest, Sha256};
        let ks: Vec<PublicKey> = (0..5u32)
            .map(|i| {
                Sha256::new()
                    .chain_update(b"mn")
                    .chain_update(i.to_le_bytes())
                    .finalize()
                    .into()
            })
            .collect();
        let order = leader_order(&[0u8; 64], 1, &ks, &[1, 2, 4, 8, 3], 5).unwrap();
        assert_eq!(order, vec![2, 3, 1, 0, 4]);
    }

    #[test]
    fn order_ignores_input_order() {
        let ks = keys(50);
        let ws: Vec<u64> = (1..=50).collect();
        let seed = [9u8; 64];
        let order = leader_order(&seed, 77, &ks, &ws, 50).unwrap();
        let perm: Vec<usize> = (0..50).rev().collect();
        let ks2: Vec<PublicKey> = perm.iter().map(|&i| ks[i]).collect();
        let ws2: Vec<u64> = perm.iter().map(|&i| ws[i]).collect();
        let order2 = leader_order(&seed, 77, &ks2, &ws2, 50).unwrap();
        let as_keys = |o: &[usize], k: &[PublicKey]| o.iter().map(|&i| k[i]).collect::<Vec<_>>();
        assert_eq!(as_keys(&order, &ks), as_keys(&order2, &ks2));
        for (rank, &i) in order.iter().enumerate() {
            assert_eq!(leader_rank(&seed, 77, &ks, &ws, &ks[i]).unwrap(), rank);
            assert_eq!(round_leader(&seed, 77, rank as u32, &ks, &ws).unwrap(), i);
            assert_eq!(
                round_leader(&seed, 77, rank as u32 + 50, &ks, &ws).unwrap(),
                i
            );
        }
        assert_eq!(leader_order(&seed, 77, &ks, &ws, 3).unwrap(), order[..3]);
        assert_ne!(leader_order(&seed, 78, &ks, &ws, 50).unwrap(), order);
    }

    #[test]
    fn accepted_words_are_whole_copies_of_the_range() {
        let bounds = [
            1u128,
            2,
            3,
            5,
            6,
            7,
            1 << 64,
            (1 << 96) - 1,
            u128::from(u64::MAX) * 10_000,
            u128::MAX,
        ];
        for bound in bounds {
            let max = max_accepted(bound);
            // (max + 1) words accepted, a multiple of bound (2^128 wraps to 0 when nothing is
            // rejected), and fewer than `bound` rejected.
            assert_eq!(max.wrapping_add(1) % bound, 0, "bound {bound}");
            assert!(u128::MAX - max < bound);
            assert_eq!(max % bound, bound - 1);
        }
        assert_eq!(max_accepted(1 << 64), u128::MAX);
        assert_eq!(max_accepted(3), u128::MAX - 1); // 2^128 ≡ 1 (mod 3)
    }

    #[test]
    fn bad_sets_are_refused() {
        let ks = keys(3);
        let seed = [0u8; 64];
        assert_eq!(
            leader_order(&seed, 1, &[], &[], 1),
            Err(LeaderError::EmptySet)
        );
        assert_eq!(
            leader_order(&seed, 1, &ks, &[1, 2], 1),
            Err(LeaderError::LengthMismatch {
                keys: 3,
                weights: 2
            })
        );
        assert_eq!(
            leader_order(&seed, 1, &ks, &[1, 0, 2], 1),
            Err(LeaderError::ZeroWeight { index: 1 })
        );
        let dup = [ks[0], ks[1], ks[0]];
        assert_eq!(
            leader_order(&seed, 1, &dup, &[1, 1, 1], 1),
            Err(LeaderError::DuplicateKey { index: 2 })
        );
        assert_eq!(
            leader_rank(&seed, 1, &ks, &[1, 1, 1], &[0u8; 32]),
            Err(LeaderError::NotInSet)
        );
    }

    #[test]
    fn proposer_check() {
        let secrets: Vec<[u8; 32]> = (0..10u8).map(|i| [i + 1; 32]).collect();
        let ks: Vec<PublicKey> = secrets.iter().map(vrf::public_key).collect();
        let ws: Vec<u64> = (1..=10).collect();
        let seed = [3u8; 64];
        for round in 0..3u32 {
            let leader = round_leader(&seed, 10, round, &ks, &ws).unwrap();
            let alpha = vrf_alpha(&seed, 10, round);
            let (proof, output) = vrf::prove(&secrets[leader], &alpha).unwrap();
            assert_eq!(
                check_proposer(&seed, 10, round, &ks, &ws, &ks[leader], &proof),
                Ok(output)
            );
            // The same proof for another round, or at another height, is refused.
            assert!(check_proposer(&seed, 11, round, &ks, &ws, &ks[leader], &proof).is_err());
            let other = (leader + 1) % ks.len();
            let (other_proof, _) = vrf::prove(&secrets[other], &alpha).unwrap();
            let err =
                check_proposer(&seed, 10, round, &ks, &ws, &ks[other], &other_proof).unwrap_err();
            assert_eq!(err.code(), "wrong_rank");
            let mut bad = proof;
            bad[50] ^= 1;
            let err = check_proposer(&seed, 10, round, &ks, &ws, &ks[leader], &bad).unwrap_err();
            assert_eq!(err.code(), "bad_vrf_proof");
        }
        let outsider = vrf::public_key(&[99u8; 32]);
        let (proof, _) = vrf::prove(&[99u8; 32], &vrf_alpha(&seed, 10, 0)).unwrap();
        let err = check_proposer(&seed, 10, 0, &ks, &ws, &outsider, &proof).unwrap_err();
        assert_eq!(err.code(), "not_in_set");
    }
}
