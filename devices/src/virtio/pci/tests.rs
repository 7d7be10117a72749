//! The transport driven the way Linux's virtio_pci does it.

use super::*;
use crate::virtio::rng::VirtioRng;
use std::sync::Mutex;
use virtio_bindings::bindings::virtio_ring::VRING_DESC_F_WRITE;
use virtio_queue::desc::{split::Descriptor as SplitDescriptor, RawDescriptor};
use virtio_queue::mock::MockSplitQueue;
use vm_memory::{Address, Bytes, GuestAddress};

#[derive(Default)]
struct Recorder {
    routes: Mutex<Vec<(u32, Option<MsiMessage>)>>,
    next: Mutex<u32>,
}

impl MsiRouter for Recorder {
    fn route(&self, gsi: u32, msg: Option<MsiMessage>) -> io::Result<()> {
        self.routes.lock().unwrap().push((gsi, msg));
        Ok(())
    }
    fn allocate(&self, _evt: &EventFd) -> io::Result<u32> {
        let mut n = self.next.lock().unwrap();
        *n += 1;
        Ok(23 + *n)
    }
}

fn w(dev: &mut VirtioPciDevice, off: u64, v: u64, len: usize) {
    dev.write(off, &v.to_le_bytes()[..len]);
}

fn r(dev: &mut VirtioPciDevice, off: u64, len: usize) -> u64 {
    let mut b = vec![0u8; len];
    dev.read(off, &mut b);
    le(&b)
}

#[test]
fn capabilities_features_queue_setup_and_a_request() {
    let mem = Memory::from_ranges(&[(GuestAddress(0), 0x40_0000)]).unwrap();
    let router = Arc::new(Recorder::default());
    let mut dev = VirtioPciDevice::new(
        Box::new(VirtioRng::new()),
        mem.clone(),
        router.clone(),
        0xc000_0000,
    )
    .unwrap();

    // Config space: virtio vendor, modern device id, capability list.
    assert_eq!(dev.config_read(0), 0x1044_1af4);
    let mut cap = dev.config_read(0x34 / 4) as usize & 0xff;
    let mut kinds = Vec::new();
    while cap != 0 {
        let d = dev.config_read(cap / 4);
        let id = d as u8;
        if id == CAP_VENDOR {
            kinds.push((d >> 24) as u8);
        } else {
            kinds.push(0x11);
        }
        cap = ((d >> 8) & 0xff) as usize;
    }
    assert_eq!(
        kinds,
        vec![CFG_COMMON, CFG_NOTIFY, CFG_ISR, CFG_DEVICE, 0x11]
    );

    // Feature negotiation: VERSION_1 in the high word.
    w(&mut dev, 0x00, 1, 4);
    assert_eq!(r(&mut dev, 0x04, 4), 1);
    w(&mut dev, 0x08, 1, 4);
    w(&mut dev, 0x0c, 1, 4);
    w(&mut dev, 0x14, 1 | 2 | 8, 1);
    assert_eq!(
        r(&mut dev, 0x14, 1) as u8 & STATUS_FEATURES_OK,
        STATUS_FEATURES_OK
    );

    // MSI-X: enable, program vector 0, use it for queue 0.
    let msix = dev.msix_cap;
    dev.config_write(msix + 3, &[0x80]);
    w(&mut dev, MSIX_TABLE_OFFSET, 0xfee0_0000, 4);
    w(&mut dev, MSIX_TABLE_OFFSET + 8, 0x41, 4);
    w(&mut dev, MSIX_TABLE_OFFSET + 12, 0, 4);
    let routed = router
        .routes
        .lock()
        .unwrap()
        .iter()
        .rev()
        .find(|(g, _)| *g == 24)
        .copied();
    assert_eq!(
        routed,
        Some((
            24,
            Some(MsiMessage {
                address: 0xfee0_0000,
                data: 0x41
            })
        ))
    );

    let vq = MockSplitQueue::new(&mem, 16);
    w(&mut dev, 0x16, 0, 2);
    assert_eq!(r(&mut dev, 0x18, 2), 256);
    w(&mut dev, 0x18, 16, 2);
    w(&mut dev, 0x1a, 0, 2);
    w(&mut dev, 0x20, vq.desc_table_addr().0, 4);
    w(&mut dev, 0x28, vq.avail_addr().0, 4);
    w(&mut dev, 0x30, vq.used_addr().0, 4);
    w(&mut dev, 0x1c, 1, 2);
    // Out-of-range vector numbers become NO_VECTOR.
    w(&mut dev, 0x10, 99, 2);
    assert_eq!(r(&mut dev, 0x10, 2), NO_VECTOR as u64);
    w(&mut dev, 0x14, 1 | 2 | 4 | 8, 1);
    assert_eq!(r(&mut dev, 0x14, 1) as u8 & STATUS_NEEDS_RESET, 0);

    // A request: the guest adds a buffer and notifies through the BAR.
    vq.add_desc_chains(
        &[RawDescriptor::from(SplitDescriptor::new(
            0x30_0000,
            32,
            VRING_DESC_F_WRITE as u16,
            0,
        ))],
        0,
    )
    .unwrap();
    let irq = dev.vector_evts[0].try_clone().unwrap();
    w(&mut dev, NOTIFY_OFFSET, 0, 2);
    let mut fired = false;
    for _ in 0..200 {
        if irq.read().is_ok() {
            fired = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    assert!(fired, "no interrupt after the request");
    let used_idx: u16 = mem.read_obj(vq.used_addr().unchecked_add(2)).unwrap();
    assert_eq!(used_idx, 1);
    let used_len: u32 = mem.read_obj(vq.used_addr().unchecked_add(8)).unwrap();
    assert_eq!(used_len, 32);

    // Reset stops the device and clears the status.
    w(&mut dev, 0x14, 0, 1);
    assert_eq!(r(&mut dev, 0x14, 1), 0);
}

#[test]
fn invalid_rings_set_needs_reset_instead_of_failing() {
    let mem = Memory::from_ranges(&[(GuestAddress(0), 0x10_0000)]).unwrap();
    let router = Arc::new(Recorder::default());
    let mut dev =
        VirtioPciDevice::new(Box::new(VirtioRng::new()), mem, router, 0xc000_0000).unwrap();
    w(&mut dev, 0x08, 1, 4);
    w(&mut dev, 0x0c, 1, 4);
    w(&mut dev, 0x14, 1 | 2 | 8, 1);
    w(&mut dev, 0x20, 0x7fff_f000, 4); // outside guest memory
    w(&mut dev, 0x1c, 1, 2);
    w(&mut dev, 0x14, 1 | 2 | 4 | 8, 1);
    assert_ne!(r(&mut dev, 0x14, 1) as u8 & STATUS_NEEDS_RESET, 0);
}

/// The driver's usual setup: features, MSI-X vector 0 for queue 0, the
/// queue at `vq`'s rings, DRIVER_OK.
fn drive_setup(dev: &mut VirtioPciDevice, vq: &MockSplitQueue<Memory>) {
    w(dev, 0x08, 1, 4);
    w(dev, 0x0c, 1, 4);
    w(dev, 0x14, 1 | 2 | 8, 1);
    let msix = dev.msix_cap;
    dev.config_write(msix + 3, &[0x80]);
    w(dev, MSIX_TABLE_OFFSET, 0xfee0_0000, 4);
    w(dev, MSIX_TABLE_OFFSET + 8, 0x41, 4);
    w(dev, MSIX_TABLE_OFFSET + 12, 0, 4);
    w(dev, 0x16, 0, 2);
    w(dev, 0x18, 16, 2);
    w(dev, 0x1a, 0, 2);
    w(dev, 0x20, vq.desc_table_addr().0, 4);
    w(dev, 0x28, vq.avail_addr().0, 4);
    w(dev, 0x30, vq.used_addr().0, 4);
    w(dev, 0x1c, 1, 2);
    w(dev, 0x14, 1 | 2 | 4 | 8, 1);
}

/// Add one writable buffer, kick, and wait until the used index is `n`.
fn request(dev: &mut VirtioPciDevice, mem: &Memory, vq: &MockSplitQueue<Memory>, n: u16) {
    let desc = SplitDescriptor::new(
        0x30_0000 + u64::from(n) * 0x100,
        32,
        VRING_DESC_F_WRITE as u16,
        0,
    );
    vq.add_desc_chains(&[RawDescriptor::from(desc)], n - 1)
        .unwrap();
    w(dev, NOTIFY_OFFSET, 0, 2);
    wait_used(mem, vq, n);
}

fn wait_used(mem: &Memory, vq: &MockSplitQueue<Memory>, n: u16) {
    for _ in 0..2000 {
        let used: u16 = mem.read_obj(vq.used_addr().unchecked_add(2)).unwrap();
        if used == n {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    panic!("used index did not reach {n}");
}

#[test]
fn a_saved_transport_restores_on_a_new_device_and_serves_on() {
    let mem = Memory::from_ranges(&[(GuestAddress(0), 0x40_0000)]).unwrap();
    let router = Arc::new(Recorder::default());
    let mut dev = VirtioPciDevice::new(
        Box::new(VirtioRng::new()),
        mem.clone(),
        router.clone(),
        0xc000_0000,
    )
    .unwrap();
    let vq = MockSplitQueue::new(&mem, 16);
    drive_setup(&mut dev, &vq);
    request(&mut dev, &mem, &vq, 1);
    // The guest moved the BAR (memory decoding on).
    dev.config_write(0x04, &[0x06, 0]);
    dev.config_write(0x10, &0xd000_0000u32.to_le_bytes());
    let mv = dev.take_bar_move().expect("moved");
    assert_eq!(mv.to, Some(0xd000_0000));

    let saved = dev.save().unwrap();
    assert_eq!(saved.running_queues[0].next_used, 1);
    // Paused: a kicked request waits.
    vq.add_desc_chains(
        &[RawDescriptor::from(SplitDescriptor::new(
            0x30_0200,
            32,
            VRING_DESC_F_WRITE as u16,
            0,
        ))],
        1,
    )
    .unwrap();
    w(&mut dev, NOTIFY_OFFSET, 0, 2);
    std::thread::sleep(std::time::Duration::from_millis(20));
    let used: u16 = mem.read_obj(vq.used_addr().unchecked_add(2)).unwrap();
    assert_eq!(used, 1, "a saved (paused) device serves nothing");
    drop(dev);

    let router2 = Arc::new(Recorder::default());
    let mut dev2 = VirtioPciDevice::new(
        Box::new(VirtioRng::new()),
        mem.clone(),
        router2.clone(),
        0xc000_0000,
    )
    .unwrap();
    let mv = dev2
        .restore(&saved)
        .unwrap()
        .expect("the BAR goes where it was");
    assert_eq!((mv.from, mv.to), (Some(0xc000_0000), Some(0xd000_0000)));
    assert_eq!(dev2.bar_addr(), 0xd000_0000);
    // The driver's view is the same: every common-config register.
    let mut dev_again = dev2.save().unwrap();
    dev_again.running_queues = saved.running_queues.clone();
    assert_eq!(dev_again, saved);
    assert!(
        router2.routes.lock().unwrap().iter().any(|(_, m)| *m
            == Some(MsiMessage {
                address: 0xfee0_0000,
                data: 0x41
            })),
        "the MSI-X route is pushed again"
    );
    dev2.resume().unwrap();
    // What was kicked while paused is served, and new requests too.
    wait_used(&mem, &vq, 2);
    request(&mut dev2, &mem, &vq, 3);
    // A state of another device kind is refused.
    let mut other = saved.clone();
    other.device_type = 2;
    let mut dev3 =
        VirtioPciDevice::new(Box::new(VirtioRng::new()), mem, router2, 0xc000_0000).unwrap();
    assert!(dev3.restore(&other).is_err());
}
