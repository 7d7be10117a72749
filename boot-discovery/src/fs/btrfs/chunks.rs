//! The btrfs superblock and the chunk map: logical addresses (what every
//! tree pointer and extent holds) to byte offsets on this one device.
//!
//! The map is bootstrapped from the superblock's `sys_chunk_array` (enough
//! to reach the chunk tree), then filled from the chunk tree itself. Each
//! chunk is read through the stripe that lives on this device: single, DUP,
//! RAID1/RAID1C3/RAID1C4 keep a whole copy there. Striped profiles (RAID0,
//! RAID10, RAID5/6) and chunks with no stripe on this device are refused
//! with a message naming the profile or the missing device.

use super::le::{le16, le32, le64, Key};
use super::BtrfsError;
use crate::view::read_vec;
use block_source::BlockSource;

/// Where the primary superblock lives.
pub const SUPER_OFFSET: u64 = 0x10000;
pub const MAGIC: &[u8; 8] = b"_BHRfS_M";
const SYS_ARRAY_OFFSET: usize = 0x32b;
const SYS_ARRAY_MAX: usize = 2048;
const CHUNK_ITEM_KEY: u8 = 228;
/// A chunk item without its stripes.
const CHUNK_FIXED: usize = 48;
const STRIPE_SIZE: usize = 32;
/// Real filesystems have a few hundred chunks per TiB; more is hostile.
pub const MAX_CHUNKS: usize = 1 << 16;
/// No chunk item names more stripes than this (RAID10 over many devices).
const MAX_STRIPES: u16 = 256;

const RAID0: u64 = 1 << 3;
const RAID10: u64 = 1 << 6;
const RAID5: u64 = 1 << 7;
const RAID6: u64 = 1 << 8;

/// The superblock fields the reader needs.
#[derive(Debug, Clone)]
pub struct Super {
    pub fsid: [u8; 16],
    pub root: u64,
    pub root_level: u8,
    pub chunk_root: u64,
    pub chunk_root_level: u8,
    pub sector_size: u32,
    pub node_size: u32,
    pub csum_type: u16,
    pub devid: u64,
    pub label: String,
    sys_array: Vec<u8>,
}

impl Super {
    pub fn read(src: &dyn BlockSource) -> Result<Super, BtrfsError> {
        let b = read_vec(src, SUPER_OFFSET, 4096)
            .map_err(|e| BtrfsError::Io(format!("superblock: {e}")))?;
        if &b[0x40..0x48] != MAGIC {
            return Err(BtrfsError::Corrupt("no btrfs superblock magic".into()));
        }
        let sector_size = le32(&b, 0x90);
        let node_size = le32(&b, 0x94);
        let sane = sector_size.is_power_of_two()
            && (4096..=65536).contains(&sector_size)
            && node_size.is_power_of_two()
            && (4096..=65536).contains(&node_size)
            && node_size >= sector_size;
        if !sane {
            return Err(BtrfsError::Corrupt(format!(
                "impossible geometry: sector size {sector_size}, node size {node_size}"
            )));
        }
        let array_len = le32(&b, 0xa0) as usize;
        if array_len > SYS_ARRAY_MAX {
            return Err(BtrfsError::Corrupt(format!(
                "sys_chunk_array of {array_len} bytes (at most {SYS_ARRAY_MAX})"
            )));
        }
        let mut fsid = [0u8; 16];
        fsid.copy_from_slice(&b[0x20..0x30]);
        let label = &b[0x12b..0x22b];
        let label = &label[..label.iter().position(|&c| c == 0).unwrap_or(label.len())];
        Ok(Super {
            fsid,
            root: le64(&b, 0x50),
            chunk_root: le64(&b, 0x58),
            root_level: b[0xc6],
            chunk_root_level: b[0xc7],
            sector_size,
            node_size,
            csum_type: le16(&b, 0xc4),
            devid: le64(&b, 0xc9),
            label: String::from_utf8_lossy(label).into_owned(),
            sys_array: b[SYS_ARRAY_OFFSET..SYS_ARRAY_OFFSET + array_len].to_vec(),
        })
    }
}

/// One chunk: `[logical, logical+len)` at `physical` on this device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Chunk {
    pub logical: u64,
    pub len: u64,
    pub physical: u64,
}

/// Logical to physical, sorted by logical address, non-overlapping.
#[derive(Debug, Default)]
pub struct ChunkMap {
    chunks: Vec<Chunk>,
}

impl ChunkMap {
    /// The chunks the superblock carries (the system chunks).
    pub fn bootstrap(sb: &Super) -> Result<ChunkMap, BtrfsError> {
        let mut map = ChunkMap::default();
        let a = &sb.sys_array;
        let mut pos = 0usize;
        while pos < a.len() {
            let key = a
                .get(pos..pos + 17)
                .map(Key::parse)
                .ok_or_else(|| corrupt("sys_chunk_array ends inside a key"))?;
            pos += 17;
            if key.kind != CHUNK_ITEM_KEY {
                return Err(corrupt("sys_chunk_array holds something else than chunks"));
            }
            let len = chunk_item_len(&a[pos..])?;
            map.add(key.offset, &a[pos..pos + len], sb.devid)?;
            pos += len;
        }
        Ok(map)
    }

    /// Add the chunk item `item` at logical address `logical`. A chunk
    /// already known (the system chunks appear twice) is kept once.
    pub fn add(&mut self, logical: u64, item: &[u8], devid: u64) -> Result<(), BtrfsError> {
        let len = chunk_item_len(item)?;
        let item = &item[..len];
        let size = le64(item, 0);
        let kind = le64(item, 24);
        if kind & (RAID5 | RAID6) != 0 {
            return Err(BtrfsError::Unsupported(
                "a RAID5/RAID6 chunk (parity striping is not read)".into(),
            ));
        }
        let stripes = le16(item, 44) as usize;
        if kind & (RAID0 | RAID10) != 0 && stripes > 1 {
            return Err(BtrfsError::Unsupported(
                "a RAID0/RAID10 chunk striped over several devices".into(),
            ));
        }
        let physical = (0..stripes)
            .map(|i| CHUNK_FIXED + i * STRIPE_SIZE)
            .find(|&o| le64(item, o) == devid)
            .map(|o| le64(item, o + 8))
            .ok_or_else(|| {
                BtrfsError::Unsupported(format!(
                    "the chunk at logical {logical:#x} has no copy on this device (devid {devid}); the other devices are missing"
                ))
            })?;
        if size == 0 || logical.checked_add(size).is_none() || physical.checked_add(size).is_none()
        {
            return Err(corrupt("a chunk of impossible size"));
        }
        let c = Chunk {
            logical,
            len: size,
            physical,
        };
        let at = self.chunks.partition_point(|x| x.logical < logical);
        if self.chunks.get(at) == Some(&c) {
            return Ok(());
        }
        let overlaps = self
            .chunks
            .get(at)
            .is_some_and(|n| n.logical < logical + size)
            || at > 0 && self.chunks[at - 1].logical + self.chunks[at - 1].len > logical;
        if overlaps {
            return Err(corrupt("chunks overlap"));
        }
        if self.chunks.len() >= MAX_CHUNKS {
            return Err(corrupt("too many chunks"));
        }
        self.chunks.insert(at, c);
        Ok(())
    }

    /// Physical offset of `[logical, logical+len)`, which must lie in one
    /// chunk.
    pub fn map(&self, logical: u64, len: u64) -> Result<u64, BtrfsError> {
        let at = self.chunks.partition_point(|c| c.logical <= logical);
        let c = at
            .checked_sub(1)
            .map(|i| self.chunks[i])
            .filter(|c| logical - c.logical < c.len && len <= c.len - (logical - c.logical))
            .ok_or_else(|| {
                BtrfsError::Corrupt(format!(
                    "logical address {logical:#x} (+{len}) is in no chunk"
                ))
            })?;
        Ok(c.physical + (logical - c.logical))
    }
}

fn corrupt(what: &str) -> BtrfsError {
    BtrfsError::Corrupt(what.to_string())
}

/// Bytes one chunk item takes, checked against what is there.
fn chunk_item_len(item: &[u8]) -> Result<usize, BtrfsError> {
    if item.len() < CHUNK_FIXED {
        return Err(corrupt("a chunk item is cut short"));
    }
    let stripes = le16(item, 44);
    if stripes == 0 || stripes > MAX_STRIPES {
        return Err(corrupt("a chunk item with an impossible number of stripes"));
    }
    let len = CHUNK_FIXED + stripes as usize * STRIPE_SIZE;
    if item.len() < len {
        return Err(corrupt("a chunk item's stripes are cut short"));
    }
    Ok(len)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(size: u64, kind: u64, stripes: &[(u64, u64)]) -> Vec<u8> {
        let mut v = vec![0u8; CHUNK_FIXED];
        v[0..8].copy_from_slice(&size.to_le_bytes());
        v[24..32].copy_from_slice(&kind.to_le_bytes());
        v[44..46].copy_from_slice(&(stripes.len() as u16).to_le_bytes());
        for (dev, off) in stripes {
            v.extend_from_slice(&dev.to_le_bytes());
            v.extend_from_slice(&off.to_le_bytes());
            v.extend_from_slice(&[0u8; 16]);
        }
        v
    }

    #[test]
    fn maps_through_the_stripe_on_this_device() {
        let mut m = ChunkMap::default();
        m.add(
            1 << 20,
            &item(1 << 20, 2 | 16, &[(2, 5 << 20), (1, 9 << 20)]),
            1,
        )
        .unwrap();
        assert_eq!(m.map((1 << 20) + 10, 100).unwrap(), (9 << 20) + 10);
        assert!(m.map((2 << 20) - 10, 100).is_err());
        assert!(m.map(0, 1).is_err());
    }

    #[test]
    fn refuses_parity_missing_devices_and_overlaps() {
        let mut m = ChunkMap::default();
        assert!(matches!(
            m.add(0, &item(4096, RAID5, &[(1, 0)]), 1),
            Err(BtrfsError::Unsupported(_))
        ));
        assert!(matches!(
            m.add(0, &item(4096, 1, &[(7, 0)]), 1),
            Err(BtrfsError::Unsupported(_))
        ));
        m.add(0, &item(8192, 1, &[(1, 0)]), 1).unwrap();
        assert!(m.add(4096, &item(8192, 1, &[(1, 0)]), 1).is_err());
        assert!(m.add(0, &item(8192, 1, &[]), 1).is_err());
    }
}
