//! The committed inputs of a cargo-fuzz crate, for replaying them as
//! ordinary tests: `seeds/TARGET/*` (the seed corpus `scripts/fuzz` starts
//! from) and `regressions/TARGET/*` (inputs that once crashed a target,
//! committed with their fix). Include with
//! `#[path = ".../tests/support/fuzz_inputs.rs"] mod fuzz_inputs;`.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// Every committed input for `target` under the fuzz crate at `fuzz_dir`,
/// as (path, bytes). Fails when the target has no seeds at all: a target
/// without a seed corpus is a mistake, not something to pass silently.
pub fn inputs(fuzz_dir: &Path, target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let mut found = Vec::new();
    for kind in ["seeds", "regressions"] {
        let dir = fuzz_dir.join(kind).join(target);
        let Ok(entries) = std::fs::read_dir(&dir) else {
            assert!(kind != "seeds", "{} is missing", dir.display());
            continue;
        };
        let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        paths.sort();
        for p in paths {
            let bytes = std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            found.push((p, bytes));
        }
    }
    assert!(
        !found.is_empty(),
        "no committed inputs for fuzz target {target}"
    );
    found
}
