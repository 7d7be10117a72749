//! Read-only filesystem access, only as much as finding boot files needs.
//!
//! Each filesystem implements [`BootFs`]: read a whole (small) file by
//! absolute path with symlinks followed, list a directory, tell its UUID.
//! Everything else (writing, permissions, xattrs) is deliberately absent.

pub mod btrfs;
mod ext;
mod fat;
pub mod xfs;
mod xfs_dir;

use crate::error::FsError;
use crate::view::read_vec;
use block_source::BlockSource;
use std::sync::Arc;

pub use btrfs::BtrfsFs;
pub use ext::ExtFs;
pub use fat::FatFs;
pub use xfs::XfsFs;

/// A filesystem that boot files can be read from.
pub trait BootFs {
    /// `ext4`, `xfs`, ...
    fn kind(&self) -> &'static str;
    /// Filesystem UUID in lowercase text form (what `search --fs-uuid` and
    /// `root=UUID=` compare against).
    fn uuid(&self) -> Option<String>;
    /// Filesystem label, if set (what `search --label` compares against).
    fn label(&self) -> Option<String> {
        None
    }
    /// Whole contents of a regular file, symlinks followed. `Ok(None)` when
    /// the path does not exist (or a component is not a directory).
    fn read_file(&self, path: &str, max: u64) -> Result<Option<Vec<u8>>, FsError>;
    /// Size of a regular file, symlinks followed, without reading it.
    /// `Ok(None)` as for `read_file`. Every reader checks the size against
    /// `max` before it reads a byte, so asking for at most 0 bytes costs
    /// only the lookup.
    fn file_size(&self, path: &str) -> Result<Option<u64>, FsError> {
        match self.read_file(path, 0) {
            Ok(found) => Ok(found.map(|data| data.len() as u64)),
            Err(FsError::TooLarge { size, .. }) => Ok(Some(size)),
            Err(e) => Err(e),
        }
    }
    /// The first `len` bytes of a regular file (all of it when shorter),
    /// for headers of large files (a unified kernel image's section table).
    /// Readers without partial reads read the whole file if it is at most
    /// `max` bytes ([`FsError::TooLarge`] otherwise).
    fn read_head(&self, path: &str, len: u64, max: u64) -> Result<Option<Vec<u8>>, FsError> {
        Ok(self.read_file(path, max)?.map(|mut d| {
            d.truncate(usize::try_from(len).unwrap_or(usize::MAX));
            d
        }))
    }
    /// Names in a directory (without `.`/`..`); `Ok(None)` when missing.
    fn list_dir(&self, path: &str) -> Result<Option<Vec<String>>, FsError>;
    /// Target of a symlink; `Ok(None)` when missing or not a symlink.
    fn read_link(&self, path: &str) -> Result<Option<String>, FsError>;
    /// Path prefixes, best first, under which the files of the root
    /// filesystem a kernel mounts from this volume are found, given the
    /// value of its `rootflags=` (btrfs: `subvol=@` is `/@`). Filesystems
    /// without subvolumes have one: `""`, the filesystem itself.
    fn root_prefixes(&self, _rootflags: Option<&str>) -> Vec<String> {
        vec![String::new()]
    }
    /// More to say about the volume in a scan's findings (btrfs: its
    /// subvolumes and the default one).
    fn notes(&self) -> Option<String> {
        None
    }
}

/// What a probe of a volume's first bytes recognised.
pub enum Probe {
    Fs(Box<dyn BootFs>),
    /// An LVM2 physical volume; the caller maps its logical volumes.
    LvmPv,
    /// A format we recognise by name but do not read (swap, LUKS, ...).
    Other(&'static str),
    /// Recognised, but opening it failed.
    Broken {
        kind: &'static str,
        detail: String,
    },
    Unknown,
}

fn magic_at(src: &dyn BlockSource, offset: u64, magic: &[u8]) -> bool {
    read_vec(src, offset, magic.len())
        .map(|b| b == magic)
        .unwrap_or(false)
}

/// Look at a volume and open it if we can read it.
pub fn probe(src: Arc<dyn BlockSource>) -> Probe {
    let s = &*src;
    if magic_at(s, 0x438, &[0x53, 0xef]) {
        return match ExtFs::open(src.clone()) {
            Ok(fs) => Probe::Fs(Box::new(fs)),
            Err(e) => Probe::Broken {
                kind: "ext2/3/4",
                detail: e,
            },
        };
    }
    if magic_at(s, 0, b"XFSB") {
        return match XfsFs::open(src.clone()) {
            Ok(fs) => Probe::Fs(Box::new(fs)),
            Err(e) => Probe::Broken {
                kind: "xfs",
                detail: e,
            },
        };
    }
    if (0..4).any(|i| magic_at(s, i * 512, b"LABELONE")) {
        return Probe::LvmPv;
    }
    if magic_at(s, 0, b"LUKS\xba\xbe") {
        return Probe::Other("LUKS encrypted volume");
    }
    if magic_at(s, btrfs::SUPER_OFFSET + 0x40, btrfs::MAGIC) {
        return match BtrfsFs::open(src.clone()) {
            Ok(fs) => Probe::Fs(Box::new(fs)),
            Err(e) => Probe::Broken {
                kind: "btrfs",
                detail: e.to_string(),
            },
        };
    }
    if magic_at(s, 4086, b"SWAPSPACE2") || magic_at(s, 65526, b"SWAPSPACE2") {
        return Probe::Other("Linux swap");
    }
    let fat_type = [
        (82, &b"FAT32   "[..]),
        (54, b"FAT16   "),
        (54, b"FAT12   "),
        (54, b"FAT     "),
    ];
    if fat_type.iter().any(|(o, m)| magic_at(s, *o, m)) && magic_at(s, 510, &[0x55, 0xaa]) {
        return match FatFs::open(src.clone()) {
            Ok(fs) => Probe::Fs(Box::new(fs)),
            Err(e) => Probe::Broken {
                kind: "vfat",
                detail: e,
            },
        };
    }
    if magic_at(s, 0, b"hsqs") {
        return Probe::Other("squashfs");
    }
    if magic_at(s, 0x8001, b"CD001") {
        return Probe::Other("iso9660");
    }
    Probe::Unknown
}

/// Split an absolute path into its components, refusing `..` so a hostile
/// config cannot walk out of where it claims to be (we resolve `.`).
pub fn components(path: &str) -> Option<Vec<&str>> {
    let mut out = Vec::new();
    for c in path.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                out.pop()?;
            }
            c => out.push(c),
        }
    }
    Some(out)
}
