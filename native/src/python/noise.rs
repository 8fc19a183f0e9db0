//! Bindings of the Noise transport (native/src/noise.rs): `NoiseHandshake` for the three
//! handshake messages, `NoiseTransport` for the session after it. Encryption and decryption take
//! whole buffers (one call per chunk read from or written to the socket, never per frame) and
//! run with the GIL released.

use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use super::crypto::fixed;
use crate::noise::{self, Handshake, Transport, KEY_LEN};

fn value_error(e: noise::NoiseError) -> PyErr {
    PyValueError::new_err(e.0)
}

/// The X25519 public key of a 32-byte Noise static secret.
#[pyfunction]
fn noise_public_key<'py>(py: Python<'py>, secret: &[u8]) -> PyResult<Bound<'py, PyBytes>> {
    let secret = fixed::<KEY_LEN>("secret", secret)?;
    Ok(PyBytes::new(py, &noise::public_key(secret)))
}

/// One side of a Noise XX handshake (`NOISE_PROTOCOL`).
#[pyclass(name = "NoiseHandshake", module = "timecoin_native")]
pub struct PyNoiseHandshake {
    inner: Option<Handshake>,
}

impl PyNoiseHandshake {
    fn state(&mut self) -> PyResult<&mut Handshake> {
        self.inner
            .as_mut()
            .ok_or_else(|| PyRuntimeError::new_err("the handshake was turned into a transport"))
    }
}

#[pymethods]
impl PyNoiseHandshake {
    #[new]
    #[pyo3(signature = (initiator, prologue, static_secret, ephemeral_secret = None))]
    fn new(
        initiator: bool,
        prologue: &[u8],
        static_secret: &[u8],
        ephemeral_secret: Option<&[u8]>,
    ) -> PyResult<Self> {
        let secret = fixed::<KEY_LEN>("static_secret", static_secret)?;
        let ephemeral = ephemeral_secret
            .map(|e| fixed::<KEY_LEN>("ephemeral_secret", e))
            .transpose()?;
        let inner = Handshake::new(initiator, prologue, secret, ephemeral).map_err(value_error)?;
        Ok(PyNoiseHandshake { inner: Some(inner) })
    }

    fn write_message<'py>(
        &mut self,
        py: Python<'py>,
        payload: &[u8],
    ) -> PyResult<Bound<'py, PyBytes>> {
        let out = self.state()?.write_message(payload).map_err(value_error)?;
        Ok(PyBytes::new(py, &out))
    }

    fn read_message<'py>(
        &mut self,
        py: Python<'py>,
        message: &[u8],
    ) -> PyResult<Bound<'py, PyBytes>> {
        let out = self.state()?.read_message(message).map_err(value_error)?;
        Ok(PyBytes::new(py, &out))
    }

    #[getter]
    fn finished(&mut self) -> PyResult<bool> {
        Ok(self.state()?.is_finished())
    }

    #[getter]
    fn initiator(&mut self) -> PyResult<bool> {
        Ok(self.state()?.is_initiator())
    }

    #[getter]
    fn remote_static<'py>(&mut self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyBytes>>> {
        Ok(self.state()?.remote_static().map(|k| PyBytes::new(py, &k)))
    }

    #[getter]
    fn handshake_hash<'py>(&mut self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        Ok(PyBytes::new(py, &self.state()?.handshake_hash()))
    }

    fn finish(&mut self) -> PyResult<PyNoiseTransport> {
        let state = self
            .inner
            .take()
            .ok_or_else(|| PyRuntimeError::new_err("the handshake was turned into a transport"))?;
        if !state.is_finished() {
            self.inner = Some(state);
            return Err(PyRuntimeError::new_err("the handshake is not finished"));
        }
        let inner = state.into_transport().map_err(value_error)?;
        Ok(PyNoiseTransport { inner })
    }
}

/// Both directions of an established Noise session.
#[pyclass(name = "NoiseTransport", module = "timecoin_native")]
pub struct PyNoiseTransport {
    inner: Transport,
}

#[pymethods]
impl PyNoiseTransport {
    fn encrypt<'py>(&mut self, py: Python<'py>, plaintext: &[u8]) -> PyResult<Bound<'py, PyBytes>> {
        let inner = &mut self.inner;
        let out = py
            .detach(|| inner.encrypt(plaintext))
            .map_err(value_error)?;
        Ok(PyBytes::new(py, &out))
    }

    fn decrypt<'py>(&mut self, py: Python<'py>, data: &[u8]) -> PyResult<Bound<'py, PyBytes>> {
        let inner = &mut self.inner;
        let out = py.detach(|| inner.decrypt(data)).map_err(value_error)?;
        Ok(PyBytes::new(py, &out))
    }

    #[getter]
    fn buffered(&self) -> usize {
        self.inner.buffered()
    }

    #[getter]
    fn sending_nonce(&self) -> u64 {
        self.inner.nonces().0
    }

    #[getter]
    fn receiving_nonce(&self) -> u64 {
        self.inner.nonces().1
    }

    #[getter]
    fn remote_static<'py>(&self, py: Python<'py>) -> Option<Bound<'py, PyBytes>> {
        self.inner.remote_static().map(|k| PyBytes::new(py, &k))
    }

    #[getter]
    fn handshake_hash<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, self.inner.handshake_hash())
    }
}

pub(super) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("NOISE_PROTOCOL", noise::PROTOCOL_NAME)?;
    m.add("NOISE_MAX_MESSAGE_LEN", noise::MAX_MESSAGE_LEN)?;
    m.add("NOISE_MAX_PLAINTEXT", noise::MAX_PLAINTEXT)?;
    m.add("NOISE_TAG_LEN", noise::TAG_LEN)?;
    m.add_function(wrap_pyfunction!(noise_public_key, m)?)?;
    m.add_class::<PyNoiseHandshake>()?;
    m.add_class::<PyNoiseTransport>()?;
    Ok(())
}
