//! Tests of the canonical codec: round trips, exact layouts, every malformed case, and a
//! deterministic property test (seeded generator: random valid values round-trip; truncations,
//! extensions and byte mutations of valid encodings never panic and re-encode exactly when they
//! decode).

use super::*;
use crate::types::VRF_OUTPUT_LEN;

/// xorshift64*: a small deterministic generator so the property tests repeat exactly.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn bytes<const N: usize>(&mut self) -> [u8; N] {
        let mut out = [0u8; N];
        for b in out.iter_mut() {
            *b = self.next() as u8;
        }
        out
    }
}

const KINDS: [TxKind; 5] = [
    TxKind::Transfer,
    TxKind::Coinbase,
    TxKind::MasternodeRegister,
    TxKind::MasternodeDeregister,
    TxKind::MasternodePayout,
];

fn random_tx(rng: &mut Rng) -> Transaction {
    let kind = KINDS[rng.below(5) as usize];
    Transaction {
        version: rng.next() as u32,
        kind,
        inputs: (0..rng.below(4))
            .map(|_| OutPoint {
                txid: rng.bytes(),
                vout: rng.next() as u32,
            })
            .collect(),
        outputs: (0..rng.below(4))
            .map(|_| TxOut {
                value: rng.next(),
                pubkey_hash: rng.bytes(),
            })
            .collect(),
        lock_time: rng.next() as u32,
        payload: (0..kind.payload_len()).map(|_| rng.next() as u8).collect(),
        witnesses: (0..rng.below(4))
            .map(|_| Witness {
                public_key: rng.bytes(),
                signature: rng.bytes(),
            })
            .collect(),
    }
}

fn random_header(rng: &mut Rng) -> BlockHeader {
    BlockHeader {
        version: rng.next() as u32,
        height: rng.next(),
        prev_hash: rng.bytes(),
        merkle_root: rng.bytes(),
        utxo_set_hash: rng.bytes(),
        timestamp: rng.next(),
        proposer: rng.bytes(),
        vrf_proof: rng.bytes(),
        vrf_output: rng.bytes::<VRF_OUTPUT_LEN>(),
        round: rng.next() as u32,
    }
}

fn random_block(rng: &mut Rng) -> Block {
    Block {
        header: random_header(rng),
        transactions: (0..rng.below(5)).map(|_| random_tx(rng)).collect(),
    }
}

fn transfer() -> Transaction {
    Transaction {
        version: 1,
        kind: TxKind::Transfer,
        inputs: vec![OutPoint {
            txid: [0x11; 32],
            vout: 2,
        }],
        outputs: vec![TxOut {
            value: 5_000,
            pubkey_hash: [0x22; 32],
        }],
        lock_time: 0,
        payload: vec![],
        witnesses: vec![Witness {
            public_key: [0x33; 32],
            signature: [0x44; 64],
        }],
    }
}

fn coinbase(height: u64) -> Transaction {
    Transaction {
        version: 1,
        kind: TxKind::Coinbase,
        inputs: vec![],
        outputs: vec![TxOut {
            value: 100,
            pubkey_hash: [7; 32],
        }],
        lock_time: 0,
        payload: height.to_le_bytes().to_vec(),
        witnesses: vec![],
    }
}

#[test]
fn transfer_layout_is_the_spec() {
    let tx = transfer();
    let enc = tx.encode();
    let mut want = Vec::new();
    want.extend_from_slice(&1u32.to_le_bytes());
    want.push(0);
    want.extend_from_slice(&1u32.to_le_bytes());
    want.extend_from_slice(&[0x11; 32]);
    want.extend_from_slice(&2u32.to_le_bytes());
    want.extend_from_slice(&1u32.to_le_bytes());
    want.extend_from_slice(&5_000u64.to_le_bytes());
    want.extend_from_slice(&[0x22; 32]);
    want.extend_from_slice(&0u32.to_le_bytes());
    want.extend_from_slice(&0u32.to_le_bytes());
    let without_witnesses = want.clone();
    want.extend_from_slice(&1u32.to_le_bytes());
    want.extend_from_slice(&[0x33; 32]);
    want.extend_from_slice(&[0x44; 64]);
    assert_eq!(enc, want);
    assert_eq!(tx.encoded_len(), enc.len());
    assert_eq!(tx.txid(), hash_in(Domain::Txid, &without_witnesses));
    assert_eq!(decode_transaction(&enc).unwrap(), tx);
}

#[test]
fn witnesses_do_not_change_the_txid() {
    let tx = transfer();
    let mut other = tx.clone();
    other.witnesses.clear();
    assert_eq!(tx.txid(), other.txid());
    other.lock_time = 1;
    assert_ne!(tx.txid(), other.txid());
}

#[test]
fn fixed_sizes() {
    let mut rng = Rng(1);
    let mut out = Vec::new();
    OutPoint::NULL.encode_into(&mut out);
    assert_eq!(out.len(), OUTPOINT_LEN);
    out.clear();
    TxOut {
        value: 1,
        pubkey_hash: [0; 32],
    }
    .encode_into(&mut out);
    assert_eq!(out.len(), TXOUT_LEN);
    out.clear();
    Witness {
        public_key: [1; 32],
        signature: [2; 64],
    }
    .encode_into(&mut out);
    assert_eq!(out.len(), WITNESS_LEN);
    assert_eq!(random_header(&mut rng).encode().len(), HEADER_LEN);
    let empty = Transaction {
        version: 0,
        kind: TxKind::Transfer,
        inputs: vec![],
        outputs: vec![],
        lock_time: 0,
        payload: vec![],
        witnesses: vec![],
    };
    assert_eq!(empty.encode().len(), MIN_TRANSACTION_LEN);
}

#[test]
fn coin_round_trip_and_bool_byte() {
    let coin = Coin {
        value: u64::MAX,
        pubkey_hash: [9; 32],
        height: 12,
        is_coinbase: true,
    };
    let enc = coin.encode();
    assert_eq!(enc.len(), COIN_LEN);
    assert_eq!(enc[48], 1);
    assert_eq!(Coin::decode(&enc).unwrap(), coin);
    let mut bad = enc;
    bad[48] = 2;
    assert_eq!(
        Coin::decode(&bad),
        Err(CodecError::InvalidBool {
            what: "coin is_coinbase",
            offset: 48,
            value: 2
        })
    );
    assert!(Coin::decode(&enc[..48]).is_err());
}

#[test]
fn small_types_round_trip_and_reject_wrong_lengths() {
    let op = OutPoint {
        txid: [3; 32],
        vout: 9,
    };
    let mut enc = Vec::new();
    op.encode_into(&mut enc);
    assert_eq!(OutPoint::decode(&enc).unwrap(), op);
    enc.push(0);
    assert!(matches!(
        OutPoint::decode(&enc),
        Err(CodecError::TrailingBytes { trailing: 1, .. })
    ));
    let w = Witness {
        public_key: [5; 32],
        signature: [6; 64],
    };
    let mut enc = Vec::new();
    w.encode_into(&mut enc);
    assert_eq!(Witness::decode(&enc).unwrap(), w);
    assert!(Witness::decode(&enc[..95]).is_err());
    let o = TxOut {
        value: 77,
        pubkey_hash: [8; 32],
    };
    let mut enc = Vec::new();
    o.encode_into(&mut enc);
    assert_eq!(TxOut::decode(&enc).unwrap(), o);
    let h = random_header(&mut Rng(5));
    assert_eq!(BlockHeader::decode(&h.encode()).unwrap(), h);
    assert_eq!(h.hash(), hash_in(Domain::BlockHeader, &h.encode()));
}

#[test]
fn every_truncation_is_rejected() {
    let block = Block {
        header: random_header(&mut Rng(2)),
        transactions: vec![coinbase(3), transfer()],
    };
    let enc = block.encode();
    for cut in 0..enc.len() {
        let err = decode_block(&enc[..cut]).unwrap_err();
        assert!(
            matches!(
                err,
                CodecError::Truncated { .. } | CodecError::CountTooLarge { .. }
            ),
            "cut {cut}: {err}"
        );
    }
    let tx = transfer().encode();
    for cut in 0..tx.len() {
        assert!(decode_transaction(&tx[..cut]).is_err());
    }
}

#[test]
fn trailing_bytes_are_rejected() {
    let mut tx = transfer().encode();
    let len = tx.len();
    tx.push(0);
    assert_eq!(
        decode_transaction(&tx),
        Err(CodecError::TrailingBytes {
            what: "transaction",
            offset: len,
            trailing: 1
        })
    );
    let block = Block {
        header: random_header(&mut Rng(3)),
        transactions: vec![],
    };
    let mut enc = block.encode();
    enc.extend_from_slice(&[0; 3]);
    assert!(matches!(
        decode_block(&enc),
        Err(CodecError::TrailingBytes {
            what: "block",
            trailing: 3,
            ..
        })
    ));
}

#[test]
fn huge_counts_are_rejected_before_allocation() {
    // inputs count u32::MAX with nothing after it.
    let mut enc = Vec::new();
    enc.extend_from_slice(&1u32.to_le_bytes());
    enc.push(0);
    enc.extend_from_slice(&u32::MAX.to_le_bytes());
    let err = decode_transaction(&enc).unwrap_err();
    assert_eq!(
        err,
        CodecError::CountTooLarge {
            what: "inputs",
            offset: 5,
            count: u32::MAX,
            min_item_len: OUTPOINT_LEN,
            remaining: 0
        }
    );
    assert!(err
        .to_string()
        .contains("inputs count 4294967295 at offset 5"));
    // A count that fits the bytes exactly is fine only if items follow; one more is too many.
    let mut block = Block {
        header: random_header(&mut Rng(4)),
        transactions: vec![],
    }
    .encode();
    block[HEADER_LEN..].copy_from_slice(&1u32.to_le_bytes());
    block.extend_from_slice(&[0u8; MIN_TRANSACTION_LEN - 1]);
    assert!(matches!(
        decode_block(&block),
        Err(CodecError::CountTooLarge {
            what: "transactions",
            ..
        })
    ));
    // Witness count too large for the remaining bytes.
    let mut tx = coinbase(1).encode();
    let n = tx.len();
    tx[n - 4..].copy_from_slice(&2u32.to_le_bytes());
    tx.extend_from_slice(&[0; WITNESS_LEN]);
    assert!(matches!(
        decode_transaction(&tx),
        Err(CodecError::CountTooLarge {
            what: "witnesses",
            count: 2,
            ..
        })
    ));
}

#[test]
fn unknown_kind_is_rejected() {
    let mut enc = transfer().encode();
    for tag in [5u8, 6, 0x80, 0xff] {
        enc[4] = tag;
        assert_eq!(
            decode_transaction(&enc),
            Err(CodecError::UnknownKind { offset: 4, tag })
        );
    }
}

#[test]
fn payload_length_must_match_the_kind() {
    // A transfer relabelled as a coinbase has payload length 0, expected 8.
    let mut enc = transfer().encode();
    enc[4] = TxKind::Coinbase as u8;
    let err = decode_transaction(&enc).unwrap_err();
    assert!(matches!(
        err,
        CodecError::PayloadLength {
            kind: TxKind::Coinbase,
            expected: 8,
            got: 0,
            ..
        }
    ));
    assert!(err.to_string().contains("expected 8"));
    // Every kind, with every length in 0..=120 other than its own.
    for kind in KINDS {
        let mut tx = coinbase(0);
        tx.kind = kind;
        for len in 0..=120usize {
            tx.payload = vec![0xab; len];
            let enc = tx.encode();
            let got = decode_transaction(&enc);
            if len == kind.payload_len() {
                assert_eq!(got.unwrap(), tx);
                assert!(tx.check_payload().is_ok());
            } else {
                assert!(matches!(got, Err(CodecError::PayloadLength { .. })));
                assert_eq!(
                    tx.check_payload().unwrap_err().to_string(),
                    got.unwrap_err().to_string()
                );
            }
        }
    }
}

#[test]
fn block_txids_come_from_the_input_bytes() {
    for seed in 1..40u64 {
        let mut rng = Rng(seed);
        let mut block = random_block(&mut rng);
        if seed == 39 {
            block.transactions = (0..PARALLEL_TXIDS + 3)
                .map(|_| random_tx(&mut rng))
                .collect();
        }
        let enc = block.encode();
        let (decoded, txids) = decode_block_with_txids(&enc).unwrap();
        assert_eq!(decoded, block);
        let want: Vec<Hash> = block.transactions.iter().map(Transaction::txid).collect();
        assert_eq!(txids, want);
        for tx in &block.transactions {
            let (d, txid) = decode_transaction_with_txid(&tx.encode()).unwrap();
            assert_eq!((d, txid), (tx.clone(), tx.txid()));
            assert_eq!(txid_of_encoded(&tx.encode()).unwrap(), tx.txid());
        }
    }
}

#[test]
fn sighash_is_the_spec_message() {
    let chain_id = [1u8; 32];
    let txid = [2u8; 32];
    let mut msg = Vec::new();
    msg.extend_from_slice(&chain_id);
    msg.push(2);
    msg.extend_from_slice(&txid);
    msg.extend_from_slice(&7u32.to_le_bytes());
    assert_eq!(msg.len(), SIGHASH_MESSAGE_LEN);
    assert_eq!(
        sighash(&chain_id, 2, &txid, 7),
        hash_in(Domain::Sighash, &msg)
    );
    assert_ne!(
        sighash(&chain_id, 1, &txid, 7),
        sighash(&chain_id, 2, &txid, 7)
    );
    assert_ne!(
        sighash(&chain_id, 2, &txid, 6),
        sighash(&chain_id, 2, &txid, 7)
    );
}

#[test]
fn sign_encoded_makes_verifiable_witnesses() {
    let mut tx = transfer();
    tx.inputs.push(OutPoint {
        txid: [0x55; 32],
        vout: 0,
    });
    let keys = [[1u8; 32], [2u8; 32]];
    let chain_id = [9u8; 32];
    let mut out = Vec::new();
    sign_encoded(&tx.encode(), &keys, &chain_id, 1, &mut out).unwrap();
    let signed = decode_transaction(&out).unwrap();
    assert_eq!(signed.txid(), tx.txid());
    assert_eq!(signed.witnesses.len(), 2);
    for (i, (w, sk)) in signed.witnesses.iter().zip(&keys).enumerate() {
        assert_eq!(w.public_key, ed25519::public_key(sk));
        let msg = signed.sighash(&chain_id, 1, i as u32);
        assert!(ed25519::verify(&w.public_key, &msg, &w.signature));
        assert!(!ed25519::verify(
            &w.public_key,
            &signed.sighash(&chain_id, 0, i as u32),
            &w.signature
        ));
    }
    let mut bad = tx.encode();
    bad.push(1);
    assert!(sign_encoded(&bad, &keys, &chain_id, 1, &mut Vec::new()).is_err());
}

#[test]
fn property_random_values_round_trip() {
    let mut rng = Rng(0x1234_5678);
    for _ in 0..500 {
        let block = random_block(&mut rng);
        let enc = block.encode();
        assert_eq!(decode_block(&enc).unwrap(), block);
        assert_eq!(Block::decode(&enc).unwrap().encode(), enc);
        for tx in &block.transactions {
            let e = tx.encode();
            assert_eq!(e.len(), tx.encoded_len());
            assert_eq!(decode_transaction(&e).unwrap(), *tx);
        }
    }
}

#[test]
fn property_mutations_never_panic_and_are_canonical() {
    let mut rng = Rng(0xdead_beef);
    for _ in 0..2_000 {
        let mut enc = random_block(&mut rng).encode();
        match rng.below(4) {
            0 => {
                let i = rng.below(enc.len() as u64) as usize;
                enc[i] = rng.next() as u8;
            }
            1 => enc.truncate(rng.below(enc.len() as u64) as usize),
            2 => {
                // Overwrite a u32 somewhere with a large or small count.
                let i = rng.below(enc.len() as u64 - 3) as usize;
                let v = [0u32, 1, 2, 255, 0x0100_0000, u32::MAX][rng.below(6) as usize];
                enc[i..i + 4].copy_from_slice(&v.to_le_bytes());
            }
            _ => enc.extend_from_slice(&rng.bytes::<3>()[..rng.below(4) as usize]),
        }
        // Whatever decodes is canonical: it re-encodes to exactly the input.
        if let Ok(block) = decode_block(&enc) {
            assert_eq!(block.encode(), enc);
        }
        if let Ok(tx) = decode_transaction(&enc[HEADER_LEN.min(enc.len())..]) {
            assert_eq!(tx.encode(), &enc[HEADER_LEN..]);
        }
    }
    // Pure noise.
    for _ in 0..2_000 {
        let len = rng.below(400) as usize;
        let noise: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        if let Ok(tx) = decode_transaction(&noise) {
            assert_eq!(tx.encode(), noise);
        }
        let _ = decode_block(&noise);
        let _ = Coin::decode(&noise);
    }
}
