//! A fuzz input as a mostly empty image file: a length and patches of
//! bytes over zeros. VHDX puts its structures at 64 KiB to 3 MiB and qemu
//! writes an 8 MiB file for the smallest disk; as patches a seed is a few
//! KiB, so the fuzzer mutates structures rather than copying megabytes of
//! zeros. Shared by the `vhd` and `vhdx` targets and
//! `disk-image/tests/fuzz_seeds.rs`; `fuzz/sparse_seed.py` writes seeds.
//!
//! The format is decoded by `sparse_patches.rs`; the image length is cut
//! to [`MAX_LEN`].

#![allow(dead_code)]

#[path = "sparse_patches.rs"]
mod sparse_patches;

use disk_image::ByteRange;
use std::io;

/// Images are at most this long (qemu's smallest VHDX is 8 MiB).
pub const MAX_LEN: u64 = 64 << 20;

pub struct SparseImage(sparse_patches::Patches);

impl SparseImage {
    pub fn decode(data: &[u8]) -> Option<SparseImage> {
        sparse_patches::Patches::decode(data, MAX_LEN).map(SparseImage)
    }
}

impl ByteRange for SparseImage {
    fn len(&self) -> u64 {
        self.0.len
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        offset
            .checked_add(buf.len() as u64)
            .filter(|&e| e <= self.0.len)
            .ok_or_else(|| io::Error::new(io::ErrorKind::UnexpectedEof, "read past the end"))?;
        self.0.read(buf, offset);
        Ok(())
    }

    fn name(&self) -> String {
        "fuzz image".into()
    }
}
