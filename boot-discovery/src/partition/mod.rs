//! Partition tables: MBR (with logical partitions), GPT, or none at all.
//!
//! Only the layout is read here; what is *inside* each partition is the
//! filesystem probe's business. Numbers follow Linux (`sda5` is the first
//! logical partition), because that is what appliance docs and GRUB's
//! `(hd0,msdos5)` / `(hd0,gpt2)` names refer to.

mod gpt;
mod mbr;

use crate::error::DiscoveryError;
use block_source::BlockSource;
use std::fmt;

pub use gpt::parse_gpt;
pub use mbr::parse_mbr;

/// Logical sector size assumed for partition tables. Virtual appliance
/// disks are 512-byte-sector disks (VMDK and VHD cannot express anything
/// else), so 4Kn layouts are not looked for.
pub const SECTOR: u64 = 512;

/// Which kind of partition table the disk carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableKind {
    Mbr,
    Gpt,
    /// No table: the whole disk is one filesystem (or unrecognised).
    None,
}

impl fmt::Display for TableKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TableKind::Mbr => "MBR (msdos)",
            TableKind::Gpt => "GPT",
            TableKind::None => "none (whole-disk)",
        })
    }
}

/// The partition type as the table records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PartitionType {
    Mbr(u8),
    /// Type GUID in the usual text form.
    Gpt(String),
    /// The whole disk, or an LVM logical volume.
    None,
}

/// One place a filesystem may live: a partition, the whole disk, or an LVM
/// logical volume (then `logical_volume` is `vg/lv` and `number` is the
/// number of the partition holding the PV).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionInfo {
    /// Linux-style number (1-based; MBR logicals start at 5); 0 = whole disk.
    pub number: u32,
    /// Byte offset on the disk (for LVM volumes: of the first segment).
    pub start: u64,
    /// Size in bytes.
    pub size: u64,
    pub table: TableKind,
    pub type_code: PartitionType,
    /// GPT partition GUID, or MBR `disk-signature-NN` (what `PARTUUID=` means).
    pub uuid: Option<String>,
    /// GPT partition name.
    pub name: Option<String>,
    pub bootable: bool,
    pub logical_volume: Option<String>,
}

impl PartitionInfo {
    /// A short human-readable type name.
    pub fn type_name(&self) -> String {
        match &self.type_code {
            PartitionType::Mbr(t) => format!("{} (0x{t:02x})", mbr::type_name(*t)),
            PartitionType::Gpt(g) => format!("{} ({g})", gpt::type_name(g)),
            PartitionType::None => "none".to_string(),
        }
    }

    /// GRUB's name for this partition on the first disk, e.g. `hd0,msdos1`.
    pub fn grub_name(&self) -> Option<String> {
        match self.table {
            TableKind::Mbr if self.logical_volume.is_none() => {
                Some(format!("hd0,msdos{}", self.number))
            }
            TableKind::Gpt if self.logical_volume.is_none() => {
                Some(format!("hd0,gpt{}", self.number))
            }
            _ => None,
        }
    }

    /// Whether the type says "nothing bootable lives here": swap, extended
    /// containers, BIOS boot, etc. (LVM PVs are handled separately.)
    pub fn is_never_a_filesystem(&self) -> bool {
        match &self.type_code {
            PartitionType::Mbr(t) => matches!(*t, 0x05 | 0x0f | 0x85 | 0x82 | 0xee),
            PartitionType::Gpt(g) => gpt::is_never_a_filesystem(g),
            PartitionType::None => false,
        }
    }
}

impl fmt::Display for PartitionInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(lv) = &self.logical_volume {
            return write!(f, "LVM volume {lv} ({})", human_size(self.size));
        }
        if self.number == 0 {
            return write!(f, "whole disk ({})", human_size(self.size));
        }
        write!(
            f,
            "partition {} at {} MiB, {}, type {}",
            self.number,
            self.start / (1024 * 1024),
            human_size(self.size),
            self.type_name()
        )?;
        if let Some(n) = &self.name {
            if !n.is_empty() {
                write!(f, ", name \"{n}\"")?;
            }
        }
        Ok(())
    }
}

/// `1.5 GiB`-style sizes for messages.
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// The disk's layout.
#[derive(Debug, Clone)]
pub struct DiskLayout {
    pub table: TableKind,
    pub partitions: Vec<PartitionInfo>,
    /// Things worth telling the user (bad CRC, backup header used, EBR loop).
    pub notes: Vec<String>,
}

/// Read the partition table. GPT wins over its protective MBR; a disk with
/// neither is treated as one whole-disk filesystem candidate.
pub fn read_layout(disk: &dyn BlockSource) -> Result<DiskLayout, DiscoveryError> {
    let mut notes = Vec::new();
    if let Some(parts) = parse_gpt(disk, &mut notes)? {
        return Ok(DiskLayout {
            table: TableKind::Gpt,
            partitions: parts,
            notes,
        });
    }
    if let Some(parts) = parse_mbr(disk, &mut notes)? {
        return Ok(DiskLayout {
            table: TableKind::Mbr,
            partitions: parts,
            notes,
        });
    }
    Ok(DiskLayout {
        table: TableKind::None,
        partitions: vec![PartitionInfo {
            number: 0,
            start: 0,
            size: disk.capacity(),
            table: TableKind::None,
            type_code: PartitionType::None,
            uuid: None,
            name: None,
            bootable: false,
            logical_volume: None,
        }],
        notes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use block_source::MemorySource;

    #[test]
    fn blank_disk_is_whole_disk() {
        let d = MemorySource::new(vec![0u8; 1 << 20], true);
        let l = read_layout(&d).unwrap();
        assert_eq!(l.table, TableKind::None);
        assert_eq!(l.partitions.len(), 1);
        assert_eq!(l.partitions[0].size, 1 << 20);
        assert_eq!(l.partitions[0].to_string(), "whole disk (1.0 MiB)");
    }

    #[test]
    fn sizes_are_readable() {
        assert_eq!(human_size(512), "512 B");
        assert_eq!(human_size(3 << 29), "1.5 GiB");
    }
}
