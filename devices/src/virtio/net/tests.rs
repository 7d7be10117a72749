//! virtio-net against virtio-queue's MockSplitQueue: both data paths,
//! hostile chains, backpressure, and a whole device over a socketpair
//! speaking passt's framing.

use super::header::HDR_LEN;
use super::rx::{deliver, RxOutcome};
use super::tx::{read_frame, TxError};
use super::*;
use crate::net_backend::passt::StreamBackend;
use crate::net_backend::MAX_FRAME;
use crate::virtio::Signal;
use std::io::{Read, Write};
use std::os::unix::io::AsRawFd;
use std::os::unix::net::UnixStream;
use std::time::Duration;
use virtio_bindings::bindings::virtio_ring::{VRING_DESC_F_NEXT, VRING_DESC_F_WRITE};
use virtio_queue::desc::{split::Descriptor as SplitDescriptor, RawDescriptor};
use virtio_queue::mock::MockSplitQueue;
use virtio_queue::{Queue, QueueT};
use vm_memory::{Bytes, GuestAddress};
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

const W: u16 = VRING_DESC_F_WRITE as u16;
const N: u16 = VRING_DESC_F_NEXT as u16;
const MEM_SIZE: u64 = 0x100_0000;

fn mem() -> Memory {
    Memory::from_ranges(&[(GuestAddress(0), MEM_SIZE as usize)]).unwrap()
}

fn d(addr: u64, len: u32, flags: u16, next: u16) -> RawDescriptor {
    RawDescriptor::from(SplitDescriptor::new(addr, len, flags, next))
}

fn eth_frame(len: usize, seed: u8) -> Vec<u8> {
    (0..len).map(|i| (i as u8).wrapping_mul(7) ^ seed).collect()
}

fn read(mem: &Memory, addr: u64, len: usize) -> Vec<u8> {
    let mut v = vec![0u8; len];
    mem.read_slice(&mut v, GuestAddress(addr)).unwrap();
    v
}

fn used(vq: &MockSplitQueue<'_, Memory>, i: u16) -> (u32, u32) {
    let e = vq.used().ring().ref_at(i as usize).unwrap().load();
    (e.id(), e.len())
}

// ---- transmit ----

#[test]
fn tx_strips_the_header_across_descriptors() {
    let m = mem();
    let f = eth_frame(100, 1);
    let mut hdr_and = vec![0u8; HDR_LEN];
    hdr_and.extend_from_slice(&f[..30]);
    m.write_slice(&hdr_and, GuestAddress(0x10000)).unwrap();
    m.write_slice(&f[30..], GuestAddress(0x20000)).unwrap();
    let vq = MockSplitQueue::new(&m, 16);
    let chain = vq
        .build_desc_chain(&[d(0x10000, 42, N, 1), d(0x20000, 70, 0, 0)])
        .unwrap();
    let mut buf = vec![0u8; MAX_FRAME];
    assert_eq!(read_frame(chain, &m, &mut buf), Ok(100));
    assert_eq!(&buf[..100], &f[..]);
}

#[test]
fn tx_hostile_chains_fail_the_packet() {
    let m = mem();
    let vq = MockSplitQueue::new(&m, 16);
    let mut buf = vec![0u8; MAX_FRAME];
    let mut run = |descs: &[RawDescriptor]| {
        let chain = vq.build_desc_chain(descs).unwrap();
        read_frame(chain, &m, &mut buf)
    };
    // A device-writable descriptor where the device must only read.
    assert_eq!(
        run(&[d(0x10000, 64, N, 1), d(0x20000, 64, W, 0)]),
        Err(TxError::WritableDescriptor)
    );
    // Shorter than header + Ethernet header.
    assert_eq!(run(&[d(0x10000, 20, 0, 0)]), Err(TxError::TooShort(20)));
    assert_eq!(run(&[d(0x10000, 0, 0, 0)]), Err(TxError::TooShort(0)));
    // Longer than any frame.
    let long = (HDR_LEN + MAX_FRAME + 1) as u32;
    assert_eq!(
        run(&[d(0x10000, long, 0, 0)]),
        Err(TxError::TooLong(long as usize))
    );
    // Outside guest memory, and straddling its end.
    assert_eq!(
        run(&[d(MEM_SIZE + 0x1000, 64, 0, 0)]),
        Err(TxError::BadDescriptor)
    );
    assert_eq!(
        run(&[d(MEM_SIZE - 16, 64, 0, 0)]),
        Err(TxError::BadDescriptor)
    );
    assert_eq!(
        run(&[d(u64::MAX - 8, 64, 0, 0)]),
        Err(TxError::BadDescriptor)
    );
    // Offloads that were never offered.
    m.write_slice(&[1u8, 0], GuestAddress(0x30000)).unwrap();
    assert!(matches!(
        run(&[d(0x30000, 64, 0, 0)]),
        Err(TxError::Header(_))
    ));
    m.write_slice(&[0u8, 4], GuestAddress(0x30000)).unwrap();
    assert!(matches!(
        run(&[d(0x30000, 64, 0, 0)]),
        Err(TxError::Header(_))
    ));
    // Many huge descriptors whose lengths add up past any frame.
    let descs: Vec<_> = (0..8u16)
        .map(|i| d(0x10000, u32::MAX, if i < 7 { N } else { 0 }, i + 1))
        .collect();
    assert!(run(&descs).is_err());
}

#[test]
fn tx_chain_that_loops_is_bounded() {
    let m = mem();
    let vq = MockSplitQueue::new(&m, 16);
    // Two descriptors pointing at each other.
    vq.add_desc_chains(&[d(0x10000, 64, N, 1), d(0x11000, 64, N, 0)], 0)
        .unwrap();
    let mut q: Queue = vq.create_queue().unwrap();
    let chain = q.pop_descriptor_chain(&m).unwrap();
    let mut buf = vec![0u8; MAX_FRAME];
    // Whatever the answer, it comes back.
    let _ = read_frame(chain, &m, &mut buf);
}

// ---- receive ----

#[test]
fn rx_mergeable_spreads_a_frame_and_counts_buffers() {
    let m = mem();
    let vq = MockSplitQueue::new(&m, 16);
    vq.add_desc_chains(
        &[
            d(0x10000, 1000, W, 0),
            d(0x20000, 1000, W, 0),
            d(0x30000, 1000, W, 0),
        ],
        0,
    )
    .unwrap();
    let mut q: Queue = vq.create_queue().unwrap();
    let f = eth_frame(1500, 3);
    assert_eq!(
        deliver(&mut q, &m, &f, true).unwrap(),
        RxOutcome::Delivered { buffers: 2 }
    );
    let first = read(&m, 0x10000, 1000);
    assert_eq!(&first[..HDR_LEN], &super::header::rx_header(2));
    assert_eq!(&first[HDR_LEN..], &f[..1000 - HDR_LEN]);
    assert_eq!(read(&m, 0x20000, 512), &f[1000 - HDR_LEN..]);
    assert_eq!(vq.used().idx().load(), 2);
    assert_eq!(used(&vq, 0), (0, 1000));
    assert_eq!(used(&vq, 1), (1, 512));
    // The third buffer is still available for the next frame.
    let small = eth_frame(60, 4);
    assert_eq!(
        deliver(&mut q, &m, &small, true).unwrap(),
        RxOutcome::Delivered { buffers: 1 }
    );
    assert_eq!(used(&vq, 2), (2, (HDR_LEN + 60) as u32));
}

#[test]
fn rx_without_room_rewinds_the_ring_and_waits() {
    let m = mem();
    let vq = MockSplitQueue::new(&m, 16);
    let mut q: Queue = vq.create_queue().unwrap();
    let f = eth_frame(1500, 5);
    assert_eq!(deliver(&mut q, &m, &f, true).unwrap(), RxOutcome::NoBuffers);
    vq.add_desc_chains(&[d(0x10000, 1000, W, 0)], 0).unwrap();
    assert_eq!(deliver(&mut q, &m, &f, true).unwrap(), RxOutcome::NoBuffers);
    assert_eq!(q.next_avail(), 0, "nothing consumed");
    assert_eq!(vq.used().idx().load(), 0);
    vq.add_desc_chains(&[d(0x20000, 1000, W, 0)], 1).unwrap();
    assert_eq!(
        deliver(&mut q, &m, &f, true).unwrap(),
        RxOutcome::Delivered { buffers: 2 }
    );
}

#[test]
fn rx_single_buffer_mode() {
    let m = mem();
    let vq = MockSplitQueue::new(&m, 16);
    vq.add_desc_chains(
        &[
            d(0x10000, 10, W | N, 1),
            d(0x20000, 2000, W, 0),
            d(0x30000, 100, W, 0),
        ],
        0,
    )
    .unwrap();
    let mut q: Queue = vq.create_queue().unwrap();
    let f = eth_frame(1500, 6);
    assert_eq!(
        deliver(&mut q, &m, &f, false).unwrap(),
        RxOutcome::Delivered { buffers: 1 }
    );
    // The header is split over the first two descriptors; num_buffers is 1.
    let mut got = read(&m, 0x10000, 10);
    got.extend(read(&m, 0x20000, 1502));
    assert_eq!(&got[..HDR_LEN], &super::header::rx_header(1));
    assert_eq!(&got[HDR_LEN..], &f[..]);
    // A chain too small for the frame: dropped, buffer kept.
    assert!(matches!(
        deliver(&mut q, &m, &f, false).unwrap(),
        RxOutcome::Dropped(_)
    ));
    assert_eq!(vq.used().idx().load(), 1);
    assert_eq!(q.next_avail(), 1);
}

#[test]
fn rx_hostile_chains_are_returned_empty() {
    let m = mem();
    let vq = MockSplitQueue::new(&m, 16);
    vq.add_desc_chains(
        &[
            d(0x10000, 100, W, 0),
            // Readable descriptor where the device must write.
            d(0x20000, 100, 0, 0),
            // Outside guest memory.
            d(MEM_SIZE + 4096, 2000, W, 0),
            // Nothing writable at all.
            d(0x30000, 0, W, 0),
            d(0x40000, 2000, W, 0),
        ],
        0,
    )
    .unwrap();
    let mut q: Queue = vq.create_queue().unwrap();
    let f = eth_frame(1500, 7);
    for _ in 0..3 {
        assert!(matches!(
            deliver(&mut q, &m, &f, true).unwrap(),
            RxOutcome::Dropped(_)
        ));
    }
    assert_eq!(
        deliver(&mut q, &m, &f, true).unwrap(),
        RxOutcome::Delivered { buffers: 1 }
    );
    // Chains 0+1 (dropped together), 2, 3 came back empty; 4 got the frame.
    let lens: Vec<_> = (0..5).map(|i| used(&vq, i)).collect();
    assert_eq!(lens, [(0, 0), (1, 0), (2, 0), (3, 0), (4, 1512)]);
}

#[test]
fn rx_frame_larger_than_the_whole_ring_is_dropped() {
    let m = mem();
    let vq = MockSplitQueue::new(&m, 4);
    let descs: Vec<_> = (0..4).map(|i| d(0x10000 + i * 0x1000, 100, W, 0)).collect();
    vq.add_desc_chains(&descs, 0).unwrap();
    let mut q: Queue = vq.create_queue().unwrap();
    assert!(matches!(
        deliver(&mut q, &m, &eth_frame(1000, 0), true).unwrap(),
        RxOutcome::Dropped(_)
    ));
    assert_eq!(q.next_avail(), 0, "the buffers stay for smaller frames");
    assert_eq!(
        deliver(&mut q, &m, &eth_frame(60, 0), true).unwrap(),
        RxOutcome::Delivered { buffers: 1 }
    );
}

// ---- the whole device ----

#[test]
fn stable_mac_is_stable_local_and_unicast() {
    let a = stable_mac("appliance.ova/VM Network/0");
    assert_eq!(a, stable_mac("appliance.ova/VM Network/0"));
    assert_ne!(a, stable_mac("appliance.ova/VM Network/1"));
    for s in ["", "x", "another appliance"] {
        let m = stable_mac(s);
        assert_eq!(m[0] & 0x03, 0x02, "{s:?}: locally administered unicast");
    }
    assert_eq!(
        format_mac(&[0x52, 0x54, 0, 0x12, 0x34, 0x56]),
        "52:54:00:12:34:56"
    );
}

#[test]
fn config_space_and_features() {
    let mac = [2, 0x11, 0x22, 0x33, 0x44, 0x55];
    let dev = VirtioNet::new(mac, Box::new(crate::net_backend::none::NoneBackend));
    let mut c = [0u8; 12];
    dev.read_config(0, &mut c);
    assert_eq!(&c[..6], &mac);
    assert_eq!(u16::from_le_bytes([c[6], c[7]]), 1, "link up");
    assert_eq!(u16::from_le_bytes([c[8], c[9]]), 1, "one queue pair");
    assert_eq!(&c[10..], &[0, 0]);
    let f = dev.features();
    assert_ne!(f & VIRTIO_NET_F_MAC, 0);
    assert_ne!(f & VIRTIO_NET_F_MRG_RXBUF, 0);
    assert_ne!(f & VIRTIO_NET_F_STATUS, 0);
    assert_ne!(f & VIRTIO_RING_F_EVENT_IDX, 0);
    // CSUM, GUEST_CSUM, GUEST_TSO4..HOST_UFO (bits 0, 1, 7-14).
    assert_eq!(f & 0x7f83, 0, "no checksum or GSO offloads");
    assert_eq!(dev.queue_max_sizes(), &[256, 256]);
    assert_eq!(dev.device_type(), VIRTIO_ID_NET);
}

fn wait(evt: &EventFd) -> bool {
    let mut pfd = libc::pollfd {
        fd: evt.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd.
    let r = unsafe { libc::poll(&mut pfd, 1, 5000) };
    r > 0 && evt.read().is_ok()
}

struct Rig<'a> {
    mem: &'a Memory,
    rxq: MockSplitQueue<'a, Memory>,
    txq: MockSplitQueue<'a, Memory>,
    rx_kick: EventFd,
    tx_kick: EventFd,
    rx_irq: EventFd,
    tx_irq: EventFd,
}

impl<'a> Rig<'a> {
    fn new(mem: &'a Memory) -> Self {
        Rig {
            mem,
            rxq: MockSplitQueue::create(mem, GuestAddress(0x100000), 16),
            txq: MockSplitQueue::create(mem, GuestAddress(0x200000), 16),
            rx_kick: EventFd::new(EFD_NONBLOCK).unwrap(),
            tx_kick: EventFd::new(EFD_NONBLOCK).unwrap(),
            rx_irq: EventFd::new(EFD_NONBLOCK).unwrap(),
            tx_irq: EventFd::new(EFD_NONBLOCK).unwrap(),
        }
    }

    /// Without EVENT_IDX: this rig's driver waits for every interrupt and
    /// never writes used_event (tests_event_idx.rs plays a driver that does).
    fn activate(&self, dev: &mut VirtioNet) {
        let aq = |vq: &MockSplitQueue<'_, Memory>, kick: &EventFd, irq: &EventFd| ActiveQueue {
            queue: vq.create_queue().unwrap(),
            notify: kick.try_clone().unwrap(),
            interrupt: Arc::new(irq.try_clone().unwrap()) as Arc<dyn Signal>,
        };
        let queues = vec![
            aq(&self.rxq, &self.rx_kick, &self.rx_irq),
            aq(&self.txq, &self.tx_kick, &self.tx_irq),
        ];
        dev.activate(
            self.mem.clone(),
            dev.features() & !VIRTIO_RING_F_EVENT_IDX,
            queues,
        )
        .unwrap();
    }

    fn send_from_guest(&self, slot: u16, frame: &[u8]) {
        let addr = 0x400000 + u64::from(slot) * 0x20000;
        let mut b = vec![0u8; HDR_LEN];
        b.extend_from_slice(frame);
        self.mem.write_slice(&b, GuestAddress(addr)).unwrap();
        self.txq
            .add_desc_chains(&[d(addr, b.len() as u32, 0, 0)], slot)
            .unwrap();
        self.tx_kick.write(1).unwrap();
    }

    fn post_rx_buffer(&self, slot: u16) -> u64 {
        let addr = 0x800000 + u64::from(slot) * 0x1000;
        self.rxq
            .add_desc_chains(&[d(addr, 0x1000, W, 0)], slot)
            .unwrap();
        self.rx_kick.write(1).unwrap();
        addr
    }
}

fn framed(f: &[u8]) -> Vec<u8> {
    let mut v = (f.len() as u32).to_be_bytes().to_vec();
    v.extend_from_slice(f);
    v
}

#[test]
fn device_round_trip_through_passt_framing() {
    let m = mem();
    let rig = Rig::new(&m);
    let (ours, mut peer) = UnixStream::pair().unwrap();
    let backend = StreamBackend::new(ours, "passt").unwrap();
    let mut dev = VirtioNet::new([2, 0, 0, 0, 0, 1], Box::new(backend));
    rig.activate(&mut dev);

    // Guest -> passt.
    let out = eth_frame(200, 9);
    rig.send_from_guest(0, &out);
    assert!(wait(&rig.tx_irq), "transmit interrupt");
    let mut got = vec![0u8; 4 + 200];
    peer.read_exact(&mut got).unwrap();
    assert_eq!(got, framed(&out));
    assert_eq!(rig.txq.used().idx().load(), 1);

    // passt -> guest, while the guest has no buffers: the frames wait.
    let a = eth_frame(300, 1);
    let b = eth_frame(400, 2);
    peer.write_all(&framed(&a)).unwrap();
    peer.write_all(&framed(&b)).unwrap();
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(rig.rxq.used().idx().load(), 0);
    let b0 = rig.post_rx_buffer(0);
    assert!(wait(&rig.rx_irq), "receive interrupt");
    assert_eq!(read(&m, b0 + HDR_LEN as u64, 300), a);
    let b1 = rig.post_rx_buffer(1);
    while rig.rxq.used().idx().load() < 2 {
        assert!(wait(&rig.rx_irq), "second receive interrupt");
    }
    assert_eq!(read(&m, b1 + HDR_LEN as u64, 400), b);
    assert_eq!(used(&rig.rxq, 1), (1, (HDR_LEN + 400) as u32));

    // A reset stops the thread and keeps the backend for the next start.
    dev.reset();
    assert!(dev.backend.is_some());
}

#[test]
fn dead_backend_leaves_the_guest_running_without_network() {
    let m = mem();
    let rig = Rig::new(&m);
    let (ours, peer) = UnixStream::pair().unwrap();
    let backend = StreamBackend::new(ours, "passt").unwrap();
    let mut dev = VirtioNet::new([2, 0, 0, 0, 0, 1], Box::new(backend));
    rig.activate(&mut dev);
    drop(peer);
    rig.send_from_guest(0, &eth_frame(100, 1));
    assert!(wait(&rig.tx_irq));
    // Still consuming transmit chains afterwards, link reported down.
    rig.send_from_guest(1, &eth_frame(100, 2));
    while rig.txq.used().idx().load() < 2 {
        assert!(wait(&rig.tx_irq));
    }
    let mut c = [0u8; 2];
    dev.read_config(6, &mut c);
    assert_eq!(c, [0, 0], "link down");
    dev.reset();
    assert!(dev.backend.is_none());
}

#[test]
fn hostile_guest_chains_do_not_stop_the_device() {
    let m = mem();
    let rig = Rig::new(&m);
    let (ours, mut peer) = UnixStream::pair().unwrap();
    let mut dev = VirtioNet::new(
        [2, 0, 0, 0, 0, 1],
        Box::new(StreamBackend::new(ours, "passt").unwrap()),
    );
    rig.activate(&mut dev);
    // Out of memory, too short, writable: all consumed, nothing sent.
    rig.txq
        .add_desc_chains(
            &[
                d(MEM_SIZE * 2, 100, 0, 0),
                d(0x400000, 5, 0, 0),
                d(0x400000, 100, W, 0),
            ],
            0,
        )
        .unwrap();
    rig.tx_kick.write(1).unwrap();
    while rig.txq.used().idx().load() < 3 {
        assert!(wait(&rig.tx_irq));
    }
    // A good frame still goes out afterwards.
    rig.send_from_guest(3, &eth_frame(64, 3));
    while rig.txq.used().idx().load() < 4 {
        assert!(wait(&rig.tx_irq));
    }
    let mut got = vec![0u8; 4 + 64];
    peer.read_exact(&mut got).unwrap();
    assert_eq!(got, framed(&eth_frame(64, 3)));
    drop(dev);
}

#[test]
fn a_peer_that_does_not_read_stalls_transmit_but_not_receive() {
    let m = mem();
    let rig = Rig::new(&m);
    let (ours, mut peer) = UnixStream::pair().unwrap();
    // A small send buffer, so that the guest's frames fill it for sure.
    let size: libc::c_int = 64 << 10;
    // SAFETY: setsockopt with a valid int option on our own socket.
    let r = unsafe {
        libc::setsockopt(
            ours.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_SNDBUF,
            &size as *const libc::c_int as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    assert_eq!(r, 0);
    let mut dev = VirtioNet::new(
        [2, 0, 0, 0, 0, 1],
        Box::new(StreamBackend::new(ours, "passt").unwrap()),
    );
    rig.activate(&mut dev);
    let big: Vec<Vec<u8>> = (0..8).map(|i| eth_frame(60000, i)).collect();
    for (i, f) in big.iter().enumerate() {
        rig.send_from_guest(i as u16, f);
    }
    // The peer reads nothing, yet what it sends reaches the guest at once:
    // the device thread is not stuck in a send.
    let f = eth_frame(300, 7);
    peer.write_all(&framed(&f)).unwrap();
    let started = std::time::Instant::now();
    let b0 = rig.post_rx_buffer(0);
    while rig.rxq.used().idx().load() < 1 {
        assert!(wait(&rig.rx_irq), "receive interrupt");
    }
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(read(&m, b0 + HDR_LEN as u64, 300), f);
    // When the peer reads, every frame arrives whole and in order.
    for f in &big {
        let mut got = vec![0u8; 4 + f.len()];
        peer.read_exact(&mut got).unwrap();
        let want = framed(f);
        let at = got.iter().zip(&want).position(|(a, b)| a != b);
        assert!(
            at.is_none(),
            "frame of seed {}: differs at byte {at:?}: got {:?} want {:?}",
            f[0],
            &got[..8],
            &want[..8]
        );
    }
    while rig.txq.used().idx().load() < 8 {
        assert!(wait(&rig.tx_irq), "transmit interrupt");
    }
    dev.reset();
}

#[test]
fn a_paused_nic_moves_no_frame_and_a_restored_one_announces_the_guest() {
    let m = mem();
    let rig = Rig::new(&m);
    let (ours, mut peer) = UnixStream::pair().unwrap();
    let backend = StreamBackend::new(ours, "passt").unwrap();
    let mac = [2, 0, 0, 0, 0, 7];
    let mut dev = VirtioNet::new(mac, Box::new(backend));
    rig.activate(&mut dev);
    let out = eth_frame(100, 3);
    rig.send_from_guest(0, &out);
    assert!(wait(&rig.tx_irq), "transmit interrupt");
    let mut got = vec![0u8; 4 + 100];
    peer.read_exact(&mut got).unwrap();

    let saved = dev.pause().unwrap();
    assert_eq!(saved.len(), 2);
    assert_eq!((saved[1].next_avail, saved[1].next_used), (1, 1));
    // While paused: a frame from passt and one from the guest both wait.
    let inbound = eth_frame(150, 4);
    peer.write_all(&framed(&inbound)).unwrap();
    let b0 = rig.post_rx_buffer(0);
    rig.send_from_guest(1, &eth_frame(120, 5));
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(
        rig.rxq.used().idx().load(),
        0,
        "nothing received while paused"
    );
    assert_eq!(rig.txq.used().idx().load(), 1, "nothing sent while paused");
    assert_eq!(dev.pause().unwrap(), saved, "pausing again changes nothing");

    // Restored: the first frame the backend sees is the guest's RARP.
    dev.restored();
    dev.resume().unwrap();
    let mut rarp = vec![0u8; 4 + 60];
    peer.read_exact(&mut rarp).unwrap();
    assert_eq!(rarp, framed(&rarp_frame(&mac)));
    assert_eq!(&rarp[4 + 6..4 + 12], &mac, "from the guest's MAC");
    let mut next = vec![0u8; 4 + 120];
    peer.read_exact(&mut next).unwrap();
    assert_eq!(next, framed(&eth_frame(120, 5)), "then what waited");
    while rig.rxq.used().idx().load() < 1 {
        assert!(wait(&rig.rx_irq), "receive interrupt after resume");
    }
    assert_eq!(read(&m, b0 + HDR_LEN as u64, 150), inbound);
    dev.reset();
    assert!(dev.backend.is_some(), "the backend comes back on reset");
}
