//! The one trait every disk layer speaks.
//!
//! Disk formats (`disk-image`) produce block sources, the overlay wraps one,
//! and the virtio-blk device (`devices`) consumes one. The trait lives in its
//! own tiny crate so that the package side never depends on device or KVM
//! code, and the device side never depends on image formats: the `devices`
//! crate re-exports it as its block backend trait.

use std::io;

/// A random-access, fixed-size store of bytes (a virtual disk).
///
/// Implementations must be safe to call from several threads at once: the
/// block device may serve several queues, and tests read in parallel.
pub trait BlockSource: Send + Sync {
    /// Size of the virtual disk in bytes.
    fn capacity(&self) -> u64;

    /// Fill `buf` with the bytes at `offset`. Reading past `capacity()` is an
    /// error (`UnexpectedEof`), never a short read.
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()>;

    /// Write `buf` at `offset`. Read-only sources return `PermissionDenied`.
    fn write_at(&self, _buf: &[u8], _offset: u64) -> io::Result<()> {
        Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            "this disk is read-only",
        ))
    }

    /// The first range at or after `offset` that may hold non-zero bytes,
    /// as `(start, end)` with `offset <= start < end <= capacity()`; `None`
    /// when everything from `offset` on reads as zeros. A hint for skipping
    /// unallocated space (export, copies): a range may still hold zeros, and
    /// a source that does not know says "all of the rest" (the default).
    fn data_range(&self, offset: u64) -> io::Result<Option<(u64, u64)>> {
        let end = self.capacity();
        Ok((offset < end).then_some((offset, end)))
    }

    /// Make every completed write durable.
    fn flush(&self) -> io::Result<()> {
        Ok(())
    }

    /// Whether writes are refused.
    fn is_read_only(&self) -> bool {
        true
    }
}

/// Check that `len` bytes at `offset` lie inside a disk of `capacity` bytes.
pub fn check_range(capacity: u64, offset: u64, len: usize) -> io::Result<()> {
    match offset.checked_add(len as u64) {
        Some(end) if end <= capacity => Ok(()),
        _ => Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!("access of {len} bytes at offset {offset} is past the end of the disk ({capacity} bytes)"),
        )),
    }
}

/// A source held in memory; for tests and tiny disks.
pub struct MemorySource {
    data: std::sync::RwLock<Vec<u8>>,
    read_only: bool,
}

impl MemorySource {
    pub fn new(data: Vec<u8>, read_only: bool) -> Self {
        MemorySource {
            data: std::sync::RwLock::new(data),
            read_only,
        }
    }
}

impl BlockSource for MemorySource {
    fn capacity(&self) -> u64 {
        self.data.read().map(|d| d.len() as u64).unwrap_or(0)
    }
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        let data = self
            .data
            .read()
            .map_err(|_| io::Error::other("poisoned lock"))?;
        check_range(data.len() as u64, offset, buf.len())?;
        let start = offset as usize;
        buf.copy_from_slice(&data[start..start + buf.len()]);
        Ok(())
    }
    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        if self.read_only {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                "this disk is read-only",
            ));
        }
        let mut data = self
            .data
            .write()
            .map_err(|_| io::Error::other("poisoned lock"))?;
        check_range(data.len() as u64, offset, buf.len())?;
        let start = offset as usize;
        data[start..start + buf.len()].copy_from_slice(buf);
        Ok(())
    }
    fn is_read_only(&self) -> bool {
        self.read_only
    }
}

impl<T: BlockSource + ?Sized> BlockSource for std::sync::Arc<T> {
    fn capacity(&self) -> u64 {
        (**self).capacity()
    }
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        (**self).read_at(buf, offset)
    }
    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        (**self).write_at(buf, offset)
    }
    fn flush(&self) -> io::Result<()> {
        (**self).flush()
    }
    fn is_read_only(&self) -> bool {
        (**self).is_read_only()
    }
    fn data_range(&self, offset: u64) -> io::Result<Option<(u64, u64)>> {
        (**self).data_range(offset)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_source_reads_writes_and_bounds() {
        let src = MemorySource::new(vec![0u8; 1024], false);
        src.write_at(b"abc", 10).unwrap();
        let mut buf = [0u8; 3];
        src.read_at(&mut buf, 10).unwrap();
        assert_eq!(&buf, b"abc");
        assert_eq!(
            src.read_at(&mut buf, 1023).unwrap_err().kind(),
            io::ErrorKind::UnexpectedEof
        );
        assert_eq!(
            check_range(10, u64::MAX, 2).unwrap_err().kind(),
            io::ErrorKind::UnexpectedEof
        );
    }

    #[test]
    fn read_only_refuses_writes() {
        let src = MemorySource::new(vec![0u8; 16], true);
        assert_eq!(
            src.write_at(b"x", 0).unwrap_err().kind(),
            io::ErrorKind::PermissionDenied
        );
    }
}
