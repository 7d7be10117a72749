//! A range bus: guest addresses (I/O ports or MMIO) mapped to devices.
//!
//! Shaped like Firecracker's `vstate/bus.rs`: a sorted map of ranges, each
//! with its own device lock, so two vCPUs touching two devices never wait on
//! each other. The map itself is read-mostly (devices are inserted before the
//! vCPUs start), so it sits behind an `RwLock`.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, RwLock};

/// A device that answers reads and writes in a range of a bus.
pub trait BusDevice: Send {
    /// Read `data.len()` bytes at `offset` from the start of the device's range.
    fn read(&mut self, offset: u64, data: &mut [u8]);
    /// Write `data` at `offset` from the start of the device's range.
    fn write(&mut self, offset: u64, data: &[u8]);
}

/// A device as the bus holds it.
pub type SharedDevice = Arc<Mutex<dyn BusDevice>>;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BusError {
    #[error("bus range {base:#x}+{len:#x} overlaps a device already at {other:#x}+{other_len:#x}")]
    Overlap {
        base: u64,
        len: u64,
        other: u64,
        other_len: u64,
    },
    #[error("bus range at {base:#x} has zero length or wraps around")]
    BadRange { base: u64 },
}

struct Entry {
    len: u64,
    device: SharedDevice,
}

/// The range bus.
#[derive(Default)]
pub struct Bus {
    ranges: RwLock<BTreeMap<u64, Entry>>,
}

impl Bus {
    pub fn new() -> Self {
        Self::default()
    }

    /// Map `device` at `base..base+len`; ranges never overlap.
    pub fn insert(&self, device: SharedDevice, base: u64, len: u64) -> Result<(), BusError> {
        if len == 0 || base.checked_add(len).is_none() {
            return Err(BusError::BadRange { base });
        }
        let mut ranges = self.ranges.write().unwrap_or_else(|e| e.into_inner());
        // The nearest range starting at or below the end of the new one is the
        // only one that can overlap it.
        if let Some((&other, e)) = ranges.range(..base + len).next_back() {
            if other + e.len > base {
                return Err(BusError::Overlap {
                    base,
                    len,
                    other,
                    other_len: e.len,
                });
            }
        }
        ranges.insert(base, Entry { len, device });
        Ok(())
    }

    /// Remove the device mapped at exactly `base`.
    pub fn remove(&self, base: u64) -> Option<SharedDevice> {
        let mut ranges = self.ranges.write().unwrap_or_else(|e| e.into_inner());
        ranges.remove(&base).map(|e| e.device)
    }

    fn resolve(&self, addr: u64) -> Option<(u64, SharedDevice)> {
        let ranges = self.ranges.read().unwrap_or_else(|e| e.into_inner());
        let (&base, e) = ranges.range(..=addr).next_back()?;
        if addr - base < e.len {
            Some((addr - base, e.device.clone()))
        } else {
            None
        }
    }

    /// Dispatch a read; `false` when nothing is mapped there (the caller
    /// then returns all ones, like an empty bus).
    pub fn read(&self, addr: u64, data: &mut [u8]) -> bool {
        match self.resolve(addr) {
            Some((offset, dev)) => {
                dev.lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .read(offset, data);
                true
            }
            None => false,
        }
    }

    /// Dispatch a write; `false` when nothing is mapped there.
    pub fn write(&self, addr: u64, data: &[u8]) -> bool {
        match self.resolve(addr) {
            Some((offset, dev)) => {
                dev.lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .write(offset, data);
                true
            }
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Recorder(Vec<(u64, Vec<u8>)>);
    impl BusDevice for Recorder {
        fn read(&mut self, offset: u64, data: &mut [u8]) {
            data.fill(offset as u8);
        }
        fn write(&mut self, offset: u64, data: &[u8]) {
            self.0.push((offset, data.to_vec()));
        }
    }

    #[test]
    fn dispatches_by_range_and_refuses_overlaps() {
        let bus = Bus::new();
        let a = Arc::new(Mutex::new(Recorder(vec![])));
        bus.insert(a.clone(), 0x3f8, 8).unwrap();
        assert!(matches!(
            bus.insert(Arc::new(Mutex::new(Recorder(vec![]))), 0x3f0, 9),
            Err(BusError::Overlap { .. })
        ));
        assert!(matches!(
            bus.insert(Arc::new(Mutex::new(Recorder(vec![]))), 0x3ff, 1),
            Err(BusError::Overlap { .. })
        ));
        bus.insert(Arc::new(Mutex::new(Recorder(vec![]))), 0x400, 1)
            .unwrap();
        let mut b = [0u8; 1];
        assert!(bus.read(0x3fa, &mut b));
        assert_eq!(b, [2]);
        assert!(!bus.read(0x3f7, &mut b));
        assert!(bus.write(0x3ff, &[9]));
        assert_eq!(a.lock().unwrap().0, vec![(7, vec![9])]);
        assert!(bus.remove(0x3f8).is_some());
        assert!(!bus.write(0x3f8, &[1]));
        assert_eq!(
            bus.insert(a, u64::MAX, 2),
            Err(BusError::BadRange { base: u64::MAX })
        );
    }
}
