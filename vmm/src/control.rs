//! A handle on a running VM, usable from any thread: ask for an orderly
//! stop (the ACPI power button), kill it, and see whether its vCPUs run.
//!
//! There is no process-wide state: each VM has its own handle, so several
//! VMs can live in one process and the owner maps its own signals (if any)
//! onto the handles.

use crate::capture::{CaptureError, CaptureRequest, Captured, FinishHook};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Default)]
struct Inner {
    power_button: AtomicBool,
    kill: AtomicBool,
    running: AtomicBool,
    boots: AtomicU32,
    held: AtomicBool,
    capture: Mutex<Option<CaptureRequest>>,
}

/// Cheap to clone; all clones control the same VM.
#[derive(Clone, Default)]
pub struct VmControl(Arc<Inner>);

impl std::fmt::Debug for VmControl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VmControl")
            .field("running", &self.is_running())
            .field("boots", &self.boots())
            .finish()
    }
}

impl VmControl {
    pub fn new() -> Self {
        Self::default()
    }

    /// Press the power button (the guest decides how to shut down).
    pub fn power_button(&self) {
        self.0.power_button.store(true, Ordering::SeqCst);
    }

    /// Keep the vCPUs from starting until [`VmControl::release`]: the VM is
    /// built (memory, devices, kernel loaded) but runs no guest code. The
    /// owner uses the pause to finish its own setup first (the CLI installs
    /// its thread's seccomp filter there). Call before the VM starts.
    pub fn hold(&self) {
        self.0.held.store(true, Ordering::SeqCst);
    }

    /// Let held vCPUs start (nothing when not held).
    pub fn release(&self) {
        self.0.held.store(false, Ordering::SeqCst);
    }

    /// Wait while held; false when the VM was killed meanwhile.
    pub(crate) fn wait_released(&self) -> bool {
        while self.0.held.load(Ordering::SeqCst) {
            if self.killed() {
                return false;
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        !self.killed()
    }

    /// Stop the VM now, without asking the guest.
    pub fn kill(&self) {
        self.0.kill.store(true, Ordering::SeqCst);
    }

    /// Whether the vCPUs run (set once they are started, cleared at exit).
    pub fn is_running(&self) -> bool {
        self.0.running.load(Ordering::SeqCst)
    }

    /// How many times the guest was started (1 after the first boot, more
    /// after reboots).
    pub fn boots(&self) -> u32 {
        self.0.boots.load(Ordering::SeqCst)
    }

    /// Pause the running VM, read its vCPUs' and KVM devices' state (and
    /// write guest memory to `memory_file`, a new file, sparse), then let
    /// it run on. Blocks until done or `timeout`.
    pub fn capture(
        &self,
        memory_file: Option<&Path>,
        timeout: Duration,
    ) -> Result<Captured, CaptureError> {
        self.capture_with(memory_file, timeout, None)
    }

    /// [`VmControl::capture`], running `finish` on the VM's thread while
    /// the VM is still paused (see [`FinishHook`]).
    pub fn capture_with(
        &self,
        memory_file: Option<&Path>,
        timeout: Duration,
        finish: Option<FinishHook>,
    ) -> Result<Captured, CaptureError> {
        if !self.is_running() {
            return Err(CaptureError::NotRunning);
        }
        let (reply, answer) = std::sync::mpsc::channel();
        *self.0.capture.lock().unwrap_or_else(|p| p.into_inner()) = Some(CaptureRequest {
            memory_file: memory_file.map(Path::to_path_buf),
            finish,
            reply,
        });
        match answer.recv_timeout(timeout) {
            Ok(result) => result,
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => Err(CaptureError::NoAnswer(timeout)),
            // The VM ended before it took the request.
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => Err(CaptureError::NotRunning),
        }
    }

    pub(crate) fn take_capture(&self) -> Option<CaptureRequest> {
        self.0
            .capture
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
    }

    pub(crate) fn take_power_button(&self) -> bool {
        self.0.power_button.swap(false, Ordering::SeqCst)
    }

    pub(crate) fn killed(&self) -> bool {
        self.0.kill.load(Ordering::SeqCst)
    }

    pub(crate) fn set_running(&self, running: bool) {
        if running {
            self.0.boots.fetch_add(1, Ordering::SeqCst);
        }
        self.0.running.store(running, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_held_vm_waits_for_release_and_a_kill_ends_the_wait() {
        let c = VmControl::new();
        assert!(c.wait_released(), "not held: no wait");
        c.hold();
        let d = c.clone();
        let t = std::thread::spawn(move || d.wait_released());
        std::thread::sleep(std::time::Duration::from_millis(20));
        assert!(!t.is_finished());
        c.release();
        assert!(t.join().unwrap());
        c.hold();
        c.kill();
        assert!(!c.wait_released());
    }

    #[test]
    fn clones_share_state_and_the_power_button_is_taken_once() {
        let a = VmControl::new();
        let b = a.clone();
        b.power_button();
        assert!(a.take_power_button());
        assert!(!a.take_power_button());
        assert!(!a.killed());
        b.kill();
        assert!(a.killed());
        a.set_running(true);
        assert!(b.is_running());
        assert_eq!(b.boots(), 1);
        a.set_running(false);
        assert!(!b.is_running());
    }
}
