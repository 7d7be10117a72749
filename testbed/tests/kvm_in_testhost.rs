//! A KVM guest of a few million instructions runs where the harness says a
//! real /dev/kvm is (natively or in the KVM test host) and computes the right
//! result. Fails, never skips, when no usable KVM exists.

use std::time::Duration;

use testbed::{probe::expected_checksum, runner_or_fail, RunOptions};

#[test]
fn probe_guest_computes_its_checksum_with_real_kvm() {
    let runner = runner_or_fail();
    let iterations: u32 = 3_000_000; // three instructions each: ~9 million
    let probe = env!("CARGO_BIN_EXE_kvm-probe");
    let opts = RunOptions {
        timeout: Duration::from_secs(300),
        ..RunOptions::default()
    };
    let out = runner
        .run(&opts, &[probe, &iterations.to_string()])
        .expect("run kvm-probe through scripts/kvm-run");
    assert!(
        out.success(),
        "kvm-probe failed in mode {:?} with status {}\nstdout:\n{}\nstderr:\n{}",
        runner.mode(),
        out.status,
        out.stdout,
        out.stderr
    );
    let want = format!("checksum={:#010x}", expected_checksum(iterations));
    assert!(
        out.stdout.contains(&want),
        "expected {want} in:\n{}",
        out.stdout
    );
    eprintln!("{:?}: {}", runner.mode(), out.stdout.trim());
}
