//! The fixed data structures a CD-ROM unit returns (SPC-3 INQUIRY and
//! VPD, MMC-6 mode page 0x2A, feature descriptors, TOC, disc information,
//! media events), built as byte vectors for [`super::cdrom`].

/// Standard INQUIRY data: peripheral type 5 (CD/DVD), removable.
pub fn standard_inquiry() -> Vec<u8> {
    let mut d = vec![0u8; 36];
    d[0] = 0x05;
    d[1] = 0x80; // RMB
    d[2] = 0x05; // SPC-3
    d[3] = 0x02; // response data format
    d[4] = 31; // additional length
    d[8..16].copy_from_slice(b"OVF-RUN ");
    d[16..32].copy_from_slice(b"CD-ROM          ");
    d[32..36].copy_from_slice(b"1.0 ");
    d
}

/// A VPD page for a CD-ROM: header plus `body`.
pub fn vpd(page: u8, body: &[u8]) -> Vec<u8> {
    let mut d = vec![0x05, page];
    d.extend_from_slice(&(body.len() as u16).to_be_bytes());
    d.extend_from_slice(body);
    d
}

/// Device identification VPD body: one T10 vendor ID designator (ASCII).
pub fn device_id(serial: &str) -> Vec<u8> {
    let mut id = b"OVF-RUN CD-ROM ".to_vec();
    id.extend_from_slice(serial.as_bytes());
    let mut d = vec![0x02, 0x01, 0x00, id.len() as u8];
    d.extend_from_slice(&id);
    d
}

/// MM Capabilities and Mechanical Status page (0x2A), 22 bytes. With
/// `changeable`, the mask of changeable fields (none).
pub fn capabilities_page(changeable: bool, locked: bool) -> Vec<u8> {
    let mut p = vec![0u8; 22];
    p[0] = 0x2a;
    p[1] = 20;
    if changeable {
        return p;
    }
    p[2] = 0x00; // reads CD-ROM only (no CD-R/RW/DVD)
    p[6] = 0x20 | 0x08 | 0x01 | if locked { 0x02 } else { 0 }; // tray, eject, lock
    let speed: u16 = 32 * 176; // kB/s, "32x"
    p[8..10].copy_from_slice(&speed.to_be_bytes());
    p[14..16].copy_from_slice(&speed.to_be_bytes());
    p
}

/// A MODE SENSE(6) or (10) header without block descriptors, then `body`.
pub fn mode_header(body: &[u8], medium_type: u8, ten: bool) -> Vec<u8> {
    let mut d = if ten {
        let len = (6 + body.len()) as u16;
        let mut h = len.to_be_bytes().to_vec();
        h.extend_from_slice(&[medium_type, 0, 0, 0, 0, 0]);
        h
    } else {
        vec![(3 + body.len()) as u8, medium_type, 0, 0]
    };
    d.extend_from_slice(body);
    d
}

/// An LBA as READ TOC reports it: plain, or minutes/seconds/frames with
/// the 2-second (150-frame) lead-in offset.
fn address(lba: u64, msf: bool) -> [u8; 4] {
    if !msf {
        return (lba.min(u32::MAX as u64) as u32).to_be_bytes();
    }
    let f = (lba + 150).min(99 * 60 * 75 + 59 * 75 + 74);
    [
        0,
        (f / (60 * 75)) as u8,
        (f / 75 % 60) as u8,
        (f % 75) as u8,
    ]
}

fn track_descriptor(track: u8, lba: u64, msf: bool) -> [u8; 8] {
    let a = address(lba, msf);
    [0, 0x14, track, 0, a[0], a[1], a[2], a[3]] // ADR 1, data track
}

/// READ TOC format 0 from track `start`: track 1 (one data track from
/// LBA 0) and the lead-out at `blocks`. None for a track after the last.
pub fn toc(start: u8, blocks: u64, msf: bool) -> Option<Vec<u8>> {
    let mut d = vec![0, 0, 1, 1];
    match start {
        0 | 1 => {
            d.extend_from_slice(&track_descriptor(1, 0, msf));
            d.extend_from_slice(&track_descriptor(0xaa, blocks, msf));
        }
        0xaa => d.extend_from_slice(&track_descriptor(0xaa, blocks, msf)),
        _ => return None,
    }
    let len = (d.len() - 2) as u16;
    d[0..2].copy_from_slice(&len.to_be_bytes());
    Some(d)
}

/// READ TOC format 1: one session, starting with track 1 at LBA 0.
pub fn session_info(msf: bool) -> Vec<u8> {
    let mut d = vec![0, 10, 1, 1];
    d.extend_from_slice(&track_descriptor(1, 0, msf));
    d
}

/// Profile 0x0008: CD-ROM.
pub const PROFILE_CD_ROM: u16 = 0x0008;

fn feature(code: u16, current: bool, body: &[u8]) -> Vec<u8> {
    let mut d = code.to_be_bytes().to_vec();
    // version in bits 2-5, persistent (bit 1) for the always-there ones
    let persistent = matches!(code, 0x0000 | 0x0001 | 0x0003);
    let version: u8 = if code == 0x0001 { 2 } else { 0 };
    d.push((version << 2) | (u8::from(persistent) << 1) | u8::from(current));
    d.push(body.len() as u8);
    d.extend_from_slice(body);
    d
}

/// GET CONFIGURATION data for request type `rt` (0 all, 1 current,
/// 2 the one feature) from feature `start`.
pub fn configuration(rt: u8, start: u16, medium: bool) -> Vec<u8> {
    let mut profile = PROFILE_CD_ROM.to_be_bytes().to_vec();
    profile.extend_from_slice(&[u8::from(medium), 0]);
    let features: [(u16, bool, Vec<u8>); 5] = [
        (0x0000, true, profile),
        (0x0001, true, vec![0, 0, 0, 1, 0, 0, 0, 0]), // SCSI family
        (0x0003, true, vec![0x29, 0, 0, 0]),          // tray, eject, lock
        (0x0010, medium, {
            let mut b = 2048u32.to_be_bytes().to_vec();
            b.extend_from_slice(&[0, 1, 0, 0]);
            b
        }),
        (0x001e, medium, vec![0, 0, 0, 0]), // CD Read
    ];
    let current = if medium { PROFILE_CD_ROM } else { 0 };
    let mut d = vec![0u8; 8];
    d[6..8].copy_from_slice(&current.to_be_bytes());
    for (code, cur, body) in features {
        let wanted = match rt {
            0 => code >= start,
            1 => code >= start && cur,
            _ => code == start,
        };
        if wanted {
            d.extend_from_slice(&feature(code, cur, &body));
        }
    }
    let len = (d.len() - 4) as u32;
    d[0..4].copy_from_slice(&len.to_be_bytes());
    d
}

/// GET EVENT STATUS NOTIFICATION (polled): the media class when asked
/// for (bit 4 of `request`), else "no event available".
pub fn media_event(request: u8, medium: bool) -> Vec<u8> {
    const MEDIA_CLASS: u8 = 0x10;
    if request & MEDIA_CLASS == 0 {
        return vec![0, 2, 0x80, MEDIA_CLASS];
    }
    vec![
        0,
        6,
        0x04,
        MEDIA_CLASS,
        0,
        if medium { 0x02 } else { 0 },
        0,
        0,
    ]
}

/// READ DISC INFORMATION: a finalised single-session disc, one track.
pub fn disc_information() -> Vec<u8> {
    let mut d = vec![0u8; 34];
    d[1] = 32;
    d[2] = 0x0e; // last session complete, disc complete
    d[3] = 1; // first track
    d[4] = 1; // sessions
    d[5] = 1; // first track in last session
    d[6] = 1; // last track in last session
    d[16..24].fill(0xff); // no lead-in / lead-out addresses (finalised)
    d
}

/// REPORT LUNS: one unit, LUN 0.
pub fn report_luns() -> Vec<u8> {
    let mut d = vec![0u8; 16];
    d[3] = 8;
    d
}
