//! gzip-compressed images (OVF `ovf:compression="gzip"`, `.img.gz`).
//!
//! gzip cannot be read at random, so the stream is inflated once, front to
//! back, into an anonymous file in the cache directory (holes kept sparse),
//! and that file is then opened as whatever image it contains. The file
//! has no name, so it vanishes when the process ends, however it ends.

use crate::byte_range::{ByteRange, FileRange};
use crate::error::DiskError;
use flate2::read::MultiGzDecoder;
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::Arc;

/// Called with (compressed bytes consumed, compressed total) as inflation
/// goes; the CLI draws a progress bar with it.
pub type ProgressFn = Arc<dyn Fn(u64, u64) + Send + Sync>;

/// Where decompressed copies go, and how big they may get.
#[derive(Clone)]
pub struct CacheDir {
    pub dir: PathBuf,
    pub progress: Option<ProgressFn>,
    /// Refuse gzip streams that inflate beyond this (a "gzip bomb").
    pub max_inflated_bytes: u64,
    /// Where `max_inflated_bytes` comes from, for the error message.
    pub limit_reason: &'static str,
}

impl CacheDir {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        CacheDir {
            dir: dir.into(),
            progress: None,
            max_inflated_bytes: 4 << 40,
            limit_reason: "ovf-run's limit for a decompressed image",
        }
    }

    /// `$XDG_CACHE_HOME/ovf-run` or `~/.cache/ovf-run`, else the temp dir.
    pub fn default_location() -> PathBuf {
        if let Some(x) = std::env::var_os("XDG_CACHE_HOME").filter(|x| !x.is_empty()) {
            return PathBuf::from(x).join("ovf-run");
        }
        if let Some(h) = std::env::var_os("HOME").filter(|h| !h.is_empty()) {
            return PathBuf::from(h).join(".cache/ovf-run");
        }
        std::env::temp_dir().join("ovf-run")
    }
}

/// Reads a byte range front to back.
struct SequentialReader<'a> {
    range: &'a dyn ByteRange,
    pos: u64,
    progress: Option<&'a ProgressFn>,
}

impl Read for SequentialReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = (self.range.len() - self.pos).min(buf.len() as u64) as usize;
        self.range.read_at(&mut buf[..n], self.pos)?;
        self.pos += n as u64;
        if let Some(p) = self.progress {
            p(self.pos, self.range.len());
        }
        Ok(n)
    }
}

/// Inflate a gzip range into an anonymous sparse file in the cache dir.
pub fn inflate_to_cache(input: &dyn ByteRange, cache: &CacheDir) -> Result<FileRange, DiskError> {
    let name = input.name();
    std::fs::create_dir_all(&cache.dir)
        .map_err(|e| DiskError::local(&cache.dir, "cannot create cache directory", e))?;
    let out = tempfile::tempfile_in(&cache.dir).map_err(|e| {
        DiskError::local(
            &cache.dir,
            "cannot create a file for the decompressed image",
            e,
        )
    })?;
    let reader = SequentialReader {
        range: input,
        pos: 0,
        progress: cache.progress.as_ref(),
    };
    let mut gz = MultiGzDecoder::new(io::BufReader::with_capacity(1 << 20, reader));
    let mut buf = vec![0u8; 1 << 20];
    let mut written = 0u64;
    loop {
        let mut filled = 0;
        while filled < buf.len() {
            match gz.read(&mut buf[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    return Err(DiskError::malformed(
                        &name,
                        "gzip",
                        written,
                        format!("the stream breaks after {written} decompressed bytes: {e}"),
                    ))
                }
            }
        }
        if filled == 0 {
            break;
        }
        if written + filled as u64 > cache.max_inflated_bytes {
            return Err(DiskError::malformed(
                &name,
                "gzip",
                written,
                format!(
                    "inflates to more than {} bytes, {}; refused (a gzip bomb, or not this disk's image)",
                    cache.max_inflated_bytes, cache.limit_reason
                ),
            ));
        }
        let chunk = &buf[..filled];
        // Zero blocks stay holes in the cache file.
        for (i, block) in chunk.chunks(64 << 10).enumerate() {
            if !crate::export::is_zero(block) {
                out.write_all_at(block, written + (i as u64) * (64 << 10))
                    .map_err(|e| {
                        DiskError::local(&cache.dir, "cannot write the decompressed image", e)
                    })?;
            }
        }
        written += filled as u64;
    }
    out.set_len(written)
        .map_err(|e| DiskError::local(&cache.dir, "cannot size the decompressed image", e))?;
    Ok(FileRange::new(
        Arc::new(out),
        0,
        written,
        format!("{name} (decompressed)"),
    ))
}
