//! Arbitrary bytes as an encoded block (docs/encoding.md): decoding never panics; the three
//! block decoders (`decode_block`, `decode_block_with_txids`, `split_block`) agree on what
//! decodes, on the txids and on the transactions' byte ranges; what decodes re-encodes to the
//! same bytes; and `apply_block` against an empty UTXO set judges it without panicking, leaving
//! the set unchanged when it refuses the block.
#![no_main]

use libfuzzer_sys::fuzz_target;
use timecoin_native::apply::apply_block;
use timecoin_native::codec;
use timecoin_native::utxo::UtxoSet;
use timecoin_native_fuzz::rules;

fuzz_target!(|data: &[u8]| {
    let block = codec::decode_block(data);
    let with_txids = codec::decode_block_with_txids(data);
    let split = codec::split_block(data);
    assert_eq!(block.is_ok(), with_txids.is_ok());
    assert_eq!(block.is_ok(), split.is_ok());
    let mut set = UtxoSet::new();
    let empty_hash = set.set_hash();
    let applied = apply_block(&mut set, data, &rules(), true);
    if applied.is_err() {
        assert_eq!(
            set.set_hash(),
            empty_hash,
            "a rejected block changed the set"
        );
        assert!(set.is_empty());
    }
    let Ok(block) = block else {
        if let Err(e) = split {
            assert_eq!(Err(e), codec::decode_block(data).map(|_| ()));
        }
        return;
    };
    let (block2, txids) = with_txids.expect("checked above");
    let (header, spans, split_txids) = split.expect("checked above");
    assert_eq!(block, block2);
    assert_eq!(header, block.header);
    assert_eq!(txids, split_txids);
    assert_eq!(
        block.encode(),
        data,
        "decode then encode is not the identity"
    );
    assert_eq!(block.transactions.len(), txids.len());
    assert_eq!(spans.len(), txids.len());
    for ((tx, txid), &(start, end)) in block.transactions.iter().zip(&txids).zip(&spans) {
        assert_eq!(tx.txid(), *txid);
        assert_eq!(
            codec::decode_transaction(&data[start..end]).as_ref(),
            Ok(tx)
        );
    }
});
