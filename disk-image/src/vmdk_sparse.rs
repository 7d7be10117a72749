//! VMDK sparse extents: monolithicSparse, streamOptimized, and the extent
//! files of twoGbMaxExtentSparse. All start with the `KDMV` header.
//!
//! Layout (VMware "Virtual Disk Format 5.0"): a grain directory (GD) of
//! u32 sector offsets of grain tables (GT); each GT maps `num_gtes` grains
//! to sector offsets. streamOptimized images compress every grain (zlib,
//! preceded by `lba: u64, size: u32`) and write the GD last: the header's
//! `gd_offset` is `GD_AT_END` and the real one is in a footer copy of the
//! header 1 KiB before the end. When that footer is missing or broken (a
//! download cut short, a careless tool), the grain index is rebuilt by
//! walking the grain and metadata markers from the start once.
//!
//! Grain tables are read lazily, one at a time, so opening a huge disk
//! costs one small read of the GD, whatever the disk size.

use crate::byte_range::ByteRange;
use crate::error::DiskError;
use crate::inflate::inflate_zlib;
use crate::sparse_reader::{SharedCache, SparseReader, Unit, UnitMap};
use std::sync::{Arc, OnceLock};

pub(crate) const FORMAT: &str = "VMDK";
pub const MAGIC: &[u8; 4] = b"KDMV";
pub(crate) const SECTOR: u64 = 512;
const GD_AT_END: u64 = u64::MAX;
const FLAG_ZEROED_GTE: u32 = 1 << 2;
const FLAG_COMPRESSED: u32 = 1 << 16;
const FLAG_MARKERS: u32 = 1 << 17;
/// Largest disk accepted: far beyond any appliance, small enough that
/// offsets never overflow.
const MAX_CAPACITY: u64 = 1 << 50;
/// Largest grain accepted (qemu accepts up to 2 MiB too).
const MAX_GRAIN_BYTES: u64 = 2 << 20;
/// Most entries per grain table (VMware uses 512).
const MAX_GTES: u32 = 1 << 16;
/// Largest grain directory read into memory.
const MAX_GD_BYTES: u64 = 64 << 20;

/// The fields of a sparse header that matter for reading.
#[derive(Clone, Debug)]
pub struct SparseHeader {
    pub version: u32,
    pub flags: u32,
    pub capacity_sectors: u64,
    pub grain_sectors: u64,
    pub descriptor_offset: u64,
    pub descriptor_size: u64,
    pub num_gtes: u32,
    pub gd_offset: u64,
    pub overhead: u64,
    pub compress_algorithm: u16,
}

pub(crate) fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap_or([0; 4]))
}

pub(crate) fn le64(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap_or([0; 8]))
}

impl SparseHeader {
    /// Parse a 512-byte header (or footer) sector.
    pub fn parse(b: &[u8; 512]) -> Option<Self> {
        if &b[0..4] != MAGIC {
            return None;
        }
        Some(SparseHeader {
            version: le32(b, 4),
            flags: le32(b, 8),
            capacity_sectors: le64(b, 12),
            grain_sectors: le64(b, 20),
            descriptor_offset: le64(b, 28),
            descriptor_size: le64(b, 36),
            num_gtes: le32(b, 44),
            gd_offset: le64(b, 56),
            overhead: le64(b, 64),
            compress_algorithm: u16::from_le_bytes([b[77], b[78]]),
        })
    }

    fn compressed(&self) -> bool {
        self.flags & FLAG_COMPRESSED != 0
    }

    fn grain_bytes(&self) -> u64 {
        self.grain_sectors * SECTOR
    }
}

/// How grains are found.
enum GrainIndex {
    /// The on-disk directory; tables are loaded on first use.
    Tables {
        gd: Vec<u32>,
        gts: Vec<OnceLock<Arc<[u32]>>>,
    },
    /// Rebuilt by the marker scan: (grain index, byte offset), sorted.
    Scanned(Vec<(u64, u64)>),
}

pub struct SparseMap {
    name: String,
    image: Arc<dyn ByteRange>,
    header: SparseHeader,
    capacity: u64,
    index: GrainIndex,
}

/// A VMDK sparse extent as a block source.
pub type SparseSource = SparseReader<SparseMap>;

fn read_exact(
    image: &dyn ByteRange,
    offset: u64,
    len: u64,
    what: &str,
) -> Result<Vec<u8>, DiskError> {
    let name = image.name();
    let end = offset.checked_add(len).filter(|&e| e <= image.len());
    if end.is_none() {
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

fn read_sector(image: &dyn ByteRange, offset: u64, what: &str) -> Result<[u8; 512], DiskError> {
    let v = read_exact(image, offset, SECTOR, what)?;
    let mut s = [0u8; 512];
    s.copy_from_slice(&v);
    Ok(s)
}

/// Open a `KDMV` sparse extent.
pub fn open(image: Arc<dyn ByteRange>) -> Result<SparseSource, DiskError> {
    let map = SparseMap::open(image.clone())?;
    Ok(SparseReader::new(map, image))
}

/// Open a `KDMV` sparse extent whose inflated grains count against a
/// cache shared with other extents of the same disk.
pub fn open_shared(
    image: Arc<dyn ByteRange>,
    cache: &SharedCache,
) -> Result<SparseSource, DiskError> {
    let map = SparseMap::open(image.clone())?;
    Ok(SparseReader::with_cache(map, image, cache))
}

impl SparseMap {
    fn open(image: Arc<dyn ByteRange>) -> Result<Self, DiskError> {
        let name = image.name();
        let first = read_sector(&*image, 0, "sparse header")?;
        let header = SparseHeader::parse(&first)
            .ok_or_else(|| DiskError::malformed(&name, FORMAT, 0, "no KDMV magic"))?;
        check_header(&name, &header, 0)?;
        let capacity = header.capacity_sectors * SECTOR;
        let streamed = header.compressed() && header.flags & FLAG_MARKERS != 0;

        let from_tables = Self::load_directory(&image, &header);
        let (header, index) = match from_tables {
            Ok(found) => found,
            // A stream whose footer or directory is gone: walk the markers.
            Err(_) if streamed => (
                header.clone(),
                GrainIndex::Scanned(crate::vmdk_scan::scan_markers(&*image, &header)?),
            ),
            Err(e) => return Err(e),
        };
        Ok(SparseMap {
            name,
            image,
            header,
            capacity,
            index,
        })
    }

    /// Read the grain directory named by the header, or by the footer when
    /// the header says it is at the end; check every table lies inside the
    /// file and no two overlap (which also rules out loops).
    fn load_directory(
        image: &Arc<dyn ByteRange>,
        header: &SparseHeader,
    ) -> Result<(SparseHeader, GrainIndex), DiskError> {
        let name = image.name();
        let mut header = header.clone();
        if header.gd_offset == GD_AT_END {
            let len = image.len();
            if len < 3 * SECTOR {
                return Err(DiskError::malformed(
                    &name,
                    FORMAT,
                    len,
                    "file too short for a footer",
                ));
            }
            let at = len - 2 * SECTOR;
            let footer =
                SparseHeader::parse(&read_sector(&**image, at, "footer")?).ok_or_else(|| {
                    DiskError::malformed(&name, FORMAT, at, "footer has no KDMV magic")
                })?;
            check_header(&name, &footer, at)?;
            if footer.gd_offset == GD_AT_END
                || footer.capacity_sectors != header.capacity_sectors
                || footer.grain_sectors != header.grain_sectors
                || footer.num_gtes != header.num_gtes
            {
                return Err(DiskError::malformed(
                    &name,
                    FORMAT,
                    at,
                    "footer does not match the header",
                ));
            }
            header = footer;
        }
        let per_table = header.grain_sectors * header.num_gtes as u64;
        let entries = header.capacity_sectors.div_ceil(per_table);
        let gd_bytes = entries * 4;
        if gd_bytes > MAX_GD_BYTES {
            return Err(DiskError::malformed(
                &name,
                FORMAT,
                0,
                format!("grain directory of {gd_bytes} bytes is absurdly large"),
            ));
        }
        let gd_at = header.gd_offset.checked_mul(SECTOR).ok_or_else(|| {
            DiskError::malformed(&name, FORMAT, 0, "grain directory offset overflows")
        })?;
        let raw = read_exact(&**image, gd_at, gd_bytes, "grain directory")?;
        let gd: Vec<u32> = raw.chunks_exact(4).map(|c| le32(c, 0)).collect();
        let gt_bytes = (header.num_gtes as u64 * 4).next_multiple_of(SECTOR);
        let mut spans: Vec<(u64, usize)> = Vec::new();
        for (i, &sector) in gd.iter().enumerate() {
            if sector == 0 {
                continue;
            }
            let at = sector as u64 * SECTOR;
            if at + gt_bytes > image.len() {
                return Err(DiskError::malformed(
                    &name,
                    FORMAT,
                    gd_at + i as u64 * 4,
                    format!("grain table {i} at offset {at} runs past the end of the file"),
                ));
            }
            spans.push((at, i));
        }
        spans.sort_unstable();
        for w in spans.windows(2) {
            if w[0].0 + gt_bytes > w[1].0 {
                return Err(DiskError::malformed(
                    &name,
                    FORMAT,
                    w[1].0,
                    format!("grain tables {} and {} overlap", w[0].1, w[1].1),
                ));
            }
        }
        let gts = (0..gd.len()).map(|_| OnceLock::new()).collect();
        Ok((header, GrainIndex::Tables { gd, gts }))
    }

    /// The grain table `t`, read on first use.
    fn table(
        &self,
        t: usize,
        gd: &[u32],
        gts: &[OnceLock<Arc<[u32]>>],
    ) -> Result<Arc<[u32]>, DiskError> {
        if let Some(gt) = gts[t].get() {
            return Ok(gt.clone());
        }
        let at = gd[t] as u64 * SECTOR;
        let raw = read_exact(
            &*self.image,
            at,
            self.header.num_gtes as u64 * 4,
            "grain table",
        )?;
        let gt: Arc<[u32]> = raw.chunks_exact(4).map(|c| le32(c, 0)).collect();
        let _ = gts[t].set(gt.clone());
        Ok(gt)
    }

    pub fn header(&self) -> &SparseHeader {
        &self.header
    }

    /// Whether the grain index was rebuilt by scanning markers.
    pub fn recovered_by_scan(&self) -> bool {
        matches!(self.index, GrainIndex::Scanned(_))
    }

    fn max_stored(&self) -> u64 {
        // zlib's own worst case is a few bytes per 16 KiB above the input,
        // but fast encoders emit fixed-Huffman blocks that grow random data
        // by up to 1/8; twice the grain is a safe bound that still caps
        // what one grain may make us read.
        12 + 2 * self.header.grain_bytes() + 1024
    }
}

fn check_header(name: &str, h: &SparseHeader, at: u64) -> Result<(), DiskError> {
    let bad = |what: String| Err(DiskError::malformed(name, FORMAT, at, what));
    if !(1..=3).contains(&h.version) {
        return Err(DiskError::unsupported(
            name,
            FORMAT,
            format!("sparse header version {}", h.version),
        ));
    }
    if h.grain_sectors == 0
        || !h.grain_sectors.is_power_of_two()
        || h.grain_sectors > MAX_GRAIN_BYTES / SECTOR
    {
        return bad(format!(
            "grain size of {} sectors (must be a power of two up to 2 MiB)",
            h.grain_sectors
        ));
    }
    if h.capacity_sectors
        .checked_mul(SECTOR)
        .is_none_or(|c| c > MAX_CAPACITY)
    {
        return bad(format!(
            "capacity of {} sectors is absurd",
            h.capacity_sectors
        ));
    }
    if h.num_gtes == 0 || h.num_gtes > MAX_GTES {
        return bad(format!(
            "{} entries per grain table (expected 1..={MAX_GTES})",
            h.num_gtes
        ));
    }
    if h.compressed() && h.compress_algorithm != 1 {
        return Err(DiskError::unsupported(
            name,
            FORMAT,
            format!("compression algorithm {}", h.compress_algorithm),
        ));
    }
    Ok(())
}

impl UnitMap for SparseMap {
    fn unit_size(&self) -> u64 {
        self.header.grain_bytes()
    }

    fn capacity(&self) -> u64 {
        self.capacity
    }

    fn may_compress(&self) -> bool {
        self.header.compressed()
    }

    fn zero_span(&self, grain: u64) -> u64 {
        match &self.index {
            GrainIndex::Tables { gd, gts } => {
                let n = (self.header.num_gtes as u64).max(1);
                let t = (grain / n) as usize;
                if gd.get(t).copied().unwrap_or(0) == 0 {
                    return n - grain % n;
                }
                // Unallocated entries of a present table (qemu-img and
                // VMware preallocate every table): counted in one pass.
                let Ok(gt) = self.table(t, gd, gts) else {
                    return 0;
                };
                let zeroed = self.header.flags & FLAG_ZEROED_GTE != 0;
                gt[(grain % n) as usize..]
                    .iter()
                    .take_while(|&&e| e == 0 || (e == 1 && zeroed))
                    .count() as u64
            }
            GrainIndex::Scanned(found) => match found.binary_search_by_key(&grain, |&(g, _)| g) {
                Ok(_) => 0,
                Err(i) => found.get(i).map_or(u64::MAX - grain, |&(g, _)| g - grain),
            },
        }
    }

    fn locate(&self, grain: u64) -> Result<Unit, DiskError> {
        let entry = match &self.index {
            GrainIndex::Tables { gd, gts } => {
                let n = self.header.num_gtes as u64;
                let t = (grain / n) as usize;
                if gd.get(t).copied().unwrap_or(0) == 0 {
                    return Ok(Unit::Zero);
                }
                let gt = self.table(t, gd, gts)?;
                gt[(grain % n) as usize] as u64
            }
            GrainIndex::Scanned(found) => match found.binary_search_by_key(&grain, |&(g, _)| g) {
                Ok(i) => {
                    return Ok(Unit::Compressed {
                        at: found[i].1,
                        max_len: self.max_stored(),
                    })
                }
                Err(_) => return Ok(Unit::Zero),
            },
        };
        if entry == 0 || (entry == 1 && self.header.flags & FLAG_ZEROED_GTE != 0) {
            return Ok(Unit::Zero);
        }
        let at = entry * SECTOR;
        let need = if self.header.compressed() {
            12
        } else {
            self.header.grain_bytes()
        };
        if at + need > self.image.len() {
            return Err(DiskError::malformed(
                &self.name,
                FORMAT,
                at,
                format!(
                    "grain {grain} points past the end of the file ({} bytes)",
                    self.image.len()
                ),
            ));
        }
        Ok(if self.header.compressed() {
            Unit::Compressed {
                at,
                max_len: self.max_stored(),
            }
        } else {
            Unit::Data { at }
        })
    }

    fn decompress(
        &self,
        grain: u64,
        at: u64,
        stored: &[u8],
        out: &mut [u8],
    ) -> Result<(), DiskError> {
        let bad = |what: String| Err(DiskError::malformed(&self.name, FORMAT, at, what));
        if stored.len() < 12 {
            return bad(format!("grain {grain} is cut short by the end of the file"));
        }
        let lba = le64(stored, 0);
        let size = le32(stored, 8) as usize;
        if lba != grain * self.header.grain_sectors {
            return bad(format!("grain {grain} holds the data of sector {lba}"));
        }
        let Some(data) = stored.get(12..12 + size) else {
            return bad(format!("grain {grain}'s compressed size {size} runs past the end of the file or the grain limit"));
        };
        match inflate_zlib(data, out) {
            Ok(n) => {
                // A short last grain: the rest of the unit is past the disk.
                out[n..].fill(0);
                Ok(())
            }
            Err(e) => bad(format!("grain {grain}: {e}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::byte_range::MemRange;
    use block_source::BlockSource;

    fn header(capacity_sectors: u64, gd_offset: u64, flags: u32) -> Vec<u8> {
        let mut h = vec![0u8; 512];
        h[0..4].copy_from_slice(MAGIC);
        h[4..8].copy_from_slice(&1u32.to_le_bytes());
        h[8..12].copy_from_slice(&flags.to_le_bytes());
        h[12..20].copy_from_slice(&capacity_sectors.to_le_bytes());
        h[20..28].copy_from_slice(&8u64.to_le_bytes()); // 4 KiB grains
        h[44..48].copy_from_slice(&4u32.to_le_bytes()); // 4 GTEs per table
        h[56..64].copy_from_slice(&gd_offset.to_le_bytes());
        h[64..72].copy_from_slice(&1u64.to_le_bytes());
        h
    }

    fn open_bytes(b: Vec<u8>) -> Result<SparseSource, DiskError> {
        open(Arc::new(MemRange::new(b, "t.vmdk")))
    }

    #[test]
    fn reads_uncompressed_grains_and_holes() {
        // 8 grains of 4 KiB: GD at sector 1 (2 entries), GT at sector 2,
        // grain 1 at sector 3.
        let mut img = header(64, 1, 0);
        img.resize(512 * 3 + 4096, 0);
        img[512..516].copy_from_slice(&2u32.to_le_bytes());
        img[1024 + 4..1024 + 8].copy_from_slice(&3u32.to_le_bytes());
        img[1536..1536 + 4096].fill(0xab);
        let src = open_bytes(img).unwrap();
        assert_eq!(src.capacity(), 32768);
        let mut buf = vec![1u8; 8192];
        src.read_at(&mut buf, 0).unwrap();
        assert!(buf[..4096].iter().all(|&b| b == 0));
        assert!(buf[4096..].iter().all(|&b| b == 0xab));
        src.read_at(&mut buf, 16384).unwrap();
        assert!(buf.iter().all(|&b| b == 0));
    }

    #[test]
    fn refuses_hostile_headers() {
        assert!(open_bytes(b"KDMV".to_vec()).is_err());
        let mut h = header(u64::MAX / 2, 1, 0);
        h.resize(4096, 0);
        let e = open_bytes(h).err().unwrap().to_string();
        assert!(e.contains("capacity"), "{e}");
        // A power-of-two grain so large its byte size overflows (fuzz find).
        let mut h = header(64, 1, 0);
        h[20..28].copy_from_slice(&(1u64 << 60).to_le_bytes());
        h.resize(4096, 0);
        assert!(open_bytes(h)
            .err()
            .unwrap()
            .to_string()
            .contains("grain size"));
        // GD pointing far past the end.
        let mut h = header(64, 1 << 40, 0);
        h.resize(4096, 0);
        assert!(open_bytes(h)
            .err()
            .unwrap()
            .to_string()
            .contains("past the end"));
        // Two GD entries sharing one table.
        let mut h = header(64, 1, 0);
        h.resize(4096, 0);
        h[512..516].copy_from_slice(&2u32.to_le_bytes());
        h[516..520].copy_from_slice(&2u32.to_le_bytes());
        assert!(open_bytes(h).err().unwrap().to_string().contains("overlap"));
    }

    #[test]
    fn grain_past_end_is_a_read_error_not_a_panic() {
        let mut img = header(64, 1, 0);
        img.resize(512 * 3, 0);
        img[512..516].copy_from_slice(&2u32.to_le_bytes());
        img[1024..1028].copy_from_slice(&0xffff_fff0u32.to_le_bytes());
        let src = open_bytes(img).unwrap();
        let mut buf = [0u8; 512];
        let e = src.read_at(&mut buf, 0).unwrap_err();
        assert!(e.to_string().contains("past the end"), "{e}");
    }
}
