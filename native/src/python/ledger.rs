//! Bindings of the ledger: the UTXO set (`UtxoSet`), the rules it validates with
//! (`LedgerRules`), and what validation returns (`PreparedBlock`, `AppliedBlock`, `TxVerdict`,
//! `ValidationError`). One call per block or batch; the GIL is released around the work.

use std::sync::{RwLock, RwLockReadGuard};

use pyo3::exceptions::{PyIndexError, PyRuntimeError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PySlice, PyTuple};

use super::crypto::{fixed, fixed_items, type_name};
use crate::apply::{self, AppliedBlock, PreparedBlock};
use crate::hash::{Hash, HASH_LEN};
use crate::types::{BlockHeader, COIN_LEN, OUTPOINT_LEN};
use crate::utxo::{sort_delta, CoinBytes, DirtyCoins, OutPointKey, StoreKey, UtxoSet};
use crate::validate::{self, LedgerRules, TxVerdict, ValidationError};

/// Consensus parameters of validation (DESIGN §4), built from `timecoin.params`.
#[pyclass(frozen, name = "LedgerRules", module = "timecoin_native")]
pub struct PyLedgerRules {
    inner: LedgerRules,
}

#[pymethods]
impl PyLedgerRules {
    #[new]
    fn new(
        chain_id: &[u8],
        network: u8,
        dust_limit: u64,
        min_fee_base: u64,
        min_fee_per_mille: u64,
        max_tx_size: usize,
        max_block_size: usize,
    ) -> PyResult<Self> {
        let chain_id = *fixed::<HASH_LEN>("chain_id", chain_id)?;
        if network > 2 {
            return Err(PyValueError::new_err(format!(
                "network must be 0 (mainnet), 1 (testnet) or 2 (devnet), got {network}"
            )));
        }
        Ok(PyLedgerRules {
            inner: LedgerRules {
                chain_id,
                network,
                dust_limit,
                min_fee_base,
                min_fee_per_mille,
                max_tx_size,
                max_block_size,
            },
        })
    }

    #[getter]
    fn chain_id<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.inner.chain_id)
    }
    #[getter]
    fn network(&self) -> u8 {
        self.inner.network
    }
    #[getter]
    fn dust_limit(&self) -> u64 {
        self.inner.dust_limit
    }
    #[getter]
    fn min_fee_base(&self) -> u64 {
        self.inner.min_fee_base
    }
    #[getter]
    fn min_fee_per_mille(&self) -> u64 {
        self.inner.min_fee_per_mille
    }
    #[getter]
    fn max_tx_size(&self) -> usize {
        self.inner.max_tx_size
    }
    #[getter]
    fn max_block_size(&self) -> usize {
        self.inner.max_block_size
    }

    /// Minimum fee (sat) of a transaction sending `sent_to_others` sat to others (DESIGN §4:
    /// outputs paying no address its inputs spend from).
    fn min_fee(&self, sent_to_others: u64) -> u128 {
        self.inner.min_fee(sent_to_others)
    }

    fn __repr__(&self) -> String {
        let r = &self.inner;
        format!(
            "LedgerRules(network={}, dust_limit={}, min_fee_base={}, min_fee_per_mille={}, \
             max_tx_size={}, max_block_size={})",
            r.network,
            r.dust_limit,
            r.min_fee_base,
            r.min_fee_per_mille,
            r.max_tx_size,
            r.max_block_size
        )
    }
}

/// A rejected transaction or block: `code` (stable string), `message`, `tx_index` (or None).
#[pyclass(frozen, extends = PyValueError, name = "ValidationError", module = "timecoin_native")]
pub struct PyValidationError {
    #[pyo3(get)]
    code: String,
    #[pyo3(get)]
    message: String,
    #[pyo3(get)]
    tx_index: Option<usize>,
}

#[pymethods]
impl PyValidationError {
    #[new]
    #[pyo3(signature = (code, message, tx_index = None))]
    fn new(code: String, message: String, tx_index: Option<usize>) -> Self {
        PyValidationError {
            code,
            message,
            tx_index,
        }
    }

    fn __str__(&self) -> String {
        match self.tx_index {
            Some(i) => format!("{}: transaction {i}: {}", self.code, self.message),
            None => format!("{}: {}", self.code, self.message),
        }
    }
}

fn validation_err(py: Python<'_>, e: ValidationError) -> PyErr {
    let value = PyValidationError {
        code: e.code.as_str().to_string(),
        message: e.message,
        tx_index: e.tx_index,
    };
    match Bound::new(py, value) {
        Ok(obj) => PyErr::from_value(obj.into_any()),
        Err(err) => err,
    }
}

/// What applying a block did (see `apply_block`).
#[pyclass(frozen, name = "AppliedBlock", module = "timecoin_native")]
pub struct PyAppliedBlock {
    inner: AppliedBlock,
    undo: Py<PyBytes>,
}

#[pymethods]
impl PyAppliedBlock {
    #[getter]
    fn height(&self) -> u64 {
        self.inner.height
    }
    #[getter]
    fn block_hash<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.inner.block_hash)
    }
    #[getter]
    fn txids<'py>(&self, py: Python<'py>) -> Vec<Bound<'py, PyBytes>> {
        txid_list(py, &self.inner)
    }
    #[getter]
    fn fees(&self) -> u64 {
        self.inner.fees
    }
    #[getter]
    fn undo(&self, py: Python<'_>) -> Py<PyBytes> {
        self.undo.clone_ref(py)
    }
    #[getter]
    fn coinbase_outputs<'py>(&self, py: Python<'py>) -> Vec<(u64, Bound<'py, PyBytes>)> {
        coinbase_list(py, &self.inner)
    }
    #[getter]
    fn masternode_txs<'py>(&self, py: Python<'py>) -> Vec<(usize, u8, Bound<'py, PyBytes>)> {
        self.inner
            .masternode_txs
            .iter()
            .map(|(i, k, p)| (*i, *k as u8, PyBytes::new(py, p)))
            .collect()
    }
    #[getter]
    fn masternode_transactions<'py>(&self, py: Python<'py>) -> Vec<(usize, Bound<'py, PyBytes>)> {
        masternode_list(py, &self.inner)
    }

    fn __repr__(&self) -> String {
        format!(
            "AppliedBlock(height={}, txs={}, fees={})",
            self.inner.height,
            self.inner.txids.len(),
            self.inner.fees
        )
    }
}

/// A block `UtxoSet.prepare_block` validated and did not apply (native/src/apply.rs): what
/// applying it will do, for `UtxoSet.commit_prepared`.
#[pyclass(frozen, name = "PreparedBlock", module = "timecoin_native")]
pub struct PyPreparedBlock {
    inner: PreparedBlock,
    /// The set it was prepared on (for `coin_after`).
    utxos: Py<PyUtxoSet>,
}

#[pymethods]
impl PyPreparedBlock {
    #[getter]
    fn height(&self) -> u64 {
        self.inner.applied.height
    }
    #[getter]
    fn block_hash<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.inner.applied.block_hash)
    }
    #[getter]
    fn txids<'py>(&self, py: Python<'py>) -> Vec<Bound<'py, PyBytes>> {
        txid_list(py, &self.inner.applied)
    }
    #[getter]
    fn fees(&self) -> u64 {
        self.inner.applied.fees
    }
    #[getter]
    fn coinbase_outputs<'py>(&self, py: Python<'py>) -> Vec<(u64, Bound<'py, PyBytes>)> {
        coinbase_list(py, &self.inner.applied)
    }
    #[getter]
    fn masternode_transactions<'py>(&self, py: Python<'py>) -> Vec<(usize, Bound<'py, PyBytes>)> {
        masternode_list(py, &self.inner.applied)
    }
    /// The UTXO set hash after the block.
    #[getter]
    fn utxo_set_hash<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.inner.utxo_set_hash())
    }
    /// The merkle root over its txids (the header it was prepared with, or the new root after
    /// `with_coinbase`).
    #[getter]
    fn merkle_root<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.inner.merkle_root())
    }
    /// The `UtxoSet.generation` it was prepared on.
    #[getter]
    fn generation(&self) -> u64 {
        self.inner.generation
    }
    /// This block under `header` (296 bytes) instead of the header it was prepared with, not
    /// validated again (native/src/apply.rs `PreparedBlock::with_header`): a block builder's
    /// draft under its final header. `ValueError` for a header that does not decode, or of
    /// another height or merkle root, or whose UTXO set hash is not the set's after the block.
    fn with_header(&self, py: Python<'_>, header: &[u8]) -> PyResult<PyPreparedBlock> {
        let header = BlockHeader::decode(header)
            .map_err(|e| PyValueError::new_err(format!("header: {e}")))?;
        let inner = self
            .inner
            .with_header(&header)
            .map_err(PyValueError::new_err)?;
        Ok(PyPreparedBlock {
            inner,
            utxos: self.utxos.clone_ref(py),
        })
    }
    /// This block with the encoded transaction `coinbase` in place of its coinbase, the other
    /// transactions not validated again (native/src/apply.rs `PreparedBlock::with_coinbase`):
    /// a block builder's transactions, prepared under a draft coinbase, with the coinbase that
    /// pays their fees. Its `utxo_set_hash` and merkle root are the new block's; its
    /// `block_hash` stays the draft's until `with_header`. `ValidationError` (index 0) for an
    /// invalid coinbase or a block it makes too large; `ValueError` once the set it was
    /// prepared on has changed, or if a transaction of the block spends the draft coinbase.
    fn with_coinbase(
        &self,
        py: Python<'_>,
        coinbase: &[u8],
        rules: &PyLedgerRules,
    ) -> PyResult<PyPreparedBlock> {
        let rules = &rules.inner;
        let inner = self
            .utxos
            .get()
            .read_detached(py, |set| self.inner.with_coinbase(set, coinbase, rules))?
            .map_err(|e| match e {
                apply::SwapError::Invalid(e) => validation_err(py, e),
                apply::SwapError::Refused(why) => PyValueError::new_err(why),
            })?;
        Ok(PyPreparedBlock {
            inner,
            utxos: self.utxos.clone_ref(py),
        })
    }
    /// The coin of `outpoint` (36 bytes) in the set it was prepared on, after this block;
    /// `ValueError` once that set has changed.
    fn coin_after<'py>(
        &self,
        py: Python<'py>,
        outpoint: &[u8],
    ) -> PyResult<Option<Bound<'py, PyBytes>>> {
        let key = fixed::<OUTPOINT_LEN>("outpoint", outpoint)?;
        let coin: Option<CoinBytes> = {
            let utxos = self.utxos.get().read()?;
            if utxos.generation() != self.inner.generation {
                return Err(PyValueError::new_err(
                    "the UTXO set changed since the block was prepared on it",
                ));
            }
            self.inner.coin_after(&utxos, key).copied()
        };
        Ok(coin.map(|c| PyBytes::new(py, &c)))
    }

    fn __repr__(&self) -> String {
        format!(
            "PreparedBlock(height={}, txs={}, fees={}, generation={})",
            self.inner.applied.height,
            self.inner.applied.txids.len(),
            self.inner.applied.fees,
            self.inner.generation
        )
    }
}

fn txid_list<'py>(py: Python<'py>, applied: &AppliedBlock) -> Vec<Bound<'py, PyBytes>> {
    applied.txids.iter().map(|t| PyBytes::new(py, t)).collect()
}

fn coinbase_list<'py>(py: Python<'py>, applied: &AppliedBlock) -> Vec<(u64, Bound<'py, PyBytes>)> {
    applied
        .coinbase_outputs
        .iter()
        .map(|(v, h)| (*v, PyBytes::new(py, h)))
        .collect()
}

fn masternode_list<'py>(
    py: Python<'py>,
    applied: &AppliedBlock,
) -> Vec<(usize, Bound<'py, PyBytes>)> {
    applied
        .masternode_txs
        .iter()
        .zip(&applied.masternode_tx_encodings)
        .map(|((i, _, _), e)| (*i, PyBytes::new(py, e)))
        .collect()
}

/// Verdict on one transaction of `UtxoSet.check_transactions`.
#[pyclass(frozen, name = "TxVerdict", module = "timecoin_native")]
pub struct PyTxVerdict {
    inner: TxVerdict,
}

#[pymethods]
impl PyTxVerdict {
    #[getter]
    fn ok(&self) -> bool {
        self.inner.reject.is_none()
    }
    #[getter]
    fn txid<'py>(&self, py: Python<'py>) -> Option<Bound<'py, PyBytes>> {
        self.inner.txid.map(|t| PyBytes::new(py, &t))
    }
    #[getter]
    fn kind(&self) -> Option<u8> {
        self.inner.kind.map(|k| k as u8)
    }
    #[getter]
    fn fee(&self) -> u64 {
        self.inner.fee
    }
    #[getter]
    fn inputs<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, self.inner.inputs.as_flattened())
    }
    /// The outpoints the transaction spends, one 36-byte `bytes` each, in input order: what
    /// the mempool keeps per admitted transaction (built here, not sliced from `inputs` in
    /// Python, once per transaction on every node).
    #[getter]
    fn outpoints<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        PyTuple::new(py, self.inner.inputs.iter().map(|o| PyBytes::new(py, o)))
    }
    #[getter]
    fn size(&self) -> usize {
        self.inner.size
    }
    #[getter]
    fn code(&self) -> &'static str {
        self.inner.reject.as_ref().map_or("", |(c, _)| c.as_str())
    }
    #[getter]
    fn message(&self) -> &str {
        self.inner.reject.as_ref().map_or("", |(_, m)| m.as_str())
    }

    fn __repr__(&self) -> String {
        match &self.inner.reject {
            None => format!(
                "TxVerdict(ok=True, fee={}, size={})",
                self.inner.fee, self.inner.size
            ),
            Some((c, m)) => format!("TxVerdict(ok=False, code={:?}, message={m:?})", c.as_str()),
        }
    }
}

fn bytes_items<'py>(what: &str, obj: &Bound<'py, PyAny>) -> PyResult<Vec<Bound<'py, PyBytes>>> {
    let items: Vec<Bound<'py, PyAny>> = if let Ok(l) = obj.cast::<PyList>() {
        l.iter().collect()
    } else if let Ok(t) = obj.cast::<PyTuple>() {
        t.iter().collect()
    } else {
        return Err(PyTypeError::new_err(format!(
            "{what} must be a list of bytes, not {}",
            type_name(obj)
        )));
    };
    items
        .into_iter()
        .enumerate()
        .map(|(i, x)| {
            x.cast_into::<PyBytes>().map_err(|e| {
                PyTypeError::new_err(format!(
                    "{what}[{i}] must be bytes, not {}",
                    type_name(e.into_inner().as_any())
                ))
            })
        })
        .collect()
}

fn entry_from(i: usize, obj: &Bound<'_, PyAny>) -> PyResult<(OutPointKey, CoinBytes)> {
    let t = obj.cast::<PyTuple>().map_err(|_| {
        PyTypeError::new_err(format!(
            "entries[{i}] must be a tuple (outpoint, coin), not {}",
            type_name(obj)
        ))
    })?;
    if t.len() != 2 {
        return Err(PyValueError::new_err(format!(
            "entries[{i}] must be a tuple of 2 items, got {}",
            t.len()
        )));
    }
    let part = |j: usize, what: &str| -> PyResult<Bound<'_, PyBytes>> {
        let x = t.get_item(j)?;
        x.cast_into::<PyBytes>().map_err(|e| {
            PyTypeError::new_err(format!(
                "entries[{i}].{what} must be bytes, not {}",
                type_name(e.into_inner().as_any())
            ))
        })
    };
    let op = part(0, "outpoint")?;
    let coin = part(1, "coin")?;
    Ok((
        *fixed::<OUTPOINT_LEN>(&format!("entries[{i}].outpoint"), op.as_bytes())?,
        *fixed::<COIN_LEN>(&format!("entries[{i}].coin"), coin.as_bytes())?,
    ))
}

/// The in-memory UTXO set with its LtHash and dirty tracking (native/src/utxo.rs), behind a
/// read-write lock so that a block can be validated on another thread while the event loop
/// keeps reading the set (admission): reads share it, a write waits for them.
///
/// The lock discipline that makes this deadlock-free with the GIL: a write takes the lock only
/// with the GIL released (`py.detach`), and no thread takes the GIL while it holds a guard
/// (every guard is dropped before Python objects are built from what it read, except plain
/// copies under a read guard taken with the GIL held, which never wait for the GIL).
#[pyclass(frozen, name = "UtxoSet", module = "timecoin_native")]
pub struct PyUtxoSet {
    inner: RwLock<UtxoSet>,
}

const POISONED: &str = "the UTXO set was left inconsistent by a panic in an earlier call";

impl PyUtxoSet {
    fn read(&self) -> PyResult<RwLockReadGuard<'_, UtxoSet>> {
        self.inner
            .read()
            .map_err(|_| PyRuntimeError::new_err(POISONED))
    }

    /// Runs `f` on the set with the GIL released and the write lock held (after every read in
    /// progress on other threads has finished).
    fn write<T: Send>(
        &self,
        py: Python<'_>,
        f: impl FnOnce(&mut UtxoSet) -> T + Send,
    ) -> PyResult<T> {
        py.detach(|| match self.inner.write() {
            Ok(mut guard) => Ok(f(&mut guard)),
            Err(_) => Err(POISONED),
        })
        .map_err(PyRuntimeError::new_err)
    }

    /// Runs `f` on the set with the GIL released and a read lock held.
    fn read_detached<T: Send>(
        &self,
        py: Python<'_>,
        f: impl FnOnce(&UtxoSet) -> T + Send,
    ) -> PyResult<T> {
        py.detach(|| match self.inner.read() {
            Ok(guard) => Ok(f(&guard)),
            Err(_) => Err(POISONED),
        })
        .map_err(PyRuntimeError::new_err)
    }
}

#[pymethods]
impl PyUtxoSet {
    #[new]
    fn new() -> Self {
        PyUtxoSet {
            inner: RwLock::new(UtxoSet::new()),
        }
    }

    fn __len__(&self) -> PyResult<usize> {
        Ok(self.read()?.len())
    }

    fn get<'py>(&self, py: Python<'py>, outpoint: &[u8]) -> PyResult<Option<Bound<'py, PyBytes>>> {
        let key = fixed::<OUTPOINT_LEN>("outpoint", outpoint)?;
        let coin: Option<CoinBytes> = self.read()?.get(key).copied();
        Ok(coin.map(|c| PyBytes::new(py, &c)))
    }

    fn load(&self, py: Python<'_>, entries: &Bound<'_, PyAny>) -> PyResult<()> {
        let list = entries.cast::<PyList>().map_err(|_| {
            PyTypeError::new_err(format!(
                "entries must be a list, not {}",
                type_name(entries)
            ))
        })?;
        let parsed: Vec<(OutPointKey, CoinBytes)> = list
            .iter()
            .enumerate()
            .map(|(i, x)| entry_from(i, &x))
            .collect::<PyResult<_>>()?;
        self.write(py, |inner| inner.load(&parsed))?
            .map_err(|e| PyValueError::new_err(e.to_string()))
    }

    fn set_hash<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        let hash: Hash = self.read()?.set_hash();
        Ok(PyBytes::new(py, &hash))
    }

    #[getter]
    fn signature_cache_size(&self) -> PyResult<usize> {
        Ok(self.read()?.sig_cache.len())
    }

    fn clear_signature_cache(&self) -> PyResult<()> {
        self.read()?.sig_cache.clear();
        Ok(())
    }

    fn state<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        let state = self.read()?.state().to_bytes();
        Ok(PyBytes::new(py, &state))
    }

    #[pyo3(signature = (block, rules, check_utxo_hash = true))]
    fn apply_block(
        &self,
        py: Python<'_>,
        block: &[u8],
        rules: &PyLedgerRules,
        check_utxo_hash: bool,
    ) -> PyResult<PyAppliedBlock> {
        let rules = &rules.inner;
        let applied = self
            .write(py, |inner| {
                apply::apply_block(inner, block, rules, check_utxo_hash)
            })?
            .map_err(|e| validation_err(py, e))?;
        Ok(applied_block(py, applied))
    }

    /// Validates `block` as `apply_block` does, without changing the set. May run on any
    /// thread, beside other reads; a write waits for it.
    #[pyo3(signature = (block, rules, check_utxo_hash = true))]
    fn prepare_block(
        slf: &Bound<'_, Self>,
        block: &[u8],
        rules: &PyLedgerRules,
        check_utxo_hash: bool,
    ) -> PyResult<PyPreparedBlock> {
        let py = slf.py();
        let rules = &rules.inner;
        let prepared = slf
            .get()
            .read_detached(py, |inner| {
                apply::prepare_block(inner, block, rules, check_utxo_hash)
            })?
            .map_err(|e| validation_err(py, e))?;
        Ok(PyPreparedBlock {
            inner: prepared,
            utxos: slf.clone().unbind(),
        })
    }

    /// Applies a block `prepare_block` validated on this set; `ValueError` (nothing changes)
    /// if the set has changed since.
    fn commit_prepared(
        &self,
        py: Python<'_>,
        prepared: &PyPreparedBlock,
    ) -> PyResult<PyAppliedBlock> {
        let prepared = &prepared.inner;
        let applied = self
            .write(py, |inner| apply::commit_prepared(inner, prepared))?
            .map_err(|e| PyValueError::new_err(e.to_string()))?;
        Ok(applied_block(py, applied))
    }

    /// The number of changes to the contents so far: a `PreparedBlock` commits only at the
    /// generation it was prepared on.
    #[getter]
    fn generation(&self) -> PyResult<u64> {
        Ok(self.read()?.generation())
    }

    fn rollback(&self, py: Python<'_>, undo: &[u8]) -> PyResult<()> {
        self.write(py, |inner| inner.rollback(undo))?
            .map(|_| ())
            .map_err(|e| PyValueError::new_err(e.to_string()))
    }

    /// Replays the committed `block` with its `undo` record without validating it: removes the
    /// outpoints it spent that are in the set, adds the coins it created that are not
    /// (native/src/apply.rs `replay_block`). `ValueError`, nothing changed, for a block or undo
    /// record that does not decode or does not fit.
    fn replay_block(&self, py: Python<'_>, block: &[u8], undo: &[u8]) -> PyResult<()> {
        self.write(py, |inner| apply::replay_block(inner, block, undo))?
            .map_err(|e| PyValueError::new_err(e.to_string()))
    }

    /// (count, total value in sat) of the coins in the set.
    fn totals(&self, py: Python<'_>) -> PyResult<(usize, u128)> {
        self.read_detached(py, |inner| inner.totals())
    }

    fn check_transactions(
        &self,
        py: Python<'_>,
        txs: &Bound<'_, PyAny>,
        rules: &PyLedgerRules,
        height: u64,
    ) -> PyResult<Vec<PyTxVerdict>> {
        let items = bytes_items("txs", txs)?;
        let slices: Vec<&[u8]> = items.iter().map(|b| b.as_bytes()).collect();
        let rules = &rules.inner;
        let verdicts = self.read_detached(py, |inner| {
            validate::check_transactions(inner, &slices, rules, height)
        })?;
        Ok(verdicts
            .into_iter()
            .map(|inner| PyTxVerdict { inner })
            .collect())
    }

    /// Takes the outpoints changed since the last take, leaving the set clean, without working
    /// out their writes (O(1) under the write lock): `DirtyCoins.delta()` does, later, on any
    /// thread, as of this moment.
    fn take_dirty(slf: &Bound<'_, Self>) -> PyResult<PyDirtyCoins> {
        let py = slf.py();
        Ok(PyDirtyCoins {
            dirty: slf.get().write(py, |inner| inner.take_dirty())?,
            utxos: slf.clone().unbind(),
        })
    }

    fn take_delta<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let delta = self.write(py, |inner| inner.take_delta())?;
        let items = delta
            .iter()
            .map(|(k, c)| (PyBytes::new(py, k), c.as_ref().map(|c| PyBytes::new(py, c))));
        PyList::new(py, items)
    }

    fn memory_usage(&self) -> PyResult<usize> {
        Ok(self.read()?.memory_usage())
    }

    fn coins_of<'py>(&self, py: Python<'py>, pubkey_hashes: &[u8]) -> PyResult<Bound<'py, PyList>> {
        let owners: &[Hash] = fixed_items::<HASH_LEN>("pubkey_hashes", pubkey_hashes)?;
        let found = self.read_detached(py, |inner| inner.coins_of(owners))?;
        let items = found
            .iter()
            .map(|(k, c)| (PyBytes::new(py, k), PyBytes::new(py, c)));
        PyList::new(py, items)
    }

    fn __repr__(&self) -> PyResult<String> {
        let inner = self.read()?;
        let hash: Hash = inner.set_hash();
        let hex: String = hash[..8].iter().map(|b| format!("{b:02x}")).collect();
        Ok(format!("UtxoSet(len={}, set_hash={hex}…)", inner.len()))
    }
}

/// Outpoints a read lock of `DirtyCoins.delta` covers: a few ms, the longest a block's commit
/// waits for it.
const DIRTY_SLICE: usize = 16_384;

/// The outpoints `UtxoSet.take_dirty` took (native/src/utxo.rs `DirtyCoins`), with the set they
/// came from.
#[pyclass(frozen, name = "DirtyCoins", module = "timecoin_native")]
pub struct PyDirtyCoins {
    dirty: DirtyCoins,
    utxos: Py<PyUtxoSet>,
}

#[pymethods]
impl PyDirtyCoins {
    /// The number of outpoints taken: an upper bound on the writes.
    fn __len__(&self) -> usize {
        self.dirty.len()
    }

    /// The store writes of the take (`CoinDelta`), as `take_delta` would have returned them
    /// then, however the set changed since. Works with the GIL released, reading the set under
    /// its read lock a slice of outpoints at a time, so a write to the set waits for one slice
    /// at most. `ValueError` once the set has been taken from again or loaded since.
    fn delta(&self, py: Python<'_>) -> PyResult<PyCoinDelta> {
        let set = self.utxos.get();
        let dirty = &self.dirty;
        let writes = py.detach(
            || -> Result<Vec<(StoreKey, Option<CoinBytes>)>, DeltaError> {
                let mut writes = Vec::with_capacity(dirty.len());
                let mut entries = dirty.entries().peekable();
                loop {
                    let guard = set.inner.read().map_err(|_| DeltaError::Poisoned)?;
                    guard
                        .dirty_writes(dirty, entries.by_ref().take(DIRTY_SLICE), &mut writes)
                        .map_err(|e| DeltaError::Stale(e.to_string()))?;
                    drop(guard);
                    if entries.peek().is_none() {
                        break;
                    }
                }
                sort_delta(&mut writes);
                Ok(writes)
            },
        );
        match writes {
            Ok(inner) => Ok(PyCoinDelta { inner }),
            Err(DeltaError::Poisoned) => Err(PyRuntimeError::new_err(POISONED)),
            Err(DeltaError::Stale(why)) => Err(PyValueError::new_err(why)),
        }
    }
}

/// Why `DirtyCoins.delta` failed, decided without the GIL.
enum DeltaError {
    Poisoned,
    Stale(String),
}

/// A store delta of `DirtyCoins.delta`, sorted by store key: `len()`, and
/// `delta[i]` / `delta[start:end]` as `take_delta`'s `(store key, coin or None)` tuples.
#[pyclass(name = "CoinDelta", module = "timecoin_native", frozen)]
pub struct PyCoinDelta {
    inner: Vec<(StoreKey, Option<CoinBytes>)>,
}

fn delta_item<'py>(
    py: Python<'py>,
    (key, coin): &(StoreKey, Option<CoinBytes>),
) -> PyResult<Bound<'py, PyTuple>> {
    PyTuple::new(
        py,
        [
            PyBytes::new(py, key).into_any(),
            match coin {
                Some(c) => PyBytes::new(py, c).into_any(),
                None => py.None().into_bound(py),
            },
        ],
    )
}

#[pymethods]
impl PyCoinDelta {
    fn __len__(&self) -> usize {
        self.inner.len()
    }

    fn __getitem__<'py>(
        &self,
        py: Python<'py>,
        key: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let len = self.inner.len();
        if let Ok(slice) = key.cast::<PySlice>() {
            let at = slice.indices(len as isize)?;
            if at.step != 1 {
                return Err(PyValueError::new_err("a CoinDelta slice takes no step"));
            }
            let (start, stop) = (at.start as usize, (at.stop.max(at.start)) as usize);
            let items = self.inner[start..stop]
                .iter()
                .map(|item| delta_item(py, item))
                .collect::<PyResult<Vec<_>>>()?;
            return Ok(PyList::new(py, items)?.into_any());
        }
        let index: isize = key.extract()?;
        let at = if index < 0 {
            index + len as isize
        } else {
            index
        };
        if at < 0 || at as usize >= len {
            return Err(PyIndexError::new_err("CoinDelta index out of range"));
        }
        Ok(delta_item(py, &self.inner[at as usize])?.into_any())
    }
}

fn applied_block(py: Python<'_>, applied: AppliedBlock) -> PyAppliedBlock {
    let undo = PyBytes::new(py, &applied.undo).unbind();
    PyAppliedBlock {
        inner: AppliedBlock {
            undo: Vec::new(),
            ..applied
        },
        undo,
    }
}

pub(super) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyLedgerRules>()?;
    m.add_class::<PyValidationError>()?;
    m.add_class::<PyAppliedBlock>()?;
    m.add_class::<PyPreparedBlock>()?;
    m.add_class::<PyTxVerdict>()?;
    m.add_class::<PyUtxoSet>()?;
    m.add_class::<PyCoinDelta>()?;
    m.add_class::<PyDirtyCoins>()?;
    m.add(
        "REJECT_CODES",
        validate::RejectCode::ALL
            .iter()
            .map(|c| c.as_str())
            .collect::<Vec<_>>(),
    )?;
    Ok(())
}
