//! SIGINT/SIGTERM become a request to stop (the power button first), and a
//! real-time signal kicks vCPU threads out of KVM_RUN.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Once;

static STOP_REQUESTED: AtomicBool = AtomicBool::new(false);
static INSTALL: Once = Once::new();

extern "C" fn on_stop(_: libc::c_int) {
    STOP_REQUESTED.store(true, Ordering::SeqCst);
}

extern "C" fn on_kick(_: libc::c_int) {}

/// The signal used to interrupt a vCPU thread.
pub fn kick_signal() -> libc::c_int {
    libc::SIGRTMIN()
}

pub fn install() {
    INSTALL.call_once(|| {
        // SAFETY: the handlers only touch an atomic; sa_mask is empty and no
        // SA_RESTART, so blocking calls (KVM_RUN) return EINTR.
        unsafe {
            for (sig, handler) in [
                (libc::SIGINT, on_stop as extern "C" fn(libc::c_int)),
                (libc::SIGTERM, on_stop),
                (kick_signal(), on_kick),
            ] {
                let mut sa: libc::sigaction = std::mem::zeroed();
                sa.sa_sigaction = handler as usize;
                libc::sigemptyset(&mut sa.sa_mask);
                libc::sigaction(sig, &sa, std::ptr::null_mut());
            }
        }
    });
}

/// Whether SIGINT/SIGTERM arrived since the last call.
pub fn take_stop_request() -> bool {
    STOP_REQUESTED.swap(false, Ordering::SeqCst)
}
