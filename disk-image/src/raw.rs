//! Raw images and flat extents: the virtual disk is the bytes themselves.

use crate::byte_range::ByteRange;
use block_source::{check_range, BlockSource};
use std::io;
use std::sync::Arc;

/// `capacity` bytes read from `range` starting at `offset`.
pub struct RawSource {
    range: Arc<dyn ByteRange>,
    offset: u64,
    capacity: u64,
}

impl RawSource {
    /// The whole range is the disk.
    pub fn new(range: Arc<dyn ByteRange>) -> Self {
        let capacity = range.len();
        RawSource {
            range,
            offset: 0,
            capacity,
        }
    }

    /// A flat extent: `capacity` bytes at `offset` of `range`. The caller
    /// has checked that they lie inside the range.
    pub fn window(range: Arc<dyn ByteRange>, offset: u64, capacity: u64) -> Self {
        RawSource {
            range,
            offset,
            capacity,
        }
    }
}

impl BlockSource for RawSource {
    fn capacity(&self) -> u64 {
        self.capacity
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        check_range(self.capacity, offset, buf.len())?;
        self.range.read_at(buf, self.offset + offset)
    }

    fn data_range(&self, offset: u64) -> io::Result<Option<(u64, u64)>> {
        if offset >= self.capacity {
            return Ok(None);
        }
        let window = |at: u64| at.saturating_sub(self.offset).min(self.capacity);
        Ok(self
            .range
            .data_range(self.offset + offset)?
            .map(|(a, b)| (window(a).max(offset), window(b)))
            .filter(|(a, b)| a < b))
    }
}

/// A disk of `capacity` zero bytes (VMDK `ZERO` extents).
pub struct ZeroSource {
    pub capacity: u64,
}

impl BlockSource for ZeroSource {
    fn capacity(&self) -> u64 {
        self.capacity
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        check_range(self.capacity, offset, buf.len())?;
        buf.fill(0);
        Ok(())
    }
    fn data_range(&self, _offset: u64) -> io::Result<Option<(u64, u64)>> {
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::byte_range::MemRange;

    #[test]
    fn window_reads_inside_only() {
        let r: Arc<dyn ByteRange> = Arc::new(MemRange::new(b"0123456789".to_vec(), "m"));
        let w = RawSource::window(r, 2, 4);
        let mut b = [0u8; 4];
        w.read_at(&mut b, 0).unwrap();
        assert_eq!(&b, b"2345");
        assert!(w.read_at(&mut b, 1).is_err());
    }
}
