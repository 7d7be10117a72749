//! How devices tell the monitor that the VM should stop.
//!
//! The i8042 reset line, the ACPI sleep register and a failed vCPU all end
//! the run; the first reason recorded wins, and an eventfd wakes the main
//! loop so it does not have to poll.

use std::sync::Mutex;
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

/// Why the VM stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StopReason {
    /// The guest powered off (ACPI S5).
    Poweroff,
    /// The guest asked for a reset (i8042, ACPI reset register, triple fault).
    Reset,
    /// The user asked to quit from the console escape, or the monitor's
    /// owner killed the VM.
    UserQuit,
    /// A triple fault: a PC resets, but it usually means the guest crashed.
    TripleFault,
    /// The guest did something the hardware cannot run (KVM internal
    /// error, failed entry); the text says what.
    GuestCrash(String),
    /// Something failed; the text says what.
    Failed(String),
}

/// Shared between the devices, the vCPUs and the main loop.
pub struct StopSignal {
    reason: Mutex<Option<StopReason>>,
    event: EventFd,
}

impl StopSignal {
    pub fn new() -> std::io::Result<Self> {
        Ok(StopSignal {
            reason: Mutex::new(None),
            event: EventFd::new(EFD_NONBLOCK)?,
        })
    }

    /// Record `reason` unless one is already recorded, and wake the loop.
    pub fn stop(&self, reason: StopReason) {
        let mut r = self.reason.lock().unwrap_or_else(|e| e.into_inner());
        if r.is_none() {
            *r = Some(reason);
        }
        let _ = self.event.write(1);
    }

    pub fn reason(&self) -> Option<StopReason> {
        self.reason
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The eventfd that becomes readable when a reason is recorded.
    pub fn event(&self) -> &EventFd {
        &self.event
    }
}
