//! Tests of validation and block application on real signed transactions (the Python suite in
//! tests/unit/test_validation.py covers every rejection code; these cover the Rust API).

use super::*;
use crate::apply::{apply_block, commit_prepared, prepare_block, SwapError};
use crate::codec::sighash;
use crate::types::{Block, BlockHeader, Coin, OutPoint, TxOut, Witness};
use crate::utxo::{outpoint_key, UtxoSet};

const CHAIN: Hash = [42; 32];

fn rules() -> LedgerRules {
    LedgerRules {
        chain_id: CHAIN,
        network: 2,
        dust_limit: 546,
        min_fee_base: 1_000,
        min_fee_per_mille: 1,
        max_tx_size: 1_000_000,
        max_block_size: 64_000_000,
    }
}

fn seed(i: u32) -> [u8; 32] {
    crate::hash::blake3(&i.to_le_bytes())
}

fn pkh(i: u32) -> Hash {
    hash_in(Domain::PublicKey, &ed25519::public_key(&seed(i)))
}

/// A transfer spending `inputs` (each owned by key `owner`) to `outputs`, signed.
fn transfer(inputs: &[(OutPoint, u32)], outputs: &[(u64, u32)]) -> Transaction {
    let mut tx = Transaction {
        version: 1,
        kind: TxKind::Transfer,
        inputs: inputs.iter().map(|(o, _)| *o).collect(),
        outputs: outputs
            .iter()
            .map(|&(value, owner)| TxOut {
                value,
                pubkey_hash: pkh(owner),
            })
            .collect(),
        lock_time: 0,
        payload: vec![],
        witnesses: vec![],
    };
    let txid = tx.txid();
    tx.witnesses = inputs
        .iter()
        .enumerate()
        .map(|(i, (_, owner))| Witness {
            public_key: ed25519::public_key(&seed(*owner)),
            signature: ed25519::sign(&seed(*owner), &sighash(&CHAIN, 2, &txid, i as u32)),
        })
        .collect();
    tx
}

fn coinbase(height: u64) -> Transaction {
    Transaction {
        version: 1,
        kind: TxKind::Coinbase,
        inputs: vec![],
        outputs: vec![TxOut {
            value: 100,
            pubkey_hash: pkh(0),
        }],
        lock_time: 0,
        payload: height.to_le_bytes().to_vec(),
        witnesses: vec![],
    }
}

/// A block at `height` over `set` with its txs sorted and a correct merkle root and set hash.
fn block(set: &UtxoSet, height: u64, mut txs: Vec<Transaction>) -> Vec<u8> {
    txs.sort_by_key(|t| t.txid());
    txs.insert(0, coinbase(height));
    let txids: Vec<Hash> = txs.iter().map(|t| t.txid()).collect();
    let mut b = Block {
        header: BlockHeader {
            version: 1,
            height,
            prev_hash: [0; 32],
            merkle_root: crate::merkle::root(&txids, false),
            utxo_set_hash: [0; 32],
            timestamp: 0,
            proposer: [0; 32],
            vrf_proof: [0; 80],
            vrf_output: [0; 64],
            round: 0,
        },
        transactions: txs,
    };
    let mut scratch = set.clone();
    if apply_block(&mut scratch, &b.encode(), &rules(), false).is_ok() {
        b.header.utxo_set_hash = scratch.set_hash();
    }
    b.encode()
}

fn funded(n: u32, value: u64) -> (UtxoSet, Vec<OutPoint>) {
    let mut set = UtxoSet::new();
    let ops: Vec<OutPoint> = (0..n)
        .map(|i| OutPoint {
            txid: crate::hash::blake3(&[i as u8, 0xfe]),
            vout: i,
        })
        .collect();
    let entries: Vec<_> = ops
        .iter()
        .enumerate()
        .map(|(i, op)| {
            let coin = Coin {
                value,
                pubkey_hash: pkh(i as u32),
                height: 0,
                is_coinbase: false,
            };
            (outpoint_key(op), coin.encode())
        })
        .collect();
    set.load(&entries).unwrap();
    (set, ops)
}

fn unchanged(set: &UtxoSet, before: &UtxoSet) {
    assert_eq!(set.state(), before.state());
    assert_eq!(set.len(), before.len());
    assert_eq!(set.dirty_count(), before.dirty_count());
}

/// A transfer of `coin` (key 0's) into outputs to keys 5 and 6, and a child spending the second.
fn parent_and_child(coin: OutPoint) -> (Transaction, Transaction) {
    let parent = transfer(&[(coin, 0)], &[(50_000, 5), (40_000, 6)]);
    let child = transfer(
        &[(
            OutPoint {
                txid: parent.txid(),
                vout: 1,
            },
            6,
        )],
        &[(30_000, 7)],
    );
    (parent, child)
}

#[test]
fn block_with_child_before_parent_applies_and_rolls_back() {
    let (mut set, ops) = funded(4, 100_000);
    let (parent, child) = parent_and_child(ops[0]);
    let other = transfer(&[(ops[1], 1), (ops[2], 2)], &[(190_000, 8)]);
    let raw = block(&set, 1, vec![parent.clone(), child.clone(), other]);
    let before = set.clone();
    let applied = apply_block(&mut set, &raw, &rules(), true).unwrap();
    assert_eq!(
        applied.fees,
        (100_000 - 90_000) + (40_000 - 30_000) + (200_000 - 190_000)
    );
    assert_eq!(applied.txids.len(), 4);
    // 4 − 3 spent from the set + coinbase, parent's vout 0, child, other.
    assert_eq!(set.len(), 1 + 4);
    assert!(!set.contains(&outpoint_key(&OutPoint {
        txid: parent.txid(),
        vout: 1
    })));
    let delta = set.take_delta();
    assert_eq!(delta.len(), 3 + 4);
    set.rollback(&applied.undo).unwrap();
    assert_eq!(set.state(), before.state());
    assert_eq!(set.len(), before.len());
    let delta = set.take_delta();
    assert_eq!(delta.iter().filter(|(_, c)| c.is_none()).count(), 4);
    assert_eq!(delta.iter().filter(|(_, c)| c.is_some()).count(), 3);
}

#[test]
fn prepared_block_commits_as_apply_would_and_only_on_its_generation() {
    let (mut set, ops) = funded(4, 100_000);
    let (parent, child) = parent_and_child(ops[0]);
    let raw = block(&set, 1, vec![parent.clone(), child]);
    let before = set.clone();
    let prepared = prepare_block(&set, &raw, &rules(), true).unwrap();
    unchanged(&set, &before);
    assert_eq!(set.generation(), prepared.generation);
    // Lookups after the block: spent coins gone, kept outputs there, spent outputs not.
    let spent = outpoint_key(&ops[0]);
    assert!(set.get(&spent).is_some() && prepared.coin_after(&set, &spent).is_none());
    let kept = outpoint_key(&OutPoint {
        txid: parent.txid(),
        vout: 0,
    });
    assert!(set.get(&kept).is_none() && prepared.coin_after(&set, &kept).is_some());
    let used = outpoint_key(&OutPoint {
        txid: parent.txid(),
        vout: 1,
    });
    assert!(prepared.coin_after(&set, &used).is_none());
    let untouched = outpoint_key(&ops[1]);
    assert_eq!(prepared.coin_after(&set, &untouched), set.get(&untouched));

    let mut applied_set = before.clone();
    let applied = apply_block(&mut applied_set, &raw, &rules(), true).unwrap();
    let committed = commit_prepared(&mut set, &prepared).unwrap();
    assert_eq!(committed, applied);
    assert_eq!(set.state(), applied_set.state());
    assert_eq!(set.take_delta(), applied_set.take_delta());
    assert_eq!(prepared.utxo_set_hash(), set.set_hash());
    // Committing it again, or after any other change, is refused and changes nothing.
    let after = set.clone();
    let err = commit_prepared(&mut set, &prepared).unwrap_err();
    assert_eq!(err.prepared_at, before.generation());
    unchanged(&set, &after);
    set.rollback(&committed.undo).unwrap();
    assert_eq!(set.state(), before.state());
    assert!(commit_prepared(&mut set, &prepared).is_err());
}

#[test]
fn rejections_leave_the_set_unchanged() {
    let (mut set, ops) = funded(4, 100_000);
    let before = set.clone();
    let expect = |set: &mut UtxoSet, raw: Vec<u8>, code: RejectCode| {
        let err = apply_block(set, &raw, &rules(), true).unwrap_err();
        assert_eq!(err.code, code, "{err}");
        unchanged(set, &before);
    };
    let a = transfer(&[(ops[0], 0)], &[(90_000, 5)]);
    let b = transfer(&[(ops[0], 0)], &[(80_000, 6)]);
    let raw = block(&set, 1, vec![a.clone(), b]);
    expect(&mut set, raw, RejectCode::DoubleSpendInBlock);
    let mut bad_sig = transfer(&[(ops[1], 1)], &[(90_000, 5)]);
    bad_sig.witnesses[0].signature[5] ^= 1;
    let raw = block(&set, 1, vec![a.clone(), bad_sig.clone()]);
    expect(&mut set, raw, RejectCode::BadSignature);
    let wrong_key = transfer(&[(ops[1], 2)], &[(90_000, 5)]);
    let raw = block(&set, 1, vec![wrong_key]);
    expect(&mut set, raw, RejectCode::WrongKey);
    let missing = transfer(
        &[(
            OutPoint {
                txid: [9; 32],
                vout: 0,
            },
            1,
        )],
        &[(90_000, 5)],
    );
    let raw = block(&set, 1, vec![missing.clone()]);
    expect(&mut set, raw, RejectCode::MissingInput);
    // Signatures and coins are checked side by side; a coin error still wins, wherever the
    // bad signature is in the block.
    let raw = block(&set, 1, vec![missing, bad_sig.clone()]);
    expect(&mut set, raw, RejectCode::MissingInput);
    let cheap = transfer(&[(ops[1], 1)], &[(99_500, 5)]);
    let raw = block(&set, 1, vec![cheap]);
    expect(&mut set, raw, RejectCode::InsufficientFee);
    let mut raw = block(&set, 1, vec![a.clone()]);
    raw[4 + 8 + 32 + 32] ^= 1; // utxo_set_hash
    expect(&mut set, raw, RejectCode::BadUtxoHash);
    let mut raw = block(&set, 1, vec![a.clone()]);
    raw[4 + 8 + 32] ^= 1; // merkle_root
    expect(&mut set, raw, RejectCode::BadMerkleRoot);
    // Spent in one block, then again in the next.
    let raw = block(&set, 1, vec![a.clone()]);
    apply_block(&mut set, &raw, &rules(), true).unwrap();
    let again = transfer(&[(ops[0], 0)], &[(70_000, 5)]);
    let raw = block(&set, 2, vec![again]);
    let err = apply_block(&mut set, &raw, &rules(), true).unwrap_err();
    assert_eq!(err.code, RejectCode::MissingInput);
}

#[test]
fn mempool_verdicts() {
    let (set, ops) = funded(3, 100_000);
    let good = transfer(&[(ops[0], 0)], &[(90_000, 5)]);
    let mut bad = transfer(&[(ops[1], 1)], &[(90_000, 5)]);
    bad.witnesses[0].signature[0] ^= 1;
    let dust = transfer(&[(ops[2], 2)], &[(10, 5)]);
    let raws = [good.encode(), bad.encode(), dust.encode(), b"junk".to_vec()];
    let slices: Vec<&[u8]> = raws.iter().map(|r| r.as_slice()).collect();
    let v = check_transactions(&set, &slices, &rules(), 1);
    assert!(v[0].reject.is_none());
    assert_eq!(v[0].fee, 10_000);
    assert_eq!(v[0].txid, Some(good.txid()));
    assert_eq!(v[1].reject.as_ref().unwrap().0, RejectCode::BadSignature);
    assert_eq!(v[2].reject.as_ref().unwrap().0, RejectCode::DustOutput);
    assert_eq!(v[3].reject.as_ref().unwrap().0, RejectCode::BadEncoding);
    assert_eq!(v[3].txid, None);
}

/// DESIGN §4: 0.1 % of the value sent to others, base only on change and self-sends. 1 TIME
/// (10^8 sat) from a 1,000,000 TIME coin with the change back to the spending address costs
/// 1,000 sat + 0.1 % of 1 TIME (101,000 sat); the old rule (0.1 % of every output, change
/// included) asked ~1,000 TIME.
#[test]
fn fee_is_charged_on_the_value_sent_to_others() {
    const TIME: u64 = 100_000_000;
    let (set, ops) = funded(2, 1_000_000 * TIME);
    let fee = 1_000 + TIME / 1000;
    let change = 1_000_000 * TIME - TIME - fee;
    let pay = transfer(&[(ops[0], 0)], &[(TIME, 5), (change, 0)]);
    let short = transfer(&[(ops[0], 0)], &[(TIME, 5), (change + 1, 0)]);
    // Everything back to the spending address: the base fee only.
    let self_send = transfer(&[(ops[1], 1)], &[(1_000_000 * TIME - 1_000, 1)]);
    let self_short = transfer(&[(ops[1], 1)], &[(1_000_000 * TIME - 999, 1)]);
    let raws = [
        pay.encode(),
        short.encode(),
        self_send.encode(),
        self_short.encode(),
    ];
    let slices: Vec<&[u8]> = raws.iter().map(|r| r.as_slice()).collect();
    let v = check_transactions(&set, &slices, &rules(), 1);
    assert!(v[0].reject.is_none(), "{:?}", v[0].reject);
    assert_eq!(v[0].fee, 101_000);
    let (code, message) = v[1].reject.clone().unwrap();
    assert_eq!(code, RejectCode::InsufficientFee);
    assert!(
        message.contains("100000000 sat sent to others"),
        "{message}"
    );
    assert!(v[2].reject.is_none(), "{:?}", v[2].reject);
    assert_eq!(v[2].fee, 1_000);
    assert_eq!(v[3].reject.as_ref().unwrap().0, RejectCode::InsufficientFee);
    // The same verdicts in a block.
    let mut applied = set.clone();
    let raw = block(&set, 1, vec![pay, self_send]);
    let done = apply_block(&mut applied, &raw, &rules(), true).unwrap();
    assert_eq!(done.fees, 101_000 + 1_000);
    for cheap in [short, self_short] {
        let mut scratch = set.clone();
        let raw = block(&set, 1, vec![cheap]);
        let err = apply_block(&mut scratch, &raw, &rules(), true).unwrap_err();
        assert_eq!(err.code, RejectCode::InsufficientFee, "{err}");
    }
}

#[test]
fn sent_to_others_skips_every_address_spent_from() {
    let out = |value, owner| TxOut {
        value,
        pubkey_hash: pkh(owner),
    };
    let outputs = [out(10, 1), out(20, 2), out(40, 3), out(80, 1)];
    assert_eq!(sent_to_others(&outputs, &[]), 150);
    assert_eq!(sent_to_others(&outputs, &[pkh(1)]), 60);
    assert_eq!(sent_to_others(&outputs, &[pkh(3), pkh(1), pkh(3)]), 20);
    // Above LINEAR_SPENDERS inputs the lookup is hashed: same answers.
    let many: Vec<Hash> = (4..40).map(pkh).chain([pkh(2)]).collect();
    assert!(many.len() > LINEAR_SPENDERS);
    assert_eq!(sent_to_others(&outputs, &many), 130);
    assert_eq!(
        sent_to_others(&[out(u64::MAX, 1), out(1, 2)], &[]),
        u64::MAX
    );
}

#[test]
fn min_fee_is_base_plus_per_mille() {
    let r = rules();
    assert_eq!(r.min_fee(0), 1_000);
    assert_eq!(r.min_fee(999), 1_000);
    assert_eq!(r.min_fee(1_000_000), 2_000);
    assert_eq!(r.min_fee(u64::MAX), 1_000 + u64::MAX as u128 / 1000);
}

#[test]
fn codes_are_unique() {
    let mut codes: Vec<&str> = RejectCode::ALL.iter().map(|c| c.as_str()).collect();
    codes.sort();
    codes.dedup();
    assert_eq!(codes.len(), RejectCode::ALL.len());
}

#[test]
fn prepared_draft_under_the_final_header_is_what_preparing_the_final_block_gives() {
    let (set, ops) = funded(4, 100_000);
    let (parent, child) = parent_and_child(ops[0]);
    let raw = block(&set, 1, vec![parent, child]);
    let mut block = crate::codec::decode_block(&raw).unwrap();
    let final_header = block.header.clone();
    block.header.utxo_set_hash = [0; 32];
    block.header.timestamp = 7; // a draft: everything but the set hash may differ too
    let draft = prepare_block(&set, &block.encode(), &rules(), false).unwrap();
    let rehead = draft.with_header(&final_header).unwrap();
    assert_eq!(rehead, prepare_block(&set, &raw, &rules(), true).unwrap());
    assert_eq!(rehead.applied.block_hash, final_header.hash());

    let mut other = final_header.clone();
    other.utxo_set_hash = [1; 32];
    assert!(draft
        .with_header(&other)
        .unwrap_err()
        .contains("UTXO set hash"));
    let mut other = final_header.clone();
    other.merkle_root = [2; 32];
    assert!(draft
        .with_header(&other)
        .unwrap_err()
        .contains("merkle root"));
    let mut other = final_header;
    other.height = 2;
    assert!(draft.with_header(&other).unwrap_err().contains("height"));
}

#[test]
fn prepared_draft_with_the_paying_coinbase_is_what_preparing_the_final_block_gives() {
    let (set, ops) = funded(4, 100_000);
    let (parent, child) = parent_and_child(ops[0]);
    let spend_two = transfer(&[(ops[1], 1)], &[(40_000, 7), (50_000, 8)]);
    let txs = vec![parent, child, spend_two];
    let draft_raw = block(&set, 1, txs.clone());
    let draft = prepare_block(&set, &draft_raw, &rules(), false).unwrap();

    // The final block: the same transactions under a coinbase with two outputs and other values.
    let mut paying = coinbase(1);
    paying.outputs = vec![
        TxOut {
            value: 100 + draft.applied.fees - 1_000,
            pubkey_hash: pkh(0),
        },
        TxOut {
            value: 1_000,
            pubkey_hash: pkh(9),
        },
    ];
    let mut final_block = crate::codec::decode_block(&draft_raw).unwrap();
    final_block.transactions[0] = paying.clone();
    let txids: Vec<Hash> = final_block.transactions.iter().map(|t| t.txid()).collect();
    final_block.header.merkle_root = crate::merkle::root(&txids, false);
    let mut scratch = set.clone();
    apply_block(&mut scratch, &final_block.encode(), &rules(), false).unwrap();
    final_block.header.utxo_set_hash = scratch.set_hash();
    let final_raw = final_block.encode();

    let swapped = draft
        .with_coinbase(&set, &paying.encode(), &rules())
        .unwrap();
    let want = prepare_block(&set, &final_raw, &rules(), true).unwrap();
    assert_eq!(swapped.utxo_set_hash(), want.utxo_set_hash());
    assert_eq!(swapped.applied.txids, want.applied.txids);
    assert_eq!(
        swapped.applied.coinbase_outputs,
        want.applied.coinbase_outputs
    );
    assert_eq!(swapped.applied.fees, want.applied.fees);
    // Under the final header it is exactly the final block's preparation, and commits as it.
    let reheaded = swapped.with_header(&final_block.header).unwrap();
    assert_eq!(reheaded, want);
    let mut committed = set.clone();
    let applied = commit_prepared(&mut committed, &reheaded).unwrap();
    assert_eq!(committed.set_hash(), final_block.header.utxo_set_hash);
    assert_eq!(applied.undo, {
        let mut other = set.clone();
        apply_block(&mut other, &final_raw, &rules(), true)
            .unwrap()
            .undo
    });

    // An invalid coinbase is the block's error at index 0; nothing is kept.
    let mut bad = paying.clone();
    bad.payload = 2u64.to_le_bytes().to_vec();
    match draft.with_coinbase(&set, &bad.encode(), &rules()) {
        Err(SwapError::Invalid(e)) => {
            assert_eq!(
                (e.code, e.tx_index),
                (RejectCode::BadCoinbaseHeight, Some(0))
            )
        }
        other => panic!("{other:?}"),
    }
    match draft.with_coinbase(&set, &txs[2].encode(), &rules()) {
        Err(SwapError::Invalid(e)) => assert_eq!(e.code, RejectCode::CoinbaseNotFirst),
        other => panic!("{other:?}"),
    }
    let tight = LedgerRules {
        max_block_size: draft_raw.len(),
        ..rules()
    };
    match draft.with_coinbase(&set, &paying.encode(), &tight) {
        Err(SwapError::Invalid(e)) => assert_eq!(e.code, RejectCode::BlockTooLarge),
        other => panic!("{other:?}"),
    }
    // A set that changed since: refused.
    let mut moved = set.clone();
    apply_block(&mut moved, &draft_raw, &rules(), false).unwrap();
    assert!(matches!(
        draft.with_coinbase(&moved, &paying.encode(), &rules()),
        Err(SwapError::Refused(_))
    ));
}
