//! VHDX (Hyper-V, also written by VirtualBox and qemu), read-only.
//!
//! Layout (MS-VHDX): a `vhdxfile` identifier, two headers at 64 and 128 KiB
//! (the valid one with the higher sequence number is current), two region
//! tables at 192 and 256 KiB naming the block allocation table (BAT) and the
//! metadata region. Metadata gives the block size, the virtual disk size,
//! the logical sector size and whether the disk has a parent. The BAT holds
//! one 64-bit entry per payload block (state in the low 3 bits, file
//! offset in MiB above bit 20), with one sector-bitmap entry after every
//! `chunk ratio` payload entries.
//!
//! A header naming a log (non-zero log GUID) means writes may not have
//! reached the file: replaying the log is not done here, so such an image
//! is refused with a message saying how to make it clean. Differencing
//! disks (a parent) are refused as qcow2 backing files are, and so are
//! unknown *required* regions or metadata items.

use crate::byte_range::ByteRange;
use crate::error::DiskError;
use crate::sparse_reader::{SparseReader, Unit, UnitMap};
use crate::vhd::read_exact;
use block_source::BlockSource;
use std::sync::Arc;

const FORMAT: &str = "VHDX";
pub const MAGIC: &[u8; 8] = b"vhdxfile";
const KIB64: u64 = 64 << 10;
const MIB: u64 = 1 << 20;
const MAX_CAPACITY: u64 = 64 << 40;

const BAT_REGION: &str = "2DC27766-F623-4200-9D64-115E9BFD4A08";
const METADATA_REGION: &str = "8B7CA206-4790-4B9A-B8FE-575F050F886E";
const FILE_PARAMETERS: &str = "CAA16737-FA36-4D43-B3B6-33F0AA44E76B";
const VIRTUAL_DISK_SIZE: &str = "2FA54224-CD1B-4876-B211-5DBED83BF4B8";
const LOGICAL_SECTOR_SIZE: &str = "8141BF1D-A96F-4709-BA47-F233A8FAAB5F";
/// Items understood without being needed for reading.
const KNOWN_ITEMS: &[&str] = &[
    "BECA12AB-B2E6-4523-93EF-C309E000C746", // page 83 data
    "CDA348C7-445D-4471-9CC9-E9885251C556", // physical sector size
];

const BLOCK_NOT_PRESENT: u64 = 0;
const BLOCK_UNDEFINED: u64 = 1;
const BLOCK_ZERO: u64 = 2;
const BLOCK_UNMAPPED: u64 = 3;
const BLOCK_FULLY_PRESENT: u64 = 6;

fn le16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes(b[at..at + 2].try_into().unwrap_or([0; 2]))
}

fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap_or([0; 4]))
}

fn le64(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap_or([0; 8]))
}

/// A GUID's on-disk bytes (first three fields little-endian).
fn guid_bytes(text: &str) -> [u8; 16] {
    let hex: Vec<u8> = text
        .bytes()
        .filter(|c| *c != b'-')
        .collect::<Vec<_>>()
        .chunks(2)
        .map(|p| u8::from_str_radix(std::str::from_utf8(p).unwrap_or("00"), 16).unwrap_or(0))
        .collect();
    let mut out = [0u8; 16];
    out.copy_from_slice(&hex[..16]);
    out[0..4].reverse();
    out[4..6].reverse();
    out[6..8].reverse();
    out
}

fn is_guid(bytes: &[u8], text: &str) -> bool {
    bytes == guid_bytes(text)
}

/// CRC-32C (Castagnoli), as VHDX checksums its headers and tables.
fn crc32c(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= b as u32;
        for _ in 0..8 {
            crc = (crc >> 1) ^ (0x82f6_3b78 & (crc & 1).wrapping_neg());
        }
    }
    !crc
}

/// Whether a structure's CRC-32C (stored at `at`, computed with it zeroed) holds.
fn checksum_ok(block: &[u8], at: usize) -> bool {
    let mut copy = block.to_vec();
    copy[at..at + 4].fill(0);
    crc32c(&copy) == le32(block, at)
}

pub fn open(image: Arc<dyn ByteRange>) -> Result<Arc<dyn BlockSource>, DiskError> {
    let map = VhdxMap::open(image.clone())?;
    Ok(Arc::new(SparseReader::new(map, image)))
}

pub struct VhdxMap {
    name: String,
    image_len: u64,
    capacity: u64,
    block_size: u64,
    chunk_ratio: u64,
    bat: Vec<u64>,
}

struct Region {
    offset: u64,
    len: u64,
}

impl VhdxMap {
    fn open(image: Arc<dyn ByteRange>) -> Result<Self, DiskError> {
        let name = image.name();
        let err = |at: u64, what: String| DiskError::malformed(&name, FORMAT, at, what);
        let ident = read_exact(&*image, FORMAT, 0, 8, "file identifier")?;
        if ident != MAGIC {
            return Err(err(0, "no 'vhdxfile' identifier".into()));
        }
        current_header(&*image)?;
        let (bat, metadata) = regions(&*image)?;
        let meta = read_exact(&*image, FORMAT, metadata.offset, metadata.len, "metadata")?;
        let items = Metadata::parse(&meta, metadata.offset, &name)?;
        let capacity = items.capacity;
        let block_size = items.block_size;
        let chunk_ratio = (1u64 << 23) * items.sector_size / block_size;
        if capacity == 0 || capacity > MAX_CAPACITY || chunk_ratio == 0 {
            return Err(err(
                metadata.offset,
                format!("a disk of {capacity} bytes with {block_size}-byte blocks is out of range"),
            ));
        }
        let blocks = capacity.div_ceil(block_size);
        let entries = blocks + (blocks - 1) / chunk_ratio;
        if entries * 8 > bat.len {
            return Err(err(
                bat.offset,
                format!(
                    "the block table ({} bytes) is too small for {blocks} blocks",
                    bat.len
                ),
            ));
        }
        let raw = read_exact(&*image, FORMAT, bat.offset, entries * 8, "block table")?;
        Ok(VhdxMap {
            name,
            image_len: image.len(),
            capacity,
            block_size,
            chunk_ratio,
            bat: raw.chunks_exact(8).map(|c| le64(c, 0)).collect(),
        })
    }
}

/// The current header, refusing a log that would need replaying.
fn current_header(image: &dyn ByteRange) -> Result<(), DiskError> {
    let name = image.name();
    let mut best: Option<(u64, Vec<u8>)> = None;
    for at in [KIB64, 2 * KIB64] {
        let h = read_exact(image, FORMAT, at, 4096, "header")?;
        if &h[0..4] == b"head" && checksum_ok(&h, 4) {
            let seq = le64(&h, 8);
            if best.as_ref().is_none_or(|(s, _)| seq > *s) {
                best = Some((seq, h));
            }
        }
    }
    let Some((_, h)) = best else {
        return Err(DiskError::malformed(
            &name,
            FORMAT,
            KIB64,
            "neither header is valid (signature or checksum)",
        ));
    };
    if le16(&h, 66) != 1 {
        return Err(DiskError::unsupported(
            &name,
            FORMAT,
            format!("header version {} (1 is known)", le16(&h, 66)),
        ));
    }
    if h[48..64].iter().any(|&b| b != 0) {
        return Err(DiskError::unsupported(
            &name,
            FORMAT,
            "its log holds writes not yet applied (the image was not closed cleanly); \
             open it once read-write in Hyper-V or qemu (e.g. `qemu-img check -r all`) to replay the log",
        ));
    }
    Ok(())
}

/// The BAT and metadata regions from the first valid region table.
fn regions(image: &dyn ByteRange) -> Result<(Region, Region), DiskError> {
    let name = image.name();
    for at in [3 * KIB64, 4 * KIB64] {
        let t = read_exact(image, FORMAT, at, KIB64, "region table")?;
        if &t[0..4] != b"regi" || !checksum_ok(&t, 4) {
            continue;
        }
        let count = le32(&t, 8) as usize;
        if count > 2047 {
            return Err(DiskError::malformed(
                &name,
                FORMAT,
                at + 8,
                format!("{count} region entries (2047 at most)"),
            ));
        }
        let (mut bat, mut meta) = (None, None);
        for e in t[16..16 + count * 32].chunks_exact(32) {
            let region = Region {
                offset: le64(e, 16),
                len: le32(e, 24) as u64,
            };
            if is_guid(&e[..16], BAT_REGION) {
                bat = Some(region);
            } else if is_guid(&e[..16], METADATA_REGION) {
                meta = Some(region);
            } else if le32(e, 28) & 1 != 0 {
                return Err(DiskError::unsupported(
                    &name,
                    FORMAT,
                    "it has a required region ovf-run does not know",
                ));
            }
        }
        return match (bat, meta) {
            (Some(b), Some(m)) => Ok((b, m)),
            _ => Err(DiskError::malformed(
                &name,
                FORMAT,
                at,
                "the region table names no block table or no metadata region",
            )),
        };
    }
    Err(DiskError::malformed(
        &name,
        FORMAT,
        3 * KIB64,
        "neither region table is valid (signature or checksum)",
    ))
}

struct Metadata {
    block_size: u64,
    capacity: u64,
    sector_size: u64,
}

impl Metadata {
    fn parse(meta: &[u8], base: u64, name: &str) -> Result<Metadata, DiskError> {
        let err = |what: String| DiskError::malformed(name, FORMAT, base, what);
        if meta.len() < 32 || &meta[0..8] != b"metadata" {
            return Err(err("no 'metadata' table header".into()));
        }
        let count = le16(meta, 10) as usize;
        if 32 + count * 32 > meta.len() {
            return Err(err(format!(
                "{count} metadata entries do not fit the region"
            )));
        }
        let mut found = Metadata {
            block_size: 0,
            capacity: 0,
            sector_size: 0,
        };
        for e in meta[32..32 + count * 32].chunks_exact(32) {
            let (offset, len, flags) = (le32(e, 16) as usize, le32(e, 20) as usize, le32(e, 24));
            let value = meta
                .get(offset..offset.saturating_add(len))
                .filter(|v| v.len() >= 4)
                .ok_or_else(|| err("a metadata item lies outside the region".into()))?;
            let id = &e[..16];
            if is_guid(id, FILE_PARAMETERS) {
                found.block_size = le32(value, 0) as u64;
                if value.len() >= 8 && le32(value, 4) & 2 != 0 {
                    return Err(DiskError::unsupported(
                        name,
                        FORMAT,
                        "it is a differencing disk (it has a parent); only self-contained images can be read (qemu-img convert it first)",
                    ));
                }
            } else if is_guid(id, VIRTUAL_DISK_SIZE) && value.len() >= 8 {
                found.capacity = le64(value, 0);
            } else if is_guid(id, LOGICAL_SECTOR_SIZE) {
                found.sector_size = le32(value, 0) as u64;
            } else if flags & 4 != 0 && !KNOWN_ITEMS.iter().any(|k| is_guid(id, k)) {
                return Err(DiskError::unsupported(
                    name,
                    FORMAT,
                    "it has a required metadata item ovf-run does not know (a parent locator?)",
                ));
            }
        }
        if !found.block_size.is_power_of_two() || !(MIB..=256 * MIB).contains(&found.block_size) {
            return Err(err(format!(
                "block size {} is not a power of two from 1 to 256 MiB",
                found.block_size
            )));
        }
        if found.sector_size != 512 && found.sector_size != 4096 {
            return Err(err(format!(
                "logical sector size {} (512 or 4096)",
                found.sector_size
            )));
        }
        Ok(found)
    }
}

impl UnitMap for VhdxMap {
    fn unit_size(&self) -> u64 {
        self.block_size
    }

    fn capacity(&self) -> u64 {
        self.capacity
    }

    fn locate(&self, index: u64) -> Result<Unit, DiskError> {
        let slot = index + index / self.chunk_ratio;
        let entry = self.bat.get(slot as usize).copied().unwrap_or(0);
        let at = (entry >> 20) * MIB;
        match entry & 7 {
            BLOCK_NOT_PRESENT | BLOCK_UNDEFINED | BLOCK_ZERO | BLOCK_UNMAPPED => Ok(Unit::Zero),
            BLOCK_FULLY_PRESENT => {
                let used = self.block_size.min(self.capacity - index * self.block_size);
                if at < MIB || at.checked_add(used).is_none_or(|e| e > self.image_len) {
                    return Err(DiskError::malformed(
                        &self.name,
                        FORMAT,
                        at,
                        format!("block {index} points outside the file"),
                    ));
                }
                Ok(Unit::Data { at })
            }
            state => Err(DiskError::malformed(
                &self.name,
                FORMAT,
                at,
                format!("block {index} has state {state}, which only differencing disks use"),
            )),
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guids_and_checksums() {
        assert_eq!(
            guid_bytes(BAT_REGION),
            [
                0x66, 0x77, 0xC2, 0x2D, 0x23, 0xF6, 0x00, 0x42, 0x9D, 0x64, 0x11, 0x5E, 0x9B, 0xFD,
                0x4A, 0x08
            ]
        );
        // The CRC-32C check value.
        assert_eq!(crc32c(b"123456789"), 0xe306_9283);
    }
}
