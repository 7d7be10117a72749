//! Seccomp allow-lists for the threads the monitor starts.
//!
//! Every thread that runs while a guest runs (vCPUs, the VM loop, device
//! workers, network I/O, passt relays, disk read-ahead) calls [`install`]
//! with its [`Kind`] once its setup is done and before it handles anything
//! the guest controls. The filter allows the system calls that kind of
//! thread makes (lists in [`lists`], read off `strace -ff` of real boots)
//! and traps everything else: a SIGSYS handler writes
//! `ovf-run: seccomp: thread <name> (<kind>) made the forbidden system call <n> (<name>)`
//! to stderr and ends the process with status 159 (128 + SIGSYS), so a
//! missing entry is a loud, named failure and never a silent hang.
//! seccompiler sets `PR_SET_NO_NEW_PRIVS` before each filter.
//!
//! Filters are per thread (no TSYNC): a test harness that embeds the
//! launch library keeps its own threads unfiltered. [`set_enabled`]`(false)`
//! (the CLI's `--seccomp=off`) turns installation off for the whole
//! process, for debugging.
//!
//! What this does not do: argument filtering beyond ioctl numbers on vCPU
//! threads (file descriptors are not checked), filters for threads of the
//! embedding program, or the passt process (passt sandboxes itself).

mod lists;
mod sigsys;

pub use lists::Kind;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};

use seccompiler::{BpfProgram, SeccompAction, SeccompFilter, SeccompRule, TargetArch};

static ENABLED: AtomicBool = AtomicBool::new(true);

thread_local! {
    /// The kind this thread's filter was installed for, if any.
    static INSTALLED: std::cell::Cell<Option<Kind>> = const { std::cell::Cell::new(None) };
}

/// Why a filter could not be built or installed.
#[derive(Debug, thiserror::Error)]
pub enum FilterError {
    #[error("cannot build the seccomp filter for {kind:?} threads: {source}")]
    Build {
        kind: Kind,
        #[source]
        source: seccompiler::BackendError,
    },
    #[error("cannot install the seccomp filter for {kind:?} threads (run with --seccomp=off to go without): {source}")]
    Install {
        kind: Kind,
        #[source]
        source: seccompiler::Error,
    },
    #[error("cannot install the SIGSYS handler for seccomp: {0}")]
    Handler(#[source] std::io::Error),
}

/// Turn filter installation on or off for the whole process (default on).
pub fn set_enabled(on: bool) {
    ENABLED.store(on, Ordering::SeqCst);
}

/// Whether [`install`] installs filters.
pub fn enabled() -> bool {
    ENABLED.load(Ordering::SeqCst)
}

/// Install the filter for `kind` on the calling thread (nothing when
/// disabled, nothing more when this thread already has one: the VM loop
/// calls this again for every VM it builds after a reset). Irreversible
/// for the thread.
pub fn install(kind: Kind) -> Result<(), FilterError> {
    if !enabled() || INSTALLED.with(|i| i.get()).is_some() {
        return Ok(());
    }
    let program = compile(kind)?;
    apply(kind, &program)?;
    INSTALLED.with(|i| i.set(Some(kind)));
    Ok(())
}

/// [`install`], and when that fails (a kernel without seccomp), say so on
/// the log and go on unfiltered: for the threads' own closures, which have
/// nobody to return an error to. The monitor checks with [`check`] before
/// the guest starts, so this is not expected to fail.
pub fn install_or_log(kind: Kind) {
    if let Err(e) = install(kind) {
        eprintln!("ovf-run: warning: {e}; this thread runs without its seccomp filter");
    }
}

/// Build every kind's filter: an error here (before the guest starts) is
/// better than a thread without its filter later.
pub fn check() -> Result<(), FilterError> {
    if !enabled() {
        return Ok(());
    }
    for kind in Kind::ALL {
        compile(kind)?;
    }
    Ok(())
}

/// Install an already compiled filter on the calling thread, with the
/// SIGSYS reporter. Allocates nothing once the handler is in place, so a
/// forked child may call it.
pub fn apply(kind: Kind, program: &BpfProgram) -> Result<(), FilterError> {
    sigsys::install_handler(kind).map_err(FilterError::Handler)?;
    seccompiler::apply_filter(program).map_err(|source| FilterError::Install { kind, source })
}

/// The BPF program for `kind`: its allow-list, everything else trapped.
pub fn compile(kind: Kind) -> Result<BpfProgram, FilterError> {
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> = BTreeMap::new();
    for &nr in lists::COMMON.iter().chain(kind.syscalls().iter()) {
        rules.insert(nr, Vec::new());
    }
    for (nr, conditions) in kind
        .conditional()
        .map_err(|source| FilterError::Build { kind, source })?
    {
        rules.insert(nr, conditions);
    }
    // OVF_RUN_SECCOMP_LOG=1: calls off the lists are allowed and logged by
    // the kernel (audit type 1326, with the thread's name) instead of
    // trapped: how the lists are checked against a real boot.
    let mismatch = if std::env::var_os("OVF_RUN_SECCOMP_LOG").is_some() {
        SeccompAction::Log
    } else {
        SeccompAction::Trap
    };
    let filter = SeccompFilter::new(rules, mismatch, SeccompAction::Allow, TargetArch::x86_64)
        .map_err(|source| FilterError::Build { kind, source })?;
    filter
        .try_into()
        .map_err(|source| FilterError::Build { kind, source })
}

#[cfg(test)]
mod tests;
