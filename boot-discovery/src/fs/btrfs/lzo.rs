//! LZO as btrfs stores it, with a bounded LZO1X decoder.
//!
//! btrfs' framing (the kernel's `fs/btrfs/lzo.c`): a little-endian u32
//! with the total compressed length (header included), then segments, each
//! a u32 length and that many bytes of LZO1X data decompressing to at most
//! one sector. A segment header never crosses a sector boundary: when fewer
//! than 4 bytes are left in the sector, they are padding and the header
//! starts at the next sector.
//!
//! The LZO1X decoder follows the kernel's `lzo1x_decompress_safe`: every
//! input read, back-reference and output write is checked, output stops at
//! a caller-given limit. It is here rather than from a crate because the
//! pure-Rust decoder on crates.io (`lzokay-native` 0.1) panics on hostile
//! input (unchecked subtractions and indexing) and the others are GPL
//! (`lzo1x`, `minilzo-rs`) or C.

use super::le::le32;
use super::BtrfsError;

fn bad(what: &str) -> BtrfsError {
    BtrfsError::Corrupt(format!("LZO data: {what}"))
}

/// Decompress a btrfs LZO extent to at most `limit` bytes.
pub fn decompress(data: &[u8], sector: usize, limit: usize) -> Result<Vec<u8>, BtrfsError> {
    if data.len() < 4 {
        return Err(bad("shorter than its header"));
    }
    let total = (le32(data, 0) as usize).min(data.len());
    let mut out = Vec::new();
    let mut pos = 4usize;
    while pos < total && out.len() < limit {
        if sector - pos % sector < 4 {
            pos = pos.next_multiple_of(sector);
            if pos >= total {
                break;
            }
        }
        let seg = data
            .get(pos..pos + 4)
            .map(|b| le32(b, 0) as usize)
            .ok_or_else(|| bad("segment header cut short"))?;
        pos += 4;
        let body = pos
            .checked_add(seg)
            .and_then(|end| data.get(pos..end))
            .ok_or_else(|| bad("segment longer than the extent"))?;
        pos += seg;
        let room = limit - out.len();
        lzo1x(body, &mut out, room.min(sector))?;
    }
    Ok(out)
}

/// Input cursor with checked reads.
struct In<'a> {
    b: &'a [u8],
    p: usize,
}

impl In<'_> {
    fn byte(&mut self) -> Result<usize, BtrfsError> {
        let v = *self.b.get(self.p).ok_or_else(|| bad("input overrun"))?;
        self.p += 1;
        Ok(v as usize)
    }
    fn le16(&mut self) -> Result<usize, BtrfsError> {
        Ok(self.byte()? | self.byte()? << 8)
    }
    /// A run of zero bytes counts 255 each, then a final non-zero byte.
    fn long_len(&mut self, base: usize) -> Result<usize, BtrfsError> {
        let mut n = base;
        loop {
            match self.byte()? {
                0 => n = n.checked_add(255).ok_or_else(|| bad("length overflow"))?,
                b => return Ok(n + b),
            }
        }
    }
    fn literals(&mut self, out: &mut Vec<u8>, n: usize, cap: usize) -> Result<(), BtrfsError> {
        let src = self
            .b
            .get(self.p..self.p + n)
            .ok_or_else(|| bad("literal run past the input"))?;
        if n > cap {
            return Err(bad("output larger than allowed"));
        }
        out.extend_from_slice(src);
        self.p += n;
        Ok(())
    }
}

/// Append the decompression of one LZO1X stream to `out`, adding at most
/// `room` bytes.
pub fn lzo1x(input: &[u8], out: &mut Vec<u8>, room: usize) -> Result<(), BtrfsError> {
    let start = out.len();
    let cap = |out: &Vec<u8>| room - (out.len() - start);
    let mut i = In { b: input, p: 0 };
    let mut state = 0usize;
    let first = *input.first().ok_or_else(|| bad("empty segment"))? as usize;
    if first > 17 {
        i.p = 1;
        let t = first - 17;
        i.literals(out, t, cap(out))?;
        state = if t < 4 { t } else { 4 };
    }
    loop {
        let t = i.byte()?;
        let (dist, len, next);
        if t < 16 {
            if state == 0 {
                let n = if t == 0 { i.long_len(15)? } else { t } + 3;
                i.literals(out, n, cap(out))?;
                state = 4;
                continue;
            }
            next = t & 3;
            let h = i.byte()?;
            (dist, len) = if state != 4 {
                ((t >> 2) + (h << 2) + 1, 2)
            } else {
                ((t >> 2) + (h << 2) + 2049, 3)
            };
        } else if t >= 64 {
            next = t & 3;
            dist = ((t >> 2) & 7) + (i.byte()? << 3) + 1;
            len = (t >> 5) + 1;
        } else if t >= 32 {
            len = if t & 31 == 0 { i.long_len(31)? } else { t & 31 } + 2;
            let d = i.le16()?;
            dist = (d >> 2) + 1;
            next = d & 3;
        } else {
            len = if t & 7 == 0 { i.long_len(7)? } else { t & 7 } + 2;
            let d = i.le16()?;
            let far = ((t & 8) << 11) + (d >> 2);
            if far == 0 {
                return Ok(()); // end of stream
            }
            dist = far + 0x4000;
            next = d & 3;
        }
        copy_match(out, start, dist, len, cap(out))?;
        i.literals(out, next, cap(out))?;
        state = next;
    }
}

/// Copy `len` bytes from `dist` back, byte by byte (they may overlap).
fn copy_match(
    out: &mut Vec<u8>,
    start: usize,
    dist: usize,
    len: usize,
    cap: usize,
) -> Result<(), BtrfsError> {
    if dist > out.len() - start {
        return Err(bad("back-reference before the start"));
    }
    if len > cap {
        return Err(bad("output larger than allowed"));
    }
    let from = out.len() - dist;
    for k in 0..len {
        out.push(out[from + k]);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literal_run_then_end() {
        // 5 literals (first byte 17+5), then the end marker (M4, distance 0).
        let s = [22, b'h', b'e', b'l', b'l', b'o', 0x11, 0, 0];
        let mut out = Vec::new();
        lzo1x(&s, &mut out, 4096).unwrap();
        assert_eq!(out, b"hello");
        assert!(lzo1x(&s, &mut Vec::new(), 3).is_err());
    }

    #[test]
    fn hostile_streams_are_errors() {
        for s in [
            &[][..],
            &[0x40, 0xff],
            &[0x11],
            &[0, 0, 0],
            &[0x20, 0, 0, 0],
        ] {
            assert!(lzo1x(s, &mut Vec::new(), 4096).is_err(), "{s:?}");
        }
        assert!(decompress(&[9, 0, 0, 0, 99, 0, 0, 0, 1], 4096, 4096).is_err());
    }
}
