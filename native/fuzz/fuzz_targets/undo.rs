//! Arbitrary bytes as an undo record (docs/encoding.md, "Undo record"; read back from the
//! store on a rollback): decoding never panics and re-encodes what it accepts unchanged, and a
//! rollback of the record on an empty UTXO set either fails leaving the set untouched or
//! restores exactly the coins the record spent.
#![no_main]

use libfuzzer_sys::fuzz_target;
use timecoin_native::utxo::{Undo, UtxoSet};

fuzz_target!(|data: &[u8]| {
    let decoded = Undo::decode(data);
    if let Ok(undo) = &decoded {
        assert_eq!(
            undo.encode(),
            data,
            "decode then encode is not the identity"
        );
        assert_eq!(undo.encoded_len(), data.len());
    }
    let mut set = UtxoSet::new();
    let before = set.set_hash();
    match set.rollback(data) {
        Ok(undo) => {
            assert_eq!(decoded.as_ref(), Ok(&undo));
            assert!(undo.created.is_empty(), "an empty set held a created coin");
            assert_eq!(set.len(), undo.spent.len());
            assert_eq!(set.set_hash(), undo.prior_set_hash);
        }
        Err(_) => {
            assert_eq!(set.set_hash(), before, "a refused rollback changed the set");
            assert!(set.is_empty());
        }
    }
});
