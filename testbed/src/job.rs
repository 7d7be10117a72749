//! A test's script job in the KVM test host: `bash tests/X/inside.sh WORK
//! ARGS…` with WORK (a scratch directory) shared read-write, and the files
//! the script left in WORK quoted when the test fails. One test-host boot
//! per job; kvm-run retries the job when the test host dies.

use crate::runner::{runner_or_fail, RunOptions, RunOutput};
use std::path::Path;
use std::time::Duration;

/// Run `script` (relative to the repository root) with `work` as its first
/// argument and `args` after it.
pub fn run_script(script: &str, work: &Path, args: &[String], timeout: Duration) -> RunOutput {
    let runner = runner_or_fail();
    let mut all = vec![
        "bash".to_string(),
        crate::repo_root().join(script).display().to_string(),
        work.display().to_string(),
    ];
    all.extend_from_slice(args);
    let opts = RunOptions {
        timeout,
        mem_mib: None,
        share: Some(work.to_path_buf()),
    };
    runner.run(&opts, &all).expect("run scripts/kvm-run")
}

/// The job's status and output, then each named file of `work` (empty when
/// missing), for a failure message.
pub fn report(out: &RunOutput, work: &Path, files: &[&str]) -> String {
    let mut s = format!(
        "status {}\nstdout:\n{}\nstderr:\n{}",
        out.status, out.stdout, out.stderr
    );
    for f in files {
        let text = std::fs::read_to_string(work.join(f)).unwrap_or_default();
        s.push_str(&format!("\n{f}:\n{text}"));
    }
    s
}
