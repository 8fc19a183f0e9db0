//! Arbitrary bytes as an encoded block header (296 bytes, docs/encoding.md): decoding never
//! panics, accepts exactly the inputs of the header's length and re-encodes them unchanged,
//! and the block hash is the hash of those bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use timecoin_native::hash::{hash_in, Domain};
use timecoin_native::types::{BlockHeader, HEADER_LEN};

fuzz_target!(|data: &[u8]| {
    match BlockHeader::decode(data) {
        Ok(header) => {
            assert_eq!(data.len(), HEADER_LEN);
            assert_eq!(header.encode(), data);
            assert_eq!(header.hash(), hash_in(Domain::BlockHeader, data));
        }
        Err(_) => assert_ne!(data.len(), HEADER_LEN, "a header-length input was refused"),
    }
});
