//! A snapshot's disk layer: what the guest had written above the package
//! at the snapshot moment, kept read-only so any number of clones can
//! start from it, each with its own ephemeral overlay on top.
//!
//! [`Overlay::freeze`] writes every cluster held by an overlay or by the
//! frozen layers below it (a clone snapshotted again) into a directory in
//! the persistent layout (`overlay.data`, sparse, and `overlay.map`); the
//! package itself is never copied. The caller must keep the guest from
//! writing meanwhile (the snapshot pauses the disk devices).
//! [`Overlay::frozen`] opens such a layer read-only; [`Overlay::ephemeral_over`]
//! puts a clone's overlay on it.

use super::{map_header, Overlay, CLUSTER, DATA_FILE, MAP_FILE, MAP_HEADER, MAX_FINGERPRINT};
use crate::error::DiskError;
use block_source::BlockSource;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::{Arc, Mutex};

/// The files of a frozen layer, as [`Overlay::freeze`] writes them.
pub const FROZEN_FILES: [&str; 2] = [DATA_FILE, MAP_FILE];

impl Overlay {
    /// Whether this overlay or a frozen layer below it holds `cluster`.
    fn holds(&self, cluster: u64) -> bool {
        self.has(cluster) || self.lower.as_ref().is_some_and(|l| l.holds(cluster))
    }

    /// Write what this overlay (and the frozen layers below it) hold into
    /// `dir` (created; must not hold a layer yet), fsync'ed. Returns the
    /// bytes of guest data written.
    pub fn freeze(&self, dir: &Path, fingerprint: &str) -> Result<u64, DiskError> {
        let fp = fingerprint.as_bytes();
        if fp.len() > MAX_FINGERPRINT {
            return Err(DiskError::Overlay {
                path: dir.into(),
                what: "base fingerprint is too long".into(),
            });
        }
        std::fs::create_dir_all(dir)
            .map_err(|e| DiskError::local(dir, "cannot create the disk layer directory", e))?;
        let data_path = dir.join(DATA_FILE);
        let create = |p: &Path| {
            OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .open(p)
                .map_err(|e| DiskError::local(p, "cannot create the disk layer file", e))
        };
        let data = create(&data_path)?;
        let clusters = Self::clusters(self.capacity);
        let mut bitmap = vec![0u8; clusters.div_ceil(8) as usize];
        let mut buf = vec![0u8; CLUSTER as usize];
        let mut written = 0u64;
        for c in (0..clusters).filter(|&c| self.holds(c)) {
            let start = c * CLUSTER;
            let len = CLUSTER.min(self.capacity - start) as usize;
            self.read_at(&mut buf[..len], start)
                .map_err(|e| DiskError::local(&self.place, "cannot read the overlay", e))?;
            data.write_all_at(&buf[..len], start)
                .map_err(|e| DiskError::local(&data_path, "cannot write the disk layer", e))?;
            bitmap[(c / 8) as usize] |= 1 << (c % 8);
            written += len as u64;
        }
        let map_path = dir.join(MAP_FILE);
        data.set_len(self.capacity)
            .and_then(|_| data.sync_all())
            .map_err(|e| DiskError::local(&data_path, "cannot write the disk layer", e))?;
        let map = create(&map_path)?;
        map.write_all_at(&map_header(self.capacity, fp), 0)
            .and_then(|_| map.write_all_at(&bitmap, MAP_HEADER))
            .and_then(|_| map.sync_all())
            .map_err(|e| DiskError::local(&map_path, "cannot write the disk layer map", e))?;
        Ok(written)
    }

    /// Open a layer [`Overlay::freeze`] wrote, over `base`, read-only.
    /// `fingerprint` must be the one it was frozen with.
    pub fn frozen(
        base: Arc<dyn BlockSource>,
        dir: &Path,
        fingerprint: &str,
    ) -> Result<Self, DiskError> {
        let capacity = base.capacity();
        let map_path = dir.join(MAP_FILE);
        let data_path = dir.join(DATA_FILE);
        let map = File::open(&map_path)
            .map_err(|e| DiskError::local(&map_path, "cannot open the snapshot's disk layer", e))?;
        let bits = Self::load_map(&map, &map_path, capacity, fingerprint.as_bytes())?;
        let data = File::open(&data_path).map_err(|e| {
            DiskError::local(&data_path, "cannot open the snapshot's disk layer", e)
        })?;
        let len = data
            .metadata()
            .map_err(|e| DiskError::local(&data_path, "cannot read the disk layer's size", e))?
            .len();
        if len < capacity {
            return Err(DiskError::Overlay {
                path: data_path,
                what: format!("the disk layer is cut short ({len} of {capacity} bytes)"),
            });
        }
        Ok(Overlay {
            base,
            capacity,
            data,
            map: None,
            bits,
            alloc: Mutex::new(()),
            place: dir.to_path_buf(),
            _named: None,
            lower: None,
            read_only: true,
        })
    }

    /// A clone's ephemeral overlay over a snapshot's frozen layer.
    pub fn ephemeral_over(lower: Arc<Overlay>, cache_dir: &Path) -> Result<Self, DiskError> {
        let mut top = Overlay::ephemeral(lower.clone(), cache_dir)?;
        top.lower = Some(lower);
        Ok(top)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use block_source::MemorySource;

    fn base() -> Arc<dyn BlockSource> {
        let data: Vec<u8> = (0..(1u32 << 20) + 1000).map(|i| (i % 239) as u8).collect();
        Arc::new(MemorySource::new(data, true))
    }

    fn read(o: &dyn BlockSource, at: u64, n: usize) -> Vec<u8> {
        let mut v = vec![0u8; n];
        o.read_at(&mut v, at).unwrap();
        v
    }

    #[test]
    fn clones_share_a_frozen_layer_and_keep_their_own_writes() {
        let cache = tempfile::tempdir().unwrap();
        let snap = tempfile::tempdir().unwrap();
        let running = Overlay::ephemeral(base(), cache.path()).unwrap();
        running.write_at(b"at snapshot", 70_000).unwrap();
        let layer = snap.path().join("disk0");
        assert_eq!(running.freeze(&layer, "pkg:d0").unwrap(), CLUSTER);
        // The source writes on; the layer keeps the snapshot moment.
        running.write_at(b"after it!!!", 70_000).unwrap();
        let frozen = Arc::new(Overlay::frozen(base(), &layer, "pkg:d0").unwrap());
        assert!(frozen.is_read_only());
        assert!(frozen.write_at(b"x", 0).is_err());
        let one = Overlay::ephemeral_over(frozen.clone(), cache.path()).unwrap();
        let two = Overlay::ephemeral_over(frozen.clone(), cache.path()).unwrap();
        one.write_at(b"clone one", 500_000).unwrap();
        assert_eq!(read(&one, 70_000, 11), b"at snapshot");
        assert_eq!(read(&two, 70_000, 11), b"at snapshot");
        assert_eq!(read(&one, 500_000, 9), b"clone one");
        assert_eq!(read(&two, 500_000, 9), read(base().as_ref(), 500_000, 9));
        // Snapshotting a clone takes the layer below too.
        let again = snap.path().join("again");
        assert_eq!(one.freeze(&again, "pkg:d0").unwrap(), 2 * CLUSTER);
        let f2 = Overlay::frozen(base(), &again, "pkg:d0").unwrap();
        assert_eq!(read(&f2, 70_000, 11), b"at snapshot");
        assert_eq!(read(&f2, 500_000, 9), b"clone one");
        let whole = read(&f2, 0, f2.capacity() as usize);
        assert_eq!(whole, read(&one, 0, one.capacity() as usize));
    }

    #[test]
    fn a_wrong_or_damaged_layer_is_refused() {
        let cache = tempfile::tempdir().unwrap();
        let snap = tempfile::tempdir().unwrap();
        let o = Overlay::ephemeral(base(), cache.path()).unwrap();
        o.write_at(b"x", 0).unwrap();
        let layer = snap.path().join("d");
        o.freeze(&layer, "pkg:a").unwrap();
        assert!(
            o.freeze(&layer, "pkg:a").is_err(),
            "an existing layer is kept"
        );
        let e = Overlay::frozen(base(), &layer, "pkg:b").err().unwrap();
        assert!(e.to_string().contains("belongs to another disk"), "{e}");
        let data = File::options()
            .write(true)
            .open(layer.join(DATA_FILE))
            .unwrap();
        data.set_len(100).unwrap();
        let e = Overlay::frozen(base(), &layer, "pkg:a").err().unwrap();
        assert!(e.to_string().contains("cut short"), "{e}");
        std::fs::remove_file(layer.join(MAP_FILE)).unwrap();
        assert!(Overlay::frozen(base(), &layer, "pkg:a").is_err());
    }
}
