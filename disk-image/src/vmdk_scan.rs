//! Recovery of a streamOptimized VMDK whose footer or grain directory is
//! missing or broken (a download cut short, a careless tool): the grain
//! index is rebuilt by walking the grain and metadata markers from the
//! first grain to the end-of-stream marker, once, at open.

use crate::byte_range::ByteRange;
use crate::error::DiskError;
use crate::vmdk_sparse::{le32, le64, SparseHeader, FORMAT, SECTOR};

const MARKER_EOS: u32 = 0;
const MARKER_GT: u32 = 1;
const MARKER_GD: u32 = 2;
const MARKER_FOOTER: u32 = 3;

/// Rebuild the grain index of a streamOptimized image by walking its
/// grain and metadata markers from the first grain to the end of stream.
/// Each step moves forward by at least one sector, so the walk ends.
pub(crate) fn scan_markers(
    image: &dyn ByteRange,
    header: &SparseHeader,
) -> Result<Vec<(u64, u64)>, DiskError> {
    let name = image.name();
    let len = image.len();
    let grains = header.capacity_sectors.div_ceil(header.grain_sectors);
    let desc_end = header
        .descriptor_offset
        .saturating_add(header.descriptor_size);
    let mut sector = if header.overhead >= 1 && header.overhead.saturating_mul(SECTOR) < len {
        header.overhead
    } else {
        desc_end.max(1)
    };
    let mut found = Vec::new();
    while let Some(at) = sector.checked_mul(SECTOR).filter(|&a| a + 16 <= len) {
        let mut m = [0u8; 16];
        image
            .read_at(&mut m, at)
            .map_err(|e| DiskError::io(&name, format!("marker at offset {at}"), e))?;
        let (val, size, kind) = (le64(&m, 0), le32(&m, 8), le32(&m, 12));
        if size != 0 {
            if val % header.grain_sectors != 0 || val / header.grain_sectors >= grains {
                return Err(DiskError::malformed(
                    &name,
                    FORMAT,
                    at,
                    format!("grain marker for sector {val}, not a grain of this disk"),
                ));
            }
            found.push((val / header.grain_sectors, at));
            sector = (at + 12 + size as u64).div_ceil(SECTOR);
            continue;
        }
        match kind {
            MARKER_EOS => break,
            MARKER_GT | MARKER_GD | MARKER_FOOTER => {
                sector = sector.saturating_add(1).saturating_add(val)
            }
            _ => {
                return Err(DiskError::malformed(
                    &name,
                    FORMAT,
                    at,
                    format!("unknown marker type {kind}"),
                ))
            }
        }
    }
    // Later copies of a grain win, as a stream reader would see them.
    found.reverse();
    found.sort_by_key(|&(g, _)| g);
    found.dedup_by_key(|&mut (g, _)| g);
    Ok(found)
}
