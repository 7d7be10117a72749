//! OVF/OVA packages: tar index, OVF model, manifest and certificate checks.
//!
//! This crate turns a file the user downloaded into a plain description of
//! the machine to run. It never touches KVM and never writes into a package.

pub mod cert;
pub mod machine;
pub mod manifest;
pub mod model;
pub mod package;
pub mod tar_index;
pub mod units;
pub mod verify;
pub mod xml;

pub use machine::{machine_spec, MachineSpec};
pub use package::{Package, PackageError};
