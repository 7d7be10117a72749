//! MBR ("msdos") partition tables, including the chain of extended boot
//! records (EBRs) that holds logical partitions.
//!
//! The EBR chain is a linked list on a hostile disk: it is followed with a
//! visited set and a hard cap, so a loop or an absurdly long chain ends with
//! a note instead of a hang.

use super::{PartitionInfo, PartitionType, TableKind, SECTOR};
use crate::error::DiscoveryError;
use crate::view::read_vec;
use block_source::BlockSource;
use std::collections::HashSet;

/// Linux itself stops well before this; more is a corrupt or hostile chain.
const MAX_LOGICAL: usize = 128;

#[derive(Debug, Clone, Copy)]
struct RawEntry {
    status: u8,
    kind: u8,
    lba: u32,
    sectors: u32,
}

fn entries(sector: &[u8]) -> [RawEntry; 4] {
    let e = |i: usize| {
        let b = &sector[446 + i * 16..446 + (i + 1) * 16];
        RawEntry {
            status: b[0],
            kind: b[4],
            lba: u32::from_le_bytes([b[8], b[9], b[10], b[11]]),
            sectors: u32::from_le_bytes([b[12], b[13], b[14], b[15]]),
        }
    };
    [e(0), e(1), e(2), e(3)]
}

fn has_signature(sector: &[u8]) -> bool {
    sector.len() >= 512 && sector[510] == 0x55 && sector[511] == 0xaa
}

fn is_extended(kind: u8) -> bool {
    matches!(kind, 0x05 | 0x0f | 0x85)
}

/// Parse an MBR. `Ok(None)` when sector 0 is not an MBR with at least one
/// plausible partition (so a whole-disk filesystem is tried instead).
pub fn parse_mbr(
    disk: &dyn BlockSource,
    notes: &mut Vec<String>,
) -> Result<Option<Vec<PartitionInfo>>, DiscoveryError> {
    if disk.capacity() < SECTOR {
        return Ok(None);
    }
    let s0 = read_vec(disk, 0, SECTOR as usize)
        .map_err(|e| DiscoveryError::io("the partition table (sector 0)", e))?;
    if !has_signature(&s0) {
        return Ok(None);
    }
    let primaries = entries(&s0);
    // A boot sector of a whole-disk FAT/NTFS filesystem also ends in 55 AA;
    // a real MBR has only 0x00/0x80 status bytes.
    if primaries.iter().any(|e| e.status != 0 && e.status != 0x80) {
        return Ok(None);
    }
    if primaries.iter().all(|e| e.kind == 0 || e.sectors == 0) {
        return Ok(None);
    }
    let disk_sig = u32::from_le_bytes([s0[440], s0[441], s0[442], s0[443]]);
    let mk = |number: u32, e: &RawEntry, abs_lba: u64| PartitionInfo {
        number,
        start: abs_lba * SECTOR,
        size: e.sectors as u64 * SECTOR,
        table: TableKind::Mbr,
        type_code: PartitionType::Mbr(e.kind),
        uuid: Some(format!("{disk_sig:08x}-{number:02x}")),
        name: None,
        bootable: e.status == 0x80,
        logical_volume: None,
    };
    let mut parts = Vec::new();
    let mut extended = None;
    for (i, e) in primaries.iter().enumerate() {
        if e.kind == 0 || e.sectors == 0 {
            continue;
        }
        parts.push(mk(i as u32 + 1, e, e.lba as u64));
        if is_extended(e.kind) && extended.is_none() {
            extended = Some(e.lba as u64);
        }
    }
    if let Some(ext_start) = extended {
        let mut visited = HashSet::new();
        let mut ebr = ext_start;
        let mut number = 5u32;
        loop {
            if !visited.insert(ebr) {
                notes.push(format!(
                    "the chain of logical partitions loops back to sector {ebr}; stopped there"
                ));
                break;
            }
            if parts.len() >= MAX_LOGICAL {
                notes.push(format!(
                    "more than {MAX_LOGICAL} logical partitions; ignored the rest"
                ));
                break;
            }
            let sec = match read_vec(disk, ebr * SECTOR, SECTOR as usize) {
                Ok(s) => s,
                Err(_) => {
                    notes.push(format!(
                        "extended boot record at sector {ebr} is past the end of the disk"
                    ));
                    break;
                }
            };
            if !has_signature(&sec) {
                notes.push(format!(
                    "extended boot record at sector {ebr} has no 55AA signature; stopped there"
                ));
                break;
            }
            let [logical, next, ..] = entries(&sec);
            if logical.kind != 0 && logical.sectors != 0 {
                parts.push(mk(number, &logical, ebr + logical.lba as u64));
                number += 1;
            }
            if next.kind == 0 || next.lba == 0 {
                break;
            }
            ebr = ext_start + next.lba as u64;
        }
    }
    Ok(Some(parts))
}

/// Names for the type bytes an appliance disk realistically carries.
pub fn type_name(t: u8) -> &'static str {
    match t {
        0x83 => "Linux",
        0x82 => "Linux swap",
        0x8e => "Linux LVM",
        0xfd => "Linux RAID",
        0x05 | 0x0f | 0x85 => "Extended",
        0xee => "GPT protective",
        0xef => "EFI System",
        0x07 => "NTFS/exFAT",
        0x0b | 0x0c | 0x0e | 0x06 | 0x04 | 0x01 => "FAT",
        0xa5 | 0xa6 | 0xa9 => "BSD",
        _ => "unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use block_source::MemorySource;

    fn put(sector: &mut [u8], i: usize, status: u8, kind: u8, lba: u32, n: u32) {
        let b = &mut sector[446 + i * 16..446 + (i + 1) * 16];
        b[0] = status;
        b[4] = kind;
        b[8..12].copy_from_slice(&lba.to_le_bytes());
        b[12..16].copy_from_slice(&n.to_le_bytes());
        sector[510] = 0x55;
        sector[511] = 0xaa;
    }

    #[test]
    fn primaries_and_logicals() {
        let mut d = vec![0u8; 4096 * 512];
        put(&mut d[..512], 0, 0x80, 0x83, 2048, 100);
        put(&mut d[..512], 1, 0, 0x05, 3000, 1000);
        // EBR at 3000: logical at +10, next EBR at ext+500
        put(&mut d[3000 * 512..3001 * 512], 0, 0, 0x83, 10, 20);
        put(&mut d[3000 * 512..3001 * 512], 1, 0, 0x05, 500, 100);
        put(&mut d[3500 * 512..3501 * 512], 0, 0, 0x82, 5, 30);
        let src = MemorySource::new(d, true);
        let mut notes = vec![];
        let p = parse_mbr(&src, &mut notes).unwrap().unwrap();
        assert_eq!(
            p.iter().map(|p| p.number).collect::<Vec<_>>(),
            vec![1, 2, 5, 6]
        );
        assert_eq!(p[2].start, 3010 * 512);
        assert_eq!(p[3].start, 3505 * 512);
        assert!(p[0].bootable);
        assert!(notes.is_empty());
    }

    #[test]
    fn ebr_loop_is_stopped() {
        let mut d = vec![0u8; 4096 * 512];
        put(&mut d[..512], 0, 0, 0x0f, 100, 1000);
        // EBR at 100 -> EBR at 100+200 -> EBR at 100+200 again.
        put(&mut d[100 * 512..101 * 512], 0, 0, 0x83, 1, 2);
        put(&mut d[100 * 512..101 * 512], 1, 0, 0x05, 200, 5);
        put(&mut d[300 * 512..301 * 512], 0, 0, 0x83, 1, 2);
        put(&mut d[300 * 512..301 * 512], 1, 0, 0x05, 200, 5);
        let src = MemorySource::new(d, true);
        let mut notes = vec![];
        let p = parse_mbr(&src, &mut notes).unwrap().unwrap();
        assert_eq!(p.len(), 3);
        assert!(notes[0].contains("loops"), "{notes:?}");
    }

    #[test]
    fn fat_boot_sector_is_not_an_mbr() {
        let mut d = vec![0u8; 1024];
        d[446] = 0xe9; // garbage status byte
        d[510] = 0x55;
        d[511] = 0xaa;
        let src = MemorySource::new(d, true);
        assert!(parse_mbr(&src, &mut vec![]).unwrap().is_none());
    }
}
