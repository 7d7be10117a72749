//! qcow2, read-only, versions 2 and 3.
//!
//! Guest clusters map through a two-level table: L1 (in memory, read at
//! open) → L2 tables (one cluster each, read on first use) → host
//! clusters. Compressed clusters are raw deflate; v3 "zero" entries read as
//! zeros. Snapshots are ignored (the active L1 is read). Images that need
//! another file — a backing file, an external data file — or a key
//! (encryption) are refused with a message saying so.

use crate::byte_range::ByteRange;
use crate::error::DiskError;
use crate::inflate::inflate_raw;
use crate::sparse_reader::{SparseReader, Unit, UnitMap};
use std::sync::{Arc, OnceLock};

const FORMAT: &str = "qcow2";
pub const MAGIC: &[u8; 4] = b"QFI\xfb";
/// Same limit as qemu (QCOW_MAX_L1_SIZE).
const MAX_L1_BYTES: u64 = 32 << 20;
const MAX_CAPACITY: u64 = 1 << 50;
const OFFSET_MASK: u64 = 0x00ff_ffff_ffff_fe00;
const L2_COMPRESSED: u64 = 1 << 62;
const L2_ZERO: u64 = 1;

const INCOMPAT_DIRTY: u64 = 1 << 0;
const INCOMPAT_CORRUPT: u64 = 1 << 1;
const INCOMPAT_DATA_FILE: u64 = 1 << 2;
const INCOMPAT_COMPRESSION: u64 = 1 << 3;
const INCOMPAT_EXTL2: u64 = 1 << 4;

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(b[at..at + 4].try_into().unwrap_or([0; 4]))
}

fn be64(b: &[u8], at: usize) -> u64 {
    u64::from_be_bytes(b[at..at + 8].try_into().unwrap_or([0; 8]))
}

pub struct Qcow2Map {
    name: String,
    image: Arc<dyn ByteRange>,
    cluster_bits: u32,
    capacity: u64,
    l1: Vec<u64>,
    l2: Vec<OnceLock<Arc<[u64]>>>,
}

pub type Qcow2Source = SparseReader<Qcow2Map>;

pub fn open(image: Arc<dyn ByteRange>) -> Result<Qcow2Source, DiskError> {
    let map = Qcow2Map::open(image.clone())?;
    Ok(SparseReader::new(map, image))
}

fn read_exact(
    image: &dyn ByteRange,
    offset: u64,
    len: u64,
    what: &str,
) -> Result<Vec<u8>, DiskError> {
    let name = image.name();
    if offset.checked_add(len).is_none_or(|e| e > image.len()) {
        return Err(DiskError::malformed(
            &name,
            FORMAT,
            offset,
            format!(
                "{what} ({len} bytes) runs past the end of the file ({} bytes)",
                image.len()
            ),
        ));
    }
    let mut buf = vec![0u8; len as usize];
    image
        .read_at(&mut buf, offset)
        .map_err(|e| DiskError::io(&name, format!("{what} at offset {offset}"), e))?;
    Ok(buf)
}

impl Qcow2Map {
    fn open(image: Arc<dyn ByteRange>) -> Result<Self, DiskError> {
        let name = image.name();
        let bad = |at: u64, what: String| DiskError::malformed(&name, FORMAT, at, what);
        let unsupported = |what: String| DiskError::unsupported(&name, FORMAT, what);
        let h = read_exact(&*image, 0, 72, "header")?;
        if &h[0..4] != MAGIC {
            return Err(bad(0, "no QFI\\xfb magic".into()));
        }
        let version = be32(&h, 4);
        if version != 2 && version != 3 {
            return Err(unsupported(format!(
                "version {version} (only 2 and 3 are read)"
            )));
        }
        let backing_offset = be64(&h, 8);
        let backing_len = be32(&h, 16);
        let cluster_bits = be32(&h, 20);
        let capacity = be64(&h, 24);
        let crypt = be32(&h, 32);
        let l1_size = be32(&h, 36) as u64;
        let l1_offset = be64(&h, 40);
        if !(9..=21).contains(&cluster_bits) {
            return Err(bad(
                20,
                format!("cluster size 2^{cluster_bits} (must be 512 B to 2 MiB)"),
            ));
        }
        if backing_offset != 0 {
            let hint = read_exact(
                &*image,
                backing_offset,
                (backing_len as u64).min(1023),
                "backing file name",
            )
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default();
            return Err(unsupported(format!(
                "it is an overlay on backing file {hint:?}; only self-contained images can be read (qemu-img convert it first)"
            )));
        }
        if crypt != 0 {
            return Err(unsupported("it is encrypted".into()));
        }
        if capacity > MAX_CAPACITY {
            return Err(bad(
                24,
                format!("virtual size of {capacity} bytes is absurd"),
            ));
        }
        if version == 3 {
            let h3 = read_exact(&*image, 0, 104, "version 3 header")?;
            let incompat = be64(&h3, 72);
            let header_len = be32(&h3, 100) as u64;
            if incompat & INCOMPAT_DATA_FILE != 0 {
                return Err(unsupported(
                    "its data lives in an external data file".into(),
                ));
            }
            if incompat & INCOMPAT_EXTL2 != 0 {
                return Err(unsupported("extended L2 entries (subclusters)".into()));
            }
            if incompat & INCOMPAT_COMPRESSION != 0 && header_len > 104 {
                let t = read_exact(&*image, 104, 1, "compression type")?[0];
                if t != 0 {
                    return Err(unsupported(format!(
                        "compression type {t} (only deflate is read)"
                    )));
                }
            }
            let known = INCOMPAT_DIRTY | INCOMPAT_CORRUPT | INCOMPAT_COMPRESSION;
            if incompat & !known != 0 {
                return Err(unsupported(format!(
                    "incompatible feature bits {:#x}",
                    incompat & !known
                )));
            }
        }
        let cluster = 1u64 << cluster_bits;
        let per_l2 = cluster / 8;
        let needed = capacity.div_ceil(cluster).div_ceil(per_l2);
        if l1_size < needed {
            return Err(bad(
                36,
                format!("L1 table has {l1_size} entries, the disk needs {needed}"),
            ));
        }
        // Entries past what the size needs are never consulted.
        let l1_bytes = needed * 8;
        if l1_bytes > MAX_L1_BYTES {
            return Err(bad(
                36,
                format!("L1 table of {l1_bytes} bytes is too large"),
            ));
        }
        let raw = read_exact(&*image, l1_offset, l1_bytes, "L1 table")?;
        let l1: Vec<u64> = raw
            .chunks_exact(8)
            .map(|c| be64(c, 0) & OFFSET_MASK)
            .collect();
        let mut tables: Vec<(u64, usize)> = Vec::new();
        for (i, &at) in l1.iter().enumerate() {
            if at == 0 {
                continue;
            }
            if at % cluster != 0 || at.checked_add(cluster).is_none_or(|e| e > image.len()) {
                return Err(bad(
                    l1_offset + i as u64 * 8,
                    format!("L1 entry {i} points to L2 table at {at}, unaligned or past the end of the file"),
                ));
            }
            tables.push((at, i));
        }
        tables.sort_unstable();
        for w in tables.windows(2) {
            if w[0].0 == w[1].0 {
                return Err(bad(
                    w[1].0,
                    format!("L1 entries {} and {} share one L2 table", w[0].1, w[1].1),
                ));
            }
        }
        let l2 = (0..l1.len()).map(|_| OnceLock::new()).collect();
        Ok(Qcow2Map {
            name,
            image,
            cluster_bits,
            capacity,
            l1,
            l2,
        })
    }

    fn l2_table(&self, t: usize) -> Result<Arc<[u64]>, DiskError> {
        if let Some(l2) = self.l2[t].get() {
            return Ok(l2.clone());
        }
        let raw = read_exact(&*self.image, self.l1[t], 1 << self.cluster_bits, "L2 table")?;
        let table: Arc<[u64]> = raw.chunks_exact(8).map(|c| be64(c, 0)).collect();
        let _ = self.l2[t].set(table.clone());
        Ok(table)
    }
}

impl UnitMap for Qcow2Map {
    fn unit_size(&self) -> u64 {
        1 << self.cluster_bits
    }

    fn capacity(&self) -> u64 {
        self.capacity
    }

    fn zero_span(&self, cluster: u64) -> u64 {
        let per_l2 = 1u64 << (self.cluster_bits - 3);
        let t = (cluster / per_l2) as usize;
        if self.l1.get(t).copied().unwrap_or(0) == 0 {
            per_l2 - cluster % per_l2
        } else {
            0
        }
    }

    fn locate(&self, cluster: u64) -> Result<Unit, DiskError> {
        let per_l2 = 1u64 << (self.cluster_bits - 3);
        let t = (cluster / per_l2) as usize;
        if self.l1.get(t).copied().unwrap_or(0) == 0 {
            return Ok(Unit::Zero);
        }
        let entry = self.l2_table(t)?[(cluster % per_l2) as usize];
        let size = self.unit_size();
        if entry & L2_COMPRESSED != 0 {
            // Offset in the low (62 - (cluster_bits - 8)) bits, then the
            // count of additional 512-byte sectors.
            let x = 62 - (self.cluster_bits - 8);
            let at = entry & ((1u64 << x) - 1);
            let sectors = (entry & ((1u64 << 62) - 1)) >> x;
            let len = (sectors + 1) * 512 - (at & 511);
            if at >= self.image.len() {
                return Err(DiskError::malformed(
                    &self.name,
                    FORMAT,
                    at,
                    format!("compressed cluster {cluster} points past the end of the file"),
                ));
            }
            return Ok(Unit::Compressed { at, max_len: len });
        }
        let at = entry & OFFSET_MASK;
        if entry & L2_ZERO != 0 || at == 0 {
            return Ok(Unit::Zero);
        }
        // Only the part of the cluster inside the disk must be stored (the
        // last cluster of an unaligned disk may be cut short).
        let used = size.min(self.capacity - cluster * size);
        if !at.is_multiple_of(size) || at.checked_add(used).is_none_or(|e| e > self.image.len()) {
            return Err(DiskError::malformed(
                &self.name,
                FORMAT,
                at,
                format!("cluster {cluster} is unaligned or points past the end of the file"),
            ));
        }
        Ok(Unit::Data { at })
    }

    fn decompress(
        &self,
        cluster: u64,
        at: u64,
        stored: &[u8],
        out: &mut [u8],
    ) -> Result<(), DiskError> {
        match inflate_raw(stored, out) {
            // qemu requires a compressed cluster to fill the whole cluster.
            Ok(n) if n == out.len() => Ok(()),
            Ok(n) => Err(DiskError::malformed(
                &self.name,
                FORMAT,
                at,
                format!(
                    "compressed cluster {cluster} inflates to {n} bytes, not {}",
                    out.len()
                ),
            )),
            Err(e) => Err(DiskError::malformed(
                &self.name,
                FORMAT,
                at,
                format!("compressed cluster {cluster}: {e}"),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::byte_range::MemRange;
    use block_source::BlockSource;

    /// A v2 image: 64 KiB clusters, 1 MiB disk, L1 at 64 KiB, L2 at
    /// 128 KiB, cluster 1 stored at 192 KiB.
    fn image() -> Vec<u8> {
        let mut b = vec![0u8; 256 << 10];
        b[0..4].copy_from_slice(MAGIC);
        b[4..8].copy_from_slice(&2u32.to_be_bytes());
        b[20..24].copy_from_slice(&16u32.to_be_bytes());
        b[24..32].copy_from_slice(&(1u64 << 20).to_be_bytes());
        b[36..40].copy_from_slice(&1u32.to_be_bytes());
        b[40..48].copy_from_slice(&(64u64 << 10).to_be_bytes());
        b[64 << 10..(64 << 10) + 8].copy_from_slice(&((128u64 << 10) | 1 << 63).to_be_bytes());
        let l2 = (128 << 10) + 8;
        b[l2..l2 + 8].copy_from_slice(&((192u64 << 10) | 1 << 63).to_be_bytes());
        b[192 << 10..].fill(0x5a);
        b
    }

    fn open_bytes(b: Vec<u8>) -> Result<Qcow2Source, DiskError> {
        open(Arc::new(MemRange::new(b, "t.qcow2")))
    }

    #[test]
    fn reads_data_and_holes() {
        let src = open_bytes(image()).unwrap();
        assert_eq!(src.capacity(), 1 << 20);
        let mut buf = vec![1u8; 128 << 10];
        src.read_at(&mut buf, 0).unwrap();
        assert!(buf[..64 << 10].iter().all(|&b| b == 0));
        assert!(buf[64 << 10..].iter().all(|&b| b == 0x5a));
    }

    #[test]
    fn refuses_backing_encryption_and_hostile_tables() {
        let mut b = image();
        b[8..16].copy_from_slice(&200u64.to_be_bytes());
        b[16..20].copy_from_slice(&8u32.to_be_bytes());
        b[200..208].copy_from_slice(b"base.img");
        let e = open_bytes(b).err().unwrap().to_string();
        assert!(e.contains("base.img"), "{e}");
        let mut b = image();
        b[32..36].copy_from_slice(&1u32.to_be_bytes());
        assert!(open_bytes(b)
            .err()
            .unwrap()
            .to_string()
            .contains("encrypted"));
        let mut b = image();
        b[24..32].copy_from_slice(&(1u64 << 62).to_be_bytes());
        assert!(open_bytes(b).is_err());
        let mut b = image();
        b[64 << 10..(64 << 10) + 8].copy_from_slice(&(1u64 << 40).to_be_bytes());
        assert!(open_bytes(b)
            .err()
            .unwrap()
            .to_string()
            .contains("past the end"));
        assert!(open_bytes(b"QFI\xfb".to_vec()).is_err());
    }

    #[test]
    fn corrupt_compressed_cluster_is_a_read_error() {
        let mut b = image();
        let l2 = (128 << 10) + 16;
        let entry = L2_COMPRESSED | (200u64 << 10);
        b[l2..l2 + 8].copy_from_slice(&entry.to_be_bytes());
        let src = open_bytes(b).unwrap();
        let mut buf = vec![0u8; 4096];
        let e = src.read_at(&mut buf, 128 << 10).unwrap_err();
        assert!(e.to_string().contains("compressed cluster 2"), "{e}");
    }
}
