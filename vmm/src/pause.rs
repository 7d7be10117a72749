//! Pausing the vCPUs of a running VM: the monitor asks, kicks every vCPU
//! thread out of KVM_RUN, and each parks itself outside the guest (after
//! finishing the exit it was handling, so no port or MMIO access is left
//! half done). A parked vCPU reads its own state when asked (its `VcpuFd`
//! belongs to its thread) and waits until the monitor resumes it.

use crate::snapshot::{capture_vcpu, StateError};
use kvm_ioctls::VcpuFd;
use snapshot::VcpuState;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

#[derive(Default)]
struct GateState {
    /// Read the state of each vCPU as it parks, with these MSRs.
    capture_msrs: Option<Arc<Vec<u32>>>,
    parked: usize,
    states: Vec<Option<Result<VcpuState, StateError>>>,
}

/// Shared by the monitor and every vCPU thread of one VM.
pub(crate) struct PauseGate {
    requested: AtomicBool,
    state: Mutex<GateState>,
    changed: Condvar,
    vcpus: usize,
}

impl PauseGate {
    pub(crate) fn new(vcpus: usize) -> Self {
        PauseGate {
            requested: AtomicBool::new(false),
            state: Mutex::new(GateState::default()),
            changed: Condvar::new(),
            vcpus,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, GateState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Ask every vCPU to park (and read its state, with `capture_msrs`).
    pub(crate) fn request(&self, capture_msrs: Option<Arc<Vec<u32>>>) {
        let mut s = self.lock();
        s.capture_msrs = capture_msrs;
        s.parked = 0;
        s.states = (0..self.vcpus).map(|_| None).collect();
        self.requested.store(true, Ordering::SeqCst);
    }

    /// Cheap check for the vCPU loop.
    pub(crate) fn is_requested(&self) -> bool {
        self.requested.load(Ordering::SeqCst)
    }

    /// Called by vCPU `id` outside KVM_RUN: park until resumed.
    pub(crate) fn park(&self, id: u8, fd: &VcpuFd) {
        let msrs = self.lock().capture_msrs.clone();
        // Tell a Linux guest it was paused (its soft-lockup watchdog then
        // does not fire for the time it did not run); not every host has it.
        let _ = fd.kvmclock_ctrl();
        let captured = msrs.map(|m| capture_vcpu(id, fd, &m));
        let mut s = self.lock();
        if let Some(slot) = s.states.get_mut(usize::from(id)) {
            *slot = captured;
        }
        s.parked += 1;
        self.changed.notify_all();
        while self.requested.load(Ordering::SeqCst) {
            s = self
                .changed
                .wait_timeout(s, Duration::from_millis(100))
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    /// Wait until every vCPU parked, calling `kick` (to interrupt KVM_RUN)
    /// every millisecond; false when `timeout` passed first.
    pub(crate) fn wait_parked(&self, timeout: Duration, kick: impl Fn()) -> bool {
        let give_up = Instant::now() + timeout;
        loop {
            {
                let s = self.lock();
                if s.parked >= self.vcpus {
                    return true;
                }
            }
            if Instant::now() >= give_up {
                return false;
            }
            kick();
            let s = self.lock();
            if s.parked < self.vcpus {
                let _ = self.changed.wait_timeout(s, Duration::from_millis(1));
            }
        }
    }

    /// The states the parked vCPUs read, in vCPU order (None: not parked or
    /// not asked to read).
    pub(crate) fn take_states(&self) -> Vec<Option<Result<VcpuState, StateError>>> {
        std::mem::take(&mut self.lock().states)
    }

    /// Let every vCPU run again.
    pub(crate) fn resume(&self) {
        let _s = self.lock();
        self.requested.store(false, Ordering::SeqCst);
        self.changed.notify_all();
    }
}
