//! A fuzz input as a mostly empty volume: a length and patches of bytes
//! over zeros, read in place (no image-sized buffer). mkfs.btrfs writes
//! its superblock at 64 KiB and its trees megabytes further in, so a seed
//! made by `fuzz/sparse_seed.py` (repository top) is ~100 KiB where the
//! image is 22 MiB, and the fuzzer mutates structures rather than zeros.
//! Shared by the `btrfs` target and `tests/fuzz_seeds.rs`.
//!
//! The format is decoded by `fuzz/harness/sparse_patches.rs` (shared with
//! the disk-format targets).

#![allow(dead_code)]

#[path = "../../fuzz/harness/sparse_patches.rs"]
mod sparse_patches;

use block_source::{check_range, BlockSource};
use std::io;

pub struct SparseVolume {
    patches: sparse_patches::Patches,
    /// Give every block-sized read (a power of two from 4 KiB to 64 KiB)
    /// a valid btrfs CRC-32C, so mutated tree blocks reach the parsers
    /// instead of stopping at the checksum.
    pub fix_csums: bool,
}

impl SparseVolume {
    pub fn decode(data: &[u8]) -> Option<SparseVolume> {
        Some(SparseVolume {
            patches: sparse_patches::Patches::decode(data, u64::MAX)?,
            fix_csums: false,
        })
    }
}

impl BlockSource for SparseVolume {
    fn capacity(&self) -> u64 {
        self.patches.len
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        check_range(self.patches.len, offset, buf.len())?;
        self.patches.read(buf, offset);
        if self.fix_csums && buf.len().is_power_of_two() && (4096..=65536).contains(&buf.len()) {
            let c = crc::Crc::<u32>::new(&crc::CRC_32_ISCSI).checksum(&buf[32..]);
            buf[..4].copy_from_slice(&c.to_le_bytes());
        }
        Ok(())
    }
}

/// What the `btrfs` target does with one input: open the volume as
/// discovery would, read the paths a boot reads, list the root; once with
/// the checksums as stored (compressed data intact), once with them made
/// valid (mutated tree blocks reach the parsers).
pub fn exercise(data: &[u8]) {
    for fix in [false, true] {
        if let Some(mut vol) = SparseVolume::decode(data) {
            vol.fix_csums = fix;
            read_all(std::sync::Arc::new(vol));
        }
    }
}

fn read_all(vol: std::sync::Arc<dyn BlockSource>) {
    use boot_discovery::fs::{probe, BtrfsFs, Probe};
    if let Probe::Fs(fs) = probe(vol.clone()) {
        let _ = fs.list_dir("/");
        for p in [
            "/boot/grub/grub.cfg",
            "/vmlinuz",
            "/@/boot/vmlinuz-6.1",
            "/boot/big.txt",
        ] {
            let _ = fs.read_file(p, 1 << 20);
        }
        let _ = fs.read_link("/vmlinuz");
        let _ = fs.list_dir("/boot");
        let _ = fs.root_prefixes(Some("subvol=@"));
        let _ = fs.root_prefixes(None);
    }
    if let Ok(fs) = BtrfsFs::open(vol) {
        let _ = fs.subvolumes();
    }
}
