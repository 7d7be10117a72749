//! A copy-on-write overlay: the guest writes here, the package stays
//! untouched (it is only ever opened read-only).
//!
//! The overlay is cluster-granular (64 KiB). Cluster `c` of the disk is
//! stored at byte `c * CLUSTER` of a sparse data file, and a bitmap says
//! which clusters the overlay holds. A first write to a cluster copies the
//! base cluster in, merges, writes the whole cluster, and only then marks
//! it — so a reader never sees a half-made cluster.
//!
//! Two kinds:
//! - *ephemeral* (default): an anonymous file in the cache directory. It
//!   has no name, so it is gone when the process ends, even on a crash.
//! - *persistent* (`--persist DIR`): `DIR/overlay.data` plus
//!   `DIR/overlay.map` (header naming the base, then the bitmap). The data
//!   of a newly allocated cluster is fdatasync'ed before its map bit is
//!   written, so a killed process or a power cut leaves an overlay whose
//!   every marked cluster holds real data. The header stores the base's
//!   capacity and a caller-given fingerprint; an overlay made for another
//!   disk is refused rather than silently mixed.
//! - *frozen* (a snapshot's disk layer, `overlay_frozen.rs`): the chain of
//!   overlays above the package written out at the snapshot moment in the
//!   persistent layout, opened read-only, with an ephemeral overlay over it
//!   for each clone.

use crate::error::DiskError;
use block_source::{check_range, BlockSource};
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Bytes per overlay cluster.
pub const CLUSTER: u64 = 64 << 10;
const MAP_MAGIC: &[u8; 8] = b"OVFRUNOV";
const MAP_VERSION: u32 = 1;
/// The bitmap starts here in the map file.
const MAP_HEADER: u64 = 4096;
/// Longest base fingerprint stored.
pub const MAX_FINGERPRINT: usize = 1024;
pub const DATA_FILE: &str = "overlay.data";
pub const MAP_FILE: &str = "overlay.map";

pub struct Overlay {
    base: Arc<dyn BlockSource>,
    capacity: u64,
    data: File,
    /// The map file, for persistent overlays.
    map: Option<File>,
    /// One bit per cluster: set when the overlay holds the cluster.
    bits: Vec<AtomicU64>,
    /// Serialises first writes to clusters (copy-in and map updates).
    alloc: Mutex<()>,
    /// For messages: where the overlay lives.
    place: PathBuf,
    /// An ephemeral overlay's file when it must keep a name; removed on drop.
    _named: Option<tempfile::TempPath>,
    /// The overlay below this one when the base is a snapshot's frozen
    /// layer ([`Overlay::ephemeral_over`]): freezing this overlay again
    /// must take that layer's clusters too.
    lower: Option<Arc<Overlay>>,
    /// A snapshot's frozen layer: every write is refused.
    read_only: bool,
}

#[path = "overlay_frozen.rs"]
mod frozen;
pub use frozen::FROZEN_FILES;

/// Name prefix of ephemeral overlay files that keep a name; the PID follows.
const EPHEMERAL_PREFIX: &str = "ephemeral-";

/// Remove named ephemeral overlays whose process is gone (killed runs).
fn sweep_dead_ephemerals(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(rest) = name.to_str().and_then(|n| n.strip_prefix(EPHEMERAL_PREFIX)) else {
            continue;
        };
        let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        if pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

fn map_header(capacity: u64, fingerprint: &[u8]) -> Vec<u8> {
    let mut h = vec![0u8; MAP_HEADER as usize];
    h[0..8].copy_from_slice(MAP_MAGIC);
    h[8..12].copy_from_slice(&MAP_VERSION.to_le_bytes());
    h[12..16].copy_from_slice(&(CLUSTER as u32).to_le_bytes());
    h[16..24].copy_from_slice(&capacity.to_le_bytes());
    h[24..28].copy_from_slice(&(fingerprint.len() as u32).to_le_bytes());
    h[28..28 + fingerprint.len()].copy_from_slice(fingerprint);
    h
}

impl Overlay {
    fn clusters(capacity: u64) -> u64 {
        capacity.div_ceil(CLUSTER)
    }

    fn empty_bits(capacity: u64) -> Vec<AtomicU64> {
        (0..Self::clusters(capacity).div_ceil(64))
            .map(|_| AtomicU64::new(0))
            .collect()
    }

    /// An overlay that disappears with the process.
    ///
    /// Normally an unnamed file. Some filesystems (9p, as in the KVM test
    /// host, and some sandboxes) cannot resize or write a file once it has
    /// no name; there the file keeps a name with our PID in it, is removed
    /// when the overlay is dropped, and files left by processes that died
    /// are removed by the next ephemeral overlay made in the same folder.
    pub fn ephemeral(base: Arc<dyn BlockSource>, cache_dir: &Path) -> Result<Self, DiskError> {
        std::fs::create_dir_all(cache_dir)
            .map_err(|e| DiskError::local(cache_dir, "cannot create the cache directory", e))?;
        let capacity = base.capacity();
        let (data, named) =
            match Self::unnamed_file(cache_dir, capacity) {
                Ok(file) => (file, None),
                Err(_) => {
                    sweep_dead_ephemerals(cache_dir);
                    let named = tempfile::Builder::new()
                        .prefix(&format!("{EPHEMERAL_PREFIX}{}-", std::process::id()))
                        .suffix(".data")
                        .tempfile_in(cache_dir)
                        .map_err(|e| {
                            DiskError::local(cache_dir, "cannot create the overlay file", e)
                        })?;
                    named.as_file().set_len(capacity).map_err(|e| {
                        DiskError::local(cache_dir, "cannot size the overlay file", e)
                    })?;
                    let file = named.as_file().try_clone().map_err(|e| {
                        DiskError::local(cache_dir, "cannot open the overlay file", e)
                    })?;
                    (file, Some(named.into_temp_path()))
                }
            };
        Ok(Overlay {
            base,
            capacity,
            data,
            map: None,
            bits: Self::empty_bits(capacity),
            alloc: Mutex::new(()),
            place: cache_dir.to_path_buf(),
            _named: named,
            lower: None,
            read_only: false,
        })
    }

    /// An unlinked, sized file, checked to take a write.
    fn unnamed_file(cache_dir: &Path, capacity: u64) -> io::Result<File> {
        let file = tempfile::tempfile_in(cache_dir)?;
        file.set_len(capacity)?;
        if capacity > 0 {
            file.write_all_at(&[0], 0)?;
        }
        Ok(file)
    }

    /// An overlay kept in `dir` and reused by the next run on the same
    /// base. `fingerprint` identifies the base (e.g. the package's digest
    /// and the disk's name); at most [`MAX_FINGERPRINT`] bytes.
    pub fn persistent(
        base: Arc<dyn BlockSource>,
        dir: &Path,
        fingerprint: &str,
    ) -> Result<Self, DiskError> {
        let fp = fingerprint.as_bytes();
        if fp.len() > MAX_FINGERPRINT {
            return Err(DiskError::Overlay {
                path: dir.into(),
                what: "base fingerprint is too long".into(),
            });
        }
        std::fs::create_dir_all(dir)
            .map_err(|e| DiskError::local(dir, "cannot create the overlay directory", e))?;
        let capacity = base.capacity();
        let map_path = dir.join(MAP_FILE);
        let data_path = dir.join(DATA_FILE);
        let open_rw = |p: &Path| OpenOptions::new().read(true).write(true).open(p);
        let (data, map, bits) = match open_rw(&map_path) {
            Ok(map) => {
                let bits = Self::load_map(&map, &map_path, capacity, fp)?;
                let data = open_rw(&data_path).map_err(|e| {
                    DiskError::local(
                        &data_path,
                        "the overlay map exists but its data file cannot be opened",
                        e,
                    )
                })?;
                (data, map, bits)
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                // Data file first, map last: a map file means a whole overlay.
                let data = OpenOptions::new()
                    .read(true)
                    .write(true)
                    .create(true)
                    .truncate(true)
                    .open(&data_path)
                    .map_err(|e| {
                        DiskError::local(&data_path, "cannot create the overlay data file", e)
                    })?;
                data.set_len(capacity).map_err(|e| {
                    DiskError::local(&data_path, "cannot size the overlay data file", e)
                })?;
                let tmp = dir.join(format!("{MAP_FILE}.new"));
                let map = OpenOptions::new()
                    .read(true)
                    .write(true)
                    .create(true)
                    .truncate(true)
                    .open(&tmp)
                    .map_err(|e| DiskError::local(&tmp, "cannot create the overlay map", e))?;
                let bitmap_bytes = Self::clusters(capacity).div_ceil(8);
                map.write_all_at(&map_header(capacity, fp), 0)
                    .and_then(|_| map.set_len(MAP_HEADER + bitmap_bytes))
                    .and_then(|_| map.sync_all())
                    .and_then(|_| data.sync_all())
                    .and_then(|_| std::fs::rename(&tmp, &map_path))
                    .and_then(|_| File::open(dir)?.sync_all())
                    .map_err(|e| DiskError::local(&map_path, "cannot write the overlay map", e))?;
                (data, map, Self::empty_bits(capacity))
            }
            Err(e) => {
                return Err(DiskError::local(
                    &map_path,
                    "cannot open the overlay map",
                    e,
                ))
            }
        };
        Ok(Overlay {
            base,
            capacity,
            data,
            map: Some(map),
            bits,
            alloc: Mutex::new(()),
            place: dir.to_path_buf(),
            _named: None,
            lower: None,
            read_only: false,
        })
    }

    fn load_map(
        map: &File,
        path: &Path,
        capacity: u64,
        fp: &[u8],
    ) -> Result<Vec<AtomicU64>, DiskError> {
        let mismatch = |what: String| {
            Err(DiskError::Overlay {
                path: path.into(),
                what,
            })
        };
        let mut h = vec![0u8; MAP_HEADER as usize];
        map.read_exact_at(&mut h, 0)
            .map_err(|e| DiskError::local(path, "cannot read the overlay map header", e))?;
        let le32 = |at: usize| u32::from_le_bytes([h[at], h[at + 1], h[at + 2], h[at + 3]]);
        if &h[0..8] != MAP_MAGIC || le32(8) != MAP_VERSION || le32(12) as u64 != CLUSTER {
            return mismatch("not an ovf-run overlay map (or from an incompatible version); remove the directory or choose another".into());
        }
        let stored_capacity = u64::from_le_bytes(h[16..24].try_into().unwrap_or([0; 8]));
        let fp_len = (le32(24) as usize).min(MAX_FINGERPRINT);
        if stored_capacity != capacity || &h[28..28 + fp_len] != fp {
            return mismatch(format!(
                "this overlay belongs to another disk ({stored_capacity} bytes, {:?}), not this one ({capacity} bytes, {:?}); remove it or choose another directory",
                String::from_utf8_lossy(&h[28..28 + fp_len]),
                String::from_utf8_lossy(fp)
            ));
        }
        let clusters = Self::clusters(capacity);
        let mut bitmap = vec![0u8; clusters.div_ceil(8) as usize];
        map.read_exact_at(&mut bitmap, MAP_HEADER)
            .map_err(|e| DiskError::local(path, "overlay map is truncated", e))?;
        let bits = Self::empty_bits(capacity);
        for (i, &byte) in bitmap.iter().enumerate() {
            for b in 0..8 {
                let c = (i * 8 + b) as u64;
                if byte & (1 << b) != 0 && c < clusters {
                    bits[(c / 64) as usize].fetch_or(1 << (c % 64), Ordering::Relaxed);
                }
            }
        }
        Ok(bits)
    }

    fn has(&self, cluster: u64) -> bool {
        self.bits[(cluster / 64) as usize].load(Ordering::Acquire) & (1 << (cluster % 64)) != 0
    }

    /// Number of clusters the overlay holds.
    pub fn allocated_clusters(&self) -> u64 {
        self.bits
            .iter()
            .map(|w| w.load(Ordering::Relaxed).count_ones() as u64)
            .sum()
    }

    fn io_err(&self, what: &str, e: io::Error) -> io::Error {
        io::Error::new(
            e.kind(),
            format!("overlay in {}: {what}: {e}", self.place.display()),
        )
    }

    /// Copy cluster `c` in from the base, merged with `piece` at `inner`,
    /// then mark it. Called with the allocation lock held.
    fn allocate(&self, c: u64, inner: usize, piece: &[u8]) -> io::Result<()> {
        let start = c * CLUSTER;
        let len = CLUSTER.min(self.capacity - start) as usize;
        if piece.len() == len {
            self.data
                .write_all_at(piece, start)
                .map_err(|e| self.io_err("write", e))?;
        } else {
            let mut whole = vec![0u8; len];
            self.base.read_at(&mut whole, start)?;
            whole[inner..inner + piece.len()].copy_from_slice(piece);
            self.data
                .write_all_at(&whole, start)
                .map_err(|e| self.io_err("write", e))?;
        }
        Ok(())
    }

    fn mark(&self, clusters: &[u64]) -> io::Result<()> {
        if let Some(map) = &self.map {
            // Data before map: a marked cluster always holds its data.
            self.data
                .sync_data()
                .map_err(|e| self.io_err("fdatasync of data", e))?;
            for &c in clusters {
                let word = self.bits[(c / 64) as usize].load(Ordering::Relaxed) | (1 << (c % 64));
                let byte = (word >> ((c % 64) / 8 * 8)) as u8;
                map.write_all_at(&[byte], MAP_HEADER + c / 8)
                    .map_err(|e| self.io_err("map write", e))?;
                self.bits[(c / 64) as usize].fetch_or(1 << (c % 64), Ordering::Release);
            }
        } else {
            for &c in clusters {
                self.bits[(c / 64) as usize].fetch_or(1 << (c % 64), Ordering::Release);
            }
        }
        Ok(())
    }
}

impl BlockSource for Overlay {
    fn capacity(&self) -> u64 {
        self.capacity
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        check_range(self.capacity, offset, buf.len())?;
        let mut done = 0usize;
        while done < buf.len() {
            let pos = offset + done as u64;
            let mine = self.has(pos / CLUSTER);
            // Extend over following clusters on the same side.
            let mut end = pos - pos % CLUSTER + CLUSTER;
            while end < offset + buf.len() as u64 && self.has(end / CLUSTER) == mine {
                end += CLUSTER;
            }
            let n = ((end - pos) as usize).min(buf.len() - done);
            let piece = &mut buf[done..done + n];
            if mine {
                self.data
                    .read_exact_at(piece, pos)
                    .map_err(|e| self.io_err("read", e))?;
            } else {
                self.base.read_at(piece, pos)?;
            }
            done += n;
        }
        Ok(())
    }

    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        check_range(self.capacity, offset, buf.len())?;
        if self.read_only {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!("{} is a snapshot's frozen disk layer", self.place.display()),
            ));
        }
        let first = offset / CLUSTER;
        let last = (offset + buf.len() as u64).div_ceil(CLUSTER);
        if (first..last).all(|c| self.has(c)) {
            return self
                .data
                .write_all_at(buf, offset)
                .map_err(|e| self.io_err("write", e));
        }
        let _guard = self.alloc.lock().unwrap_or_else(|p| p.into_inner());
        let mut fresh = Vec::new();
        let mut done = 0usize;
        while done < buf.len() {
            let pos = offset + done as u64;
            let c = pos / CLUSTER;
            let inner = (pos % CLUSTER) as usize;
            let n = ((CLUSTER as usize) - inner).min(buf.len() - done);
            let piece = &buf[done..done + n];
            if self.has(c) {
                self.data
                    .write_all_at(piece, pos)
                    .map_err(|e| self.io_err("write", e))?;
            } else {
                self.allocate(c, inner, piece)?;
                fresh.push(c);
            }
            done += n;
        }
        self.mark(&fresh)
    }

    fn flush(&self) -> io::Result<()> {
        self.data
            .sync_data()
            .map_err(|e| self.io_err("fdatasync of data", e))?;
        if let Some(map) = &self.map {
            map.sync_data()
                .map_err(|e| self.io_err("fdatasync of map", e))?;
        }
        Ok(())
    }

    fn is_read_only(&self) -> bool {
        self.read_only
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use block_source::MemorySource;

    fn base() -> Arc<dyn BlockSource> {
        let data: Vec<u8> = (0..(1u32 << 20) + 1000).map(|i| (i % 241) as u8).collect();
        Arc::new(MemorySource::new(data, true))
    }

    #[test]
    fn sweep_removes_only_files_of_dead_processes() {
        let dir = tempfile::tempdir().unwrap();
        let dead = dir.path().join("ephemeral-999999999-abc.data");
        let mine = dir
            .path()
            .join(format!("ephemeral-{}-abc.data", std::process::id()));
        let other = dir.path().join("keep.data");
        for p in [&dead, &mine, &other] {
            std::fs::write(p, b"x").unwrap();
        }
        sweep_dead_ephemerals(dir.path());
        assert!(!dead.exists());
        assert!(mine.exists() && other.exists());
    }

    #[test]
    fn partial_writes_merge_with_base() {
        let dir = tempfile::tempdir().unwrap();
        let b = base();
        let o = Overlay::ephemeral(b.clone(), dir.path()).unwrap();
        o.write_at(&[0xee; 100], CLUSTER - 50).unwrap();
        let mut got = vec![0u8; 3 * CLUSTER as usize];
        o.read_at(&mut got, 0).unwrap();
        let mut want = vec![0u8; 3 * CLUSTER as usize];
        b.read_at(&mut want, 0).unwrap();
        want[CLUSTER as usize - 50..CLUSTER as usize + 50].fill(0xee);
        assert_eq!(got, want);
        assert_eq!(o.allocated_clusters(), 2);
        // The unaligned tail cluster.
        let end = o.capacity() - 10;
        o.write_at(&[1; 10], end).unwrap();
        let mut tail = [0u8; 10];
        o.read_at(&mut tail, end).unwrap();
        assert_eq!(tail, [1; 10]);
        assert!(o.write_at(&[1; 11], end).is_err());
        // Nothing named in the cache directory.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn persistent_overlay_is_reused_and_checks_its_base() {
        let dir = tempfile::tempdir().unwrap();
        {
            let o = Overlay::persistent(base(), dir.path(), "pkg:disk1").unwrap();
            o.write_at(b"hello", 200_000).unwrap();
            o.flush().unwrap();
        }
        let o = Overlay::persistent(base(), dir.path(), "pkg:disk1").unwrap();
        let mut got = [0u8; 5];
        o.read_at(&mut got, 200_000).unwrap();
        assert_eq!(&got, b"hello");
        let e = Overlay::persistent(base(), dir.path(), "other")
            .err()
            .unwrap();
        assert!(e.to_string().contains("belongs to another disk"), "{e}");
    }
}
