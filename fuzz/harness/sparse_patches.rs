//! The sparse fuzz-input format that `fuzz/sparse_seed.py` writes, decoded
//! once for every harness that reads it (`sparse_image.rs` for the disk
//! formats, `boot-discovery/fuzz/sparse.rs` for btrfs): a length and
//! patches of bytes over zeros, read in place (no image-sized buffer).
//!
//! Layout (little-endian): the length (u32), then records to the end of
//! the input: offset u32, length u16, then that many bytes (fewer if the
//! input ends). Later records overwrite earlier ones; bytes past the
//! length are dropped.

#![allow(dead_code)]

pub struct Patches {
    pub len: u64,
    patches: Vec<(u64, Vec<u8>)>,
}

impl Patches {
    /// Decode `data`, its length cut to `max_len`.
    pub fn decode(data: &[u8], max_len: u64) -> Option<Patches> {
        let len = u64::from(u32::from_le_bytes(data.get(..4)?.try_into().ok()?)).min(max_len);
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
        Some(Patches { len, patches })
    }

    /// Fill `buf` with the bytes at `offset`: zeros, then every patch in
    /// order. The caller has checked that the range lies within `len`.
    pub fn read(&self, buf: &mut [u8], offset: u64) {
        buf.fill(0);
        let end = offset + buf.len() as u64;
        for (at, bytes) in &self.patches {
            let (from, to) = (offset.max(*at), end.min(at + bytes.len() as u64));
            if from < to {
                let dst = (from - offset) as usize..(to - offset) as usize;
                let src = (from - at) as usize..(to - at) as usize;
                buf[dst].copy_from_slice(&bytes[src]);
            }
        }
    }
}
