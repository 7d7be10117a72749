//! virtio-scsi framing through virtio-queue's MockSplitQueue: commands to
//! the CD-ROM, other targets and LUNs, short buffers, control requests
//! and the config space.

use super::*;
use block_source::MemorySource;
use virtio_bindings::bindings::virtio_ring::VRING_DESC_F_WRITE;
use virtio_queue::desc::{split::Descriptor as SplitDescriptor, RawDescriptor};
use virtio_queue::mock::MockSplitQueue;
use vm_memory::{Bytes, GuestAddress};

const W: u16 = VRING_DESC_F_WRITE as u16;
const REQ: u64 = 0x10_0000;
const RESP: u64 = 0x11_0000;
const DATA: u64 = 0x12_0000;
const RESP_LEN: u32 = (RESP_HEADER as u32) + SENSE_SIZE;

fn mem() -> Memory {
    Memory::from_ranges(&[(GuestAddress(0), 0x20_0000)]).unwrap()
}

fn d(addr: u64, len: u32, flags: u16) -> RawDescriptor {
    RawDescriptor::from(SplitDescriptor::new(addr, len, flags, 0))
}

fn handler() -> ScsiHandler {
    let data: Vec<u8> = (0..4 * 2048u32).map(|i| (i / 2048) as u8 + 1).collect();
    let unit = Cdrom::new(Arc::new(MemorySource::new(data, true)), "S1");
    ScsiHandler::new(unit, CDB_SIZE, SENSE_SIZE)
}

fn request(mem: &Memory, lun: [u8; 8], cdb: &[u8]) {
    let mut r = vec![0u8; REQ_HEADER + CDB_SIZE as usize];
    r[..8].copy_from_slice(&lun);
    r[REQ_HEADER..REQ_HEADER + cdb.len()].copy_from_slice(cdb);
    mem.write_slice(&r, GuestAddress(REQ)).unwrap();
}

struct Resp {
    used: u32,
    sense_len: u32,
    resid: u32,
    status: u8,
    response: u8,
    sense: Vec<u8>,
}

fn run(mem: &Memory, h: &mut ScsiHandler, descs: &[RawDescriptor]) -> Resp {
    let vq = MockSplitQueue::new(mem, 16);
    let chain = vq.build_desc_chain(descs).unwrap();
    let used = h.handle_request(chain, mem);
    let mut r = vec![0u8; RESP_LEN as usize];
    mem.read_slice(&mut r, GuestAddress(RESP)).unwrap();
    Resp {
        used,
        sense_len: u32::from_le_bytes(r[0..4].try_into().unwrap()),
        resid: u32::from_le_bytes(r[4..8].try_into().unwrap()),
        status: r[10],
        response: r[11],
        sense: r[12..30].to_vec(),
    }
}

const LUN0: [u8; 8] = [1, 0, 0x40, 0, 0, 0, 0, 0];
fn cmd(data_in: u32) -> Vec<RawDescriptor> {
    let mut v = vec![
        d(REQ, REQ_HEADER as u32 + CDB_SIZE, 0),
        d(RESP, RESP_LEN, W),
    ];
    if data_in > 0 {
        v.push(d(DATA, data_in, W));
    }
    v
}

#[test]
fn read_10_lands_in_the_data_in_buffer() {
    let m = mem();
    let mut h = handler();
    request(&m, LUN0, &[0x28, 0, 0, 0, 0, 2, 0, 0, 1, 0]);
    let r = run(&m, &mut h, &cmd(2048));
    assert_eq!(
        (r.used, r.status, r.response, r.resid),
        (RESP_LEN + 2048, 0, 0, 0)
    );
    let mut b = vec![0u8; 2048];
    m.read_slice(&mut b, GuestAddress(DATA)).unwrap();
    assert!(b.iter().all(|&x| x == 3));
}

#[test]
fn short_data_and_residuals() {
    let m = mem();
    let mut h = handler();
    // INQUIRY for 96 bytes returns 36: the rest is residual
    request(&m, LUN0, &[0x12, 0, 0, 0, 96, 0]);
    let r = run(&m, &mut h, &cmd(96));
    assert_eq!(
        (r.used, r.resid, r.response),
        (RESP_LEN + 36, 60, VIRTIO_SCSI_S_OK)
    );
    // READ of two blocks into a one-block buffer: overrun, one block moved
    request(&m, LUN0, &[0x28, 0, 0, 0, 0, 0, 0, 0, 2, 0]);
    let r = run(&m, &mut h, &cmd(2048));
    assert_eq!(
        (r.used, r.resid, r.response),
        (RESP_LEN + 2048, 0, VIRTIO_SCSI_S_OVERRUN)
    );
}

#[test]
fn check_condition_carries_fixed_sense() {
    let m = mem();
    let mut h = handler();
    request(&m, LUN0, &[0x28, 0, 0, 0, 0, 9, 0, 0, 1, 0]);
    let r = run(&m, &mut h, &cmd(2048));
    assert_eq!(
        (r.status, r.response, r.sense_len, r.resid),
        (2, 0, 18, 2048)
    );
    assert_eq!((r.sense[0], r.sense[2], r.sense[12]), (0x70, 0x05, 0x21));
}

#[test]
fn other_targets_and_luns() {
    let m = mem();
    let mut h = handler();
    request(&m, [1, 1, 0x40, 0, 0, 0, 0, 0], &[0x12, 0, 0, 0, 36, 0]);
    let r = run(&m, &mut h, &cmd(36));
    assert_eq!((r.response, r.used), (VIRTIO_SCSI_S_BAD_TARGET, RESP_LEN));
    request(&m, [1, 0, 0x40, 1, 0, 0, 0, 0], &[0x12, 0, 0, 0, 36, 0]);
    let r = run(&m, &mut h, &cmd(36));
    assert_eq!(
        (r.response, r.status, r.used),
        (VIRTIO_SCSI_S_OK, 0, RESP_LEN + 36)
    );
    assert_eq!(m.read_obj::<u8>(GuestAddress(DATA)).unwrap(), 0x7f);
    request(&m, [1, 0, 0x40, 1, 0, 0, 0, 0], &[0x00]);
    let r = run(&m, &mut h, &cmd(0));
    assert_eq!((r.status, r.sense[12]), (2, 0x25));
}

#[test]
fn malformed_chains_fail_the_request_only() {
    let m = mem();
    let mut h = handler();
    // no room for the response
    request(&m, LUN0, &[0x00]);
    let r = run(&m, &mut h, &[d(REQ, 51, 0), d(RESP, 10, W)]);
    assert_eq!(r.used, 0);
    // a header shorter than lun + cdb
    let r = run(&m, &mut h, &[d(REQ, 8, 0), d(RESP, RESP_LEN, W)]);
    assert_eq!((r.used, r.response), (RESP_LEN, VIRTIO_SCSI_S_FAILURE));
}

#[test]
fn control_requests_complete() {
    let m = mem();
    let mut h = handler();
    let vq = MockSplitQueue::new(&m, 16);
    m.write_slice(&[0u8; 24], GuestAddress(REQ)).unwrap();
    m.write_obj(0xeeu8, GuestAddress(RESP)).unwrap();
    let chain = vq
        .build_desc_chain(&[d(REQ, 24, 0), d(RESP, 1, W)])
        .unwrap();
    assert_eq!(h.handle_control(chain, &m), 1);
    assert_eq!(
        m.read_obj::<u8>(GuestAddress(RESP)).unwrap(),
        VIRTIO_SCSI_S_FUNCTION_COMPLETE
    );
    m.write_obj(VIRTIO_SCSI_T_AN_QUERY, GuestAddress(REQ))
        .unwrap();
    let vq = MockSplitQueue::new(&m, 16);
    let chain = vq
        .build_desc_chain(&[d(REQ, 16, 0), d(RESP, 8, W)])
        .unwrap();
    assert_eq!(h.handle_control(chain, &m), 5);
    m.write_obj(77u32, GuestAddress(REQ)).unwrap();
    let vq = MockSplitQueue::new(&m, 16);
    let chain = vq
        .build_desc_chain(&[d(REQ, 16, 0), d(RESP, 8, W)])
        .unwrap();
    assert_eq!(h.handle_control(chain, &m), 0);
}

#[test]
fn config_space_and_its_writable_fields() {
    let mut dev = VirtioScsi::new(Arc::new(MemorySource::new(vec![0; 4096], true)), "S".into());
    assert_eq!(dev.device_type(), 8);
    assert_eq!(dev.queue_max_sizes().len(), 3);
    let mut c = [0u8; 36];
    dev.read_config(0, &mut c);
    let u = |o: usize| u32::from_le_bytes(c[o..o + 4].try_into().unwrap());
    assert_eq!((u(0), u(20), u(24), u(32)), (1, SENSE_SIZE, CDB_SIZE, 0));
    assert_eq!(u(8), 2048, "max_sectors: 1 MiB in 512-byte sectors");
    assert_eq!(&c[28..32], [0, 0, 0, 0], "max_channel, max_target");
    dev.write_config(24, &16u32.to_le_bytes());
    dev.write_config(0, &9u32.to_le_bytes());
    dev.read_config(0, &mut c);
    assert_eq!(
        (c[0], c[24]),
        (1, 16),
        "num_queues read-only, cdb_size writable"
    );
}

#[test]
fn addresses() {
    assert_eq!(address(&LUN0), Address::Cdrom);
    assert_eq!(address(&[1, 0, 0, 0, 0, 0, 0, 0]), Address::Cdrom);
    assert_eq!(address(&[1, 0, 0x40, 2, 0, 0, 0, 0]), Address::AbsentLun);
    assert_eq!(address(&[2, 0, 0x40, 0, 0, 0, 0, 0]), Address::BadTarget);
    assert_eq!(address(&[0; 8]), Address::BadTarget);
}
