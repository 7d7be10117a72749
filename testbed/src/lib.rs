//! Test harness for end-to-end tests: run commands and guests where a real
//! `/dev/kvm` exists (natively, or inside the KVM test host built by
//! `scripts/build-testhost`), capture serial consoles and wait for markers.
//!
//! This machine's `/dev/kvm` may be PVM, which cannot run a real Linux
//! guest; the scripts under `scripts/` hide that: `scripts/kvm-run` runs a
//! command natively or in the test host. Tests that need KVM and cannot run
//! fail with the reason; they never pass silently.

pub mod appliance;
pub mod console;
pub mod job;
pub mod probe;
pub mod runner;

pub use appliance::{appliance_path, scratch_dir, Variant};
pub use console::{Console, WaitError};
pub use runner::{runner_or_fail, stop, KvmMode, KvmRunner, RunError, RunOptions, RunOutput};

use std::path::PathBuf;

/// The repository root (the workspace), where `scripts/` lives.
pub fn repo_root() -> PathBuf {
    // testbed/ is one level below the workspace root.
    let here = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    here.parent().map(PathBuf::from).unwrap_or(here)
}

/// The cache shared by the scripts: `$OVF_RUN_CACHE` or `~/.cache/ovf-run`.
pub fn cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("OVF_RUN_CACHE") {
        return PathBuf::from(dir);
    }
    let home = std::env::var_os("HOME").unwrap_or_else(|| "/root".into());
    PathBuf::from(home).join(".cache/ovf-run")
}
