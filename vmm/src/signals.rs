//! The real-time signal that kicks a vCPU thread out of KVM_RUN
//! (`pthread_kill` to that one thread). The monitor installs no other
//! signal handler: stopping a VM goes through its [`crate::VmControl`].

use std::sync::Once;

static INSTALL: Once = Once::new();

extern "C" fn on_kick(_: libc::c_int) {}

/// The signal used to interrupt a vCPU thread.
pub fn kick_signal() -> libc::c_int {
    libc::SIGRTMIN()
}

pub fn install() {
    INSTALL.call_once(|| {
        // SAFETY: the handler does nothing; sa_mask is empty and no
        // SA_RESTART, so blocking calls (KVM_RUN) return EINTR.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_kick as extern "C" fn(libc::c_int) as usize;
            libc::sigemptyset(&mut sa.sa_mask);
            libc::sigaction(kick_signal(), &sa, std::ptr::null_mut());
        }
    });
}
