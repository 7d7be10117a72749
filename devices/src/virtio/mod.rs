//! Virtio devices and the virtio-pci modern transport.
//!
//! A device ([`VirtioDevice`]) describes itself (type, features, config
//! space, queue sizes) and, once the driver sets DRIVER_OK, receives its
//! queues with their notification eventfds and interrupt triggers; from
//! then on it runs on its own I/O thread (an event-manager loop), so a slow
//! disk never stalls a vCPU. The transport knows nothing about a device's
//! kind, so virtio-net plugs in the same way.

pub mod block;
pub mod net;
pub mod pci;
pub mod rng;
pub mod runner;
pub mod scsi;
pub mod worker;

use std::io;
use std::sync::Arc;
use virtio_queue::Queue;
use vm_memory::GuestMemoryMmap;
use vmm_sys_util::eventfd::EventFd;

pub type Memory = GuestMemoryMmap<()>;

pub const VIRTIO_F_VERSION_1: u64 = 1 << 32;
pub const VIRTIO_F_RING_INDIRECT_DESC: u64 = 1 << 28;
/// The driver tells how far the device may go before interrupting
/// (used_event) and the device how far the driver may go before kicking
/// (avail_event). Without it virtio-queue 0.18 cannot suppress
/// interrupts at all (it ignores VRING_AVAIL_F_NO_INTERRUPT).
pub const VIRTIO_RING_F_EVENT_IDX: u64 = 1 << 29;

pub const VIRTIO_ID_NET: u32 = 1;
pub const VIRTIO_ID_BLOCK: u32 = 2;
pub const VIRTIO_ID_RNG: u32 = 4;

/// Raises the interrupt of one queue (or of the config space).
pub trait Signal: Send + Sync {
    fn signal(&self) -> io::Result<()>;
}

impl Signal for EventFd {
    fn signal(&self) -> io::Result<()> {
        self.write(1)
    }
}

/// One activated queue.
pub struct ActiveQueue {
    pub queue: Queue,
    /// Written by the guest's notification (an ioeventfd).
    pub notify: EventFd,
    /// Tells the guest that used buffers are ready.
    pub interrupt: Arc<dyn Signal>,
}

/// What a virtio device must provide to the transport.
pub trait VirtioDevice: Send {
    /// VIRTIO_ID_*.
    fn device_type(&self) -> u32;
    /// Maximum size of each queue; the length is the number of queues.
    fn queue_max_sizes(&self) -> &[u16];
    /// Offered feature bits (the transport adds VIRTIO_F_VERSION_1).
    fn features(&self) -> u64;
    /// Read from the device-specific config space.
    fn read_config(&self, offset: u64, data: &mut [u8]);
    /// Write to it (most devices ignore writes).
    fn write_config(&mut self, _offset: u64, _data: &[u8]) {}
    /// Start serving `queues` with the negotiated `features`.
    fn activate(&mut self, mem: Memory, features: u64, queues: Vec<ActiveQueue>) -> io::Result<()>;
    /// Stop serving (driver reset); the device must be activatable again.
    fn reset(&mut self);
    /// Stop touching guest memory for a snapshot: answer the request in
    /// progress, then hold the queues; their positions (empty when the
    /// driver has not started the device).
    fn pause(&mut self) -> io::Result<Vec<SavedQueue>> {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "this device cannot pause for a snapshot",
        ))
    }
    /// Serve again after [`VirtioDevice::pause`].
    fn resume(&mut self) -> io::Result<()> {
        Ok(())
    }
    /// The device was just started from a snapshot's state (and paused):
    /// a NIC announces the guest to its new backend when it resumes.
    fn restored(&mut self) {}
    /// PCI class code for the transport (base, sub, prog-if).
    fn pci_class(&self) -> u32 {
        0x00ff00
    }
}

/// A queue's state for a snapshot: virtio-queue's `QueueState` (which has
/// no serde support), field for field. `Queue::try_from` checks it again
/// at restore, so a damaged snapshot cannot make an invalid queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SavedQueue {
    pub max_size: u16,
    pub next_avail: u16,
    pub next_used: u16,
    pub event_idx_enabled: bool,
    pub size: u16,
    pub ready: bool,
    pub desc_table: u64,
    pub avail_ring: u64,
    pub used_ring: u64,
}

impl SavedQueue {
    pub fn of(queue: &Queue) -> Self {
        let s = queue.state();
        SavedQueue {
            max_size: s.max_size,
            next_avail: s.next_avail,
            next_used: s.next_used,
            event_idx_enabled: s.event_idx_enabled,
            size: s.size,
            ready: s.ready,
            desc_table: s.desc_table,
            avail_ring: s.avail_ring,
            used_ring: s.used_ring,
        }
    }

    /// The queue again; an error when the saved size or addresses are not
    /// a valid queue.
    pub fn queue(&self) -> Result<Queue, virtio_queue::Error> {
        Queue::try_from(virtio_queue::QueueState {
            max_size: self.max_size,
            next_avail: self.next_avail,
            next_used: self.next_used,
            event_idx_enabled: self.event_idx_enabled,
            size: self.size,
            ready: self.ready,
            desc_table: self.desc_table,
            avail_ring: self.avail_ring,
            used_ring: self.used_ring,
        })
    }
}

/// Copy bytes of a little-endian config structure at `offset` into `data`;
/// bytes outside read as zero.
pub fn read_config_bytes(config: &[u8], offset: u64, data: &mut [u8]) {
    for (i, d) in data.iter_mut().enumerate() {
        *d = usize::try_from(offset)
            .ok()
            .and_then(|o| o.checked_add(i))
            .and_then(|o| config.get(o))
            .copied()
            .unwrap_or(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use virtio_queue::QueueT;

    #[test]
    fn a_saved_queue_comes_back_the_same_and_bad_ones_are_refused() {
        let mut q = Queue::new(256).unwrap();
        q.set_size(128);
        q.set_desc_table_address(Some(0x1000), Some(0));
        q.set_avail_ring_address(Some(0x3000), Some(0));
        q.set_used_ring_address(Some(0x4000), Some(0));
        q.set_ready(true);
        q.set_event_idx(true);
        q.set_next_avail(17);
        q.set_next_used(15);
        let saved = SavedQueue::of(&q);
        let back = saved.queue().unwrap();
        assert_eq!(back.state(), q.state());
        // A size that is not a power of two is not a queue.
        let bad = SavedQueue { size: 100, ..saved };
        assert!(bad.queue().is_err());
    }
}
