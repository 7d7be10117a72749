//! Run commands with a real `/dev/kvm`: natively on hardware KVM, or inside
//! the KVM test host (a QEMU TCG guest with nested SVM) when this machine's
//! `/dev/kvm` is PVM.
//!
//! The runner is a thin wrapper over `scripts/kvm-run` so that tests, benches
//! and people at a shell all go through the same detection, lock and time
//! limit.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

/// Where commands run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KvmMode {
    /// This machine's `/dev/kvm` runs Linux guests.
    Native,
    /// Commands run inside the KVM test host.
    TestHost,
}

/// Why a command could not be run (not: why it failed; see `RunOutput`).
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("{what} is missing: run {fix}")]
    Missing { what: String, fix: String },
    #[error("KVM detection (scripts/kvm-mode) failed: {0}")]
    Detection(String),
    #[error("cannot {0}: {1}")]
    Io(String, #[source] std::io::Error),
}

/// Options for one run.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Time limit, test host boot included. On expiry the status is 124.
    pub timeout: Duration,
    /// Test host memory in MiB (default of the script: 6144).
    pub mem_mib: Option<u32>,
    /// A directory (under the cache, not /tmp) shared read-write at the same
    /// path, e.g. for a guest's serial console.
    pub share: Option<PathBuf>,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            timeout: Duration::from_secs(600),
            mem_mib: None,
            share: None,
        }
    }
}

/// What a finished command left behind.
#[derive(Debug, Clone)]
pub struct RunOutput {
    /// Exit status: the command's own; 124 on timeout; 125 when the test host
    /// failed; -1 when killed by a signal.
    pub status: i32,
    pub stdout: String,
    pub stderr: String,
}

impl RunOutput {
    fn from_output(out: Output) -> Self {
        RunOutput {
            status: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// True when the command exited with status 0.
    pub fn success(&self) -> bool {
        self.status == 0
    }
}

/// Runs commands where a real `/dev/kvm` is available.
#[derive(Debug, Clone)]
pub struct KvmRunner {
    mode: KvmMode,
    scripts: PathBuf,
}

impl KvmRunner {
    /// Detect the mode (see `scripts/kvm-mode`; `OVF_RUN_KVM` overrides) and
    /// check that what that mode needs exists.
    pub fn new() -> Result<Self, RunError> {
        let scripts = crate::repo_root().join("scripts");
        let out = Command::new(scripts.join("kvm-mode"))
            .stderr(Stdio::piped())
            .output()
            .map_err(|e| RunError::Io(format!("run {}", scripts.join("kvm-mode").display()), e))?;
        let answer = String::from_utf8_lossy(&out.stdout).trim().to_string();
        let mode = match answer.as_str() {
            "native" if out.status.success() => KvmMode::Native,
            "testhost" if out.status.success() => KvmMode::TestHost,
            _ => {
                return Err(RunError::Detection(
                    String::from_utf8_lossy(&out.stderr).trim().to_string(),
                ))
            }
        };
        if mode == KvmMode::TestHost {
            let ready = crate::cache_dir().join("testhost/READY");
            if !ready.is_file() {
                return Err(RunError::Missing {
                    what: format!(
                        "the KVM test host ({} not found; this machine's /dev/kvm cannot run Linux guests)",
                        ready.display()
                    ),
                    fix: "scripts/setup (or scripts/build-testhost)".into(),
                });
            }
        }
        Ok(KvmRunner { mode, scripts })
    }

    /// Where commands run.
    pub fn mode(&self) -> KvmMode {
        self.mode
    }

    /// The `scripts/kvm-run …` command for `args`, ready to be spawned.
    pub fn command<S: AsRef<std::ffi::OsStr>>(&self, opts: &RunOptions, args: &[S]) -> Command {
        let mut cmd = Command::new(self.scripts.join("kvm-run"));
        cmd.arg("--timeout")
            .arg(opts.timeout.as_secs().max(1).to_string());
        if let Some(mem) = opts.mem_mib {
            cmd.arg("--mem").arg(mem.to_string());
        }
        if let Some(share) = &opts.share {
            cmd.arg("--share").arg(share);
        }
        cmd.arg("--");
        cmd.args(args);
        cmd.env(
            "OVF_RUN_KVM",
            match self.mode {
                KvmMode::Native => "native",
                KvmMode::TestHost => "testhost",
            },
        );
        cmd.stdin(Stdio::null());
        // Own process group, so that `stop` reaches the scripts' children.
        cmd.process_group(0);
        cmd
    }

    /// Run `args` to completion and collect its output.
    pub fn run<S: AsRef<std::ffi::OsStr>>(
        &self,
        opts: &RunOptions,
        args: &[S],
    ) -> Result<RunOutput, RunError> {
        let out = self.command(opts, args).output().map_err(|e| {
            RunError::Io(format!("run {}", self.scripts.join("kvm-run").display()), e)
        })?;
        Ok(RunOutput::from_output(out))
    }

    /// Start `args` and return at once (stdout/stderr piped), e.g. to watch a
    /// console with `Console::wait_for_while`.
    pub fn spawn<S: AsRef<std::ffi::OsStr>>(
        &self,
        opts: &RunOptions,
        args: &[S],
    ) -> Result<Child, RunError> {
        self.command(opts, args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| {
                RunError::Io(
                    format!("start {}", self.scripts.join("kvm-run").display()),
                    e,
                )
            })
    }

    /// Path of a script under `scripts/`.
    pub fn script(&self, name: &str) -> PathBuf {
        self.scripts.join(name)
    }
}

/// Stop a child started in its own process group (`KvmRunner::spawn`, or a
/// `Command` with `process_group(0)`): SIGTERM to the whole group, which
/// `scripts/kvm-run` turns into stopping its QEMU (releasing the test host
/// lock at once instead of at the time limit), then reap it.
pub fn stop(child: &mut Child) {
    if let Ok(pid) = i32::try_from(child.id()) {
        // SAFETY: plain kill(2) on our own child's process group.
        unsafe { libc::kill(-pid, libc::SIGTERM) };
    }
    let _ = child.wait();
}

/// Runner for a test that needs KVM: panics with the reason when none is
/// usable, so a missing test host fails the test instead of skipping it.
pub fn runner_or_fail() -> KvmRunner {
    match KvmRunner::new() {
        Ok(r) => r,
        Err(e) => {
            panic!("this test needs a /dev/kvm able to run Linux guests and none is usable: {e}")
        }
    }
}

/// True if `path` is somewhere the test host cannot see at the same path.
pub fn hidden_in_test_host(path: &Path) -> bool {
    path.starts_with("/tmp") || path.starts_with("/run")
}
