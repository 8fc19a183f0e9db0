//! Bindings of the canonical codec (docs/encoding.md): encoded bytes in and out, values as plain
//! nested tuples, in the field order of the spec:
//!
//! * outpoint `(txid, vout)`, output `(value, pubkey_hash)`, witness `(public_key, signature)`,
//!   coin `(value, pubkey_hash, height, is_coinbase)`;
//! * transaction `(version, kind, inputs, outputs, lock_time, payload, witnesses)` with the three
//!   sequences as tuples of the tuples above (lists are accepted when encoding);
//! * header `(version, height, prev_hash, merkle_root, utxo_set_hash, timestamp, proposer,
//!   vrf_proof, vrf_output, round)`; block `(header, transactions)`.
//!
//! Bytes that are not a canonical encoding raise `ValueError` with the codec's message (what,
//! where, expected vs got); a malformed tuple raises `TypeError`/`ValueError` naming the field.

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyTuple};
use rayon::prelude::*;

mod tuples;

use tuples::*;

use super::crypto::{fixed, fixed_items, type_name};
use crate::codec::{self, CodecError};
use crate::ed25519::SECRET_KEY_LEN;
use crate::hash::{Hash, HASH_LEN};
use crate::types::{BlockHeader, Coin, OutPoint, TxOut, Witness};

/// Inputs at least this long are decoded with the GIL released.
const DETACH_LEN: usize = 64 * 1024;
/// Batches of at least this many transactions are signed on all cores (~20 µs each); hashing
/// (~1 µs each) goes parallel from [`codec::PARALLEL_TXIDS`].
const PARALLEL_SIGN: usize = 64;

fn codec_err(e: CodecError) -> PyErr {
    PyValueError::new_err(e.to_string())
}

fn encoded<'py>(py: Python<'py>, encode: impl FnOnce(&mut Vec<u8>)) -> Bound<'py, PyBytes> {
    let mut out = Vec::new();
    encode(&mut out);
    PyBytes::new(py, &out)
}

/// Runs `decode` on `data`, with the GIL released when the input is large.
fn decode_with<T: Send>(
    py: Python<'_>,
    data: &[u8],
    decode: impl FnOnce(&[u8]) -> Result<T, CodecError> + Send,
) -> PyResult<T> {
    if data.len() >= DETACH_LEN {
        py.detach(|| decode(data))
    } else {
        decode(data)
    }
    .map_err(codec_err)
}

#[pyfunction]
fn encode_outpoint<'py>(
    py: Python<'py>,
    fields: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyBytes>> {
    let v = outpoint_from(fields, &Path::Root("outpoint"))?;
    Ok(encoded(py, |out| v.encode_into(out)))
}

#[pyfunction]
fn decode_outpoint<'py>(py: Python<'py>, data: &[u8]) -> PyResult<Bound<'py, PyTuple>> {
    outpoint_to(py, &OutPoint::decode(data).map_err(codec_err)?)
}

#[pyfunction]
fn encode_tx_out<'py>(
    py: Python<'py>,
    fields: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyBytes>> {
    let v = tx_out_from(fields, &Path::Root("output"))?;
    Ok(encoded(py, |out| v.encode_into(out)))
}

#[pyfunction]
fn decode_tx_out<'py>(py: Python<'py>, data: &[u8]) -> PyResult<Bound<'py, PyTuple>> {
    tx_out_to(py, &TxOut::decode(data).map_err(codec_err)?)
}

#[pyfunction]
fn encode_witness<'py>(
    py: Python<'py>,
    fields: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyBytes>> {
    let v = witness_from(fields, &Path::Root("witness"))?;
    Ok(encoded(py, |out| v.encode_into(out)))
}

#[pyfunction]
fn decode_witness<'py>(py: Python<'py>, data: &[u8]) -> PyResult<Bound<'py, PyTuple>> {
    witness_to(py, &Witness::decode(data).map_err(codec_err)?)
}

#[pyfunction]
fn encode_coin<'py>(py: Python<'py>, fields: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyBytes>> {
    let v = coin_from(fields, &Path::Root("coin"))?;
    Ok(encoded(py, |out| v.encode_into(out)))
}

#[pyfunction]
fn decode_coin<'py>(py: Python<'py>, data: &[u8]) -> PyResult<Bound<'py, PyTuple>> {
    coin_to(py, &Coin::decode(data).map_err(codec_err)?)
}

#[pyfunction]
fn encode_block_header<'py>(
    py: Python<'py>,
    fields: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyBytes>> {
    let v = header_from(fields, &Path::Root("header"))?;
    Ok(encoded(py, |out| v.encode_into(out)))
}

#[pyfunction]
fn decode_block_header<'py>(py: Python<'py>, data: &[u8]) -> PyResult<Bound<'py, PyTuple>> {
    header_to(py, &BlockHeader::decode(data).map_err(codec_err)?)
}

#[pyfunction]
fn encode_transaction<'py>(
    py: Python<'py>,
    fields: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyBytes>> {
    let v = transaction_from(fields, &Path::Root("transaction"))?;
    Ok(encoded(py, |out| v.encode_into(out)))
}

#[pyfunction]
fn decode_transaction<'py>(py: Python<'py>, data: &[u8]) -> PyResult<Bound<'py, PyTuple>> {
    let tx = decode_with(py, data, codec::decode_transaction)?;
    transaction_to(py, &tx)
}

#[pyfunction]
fn encode_block<'py>(py: Python<'py>, fields: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyBytes>> {
    let v = block_from(fields, &Path::Root("block"))?;
    Ok(PyBytes::new(py, &py.detach(|| v.encode())))
}

#[pyfunction]
fn decode_block<'py>(py: Python<'py>, data: &[u8]) -> PyResult<Bound<'py, PyTuple>> {
    let block = decode_with(py, data, codec::decode_block)?;
    block_to_tuples(py, &block)
}

#[pyfunction]
fn decode_block_with_txids<'py>(py: Python<'py>, data: &[u8]) -> PyResult<Bound<'py, PyTuple>> {
    let (block, txids) = decode_with(py, data, codec::decode_block_with_txids)?;
    let _pause = (block.transactions.len() >= GC_PAUSE_TXS).then(|| GcPause::new(py));
    let txids = PyList::new(py, txids.iter().map(|h| PyBytes::new(py, h)))?;
    (block_to(py, &block)?, txids).into_pyobject(py)
}

#[pyfunction]
fn split_block<'py>(py: Python<'py>, data: &[u8]) -> PyResult<Bound<'py, PyTuple>> {
    let (header, spans, txids) = decode_with(py, data, codec::split_block)?;
    let _pause = (spans.len() >= GC_PAUSE_TXS).then(|| GcPause::new(py));
    let raws = PyList::new(
        py,
        spans.iter().map(|&(a, b)| PyBytes::new(py, &data[a..b])),
    )?;
    let txids = PyList::new(py, txids.iter().map(|h| PyBytes::new(py, h)))?;
    (header_to(py, &header)?, raws, txids).into_pyobject(py)
}

#[pyfunction]
fn transaction_spans(py: Python<'_>, data: &[u8]) -> PyResult<Vec<(usize, usize)>> {
    decode_with(py, data, codec::transaction_spans)
}

/// Bytes of one transaction index entry: height u64 BE ‖ offset u32 BE ‖ length u32 BE
/// (`timecoin/store/txindex.py`, the module docstring).
const INDEX_ENTRY_LEN: usize = 16;

#[pyfunction]
fn index_entries<'py>(
    py: Python<'py>,
    block: &[u8],
    txids: &Bound<'py, PyAny>,
    height: u64,
) -> PyResult<Bound<'py, PyList>> {
    let spans = decode_with(py, block, codec::transaction_spans)?;
    let objs = sequence(txids, &Path::Root("txids"))?;
    if objs.len() != spans.len() {
        return Err(PyValueError::new_err(format!(
            "the block has {} transactions, {} txids given",
            spans.len(),
            objs.len()
        )));
    }
    let ids = byte_strings("txids", &objs)?;
    if let Some(i) = ids.iter().position(|t| t.len() != HASH_LEN) {
        return Err(PyValueError::new_err(format!(
            "txids[{i}] must be {HASH_LEN} bytes, not {}",
            ids[i].len()
        )));
    }
    let mut order: Vec<usize> = (0..ids.len()).collect();
    // Equal txids (a block the codec decodes, that validation would refuse) keep block order.
    order.sort_unstable_by(|&a, &b| ids[a].cmp(ids[b]).then(a.cmp(&b)));
    let _pause = (order.len() >= GC_PAUSE_TXS).then(|| GcPause::new(py));
    let entry = |i: usize| -> PyResult<Bound<'py, PyTuple>> {
        let (offset, length) = spans[i];
        let mut e = [0u8; INDEX_ENTRY_LEN];
        e[..8].copy_from_slice(&height.to_be_bytes());
        e[8..12].copy_from_slice(&u32::try_from(offset).map_err(codec_err_len)?.to_be_bytes());
        e[12..].copy_from_slice(&u32::try_from(length).map_err(codec_err_len)?.to_be_bytes());
        PyTuple::new(py, [objs[i].clone(), PyBytes::new(py, &e).into_any()])
    };
    let entries = order.into_iter().map(entry).collect::<PyResult<Vec<_>>>()?;
    PyList::new(py, entries)
}

fn codec_err_len(_: std::num::TryFromIntError) -> PyErr {
    PyValueError::new_err("a transaction span does not fit the index entry's u32")
}

#[pyfunction]
fn txid<'py>(py: Python<'py>, transaction: &[u8]) -> PyResult<Bound<'py, PyBytes>> {
    let h = decode_with(py, transaction, codec::txid_of_encoded)?;
    Ok(PyBytes::new(py, &h))
}

/// Borrowed byte strings of a list or tuple of `bytes`.
fn byte_strings<'a>(what: &str, items: &'a [Bound<'_, PyAny>]) -> PyResult<Vec<&'a [u8]>> {
    items
        .iter()
        .enumerate()
        .map(|(i, x)| {
            x.cast::<PyBytes>().map(|b| b.as_bytes()).map_err(|_| {
                PyTypeError::new_err(format!("{what}[{i}] must be bytes, not {}", type_name(x)))
            })
        })
        .collect()
}

#[pyfunction]
#[pyo3(signature = (transactions, parallel = true))]
fn txids<'py>(
    py: Python<'py>,
    transactions: &Bound<'py, PyAny>,
    parallel: bool,
) -> PyResult<Vec<Bound<'py, PyBytes>>> {
    let objs = sequence(transactions, &Path::Root("transactions"))?;
    let txs = byte_strings("transactions", &objs)?;
    let result: Result<Vec<Hash>, (usize, CodecError)> = py.detach(|| {
        let one = |(i, tx): (usize, &&[u8])| codec::txid_of_encoded(tx).map_err(|e| (i, e));
        if parallel && txs.len() >= codec::PARALLEL_TXIDS {
            txs.par_iter().enumerate().map(one).collect()
        } else {
            txs.iter().enumerate().map(one).collect()
        }
    });
    let hashes =
        result.map_err(|(i, e)| PyValueError::new_err(format!("transactions[{i}]: {e}")))?;
    Ok(hashes.iter().map(|h| PyBytes::new(py, h)).collect())
}

#[pyfunction]
fn block_hash<'py>(py: Python<'py>, header: &[u8]) -> PyResult<Bound<'py, PyBytes>> {
    let h = BlockHeader::decode(header).map_err(codec_err)?;
    Ok(PyBytes::new(py, &h.hash()))
}

#[pyfunction]
fn sighash<'py>(
    py: Python<'py>,
    chain_id: &[u8],
    network: &Bound<'py, PyAny>,
    txid: &[u8],
    index: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyBytes>> {
    let network = network_arg(network)?;
    let index = u32_field(index, &Path::Root("index"))?;
    let chain_id = fixed::<HASH_LEN>("chain_id", chain_id)?;
    let txid = fixed::<HASH_LEN>("txid", txid)?;
    Ok(PyBytes::new(
        py,
        &codec::sighash(chain_id, network, txid, index),
    ))
}

/// The network byte of a sighash: an int in 0..=255 (0 mainnet, 1 testnet, 2 devnet are the
/// defined ones; the codec hashes whatever byte it is given).
fn network_arg(obj: &Bound<'_, PyAny>) -> PyResult<u8> {
    int(obj, &Path::Root("network"), "0..=255 (u8)")
}

/// Splits `data` into consecutive pieces of the u32 little-endian `lengths`, which must add up
/// to exactly `data.len()`.
fn split_by_lengths<'a>(
    what: &str,
    data: &'a [u8],
    lengths_name: &str,
    lengths: &[u8],
    unit: usize,
) -> PyResult<Vec<&'a [u8]>> {
    let lens = fixed_items::<4>(lengths_name, lengths)?;
    let mut out = Vec::with_capacity(lens.len());
    let mut offset = 0usize;
    for (i, len) in lens.iter().enumerate() {
        let end = (u32::from_le_bytes(*len) as usize)
            .checked_mul(unit)
            .and_then(|n| offset.checked_add(n))
            .filter(|&end| end <= data.len())
            .ok_or_else(|| {
                PyValueError::new_err(format!(
                    "{lengths_name}[0..={i}] add up to more than the {} bytes of {what}",
                    data.len()
                ))
            })?;
        out.push(&data[offset..end]);
        offset = end;
    }
    if offset != data.len() {
        return Err(PyValueError::new_err(format!(
            "{lengths_name} add up to {offset} bytes but {what} has {}",
            data.len()
        )));
    }
    Ok(out)
}

#[pyfunction]
#[pyo3(signature = (
    transactions, transaction_lengths, secret_keys, key_counts, chain_id, network, parallel = true
))]
#[allow(clippy::too_many_arguments)]
fn sign_transactions<'py>(
    py: Python<'py>,
    transactions: &[u8],
    transaction_lengths: &[u8],
    secret_keys: &[u8],
    key_counts: &[u8],
    chain_id: &[u8],
    network: &Bound<'py, PyAny>,
    parallel: bool,
) -> PyResult<Vec<Bound<'py, PyBytes>>> {
    let network = network_arg(network)?;
    let chain_id = fixed::<HASH_LEN>("chain_id", chain_id)?;
    let txs = split_by_lengths(
        "transactions",
        transactions,
        "transaction_lengths",
        transaction_lengths,
        1,
    )?;
    let key_bytes = split_by_lengths(
        "secret_keys",
        secret_keys,
        "key_counts",
        key_counts,
        SECRET_KEY_LEN,
    )?;
    if txs.len() != key_bytes.len() {
        return Err(PyValueError::new_err(format!(
            "batch sizes differ: {} transaction lengths, {} key counts",
            txs.len(),
            key_bytes.len()
        )));
    }
    let result: Result<Vec<Vec<u8>>, (usize, CodecError)> = py.detach(|| {
        let one = |(i, (tx, keys)): (usize, (&&[u8], &&[u8]))| {
            // Exact: split_by_lengths cut `keys` to a multiple of SECRET_KEY_LEN.
            let (keys, _) = keys.as_chunks::<SECRET_KEY_LEN>();
            let mut out = Vec::new();
            codec::sign_encoded(tx, keys, chain_id, network, &mut out)
                .map(|()| out)
                .map_err(|e| (i, e))
        };
        if parallel && txs.len() >= PARALLEL_SIGN {
            txs.par_iter()
                .zip(&key_bytes)
                .enumerate()
                .map(one)
                .collect()
        } else {
            txs.iter().zip(&key_bytes).enumerate().map(one).collect()
        }
    });
    let signed =
        result.map_err(|(i, e)| PyValueError::new_err(format!("transactions[{i}]: {e}")))?;
    Ok(signed.iter().map(|tx| PyBytes::new(py, tx)).collect())
}

pub(super) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(encode_outpoint, m)?)?;
    m.add_function(wrap_pyfunction!(decode_outpoint, m)?)?;
    m.add_function(wrap_pyfunction!(encode_tx_out, m)?)?;
    m.add_function(wrap_pyfunction!(decode_tx_out, m)?)?;
    m.add_function(wrap_pyfunction!(encode_witness, m)?)?;
    m.add_function(wrap_pyfunction!(decode_witness, m)?)?;
    m.add_function(wrap_pyfunction!(encode_coin, m)?)?;
    m.add_function(wrap_pyfunction!(decode_coin, m)?)?;
    m.add_function(wrap_pyfunction!(encode_block_header, m)?)?;
    m.add_function(wrap_pyfunction!(decode_block_header, m)?)?;
    m.add_function(wrap_pyfunction!(encode_transaction, m)?)?;
    m.add_function(wrap_pyfunction!(decode_transaction, m)?)?;
    m.add_function(wrap_pyfunction!(encode_block, m)?)?;
    m.add_function(wrap_pyfunction!(decode_block, m)?)?;
    m.add_function(wrap_pyfunction!(decode_block_with_txids, m)?)?;
    m.add_function(wrap_pyfunction!(split_block, m)?)?;
    m.add_function(wrap_pyfunction!(transaction_spans, m)?)?;
    m.add_function(wrap_pyfunction!(index_entries, m)?)?;
    m.add_function(wrap_pyfunction!(txid, m)?)?;
    m.add_function(wrap_pyfunction!(txids, m)?)?;
    m.add_function(wrap_pyfunction!(block_hash, m)?)?;
    m.add_function(wrap_pyfunction!(sighash, m)?)?;
    m.add_function(wrap_pyfunction!(sign_transactions, m)?)?;
    Ok(())
}
