//! A plain raw disk image file as a block source (`ovf-run boot --disk`).

use block_source::{check_range, BlockSource};
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;

pub struct RawFileSource {
    file: File,
    capacity: u64,
    read_only: bool,
}

impl RawFileSource {
    /// Open `path`; writes go straight to the file unless `read_only`.
    pub fn open(path: &Path, read_only: bool) -> io::Result<Self> {
        let file = OpenOptions::new()
            .read(true)
            .write(!read_only)
            .open(path)
            .map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!("cannot open disk {}: {e}", path.display()),
                )
            })?;
        let capacity = file.metadata()?.len();
        Ok(RawFileSource {
            file,
            capacity,
            read_only,
        })
    }
}

impl BlockSource for RawFileSource {
    fn capacity(&self) -> u64 {
        self.capacity
    }
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        check_range(self.capacity, offset, buf.len())?;
        self.file.read_exact_at(buf, offset)
    }
    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        if self.read_only {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                "this disk is read-only",
            ));
        }
        check_range(self.capacity, offset, buf.len())?;
        self.file.write_all_at(buf, offset)
    }
    fn flush(&self) -> io::Result<()> {
        if self.read_only {
            return Ok(());
        }
        self.file.sync_data()
    }
    fn is_read_only(&self) -> bool {
        self.read_only
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_writes_and_refuses_past_end() {
        let dir = std::env::temp_dir().join(format!("rawfile-{}", std::process::id()));
        std::fs::write(&dir, vec![7u8; 1024]).unwrap();
        let s = RawFileSource::open(&dir, false).unwrap();
        s.write_at(&[1, 2], 512).unwrap();
        let mut b = [0u8; 3];
        s.read_at(&mut b, 511).unwrap();
        assert_eq!(b, [7, 1, 2]);
        assert!(s.read_at(&mut b, 1022).is_err());
        s.flush().unwrap();
        let ro = RawFileSource::open(&dir, true).unwrap();
        assert!(ro.write_at(&[1], 0).is_err());
        std::fs::remove_file(&dir).unwrap();
    }
}
