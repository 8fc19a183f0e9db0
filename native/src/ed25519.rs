//! Ed25519 signatures under the ZIP-215 validation rules (DESIGN §3).
//!
//! Signing is RFC 8032 Ed25519 from a 32-byte seed. Verification follows ZIP-215
//! (<https://zips.z.cash/zip-0215>) through the `ed25519-zebra` crate: the cofactored equation
//! `[8][S]B = [8]R + [8][k]A`, non-canonical encodings of A and R accepted, small-order A and R
//! accepted, `S ≥ ℓ` rejected. Under these rules single and batch verification accept exactly
//! the same signatures, which is what lets every node verify in batches and still agree.

use ed25519_zebra::{batch, Signature, SigningKey, VerificationKey, VerificationKeyBytes};
use rand_chacha::ChaCha20Rng;
use rand_core::{OsRng, SeedableRng};
use rayon::prelude::*;

/// Length of a secret key (the RFC 8032 seed), in bytes.
pub const SECRET_KEY_LEN: usize = 32;
/// Length of a public key (an encoded Edwards point), in bytes.
pub const PUBLIC_KEY_LEN: usize = 32;
/// Length of a signature (R ‖ S), in bytes.
pub const SIGNATURE_LEN: usize = 64;

/// Below this many items a batch is verified on the calling thread only (~4 ms of work on one
/// core). Handing a smaller batch to rayon's workers gains at most a few milliseconds on an idle
/// machine, and on a busy one the caller waits for a worker to be scheduled: at 64, the devnet
/// at 6,000 tx/s (four nodes on two cores) spent twice the verification's CPU time blocked in
/// mempool admission, whose batches are ~75 transactions, and ended with p99 653–1,718 ms in
/// four runs against 580–682 ms at 256 (docs/benchmarks.md, 2026-12-07 evening).
pub const MIN_PARALLEL_CHUNK: usize = 256;

/// A parallel batch is cut into this many chunks per rayon worker, so that a worker busy with
/// other work of the same `join` (the block's LtHash, its input lookups) leaves its share to
/// the others instead of holding one half of the batch. Batches of 1,000 to 10,000 signatures
/// cost the same per signature (16.3–16.8 µs on one core of the 2-core test machine,
/// 2026-12-07): point decompression, per signature, dominates the multiscalar product.
pub const CHUNKS_PER_WORKER: usize = 8;

/// The public key of the 32-byte seed `secret_key` (RFC 8032 §5.1.5).
pub fn public_key(secret_key: &[u8; SECRET_KEY_LEN]) -> [u8; PUBLIC_KEY_LEN] {
    VerificationKeyBytes::from(&SigningKey::from(*secret_key)).into()
}

/// Signs `message` with the 32-byte seed `secret_key` (RFC 8032 §5.1.6, deterministic).
pub fn sign(secret_key: &[u8; SECRET_KEY_LEN], message: &[u8]) -> [u8; SIGNATURE_LEN] {
    SigningKey::from(*secret_key).sign(message).to_bytes()
}

/// Verifies one signature under ZIP-215. Any malformed key or signature is `false`.
pub fn verify(
    public_key: &[u8; PUBLIC_KEY_LEN],
    message: &[u8],
    signature: &[u8; SIGNATURE_LEN],
) -> bool {
    match VerificationKey::try_from(*public_key) {
        Ok(key) => key
            .verify(&Signature::from_bytes(signature), message)
            .is_ok(),
        Err(_) => false,
    }
}

/// One item of a batch: public key, message, signature.
#[derive(Clone, Copy, Debug)]
pub struct Item<'a> {
    pub public_key: &'a [u8; PUBLIC_KEY_LEN],
    pub message: &'a [u8],
    pub signature: &'a [u8; SIGNATURE_LEN],
}

/// Verifies `items` as one random-linear-combination batch; on failure verifies each item alone
/// to find the bad ones. Returns one verdict per item, equal to [`verify`] on that item.
///
/// The batch's 128-bit coefficients (one per signature) come from ChaCha20 keyed with 32 bytes
/// from the OS, a fresh key per call: as unpredictable to a signer as the OS generator, without
/// a system call per signature (which was ~1.4 % of the single-node pipeline's cycles).
fn verify_chunk(items: &[Item<'_>]) -> Vec<bool> {
    let mut verifier = batch::Verifier::new();
    for item in items {
        verifier.queue((
            VerificationKeyBytes::from(*item.public_key),
            Signature::from_bytes(item.signature),
            item.message,
        ));
    }
    if verifier.verify(ChaCha20Rng::from_seed(os_seed())).is_ok() {
        return vec![true; items.len()];
    }
    items
        .iter()
        .map(|i| verify(i.public_key, i.message, i.signature))
        .collect()
}

/// 32 bytes from the operating system's generator. Panics if it fails: a node that cannot draw
/// the coefficients cannot verify a batch soundly.
fn os_seed() -> [u8; 32] {
    let mut seed = [0u8; 32];
    rand_core::RngCore::try_fill_bytes(&mut OsRng, &mut seed)
        .expect("the operating system's random generator failed");
    seed
}

/// Verifies every item, one verdict per item in order, each equal to [`verify`] on that item.
///
/// With `parallel`, the batch is split into [`CHUNKS_PER_WORKER`] chunks per rayon worker (each
/// at least [`MIN_PARALLEL_CHUNK`] items) and the chunks run on all cores; a chunk that fails
/// falls back to single verification of its items, so one bad signature costs only its own
/// chunk.
pub fn verify_batch(items: &[Item<'_>], parallel: bool) -> Vec<bool> {
    if items.is_empty() {
        return Vec::new();
    }
    if !parallel {
        return verify_chunk(items);
    }
    let chunks = rayon::current_num_threads() * CHUNKS_PER_WORKER;
    let chunk = items.len().div_ceil(chunks).max(MIN_PARALLEL_CHUNK);
    if chunk >= items.len() {
        return verify_chunk(items);
    }
    items
        .par_chunks(chunk)
        .flat_map_iter(verify_chunk)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn arr<const N: usize>(hex_str: &str) -> [u8; N] {
        hex::decode(hex_str).unwrap().try_into().unwrap()
    }

    #[test]
    fn rfc8032_test_1() {
        let sk = arr::<32>("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60");
        let pk = public_key(&sk);
        assert_eq!(
            hex::encode(pk),
            "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
        );
        let sig = sign(&sk, b"");
        assert_eq!(
            hex::encode(sig),
            "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"
        );
        assert!(verify(&pk, b"", &sig));
        assert!(!verify(&pk, b"x", &sig));
    }

    #[test]
    fn batch_finds_the_bad_items() {
        // Three chunks when parallel: bad items in the first and the second.
        let n = 2 * MIN_PARALLEL_CHUNK + 44;
        let bad = [17, MIN_PARALLEL_CHUNK + 10];
        let keys: Vec<[u8; 32]> = (0..n as u32)
            .map(|i| {
                let mut s = [0u8; 32];
                s[..4].copy_from_slice(&i.to_le_bytes());
                s
            })
            .collect();
        let pks: Vec<[u8; 32]> = keys.iter().map(public_key).collect();
        let msgs: Vec<Vec<u8>> = (0..n as u32)
            .map(|i| i.to_be_bytes().repeat(i as usize % 7))
            .collect();
        let mut sigs: Vec<[u8; 64]> = keys.iter().zip(&msgs).map(|(k, m)| sign(k, m)).collect();
        sigs[bad[0]][3] ^= 1;
        sigs[bad[1]][40] ^= 0x80;
        let items: Vec<Item> = (0..n)
            .map(|i| Item {
                public_key: &pks[i],
                message: &msgs[i],
                signature: &sigs[i],
            })
            .collect();
        for parallel in [false, true] {
            let got = verify_batch(&items, parallel);
            let want: Vec<bool> = (0..n).map(|i| !bad.contains(&i)).collect();
            assert_eq!(got, want);
        }
        assert!(verify_batch(&[], true).is_empty());
    }

    #[test]
    fn s_not_reduced_is_rejected() {
        let sk = [9u8; 32];
        let pk = public_key(&sk);
        let mut sig = sign(&sk, b"m");
        // S + ℓ encodes the same scalar mod ℓ but is not canonical: ZIP-215 rejects it.
        let ell: [u8; 32] = arr("edd3f55c1a631258d69cf7a2def9de1400000000000000000000000000000010");
        let mut carry = 0u16;
        for i in 0..32 {
            let v = sig[32 + i] as u16 + ell[i] as u16 + carry;
            sig[32 + i] = v as u8;
            carry = v >> 8;
        }
        assert_eq!(carry, 0);
        assert!(!verify(&pk, b"m", &sig));
        let item = Item {
            public_key: &pk,
            message: b"m",
            signature: &sig,
        };
        assert_eq!(verify_batch(&[item], false), vec![false]);
    }
}
