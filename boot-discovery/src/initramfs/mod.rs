//! Initramfs images as the kernel unpacks them: one or more cpio "newc"
//! archives laid end to end, each either uncompressed (an early microcode
//! archive usually comes first) or compressed with gzip, zstd, xz or LZ4
//! (legacy and frame), with zero padding between them.
//!
//! [`read`] lists every entry and keeps the data only of the entries the
//! caller asks for, so memory stays bounded by those (plus one decoder's
//! state), whatever the image holds. Total inflated size and entry count are
//! capped ([`Limits`]); any input ends in a typed error, never a panic.

pub mod cpio;
mod segment;

use std::io;

pub use segment::Compression;

/// One file, directory or link in the image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// As stored, without a leading `./` or `/` (`lib/modules/6.1.0/...`).
    pub name: String,
    pub mode: u32,
    pub size: u32,
    /// The contents when the caller's `keep` asked for them.
    pub data: Option<Vec<u8>>,
}

impl Entry {
    pub fn is_file(&self) -> bool {
        self.mode & cpio::S_IFMT == cpio::S_IFREG
    }
    pub fn is_dir(&self) -> bool {
        self.mode & cpio::S_IFMT == cpio::S_IFDIR
    }
}

/// One archive of the image and how it was stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    /// Byte offset in the image.
    pub offset: u64,
    /// Bytes of the image it takes (compressed size).
    pub len: u64,
    pub compression: Compression,
    pub entries: usize,
}

/// The image's contents, in archive order (later entries overwrite earlier
/// ones of the same name when the kernel unpacks).
#[derive(Debug, Clone, Default)]
pub struct Initramfs {
    pub entries: Vec<Entry>,
    pub segments: Vec<Segment>,
}

impl Initramfs {
    /// The last entry named `name` (the one the unpacked image keeps).
    pub fn get(&self, name: &str) -> Option<&Entry> {
        self.entries.iter().rev().find(|e| e.name == name)
    }
    /// Kept data of the last entry named `name`.
    pub fn data(&self, name: &str) -> Option<&[u8]> {
        self.get(name).and_then(|e| e.data.as_deref())
    }
    /// Names of the entries, in archive order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(|e| e.name.as_str())
    }
}

/// Caps on what one image may cost.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Total inflated bytes over all segments.
    pub max_inflated: u64,
    pub max_entries: usize,
    /// Kept files larger than this are refused.
    pub max_kept_file: u32,
}

impl Default for Limits {
    /// 1 GiB inflated (a generic initramfs with all firmware is ~600 MiB
    /// unpacked), 1 million entries, 64 MiB per kept file.
    fn default() -> Self {
        Limits {
            max_inflated: 1 << 30,
            max_entries: 1_000_000,
            max_kept_file: 64 << 20,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum InitramfsError {
    #[error("initramfs: unrecognised data at byte {offset} (not cpio, gzip, zstd, xz or lz4)")]
    Unrecognised { offset: u64 },
    #[error("initramfs: the archive at byte {offset} is {format}-compressed, which ovf-run does not read (gzip, zstd, xz and lz4 are read)")]
    Unsupported { offset: u64, format: &'static str },
    #[error("initramfs: the {format} archive at byte {offset} is damaged: {detail}")]
    Decompress {
        offset: u64,
        format: &'static str,
        detail: String,
    },
    #[error("initramfs: bad cpio data at byte {offset} of its archive: {detail}")]
    BadCpio { offset: u64, detail: String },
    #[error("initramfs: unpacks to more than {limit} bytes; refusing it")]
    TooLarge { limit: u64 },
    #[error("initramfs: more than {limit} entries; refusing it")]
    TooManyEntries { limit: usize },
    #[error("initramfs: {name} is {size} bytes, more than the {limit} read for it")]
    FileTooLarge { name: String, size: u32, limit: u32 },
}

/// Marker inside an `io::Error` from the inflated-size budget.
#[derive(Debug, thiserror::Error)]
#[error("inflated size budget exceeded")]
pub(crate) struct OverBudget(pub u64);

/// Marker inside an `io::Error` from a decompressor.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct DecodeFailed(pub String);

impl InitramfsError {
    /// An I/O error while reading cpio data: the budget's own error becomes
    /// [`InitramfsError::TooLarge`], a decoder's becomes `BadCpio`.
    pub(crate) fn from_io(e: io::Error, offset: u64) -> Self {
        if let Some(OverBudget(limit)) = e.get_ref().and_then(|x| x.downcast_ref::<OverBudget>()) {
            return InitramfsError::TooLarge { limit: *limit };
        }
        if let Some(DecodeFailed(detail)) =
            e.get_ref().and_then(|x| x.downcast_ref::<DecodeFailed>())
        {
            // Offset and format are filled in by the segment reader.
            return InitramfsError::Decompress {
                offset: 0,
                format: "",
                detail: detail.clone(),
            };
        }
        InitramfsError::BadCpio {
            offset,
            detail: e.to_string(),
        }
    }
}

/// List the image's entries, keeping the data of those `keep` accepts.
pub fn read(
    image: &[u8],
    keep: &dyn Fn(&str) -> bool,
    limits: Limits,
) -> Result<Initramfs, InitramfsError> {
    segment::read_all(image, keep, limits)
}

/// `./lib/x`, `/lib/x` and `lib/x` name the same file.
pub fn normalise(name: &str) -> &str {
    let mut n = name;
    loop {
        if let Some(r) = n.strip_prefix("./") {
            n = r;
        } else if let Some(r) = n.strip_prefix('/') {
            n = r;
        } else {
            return n;
        }
    }
}

#[cfg(test)]
mod tests;
