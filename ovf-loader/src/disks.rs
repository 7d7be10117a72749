//! A package's disks as block sources, read in place.
//!
//! The package layer knows where a disk's bytes are (a tar member, files
//! beside a descriptor, chunks); `disk-image` knows how to read the format.
//! This module joins the two: a [`FileLocation`] becomes a [`ByteRange`],
//! and VMDK extent names are resolved inside the package with the same
//! escape checks as every other name.

use crate::machine::DiskSpec;
use crate::package::{FileLocation, Package, PackageError};
use disk_image::{BlockSource, ByteRange, CacheDir, DiskError, ExtentResolver};
use std::io;
use std::os::unix::fs::FileExt;
use std::sync::Arc;

/// A package file (possibly chunked) as a byte range for the format readers.
pub struct PackageRange {
    location: FileLocation,
    label: String,
}

impl PackageRange {
    pub fn new(pkg: &Package, location: FileLocation) -> Self {
        let label = match pkg.kind {
            crate::package::PackageKind::Ova => {
                format!("{} (member {})", pkg.path.display(), location.name)
            }
            crate::package::PackageKind::Ovf => location
                .extents
                .first()
                .map(|e| e.path.display().to_string())
                .unwrap_or_else(|| location.name.clone()),
        };
        PackageRange { location, label }
    }
}

impl ByteRange for PackageRange {
    fn len(&self) -> u64 {
        self.location.len()
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        if let [only] = self.location.extents.as_slice() {
            // The common case: one member, one pread.
            let end = offset
                .checked_add(buf.len() as u64)
                .filter(|&e| e <= only.len);
            if end.is_none() {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("{}: read past the end", self.label),
                ));
            }
            return only.file.read_exact_at(buf, only.offset + offset);
        }
        self.location.read_at(buf, offset)
    }

    fn name(&self) -> String {
        self.label.clone()
    }
}

/// Resolves a VMDK descriptor's extent names next to the descriptor, inside the package.
struct PackageExtents<'a> {
    pkg: &'a Package,
    /// Folder of the descriptor inside the package (`""` at the top).
    dir: String,
}

impl ExtentResolver for PackageExtents<'_> {
    fn resolve(&self, name: &str) -> io::Result<Box<dyn ByteRange>> {
        let joined = if self.dir.is_empty() {
            name.to_string()
        } else {
            format!("{}/{name}", self.dir)
        };
        let extent = self
            .pkg
            .locate_name(&joined)
            .map_err(|e| io::Error::new(io::ErrorKind::PermissionDenied, e.to_string()))?
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::NotFound,
                    format!("extent file '{name}' is not in the package"),
                )
            })?;
        let location = FileLocation {
            name: joined,
            extents: vec![extent],
            gzip: false,
        };
        Ok(Box::new(PackageRange::new(self.pkg, location)))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DiskOpenError {
    #[error(transparent)]
    Package(#[from] PackageError),
    #[error(transparent)]
    Image(#[from] DiskError),
}

/// A blank disk: zeros until written (writes go to the overlay above it).
pub struct BlankDisk {
    capacity: u64,
}

impl BlockSource for BlankDisk {
    fn capacity(&self) -> u64 {
        self.capacity
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        block_source::check_range(self.capacity, offset, buf.len())?;
        buf.fill(0);
        Ok(())
    }
    fn data_range(&self, _offset: u64) -> io::Result<Option<(u64, u64)>> {
        Ok(None)
    }
}

/// Open a disk's image read-only, straight from the package.
/// `cache` receives a decompressed copy only for gzip-compressed files.
/// Disagreements between the descriptor and the image are logged as
/// warnings ([`open_disk_checked`] returns them instead).
pub fn open_disk(
    pkg: &Package,
    disk: &DiskSpec,
    cache: &CacheDir,
) -> Result<Arc<dyn BlockSource>, DiskOpenError> {
    let (source, warnings) = open_disk_checked(pkg, disk, cache)?;
    for w in warnings {
        tracing::warn!("{w}");
    }
    Ok(source)
}

/// Open a disk's image, with what the descriptor declares about it
/// (`ovf:format`, `ovf:capacity`) compared with the content: a
/// disagreement is a warning, and the content wins.
pub fn open_disk_checked(
    pkg: &Package,
    disk: &DiskSpec,
    cache: &CacheDir,
) -> Result<(Arc<dyn BlockSource>, Vec<String>), DiskOpenError> {
    let Some(file_ref) = disk.file_ref.as_deref() else {
        let blank: Arc<dyn BlockSource> = Arc::new(BlankDisk {
            capacity: disk.capacity_bytes,
        });
        return Ok((blank, Vec::new()));
    };
    let location = pkg.locate(file_ref)?;
    let dir = location
        .name
        .rsplit_once('/')
        .map(|(d, _)| d.to_string())
        .unwrap_or_default();
    let range = PackageRange::new(pkg, location);
    let resolver = PackageExtents { pkg, dir };
    let cache = bounded_by_capacity(cache, disk.capacity_bytes);
    let opened =
        disk_image::open_declared(Box::new(range), disk.format.as_deref(), &resolver, &cache)?;
    let mut warnings = opened.warnings;
    let capacity = opened.source.capacity();
    if disk.capacity_bytes != 0 && disk.capacity_bytes != capacity {
        warnings.push(format!(
            "disk {}: the descriptor gives a capacity of {} bytes but the {} image holds {capacity}; \
             the image's capacity is used",
            disk.disk_id,
            disk.capacity_bytes,
            opened.format.name()
        ));
    }
    Ok((opened.source, warnings))
}

/// A gzip-compressed disk inflates to an image of the disk: its declared
/// capacity, plus the image format's own metadata (grain or L2 tables,
/// headers: well under 1/64 of the capacity) and 64 MiB of slack. Known
/// before inflating, so a small "gzip bomb" stops there, not at the cache's
/// general limit.
pub fn bounded_by_capacity(cache: &CacheDir, capacity: u64) -> CacheDir {
    if capacity == 0 {
        // Not declared: only the cache's general limit applies.
        return cache.clone();
    }
    let allowed = capacity
        .saturating_add(capacity / 64)
        .saturating_add(64 << 20);
    let mut bounded = cache.clone();
    if allowed < bounded.max_inflated_bytes {
        bounded.max_inflated_bytes = allowed;
        bounded.limit_reason = "the disk's declared capacity plus room for image metadata";
    }
    bounded
}
