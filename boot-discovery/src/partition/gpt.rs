//! GUID partition tables.
//!
//! The header CRC and the entry-array CRC are both checked; when the
//! primary header is damaged the backup at the end of the disk is used and
//! a note says so (what firmware does too).

use super::{PartitionInfo, PartitionType, TableKind, SECTOR};
use crate::error::DiscoveryError;
use crate::view::read_vec;
use block_source::BlockSource;

const CRC32: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_ISO_HDLC);
/// Entry arrays are 16 KiB in practice; refuse to allocate more than this.
const MAX_ENTRY_BYTES: u64 = 1 << 20;

struct Header {
    entries_lba: u64,
    num_entries: u32,
    entry_size: u32,
    entries_crc: u32,
}

/// Format a GUID stored in the mixed-endian on-disk layout.
pub fn guid_to_string(b: &[u8]) -> String {
    format!(
        "{:02X}{:02X}{:02X}{:02X}-{:02X}{:02X}-{:02X}{:02X}-{:02X}{:02X}-{:02X}{:02X}{:02X}{:02X}{:02X}{:02X}",
        b[3], b[2], b[1], b[0], b[5], b[4], b[7], b[6], b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]
    )
}

fn read_header(disk: &dyn BlockSource, lba: u64) -> Option<Header> {
    let s = read_vec(disk, lba.checked_mul(SECTOR)?, SECTOR as usize).ok()?;
    if &s[0..8] != b"EFI PART" {
        return None;
    }
    let u32_at = |o: usize| u32::from_le_bytes(s[o..o + 4].try_into().unwrap());
    let u64_at = |o: usize| u64::from_le_bytes(s[o..o + 8].try_into().unwrap());
    let header_size = u32_at(12) as usize;
    if !(92..=SECTOR as usize).contains(&header_size) {
        return None;
    }
    let mut h = s[..header_size].to_vec();
    h[16..20].fill(0);
    if CRC32.checksum(&h) != u32_at(16) || u64_at(24) != lba {
        return None;
    }
    Some(Header {
        entries_lba: u64_at(72),
        num_entries: u32_at(80),
        entry_size: u32_at(84),
        entries_crc: u32_at(88),
    })
}

fn read_entries(disk: &dyn BlockSource, h: &Header) -> Option<Vec<PartitionInfo>> {
    if h.entry_size < 128 || h.entry_size & 7 != 0 {
        return None;
    }
    let total = h.num_entries as u64 * h.entry_size as u64;
    if total > MAX_ENTRY_BYTES {
        return None;
    }
    let data = read_vec(disk, h.entries_lba.checked_mul(SECTOR)?, total as usize).ok()?;
    if CRC32.checksum(&data) != h.entries_crc {
        return None;
    }
    let mut out = Vec::new();
    for (i, e) in data.chunks_exact(h.entry_size as usize).enumerate() {
        if e[..16].iter().all(|&b| b == 0) {
            continue;
        }
        let first = u64::from_le_bytes(e[32..40].try_into().unwrap());
        let last = u64::from_le_bytes(e[40..48].try_into().unwrap());
        if last < first {
            continue;
        }
        let name_units: Vec<u16> = e[56..128]
            .chunks_exact(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .take_while(|&c| c != 0)
            .collect();
        out.push(PartitionInfo {
            number: i as u32 + 1,
            start: first.saturating_mul(SECTOR),
            size: (last - first).saturating_add(1).saturating_mul(SECTOR),
            table: TableKind::Gpt,
            type_code: PartitionType::Gpt(guid_to_string(&e[0..16])),
            uuid: Some(guid_to_string(&e[16..32]).to_ascii_lowercase()),
            name: Some(String::from_utf16_lossy(&name_units)),
            bootable: u64::from_le_bytes(e[48..56].try_into().unwrap()) & (1 << 2) != 0,
            logical_volume: None,
        });
    }
    Some(out)
}

/// Parse a GPT; `Ok(None)` when the disk has none (neither header valid).
pub fn parse_gpt(
    disk: &dyn BlockSource,
    notes: &mut Vec<String>,
) -> Result<Option<Vec<PartitionInfo>>, DiscoveryError> {
    let sectors = disk.capacity() / SECTOR;
    if sectors < 3 {
        return Ok(None);
    }
    if let Some(parts) = read_header(disk, 1).and_then(|h| read_entries(disk, &h)) {
        return Ok(Some(parts));
    }
    let backup = sectors - 1;
    if let Some(parts) = read_header(disk, backup).and_then(|h| read_entries(disk, &h)) {
        notes.push(
            "the primary GPT header or its entries are damaged (bad CRC); used the backup GPT"
                .into(),
        );
        return Ok(Some(parts));
    }
    if read_vec(disk, SECTOR, 8)
        .map(|s| s == b"EFI PART")
        .unwrap_or(false)
    {
        notes.push(
            "sector 1 says \"EFI PART\" but neither GPT header nor its backup passes its CRC check"
                .into(),
        );
    }
    Ok(None)
}

pub fn type_name(guid: &str) -> &'static str {
    match guid {
        "0FC63DAF-8483-4772-8E79-3D69D8477DE4" => "Linux filesystem",
        "4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709" => "Linux root (x86-64)",
        "BC13C2FF-59E6-4262-A352-B275FD6F7172" => "Linux extended boot",
        "E6D6D379-F507-44C2-A23C-238F2A3DF928" => "Linux LVM",
        "0657FD6D-A4AB-43C4-84E5-0933C84B4F4F" => "Linux swap",
        "A19D880F-05FC-4D3B-A006-743F0F84911E" => "Linux RAID",
        "933AC7E1-2EB4-4F13-B844-0E14E2AEF915" => "Linux home",
        "C12A7328-F81F-11D2-BA4B-00A0C93EC93B" => "EFI System",
        "21686148-6449-6E6F-744E-656564454649" => "BIOS boot",
        "EBD0A0A2-B9E5-4433-87C0-68B6B72699C7" => "Microsoft basic data",
        _ => "unknown",
    }
}

pub fn is_never_a_filesystem(guid: &str) -> bool {
    matches!(
        guid,
        "0657FD6D-A4AB-43C4-84E5-0933C84B4F4F" | "21686148-6449-6E6F-744E-656564454649"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use block_source::MemorySource;

    /// Build a minimal valid GPT with one partition, optionally corrupting
    /// the primary header.
    fn make(corrupt_primary: bool) -> Vec<u8> {
        let sectors = 2048u64;
        let mut d = vec![0u8; (sectors * SECTOR) as usize];
        let mut entries = vec![0u8; 128 * 128];
        entries[0..16].copy_from_slice(&[
            0xaf, 0x3d, 0xc6, 0x0f, 0x83, 0x84, 0x72, 0x47, 0x8e, 0x79, 0x3d, 0x69, 0xd8, 0x47,
            0x7d, 0xe4,
        ]);
        entries[16] = 1;
        entries[32..40].copy_from_slice(&100u64.to_le_bytes());
        entries[40..48].copy_from_slice(&199u64.to_le_bytes());
        for (i, c) in "root".encode_utf16().enumerate() {
            entries[56 + 2 * i..58 + 2 * i].copy_from_slice(&c.to_le_bytes());
        }
        let ecrc = CRC32.checksum(&entries);
        let write_header = |d: &mut [u8], lba: u64, entries_lba: u64| {
            let mut h = vec![0u8; 92];
            h[0..8].copy_from_slice(b"EFI PART");
            h[8..12].copy_from_slice(&0x10000u32.to_le_bytes());
            h[12..16].copy_from_slice(&92u32.to_le_bytes());
            h[24..32].copy_from_slice(&lba.to_le_bytes());
            h[72..80].copy_from_slice(&entries_lba.to_le_bytes());
            h[80..84].copy_from_slice(&128u32.to_le_bytes());
            h[84..88].copy_from_slice(&128u32.to_le_bytes());
            h[88..92].copy_from_slice(&ecrc.to_le_bytes());
            let c = CRC32.checksum(&h);
            h[16..20].copy_from_slice(&c.to_le_bytes());
            let o = (lba * SECTOR) as usize;
            d[o..o + 92].copy_from_slice(&h);
            let eo = (entries_lba * SECTOR) as usize;
            d[eo..eo + entries.len()].copy_from_slice(&entries);
        };
        write_header(&mut d, 1, 2);
        write_header(&mut d, sectors - 1, sectors - 33);
        if corrupt_primary {
            d[512 + 40] ^= 1;
        }
        d
    }

    #[test]
    fn reads_primary() {
        let src = MemorySource::new(make(false), true);
        let mut notes = vec![];
        let p = parse_gpt(&src, &mut notes).unwrap().unwrap();
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].start, 100 * 512);
        assert_eq!(p[0].size, 100 * 512);
        assert_eq!(p[0].name.as_deref(), Some("root"));
        assert_eq!(
            p[0].type_code,
            PartitionType::Gpt("0FC63DAF-8483-4772-8E79-3D69D8477DE4".into())
        );
        assert!(notes.is_empty());
    }

    #[test]
    fn falls_back_to_backup_on_bad_crc() {
        let src = MemorySource::new(make(true), true);
        let mut notes = vec![];
        let p = parse_gpt(&src, &mut notes).unwrap().unwrap();
        assert_eq!(p.len(), 1);
        assert!(notes[0].contains("backup"));
    }

    #[test]
    fn no_gpt_on_blank_disk() {
        let src = MemorySource::new(vec![0u8; 8192], true);
        assert!(parse_gpt(&src, &mut vec![]).unwrap().is_none());
    }
}
