//! Writing a disk out as a sparse raw image (`ovf-run export-disk`).

use crate::error::DiskError;
use block_source::BlockSource;
use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
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
/// after each step. An existing file at `path` is replaced.
pub fn export_raw(
    source: &dyn BlockSource,
    path: &Path,
    progress: &dyn Fn(u64, u64),
) -> Result<(), DiskError> {
    let total = source.capacity();
    let out = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)
        .map_err(|e| DiskError::local(path, "cannot create the output image", e))?;
    out.set_len(total)
        .map_err(|e| DiskError::local(path, "cannot size the output image", e))?;
    let mut buf = vec![0u8; STEP];
    let mut done = 0u64;
    while done < total {
        let n = ((total - done) as usize).min(STEP);
        let chunk = &mut buf[..n];
        source.read_at(chunk, done).map_err(|e| {
            DiskError::local(path, format!("reading the disk at offset {done} failed"), e)
        })?;
        for (i, block) in chunk.chunks(HOLE).enumerate() {
            if !is_zero(block) {
                let at = done + (i * HOLE) as u64;
                out.write_all_at(block, at)
                    .map_err(|e| DiskError::local(path, "cannot write the output image", e))?;
            }
        }
        done += n as u64;
        progress(done, total);
    }
    out.sync_all()
        .map_err(|e| DiskError::local(path, "cannot sync the output image", e))?;
    Ok(())
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
}
