//! PE/COFF section tables, far enough to take a unified kernel image (UKI)
//! apart: systemd's EFI stub with the kernel in `.linux`, the initrd in
//! `.initrd`, the command line in `.cmdline`, os-release in `.osrel` and
//! the kernel release in `.uname`.
//!
//! Hand-written rather than `goblin` or `object`: those parse every PE
//! structure (imports, relocations, resources, debug info) and are large
//! dependencies for reading one table of 40-byte records; this reader
//! checks every offset against the bytes it was given and the file's size.
//!
//! Section contents are located the way systemd's stub locates them once
//! the firmware has loaded the image: the data at `PointerToRawData`, as
//! long as `VirtualSize` says (the raw size is padded to the file
//! alignment), never past `SizeOfRawData` nor past the end of the file.

use std::ops::Range;

/// The PE/COFF specification's limit for images; systemd's stub refuses
/// more too. Bounds the table read to 96 × 40 bytes.
pub const MAX_SECTIONS: usize = 96;
/// `e_lfanew` further than this is not an EFI image (real ones are < 256).
const MAX_LFANEW: u64 = 64 * 1024;
/// Bytes of the file that always hold the DOS, COFF, optional headers and
/// the largest section table this reader accepts.
pub const MAX_HEADERS: u64 = MAX_LFANEW + 4 + 20 + 0xffff + (MAX_SECTIONS as u64) * 40;

const COFF_LEN: u64 = 20;
const SECTION_LEN: u64 = 40;

/// Why bytes are not a PE image this reader accepts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PeError {
    #[error("not a PE image: no MZ header")]
    NoDosHeader,
    #[error("not a PE image: e_lfanew {0:#x} is out of range")]
    BadLfanew(u64),
    #[error("not a PE image: no PE\\0\\0 signature at {0:#x}")]
    NoSignature(u64),
    #[error("PE image has {0} sections, more than the {MAX_SECTIONS} allowed")]
    TooManySections(usize),
    #[error("PE headers end at {needed:#x}, past the {have:#x} bytes available")]
    Truncated { needed: u64, have: u64 },
    #[error("PE section {name} ({start:#x}..{end:#x}) lies beyond the file's {file_len:#x} bytes")]
    OutOfFile {
        name: String,
        start: u64,
        end: u64,
        file_len: u64,
    },
    #[error("PE sections {0} and {1} overlap")]
    Overlap(String, String),
}

/// One entry of the section table, its contents located in the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    /// The 8-byte name, NULs trimmed (long `/nnn` names are left as is).
    pub name: String,
    /// Where the contents are in the file.
    pub file_range: Range<u64>,
}

/// The sections of a unified kernel image (file ranges).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Uki {
    pub linux: Option<Range<u64>>,
    pub initrd: Option<Range<u64>>,
    pub cmdline: Option<Range<u64>>,
    pub osrel: Option<Range<u64>>,
    pub uname: Option<Range<u64>>,
}

fn le16(d: &[u8], at: u64) -> Option<u16> {
    let at = usize::try_from(at).ok()?;
    Some(u16::from_le_bytes(
        d.get(at..at.checked_add(2)?)?.try_into().ok()?,
    ))
}

fn le32(d: &[u8], at: u64) -> Option<u32> {
    let at = usize::try_from(at).ok()?;
    Some(u32::from_le_bytes(
        d.get(at..at.checked_add(4)?)?.try_into().ok()?,
    ))
}

fn truncated(needed: u64, head: &[u8]) -> PeError {
    PeError::Truncated {
        needed,
        have: head.len() as u64,
    }
}

/// Where the section table starts and how many entries it has.
fn table(head: &[u8]) -> Result<(u64, usize), PeError> {
    if !head.starts_with(b"MZ") {
        return Err(PeError::NoDosHeader);
    }
    let lfanew = u64::from(le32(head, 0x3c).ok_or(truncated(0x40, head))?);
    if !(0x40..=MAX_LFANEW).contains(&lfanew) {
        return Err(PeError::BadLfanew(lfanew));
    }
    let sig = le32(head, lfanew).ok_or(truncated(lfanew + 4, head))?;
    if sig != u32::from_le_bytes(*b"PE\0\0") {
        return Err(PeError::NoSignature(lfanew));
    }
    let coff = lfanew + 4;
    let count = usize::from(le16(head, coff + 2).ok_or(truncated(coff + COFF_LEN, head))?);
    if count > MAX_SECTIONS {
        return Err(PeError::TooManySections(count));
    }
    let opt_len = u64::from(le16(head, coff + 16).ok_or(truncated(coff + COFF_LEN, head))?);
    Ok((coff + COFF_LEN + opt_len, count))
}

/// How many leading bytes of the file hold the headers and section table
/// (at most [`MAX_HEADERS`]): read that much, then call [`sections`].
/// `head` needs to hold only the first 4 KiB for this answer when the
/// optional header is of the usual size.
pub fn headers_len(head: &[u8]) -> Result<u64, PeError> {
    let (start, count) = table(head)?;
    Ok(start + count as u64 * SECTION_LEN)
}

/// The section table of a PE image. `head` is the start of the file (at
/// least [`headers_len`] bytes), `file_len` its whole size: every section's
/// contents must lie within it.
pub fn sections(head: &[u8], file_len: u64) -> Result<Vec<Section>, PeError> {
    let (start, count) = table(head)?;
    let end = start + count as u64 * SECTION_LEN;
    if end > head.len() as u64 {
        return Err(truncated(end, head));
    }
    let mut out = Vec::with_capacity(count);
    for i in 0..count as u64 {
        let at = start + i * SECTION_LEN;
        let bytes = &head[at as usize..(at + 8) as usize];
        let name = String::from_utf8_lossy(bytes)
            .trim_end_matches('\0')
            .to_string();
        let field = |off: u64| le32(head, at + off).map(u64::from).unwrap_or(0);
        let (vsize, raw_size, raw_ptr) = (field(8), field(16), field(20));
        // VirtualSize is the real length; 0 (some linkers) means "raw".
        let len = if vsize == 0 {
            raw_size
        } else {
            vsize.min(raw_size)
        };
        let end = raw_ptr + len;
        if end > file_len {
            return Err(PeError::OutOfFile {
                name,
                start: raw_ptr,
                end,
                file_len,
            });
        }
        out.push(Section {
            name,
            file_range: raw_ptr..end,
        });
    }
    Ok(out)
}

/// The UKI sections among `sections` (the first of each name, as the
/// stub takes). Two of them sharing bytes is refused: no tool makes that,
/// and a kernel that is also the initrd is not an image to boot.
pub fn uki(sections: &[Section]) -> Result<Uki, PeError> {
    let mut u = Uki::default();
    let mut taken: Vec<(&str, &Range<u64>)> = Vec::new();
    for s in sections {
        let slot = match s.name.as_str() {
            ".linux" => &mut u.linux,
            ".initrd" => &mut u.initrd,
            ".cmdline" => &mut u.cmdline,
            ".osrel" => &mut u.osrel,
            ".uname" => &mut u.uname,
            _ => continue,
        };
        if slot.is_some() || s.file_range.is_empty() {
            continue;
        }
        let r = &s.file_range;
        if let Some((other, _)) = taken
            .iter()
            .find(|(_, o)| r.start < o.end && o.start < r.end)
        {
            return Err(PeError::Overlap(other.to_string(), s.name.clone()));
        }
        *slot = Some(r.clone());
        taken.push((&s.name, r));
    }
    Ok(u)
}

/// The bytes of `range` within `data` (the whole file), if it holds them.
pub fn slice<'a>(data: &'a [u8], range: &Range<u64>) -> Option<&'a [u8]> {
    data.get(usize::try_from(range.start).ok()?..usize::try_from(range.end).ok()?)
}

/// `PRETTY_NAME` (else `NAME`) of an os-release text, quotes removed.
pub fn pretty_name(osrel: &str) -> Option<String> {
    let get = |key: &str| {
        osrel.lines().find_map(|l| {
            let v = l.trim().strip_prefix(key)?.strip_prefix('=')?.trim();
            let v = v
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .or_else(|| v.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
                .unwrap_or(v);
            (!v.is_empty()).then(|| v.to_string())
        })
    };
    get("PRETTY_NAME").or_else(|| get("NAME"))
}

#[cfg(test)]
#[path = "pe_tests.rs"]
mod tests;
