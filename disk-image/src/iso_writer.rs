//! Small ISO 9660 images built in memory: the OVF environment's transport
//! (`ovf:transport="iso"`, DSP0243) puts `ovf-env.xml` on a CD-ROM.
//!
//! The image is written by the `hadris-iso` crate with Joliet (level 3)
//! and Rock Ridge, so Linux shows each file under its own name in any
//! case (`ovf-env.xml`), while plain ISO 9660 readers see the 8.3 name
//! (`OVF_ENV.XML;1`). Only a flat root directory is supported: that is
//! all the environment transport needs.

use hadris_iso::read::PathSeparator;
use hadris_iso::write::options::{CreationFeatures, IsoFormatOptions};
use hadris_iso::write::{File as HadrisFile, InputFiles, IsoImageWriter};
use std::io::Cursor;
use std::sync::Arc;

/// Longest file name Joliet stores (64 UCS-2 characters).
pub const MAX_NAME_CHARS: usize = 64;
/// Largest total of file contents accepted, so that a caller's mistake
/// cannot make us build a gigabyte image in memory.
pub const MAX_TOTAL_BYTES: usize = 64 * 1024 * 1024;
/// ISO 9660 logical block size.
pub const BLOCK_SIZE: usize = 2048;

/// One file of the root directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IsoFile {
    /// The name as the guest should see it (Joliet / Rock Ridge).
    pub name: String,
    pub contents: Vec<u8>,
}

/// Why an image could not be built.
#[derive(Debug, thiserror::Error)]
pub enum IsoWriteError {
    #[error("ISO image: file name {name:?} is not usable on a CD-ROM (it must be 1 to {MAX_NAME_CHARS} characters, without '/', NUL or control characters)")]
    BadName { name: String },
    #[error("ISO image: file name {name:?} is given twice")]
    DuplicateName { name: String },
    #[error(
        "ISO image: volume label {label:?} must be 1 to 32 characters of A-Z, 0-9, '_' or space"
    )]
    BadLabel { label: String },
    #[error(
        "ISO image: the files add up to {total} bytes, more than the {MAX_TOTAL_BYTES} accepted"
    )]
    TooLarge { total: usize },
    #[error("ISO image: writing the image in memory failed: {0}")]
    Write(#[source] hadris_iso::write::IsoCreationError),
}

fn check_name(name: &str) -> Result<(), IsoWriteError> {
    let n = name.chars().count();
    let ok = (1..=MAX_NAME_CHARS).contains(&n)
        && name != "."
        && name != ".."
        && !name.chars().any(|c| c == '/' || c.is_control());
    if ok {
        Ok(())
    } else {
        Err(IsoWriteError::BadName {
            name: name.to_string(),
        })
    }
}

fn check_label(label: &str) -> Result<(), IsoWriteError> {
    let ok = (1..=32).contains(&label.len())
        && label
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_' || b == b' ');
    if ok {
        Ok(())
    } else {
        Err(IsoWriteError::BadLabel {
            label: label.to_string(),
        })
    }
}

fn check_files(files: &[IsoFile]) -> Result<(), IsoWriteError> {
    let mut total = 0usize;
    for (i, f) in files.iter().enumerate() {
        check_name(&f.name)?;
        if files[..i]
            .iter()
            .any(|g| g.name.eq_ignore_ascii_case(&f.name))
        {
            return Err(IsoWriteError::DuplicateName {
                name: f.name.clone(),
            });
        }
        total = total.saturating_add(f.contents.len());
    }
    if total > MAX_TOTAL_BYTES {
        return Err(IsoWriteError::TooLarge { total });
    }
    Ok(())
}

/// Build an image with volume label `label` (e.g. `OVF ENV`) holding
/// `files` in its root directory. The result is a whole number of
/// [`BLOCK_SIZE`] blocks.
pub fn build_iso(label: &str, files: &[IsoFile]) -> Result<Vec<u8>, IsoWriteError> {
    check_label(label)?;
    check_files(files)?;
    let input = InputFiles {
        path_separator: PathSeparator::ForwardSlash,
        files: files
            .iter()
            .map(|f| HadrisFile::File {
                name: Arc::new(f.name.clone()),
                contents: f.contents.clone(),
            })
            .collect(),
    };
    let options = IsoFormatOptions {
        volume_name: label.to_string(),
        system_id: Some("LINUX".to_string()),
        volume_set_id: None,
        publisher_id: None,
        preparer_id: None,
        application_id: Some("OVF-RUN".to_string()),
        sector_size: BLOCK_SIZE,
        path_separator: PathSeparator::ForwardSlash,
        features: CreationFeatures::extensions(),
        strict_charset: false,
    };
    let mut out = Cursor::new(Vec::new());
    IsoImageWriter::create(&mut out, input, options).map_err(IsoWriteError::Write)?;
    let mut image = out.into_inner();
    let padded = image.len().div_ceil(BLOCK_SIZE) * BLOCK_SIZE;
    image.resize(padded, 0);
    Ok(image)
}

#[cfg(test)]
#[path = "iso_writer_tests.rs"]
mod tests;
