//! scripts/kvm-run survives a dead KVM test host and refuses what the test
//! host cannot see.
//!
//! - A job whose test host panics (`echo c > /proc/sysrq-trigger`, the same
//!   end as the emulated platform's "stack guard page was hit" crashes) is
//!   run once more in a fresh test host, loudly, and logged; a second death
//!   fails with 125. A job that finishes, whatever its status, is never run
//!   twice (the contract test's `exit 5` job checks that too).
//! - A cwd, cache or argument under /tmp or /run is refused before any test
//!   host boots: the test host mounts private tmpfs there.
//!
//! The deliberate deaths go to a death log of their own, so scripts/test's
//! "test host died N times" summary counts only real ones.

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use testbed::{runner_or_fail, scratch_dir, KvmMode, RunOptions};

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn lines_of(path: &Path) -> usize {
    std::fs::read_to_string(path)
        .map(|s| s.lines().count())
        .unwrap_or(0)
}

/// kvm-run forced into test host mode, from `cwd`.
fn kvm_run_testhost(cwd: &Path, args: &[&str]) -> Output {
    Command::new(testbed::repo_root().join("scripts/kvm-run"))
        .args(args)
        .current_dir(cwd)
        .env("OVF_RUN_KVM", "testhost")
        .output()
        .expect("run scripts/kvm-run")
}

#[test]
fn paths_the_test_host_hides_are_refused_before_it_boots() {
    let t0 = Instant::now();
    // A checkout (cwd) under /tmp.
    let tmp = tempfile::tempdir_in("/tmp").expect("temp dir in /tmp");
    let out = kvm_run_testhost(tmp.path(), &["--", "true"]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("the working directory") && err.contains("/tmp or /run"),
        "{err}"
    );
    // An argument naming a path there, from a good cwd; also as --opt=PATH.
    for arg in ["/tmp/disk.ova", "--console-log=/run/x/console"] {
        let out = kvm_run_testhost(&testbed::repo_root(), &["--", "ls", arg]);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{arg}: {err}");
        assert!(err.contains(&format!("the argument {arg}")), "{err}");
    }
    // None of this boots anything: a test host boot takes >= 10 s.
    assert!(t0.elapsed() < Duration::from_secs(8), "{:?}", t0.elapsed());
}

#[test]
fn a_dead_test_host_is_retried_once_then_reported() {
    let runner = runner_or_fail();
    if runner.mode() != KvmMode::TestHost {
        // Natively there is no test host to die; nothing to retry.
        eprintln!("native KVM: no test host, nothing to check");
        return;
    }
    let share = scratch_dir("kvm-run-survival").expect("scratch directory");
    let death_log = share.path().join("deaths.log");
    let opts = RunOptions {
        timeout: Duration::from_secs(300),
        // A small test host: these jobs only run a shell.
        mem_mib: Some(1024),
        share: Some(share.path().to_path_buf()),
    };
    let run = |script: &str| {
        let mut cmd = runner.command(&opts, &["bash", "-c", script]);
        cmd.env("OVF_RUN_TESTHOST_DEATH_LOG", &death_log)
            .current_dir(testbed::repo_root());
        cmd.output().expect("run scripts/kvm-run")
    };

    // Dies on the first attempt only (the marker file survives in the
    // share), and silently: sysrq 'o' powers the test host off at once with
    // no panic on its console, as when QEMU itself aborts (QEMU 10's TCG died
    // on "iotlb_to_section: Assertion ... failed" in a CI rehearsal).
    let first = share.path().join("first-attempt");
    let out = run(&format!(
        "if [ -e {m} ]; then echo survived attempt=$OVF_RUN_TESTHOST_ATTEMPT; exit 0; fi; \
         : > {m}; sync; echo o > /proc/sysrq-trigger; sleep 120",
        m = first.display()
    ));
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(
        out.status.code(),
        Some(0),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert_eq!(
        stdout, "survived attempt=2\n",
        "only the retried attempt's stdout"
    );
    assert!(
        stderr.contains("THE KVM TEST HOST DIED (attempt 1 of 2)"),
        "{stderr}"
    );
    assert!(
        stderr.contains("QEMU exited with status"),
        "the reason is shown: {stderr}"
    );
    assert!(stderr.contains("retrying once"), "{stderr}");
    assert_eq!(lines_of(&death_log), 1, "one death logged");

    // Dies every time: two attempts, then 125.
    let out = run("echo doomed; echo c > /proc/sysrq-trigger; sleep 120");
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(
        out.status.code(),
        Some(125),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(
        stderr.contains("THE KVM TEST HOST DIED (attempt 2 of 2)"),
        "{stderr}"
    );
    assert!(stderr.contains("giving up (status 125)"), "{stderr}");
    assert!(
        stderr.contains("Kernel panic"),
        "the reason is shown: {stderr}"
    );
    assert_eq!(lines_of(&death_log), 3, "two more deaths logged");
}
