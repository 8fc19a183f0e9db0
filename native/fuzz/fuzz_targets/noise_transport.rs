//! Arbitrary bytes as the encrypted stream of a P2P connection (native/src/noise.rs,
//! docs/p2p.md "Transport"); the first byte picks the read size (1 to 1,786 bytes). Decrypting
//! never panics and holds at most one partial message; and the same bytes, encrypted by the
//! other end, decrypt back unchanged whatever the read sizes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use timecoin_native::noise::{Handshake, Transport, LENGTH_PREFIX_LEN, MAX_MESSAGE_LEN};

/// A finished handshake between fixed keys: (initiator, responder).
fn session() -> (Transport, Transport) {
    let mut a = Handshake::new(true, b"fuzz", &[1; 32], Some(&[3; 32])).unwrap();
    let mut b = Handshake::new(false, b"fuzz", &[2; 32], Some(&[4; 32])).unwrap();
    b.read_message(&a.write_message(b"").unwrap()).unwrap();
    a.read_message(&b.write_message(b"").unwrap()).unwrap();
    b.read_message(&a.write_message(b"").unwrap()).unwrap();
    (a.into_transport().unwrap(), b.into_transport().unwrap())
}

fuzz_target!(|input: &[u8]| {
    let Some((&pick, data)) = input.split_first() else {
        return;
    };
    let read = 1 + usize::from(pick) * 7;
    let (_, mut receiver) = session();
    for chunk in data.chunks(read) {
        if receiver.decrypt(chunk).is_err() {
            break;
        }
        assert!(receiver.buffered() < LENGTH_PREFIX_LEN + MAX_MESSAGE_LEN);
    }
    let (mut sender, mut receiver) = session();
    let wire = sender.encrypt(data).unwrap();
    let mut plaintext = Vec::new();
    for chunk in wire.chunks(read) {
        plaintext.extend(receiver.decrypt(chunk).unwrap());
    }
    assert_eq!(plaintext, data);
    assert_eq!(receiver.buffered(), 0);
});
