//! Arbitrary bytes as an encoded transaction (docs/encoding.md): decoding never panics; what
//! decodes re-encodes to the same bytes, its txid is the same whichever way it is computed, and
//! mempool admission (`check_transactions` against an empty UTXO set, the stateless rules,
//! and the coinbase rules for a coinbase) judges it without panicking.
#![no_main]

use libfuzzer_sys::fuzz_target;
use timecoin_native::codec::{self, Reader};
use timecoin_native::types::{Transaction, TxKind};
use timecoin_native::utxo::UtxoSet;
use timecoin_native::validate::{check_coinbase, check_stateless, check_transactions};
use timecoin_native_fuzz::rules;

fuzz_target!(|data: &[u8]| {
    let decoded = codec::decode_transaction(data);
    let with_txid = codec::decode_transaction_with_txid(data);
    assert_eq!(
        decoded.is_ok(),
        with_txid.is_ok(),
        "decoders disagree on {data:02x?}"
    );
    let rules = rules();
    let set = UtxoSet::new();
    let verdicts = check_transactions(&set, &[data], &rules, 1);
    assert_eq!(verdicts.len(), 1);
    // Against an empty set every input is missing (and an input-less transaction is refused
    // for that), so nothing may pass.
    assert!(
        verdicts[0].reject.is_some(),
        "admitted against an empty UTXO set: {data:02x?}"
    );
    let Ok(tx) = decoded else {
        assert!(verdicts[0].txid.is_none());
        return;
    };
    let (tx2, txid) = with_txid.expect("checked above");
    assert_eq!(tx, tx2);
    assert_eq!(tx.encode(), data, "decode then encode is not the identity");
    assert_eq!(tx.encoded_len(), data.len());
    assert_eq!(tx.txid(), txid);
    assert_eq!(verdicts[0].txid, Some(txid));
    assert_eq!(codec::txid_of_encoded(data).expect("decodes"), txid);
    // A prefix reader stops exactly at the end of the value.
    let mut r = Reader::new(data);
    assert_eq!(Transaction::read(&mut r).expect("decodes"), tx);
    assert_eq!(r.remaining(), 0);
    assert!(tx.check_payload().is_ok());
    for height in [0, u64::from(tx.lock_time), u64::MAX] {
        let _ = check_stateless(&tx, data.len(), &rules, height);
        // `check_coinbase` is for a block's coinbase only: `apply_block` checks the kind first.
        if tx.kind == TxKind::Coinbase {
            let _ = check_coinbase(&tx, data.len(), &rules, height);
        }
    }
});
