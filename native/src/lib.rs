//! Hot paths of the TIME Coin node, in plain Rust.
//!
//! Every module here is compute over bytes with no Python in it: `cargo test` exercises it
//! directly. The pyo3 binding layer lives in [`python`] behind the `python` feature and only
//! converts types, releases the GIL and calls into these modules (DESIGN §2).

pub mod apply;
pub mod codec;
pub mod ed25519;
pub mod hash;
pub mod leader;
pub mod lthash;
pub mod merkle;
pub mod noise;
pub mod sigcache;
pub mod types;
pub mod utxo;
pub mod validate;
pub mod vrf;

#[cfg(feature = "python")]
mod python;

/// The crate version, reported to Python as `timecoin_native.__version__`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// "release" or "debug", reported as `timecoin_native.build_profile` so that nobody benchmarks a
/// debug build by mistake.
pub const BUILD_PROFILE: &str = if cfg!(debug_assertions) {
    "debug"
} else {
    "release"
};
