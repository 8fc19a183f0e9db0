//! The VRF of leader selection: ECVRF-EDWARDS25519-SHA512-TAI (RFC 9381 §5, suite 0x03) over
//! the masternode's Ed25519 key (DESIGN §3, §5).
//!
//! The ECVRF steps are written out here, each under the name the RFC gives it; the curve
//! arithmetic is curve25519-dalek's. Keys are RFC 8032 keys: the 32-byte seed is the VRF secret
//! key and the Ed25519 public key is the VRF public key, so a masternode proves with the key it
//! signs with.
//!
//! Choices the RFC leaves to the suite, as RFC 9381 §5.5 fixes them for suite 0x03:
//! * `string_to_point` is RFC 8032 §5.1.3 decoding: y ≥ p and (x = 0, sign bit 1) are invalid.
//!   This is stricter than the ZIP-215 rule of Ed25519 verification on purpose: a VRF output must
//!   be unique per (key, alpha), so every point has exactly one accepted encoding.
//! * `encode_to_curve` is try-and-increment (§5.4.1.1) with the public key as salt.
//! * Nonces come from RFC 8032 (§5.4.2.2); the challenge is 16 bytes (§5.4.3).
//! * Verification validates the public key (§5.4.5, §5.6.1): a key whose cofactor multiple is
//!   the identity (a small-order point) is rejected, and so is a proof with `s ≥ ℓ` (§5.4.4).
//!
//! Proving is constant-time in the secret key (dalek's constant-time scalar multiplication);
//! verification handles public data only and uses variable-time multiscalar multiplication.

use std::fmt;

use curve25519_dalek::edwards::{CompressedEdwardsY, EdwardsPoint};
use curve25519_dalek::scalar::{clamp_integer, Scalar};
use curve25519_dalek::traits::{IsIdentity, VartimeMultiscalarMul};
use rayon::prelude::*;
use sha2::{Digest, Sha512};
use zeroize::Zeroize;

use crate::ed25519::{PUBLIC_KEY_LEN, SECRET_KEY_LEN};
pub use crate::types::{VRF_OUTPUT_LEN, VRF_PROOF_LEN};

/// `suite_string` of ECVRF-EDWARDS25519-SHA512-TAI (RFC 9381 §5.5).
pub const SUITE: u8 = 0x03;
/// Length of the challenge `c` in a proof, bytes (`cLen`, RFC 9381 §5.5).
const C_LEN: usize = 16;
/// Length of an encoded point, bytes (`ptLen`).
const PT_LEN: usize = 32;

/// Domain separators of RFC 9381 §5.4.1.1, §5.4.3 and §5.2.
const ENCODE_TO_CURVE_FRONT: u8 = 0x01;
const CHALLENGE_FRONT: u8 = 0x02;
const PROOF_TO_HASH_FRONT: u8 = 0x03;
const DOMAIN_BACK: u8 = 0x00;

/// Below this many proofs a batch is verified on the calling thread only.
pub const MIN_PARALLEL_CHUNK: usize = 8;

/// Why a proof was not accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VrfError {
    /// The public key is not an RFC 8032 point encoding (RFC 9381 §5.3 step 2).
    PublicKeyNotAPoint,
    /// The public key is a point of small order (`ECVRF_validate_key`, §5.4.5).
    PublicKeySmallOrder,
    /// Gamma, the first 32 bytes of the proof, is not an RFC 8032 point encoding (§5.4.4).
    GammaNotAPoint,
    /// The scalar `s`, the last 32 bytes of the proof, is not below ℓ (§5.4.4).
    ScalarNotCanonical,
    /// `encode_to_curve` found no point in 256 tries (probability about 2^-256, §5.4.1.1).
    EncodeToCurveFailed,
    /// The recomputed challenge differs: the proof is not for this key and alpha (§5.3 step 11).
    ChallengeMismatch,
}

impl fmt::Display for VrfError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            VrfError::PublicKeyNotAPoint => "invalid VRF public key: not a point encoding",
            VrfError::PublicKeySmallOrder => "invalid VRF public key: point of small order",
            VrfError::GammaNotAPoint => "invalid VRF proof: Gamma is not a point encoding",
            VrfError::ScalarNotCanonical => "invalid VRF proof: s is not below the group order",
            VrfError::EncodeToCurveFailed => "VRF encode_to_curve found no point",
            VrfError::ChallengeMismatch => "invalid VRF proof: challenge does not match",
        })
    }
}

impl std::error::Error for VrfError {}

/// `string_to_point` of RFC 9381 §5.5: RFC 8032 §5.1.3 decoding, which rejects y ≥ p and the
/// encoding of an x = 0 point with the sign bit set. (dalek's `decompress` accepts both.)
pub fn string_to_point(bytes: &[u8; PT_LEN]) -> Option<EdwardsPoint> {
    // p = 2^255 − 19: little-endian ed ff … ff 7f. y ≥ p only if y ∈ [p, 2^255).
    let y_top = bytes[31] & 0x7f;
    let y_not_below_p =
        y_top == 0x7f && bytes[1..31].iter().all(|&b| b == 0xff) && bytes[0] >= 0xed;
    if y_not_below_p {
        return None;
    }
    // x = 0 exactly when y² = 1, i.e. y = 1 or y = p − 1 (little-endian ec ff … ff 7f).
    if bytes[31] >> 7 == 1 {
        let middle_zero = bytes[1..31].iter().all(|&b| b == 0);
        let middle_ff = bytes[1..31].iter().all(|&b| b == 0xff);
        let y_is_one = bytes[0] == 1 && middle_zero && y_top == 0;
        let y_is_minus_one = bytes[0] == 0xec && middle_ff && y_top == 0x7f;
        if y_is_one || y_is_minus_one {
            return None;
        }
    }
    CompressedEdwardsY(*bytes).decompress()
}

/// `point_to_string` (RFC 8032 §5.1.2).
fn point_to_string(point: &EdwardsPoint) -> [u8; PT_LEN] {
    point.compress().to_bytes()
}

/// The secret scalar x and the nonce key of a 32-byte seed (RFC 8032 §5.1.5, RFC 9381 §5.5).
struct ExpandedSecret {
    x: Scalar,
    nonce_key: [u8; 32],
}

impl ExpandedSecret {
    fn new(secret_key: &[u8; SECRET_KEY_LEN]) -> Self {
        let mut h: [u8; 64] = Sha512::digest(secret_key).into();
        let mut low = [0u8; 32];
        low.copy_from_slice(&h[..32]);
        let mut nonce_key = [0u8; 32];
        nonce_key.copy_from_slice(&h[32..]);
        // The clamped integer reduced mod ℓ: every point it multiplies (B, and H after cofactor
        // clearing) has order ℓ, so the reduction changes no result.
        let x = Scalar::from_bytes_mod_order(clamp_integer(low));
        h.zeroize();
        low.zeroize();
        ExpandedSecret { x, nonce_key }
    }
}

impl Drop for ExpandedSecret {
    fn drop(&mut self) {
        self.x.zeroize();
        self.nonce_key.zeroize();
    }
}

/// `ECVRF_encode_to_curve_try_and_increment` (RFC 9381 §5.4.1.1) with `encode_to_curve_salt` =
/// the public key string: the first counter whose SHA-512 decodes to a point, times the cofactor.
pub fn encode_to_curve(
    public_key: &[u8; PUBLIC_KEY_LEN],
    alpha: &[u8],
) -> Result<EdwardsPoint, VrfError> {
    let mut prefix = Sha512::new();
    prefix.update([SUITE, ENCODE_TO_CURVE_FRONT]);
    prefix.update(public_key);
    prefix.update(alpha);
    for ctr in 0..=u8::MAX {
        let mut hasher = prefix.clone();
        hasher.update([ctr, DOMAIN_BACK]);
        let hash = hasher.finalize();
        let candidate: &[u8; PT_LEN] = hash[..PT_LEN].try_into().expect("SHA-512 is 64 bytes");
        if let Some(point) = string_to_point(candidate) {
            return Ok(point.mul_by_cofactor());
        }
    }
    Err(VrfError::EncodeToCurveFailed)
}

/// `ECVRF_challenge_generation` (RFC 9381 §5.4.3): the first 16 bytes of
/// SHA-512(suite ‖ 0x02 ‖ P1 ‖ … ‖ P5 ‖ 0x00), the points given as their encodings.
fn challenge(points: [&[u8; PT_LEN]; 5]) -> [u8; C_LEN] {
    let mut hasher = Sha512::new();
    hasher.update([SUITE, CHALLENGE_FRONT]);
    for p in points {
        hasher.update(p);
    }
    hasher.update([DOMAIN_BACK]);
    let mut c = [0u8; C_LEN];
    c.copy_from_slice(&hasher.finalize()[..C_LEN]);
    c
}

/// A 16-byte little-endian challenge as a scalar (`string_to_int`; below 2^128 < ℓ).
fn challenge_scalar(c: &[u8; C_LEN]) -> Scalar {
    let mut wide = [0u8; 32];
    wide[..C_LEN].copy_from_slice(c);
    Scalar::from_bytes_mod_order(wide)
}

/// `ECVRF_proof_to_hash` on a decoded Gamma (RFC 9381 §5.2): SHA-512(suite ‖ 0x03 ‖
/// point_to_string(8·Gamma) ‖ 0x00).
fn gamma_to_hash(gamma: &EdwardsPoint) -> [u8; VRF_OUTPUT_LEN] {
    let mut hasher = Sha512::new();
    hasher.update([SUITE, PROOF_TO_HASH_FRONT]);
    hasher.update(point_to_string(&gamma.mul_by_cofactor()));
    hasher.update([DOMAIN_BACK]);
    hasher.finalize().into()
}

/// The VRF public key of a seed: its Ed25519 public key (RFC 8032 §5.1.5).
pub fn public_key(secret_key: &[u8; SECRET_KEY_LEN]) -> [u8; PUBLIC_KEY_LEN] {
    point_to_string(&EdwardsPoint::mul_base(&ExpandedSecret::new(secret_key).x))
}

/// `ECVRF_prove` (RFC 9381 §5.1) and `ECVRF_proof_to_hash` (§5.2): the 80-byte proof
/// Gamma ‖ c ‖ s of `alpha` under the 32-byte seed `secret_key`, and the 64-byte output β.
///
/// Deterministic. Fails only if `encode_to_curve` finds no point (probability about 2^-256).
pub fn prove(
    secret_key: &[u8; SECRET_KEY_LEN],
    alpha: &[u8],
) -> Result<([u8; VRF_PROOF_LEN], [u8; VRF_OUTPUT_LEN]), VrfError> {
    let secret = ExpandedSecret::new(secret_key);
    let y = point_to_string(&EdwardsPoint::mul_base(&secret.x));
    let h = encode_to_curve(&y, alpha)?;
    let h_string = point_to_string(&h);
    let gamma = h * secret.x;
    // §5.4.2.2: k = SHA-512(nonce key ‖ h_string) mod ℓ.
    let mut k_string: [u8; 64] = Sha512::new()
        .chain_update(secret.nonce_key)
        .chain_update(h_string)
        .finalize()
        .into();
    let mut k = Scalar::from_bytes_mod_order_wide(&k_string);
    k_string.zeroize();
    let gamma_string = point_to_string(&gamma);
    let u = point_to_string(&EdwardsPoint::mul_base(&k));
    let v = point_to_string(&(h * k));
    let c = challenge([&y, &h_string, &gamma_string, &u, &v]);
    let s = k + challenge_scalar(&c) * secret.x;
    k.zeroize();
    let mut proof = [0u8; VRF_PROOF_LEN];
    proof[..PT_LEN].copy_from_slice(&gamma_string);
    proof[PT_LEN..PT_LEN + C_LEN].copy_from_slice(&c);
    proof[PT_LEN + C_LEN..].copy_from_slice(s.as_bytes());
    Ok((proof, gamma_to_hash(&gamma)))
}

/// `ECVRF_decode_proof` (RFC 9381 §5.4.4): Gamma, c (16 bytes, kept as its string) and s.
fn decode_proof(
    proof: &[u8; VRF_PROOF_LEN],
) -> Result<(EdwardsPoint, [u8; C_LEN], Scalar), VrfError> {
    let gamma_string: &[u8; PT_LEN] = proof[..PT_LEN].try_into().expect("80 = 32 + 16 + 32");
    let gamma = string_to_point(gamma_string).ok_or(VrfError::GammaNotAPoint)?;
    let c: [u8; C_LEN] = proof[PT_LEN..PT_LEN + C_LEN]
        .try_into()
        .expect("80 = 32 + 16 + 32");
    let s_bytes: [u8; 32] = proof[PT_LEN + C_LEN..]
        .try_into()
        .expect("80 = 32 + 16 + 32");
    let s = Option::<Scalar>::from(Scalar::from_canonical_bytes(s_bytes))
        .ok_or(VrfError::ScalarNotCanonical)?;
    Ok((gamma, c, s))
}

/// `ECVRF_verify` (RFC 9381 §5.3) with key validation: the 64-byte output β of a valid proof.
pub fn verify(
    public_key: &[u8; PUBLIC_KEY_LEN],
    proof: &[u8; VRF_PROOF_LEN],
    alpha: &[u8],
) -> Result<[u8; VRF_OUTPUT_LEN], VrfError> {
    let y = string_to_point(public_key).ok_or(VrfError::PublicKeyNotAPoint)?;
    if y.mul_by_cofactor().is_identity() {
        return Err(VrfError::PublicKeySmallOrder);
    }
    let (gamma, c, s) = decode_proof(proof)?;
    let h = encode_to_curve(public_key, alpha)?;
    let c_scalar = challenge_scalar(&c);
    // U = s·B − c·Y, V = s·H − c·Gamma.
    let u = EdwardsPoint::vartime_double_scalar_mul_basepoint(&-c_scalar, &y, &s);
    let v = EdwardsPoint::vartime_multiscalar_mul([s, -c_scalar], [h, gamma]);
    // The key and Gamma decoded strictly, so their strings are their canonical encodings.
    let gamma_string: &[u8; PT_LEN] = proof[..PT_LEN].try_into().expect("80 = 32 + 16 + 32");
    let expected = challenge([
        public_key,
        &point_to_string(&h),
        gamma_string,
        &point_to_string(&u),
        &point_to_string(&v),
    ]);
    if expected != c {
        return Err(VrfError::ChallengeMismatch);
    }
    Ok(gamma_to_hash(&gamma))
}

/// One proof of a batch: public key, proof, alpha.
#[derive(Clone, Copy, Debug)]
pub struct Item<'a> {
    pub public_key: &'a [u8; PUBLIC_KEY_LEN],
    pub proof: &'a [u8; VRF_PROOF_LEN],
    pub alpha: &'a [u8],
}

/// Verifies every item: one result per item, in order, each equal to [`verify`] on that item.
/// With `parallel`, items are spread over the rayon pool.
pub fn verify_batch(items: &[Item<'_>], parallel: bool) -> Vec<Option<[u8; VRF_OUTPUT_LEN]>> {
    let one = |i: &Item<'_>| verify(i.public_key, i.proof, i.alpha).ok();
    if parallel && items.len() > MIN_PARALLEL_CHUNK {
        items
            .par_iter()
            .with_min_len(MIN_PARALLEL_CHUNK)
            .map(one)
            .collect()
    } else {
        items.iter().map(one).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn arr<const N: usize>(hex_str: &str) -> [u8; N] {
        hex::decode(hex_str).unwrap().try_into().unwrap()
    }

    /// RFC 9381 Appendix B.3, Examples 16–18: SK, PK, alpha, H, pi, beta.
    const B3: [(&str, &str, &str, &str, &str, &str); 3] = [
        (
            "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
            "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
            "",
            "91bbed02a99461df1ad4c6564a5f5d829d0b90cfc7903e7a5797bd658abf3318",
            "8657106690b5526245a92b003bb079ccd1a92130477671f6fc01ad16f26f723f26f8a57ccaed74ee1b190bed1f479d9727d2d0f9b005a6e456a35d4fb0daab1268a1b0db10836d9826a528ca76567805",
            "90cf1df3b703cce59e2a35b925d411164068269d7b2d29f3301c03dd757876ff66b71dda49d2de59d03450451af026798e8f81cd2e333de5cdf4f3e140fdd8ae",
        ),
        (
            "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
            "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
            "72",
            "5b659fc3d4e9263fd9a4ed1d022d75eaacc20df5e09f9ea937502396598dc551",
            "f3141cd382dc42909d19ec5110469e4feae18300e94f304590abdced48aed5933bf0864a62558b3ed7f2fea45c92a465301b3bbf5e3e54ddf2d935be3b67926da3ef39226bbc355bdc9850112c8f4b02",
            "eb4440665d3891d668e7e0fcaf587f1b4bd7fbfe99d0eb2211ccec90496310eb5e33821bc613efb94db5e5b54c70a848a0bef4553a41befc57663b56373a5031",
        ),
        (
            "c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7",
            "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025",
            "af82",
            "bf4339376f5542811de615e3313d2b36f6f53c0acfebb482159711201192576a",
            "9bc0f79119cc5604bf02d23b4caede71393cedfbb191434dd016d30177ccbf8096bb474e53895c362d8628ee9f9ea3c0e52c7a5c691b6c18c9979866568add7a2d41b00b05081ed0f58ee5e31b3a970e",
            "645427e5d00c62a23fb703732fa5d892940935942101e456ecca7bb217c61c452118fec1219202a0edcf038bb6373241578be7217ba85a2687f7a0310b2df19f",
        ),
    ];

    #[test]
    fn rfc9381_b3_vectors() {
        for (sk, pk, alpha, h, pi, beta) in B3 {
            let sk = arr::<32>(sk);
            let pk = arr::<32>(pk);
            let alpha = hex::decode(alpha).unwrap();
            assert_eq!(public_key(&sk), pk);
            assert_eq!(
                hex::encode(point_to_string(&encode_to_curve(&pk, &alpha).unwrap())),
                h
            );
            let (proof, output) = prove(&sk, &alpha).unwrap();
            assert_eq!(hex::encode(proof), pi);
            assert_eq!(hex::encode(output), beta);
            assert_eq!(verify(&pk, &proof, &alpha), Ok(output));
        }
    }

    #[test]
    fn vrf_key_is_the_ed25519_key() {
        for seed in [
            [0u8; 32],
            [7u8; 32],
            arr("4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb"),
        ] {
            assert_eq!(public_key(&seed), crate::ed25519::public_key(&seed));
        }
    }

    #[test]
    fn any_change_is_rejected() {
        let sk = [42u8; 32];
        let pk = public_key(&sk);
        let (proof, _) = prove(&sk, b"alpha").unwrap();
        assert!(verify(&pk, &proof, b"alphb").is_err());
        assert!(verify(&public_key(&[43u8; 32]), &proof, b"alpha").is_err());
        for i in 0..VRF_PROOF_LEN {
            for bit in [0, 3, 7] {
                let mut bad = proof;
                bad[i] ^= 1 << bit;
                assert!(verify(&pk, &bad, b"alpha").is_err(), "byte {i} bit {bit}");
            }
        }
    }

    #[test]
    fn strict_point_decoding() {
        // y = p (non-canonical 0) and y = p + 1 (non-canonical 1): dalek decodes them, RFC 8032
        // does not.
        let mut y_p = [0xffu8; 32];
        y_p[0] = 0xed;
        y_p[31] = 0x7f;
        assert!(CompressedEdwardsY(y_p).decompress().is_some());
        assert!(string_to_point(&y_p).is_none());
        let mut y_p1 = y_p;
        y_p1[0] = 0xee;
        assert!(string_to_point(&y_p1).is_none());
        // x = 0 with the sign bit: y = 1 (identity) and y = p − 1.
        let mut one_signed = [0u8; 32];
        one_signed[0] = 1;
        assert!(string_to_point(&one_signed).is_some());
        one_signed[31] = 0x80;
        assert!(CompressedEdwardsY(one_signed).decompress().is_some());
        assert!(string_to_point(&one_signed).is_none());
        let mut minus_one = [0xffu8; 32];
        minus_one[0] = 0xec;
        minus_one[31] = 0x7f;
        assert!(string_to_point(&minus_one).is_some());
        minus_one[31] = 0xff;
        assert!(string_to_point(&minus_one).is_none());
        // Every canonical encoding round-trips.
        for seed in 0..50u8 {
            let enc = public_key(&[seed; 32]);
            assert_eq!(point_to_string(&string_to_point(&enc).unwrap()), enc);
        }
    }

    #[test]
    fn small_order_keys_and_bad_scalars_are_rejected() {
        let (proof, _) = prove(&[1u8; 32], b"x").unwrap();
        let mut identity = [0u8; 32];
        identity[0] = 1;
        assert_eq!(
            verify(&identity, &proof, b"x"),
            Err(VrfError::PublicKeySmallOrder)
        );
        let mut not_a_point = [0u8; 32];
        not_a_point[0] = 2; // y = 2 is not the y of a curve point
        assert_eq!(
            verify(&not_a_point, &proof, b"x"),
            Err(VrfError::PublicKeyNotAPoint)
        );
        let pk = public_key(&[1u8; 32]);
        let mut big_s = proof;
        big_s[48..].copy_from_slice(&[0xff; 32]);
        assert_eq!(verify(&pk, &big_s, b"x"), Err(VrfError::ScalarNotCanonical));
        let mut bad_gamma = proof;
        bad_gamma[..32].copy_from_slice(&not_a_point);
        assert_eq!(verify(&pk, &bad_gamma, b"x"), Err(VrfError::GammaNotAPoint));
    }

    #[test]
    fn batch_matches_single() {
        let keys: Vec<[u8; 32]> = (0..40u8).map(|i| [i; 32]).collect();
        let pks: Vec<[u8; 32]> = keys.iter().map(public_key).collect();
        let alphas: Vec<Vec<u8>> = (0..40u8).map(|i| vec![i; i as usize]).collect();
        let mut proofs: Vec<[u8; 80]> = keys
            .iter()
            .zip(&alphas)
            .map(|(k, a)| prove(k, a).unwrap().0)
            .collect();
        proofs[5][60] ^= 1;
        proofs[33][0] ^= 4;
        let items: Vec<Item> = (0..40)
            .map(|i| Item {
                public_key: &pks[i],
                proof: &proofs[i],
                alpha: &alphas[i],
            })
            .collect();
        for parallel in [false, true] {
            let got = verify_batch(&items, parallel);
            for (i, item) in items.iter().enumerate() {
                assert_eq!(got[i], verify(item.public_key, item.proof, item.alpha).ok());
                assert_eq!(got[i].is_none(), i == 5 || i == 33);
            }
        }
        assert!(verify_batch(&[], true).is_empty());
    }
}
