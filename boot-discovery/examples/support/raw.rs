//! A raw disk image file as a [`BlockSource`], read in place (shared by
//! the examples through `#[path]`).

use block_source::{check_range, BlockSource};
use std::os::unix::fs::FileExt;

pub struct RawFile(pub std::fs::File, pub u64);

impl RawFile {
    /// Open `path`, or exit with its error (examples are command lines).
    pub fn open_or_exit(path: &str) -> RawFile {
        let file = std::fs::File::open(path).unwrap_or_else(|e| {
            eprintln!("{path}: {e}");
            std::process::exit(1)
        });
        let len = file.metadata().map(|m| m.len()).unwrap_or(0);
        RawFile(file, len)
    }
}

impl BlockSource for RawFile {
    fn capacity(&self) -> u64 {
        self.1
    }
    fn read_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
        check_range(self.1, offset, buf.len())?;
        self.0.read_exact_at(buf, offset)
    }
}
