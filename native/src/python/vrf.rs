//! Bindings of the VRF (RFC 9381 ECVRF-EDWARDS25519-SHA512-TAI) and of the weighted leader order.
//!
//! Batches cross as contiguous buffers: public keys n×32 bytes, proofs n×80, alphas concatenated
//! with n little-endian u32 lengths, weights n little-endian u64. The GIL is released around
//! verification and the leader draw.

use pyo3::create_exception;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use super::crypto::{fixed, fixed_items, hashes};
use crate::ed25519::{PUBLIC_KEY_LEN, SECRET_KEY_LEN};
use crate::leader::{self, LeaderError, ProposerError};
use crate::vrf::{self, Item, VRF_OUTPUT_LEN, VRF_PROOF_LEN};

create_exception!(
    timecoin_native,
    IneligibleProposer,
    PyValueError,
    "A block proposer that may not propose at this (height, round). Its `code` attribute is \
     'not_in_set', 'wrong_rank' or 'bad_vrf_proof'."
);

fn leader_err(e: LeaderError) -> PyErr {
    PyValueError::new_err(e.to_string())
}

fn weights_from(weights: &[u8]) -> PyResult<Vec<u64>> {
    Ok(fixed_items::<8>("weights", weights)?
        .iter()
        .map(|w| u64::from_le_bytes(*w))
        .collect())
}

#[pyfunction]
fn vrf_prove<'py>(
    py: Python<'py>,
    secret_key: &[u8],
    alpha: &[u8],
) -> PyResult<(Bound<'py, PyBytes>, Bound<'py, PyBytes>)> {
    let sk = fixed::<SECRET_KEY_LEN>("secret_key", secret_key)?;
    let (proof, output) =
        vrf::prove(sk, alpha).map_err(|e| PyValueError::new_err(e.to_string()))?;
    Ok((PyBytes::new(py, &proof), PyBytes::new(py, &output)))
}

#[pyfunction]
fn vrf_verify<'py>(
    py: Python<'py>,
    public_key: &[u8],
    proof: &[u8],
    alpha: &[u8],
) -> PyResult<Bound<'py, PyBytes>> {
    let pk = fixed::<PUBLIC_KEY_LEN>("public_key", public_key)?;
    let proof = fixed::<VRF_PROOF_LEN>("proof", proof)?;
    let output = vrf::verify(pk, proof, alpha).map_err(|e| PyValueError::new_err(e.to_string()))?;
    Ok(PyBytes::new(py, &output))
}

#[pyfunction]
#[pyo3(signature = (public_keys, proofs, alphas, alpha_lengths, parallel = true))]
fn vrf_verify_batch<'py>(
    py: Python<'py>,
    public_keys: &[u8],
    proofs: &[u8],
    alphas: &[u8],
    alpha_lengths: &[u8],
    parallel: bool,
) -> PyResult<Vec<Option<Bound<'py, PyBytes>>>> {
    let pks = fixed_items::<PUBLIC_KEY_LEN>("public_keys", public_keys)?;
    let proofs = fixed_items::<VRF_PROOF_LEN>("proofs", proofs)?;
    let lens = fixed_items::<4>("alpha_lengths", alpha_lengths)?;
    if pks.len() != proofs.len() || pks.len() != lens.len() {
        return Err(PyValueError::new_err(format!(
            "batch sizes differ: {} public keys, {} proofs, {} alpha lengths",
            pks.len(),
            proofs.len(),
            lens.len()
        )));
    }
    let mut items = Vec::with_capacity(pks.len());
    let mut offset = 0usize;
    for ((pk, proof), len) in pks.iter().zip(proofs).zip(lens) {
        let end = offset
            .checked_add(u32::from_le_bytes(*len) as usize)
            .filter(|&end| end <= alphas.len())
            .ok_or_else(|| PyValueError::new_err("alpha_lengths add up to more than alphas"))?;
        items.push(Item {
            public_key: pk,
            proof,
            alpha: &alphas[offset..end],
        });
        offset = end;
    }
    if offset != alphas.len() {
        return Err(PyValueError::new_err(format!(
            "alpha_lengths add up to {offset} bytes but alphas has {}",
            alphas.len()
        )));
    }
    let outputs: Vec<Option<[u8; VRF_OUTPUT_LEN]>> =
        py.detach(|| vrf::verify_batch(&items, parallel));
    Ok(outputs
        .iter()
        .map(|o| o.as_ref().map(|out| PyBytes::new(py, out)))
        .collect())
}

#[pyfunction]
fn vrf_alpha<'py>(
    py: Python<'py>,
    seed: &[u8],
    height: u64,
    round: u32,
) -> PyResult<Bound<'py, PyBytes>> {
    let seed = fixed::<VRF_OUTPUT_LEN>("seed", seed)?;
    Ok(PyBytes::new(py, &leader::vrf_alpha(seed, height, round)))
}

#[pyfunction]
fn leader_order(
    py: Python<'_>,
    seed: &[u8],
    height: u64,
    public_keys: &Bound<'_, PyAny>,
    weights: &[u8],
    count: usize,
) -> PyResult<Vec<usize>> {
    let seed = fixed::<VRF_OUTPUT_LEN>("seed", seed)?;
    let keys = hashes("public_keys", public_keys)?;
    let weights = weights_from(weights)?;
    py.detach(|| leader::leader_order(seed, height, &keys, &weights, count))
        .map_err(leader_err)
}

#[pyfunction]
fn leader_rank(
    py: Python<'_>,
    seed: &[u8],
    height: u64,
    public_keys: &Bound<'_, PyAny>,
    weights: &[u8],
    public_key: &[u8],
) -> PyResult<usize> {
    let seed = fixed::<VRF_OUTPUT_LEN>("seed", seed)?;
    let keys = hashes("public_keys", public_keys)?;
    let weights = weights_from(weights)?;
    let key = fixed::<PUBLIC_KEY_LEN>("public_key", public_key)?;
    py.detach(|| leader::leader_rank(seed, height, &keys, &weights, key))
        .map_err(leader_err)
}

#[pyfunction]
fn round_leader(
    py: Python<'_>,
    seed: &[u8],
    height: u64,
    round: u32,
    public_keys: &Bound<'_, PyAny>,
    weights: &[u8],
) -> PyResult<usize> {
    let seed = fixed::<VRF_OUTPUT_LEN>("seed", seed)?;
    let keys = hashes("public_keys", public_keys)?;
    let weights = weights_from(weights)?;
    py.detach(|| leader::round_leader(seed, height, round, &keys, &weights))
        .map_err(leader_err)
}

#[pyfunction]
#[allow(clippy::too_many_arguments)]
fn check_proposer<'py>(
    py: Python<'py>,
    seed: &[u8],
    height: u64,
    round: u32,
    public_keys: &Bound<'py, PyAny>,
    weights: &[u8],
    proposer: &[u8],
    proof: &[u8],
) -> PyResult<Bound<'py, PyBytes>> {
    let seed = fixed::<VRF_OUTPUT_LEN>("seed", seed)?;
    let keys = hashes("public_keys", public_keys)?;
    let weights = weights_from(weights)?;
    let proposer = fixed::<PUBLIC_KEY_LEN>("proposer", proposer)?;
    let proof = fixed::<VRF_PROOF_LEN>("proof", proof)?;
    match py
        .detach(|| leader::check_proposer(seed, height, round, &keys, &weights, proposer, proof))
    {
        Ok(output) => Ok(PyBytes::new(py, &output)),
        // A malformed set is the caller's bad input, not an ineligible proposer.
        Err(ProposerError::Set(e)) if e != LeaderError::NotInSet => Err(leader_err(e)),
        Err(e) => {
            let err = IneligibleProposer::new_err(e.to_string());
            err.value(py).setattr("code", e.code())?;
            Err(err)
        }
    }
}

pub(super) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("VRF_PROOF_LEN", VRF_PROOF_LEN)?;
    m.add("VRF_OUTPUT_LEN", VRF_OUTPUT_LEN)?;
    m.add("VRF_ALPHA_LEN", leader::VRF_ALPHA_LEN)?;
    m.add(
        "IneligibleProposer",
        m.py().get_type::<IneligibleProposer>(),
    )?;
    m.add_function(wrap_pyfunction!(vrf_prove, m)?)?;
    m.add_function(wrap_pyfunction!(vrf_verify, m)?)?;
    m.add_function(wrap_pyfunction!(vrf_verify_batch, m)?)?;
    m.add_function(wrap_pyfunction!(vrf_alpha, m)?)?;
    m.add_function(wrap_pyfunction!(leader_order, m)?)?;
    m.add_function(wrap_pyfunction!(leader_rank, m)?)?;
    m.add_function(wrap_pyfunction!(round_leader, m)?)?;
    m.add_function(wrap_pyfunction!(check_proposer, m)?)?;
    Ok(())
}
