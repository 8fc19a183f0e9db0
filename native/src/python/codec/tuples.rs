//! Plain tuples ↔ consensus types for the codec bindings (field order of docs/encoding.md), with
//! errors that name the offending field (`transaction.inputs[2].txid must be 32 bytes, got 31`).

use std::fmt;

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyBytes, PyInt, PyList, PyTuple};

use super::super::crypto::type_name;
use crate::types::{Block, BlockHeader, Coin, OutPoint, Transaction, TxKind, TxOut, Witness};

/// Where a field sits in the value being encoded, formatted only for error messages.
#[derive(Clone, Copy)]
pub(super) enum Path<'a> {
    Root(&'static str),
    Field(&'a Path<'a>, &'static str),
    Index(&'a Path<'a>, usize),
}

impl fmt::Display for Path<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Path::Root(name) => f.write_str(name),
            Path::Field(parent, name) => write!(f, "{parent}.{name}"),
            Path::Index(parent, i) => write!(f, "{parent}[{i}]"),
        }
    }
}

/// `obj` as a tuple of exactly `n` fields.
pub(super) fn record<'py>(
    obj: &Bound<'py, PyAny>,
    path: &Path<'_>,
    n: usize,
) -> PyResult<Bound<'py, PyTuple>> {
    let t = obj.cast::<PyTuple>().map_err(|_| {
        PyTypeError::new_err(format!("{path} must be a tuple, not {}", type_name(obj)))
    })?;
    if t.len() != n {
        return Err(PyValueError::new_err(format!(
            "{path} must be a tuple of {n} fields, got {}",
            t.len()
        )));
    }
    Ok(t.clone())
}

/// The items of a tuple or list, at most u32::MAX of them (the wire count is a u32).
pub(super) fn sequence<'py>(
    obj: &Bound<'py, PyAny>,
    path: &Path<'_>,
) -> PyResult<Vec<Bound<'py, PyAny>>> {
    let items: Vec<Bound<'py, PyAny>> = if let Ok(t) = obj.cast::<PyTuple>() {
        t.iter().collect()
    } else if let Ok(l) = obj.cast::<PyList>() {
        l.iter().collect()
    } else {
        return Err(PyTypeError::new_err(format!(
            "{path} must be a tuple or list, not {}",
            type_name(obj)
        )));
    };
    if u32::try_from(items.len()).is_err() {
        return Err(PyValueError::new_err(format!(
            "{path} has {} items, over the u32 count limit",
            items.len()
        )));
    }
    Ok(items)
}

/// An int (not a bool) that fits `T`.
pub(super) fn int<'py, T>(obj: &Bound<'py, PyAny>, path: &Path<'_>, range: &str) -> PyResult<T>
where
    T: for<'a> FromPyObject<'a, 'py>,
{
    if obj.cast::<PyInt>().is_err() || obj.cast::<PyBool>().is_ok() {
        return Err(PyTypeError::new_err(format!(
            "{path} must be an int, not {}",
            type_name(obj)
        )));
    }
    obj.extract::<T>()
        .map_err(|_| PyValueError::new_err(format!("{path} must be in {range}, got {}", obj)))
}

pub(super) fn u32_field(obj: &Bound<'_, PyAny>, path: &Path<'_>) -> PyResult<u32> {
    int(obj, path, "0..=4294967295 (u32)")
}

pub(super) fn u64_field(obj: &Bound<'_, PyAny>, path: &Path<'_>) -> PyResult<u64> {
    int(obj, path, "0..=18446744073709551615 (u64)")
}

/// A `bytes` object of exactly `N` bytes.
pub(super) fn array<const N: usize>(obj: &Bound<'_, PyAny>, path: &Path<'_>) -> PyResult<[u8; N]> {
    let b = obj.cast::<PyBytes>().map_err(|_| {
        PyTypeError::new_err(format!("{path} must be bytes, not {}", type_name(obj)))
    })?;
    b.as_bytes().try_into().map_err(|_| {
        PyValueError::new_err(format!(
            "{path} must be {N} bytes, got {}",
            b.as_bytes().len()
        ))
    })
}

pub(super) fn outpoint_from(obj: &Bound<'_, PyAny>, path: &Path<'_>) -> PyResult<OutPoint> {
    let t = record(obj, path, 2)?;
    Ok(OutPoint {
        txid: array(&t.get_item(0)?, &Path::Field(path, "txid"))?,
        vout: u32_field(&t.get_item(1)?, &Path::Field(path, "vout"))?,
    })
}

pub(super) fn tx_out_from(obj: &Bound<'_, PyAny>, path: &Path<'_>) -> PyResult<TxOut> {
    let t = record(obj, path, 2)?;
    Ok(TxOut {
        value: u64_field(&t.get_item(0)?, &Path::Field(path, "value"))?,
        pubkey_hash: array(&t.get_item(1)?, &Path::Field(path, "pubkey_hash"))?,
    })
}

pub(super) fn witness_from(obj: &Bound<'_, PyAny>, path: &Path<'_>) -> PyResult<Witness> {
    let t = record(obj, path, 2)?;
    Ok(Witness {
        public_key: array(&t.get_item(0)?, &Path::Field(path, "public_key"))?,
        signature: array(&t.get_item(1)?, &Path::Field(path, "signature"))?,
    })
}

pub(super) fn coin_from(obj: &Bound<'_, PyAny>, path: &Path<'_>) -> PyResult<Coin> {
    let t = record(obj, path, 4)?;
    let flag = t.get_item(3)?;
    let is_coinbase = flag
        .cast::<PyBool>()
        .map_err(|_| {
            PyTypeError::new_err(format!(
                "{path}.is_coinbase must be a bool, not {}",
                type_name(&flag)
            ))
        })?
        .is_true();
    Ok(Coin {
        value: u64_field(&t.get_item(0)?, &Path::Field(path, "value"))?,
        pubkey_hash: array(&t.get_item(1)?, &Path::Field(path, "pubkey_hash"))?,
        height: u64_field(&t.get_item(2)?, &Path::Field(path, "height"))?,
        is_coinbase,
    })
}

pub(super) fn items<T>(
    obj: &Bound<'_, PyAny>,
    path: &Path<'_>,
    item: fn(&Bound<'_, PyAny>, &Path<'_>) -> PyResult<T>,
) -> PyResult<Vec<T>> {
    sequence(obj, path)?
        .iter()
        .enumerate()
        .map(|(i, x)| item(x, &Path::Index(path, i)))
        .collect()
}

pub(super) fn transaction_from(obj: &Bound<'_, PyAny>, path: &Path<'_>) -> PyResult<Transaction> {
    let t = record(obj, path, 7)?;
    let kind_path = Path::Field(path, "kind");
    let tag: u8 = int(&t.get_item(1)?, &kind_path, "0..=4 (transaction kinds)")?;
    let kind = TxKind::from_u8(tag).ok_or_else(|| {
        PyValueError::new_err(format!(
            "{kind_path} must be in 0..=4 (transaction kinds), got {tag}"
        ))
    })?;
    let payload_obj = t.get_item(5)?;
    let payload = payload_obj
        .cast::<PyBytes>()
        .map_err(|_| {
            PyTypeError::new_err(format!(
                "{path}.payload must be bytes, not {}",
                type_name(&payload_obj)
            ))
        })?
        .as_bytes()
        .to_vec();
    let tx = Transaction {
        version: u32_field(&t.get_item(0)?, &Path::Field(path, "version"))?,
        kind,
        inputs: items(&t.get_item(2)?, &Path::Field(path, "inputs"), outpoint_from)?,
        outputs: items(&t.get_item(3)?, &Path::Field(path, "outputs"), tx_out_from)?,
        lock_time: u32_field(&t.get_item(4)?, &Path::Field(path, "lock_time"))?,
        payload,
        witnesses: items(
            &t.get_item(6)?,
            &Path::Field(path, "witnesses"),
            witness_from,
        )?,
    };
    if tx.payload.len() != kind.payload_len() {
        return Err(PyValueError::new_err(format!(
            "{path}.payload must be {} bytes for kind {kind:?}, got {}",
            kind.payload_len(),
            tx.payload.len()
        )));
    }
    Ok(tx)
}

pub(super) fn header_from(obj: &Bound<'_, PyAny>, path: &Path<'_>) -> PyResult<BlockHeader> {
    let t = record(obj, path, 10)?;
    let f = |i: usize| t.get_item(i);
    Ok(BlockHeader {
        version: u32_field(&f(0)?, &Path::Field(path, "version"))?,
        height: u64_field(&f(1)?, &Path::Field(path, "height"))?,
        prev_hash: array(&f(2)?, &Path::Field(path, "prev_hash"))?,
        merkle_root: array(&f(3)?, &Path::Field(path, "merkle_root"))?,
        utxo_set_hash: array(&f(4)?, &Path::Field(path, "utxo_set_hash"))?,
        timestamp: u64_field(&f(5)?, &Path::Field(path, "timestamp"))?,
        proposer: array(&f(6)?, &Path::Field(path, "proposer"))?,
        vrf_proof: array(&f(7)?, &Path::Field(path, "vrf_proof"))?,
        vrf_output: array(&f(8)?, &Path::Field(path, "vrf_output"))?,
        round: u32_field(&f(9)?, &Path::Field(path, "round"))?,
    })
}

pub(super) fn block_from(obj: &Bound<'_, PyAny>, path: &Path<'_>) -> PyResult<Block> {
    let t = record(obj, path, 2)?;
    Ok(Block {
        header: header_from(&t.get_item(0)?, &Path::Field(path, "header"))?,
        transactions: items(
            &t.get_item(1)?,
            &Path::Field(path, "transactions"),
            transaction_from,
        )?,
    })
}

pub(super) fn outpoint_to<'py>(py: Python<'py>, o: &OutPoint) -> PyResult<Bound<'py, PyTuple>> {
    (PyBytes::new(py, &o.txid), o.vout).into_pyobject(py)
}

pub(super) fn tx_out_to<'py>(py: Python<'py>, o: &TxOut) -> PyResult<Bound<'py, PyTuple>> {
    (o.value, PyBytes::new(py, &o.pubkey_hash)).into_pyobject(py)
}

pub(super) fn witness_to<'py>(py: Python<'py>, w: &Witness) -> PyResult<Bound<'py, PyTuple>> {
    (
        PyBytes::new(py, &w.public_key),
        PyBytes::new(py, &w.signature),
    )
        .into_pyobject(py)
}

pub(super) fn coin_to<'py>(py: Python<'py>, c: &Coin) -> PyResult<Bound<'py, PyTuple>> {
    (
        c.value,
        PyBytes::new(py, &c.pubkey_hash),
        c.height,
        c.is_coinbase,
    )
        .into_pyobject(py)
}

pub(super) fn tuple_of<'py, T>(
    py: Python<'py>,
    values: &[T],
    to: fn(Python<'py>, &T) -> PyResult<Bound<'py, PyTuple>>,
) -> PyResult<Bound<'py, PyTuple>> {
    let items = values
        .iter()
        .map(|v| to(py, v))
        .collect::<PyResult<Vec<_>>>()?;
    PyTuple::new(py, items)
}

pub(super) fn transaction_to<'py>(
    py: Python<'py>,
    tx: &Transaction,
) -> PyResult<Bound<'py, PyTuple>> {
    (
        tx.version,
        tx.kind as u8,
        tuple_of(py, &tx.inputs, outpoint_to)?,
        tuple_of(py, &tx.outputs, tx_out_to)?,
        tx.lock_time,
        PyBytes::new(py, &tx.payload),
        tuple_of(py, &tx.witnesses, witness_to)?,
    )
        .into_pyobject(py)
}

pub(super) fn header_to<'py>(py: Python<'py>, h: &BlockHeader) -> PyResult<Bound<'py, PyTuple>> {
    (
        h.version,
        h.height,
        PyBytes::new(py, &h.prev_hash),
        PyBytes::new(py, &h.merkle_root),
        PyBytes::new(py, &h.utxo_set_hash),
        h.timestamp,
        PyBytes::new(py, &h.proposer),
        PyBytes::new(py, &h.vrf_proof),
        PyBytes::new(py, &h.vrf_output),
        h.round,
    )
        .into_pyobject(py)
}

pub(super) fn block_to<'py>(py: Python<'py>, b: &Block) -> PyResult<Bound<'py, PyTuple>> {
    (
        header_to(py, &b.header)?,
        tuple_of(py, &b.transactions, transaction_to)?,
    )
        .into_pyobject(py)
}

/// Blocks of at least this many transactions are converted to tuples with the cyclic GC paused.
pub(super) const GC_PAUSE_TXS: usize = 64;

/// Pauses CPython's cyclic garbage collector while a large decoded value is converted to tuples,
/// restoring its previous state on drop (error paths included).
///
/// A 10,000-transaction block becomes about 220,000 objects; each 700 container allocations
/// would start a collection that walks the young generation (and, as it grows, the older ones),
/// which cost three times the conversion itself. The tuples built here hold only bytes, ints
/// and other such tuples, so they cannot form a cycle and nothing is lost by not scanning them
/// meanwhile. The GIL is held from pause to resume, so no other Python thread runs (or toggles
/// the collector) in between.
pub(super) struct GcPause<'py> {
    _py: Python<'py>,
    was_enabled: bool,
}

impl<'py> GcPause<'py> {
    pub(super) fn new(py: Python<'py>) -> Self {
        // SAFETY: PyGC_Disable (C API, Python >= 3.10) only needs the GIL, which `py` proves.
        let was_enabled = unsafe { pyo3::ffi::PyGC_Disable() } != 0;
        GcPause {
            _py: py,
            was_enabled,
        }
    }
}

impl Drop for GcPause<'_> {
    fn drop(&mut self) {
        if self.was_enabled {
            // SAFETY: as in `new`; the GIL is still held (`_py` lives as long as the guard).
            unsafe { pyo3::ffi::PyGC_Enable() };
        }
    }
}

/// A block as tuples, with the collector paused for large blocks.
pub(super) fn block_to_tuples<'py>(py: Python<'py>, b: &Block) -> PyResult<Bound<'py, PyTuple>> {
    let _pause = (b.transactions.len() >= GC_PAUSE_TXS).then(|| GcPause::new(py));
    block_to(py, b)
}
