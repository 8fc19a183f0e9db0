//! Arbitrary bytes as the fixed-size items of the encoding (docs/encoding.md): outpoint (36),
//! output (40), witness (96) and coin (49 bytes). The first byte picks the item. Decoding never
//! panics, refuses every other length, and re-encodes what it accepts unchanged; a coin's
//! `is_coinbase` byte must be 0 or 1.
#![no_main]

use libfuzzer_sys::fuzz_target;
use timecoin_native::types::{
    Coin, OutPoint, TxOut, Witness, COIN_LEN, OUTPOINT_LEN, TXOUT_LEN, WITNESS_LEN,
};

fn encoded(encode: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    let mut out = Vec::new();
    encode(&mut out);
    out
}

fuzz_target!(|input: &[u8]| {
    let Some((&pick, data)) = input.split_first() else {
        return;
    };
    match pick % 4 {
        0 => match OutPoint::decode(data) {
            Ok(v) => assert_eq!(encoded(|o| v.encode_into(o)), data),
            Err(_) => assert_ne!(data.len(), OUTPOINT_LEN),
        },
        1 => match TxOut::decode(data) {
            Ok(v) => assert_eq!(encoded(|o| v.encode_into(o)), data),
            Err(_) => assert_ne!(data.len(), TXOUT_LEN),
        },
        2 => match Witness::decode(data) {
            Ok(v) => assert_eq!(encoded(|o| v.encode_into(o)), data),
            Err(_) => assert_ne!(data.len(), WITNESS_LEN),
        },
        _ => match Coin::decode(data) {
            Ok(v) => assert_eq!(v.encode()[..], data[..]),
            Err(_) => assert!(data.len() != COIN_LEN || data[COIN_LEN - 1] > 1),
        },
    }
});
