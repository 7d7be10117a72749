//! Where a sparse image's data is: runs of allocated units found from the
//! unit map alone, so that export (and anything else copying a disk) skips
//! unallocated space without reading it. An 8 TiB image with nothing
//! allocated is crossed in one step per missing grain or L2 table.

use crate::sparse_reader::{Unit, UnitMap};
use std::io;

/// Longest run reported at once: a copier asks again for the next one.
const MAX_RUN: u64 = 64 << 20;

/// [`block_source::BlockSource::data_range`] for a unit map.
pub fn sparse_data_range<M: UnitMap>(map: &M, offset: u64) -> io::Result<Option<(u64, u64)>> {
    let unit = map.unit_size();
    let capacity = map.capacity();
    let units = capacity.div_ceil(unit);
    let mut index = offset / unit;
    // Skip what is known to be zero.
    let start = loop {
        if index >= units {
            return Ok(None);
        }
        let span = map.zero_span(index);
        if span > 0 {
            index = index.saturating_add(span);
            continue;
        }
        if map.locate(index).map_err(io::Error::from)? != Unit::Zero {
            break index;
        }
        index += 1;
    };
    // Extend over allocated units, up to MAX_RUN.
    let mut end = start + 1;
    while end < units && (end - start) * unit < MAX_RUN && map.zero_span(end) == 0 {
        if map.locate(end).map_err(io::Error::from)? == Unit::Zero {
            break;
        }
        end += 1;
    }
    let from = (start * unit).max(offset);
    Ok(Some((from, (end * unit).min(capacity))))
}
