//! The pyo3 binding layer: converts types, checks lengths, releases the GIL around batch work and
//! calls the plain-Rust modules. No logic of its own (DESIGN §2). One file per area; each has a
//! `register` that adds its functions and classes to the module.

use pyo3::prelude::*;

mod codec;
mod crypto;
mod ledger;
mod noise;
mod vrf;

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", crate::VERSION)?;
    m.add("build_profile", crate::BUILD_PROFILE)?;
    codec::register(m)?;
    crypto::register(m)?;
    ledger::register(m)?;
    noise::register(m)?;
    vrf::register(m)?;
    Ok(())
}
