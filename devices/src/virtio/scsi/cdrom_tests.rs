//! Each command of the CD-ROM unit: data layout, allocation lengths,
//! bad CDBs, reads past the end and the tray state.

use super::*;
use block_source::MemorySource;

/// A medium of `blocks` blocks whose every byte is its block number.
fn drive(blocks: u64) -> Cdrom {
    let data: Vec<u8> = (0..blocks * BLOCK).map(|i| (i / BLOCK) as u8).collect();
    Cdrom::new(Arc::new(MemorySource::new(data, true)), "SER1")
}

fn cdb(bytes: &[u8]) -> [u8; 32] {
    let mut c = [0u8; 32];
    c[..bytes.len()].copy_from_slice(bytes);
    c
}

fn good(d: &mut Cdrom, c: &[u8]) -> Vec<u8> {
    let o = d.execute(&cdb(c));
    assert_eq!(o.status, GOOD, "{c:02x?}: sense {:02x?}", o.sense);
    assert!(o.sense.is_empty());
    o.data
}

fn sense(d: &mut Cdrom, c: &[u8]) -> Sense {
    let o = d.execute(&cdb(c));
    assert_eq!(o.status, CHECK_CONDITION, "{c:02x?}");
    assert!(o.data.is_empty());
    assert_eq!(o.sense.len(), 18);
    assert_eq!(o.sense[0], 0x70, "fixed format");
    assert_eq!(o.sense[7], 10, "additional length");
    Sense {
        key: o.sense[2],
        asc: o.sense[12],
        ascq: o.sense[13],
    }
}

#[test]
fn inquiry_standard_data_is_a_removable_cd_rom() {
    let mut d = drive(4);
    let data = good(&mut d, &[0x12, 0, 0, 0, 96, 0]);
    assert_eq!(data.len(), 36);
    assert_eq!(data[0], 0x05);
    assert_eq!(data[1], 0x80);
    assert_eq!(&data[8..16], b"OVF-RUN ");
    assert_eq!(
        good(&mut d, &[0x12, 0, 0, 0, 5, 0]).len(),
        5,
        "short allocation"
    );
    assert_eq!(
        sense(&mut d, &[0x12, 0, 0x80, 0, 96, 0]),
        INVALID_FIELD_IN_CDB,
        "page without EVPD"
    );
}

#[test]
fn inquiry_vpd_pages() {
    let mut d = drive(4);
    assert_eq!(
        good(&mut d, &[0x12, 1, 0x00, 0, 255, 0]),
        [5, 0, 0, 3, 0x00, 0x80, 0x83]
    );
    assert_eq!(
        good(&mut d, &[0x12, 1, 0x80, 0, 255, 0]),
        [5, 0x80, 0, 4, b'S', b'E', b'R', b'1']
    );
    let id = good(&mut d, &[0x12, 1, 0x83, 0, 255, 0]);
    assert_eq!(&id[..2], [5, 0x83]);
    assert_eq!(id[4], 0x02, "ASCII code set");
    assert_eq!(id[5], 0x01, "T10 vendor ID");
    assert_eq!(id.len(), 4 + 4 + id[7] as usize);
    assert!(id.ends_with(b"OVF-RUN CD-ROM SER1"));
    assert_eq!(
        sense(&mut d, &[0x12, 1, 0xb0, 0, 255, 0]),
        INVALID_FIELD_IN_CDB
    );
}

#[test]
fn test_unit_ready_and_request_sense_follow_the_tray() {
    let mut d = drive(4);
    assert!(good(&mut d, &[0x00]).is_empty());
    assert_eq!(good(&mut d, &[0x03, 0, 0, 0, 18, 0]), NO_SENSE.fixed());
    assert!(good(&mut d, &[0x1b, 0, 0, 0, 0x02, 0]).is_empty(), "eject");
    assert_eq!(sense(&mut d, &[0x00]), MEDIUM_NOT_PRESENT);
    assert_eq!(
        good(&mut d, &[0x03, 0, 0, 0, 18, 0]),
        MEDIUM_NOT_PRESENT.fixed()
    );
    assert_eq!(good(&mut d, &[0x03, 0, 0, 0, 8, 0]).len(), 8);
    assert_eq!(
        sense(&mut d, &[0x28, 0, 0, 0, 0, 0, 0, 0, 1, 0]),
        MEDIUM_NOT_PRESENT
    );
    assert!(good(&mut d, &[0x1b, 0, 0, 0, 0x03, 0]).is_empty(), "load");
    assert!(good(&mut d, &[0x00]).is_empty());
    assert_eq!(
        sense(&mut d, &[0x03, 1, 0, 0, 18, 0]),
        INVALID_FIELD_IN_CDB,
        "descriptor format"
    );
}

#[test]
fn prevent_allow_locks_the_tray() {
    let mut d = drive(4);
    good(&mut d, &[0x1e, 0, 0, 0, 1, 0]);
    assert_eq!(sense(&mut d, &[0x1b, 0, 0, 0, 0x02, 0]), REMOVAL_PREVENTED);
    let page = good(&mut d, &[0x1a, 0, 0x2a, 0, 255, 0]);
    assert_eq!(page[4 + 6] & 0x02, 0x02, "lock state in page 0x2A");
    good(&mut d, &[0x1e, 0, 0, 0, 0, 0]);
    good(&mut d, &[0x1b, 0, 0, 0, 0x02, 0]);
    assert_eq!(sense(&mut d, &[0x00]), MEDIUM_NOT_PRESENT);
    good(&mut d, &[0x1b, 0, 0, 0, 0x01, 0]); // start without LoEj: no load
    assert_eq!(sense(&mut d, &[0x00]), MEDIUM_NOT_PRESENT);
}

#[test]
fn read_capacity_counts_2048_byte_blocks_rounding_up() {
    let mut d = drive(5);
    assert_eq!(
        good(&mut d, &[0x25, 0, 0, 0, 0, 0, 0, 0, 0, 0]),
        [0, 0, 0, 4, 0, 0, 8, 0]
    );
    let odd = Cdrom::new(Arc::new(MemorySource::new(vec![7; 2049], true)), "x");
    assert_eq!(odd.blocks(), 2);
    let mut empty = Cdrom::new(Arc::new(MemorySource::new(vec![], true)), "x");
    assert_eq!(
        sense(&mut empty, &[0x25, 0, 0, 0, 0, 0, 0, 0, 0, 0]),
        MEDIUM_NOT_PRESENT
    );
}

#[test]
fn read_10_and_12_return_the_blocks() {
    let mut d = drive(8);
    let r = good(&mut d, &[0x28, 0, 0, 0, 0, 3, 0, 0, 2, 0]);
    assert_eq!(r.len(), 4096);
    assert!(r[..2048].iter().all(|&b| b == 3) && r[2048..].iter().all(|&b| b == 4));
    let r = good(&mut d, &[0xa8, 0, 0, 0, 0, 7, 0, 0, 0, 1, 0, 0]);
    assert!(r.len() == 2048 && r.iter().all(|&b| b == 7));
    assert!(
        good(&mut d, &[0x28, 0, 0, 0, 0, 8, 0, 0, 0, 0]).is_empty(),
        "zero blocks at the end"
    );
}

#[test]
fn reads_past_the_end_are_lba_out_of_range() {
    let mut d = drive(8);
    assert_eq!(
        sense(&mut d, &[0x28, 0, 0, 0, 0, 7, 0, 0, 2, 0]),
        LBA_OUT_OF_RANGE
    );
    assert_eq!(
        sense(&mut d, &[0x28, 0, 0xff, 0xff, 0xff, 0xff, 0, 0xff, 0xff, 0]),
        LBA_OUT_OF_RANGE
    );
    assert_eq!(
        sense(
            &mut d,
            &[0xa8, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0]
        ),
        LBA_OUT_OF_RANGE
    );
    let mut big = drive(MAX_READ_BLOCKS + 1);
    let n = (MAX_READ_BLOCKS + 1) as u8 as u16;
    let c = [0xa8, 0, 0, 0, 0, 0, 0, 0, 0x02, n as u8, 0, 0];
    assert_eq!(
        sense(&mut big, &c),
        INVALID_FIELD_IN_CDB,
        "more than one READ may move"
    );
}

#[test]
fn a_partial_last_block_reads_as_zero_padded() {
    let mut d = Cdrom::new(Arc::new(MemorySource::new(vec![9; 2100], true)), "x");
    let r = good(&mut d, &[0x28, 0, 0, 0, 0, 1, 0, 0, 1, 0]);
    assert_eq!(r.len(), 2048);
    assert!(r[..52].iter().all(|&b| b == 9) && r[52..].iter().all(|&b| b == 0));
}

#[test]
fn mode_sense_6_and_10_give_the_capabilities_page() {
    let mut d = drive(4);
    let six = good(&mut d, &[0x1a, 0, 0x2a, 0, 255, 0]);
    assert_eq!(six.len(), 4 + 22);
    assert_eq!(six[0] as usize, six.len() - 1);
    assert_eq!(six[3], 0, "no block descriptors");
    assert_eq!(&six[4..6], [0x2a, 20]);
    assert_eq!(six[4 + 6] & 0x20, 0x20, "tray");
    let ten = good(&mut d, &[0x5a, 0, 0x3f, 0, 0, 0, 0, 0, 255, 0]);
    assert_eq!(ten.len(), 8 + 22);
    assert_eq!(u16::from_be_bytes([ten[0], ten[1]]) as usize, ten.len() - 2);
    assert_eq!(&ten[8..], &six[4..]);
    assert_eq!(
        good(&mut d, &[0x1a, 0, 0x2a, 0, 4, 0]).len(),
        4,
        "short allocation"
    );
    let changeable = good(&mut d, &[0x1a, 0, 0x40 | 0x2a, 0, 255, 0]);
    assert!(changeable[6..].iter().all(|&b| b == 0));
    assert_eq!(
        sense(&mut d, &[0x1a, 0, 0xc0 | 0x2a, 0, 255, 0]),
        SAVING_NOT_SUPPORTED
    );
    assert_eq!(
        sense(&mut d, &[0x1a, 0, 0x08, 0, 255, 0]),
        INVALID_FIELD_IN_CDB
    );
}

#[test]
fn get_configuration_reports_the_cd_rom_profile() {
    let mut d = drive(4);
    let all = good(&mut d, &[0x46, 0, 0, 0, 0, 0, 0, 1, 0, 0]);
    assert_eq!(
        u32::from_be_bytes(all[0..4].try_into().unwrap()) as usize,
        all.len() - 4
    );
    assert_eq!(&all[6..8], [0, 8], "current profile CD-ROM");
    assert_eq!(&all[8..12], [0, 0, 0x03, 4], "profile list feature");
    assert_eq!(&all[12..16], [0, 8, 1, 0], "CD-ROM profile, current");
    let one = good(&mut d, &[0x46, 2, 0, 0x1e, 0, 0, 0, 1, 0, 0]);
    assert_eq!(one.len(), 8 + 8);
    assert_eq!(&one[8..10], [0, 0x1e]);
    assert_eq!(
        good(&mut d, &[0x46, 0, 0, 0, 0, 0, 0, 0, 8, 0]).len(),
        8,
        "header only"
    );
    assert_eq!(
        sense(&mut d, &[0x46, 3, 0, 0, 0, 0, 0, 1, 0, 0]),
        INVALID_FIELD_IN_CDB
    );
    good(&mut d, &[0x1b, 0, 0, 0, 0x02, 0]);
    let none = good(&mut d, &[0x46, 1, 0, 0, 0, 0, 0, 1, 0, 0]);
    assert_eq!(&none[6..8], [0, 0], "no current profile without a medium");
}

#[test]
fn read_toc_formats_0_and_1_in_lba_and_msf() {
    let mut d = drive(300);
    let toc = good(&mut d, &[0x43, 0, 0, 0, 0, 0, 0, 0, 100, 0]);
    assert_eq!(
        toc,
        [0, 18, 1, 1, 0, 0x14, 1, 0, 0, 0, 0, 0, 0, 0x14, 0xaa, 0, 0, 0, 1, 44]
    );
    let msf = good(&mut d, &[0x43, 2, 0, 0, 0, 0, 0, 0, 100, 0]);
    assert_eq!(&msf[8..12], [0, 0, 2, 0], "track 1 at 00:02:00");
    assert_eq!(
        &msf[16..20],
        [0, 0, 6, 0],
        "lead-out at 450 frames = 00:06:00"
    );
    let lead_out = good(&mut d, &[0x43, 0, 0, 0, 0, 0, 0xaa, 0, 100, 0]);
    assert_eq!(lead_out.len(), 12);
    assert_eq!(
        sense(&mut d, &[0x43, 0, 0, 0, 0, 0, 2, 0, 100, 0]),
        INVALID_FIELD_IN_CDB
    );
    let session = good(&mut d, &[0x43, 0, 1, 0, 0, 0, 0, 0, 100, 0]);
    assert_eq!(session, [0, 10, 1, 1, 0, 0x14, 1, 0, 0, 0, 0, 0]);
    let sff = good(&mut d, &[0x43, 0, 0, 0, 0, 0, 0, 0, 100, 0x40]);
    assert_eq!(sff, session, "format in byte 9 (SFF-8020)");
    assert_eq!(good(&mut d, &[0x43, 0, 0, 0, 0, 0, 0, 0, 4, 0]).len(), 4);
    assert_eq!(
        sense(&mut d, &[0x43, 0, 2, 0, 0, 0, 0, 0, 100, 0]),
        INVALID_FIELD_IN_CDB
    );
}

#[test]
fn event_status_is_polled_media_class() {
    let mut d = drive(4);
    assert_eq!(
        good(&mut d, &[0x4a, 1, 0, 0, 0x10, 0, 0, 0, 8, 0]),
        [0, 6, 4, 0x10, 0, 2, 0, 0]
    );
    assert_eq!(
        good(&mut d, &[0x4a, 1, 0, 0, 0x02, 0, 0, 0, 8, 0]),
        [0, 2, 0x80, 0x10]
    );
    assert_eq!(
        sense(&mut d, &[0x4a, 0, 0, 0, 0x10, 0, 0, 0, 8, 0]),
        INVALID_FIELD_IN_CDB
    );
    good(&mut d, &[0x1b, 0, 0, 0, 0x02, 0]);
    assert_eq!(
        good(&mut d, &[0x4a, 1, 0, 0, 0x10, 0, 0, 0, 8, 0])[5],
        0,
        "no medium"
    );
}

#[test]
fn read_disc_information_and_report_luns() {
    let mut d = drive(4);
    let di = good(&mut d, &[0x51, 0, 0, 0, 0, 0, 0, 0, 34, 0]);
    assert_eq!(di.len(), 34);
    assert_eq!(&di[..3], [0, 32, 0x0e]);
    assert_eq!(
        sense(&mut d, &[0x51, 1, 0, 0, 0, 0, 0, 0, 34, 0]),
        INVALID_FIELD_IN_CDB
    );
    let luns = good(&mut d, &[0xa0, 0, 0, 0, 0, 0, 0, 0, 0, 16, 0, 0]);
    assert_eq!(luns, [0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
}

#[test]
fn unknown_and_malformed_cdbs_are_refused() {
    let mut d = drive(4);
    for op in [0x0a, 0x2a, 0x35, 0x55, 0x8a, 0xbb, 0xff] {
        assert_eq!(sense(&mut d, &[op]), INVALID_OPCODE, "{op:#x}");
    }
    assert_eq!(d.execute(&[]).sense, INVALID_OPCODE.fixed());
    assert_eq!(
        d.execute(&[0x28, 0, 0]).sense,
        INVALID_FIELD_IN_CDB.fixed(),
        "truncated"
    );
}

#[test]
fn an_absent_lun_says_so() {
    let inq = absent_lun(&cdb(&[0x12, 0, 0, 0, 36, 0]));
    assert_eq!((inq.status, inq.data[0]), (GOOD, 0x7f));
    let rs = absent_lun(&cdb(&[0x03, 0, 0, 0, 18, 0]));
    assert_eq!(rs.data, LUN_NOT_SUPPORTED.fixed());
    assert_eq!(absent_lun(&cdb(&[0x00])).sense, LUN_NOT_SUPPORTED.fixed());
    assert_eq!(absent_lun(&[]).status, CHECK_CONDITION);
}

#[test]
fn a_failing_medium_is_a_medium_error() {
    struct Broken;
    impl BlockSource for Broken {
        fn capacity(&self) -> u64 {
            4 * BLOCK
        }
        fn read_at(&self, _: &mut [u8], _: u64) -> std::io::Result<()> {
            Err(std::io::Error::other("gone"))
        }
    }
    let mut d = Cdrom::new(Arc::new(Broken), "x");
    assert_eq!(
        sense(&mut d, &[0x28, 0, 0, 0, 0, 0, 0, 0, 1, 0]),
        UNRECOVERED_READ_ERROR
    );
}
