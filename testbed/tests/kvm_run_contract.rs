//! The contract of scripts/kvm-run that tests and benches rely on: exit
//! status, stdout/stderr, environment, cwd, the shared directory and the
//! time limit. Native mode is checked directly (fast); the test host case
//! boots the test host once (~15 s) when this machine needs it.

use std::time::Duration;

use testbed::{runner_or_fail, scratch_dir, KvmMode, RunOptions};

fn kvm_run_native(args: &[&str]) -> std::process::Output {
    std::process::Command::new(testbed::repo_root().join("scripts/kvm-run"))
        .args(args)
        .env("OVF_RUN_KVM", "native")
        .output()
        .expect("run scripts/kvm-run")
}

#[test]
fn native_mode_passes_the_exit_status_through() {
    let out = kvm_run_native(&["--", "sh", "-c", "echo out; echo err >&2; exit 7"]);
    assert_eq!(out.status.code(), Some(7));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "out\n");
    assert_eq!(String::from_utf8_lossy(&out.stderr), "err\n");
}

#[test]
fn native_mode_enforces_the_time_limit_with_124() {
    let out = kvm_run_native(&["--timeout", "1", "--", "sleep", "30"]);
    assert_eq!(out.status.code(), Some(124));
    assert!(String::from_utf8_lossy(&out.stderr).contains("timed out after 1s"));
}

#[test]
fn usage_errors_say_what_is_wrong() {
    let out = kvm_run_native(&["--bogus"]);
    assert_ne!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown option --bogus"));
}

#[test]
fn environment_cwd_share_and_status_carry_over_where_kvm_is() {
    let runner = runner_or_fail();
    let share = scratch_dir("kvm-run-contract").expect("scratch directory");
    let opts = RunOptions {
        timeout: Duration::from_secs(300),
        share: Some(share.path().to_path_buf()),
        ..RunOptions::default()
    };
    let script = format!(
        "echo \"var=$OVF_RUN_TEST_VAR cwd=$PWD\"; test -c /dev/kvm && echo kvm=yes; \
         echo written > {}/from-inside; echo to-stderr >&2; exit 5",
        share.path().display()
    );
    let mut cmd = runner.command(&opts, &["bash", "-c", &script]);
    cmd.env("OVF_RUN_TEST_VAR", "a b")
        .current_dir(testbed::repo_root());
    let out = cmd.output().expect("run scripts/kvm-run");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(5),
        "mode {:?}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        runner.mode()
    );
    assert!(
        stdout.contains(&format!("var=a b cwd={}", testbed::repo_root().display())),
        "{stdout}"
    );
    assert!(stdout.contains("kvm=yes"), "{stdout}");
    assert!(stderr.contains("to-stderr"), "{stderr}");
    // The job's own failure is its result: never a retry.
    assert!(!stderr.contains("TEST HOST DIED"), "{stderr}");
    let written = std::fs::read_to_string(share.path().join("from-inside")).unwrap_or_default();
    assert_eq!(
        written,
        "written\n",
        "file written in the shared directory (mode {:?})",
        runner.mode()
    );
    if runner.mode() == KvmMode::TestHost {
        eprintln!("checked inside the KVM test host");
    }
}
