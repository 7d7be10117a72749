//! The cpio "newc" format (`070701`, and `070702` with checksums) as the
//! kernel unpacks it: a 110-byte ASCII-hex header, the NUL-terminated name
//! padded to 4 bytes, the data padded to 4 bytes, until `TRAILER!!!`.
//!
//! Hand-written rather than a crate: the `cpio` crate reads through an
//! unbounded `Read` with no caps on names or sizes, and the format is two
//! small functions. Reading streams (data not kept is skipped), so memory is
//! bounded by what the caller keeps, not by the archive.

use super::InitramfsError;
use std::io::{self, Read, Write};

pub const HEADER_LEN: usize = 110;
/// PATH_MAX: the kernel refuses longer names too.
pub const MAX_NAME: usize = 4096;
pub const TRAILER: &str = "TRAILER!!!";

/// One parsed header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub mode: u32,
    pub size: u32,
    pub name: String,
}

/// `S_IFMT` bits.
pub const S_IFMT: u32 = 0o170000;
pub const S_IFDIR: u32 = 0o040000;
pub const S_IFREG: u32 = 0o100000;
pub const S_IFLNK: u32 = 0o120000;

fn hex_field(h: &[u8], i: usize) -> Option<u32> {
    let f = h.get(6 + i * 8..6 + i * 8 + 8)?;
    let s = std::str::from_utf8(f).ok()?;
    u32::from_str_radix(s, 16).ok()
}

fn pad4(n: u64) -> u64 {
    (4 - n % 4) % 4
}

/// Read one header and name from `r`; `pos` is the offset in the archive
/// (for alignment), advanced past the name's padding.
pub fn read_header(r: &mut impl Read, pos: &mut u64) -> Result<Header, InitramfsError> {
    let mut h = [0u8; HEADER_LEN];
    r.read_exact(&mut h).map_err(|e| short(e, *pos))?;
    if &h[..6] != b"070701" && &h[..6] != b"070702" {
        return Err(InitramfsError::BadCpio {
            offset: *pos,
            detail: "no newc magic (070701/070702)".into(),
        });
    }
    let bad = |what: &str| InitramfsError::BadCpio {
        offset: *pos,
        detail: format!("{what} is not 8 hex digits"),
    };
    let mode = hex_field(&h, 1).ok_or_else(|| bad("mode"))?;
    let size = hex_field(&h, 6).ok_or_else(|| bad("file size"))?;
    let namesize = hex_field(&h, 11).ok_or_else(|| bad("name size"))? as usize;
    if namesize == 0 || namesize > MAX_NAME {
        return Err(InitramfsError::BadCpio {
            offset: *pos,
            detail: format!("name size {namesize} (allowed 1..={MAX_NAME})"),
        });
    }
    let mut name = vec![0u8; namesize];
    r.read_exact(&mut name).map_err(|e| short(e, *pos))?;
    *pos += (HEADER_LEN + namesize) as u64;
    let skip = pad4(*pos);
    discard(r, skip).map_err(|e| short(e, *pos))?;
    *pos += skip;
    let end = name.iter().position(|&b| b == 0).unwrap_or(name.len());
    name.truncate(end);
    Ok(Header {
        mode,
        size,
        name: String::from_utf8_lossy(&name).into_owned(),
    })
}

/// Read (`keep`) or skip an entry's data and its padding.
pub fn read_data(
    r: &mut impl Read,
    pos: &mut u64,
    size: u32,
    keep: bool,
) -> Result<Option<Vec<u8>>, InitramfsError> {
    let data = if keep {
        let mut v = Vec::new();
        r.take(size as u64)
            .read_to_end(&mut v)
            .map_err(|e| short(e, *pos))?;
        if v.len() != size as usize {
            return Err(short(io::ErrorKind::UnexpectedEof.into(), *pos));
        }
        Some(v)
    } else {
        discard(r, size as u64).map_err(|e| short(e, *pos))?;
        None
    };
    *pos += size as u64;
    let skip = pad4(*pos);
    discard(r, skip).map_err(|e| short(e, *pos))?;
    *pos += skip;
    Ok(data)
}

fn discard(r: &mut impl Read, n: u64) -> io::Result<()> {
    let got = io::copy(&mut r.take(n), &mut io::sink())?;
    if got != n {
        return Err(io::ErrorKind::UnexpectedEof.into());
    }
    Ok(())
}

fn short(e: io::Error, offset: u64) -> InitramfsError {
    match e.kind() {
        io::ErrorKind::UnexpectedEof => InitramfsError::BadCpio {
            offset,
            detail: "archive ends inside an entry".into(),
        },
        _ => InitramfsError::from_io(e, offset),
    }
}

/// Builds a newc archive (uncompressed, as the kernel accepts appended).
#[derive(Default)]
pub struct Writer {
    out: Vec<u8>,
    ino: u32,
}

impl Writer {
    pub fn new() -> Self {
        Writer {
            out: Vec::new(),
            ino: 1000,
        }
    }

    fn entry(&mut self, name: &str, mode: u32, data: &[u8]) {
        self.ino += 1;
        let fields = [
            self.ino,
            mode,
            0,
            0,
            if mode & S_IFMT == S_IFDIR { 2 } else { 1 },
            0,
            data.len() as u32,
            0,
            0,
            0,
            0,
            name.len() as u32 + 1,
            0,
        ];
        let mut h = String::from("070701");
        for f in fields {
            h.push_str(&format!("{f:08X}"));
        }
        // Writing to a Vec cannot fail.
        let _ = self.out.write_all(h.as_bytes());
        self.out.extend_from_slice(name.as_bytes());
        self.out.push(0);
        self.align();
        self.out.extend_from_slice(data);
        self.align();
    }

    fn align(&mut self) {
        let n = pad4(self.out.len() as u64) as usize;
        self.out.resize(self.out.len() + n, 0);
    }

    pub fn dir(&mut self, name: &str) {
        self.entry(name, S_IFDIR | 0o755, &[]);
    }

    pub fn file(&mut self, name: &str, perm: u32, data: &[u8]) {
        self.entry(name, S_IFREG | perm, data);
    }

    /// The archive with its trailer, padded to 512 bytes like `cpio -o`.
    pub fn finish(mut self) -> Vec<u8> {
        self.entry(TRAILER, 0, &[]);
        let n = self.out.len().next_multiple_of(512);
        self.out.resize(n, 0);
        self.out
    }
}
