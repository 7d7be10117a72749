//! Snapshot and restore end to end, in one KVM test host job driven by
//! `tests/snapshot/inside.sh` (mode `test`): the mbr appliance booted to
//! `http:80`, `ovf-run snapshot src DIR --stop`; three clones restored at
//! once, each serving on its own published port; a file written in clone 1
//! (logged in on its console) is served by clone 1 and not by clone 2 nor
//! by a fresh restore; clone 1's uptime continues from the snapshot and its
//! clock is right, and it has a new ACPI VM generation ID (not the one in
//! the snapshot's memory); every clone powers off with exit 0; then a truncated
//! memory file, a state file of another format version and a modified
//! package are refused with exit 1 and a clear message, nothing left
//! running.

use std::time::Duration;
use testbed::{appliance_path, job, scratch_dir, Variant};

#[test]
fn three_clones_of_a_ready_appliance() {
    let ova = appliance_path(Variant::Mbr).unwrap_or_else(|e| panic!("{e}"));
    let dir = scratch_dir("snapshot").expect("scratch directory");
    let work = dir.path();
    let args = [
        env!("CARGO_BIN_EXE_ovf-run").to_string(),
        ova.display().to_string(),
        "test".to_string(),
    ];
    let out = job::run_script(
        "tests/snapshot/inside.sh",
        work,
        &args,
        Duration::from_secs(2400),
    );
    let ctx = job::report(
        &out,
        work,
        &["c1.stderr", "c1.console", "snapshot.stderr", "src.stderr"],
    );
    assert!(
        out.status == 0 && out.stdout.contains("SNAPSHOT-TEST DONE"),
        "the snapshot test in the test host failed:\n{ctx}"
    );
    for line in [
        "SNAPSHOT-TEST snapshot: src: snapshot in",
        "SNAPSHOT-TEST 3 clones serve on",
        "SNAPSHOT-TEST c1 uptime continues from the snapshot",
        "SNAPSHOT-TEST c1 has a new VM generation ID",
        "SNAPSHOT-TEST c1's file: served by c1, not by c2",
        "SNAPSHOT-TEST 3 clones powered off, exit 0",
        "SNAPSHOT-TEST a fresh restore does not see c1's file; exit 0",
        "SNAPSHOT-TEST --snapshot-when-ready: a snapshot of the clone",
        "SNAPSHOT-TEST refused truncated-memory: exit 1",
        "SNAPSHOT-TEST refused other-version: exit 1",
        "SNAPSHOT-TEST refused modified-package: exit 1",
        "SNAPSHOT-TEST nothing left",
    ] {
        assert!(out.stdout.contains(line), "missing {line:?}:\n{ctx}");
    }
    eprintln!("{}", out.stdout);
}
