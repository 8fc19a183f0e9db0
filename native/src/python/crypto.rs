//! Bindings of the crypto hot paths: Ed25519, BLAKE3 domains, merkle trees.
//!
//! Batches cross the boundary as contiguous buffers (`bytes` of fixed-width items, plus a buffer
//! of little-endian u32 lengths where items vary), one call per batch.

use std::borrow::Cow;

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyTuple};

use crate::ed25519::{self, Item, PUBLIC_KEY_LEN, SECRET_KEY_LEN, SIGNATURE_LEN};
use crate::hash::{self, Domain, Hash, HASH_LEN};
use crate::merkle;

/// Inputs at least this long are hashed with the GIL released.
const DETACH_HASH_LEN: usize = 64 * 1024;

pub(super) fn fixed<'a, const N: usize>(what: &str, data: &'a [u8]) -> PyResult<&'a [u8; N]> {
    data.try_into()
        .map_err(|_| PyValueError::new_err(format!("{what} must be {N} bytes, got {}", data.len())))
}

pub(super) fn fixed_items<'a, const N: usize>(
    what: &str,
    data: &'a [u8],
) -> PyResult<&'a [[u8; N]]> {
    let (items, rest) = data.as_chunks::<N>();
    if !rest.is_empty() {
        return Err(PyValueError::new_err(format!(
            "{what} must be a concatenation of {N}-byte items, got {} bytes",
            data.len()
        )));
    }
    Ok(items)
}

/// 32-byte hashes from either one buffer of concatenated hashes (borrowed) or a list/tuple of
/// 32-byte `bytes` (copied, each checked, errors naming the bad item).
pub(super) fn hashes<'a>(what: &str, obj: &'a Bound<'_, PyAny>) -> PyResult<Cow<'a, [Hash]>> {
    if let Ok(buffer) = obj.cast::<PyBytes>() {
        return fixed_items::<HASH_LEN>(what, buffer.as_bytes()).map(Cow::Borrowed);
    }
    let item = |i: usize, x: Bound<'_, PyAny>| -> PyResult<Hash> {
        let b = x.cast::<PyBytes>().map_err(|_| {
            PyTypeError::new_err(format!("{what}[{i}] must be bytes, not {}", type_name(&x)))
        })?;
        b.as_bytes().try_into().map_err(|_| {
            PyValueError::new_err(format!(
                "{what}[{i}] must be {HASH_LEN} bytes, got {}",
                b.as_bytes().len()
            ))
        })
    };
    if let Ok(list) = obj.cast::<PyList>() {
        return list
            .iter()
            .enumerate()
            .map(|(i, x)| item(i, x))
            .collect::<PyResult<Vec<_>>>()
            .map(Cow::Owned);
    }
    if let Ok(tuple) = obj.cast::<PyTuple>() {
        return tuple
            .iter()
            .enumerate()
            .map(|(i, x)| item(i, x))
            .collect::<PyResult<Vec<_>>>()
            .map(Cow::Owned);
    }
    Err(PyTypeError::new_err(format!(
        "{what} must be bytes or a list of bytes, not {}",
        type_name(obj)
    )))
}

pub(super) fn type_name(obj: &Bound<'_, PyAny>) -> String {
    obj.get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "?".into())
}

#[pyfunction]
fn public_key<'py>(py: Python<'py>, secret_key: &[u8]) -> PyResult<Bound<'py, PyBytes>> {
    let sk = fixed::<SECRET_KEY_LEN>("secret_key", secret_key)?;
    Ok(PyBytes::new(py, &ed25519::public_key(sk)))
}

#[pyfunction]
fn sign<'py>(py: Python<'py>, secret_key: &[u8], message: &[u8]) -> PyResult<Bound<'py, PyBytes>> {
    let sk = fixed::<SECRET_KEY_LEN>("secret_key", secret_key)?;
    Ok(PyBytes::new(py, &ed25519::sign(sk, message)))
}

#[pyfunction]
fn verify(public_key: &[u8], message: &[u8], signature: &[u8]) -> PyResult<bool> {
    let pk = fixed::<PUBLIC_KEY_LEN>("public_key", public_key)?;
    let sig = fixed::<SIGNATURE_LEN>("signature", signature)?;
    Ok(ed25519::verify(pk, message, sig))
}

#[pyfunction]
#[pyo3(signature = (public_keys, messages, message_lengths, signatures, parallel = true))]
fn verify_batch(
    py: Python<'_>,
    public_keys: &[u8],
    messages: &[u8],
    message_lengths: &[u8],
    signatures: &[u8],
    parallel: bool,
) -> PyResult<Vec<bool>> {
    let pks = fixed_items::<PUBLIC_KEY_LEN>("public_keys", public_keys)?;
    let sigs = fixed_items::<SIGNATURE_LEN>("signatures", signatures)?;
    let lens = fixed_items::<4>("message_lengths", message_lengths)?;
    if pks.len() != sigs.len() || pks.len() != lens.len() {
        return Err(PyValueError::new_err(format!(
            "batch sizes differ: {} public keys, {} message lengths, {} signatures",
            pks.len(),
            lens.len(),
            sigs.len()
        )));
    }
    let mut items = Vec::with_capacity(pks.len());
    let mut offset = 0usize;
    for ((pk, len), sig) in pks.iter().zip(lens).zip(sigs) {
        let end = offset
            .checked_add(u32::from_le_bytes(*len) as usize)
            .filter(|&end| end <= messages.len())
            .ok_or_else(|| PyValueError::new_err("message_lengths add up to more than messages"))?;
        items.push(Item {
            public_key: pk,
            message: &messages[offset..end],
            signature: sig,
        });
        offset = end;
    }
    if offset != messages.len() {
        return Err(PyValueError::new_err(format!(
            "message_lengths add up to {offset} bytes but messages has {}",
            messages.len()
        )));
    }
    Ok(py.detach(|| ed25519::verify_batch(&items, parallel)))
}

#[pyfunction]
#[pyo3(name = "blake3")]
fn blake3_hash<'py>(py: Python<'py>, data: &[u8]) -> Bound<'py, PyBytes> {
    let digest = if data.len() >= DETACH_HASH_LEN {
        py.detach(|| hash::blake3(data))
    } else {
        hash::blake3(data)
    };
    PyBytes::new(py, &digest)
}

#[pyfunction]
fn hash_in<'py>(py: Python<'py>, domain: &str, data: &[u8]) -> PyResult<Bound<'py, PyBytes>> {
    let domain = Domain::from_name(domain)
        .ok_or_else(|| PyValueError::new_err(format!("unknown hash domain {domain:?}")))?;
    let digest = if data.len() >= DETACH_HASH_LEN {
        py.detach(|| hash::hash_in(domain, data))
    } else {
        hash::hash_in(domain, data)
    };
    Ok(PyBytes::new(py, &digest))
}

#[pyfunction]
#[pyo3(signature = (leaves, parallel = true))]
fn merkle_root<'py>(
    py: Python<'py>,
    leaves: &Bound<'py, PyAny>,
    parallel: bool,
) -> PyResult<Bound<'py, PyBytes>> {
    let leaves = hashes("leaves", leaves)?;
    let root = py.detach(|| merkle::root(&leaves, parallel));
    Ok(PyBytes::new(py, &root))
}

#[pyfunction]
fn merkle_proof<'py>(
    py: Python<'py>,
    leaves: &Bound<'py, PyAny>,
    index: usize,
) -> PyResult<Vec<Bound<'py, PyBytes>>> {
    let leaves = hashes("leaves", leaves)?;
    let path = py
        .detach(|| merkle::proof(&leaves, index))
        .map_err(|e| PyValueError::new_err(e.to_string()))?;
    Ok(path.iter().map(|h| PyBytes::new(py, h)).collect())
}

#[pyfunction]
fn merkle_levels<'py>(
    py: Python<'py>,
    leaves: &Bound<'py, PyAny>,
) -> PyResult<Vec<Bound<'py, PyBytes>>> {
    let leaves = hashes("leaves", leaves)?;
    let levels = py
        .detach(|| merkle::levels(&leaves))
        .map_err(|_| PyValueError::new_err("merkle_levels needs at least one leaf"))?;
    Ok(levels
        .iter()
        .map(|level| PyBytes::new(py, level.as_flattened()))
        .collect())
}

#[pyfunction]
fn verify_merkle_proof(
    leaf: &[u8],
    index: usize,
    count: usize,
    proof: &Bound<'_, PyAny>,
    root: &[u8],
) -> PyResult<bool> {
    let leaf: &Hash = fixed::<HASH_LEN>("leaf", leaf)?;
    let root: &Hash = fixed::<HASH_LEN>("root", root)?;
    let proof = hashes("proof", proof)?;
    Ok(merkle::verify_proof(leaf, index, count, &proof, root))
}

pub(super) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let domains = PyDict::new(m.py());
    for d in Domain::ALL {
        domains.set_item(d.name(), d.context())?;
    }
    m.add("HASH_DOMAINS", domains)?;
    m.add_function(wrap_pyfunction!(public_key, m)?)?;
    m.add_function(wrap_pyfunction!(sign, m)?)?;
    m.add_function(wrap_pyfunction!(verify, m)?)?;
    m.add_function(wrap_pyfunction!(verify_batch, m)?)?;
    m.add_function(wrap_pyfunction!(blake3_hash, m)?)?;
    m.add_function(wrap_pyfunction!(hash_in, m)?)?;
    m.add_function(wrap_pyfunction!(merkle_root, m)?)?;
    m.add_function(wrap_pyfunction!(merkle_proof, m)?)?;
    m.add_function(wrap_pyfunction!(merkle_levels, m)?)?;
    m.add_function(wrap_pyfunction!(verify_merkle_proof, m)?)?;
    Ok(())
}
