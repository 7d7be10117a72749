//! ext2/3/4 through the `ext4-view` crate (extents, htree directories,
//! symlinks, checksums), over any block source.

use super::BootFs;
use crate::error::FsError;
use crate::view::Ext4Reader;
use block_source::BlockSource;
use ext4_view::{Ext4, Ext4Error};
use std::sync::Arc;

pub struct ExtFs {
    fs: Ext4,
}

impl ExtFs {
    pub fn open(src: Arc<dyn BlockSource>) -> Result<Self, String> {
        Ext4::load(Box::new(Ext4Reader(src)))
            .map(|fs| ExtFs { fs })
            .map_err(|e| e.to_string())
    }
}

fn missing(e: &Ext4Error) -> bool {
    matches!(
        e,
        Ext4Error::NotFound
            | Ext4Error::NotADirectory
            | Ext4Error::IsADirectory
            | Ext4Error::NotASymlink
            | Ext4Error::IsASpecialFile
    )
}

fn err(path: &str, e: Ext4Error) -> FsError {
    match e {
        Ext4Error::TooManySymlinks => FsError::SymlinkLoop {
            path: path.to_string(),
        },
        e => FsError::Read {
            path: path.to_string(),
            detail: e.to_string(),
        },
    }
}

impl BootFs for ExtFs {
    fn kind(&self) -> &'static str {
        "ext4"
    }

    fn uuid(&self) -> Option<String> {
        Some(self.fs.uuid().to_string())
    }

    fn label(&self) -> Option<String> {
        self.fs
            .label()
            .to_str()
            .ok()
            .map(str::to_string)
            .filter(|l| !l.is_empty())
    }

    fn read_file(&self, path: &str, max: u64) -> Result<Option<Vec<u8>>, FsError> {
        let md = match self.fs.metadata(path) {
            Ok(m) => m,
            Err(e) if missing(&e) => return Ok(None),
            Err(e) => return Err(err(path, e)),
        };
        if md.is_dir() {
            return Ok(None);
        }
        if md.len() > max {
            return Err(FsError::TooLarge {
                path: path.to_string(),
                size: md.len(),
                max,
            });
        }
        match self.fs.read(path) {
            Ok(v) => Ok(Some(v)),
            Err(e) if missing(&e) => Ok(None),
            Err(e) => Err(err(path, e)),
        }
    }

    fn list_dir(&self, path: &str) -> Result<Option<Vec<String>>, FsError> {
        let rd = match self.fs.read_dir(path) {
            Ok(rd) => rd,
            Err(e) if missing(&e) => return Ok(None),
            Err(e) => return Err(err(path, e)),
        };
        let mut out = Vec::new();
        for entry in rd {
            let entry = entry.map_err(|e| err(path, e))?;
            if let Ok(name) = entry.file_name().as_str() {
                if name != "." && name != ".." {
                    out.push(name.to_string());
                }
            }
            if out.len() > 100_000 {
                break;
            }
        }
        Ok(Some(out))
    }

    fn read_link(&self, path: &str) -> Result<Option<String>, FsError> {
        match self.fs.read_link(path) {
            Ok(p) => Ok(p.to_str().ok().map(str::to_string)),
            Err(e) if missing(&e) => Ok(None),
            Err(e) => Err(err(path, e)),
        }
    }
}
