//! Checks on an OVF chunked file (`ovf:chunkSize`): `name.000000000`,
//! `name.000000001`, … read back to back. A chunk cut short or a missing
//! last chunk would otherwise shift or shorten the file silently, and a
//! disk reader would see zeros where data was; so every chunk but the last
//! must be exactly `chunkSize` bytes, the last one at most that, and the
//! total must be the declared `ovf:size`, which a chunked file must have.

use crate::package::{Extent, PackageError};

/// Check the chunks found for one chunked file.
pub fn check_chunks(
    package: &str,
    href: &str,
    chunk_size: u64,
    declared: Option<u64>,
    extents: &[Extent],
) -> Result<(), PackageError> {
    let bad = |problem: String| PackageError::BadChunks {
        package: package.to_string(),
        href: href.to_string(),
        problem,
    };
    if chunk_size == 0 {
        // The descriptor parser refuses it too; this function divides by it.
        return Err(bad("ovf:chunkSize is 0".into()));
    }
    let Some(declared) = declared else {
        return Err(bad(
            "a chunked file must declare its total ovf:size, or a missing last chunk goes unnoticed"
                .into(),
        ));
    };
    let last = extents.len().saturating_sub(1);
    for (i, e) in extents.iter().enumerate() {
        let ok = if i < last {
            e.len == chunk_size
        } else {
            e.len > 0 && e.len <= chunk_size
        };
        if !ok {
            return Err(bad(format!(
                "chunk {} ({}) is {} bytes; ovf:chunkSize is {chunk_size}{}",
                i,
                e.path.display(),
                e.len,
                if i < last {
                    " and only the last chunk may be shorter"
                } else {
                    ""
                }
            )));
        }
    }
    let expected = declared.div_ceil(chunk_size);
    if extents.len() as u64 != expected {
        return Err(bad(format!(
            "{} chunk(s) found, but ovf:size {declared} in chunks of {chunk_size} needs {expected}",
            extents.len()
        )));
    }
    // The right number of chunks, but the last one of the wrong length
    // (found by the `chunks` fuzz target: one cut short read as zeros).
    let total: u64 = extents.iter().map(|e| e.len).sum();
    if total != declared {
        let want = declared - (expected - 1) * chunk_size;
        return Err(bad(format!(
            "the last chunk ({}) is {} bytes, but ovf:size {declared} needs {want} there \
             (the chunk is cut short or the size is wrong)",
            extents[last].path.display(),
            extents[last].len
        )));
    }
    Ok(())
}
