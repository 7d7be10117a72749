//! The device with VIRTIO_RING_F_EVENT_IDX negotiated, against a mock
//! driver that behaves like Linux's: it kicks only when avail_event says
//! so and asks for an interrupt (used_event) only when it has nothing left
//! to do. A device that forgets to re-arm a notification stalls here.

use super::header::HDR_LEN;
use super::*;
use crate::net_backend::passt::StreamBackend;
use crate::virtio::Signal;
use std::io::{Read, Write};
use std::os::unix::io::AsRawFd;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{fence, Ordering as AtomicOrdering};
use std::time::Duration;
use virtio_bindings::bindings::virtio_ring::VRING_DESC_F_WRITE;
use virtio_queue::desc::{split::Descriptor as SplitDescriptor, RawDescriptor};
use virtio_queue::mock::MockSplitQueue;
use virtio_queue::QueueT;
use vm_memory::{Bytes, GuestAddress};
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

const SIZE: u16 = 256;
const RX_BUF: u32 = 4096;

fn mem() -> Memory {
    Memory::from_ranges(&[(GuestAddress(0), 0x200_0000)]).unwrap()
}

/// vring_need_event from the virtio spec.
fn need_event(event: u16, new: u16, old: u16) -> bool {
    new.wrapping_sub(event).wrapping_sub(1) < new.wrapping_sub(old)
}

struct Driver<'a> {
    mem: &'a Memory,
    q: MockSplitQueue<'a, Memory>,
    kick: EventFd,
    irq: EventFd,
    kicks: u32,
}

impl<'a> Driver<'a> {
    fn new(mem: &'a Memory, at: u64) -> Self {
        Driver {
            mem,
            q: MockSplitQueue::create(mem, GuestAddress(at), SIZE),
            kick: EventFd::new(EFD_NONBLOCK).unwrap(),
            irq: EventFd::new(EFD_NONBLOCK).unwrap(),
            kicks: 0,
        }
    }

    /// The queue as the transport hands it over with EVENT_IDX negotiated.
    fn active(&self) -> ActiveQueue {
        let mut queue: virtio_queue::Queue = self.q.create_queue().unwrap();
        queue.set_event_idx(true);
        ActiveQueue {
            queue,
            notify: self.kick.try_clone().unwrap(),
            interrupt: Arc::new(self.irq.try_clone().unwrap()) as Arc<dyn Signal>,
        }
    }

    fn avail_idx(&self) -> u16 {
        self.q.avail().idx().load()
    }

    fn used_idx(&self) -> u16 {
        self.q.used().idx().load()
    }

    /// Add one single-descriptor chain and kick only if the device asked.
    fn add(&mut self, slot: u16, addr: u64, len: u32, flags: u16) {
        let old = self.avail_idx();
        let desc = RawDescriptor::from(SplitDescriptor::new(addr, len, flags, 0));
        self.q.add_desc_chains(&[desc], slot).unwrap();
        fence(AtomicOrdering::SeqCst);
        let at = self.q.used_addr().0 + 4 + 8 * u64::from(SIZE);
        let avail_event: u16 = self.mem.read_obj(GuestAddress(at)).unwrap();
        if need_event(avail_event, self.avail_idx(), old) {
            self.kick.write(1).unwrap();
            self.kicks += 1;
        }
    }

    /// Wait until the device has used `n` chains, asking for an interrupt
    /// at the next one whenever there is nothing to do (NAPI's re-enable).
    fn wait_used(&self, n: u16) {
        loop {
            let u = self.used_idx();
            if u >= n {
                return;
            }
            let at = self.q.avail_addr().0 + 4 + 2 * u64::from(SIZE);
            self.mem.write_obj(u, GuestAddress(at)).unwrap();
            fence(AtomicOrdering::SeqCst);
            if self.used_idx() != u {
                continue;
            }
            let mut pfd = libc::pollfd {
                fd: self.irq.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one valid pollfd.
            let r = unsafe { libc::poll(&mut pfd, 1, 5000) };
            assert!(
                r > 0,
                "stalled: {} of {n} chains used, no interrupt in 5 s",
                self.used_idx()
            );
            let _ = self.irq.read();
        }
    }
}

fn frame(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(13) ^ seed)
        .collect()
}

#[test]
fn event_idx_transmit_and_receive_without_stalls() {
    let m = mem();
    let mut rx = Driver::new(&m, 0x10_0000);
    let mut tx = Driver::new(&m, 0x20_0000);
    let (ours, peer) = UnixStream::pair().unwrap();
    peer.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut dev = VirtioNet::new(
        [2, 0, 0, 0, 0, 1],
        Box::new(StreamBackend::new(ours, "passt").unwrap()),
    );
    let features = dev.features();
    assert_ne!(features & VIRTIO_RING_F_EVENT_IDX, 0);
    dev.activate(m.clone(), features, vec![rx.active(), tx.active()])
        .unwrap();

    // Transmit: 200 frames, kicking only when asked; every one arrives.
    const TX_FRAMES: u16 = 200;
    let mut reader = peer.try_clone().unwrap();
    let check = std::thread::spawn(move || {
        for i in 0..TX_FRAMES {
            let mut len = [0u8; 4];
            reader.read_exact(&mut len).expect("transmit stalled");
            let mut f = vec![0u8; u32::from_be_bytes(len) as usize];
            reader.read_exact(&mut f).unwrap();
            assert_eq!(f, frame(60 + usize::from(i) * 7, i as u8), "frame {i}");
        }
    });
    for i in 0..TX_FRAMES {
        let addr = 0x40_0000 + u64::from(i) * 0x1000;
        let mut b = vec![0u8; HDR_LEN];
        b.extend_from_slice(&frame(60 + usize::from(i) * 7, i as u8));
        m.write_slice(&b, GuestAddress(addr)).unwrap();
        tx.add(i, addr, b.len() as u32, 0);
        if i % 16 == 0 {
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    check.join().unwrap();
    tx.wait_used(TX_FRAMES);
    eprintln!("transmit: {} kicks for {TX_FRAMES} frames", tx.kicks);

    // Receive: 60 frames of 10000 bytes, 3 buffers each, while the driver
    // posts buffers one at a time: the device often holds a frame with
    // too few buffers and must still be kicked for the next one.
    const RX_FRAMES: usize = 60;
    let mut writer = peer.try_clone().unwrap();
    let feeder = std::thread::spawn(move || {
        for i in 0..RX_FRAMES {
            let f = frame(10_000, i as u8);
            writer.write_all(&(f.len() as u32).to_be_bytes()).unwrap();
            writer.write_all(&f).unwrap();
        }
    });
    let buffers = (RX_FRAMES * 3) as u16;
    for slot in 0..buffers {
        let addr = 0x100_0000 + u64::from(slot) * u64::from(RX_BUF);
        rx.add(slot, addr, RX_BUF, VRING_DESC_F_WRITE as u16);
        if slot % 5 == 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    rx.wait_used(buffers);
    feeder.join().unwrap();
    eprintln!("receive: {} kicks for {buffers} buffers", rx.kicks);
    for i in 0..RX_FRAMES {
        let base = 0x100_0000 + (i as u64) * 3 * u64::from(RX_BUF);
        let mut got = vec![0u8; HDR_LEN + 10_000];
        for (k, chunk) in got.chunks_mut(RX_BUF as usize).enumerate() {
            m.read_slice(chunk, GuestAddress(base + k as u64 * u64::from(RX_BUF)))
                .unwrap();
        }
        assert_eq!(&got[HDR_LEN..], &frame(10_000, i as u8)[..], "frame {i}");
    }
    dev.reset();
}
