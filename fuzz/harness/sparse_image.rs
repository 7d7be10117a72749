//! A fuzz input as a mostly empty image file: a length and patches of
//! bytes over zeros. VHDX puts its structures at 64 KiB to 3 MiB and qemu
//! writes an 8 MiB file for the smallest disk; as patches a seed is a few
//! KiB, so the fuzzer mutates structures rather than copying megabytes of
//! zeros. Shared by the `vhd` and `vhdx` targets and
//! `disk-image/tests/fuzz_seeds.rs`; `fuzz/sparse_seed.py` writes seeds.
//!
//! Layout (little-endian): the image length (u32, cut to [`MAX_LEN`]), then
//! records to the end of the input: offset u32, length u16, then that many
//! bytes (fewer if the input ends). Later records overwrite earlier ones;
//! bytes past the image length are dropped.

#![allow(dead_code)]

use disk_image::ByteRange;
use std::io;

/// Images are at most this long (qemu's smallest VHDX is 8 MiB).
pub const MAX_LEN: u64 = 64 << 20;

pub struct SparseImage {
    len: u64,
    patches: Vec<(u64, Vec<u8>)>,
}

impl SparseImage {
    pub fn decode(data: &[u8]) -> Option<SparseImage> {
        let len = u64::from(u32::from_le_bytes(data.get(..4)?.try_into().ok()?)).min(MAX_LEN);
        let mut patches = Vec::new();
        let mut rest = &data[4..];
        while rest.len() >= 6 {
            let off = u64::from(u32::from_le_bytes(rest[..4].try_into().ok()?));
            let n = usize::from(u16::from_le_bytes([rest[4], rest[5]]));
            let bytes = &rest[6..6 + n.min(rest.len() - 6)];
            rest = &rest[6 + bytes.len()..];
            let keep = len.saturating_sub(off).min(bytes.len() as u64) as usize;
            if keep > 0 {
                patches.push((off, bytes[..keep].to_vec()));
            }
        }
        Some(SparseImage { len, patches })
    }
}

impl ByteRange for SparseImage {
    fn len(&self) -> u64 {
        self.len
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        let end = offset
            .checked_add(buf.len() as u64)
            .filter(|&e| e <= self.len)
            .ok_or_else(|| io::Error::new(io::ErrorKind::UnexpectedEof, "read past the end"))?;
        buf.fill(0);
        for (at, bytes) in &self.patches {
            let p_end = at + bytes.len() as u64;
            if p_end <= offset || *at >= end {
                continue;
            }
            let from = offset.max(*at);
            let to = end.min(p_end);
            let dst = (from - offset) as usize;
            let src = (from - at) as usize;
            let n = (to - from) as usize;
            buf[dst..dst + n].copy_from_slice(&bytes[src..src + n]);
        }
        Ok(())
    }

    fn name(&self) -> String {
        "fuzz image".into()
    }
}
