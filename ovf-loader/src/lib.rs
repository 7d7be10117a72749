//! OVF/OVA packages: tar index, OVF model, manifest and certificate checks.
//!
//! This crate turns a file the user downloaded into a plain description of
//! the machine to run. It never touches KVM and never writes into a package.

pub mod model;
pub mod tar_index;
pub mod units;
pub mod xml;
