//! The `gzip` target's body, shared with `ovf-loader/tests/fuzz_seeds.rs`:
//! an `ovf:compression="gzip"` disk opened the way `ovf_loader::disks`
//! does — the inflate limit lowered to what the disk's declared capacity
//! allows ([`ovf_loader::disks::bounded_by_capacity`]), the stream inflated
//! into an unnamed cache file ([`disk_image::gzip::inflate_to_cache`],
//! checked to stay under the limit), the result sniffed and opened — then
//! read.
//!
//! Input: the declared capacity in KiB (u32, little-endian), then the
//! compressed file. The cache's own limit is 4 MiB here (ovf-run's is
//! 4 TiB) so that bombs are refused quickly.

#![allow(dead_code)]

use disk_image::{BlockSource, ByteRange, CacheDir, MemRange, NoExtents};
use std::path::PathBuf;

/// The cache's general limit in the fuzz runs.
pub const CACHE_LIMIT: u64 = 4 << 20;

fn cache_dir() -> PathBuf {
    std::env::temp_dir().join("ovf-run-fuzz-gzip")
}

pub fn run(data: &[u8]) {
    let Some(head) = data.get(..4) else { return };
    let capacity = u64::from(u32::from_le_bytes(head.try_into().unwrap())) << 10;
    let mut base = CacheDir::new(cache_dir());
    base.max_inflated_bytes = CACHE_LIMIT;
    let cache = ovf_loader::disks::bounded_by_capacity(&base, capacity);
    let limit = cache.max_inflated_bytes;
    assert!(limit <= CACHE_LIMIT, "the capacity raised the limit");
    assert!(capacity == 0 || limit >= capacity.min(CACHE_LIMIT));
    let input = MemRange::new(data[4..].to_vec(), "fuzz.img.gz");
    let Ok(inflated) = disk_image::gzip::inflate_to_cache(&input, &cache) else {
        return;
    };
    assert!(
        inflated.len() <= limit,
        "inflated {} > {limit}",
        inflated.len()
    );
    // Then, as open_declared does, the inflated image is sniffed and
    // opened (gzip inside gzip is refused there; skipped here).
    let mut head = vec![0u8; inflated.len().min(1024) as usize];
    if inflated.read_at(&mut head, 0).is_err()
        || disk_image::sniff(&head) == disk_image::DiskFormat::Gzip
    {
        return;
    }
    if let Ok(src) = disk_image::open_image(Box::new(inflated), None, &NoExtents, &cache) {
        read_some(&*src);
    }
}

fn read_some(src: &dyn BlockSource) {
    let cap = src.capacity();
    let mut buf = vec![0u8; 64 << 10];
    for off in [0, cap / 2, cap.saturating_sub(buf.len() as u64)] {
        let n = (cap - off.min(cap)).min(buf.len() as u64) as usize;
        let _ = src.read_at(&mut buf[..n], off);
    }
}
