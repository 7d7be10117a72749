//! VHD (Virtual PC / Hyper-V "vpc"), read-only: fixed and dynamic disks.
//!
//! A fixed VHD is the disk's bytes followed by a 512-byte footer
//! (`conectix`). A dynamic VHD starts with a copy of the footer, then a
//! `cxsparse` header pointing at the block allocation table (BAT): one
//! 32-bit sector number per block (2 MiB by default), each block stored as
//! a sector bitmap followed by the block's data; unallocated blocks read as
//! zeros. Differencing disks need their parent file and are refused, as
//! qcow2 backing files are.
//!
//! The disk size follows qemu's rule (block/vpc.c), so reads equal
//! `qemu-img convert -O raw`: the CHS geometry for images whose creator
//! uses it (Virtual PC, older qemu), the footer's current size otherwise
//! (Hyper-V `win `, `qem2`, Disk2vhd, XenServer) or when the geometry is
//! the maximum.

use crate::byte_range::ByteRange;
use crate::error::DiskError;
use crate::raw::RawSource;
use crate::sparse_reader::{SparseReader, Unit, UnitMap};
use block_source::BlockSource;
use std::sync::Arc;

const FORMAT: &str = "VHD";
pub const FOOTER_MAGIC: &[u8; 8] = b"conectix";
const SPARSE_MAGIC: &[u8; 8] = b"cxsparse";
const FOOTER: u64 = 512;
const TYPE_FIXED: u32 = 2;
const TYPE_DYNAMIC: u32 = 3;
const TYPE_DIFFERENCING: u32 = 4;
/// 65535 cylinders × 16 heads × 255 sectors: "use the footer's size".
const MAX_GEOMETRY: u64 = 65535 * 16 * 255;
/// VHD's own limit is 2040 GiB; allow a little more from odd writers.
const MAX_CAPACITY: u64 = 4 << 40;
const UNALLOCATED: u32 = 0xffff_ffff;

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes(b[at..at + 2].try_into().unwrap_or([0; 2]))
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(b[at..at + 4].try_into().unwrap_or([0; 4]))
}

fn be64(b: &[u8], at: usize) -> u64 {
    u64::from_be_bytes(b[at..at + 8].try_into().unwrap_or([0; 8]))
}

/// Read `len` bytes at `offset`, checked against the image's size.
pub(crate) fn read_exact(
    image: &dyn ByteRange,
    format: &'static str,
    offset: u64,
    len: u64,
    what: &str,
) -> Result<Vec<u8>, DiskError> {
    let name = image.name();
    if offset.checked_add(len).is_none_or(|e| e > image.len()) {
        return Err(DiskError::malformed(
            &name,
            format,
            offset,
            format!(
                "the {what} ({len} bytes) lies past the end of the file ({} bytes)",
                image.len()
            ),
        ));
    }
    let mut buf = vec![0u8; len as usize];
    image
        .read_at(&mut buf, offset)
        .map_err(|e| DiskError::io(&name, format!("the {what}"), e))?;
    Ok(buf)
}

/// Whether the last 512 bytes of `image` are a fixed VHD's footer.
pub fn has_fixed_footer(image: &dyn ByteRange) -> bool {
    let len = image.len();
    if len < FOOTER * 2 {
        return false;
    }
    let mut tail = [0u8; FOOTER as usize];
    image.read_at(&mut tail, len - FOOTER).is_ok()
        && tail.starts_with(FOOTER_MAGIC)
        && be32(&tail, 60) == TYPE_FIXED
}

/// The virtual size, as qemu computes it from the footer.
fn capacity(footer: &[u8]) -> u64 {
    let chs = be16(footer, 56) as u64 * footer[58] as u64 * footer[59] as u64;
    let creator = &footer[28..32];
    let uses_size = [b"win ", b"qem2", b"d2v ", b"CTXS"]
        .iter()
        .any(|c| creator == *c)
        || creator == b"tap\0";
    if uses_size || chs == MAX_GEOMETRY {
        be64(footer, 48) / 512 * 512
    } else {
        chs * 512
    }
}

/// Open a VHD: the footer copy at the start (dynamic) or the footer at the end (fixed).
pub fn open(image: Arc<dyn ByteRange>) -> Result<Arc<dyn BlockSource>, DiskError> {
    let name = image.name();
    let head = read_exact(&*image, FORMAT, 0, FOOTER, "footer")?;
    let footer = if head.starts_with(FOOTER_MAGIC) {
        head
    } else {
        let at = image.len().saturating_sub(FOOTER);
        read_exact(&*image, FORMAT, at, FOOTER, "footer")?
    };
    if !footer.starts_with(FOOTER_MAGIC) {
        return Err(DiskError::malformed(
            &name,
            FORMAT,
            0,
            "no 'conectix' footer",
        ));
    }
    let capacity = capacity(&footer);
    if capacity > MAX_CAPACITY {
        return Err(DiskError::malformed(
            &name,
            FORMAT,
            48,
            format!("a disk of {capacity} bytes is larger than VHD allows"),
        ));
    }
    match be32(&footer, 60) {
        TYPE_FIXED => {
            let data = image.len().saturating_sub(FOOTER);
            if capacity > data {
                return Err(DiskError::malformed(
                    &name,
                    FORMAT,
                    data,
                    format!("the fixed disk claims {capacity} bytes but the file holds {data}"),
                ));
            }
            Ok(Arc::new(RawSource::window(image, 0, capacity)))
        }
        TYPE_DYNAMIC | TYPE_DIFFERENCING => {
            let map = DynamicMap::open(image.clone(), &footer, capacity)?;
            Ok(Arc::new(SparseReader::new(map, image)))
        }
        other => Err(DiskError::unsupported(
            &name,
            FORMAT,
            format!("disk type {other} (fixed 2, dynamic 3 and differencing 4 exist)"),
        )),
    }
}

/// A dynamic VHD's block table.
pub struct DynamicMap {
    name: String,
    image_len: u64,
    capacity: u64,
    block_size: u64,
    /// Bytes of the sector bitmap before each block's data.
    bitmap_bytes: u64,
    bat: Vec<u32>,
}

impl DynamicMap {
    fn open(image: Arc<dyn ByteRange>, footer: &[u8], capacity: u64) -> Result<Self, DiskError> {
        let name = image.name();
        let header_at = be64(footer, 16);
        let header = read_exact(&*image, FORMAT, header_at, 1024, "dynamic disk header")?;
        if !header.starts_with(SPARSE_MAGIC) {
            return Err(DiskError::malformed(
                &name,
                FORMAT,
                header_at,
                "no 'cxsparse' dynamic disk header where the footer points",
            ));
        }
        if be32(footer, 60) == TYPE_DIFFERENCING {
            let parent: Vec<u16> = header[64..576]
                .chunks_exact(2)
                .map(|c| u16::from_be_bytes([c[0], c[1]]))
                .take_while(|&c| c != 0)
                .collect();
            return Err(DiskError::unsupported(
                &name,
                FORMAT,
                format!(
                    "it is a differencing disk on parent {:?}; only self-contained images can be read (qemu-img convert it first)",
                    String::from_utf16_lossy(&parent)
                ),
            ));
        }
        let bat_at = be64(&header, 16);
        let entries = be32(&header, 28) as u64;
        let block_size = be32(&header, 32) as u64;
        if !block_size.is_power_of_two() || !(512..=(256 << 20)).contains(&block_size) {
            return Err(DiskError::malformed(
                &name,
                FORMAT,
                header_at + 32,
                format!("block size {block_size} is not a power of two from 512 B to 256 MiB"),
            ));
        }
        if capacity.div_ceil(block_size) > entries {
            return Err(DiskError::malformed(
                &name,
                FORMAT,
                header_at + 28,
                format!("{entries} table entries of {block_size} bytes cannot hold a disk of {capacity} bytes"),
            ));
        }
        let needed = capacity.div_ceil(block_size);
        let raw = read_exact(
            &*image,
            FORMAT,
            bat_at,
            needed * 4,
            "block allocation table",
        )?;
        let bat = raw.chunks_exact(4).map(|c| be32(c, 0)).collect();
        let bitmap_bytes = (block_size / 512).div_ceil(8).div_ceil(512) * 512;
        Ok(DynamicMap {
            name,
            image_len: image.len(),
            capacity,
            block_size,
            bitmap_bytes,
            bat,
        })
    }
}

impl UnitMap for DynamicMap {
    fn unit_size(&self) -> u64 {
        self.block_size
    }

    fn capacity(&self) -> u64 {
        self.capacity
    }

    fn locate(&self, index: u64) -> Result<Unit, DiskError> {
        let entry = self.bat.get(index as usize).copied().unwrap_or(UNALLOCATED);
        if entry == UNALLOCATED {
            return Ok(Unit::Zero);
        }
        // Like qemu, the sector bitmap is not consulted: a block's data is
        // read as stored (writers zero the sectors they did not fill).
        let at = entry as u64 * 512 + self.bitmap_bytes;
        let used = self.block_size.min(self.capacity - index * self.block_size);
        if at.checked_add(used).is_none_or(|e| e > self.image_len) {
            return Err(DiskError::malformed(
                &self.name,
                FORMAT,
                at,
                format!("block {index} points past the end of the file"),
            ));
        }
        Ok(Unit::Data { at })
    }

    fn decompress(&self, index: u64, at: u64, _: &[u8], _: &mut [u8]) -> Result<(), DiskError> {
        Err(DiskError::malformed(
            &self.name,
            FORMAT,
            at,
            format!("block {index} is not compressed"),
        ))
    }

    fn may_compress(&self) -> bool {
        false
    }
}
