//! The virtio fuzz targets' harness, shared with `devices/tests/fuzz_seeds.rs`
//! (which replays every committed input through the same code).
//!
//! A fuzz input is a guest: its first [`HEADER`] bytes are what a driver
//! writes to the transport (queue sizes and ring addresses, the features it
//! negotiated), the rest is the guest's memory from address 0 — descriptor
//! tables, available rings and buffers. The queues are set up and checked
//! the way the PCI transport does on DRIVER_OK, then the device's own queue
//! processing runs over them. It must return, with every request answered
//! or refused, whatever the memory holds.
//!
//! Layout of the header (little-endian):
//!
//! | bytes  | meaning                                                        |
//! |--------|----------------------------------------------------------------|
//! | 0..8   | queue 0: size u16, descriptor table u16, avail ring u16, used ring u16 |
//! | 8..16  | queue 1 (virtio-net's transmit queue), same fields             |
//! | 16     | bit 0 EVENT_IDX, bit 1 mergeable rx buffers (net), bit 2 read-only disk (blk) |
//! | 17     | net: frames the backend holds for the guest (mod 5)            |
//! | 18..26 | net: their lengths, u16 each                                   |
//! | 26     | net: bit i set = the backend is full on send i                 |
//! | 27..32 | unused                                                         |
//!
//! Guest memory is [`MEM_SIZE`] bytes in two regions (a buffer may span
//! both); anything above is not guest memory.

#![allow(dead_code)]

pub mod blk;
pub mod net;
pub mod rng;

use devices::virtio::{ActiveQueue, Memory, Signal};
use std::sync::Arc;
use virtio_queue::{Queue, QueueT};
use vm_memory::{Bytes, GuestAddress};
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

pub const HEADER: usize = 32;
pub const MEM_SIZE: usize = 0x1_0000;
/// The largest queue the devices offer (virtio-blk, -net, -rng).
pub const QUEUE_MAX: u16 = 256;

pub const F_EVENT_IDX: u8 = 1;
pub const F_MERGEABLE: u8 = 2;
pub const F_READ_ONLY: u8 = 4;

/// The driver-written part of a fuzz input.
pub struct Header {
    pub bytes: [u8; HEADER],
}

impl Header {
    fn u16_at(&self, at: usize) -> u16 {
        u16::from_le_bytes([self.bytes[at], self.bytes[at + 1]])
    }
    pub fn flag(&self, f: u8) -> bool {
        self.bytes[16] & f != 0
    }
}

/// Split an input into its header and a guest memory image built from
/// the rest; `None` when it is too short to be a guest.
pub fn guest(data: &[u8]) -> Option<(Header, Memory)> {
    let head: [u8; HEADER] = data.get(..HEADER)?.try_into().ok()?;
    let half = MEM_SIZE / 2;
    let mem =
        Memory::from_ranges(&[(GuestAddress(0), half), (GuestAddress(half as u64), half)]).ok()?;
    let image = &data[HEADER..];
    let image = &image[..image.len().min(MEM_SIZE)];
    mem.write_slice(image, GuestAddress(0)).ok()?;
    Some((Header { bytes: head }, mem))
}

/// An interrupt nobody listens to.
struct NoIrq;

impl Signal for NoIrq {
    fn signal(&self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Queue `n` (0 or 1) as the transport activates it: the driver's size
/// and addresses, ready, EVENT_IDX if negotiated; `None` when the
/// transport would refuse to activate the device (`Queue::is_valid`).
pub fn queue(h: &Header, n: usize, mem: &Memory) -> Option<ActiveQueue> {
    let at = n * 8;
    let mut q = Queue::new(QUEUE_MAX).ok()?;
    q.set_size(h.u16_at(at));
    let addr = |i: usize| Some(u32::from(h.u16_at(at + i)));
    q.set_desc_table_address(addr(2), Some(0));
    q.set_avail_ring_address(addr(4), Some(0));
    q.set_used_ring_address(addr(6), Some(0));
    q.set_ready(true);
    q.set_event_idx(h.flag(F_EVENT_IDX));
    if !q.is_valid(mem) {
        return None;
    }
    Some(ActiveQueue {
        queue: q,
        notify: EventFd::new(EFD_NONBLOCK).ok()?,
        interrupt: Arc::new(NoIrq),
    })
}
