//! The `chunks` target's body, shared with `ovf-loader/tests/fuzz_seeds.rs`:
//! an OVF chunked file (`ovf:chunkSize`, `NAME.000000000`, …) as
//! `Package::locate` finds it — its chunks checked by
//! [`ovf_loader::chunks::check_chunks`] — then read back through
//! [`FileLocation::read_at`] and compared with the bytes written.
//!
//! Input (little-endian): ovf:chunkSize u16, declared ovf:size u32, a flag
//! byte (bit 0: ovf:size is declared), the number of chunks (mod 33), one
//! u16 length per chunk, then the chunks' bytes back to back (a chunk
//! gets fewer when the input runs out). The chunks go into one scratch
//! file, apart from each other, as extents of a [`FileLocation`].

#![allow(dead_code)]

use ovf_loader::package::{Extent, FileLocation};
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::Arc;

/// Bytes of filler between chunks in the scratch file.
const GAP: u64 = 7;

struct Input {
    chunk_size: u64,
    declared: Option<u64>,
    chunks: Vec<Vec<u8>>,
}

fn parse(data: &[u8]) -> Option<Input> {
    let chunk_size = u64::from(u16::from_le_bytes(data.get(..2)?.try_into().ok()?));
    let size = u64::from(u32::from_le_bytes(data.get(2..6)?.try_into().ok()?));
    let flags = *data.get(6)?;
    let count = usize::from(*data.get(7)? % 33);
    let lens = data.get(8..8 + 2 * count)?;
    let mut body = &data[8 + 2 * count..];
    let chunks = lens
        .chunks(2)
        .map(|l| {
            let n = usize::from(u16::from_le_bytes([l[0], l[1]])).min(body.len());
            let (c, rest) = body.split_at(n);
            body = rest;
            c.to_vec()
        })
        .collect();
    Some(Input {
        chunk_size,
        declared: (flags & 1 != 0).then_some(size),
        chunks,
    })
}

/// An unlinked scratch file, new for each input.
fn scratch() -> File {
    let path = std::env::temp_dir().join(format!("ovf-run-fuzz-chunks-{}", std::process::id()));
    let file = File::options()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&path)
        .expect("scratch file in the temp dir");
    let _ = std::fs::remove_file(&path);
    file
}

pub fn run(data: &[u8]) {
    let Some(input) = parse(data) else { return };
    let file = scratch();
    let mut extents = Vec::new();
    let mut at = 0u64;
    for (i, c) in input.chunks.iter().enumerate() {
        file.write_all_at(&[0xee; GAP as usize], at).unwrap();
        at += GAP;
        file.write_all_at(c, at).unwrap();
        extents.push(Extent {
            file: Arc::new(file.try_clone().unwrap()),
            path: PathBuf::from(format!("disk.vmdk.{i:09}")),
            offset: at,
            len: c.len() as u64,
        });
        at += c.len() as u64;
    }
    if extents.is_empty() {
        return; // Package::locate: the file is missing.
    }
    let checked = ovf_loader::chunks::check_chunks(
        "fuzz.ovf",
        "disk.vmdk",
        input.chunk_size,
        input.declared,
        &extents,
    );
    if checked.is_err() {
        return;
    }
    let whole: Vec<u8> = input.chunks.concat();
    let location = FileLocation {
        name: "disk.vmdk".into(),
        extents,
        gzip: false,
    };
    assert_eq!(
        Some(location.len()),
        input.declared,
        "chunks accepted whose total is not ovf:size"
    );
    // Read it back in pieces that straddle chunk boundaries.
    let len = whole.len();
    let step = (input.chunk_size as usize / 3).max(1);
    let mut off = 0;
    let mut buf = vec![0u8; step * 2];
    while off < len {
        let n = (len - off).min(buf.len());
        location.read_at(&mut buf[..n], off as u64).unwrap();
        assert_eq!(&buf[..n], &whole[off..off + n], "bytes at {off}");
        off += step;
    }
    assert!(location.read_at(&mut [0u8; 1], len as u64).is_err());
}
