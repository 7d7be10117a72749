//! Pausing the vCPUs of a running VM: the monitor asks, kicks every vCPU
//! thread out of KVM_RUN, and each parks itself outside the guest (after
//! finishing the exit it was handling, so no port or MMIO access is left
//! half done). While all are parked the monitor can stop the device
//! threads and only then ask the parked vCPUs to read their own state (a
//! vCPU's `VcpuFd` belongs to its thread): an interrupt a device raised
//! after a vCPU had been read would be missing from the snapshot.

use crate::snapshot::{capture_vcpu, StateError};
use kvm_ioctls::VcpuFd;
use snapshot::VcpuState;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

#[derive(Default)]
struct GateState {
    parked: usize,
    /// Bumped by each [`PauseGate::capture_parked`]: every parked vCPU
    /// reads its state once per round, with these MSRs.
    round: u64,
    msrs: Arc<Vec<u32>>,
    read: usize,
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

    /// Ask every vCPU to park.
    pub(crate) fn request(&self) {
        let mut s = self.lock();
        s.parked = 0;
        s.states = (0..self.vcpus).map(|_| None).collect();
        self.requested.store(true, Ordering::SeqCst);
    }

    /// Cheap check for the vCPU loop.
    pub(crate) fn is_requested(&self) -> bool {
        self.requested.load(Ordering::SeqCst)
    }

    /// Called by vCPU `id` outside KVM_RUN: park until resumed, reading
    /// its state whenever the monitor asks.
    pub(crate) fn park(&self, id: u8, fd: &VcpuFd) {
        // Tell a Linux guest it was paused (its soft-lockup watchdog then
        // does not fire for the time it did not run); not every host has it.
        let _ = fd.kvmclock_ctrl();
        let mut s = self.lock();
        let mut seen = s.round;
        s.parked += 1;
        self.changed.notify_all();
        while self.requested.load(Ordering::SeqCst) {
            if s.round != seen {
                seen = s.round;
                let msrs = s.msrs.clone();
                drop(s);
                let state = capture_vcpu(id, fd, &msrs);
                s = self.lock();
                if let Some(slot) = s.states.get_mut(usize::from(id)) {
                    *slot = Some(state);
                }
                s.read += 1;
                self.changed.notify_all();
                continue;
            }
            s = self
                .changed
                .wait_timeout(s, Duration::from_millis(100))
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    /// With every vCPU parked: have each read its state (with `msrs`) and
    /// return the states in vCPU order (None: a vCPU did not answer within
    /// `timeout`).
    pub(crate) fn capture_parked(
        &self,
        msrs: Arc<Vec<u32>>,
        timeout: Duration,
    ) -> Vec<Option<Result<VcpuState, StateError>>> {
        let give_up = Instant::now() + timeout;
        let mut s = self.lock();
        s.msrs = msrs;
        s.read = 0;
        s.states = (0..self.vcpus).map(|_| None).collect();
        s.round += 1;
        self.changed.notify_all();
        while s.read < self.vcpus && Instant::now() < give_up {
            s = self
                .changed
                .wait_timeout(s, Duration::from_millis(10))
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        std::mem::take(&mut s.states)
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

    /// Let every vCPU run again.
    pub(crate) fn resume(&self) {
        let _s = self.lock();
        self.requested.store(false, Ordering::SeqCst);
        self.changed.notify_all();
    }
}
