//! OVF/OVA packages: archive index (tar in place; zip, tar.gz, tar.xz),
//! OVF model, manifest and certificate checks, ProductSection properties
//! and the OVF environment document given to the guest.
//!
//! This crate turns a file the user downloaded into a plain description of
//! the machine to run. It never touches KVM and never writes into a package.

pub mod cert;
pub mod chunks;
pub mod container;
pub mod disks;
pub mod environment;
pub mod machine;
pub mod manifest;
pub mod model;
pub mod own_files;
pub mod package;
mod package_files;
pub mod properties;
pub mod regular_file;
pub mod tar_index;
pub mod units;
pub mod verify;
pub mod xml;

pub use machine::{machine_spec, MachineSpec};
pub use package::{Package, PackageError};
pub mod inspect;
pub mod verify_cache;

/// ovf-run's cache folder: `$XDG_CACHE_HOME/ovf-run` or `~/.cache/ovf-run`.
pub fn cache_dir() -> Option<std::path::PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| std::path::PathBuf::from(h).join(".cache")))?;
    Some(base.join("ovf-run"))
}
