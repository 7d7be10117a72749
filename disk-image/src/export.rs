//! Writing a disk out as a sparse raw image (`ovf-run export-disk`).

use crate::error::DiskError;
use block_source::BlockSource;
use std::fs::File;
use std::io;
use std::os::unix::fs::{FileExt, PermissionsExt};
use std::path::Path;

/// Bytes read per step.
const STEP: usize = 4 << 20;
/// Granularity of holes in the output.
const HOLE: usize = 64 << 10;

/// Whether every byte is zero, eight bytes at a time.
pub fn is_zero(block: &[u8]) -> bool {
    let words = block.chunks_exact(8);
    let tail = words.remainder();
    words
        .into_iter()
        .all(|c| u64::from_ne_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]) == 0)
        && tail.iter().all(|&b| b == 0)
}

/// Write `source` to `path` as a raw image of the same size, leaving
/// all-zero 64 KiB blocks as holes. `progress(done, total)` is called
/// after each step.
///
/// The image is written to a temporary file beside `path` and renamed
/// over it only when complete and synced: a failed export leaves nothing
/// behind, and an output that names one of the disk's own files (a flat
/// extent, the image itself) is never truncated while it is being read.
/// An existing `path` that is not a regular file is refused.
pub fn export_raw(
    source: &dyn BlockSource,
    path: &Path,
    progress: &dyn Fn(u64, u64),
) -> Result<(), DiskError> {
    if let Ok(meta) = std::fs::metadata(path) {
        if !meta.is_file() {
            return Err(DiskError::local(
                path,
                "cannot export there",
                io::Error::new(io::ErrorKind::InvalidInput, "not a regular file"),
            ));
        }
    }
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("disk");
    let tmp = tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .suffix(".partial")
        .tempfile_in(dir)
        .map_err(|e| DiskError::local(path, "cannot create the output image", e))?;
    let _cleanup = crate::partial_cleanup::PartialGuard::new(tmp.path());
    write_sparse(source, tmp.as_file(), path, progress)?;
    tmp.as_file()
        .set_permissions(std::fs::Permissions::from_mode(0o644))
        .map_err(|e| DiskError::local(path, "cannot set the output image's mode", e))?;
    tmp.persist(path)
        .map_err(|e| DiskError::local(path, "cannot move the finished image in place", e.error))?;
    Ok(())
}

/// Copy the ranges the source reports as possibly holding data; the rest
/// stays a hole of the output (sized up front), never read or written.
fn write_sparse(
    source: &dyn BlockSource,
    out: &File,
    path: &Path,
    progress: &dyn Fn(u64, u64),
) -> Result<(), DiskError> {
    let total = source.capacity();
    out.set_len(total)
        .map_err(|e| DiskError::local(path, "cannot size the output image", e))?;
    let mut buf = vec![0u8; STEP];
    let mut done = 0u64;
    while done < total {
        let read_err = |e: io::Error| {
            DiskError::local(path, format!("reading the disk at offset {done} failed"), e)
        };
        let Some((start, end)) = source.data_range(done).map_err(read_err)? else {
            break;
        };
        let start = start.max(done);
        let n = (end.min(total).saturating_sub(start) as usize).min(STEP);
        if n == 0 {
            // A source must not report an empty range; read plainly.
            return write_dense_from(source, out, path, done, &mut buf, progress);
        }
        copy_nonzero(source, out, path, start, &mut buf[..n])?;
        done = start + n as u64;
        progress(done, total);
    }
    progress(total, total);
    out.sync_all()
        .map_err(|e| DiskError::local(path, "cannot sync the output image", e))
}

/// Read `chunk.len()` bytes at `at` and write the blocks that are not all zero.
fn copy_nonzero(
    source: &dyn BlockSource,
    out: &File,
    path: &Path,
    at: u64,
    chunk: &mut [u8],
) -> Result<(), DiskError> {
    source.read_at(chunk, at).map_err(|e| {
        DiskError::local(path, format!("reading the disk at offset {at} failed"), e)
    })?;
    for (i, block) in chunk.chunks(HOLE).enumerate() {
        if !is_zero(block) {
            out.write_all_at(block, at + (i * HOLE) as u64)
                .map_err(|e| DiskError::local(path, "cannot write the output image", e))?;
        }
    }
    Ok(())
}

/// The plain copy from `done` to the end, for a source whose ranges
/// cannot be trusted.
fn write_dense_from(
    source: &dyn BlockSource,
    out: &File,
    path: &Path,
    mut done: u64,
    buf: &mut [u8],
    progress: &dyn Fn(u64, u64),
) -> Result<(), DiskError> {
    let total = source.capacity();
    while done < total {
        let n = ((total - done) as usize).min(buf.len());
        copy_nonzero(source, out, path, done, &mut buf[..n])?;
        done += n as u64;
        progress(done, total);
    }
    out.sync_all()
        .map_err(|e| DiskError::local(path, "cannot sync the output image", e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use block_source::MemorySource;

    #[test]
    fn zero_detection() {
        assert!(is_zero(&[0u8; 100]));
        assert!(is_zero(&[]));
        let mut v = vec![0u8; 100];
        v[99] = 1;
        assert!(!is_zero(&v));
        v[99] = 0;
        v[3] = 1;
        assert!(!is_zero(&v));
    }

    #[test]
    fn export_is_sparse_and_exact() {
        use std::os::unix::fs::MetadataExt;
        let mut data = vec![0u8; 8 << 20];
        data[5 << 20] = 7;
        let src = MemorySource::new(data.clone(), true);
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out.raw");
        export_raw(&src, &out, &|_, _| {}).unwrap();
        assert_eq!(std::fs::read(&out).unwrap(), data);
        assert!(std::fs::metadata(&out).unwrap().blocks() * 512 < 1 << 20);
    }

    /// Fails on its second read, like a corrupt grain deep in a disk.
    struct FailsLater(MemorySource, std::sync::atomic::AtomicU32);
    impl BlockSource for FailsLater {
        fn capacity(&self) -> u64 {
            self.0.capacity()
        }
        fn read_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
            if self.1.fetch_add(1, std::sync::atomic::Ordering::Relaxed) > 0 {
                return Err(std::io::Error::other("corrupt grain"));
            }
            self.0.read_at(buf, offset)
        }
    }

    #[test]
    fn failed_export_keeps_the_old_file_and_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out.raw");
        std::fs::write(&out, b"previous").unwrap();
        let src = FailsLater(MemorySource::new(vec![1u8; 9 << 20], true), 0.into());
        let e = export_raw(&src, &out, &|_, _| {}).unwrap_err();
        assert!(e.to_string().contains("corrupt grain"), "{e}");
        assert_eq!(std::fs::read(&out).unwrap(), b"previous");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        // Not a regular file: refused, untouched.
        let e = export_raw(&src, dir.path(), &|_, _| {}).unwrap_err();
        assert!(e.to_string().contains("not a regular file"), "{e}");
    }
}
