//! NICs: a MAC and a network backend per virtio-net device.
//!
//! The monitor builds its devices again on every guest reboot, but a
//! backend is made once (a running passt keeps its published ports and
//! the guest's DHCP lease): each run borrows it from a [`BackendSlot`]
//! and hands it back when the device goes away. A backend that died
//! (passt exited) is not handed back, so the next boot gets a NIC whose
//! link is down, with the reason logged once.

use devices::net_backend::{BackendError, NetBackend};
use std::os::unix::io::RawFd;
use std::sync::{Arc, Mutex};

/// One virtio-net device.
#[derive(Clone, Debug)]
pub struct NicConfig {
    pub mac: [u8; 6],
    pub backend: BackendSlot,
}

impl NicConfig {
    pub fn new(mac: [u8; 6], backend: Box<dyn NetBackend>) -> Self {
        NicConfig {
            mac,
            backend: BackendSlot::new(backend),
        }
    }
}

struct SlotState {
    backend: Option<Box<dyn NetBackend>>,
    /// What the backend was, for messages after it is gone.
    what: String,
    /// Why it is gone, once it is.
    gone: Option<String>,
}

/// A backend shared by the runs of one VM (see the module docs).
#[derive(Clone)]
pub struct BackendSlot(Arc<Mutex<SlotState>>);

impl std::fmt::Debug for BackendSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "BackendSlot({})", self.describe())
    }
}

impl BackendSlot {
    pub fn new(backend: Box<dyn NetBackend>) -> Self {
        BackendSlot(Arc::new(Mutex::new(SlotState {
            what: backend.describe(),
            backend: Some(backend),
            gone: None,
        })))
    }

    fn state(&self) -> std::sync::MutexGuard<'_, SlotState> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn describe(&self) -> String {
        self.state().what.clone()
    }

    /// Whether the backend is here to be lent (not in use, not dead).
    pub fn is_available(&self) -> bool {
        self.state().backend.is_some()
    }

    /// The backend for this run's device; returned when the device drops
    /// it. A second borrower while the first still holds it (a device
    /// leaked by a stuck teardown), or a dead backend, gets a stand-in
    /// that reports itself gone.
    pub fn lend(&self) -> Box<dyn NetBackend> {
        let mut s = self.state();
        let reason = match (&s.gone, s.backend.is_some()) {
            (Some(why), _) => format!("it stopped during an earlier boot ({why})"),
            (None, false) => "the previous boot's device still holds it".to_string(),
            (None, true) => String::new(),
        };
        Box::new(Lent {
            inner: s.backend.take(),
            what: s.what.clone(),
            reason,
            slot: self.0.clone(),
            dead: false,
        })
    }
}

/// A borrowed backend; goes back to its slot when dropped.
struct Lent {
    inner: Option<Box<dyn NetBackend>>,
    what: String,
    /// Why there is no `inner`.
    reason: String,
    slot: Arc<Mutex<SlotState>>,
    dead: bool,
}

impl Lent {
    fn check<T>(&mut self, r: Result<T, BackendError>) -> Result<T, BackendError> {
        if let Err(BackendError::Gone { reason, .. }) = &r {
            self.dead = true;
            let mut s = self.slot.lock().unwrap_or_else(|e| e.into_inner());
            s.gone = Some(reason.clone());
        }
        r
    }

    fn missing(&mut self) -> BackendError {
        self.dead = true;
        BackendError::Gone {
            backend: self.what.clone(),
            reason: self.reason.clone(),
        }
    }
}

impl NetBackend for Lent {
    fn send(&mut self, frame: &[u8]) -> Result<(), BackendError> {
        match self.inner.as_mut() {
            Some(b) => {
                let r = b.send(frame);
                self.check(r)
            }
            None => Err(self.missing()),
        }
    }
    fn recv(&mut self, buf: &mut [u8]) -> Result<Option<usize>, BackendError> {
        match self.inner.as_mut() {
            Some(b) => {
                let r = b.recv(buf);
                self.check(r)
            }
            None => Err(self.missing()),
        }
    }
    fn flush(&mut self) -> Result<bool, BackendError> {
        match self.inner.as_mut() {
            Some(b) => {
                let r = b.flush();
                self.check(r)
            }
            None => Ok(true),
        }
    }
    fn poll_fd(&self) -> Option<RawFd> {
        self.inner.as_ref().and_then(|b| b.poll_fd())
    }
    fn describe(&self) -> String {
        self.what.clone()
    }
}

impl Drop for Lent {
    fn drop(&mut self) {
        let Some(b) = self.inner.take() else { return };
        if self.dead {
            // Dropped here: a dead passt is reaped now.
            drop(b);
            return;
        }
        let mut s = self.slot.lock().unwrap_or_else(|e| e.into_inner());
        if s.backend.is_none() {
            s.backend = Some(b);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Counts drops; fails with `Gone` once `fail` is set.
    struct Probe {
        drops: Arc<AtomicUsize>,
        fail: bool,
    }
    impl NetBackend for Probe {
        fn send(&mut self, _f: &[u8]) -> Result<(), BackendError> {
            if self.fail {
                Err(BackendError::Gone {
                    backend: "probe".into(),
                    reason: "exited".into(),
                })
            } else {
                Ok(())
            }
        }
        fn recv(&mut self, _b: &mut [u8]) -> Result<Option<usize>, BackendError> {
            Ok(None)
        }
        fn poll_fd(&self) -> Option<RawFd> {
            Some(7)
        }
        fn describe(&self) -> String {
            "probe".into()
        }
    }
    impl Drop for Probe {
        fn drop(&mut self) {
            self.drops.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn slot(fail: bool) -> (BackendSlot, Arc<AtomicUsize>) {
        let drops = Arc::new(AtomicUsize::new(0));
        let p = Probe {
            drops: drops.clone(),
            fail,
        };
        (BackendSlot::new(Box::new(p)), drops)
    }

    #[test]
    fn backend_survives_the_devices_of_several_boots() {
        let (s, drops) = slot(false);
        for _ in 0..3 {
            let mut b = s.lend();
            assert!(!s.is_available());
            assert_eq!(b.poll_fd(), Some(7));
            b.send(&[0; 60]).unwrap();
            drop(b);
            assert!(s.is_available());
        }
        assert_eq!(drops.load(Ordering::SeqCst), 0);
        drop(s);
        assert_eq!(drops.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn dead_backend_is_dropped_and_the_next_boot_is_told_why() {
        let (s, drops) = slot(true);
        let mut b = s.lend();
        assert!(b.send(&[0; 60]).unwrap_err().is_gone());
        drop(b);
        assert_eq!(drops.load(Ordering::SeqCst), 1);
        assert!(!s.is_available());
        let mut b = s.lend();
        assert_eq!(b.poll_fd(), None);
        let e = b.recv(&mut [0; 64]).unwrap_err();
        assert!(e.is_gone());
        assert!(e.to_string().contains("earlier boot (exited)"), "{e}");
        assert!(e.to_string().starts_with("probe"), "{e}");
    }

    #[test]
    fn a_dropped_device_hands_the_backend_back() {
        let (s, drops) = slot(false);
        let dev = devices::virtio::net::VirtioNet::new([2, 0, 0, 0, 0, 1], s.lend());
        assert!(!s.is_available());
        drop(dev);
        assert!(s.is_available());
        assert_eq!(drops.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn a_second_borrower_gets_a_dead_stand_in() {
        let (s, _) = slot(false);
        let first = s.lend();
        let mut second = s.lend();
        assert!(second.send(&[0; 60]).unwrap_err().is_gone());
        drop(second);
        drop(first);
        assert!(s.is_available(), "the real backend comes back");
    }
}
