//! virtio-blk requests through virtio-queue's MockSplitQueue, including
//! malformed chains.

use super::*;
use block_source::MemorySource;
use virtio_bindings::bindings::virtio_ring::VRING_DESC_F_WRITE;
use virtio_queue::desc::{split::Descriptor as SplitDescriptor, RawDescriptor};
use virtio_queue::mock::MockSplitQueue;
use vm_memory::{Bytes, GuestAddress};

const W: u16 = VRING_DESC_F_WRITE as u16;
const HDR: u64 = 0x10_0000;
const DATA: u64 = 0x11_0000;
const STATUS: u64 = 0x12_0000;

fn mem() -> Memory {
    Memory::from_ranges(&[(GuestAddress(0), 0x20_0000)]).unwrap()
}

fn d(addr: u64, len: u32, flags: u16) -> RawDescriptor {
    RawDescriptor::from(SplitDescriptor::new(addr, len, flags, 0))
}

fn header(mem: &Memory, kind: u32, sector: u64) {
    let mut h = [0u8; 16];
    h[0..4].copy_from_slice(&kind.to_le_bytes());
    h[8..16].copy_from_slice(&sector.to_le_bytes());
    mem.write_slice(&h, GuestAddress(HDR)).unwrap();
}

fn disk(read_only: bool) -> (Arc<MemorySource>, BlockHandler) {
    let data: Vec<u8> = (0..8192u32).map(|i| (i / 512) as u8).collect();
    let src = Arc::new(MemorySource::new(data, false));
    let h = BlockHandler::new(src.clone(), read_only, "serial-123");
    (src, h)
}

/// Run `descs` as one chain; returns (used length, status byte).
fn run(mem: &Memory, h: &BlockHandler, descs: &[RawDescriptor]) -> (u32, u8) {
    mem.write_obj(0xeeu8, GuestAddress(STATUS)).unwrap();
    let vq = MockSplitQueue::new(mem, 16);
    let chain = vq.build_desc_chain(descs).unwrap();
    let len = h.handle(chain, mem);
    (len, mem.read_obj(GuestAddress(STATUS)).unwrap())
}

#[test]
fn reads_the_requested_sectors() {
    let m = mem();
    let (_, h) = disk(false);
    header(&m, VIRTIO_BLK_T_IN, 3);
    let r = run(&m, &h, &[d(HDR, 16, 0), d(DATA, 1024, W), d(STATUS, 1, W)]);
    assert_eq!(r, (1025, VIRTIO_BLK_S_OK));
    let mut b = [0u8; 1024];
    m.read_slice(&mut b, GuestAddress(DATA)).unwrap();
    assert!(b[..512].iter().all(|&x| x == 3) && b[512..].iter().all(|&x| x == 4));
}

#[test]
fn writes_flush_and_get_id() {
    let m = mem();
    let (src, h) = disk(false);
    header(&m, VIRTIO_BLK_T_OUT, 1);
    m.write_slice(&[0xab; 512], GuestAddress(DATA)).unwrap();
    assert_eq!(
        run(&m, &h, &[d(HDR, 16, 0), d(DATA, 512, 0), d(STATUS, 1, W)]),
        (1, VIRTIO_BLK_S_OK)
    );
    let mut b = [0u8; 512];
    src.read_at(&mut b, 512).unwrap();
    assert_eq!(b, [0xab; 512]);

    header(&m, VIRTIO_BLK_T_FLUSH, 0);
    assert_eq!(
        run(&m, &h, &[d(HDR, 16, 0), d(STATUS, 1, W)]),
        (1, VIRTIO_BLK_S_OK)
    );

    header(&m, VIRTIO_BLK_T_GET_ID, 0);
    assert_eq!(
        run(&m, &h, &[d(HDR, 16, 0), d(DATA, 20, W), d(STATUS, 1, W)]),
        (21, VIRTIO_BLK_S_OK)
    );
    let mut id = [0u8; 20];
    m.read_slice(&mut id, GuestAddress(DATA)).unwrap();
    assert_eq!(&id[..10], b"serial-123");
    assert_eq!(id[10], 0);
}

#[test]
fn read_only_disks_refuse_writes() {
    let m = mem();
    let (src, h) = disk(true);
    header(&m, VIRTIO_BLK_T_OUT, 0);
    m.write_slice(&[0xab; 512], GuestAddress(DATA)).unwrap();
    assert_eq!(
        run(&m, &h, &[d(HDR, 16, 0), d(DATA, 512, 0), d(STATUS, 1, W)]),
        (1, VIRTIO_BLK_S_IOERR)
    );
    let mut b = [0u8; 1];
    src.read_at(&mut b, 0).unwrap();
    assert_eq!(b, [0]);
    let dev = VirtioBlock::new(src, true, "x".into());
    assert_ne!(dev.features() & VIRTIO_BLK_F_RO, 0);
}

#[test]
fn out_of_range_and_unknown_requests_fail_cleanly() {
    let m = mem();
    let (_, h) = disk(false);
    // Past the end (16 sectors).
    header(&m, VIRTIO_BLK_T_IN, 15);
    assert_eq!(
        run(&m, &h, &[d(HDR, 16, 0), d(DATA, 1024, W), d(STATUS, 1, W)]),
        (1, VIRTIO_BLK_S_IOERR)
    );
    // Sector number that overflows when turned into bytes.
    header(&m, VIRTIO_BLK_T_IN, u64::MAX);
    assert_eq!(
        run(&m, &h, &[d(HDR, 16, 0), d(DATA, 512, W), d(STATUS, 1, W)]),
        (1, VIRTIO_BLK_S_IOERR)
    );
    header(&m, 99, 0);
    assert_eq!(
        run(&m, &h, &[d(HDR, 16, 0), d(STATUS, 1, W)]),
        (1, VIRTIO_BLK_S_UNSUPP)
    );
}

#[test]
fn malformed_chains_fail_the_request_not_the_device() {
    let m = mem();
    let (_, h) = disk(false);
    header(&m, VIRTIO_BLK_T_IN, 0);
    // No writable descriptor at all: no status can be given.
    assert_eq!(run(&m, &h, &[d(HDR, 16, 0), d(DATA, 512, 0)]).0, 0);
    // Header too short.
    assert_eq!(
        run(&m, &h, &[d(HDR, 8, 0), d(STATUS, 1, W)]),
        (1, VIRTIO_BLK_S_IOERR)
    );
    // Data buffer outside guest memory.
    assert_eq!(
        run(
            &m,
            &h,
            &[d(HDR, 16, 0), d(0x4000_0000, 512, W), d(STATUS, 1, W)]
        )
        .0,
        0
    );
    // A huge length claimed in a descriptor.
    assert_eq!(
        run(
            &m,
            &h,
            &[d(HDR, 16, 0), d(DATA, u32::MAX, W), d(STATUS, 1, W)]
        )
        .0,
        0
    );
    // Still serves a good request afterwards.
    assert_eq!(
        run(&m, &h, &[d(HDR, 16, 0), d(DATA, 512, W), d(STATUS, 1, W)]),
        (513, VIRTIO_BLK_S_OK)
    );
}

#[test]
fn config_space_reports_capacity_in_sectors() {
    let (src, _) = disk(false);
    let dev = VirtioBlock::new(src, false, "x".into());
    let mut cap = [0u8; 8];
    dev.read_config(0, &mut cap);
    assert_eq!(u64::from_le_bytes(cap), 16);
    let mut past = [0xffu8; 4];
    dev.read_config(1000, &mut past);
    assert_eq!(past, [0; 4]);
}
