//! Arbitrary bytes as the curve points and scalars a peer sends: an Ed25519 public key and
//! signature (RFC 8032, ZIP-215 rules) and an ECVRF public key and proof (RFC 9381 §5.4.4).
//! Layout: key (32) ‖ signature (64) ‖ VRF proof (80) ‖ message. Decoding and verifying never
//! panic, single and batch verification agree, and a VRF proof's output is the same from both.
#![no_main]

use libfuzzer_sys::fuzz_target;
use timecoin_native::ed25519;
use timecoin_native::vrf;

const KEY: usize = 32;
const SIG: usize = 64;
const PROOF: usize = 80;

fuzz_target!(|data: &[u8]| {
    if data.len() < KEY + SIG + PROOF {
        return;
    }
    let key: &[u8; KEY] = data[..KEY].try_into().expect("32 bytes");
    let signature: &[u8; SIG] = data[KEY..KEY + SIG].try_into().expect("64 bytes");
    let proof: &[u8; PROOF] = data[KEY + SIG..KEY + SIG + PROOF]
        .try_into()
        .expect("80 bytes");
    let message = &data[KEY + SIG + PROOF..];

    let ok = ed25519::verify(key, message, signature);
    let item = ed25519::Item {
        public_key: key,
        message,
        signature,
    };
    assert_eq!(ed25519::verify_batch(&[item], false), vec![ok]);

    let output = vrf::verify(key, proof, message).ok();
    let item = vrf::Item {
        public_key: key,
        proof,
        alpha: message,
    };
    assert_eq!(vrf::verify_batch(&[item], false), vec![output]);
});
