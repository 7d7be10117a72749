//! Where image bytes come from: a byte range of a read-only file.
//!
//! An `.ova` is a tar, so each disk is a *member*: a `(file, offset, len)`
//! triple. A disk beside an `.ovf` is a whole file, and a disk split by
//! `ovf:chunkSize` is several files read back to back. Formats only ever
//! see the [`ByteRange`] trait, so they work the same on all three, and
//! nothing is ever copied out of the package.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;

/// Random-access, read-only bytes that a disk format parses.
///
/// Must be safe to call from several threads at once (`pread` semantics).
pub trait ByteRange: Send + Sync {
    /// Length in bytes.
    fn len(&self) -> u64;

    /// Fill `buf` with the bytes at `offset`. Short data is an error
    /// (`UnexpectedEof`), never a partial read.
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()>;

    /// A name for error messages: the file, or the file and tar member.
    fn name(&self) -> String {
        "disk image".to_string()
    }

    /// Whether the range holds no bytes.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The first range at or after `offset` that may hold non-zero bytes,
    /// `None` when the rest is known to be zeros (holes of a sparse file);
    /// the default knows nothing and says "all of the rest".
    fn data_range(&self, offset: u64) -> io::Result<Option<(u64, u64)>> {
        let end = self.len();
        Ok((offset < end).then_some((offset, end)))
    }
}

fn past_end(name: &str, offset: u64, len: usize, total: u64) -> io::Error {
    io::Error::new(
        io::ErrorKind::UnexpectedEof,
        format!("{name}: read of {len} bytes at offset {offset} is past its end ({total} bytes)"),
    )
}

/// `len` bytes of a read-only file starting at `offset`.
#[derive(Clone, Debug)]
pub struct FileRange {
    file: Arc<File>,
    offset: u64,
    len: u64,
    name: String,
}

impl FileRange {
    /// A range of an already opened file (e.g. a tar member of an `.ova`).
    /// `name` is used in error messages, e.g. `"app.ova:disk1.vmdk"`.
    pub fn new(file: Arc<File>, offset: u64, len: u64, name: impl Into<String>) -> Self {
        FileRange {
            file,
            offset,
            len,
            name: name.into(),
        }
    }

    /// Open a whole file read-only.
    pub fn open(path: &Path) -> io::Result<Self> {
        let file = File::open(path).map_err(|e| {
            io::Error::new(e.kind(), format!("cannot open {}: {e}", path.display()))
        })?;
        let len = file.metadata()?.len();
        Ok(FileRange::new(
            Arc::new(file),
            0,
            len,
            path.display().to_string(),
        ))
    }

    /// A sub-range `[offset, offset + len)` of this range.
    pub fn slice(&self, offset: u64, len: u64, name: impl Into<String>) -> io::Result<Self> {
        match offset.checked_add(len) {
            Some(end) if end <= self.len => Ok(FileRange::new(
                self.file.clone(),
                self.offset + offset,
                len,
                name,
            )),
            _ => Err(past_end(&self.name, offset, len as usize, self.len)),
        }
    }

    pub fn file(&self) -> &Arc<File> {
        &self.file
    }

    pub fn offset(&self) -> u64 {
        self.offset
    }
}

impl ByteRange for FileRange {
    fn len(&self) -> u64 {
        self.len
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        match offset.checked_add(buf.len() as u64) {
            Some(end) if end <= self.len => {}
            _ => return Err(past_end(&self.name, offset, buf.len(), self.len)),
        }
        self.file
            .read_exact_at(buf, self.offset + offset)
            .map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!(
                        "{}: read of {} bytes at offset {offset}: {e}",
                        self.name,
                        buf.len()
                    ),
                )
            })
    }

    fn name(&self) -> String {
        self.name.clone()
    }

    /// Holes of the file, as `lseek(SEEK_DATA/SEEK_HOLE)` reports them
    /// (the descriptor's position is not used: every read is a `pread`).
    fn data_range(&self, offset: u64) -> io::Result<Option<(u64, u64)>> {
        use std::os::fd::AsRawFd;
        if offset >= self.len {
            return Ok(None);
        }
        let fd = self.file.as_raw_fd();
        let seek = |from: u64, whence| -> Option<u64> {
            // SAFETY: lseek on a descriptor this range owns a handle to.
            let at = unsafe { libc::lseek(fd, (self.offset + from) as libc::off_t, whence) };
            (at >= 0).then(|| (at as u64).saturating_sub(self.offset))
        };
        let Some(start) = seek(offset, libc::SEEK_DATA) else {
            // ENXIO: no data after `offset`; any other error: assume data.
            let enxio = io::Error::last_os_error().raw_os_error() == Some(libc::ENXIO);
            return Ok((!enxio).then_some((offset, self.len)));
        };
        if start >= self.len {
            return Ok(None);
        }
        let end = seek(start, libc::SEEK_HOLE)
            .unwrap_or(self.len)
            .min(self.len);
        Ok(Some((start, end.max(start + 1))))
    }
}

/// Several ranges read back to back as one (OVF `ovf:chunkSize` chunks
/// `disk.vmdk.000000000`, `disk.vmdk.000000001`, …).
pub struct ChunkedRange {
    parts: Vec<Box<dyn ByteRange>>,
    /// `starts[i]` is where part `i` begins in the joined range.
    starts: Vec<u64>,
    len: u64,
    name: String,
}

impl ChunkedRange {
    pub fn new(parts: Vec<Box<dyn ByteRange>>, name: impl Into<String>) -> io::Result<Self> {
        let mut starts = Vec::with_capacity(parts.len());
        let mut len = 0u64;
        for p in &parts {
            starts.push(len);
            len = len.checked_add(p.len()).ok_or_else(|| {
                io::Error::new(io::ErrorKind::InvalidData, "chunk sizes overflow")
            })?;
        }
        Ok(ChunkedRange {
            parts,
            starts,
            len,
            name: name.into(),
        })
    }
}

impl ByteRange for ChunkedRange {
    fn len(&self) -> u64 {
        self.len
    }

    fn read_at(&self, mut buf: &mut [u8], mut offset: u64) -> io::Result<()> {
        match offset.checked_add(buf.len() as u64) {
            Some(end) if end <= self.len => {}
            _ => return Err(past_end(&self.name, offset, buf.len(), self.len)),
        }
        while !buf.is_empty() {
            // Last part whose start is <= offset; skips empty parts.
            let i = self.starts.partition_point(|&s| s <= offset) - 1;
            let part = &self.parts[i];
            let inner = offset - self.starts[i];
            let n = ((part.len() - inner) as usize).min(buf.len());
            if n == 0 {
                return Err(past_end(&self.name, offset, buf.len(), self.len));
            }
            let (head, tail) = buf.split_at_mut(n);
            part.read_at(head, inner)?;
            buf = tail;
            offset += n as u64;
        }
        Ok(())
    }

    fn name(&self) -> String {
        self.name.clone()
    }
}

/// Bytes held in memory: for tests, fuzzing, and tiny embedded images.
pub struct MemRange {
    data: Arc<[u8]>,
    name: String,
}

impl MemRange {
    pub fn new(data: impl Into<Arc<[u8]>>, name: impl Into<String>) -> Self {
        MemRange {
            data: data.into(),
            name: name.into(),
        }
    }
}

impl ByteRange for MemRange {
    fn len(&self) -> u64 {
        self.data.len() as u64
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        let total = self.data.len() as u64;
        match offset.checked_add(buf.len() as u64) {
            Some(end) if end <= total => {
                let s = offset as usize;
                buf.copy_from_slice(&self.data[s..s + buf.len()]);
                Ok(())
            }
            _ => Err(past_end(&self.name, offset, buf.len(), total)),
        }
    }

    fn name(&self) -> String {
        self.name.clone()
    }
}

impl<T: ByteRange + ?Sized> ByteRange for Box<T> {
    fn len(&self) -> u64 {
        (**self).len()
    }
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        (**self).read_at(buf, offset)
    }
    fn name(&self) -> String {
        (**self).name()
    }
    fn data_range(&self, offset: u64) -> io::Result<Option<(u64, u64)>> {
        (**self).data_range(offset)
    }
}

impl<T: ByteRange + ?Sized> ByteRange for Arc<T> {
    fn len(&self) -> u64 {
        (**self).len()
    }
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        (**self).read_at(buf, offset)
    }
    fn name(&self) -> String {
        (**self).name()
    }
    fn data_range(&self, offset: u64) -> io::Result<Option<(u64, u64)>> {
        (**self).data_range(offset)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn file_range_reads_inside_and_refuses_outside() {
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(b"0123456789").unwrap();
        let r = FileRange::new(Arc::new(f), 2, 5, "t");
        let mut buf = [0u8; 3];
        r.read_at(&mut buf, 1).unwrap();
        assert_eq!(&buf, b"345");
        assert_eq!(
            r.read_at(&mut buf, 3).unwrap_err().kind(),
            io::ErrorKind::UnexpectedEof
        );
        assert_eq!(
            r.read_at(&mut buf, u64::MAX).unwrap_err().kind(),
            io::ErrorKind::UnexpectedEof
        );
        let s = r.slice(1, 3, "s").unwrap();
        let mut all = [0u8; 3];
        s.read_at(&mut all, 0).unwrap();
        assert_eq!(&all, b"345");
        assert!(r.slice(4, 2, "bad").is_err());
    }

    #[test]
    fn chunked_range_reads_across_parts() {
        let parts: Vec<Box<dyn ByteRange>> = vec![
            Box::new(MemRange::new(b"abc".to_vec(), "a")),
            Box::new(MemRange::new(Vec::new(), "empty")),
            Box::new(MemRange::new(b"defg".to_vec(), "b")),
            Box::new(MemRange::new(b"h".to_vec(), "c")),
        ];
        let c = ChunkedRange::new(parts, "joined").unwrap();
        assert_eq!(c.len(), 8);
        let mut buf = [0u8; 8];
        c.read_at(&mut buf, 0).unwrap();
        assert_eq!(&buf, b"abcdefgh");
        let mut mid = [0u8; 4];
        c.read_at(&mut mid, 2).unwrap();
        assert_eq!(&mid, b"cdef");
        assert!(c.read_at(&mut mid, 5).is_err());
    }
}
