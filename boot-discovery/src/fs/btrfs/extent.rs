//! File contents: EXTENT_DATA items (inline, regular, preallocated) laid
//! over zeros, so holes (no item) read as zeros too, and compressed
//! extents inflated (zlib, LZO, zstd) before the slice the item refers to
//! (`offset`, `num_bytes`) is taken.

use super::le::{le64, Key};
use super::{lzo, BtrfsError, BtrfsFs};
use crate::view::read_vec;
use std::io::Read;
use std::ops::ControlFlow;

pub const EXTENT_DATA: u8 = 108;
const INLINE: u8 = 0;
const PREALLOC: u8 = 2;
const FIXED: usize = 21;
const REGULAR_LEN: usize = 53;
/// btrfs compresses at most 128 KiB per extent; anything claiming to
/// inflate to more than this is hostile.
const MAX_RAM: u64 = 1 << 20;

/// One EXTENT_DATA item, decoded.
struct Extent<'a> {
    ram_bytes: u64,
    compression: u8,
    kind: u8,
    inline: &'a [u8],
    disk_bytenr: u64,
    disk_len: u64,
    offset: u64,
    num_bytes: u64,
}

fn parse(d: &[u8]) -> Result<Extent<'_>, BtrfsError> {
    if d.len() < FIXED {
        return Err(BtrfsError::Corrupt("an extent item is cut short".into()));
    }
    let mut e = Extent {
        ram_bytes: le64(d, 8),
        compression: d[16],
        kind: d[20],
        inline: &d[FIXED..],
        disk_bytenr: 0,
        disk_len: 0,
        offset: 0,
        num_bytes: 0,
    };
    if d[17] != 0 || d[18] != 0 || d[19] != 0 {
        return Err(BtrfsError::Unsupported(
            "an encrypted or encoded extent".into(),
        ));
    }
    if e.kind != INLINE {
        if d.len() < REGULAR_LEN {
            return Err(BtrfsError::Corrupt("an extent item is cut short".into()));
        }
        e.disk_bytenr = le64(d, 21);
        e.disk_len = le64(d, 29);
        e.offset = le64(d, 37);
        e.num_bytes = le64(d, 45);
    }
    Ok(e)
}

impl BtrfsFs {
    /// The first `size` bytes of inode `ino` of `tree`.
    pub(super) fn file_data(&self, tree: u64, ino: u64, size: u64) -> Result<Vec<u8>, BtrfsError> {
        let root = self.fs_tree(tree)?;
        let mut out = vec![0u8; size as usize];
        let mut failed = None;
        let lo = Key::new(ino, EXTENT_DATA, 0);
        let hi = Key::new(ino, EXTENT_DATA, u64::MAX);
        self.blocks().search(root, lo, hi, |(k, d)| {
            if k.offset >= size {
                return ControlFlow::Break(());
            }
            match self.place(k.offset, d, &mut out) {
                Ok(()) => ControlFlow::Continue(()),
                Err(e) => {
                    failed = Some(e);
                    ControlFlow::Break(())
                }
            }
        })?;
        failed.map_or(Ok(out), Err)
    }

    /// Copy the bytes of one extent item at file offset `at` into `out`.
    fn place(&self, at: u64, item: &[u8], out: &mut [u8]) -> Result<(), BtrfsError> {
        let e = parse(item)?;
        let at = at as usize; // < out.len()
        let want = out.len() - at;
        if e.kind == INLINE {
            let data = if e.compression == 0 {
                e.inline.to_vec()
            } else {
                self.inflate(e.compression, e.inline, e.ram_bytes)?
            };
            let n = data.len().min(want);
            out[at..at + n].copy_from_slice(&data[..n]);
            return Ok(());
        }
        if e.kind == PREALLOC || e.disk_bytenr == 0 {
            return Ok(()); // zeros already
        }
        let n = e.num_bytes.min(want as u64) as usize;
        if e.compression == 0 {
            let start = e
                .disk_bytenr
                .checked_add(e.offset)
                .ok_or_else(|| BtrfsError::Corrupt("extent address overflows".into()))?;
            let data = self.read_logical(start, n)?;
            out[at..at + n].copy_from_slice(&data);
            return Ok(());
        }
        if e.disk_len > MAX_RAM {
            return Err(BtrfsError::Corrupt(format!(
                "a compressed extent of {} bytes",
                e.disk_len
            )));
        }
        let raw = self.read_logical(e.disk_bytenr, e.disk_len as usize)?;
        let data = self.inflate(e.compression, &raw, e.ram_bytes)?;
        let from = e.offset.min(data.len() as u64) as usize;
        let m = n.min(data.len() - from);
        out[at..at + m].copy_from_slice(&data[from..from + m]);
        Ok(())
    }

    fn read_logical(&self, logical: u64, len: usize) -> Result<Vec<u8>, BtrfsError> {
        let phys = self.map.map(logical, len as u64)?;
        read_vec(&*self.src, phys, len)
            .map_err(|e| BtrfsError::Io(format!("extent at {logical:#x}: {e}")))
    }

    /// Decompress to `ram_bytes` (at most [`MAX_RAM`]).
    fn inflate(&self, how: u8, data: &[u8], ram_bytes: u64) -> Result<Vec<u8>, BtrfsError> {
        if ram_bytes > MAX_RAM {
            return Err(BtrfsError::Corrupt(format!(
                "a compressed extent inflating to {ram_bytes} bytes"
            )));
        }
        let limit = ram_bytes as usize;
        let mut out = Vec::new();
        let res = match how {
            1 => flate2::read::ZlibDecoder::new(data)
                .take(ram_bytes)
                .read_to_end(&mut out)
                .map(drop)
                .map_err(|e| e.to_string()),
            2 => return lzo::decompress(data, self.sb.sector_size as usize, limit),
            3 if zstd_window(data).is_none_or(|w| w > MAX_RAM) => {
                return Err(BtrfsError::Corrupt(
                    "a zstd extent with a missing or oversized window".into(),
                ))
            }
            3 => ruzstd::decoding::StreamingDecoder::new(data)
                .map_err(|e| e.to_string())
                .and_then(|d| {
                    d.take(ram_bytes)
                        .read_to_end(&mut out)
                        .map(drop)
                        .map_err(|e| e.to_string())
                }),
            n => return Err(BtrfsError::Unsupported(format!("compression type {n}"))),
        };
        res.map_err(|e| BtrfsError::Corrupt(format!("compressed extent: {e}")))?;
        Ok(out)
    }
}

/// The window a zstd frame asks the decoder to keep (its whole content
/// for a single-segment frame). btrfs writes at most 128 KiB windows; a
/// hostile frame could ask ruzstd to reserve up to 100 MiB.
fn zstd_window(f: &[u8]) -> Option<u64> {
    if f.get(..4)? != [0x28, 0xb5, 0x2f, 0xfd] {
        return None;
    }
    let fhd = *f.get(4)?;
    let single = fhd & 0x20 != 0;
    if !single {
        let wd = *f.get(5)?;
        let log = 10 + u32::from(wd >> 3);
        let base = 1u64 << log;
        return Some(base + (base >> 3) * u64::from(wd & 7));
    }
    let did = [0, 1, 2, 4][usize::from(fhd & 3)];
    let at = 5 + did;
    let fcs = match fhd >> 6 {
        0 => u64::from(*f.get(at)?),
        1 => u64::from(u16::from_le_bytes(f.get(at..at + 2)?.try_into().ok()?)) + 256,
        2 => u64::from(u32::from_le_bytes(f.get(at..at + 4)?.try_into().ok()?)),
        _ => u64::from_le_bytes(f.get(at..at + 8)?.try_into().ok()?),
    };
    Some(fcs)
}

#[cfg(test)]
mod tests {
    use super::zstd_window;

    #[test]
    fn zstd_windows() {
        let magic = [0x28, 0xb5, 0x2f, 0xfd];
        // Window descriptor: exponent 7, mantissa 0 -> 128 KiB.
        assert_eq!(
            zstd_window(&[&magic[..], &[0x00, 7 << 3]].concat()),
            Some(128 << 10)
        );
        // Single segment with a 4-byte content size: the window is the content.
        let fcs = (1u32 << 30).to_le_bytes();
        assert_eq!(
            zstd_window(&[&magic[..], &[0xa0], &fcs].concat()),
            Some(1 << 30)
        );
        assert_eq!(zstd_window(&[&magic[..], &[0x20, 9]].concat()), Some(9));
        assert_eq!(zstd_window(b"not zstd"), None);
        assert_eq!(zstd_window(&magic), None);
    }
}
