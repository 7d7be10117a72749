//! Remove an export's partial file when the process is interrupted.
//!
//! `export_raw` writes into a hidden `.NAME.*.partial` beside the output;
//! a failure drops (and so deletes) it, but SIGINT or SIGTERM end the
//! process without running destructors and would leave gigabytes behind.
//! While an export runs, this module handles those signals (and SIGHUP):
//! the handler unlinks the registered partial file, then restores the
//! default action and raises the signal again, so the process still ends
//! as the signal asks. Only signals left at their default action are taken
//! over, and the previous actions are restored when the export ends.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::atomic::{AtomicPtr, Ordering};

const SIGNALS: [libc::c_int; 3] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP];

/// The partial file to unlink, as a C string (null: none). Strings put here
/// are leaked on purpose: a handler may be reading one on another thread.
static PARTIAL: AtomicPtr<libc::c_char> = AtomicPtr::new(std::ptr::null_mut());

extern "C" fn on_signal(sig: libc::c_int) {
    let path = PARTIAL.swap(std::ptr::null_mut(), Ordering::SeqCst);
    // SAFETY: unlink, signal and raise are async-signal-safe; `path` is a
    // leaked, never-freed C string or null.
    unsafe {
        if !path.is_null() {
            libc::unlink(path);
        }
        libc::signal(sig, libc::SIG_DFL);
        libc::raise(sig);
    }
}

/// While alive, an interrupting signal deletes `path` before the process ends.
pub struct PartialGuard {
    taken: Vec<libc::c_int>,
}

impl PartialGuard {
    pub fn new(path: &Path) -> PartialGuard {
        let Ok(c) = CString::new(path.as_os_str().as_bytes()) else {
            return PartialGuard { taken: Vec::new() };
        };
        PARTIAL.store(c.into_raw(), Ordering::SeqCst);
        let mut taken = Vec::new();
        for sig in SIGNALS {
            // SAFETY: plain sigaction calls with zeroed, then filled structs.
            unsafe {
                let mut old: libc::sigaction = std::mem::zeroed();
                if libc::sigaction(sig, std::ptr::null(), &mut old) != 0
                    || old.sa_sigaction != libc::SIG_DFL
                {
                    continue;
                }
                let mut new: libc::sigaction = std::mem::zeroed();
                new.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as usize;
                libc::sigemptyset(&mut new.sa_mask);
                if libc::sigaction(sig, &new, std::ptr::null_mut()) == 0 {
                    taken.push(sig);
                }
            }
        }
        PartialGuard { taken }
    }
}

impl Drop for PartialGuard {
    fn drop(&mut self) {
        PARTIAL.store(std::ptr::null_mut(), Ordering::SeqCst);
        for &sig in &self.taken {
            // SAFETY: restores the default action this guard replaced.
            unsafe {
                libc::signal(sig, libc::SIG_DFL);
            }
        }
    }
}
