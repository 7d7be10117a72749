//! btrfs, read-only, only what finding boot files needs: the superblock,
//! the chunk map ([`chunks`]), B-tree search ([`tree`]), the root tree's
//! subvolumes ([`subvol`]), FS trees' inodes, directories and symlinks
//! ([`path`]), and file extents, compressed or not ([`extent`], [`lzo`]).
//!
//! Paths are resolved as GRUB does: from the top-level subvolume (id 5),
//! where a subvolume is a directory whose entry points at a root item, and
//! walking into it switches trees (`/@/boot/vmlinuz` on Ubuntu). A path not
//! found that way is tried again inside the default subvolume when that is
//! not the top level (openSUSE's `/boot/vmlinuz`), or else inside a
//! subvolume `/@`, `/@rootfs` or `/root` (Ubuntu, Debian, Fedora, whose
//! GRUB has e.g. `/@/boot/grub` as its prefix).
//!
//! Only one device is read; a filesystem spanning several is readable as
//! long as every chunk has a copy on this one (single, DUP, RAID1).
//! Every count read from disk is bounded before it sizes an allocation or
//! a loop, tree searches read a bounded number of blocks, and arithmetic
//! on disk values is checked.

mod chunks;
mod extent;
mod le;
mod lzo;
mod path;
mod subvol;
mod tree;

use super::BootFs;
use crate::error::FsError;
use block_source::BlockSource;
use chunks::{ChunkMap, Super};
use le::Key;
use std::collections::BTreeMap;
use std::sync::Arc;
use tree::{Blocks, Tree};

pub use chunks::{MAGIC, SUPER_OFFSET};
pub use subvol::Subvolume;

/// Why a btrfs filesystem (or a part of it) cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BtrfsError {
    #[error("cannot read the btrfs volume: {0}")]
    Io(String),
    #[error("btrfs metadata is damaged: {0}")]
    Corrupt(String),
    #[error("btrfs feature not supported: {0}")]
    Unsupported(String),
}

/// The top-level subvolume (FS_TREE).
pub const TOP_LEVEL: u64 = 5;
const CHUNK_TREE_OBJECTID: u64 = 256;
const ROOT_ITEM: u8 = 132;
/// Subvolumes (and snapshots) one filesystem may have for us.
const MAX_SUBVOLUMES: usize = 1 << 14;

/// An opened btrfs filesystem.
pub struct BtrfsFs {
    src: Arc<dyn BlockSource>,
    sb: Super,
    map: ChunkMap,
    /// FS tree id → its root block and root directory inode.
    roots: BTreeMap<u64, (Tree, u64)>,
    /// The subvolume mounted when no `subvol=`/`subvolid=` is given.
    default: u64,
}

impl BtrfsFs {
    pub fn open(src: Arc<dyn BlockSource>) -> Result<Self, BtrfsError> {
        let sb = Super::read(&*src)?;
        let map = ChunkMap::bootstrap(&sb)?;
        let mut fs = BtrfsFs {
            src,
            sb,
            map,
            roots: BTreeMap::new(),
            default: TOP_LEVEL,
        };
        fs.read_chunk_tree()?;
        fs.read_roots()?;
        fs.default = fs.default_subvolume()?;
        Ok(fs)
    }

    fn blocks(&self) -> Blocks<'_> {
        Blocks {
            src: &*self.src,
            map: &self.map,
            node_size: self.sb.node_size,
            csum_type: self.sb.csum_type,
        }
    }

    fn read_chunk_tree(&mut self) -> Result<(), BtrfsError> {
        let tree = Tree {
            bytenr: self.sb.chunk_root,
            level: self.sb.chunk_root_level,
        };
        let lo = Key::new(CHUNK_TREE_OBJECTID, 228, 0);
        let hi = Key::new(CHUNK_TREE_OBJECTID, 228, u64::MAX);
        let items = self.blocks().collect(tree, lo, hi, chunks::MAX_CHUNKS)?;
        for (k, d) in items {
            self.map.add(k.offset, &d, self.sb.devid)?;
        }
        Ok(())
    }

    /// ROOT_ITEMs of the FS trees: the top level and every subvolume.
    fn read_roots(&mut self) -> Result<(), BtrfsError> {
        let tree = Tree {
            bytenr: self.sb.root,
            level: self.sb.root_level,
        };
        let lo = Key::new(TOP_LEVEL, ROOT_ITEM, 0);
        let hi = Key::new(u64::MAX - 256, ROOT_ITEM, u64::MAX);
        let mut roots = BTreeMap::new();
        let mut over = false;
        self.blocks().search(tree, lo, hi, |(k, d)| {
            let fs_tree = k.objectid == TOP_LEVEL || k.objectid >= 256;
            if k.kind != ROOT_ITEM || !fs_tree || d.len() < 239 {
                return std::ops::ControlFlow::Continue(());
            }
            let root = Tree {
                bytenr: le::le64(d, 176),
                level: d[238],
            };
            roots.insert(k.objectid, (root, le::le64(d, 168)));
            over = roots.len() > MAX_SUBVOLUMES;
            if over {
                std::ops::ControlFlow::Break(())
            } else {
                std::ops::ControlFlow::Continue(())
            }
        })?;
        if over {
            return Err(BtrfsError::Corrupt(format!(
                "more than {MAX_SUBVOLUMES} subvolumes"
            )));
        }
        if !roots.contains_key(&TOP_LEVEL) {
            return Err(BtrfsError::Corrupt("no top-level FS tree".into()));
        }
        self.roots = roots;
        Ok(())
    }

    fn root_tree(&self) -> Tree {
        Tree {
            bytenr: self.sb.root,
            level: self.sb.root_level,
        }
    }

    /// The FS tree of subvolume `id`.
    fn fs_tree(&self, id: u64) -> Result<Tree, BtrfsError> {
        self.roots
            .get(&id)
            .map(|r| r.0)
            .ok_or_else(|| BtrfsError::Corrupt(format!("subvolume {id} has no root item")))
    }

    /// Root directory inode of subvolume `id`.
    fn root_dir(&self, id: u64) -> Result<u64, BtrfsError> {
        self.roots
            .get(&id)
            .map(|r| r.1)
            .ok_or_else(|| BtrfsError::Corrupt(format!("subvolume {id} has no root item")))
    }

    /// The default subvolume's id (`btrfs subvolume set-default`).
    pub fn default_subvolume_id(&self) -> u64 {
        self.default
    }

    fn fsid_text(&self) -> String {
        let u = &self.sb.fsid;
        let hex: String = u.iter().map(|b| format!("{b:02x}")).collect();
        format!(
            "{}-{}-{}-{}-{}",
            &hex[0..8],
            &hex[8..12],
            &hex[12..16],
            &hex[16..20],
            &hex[20..32]
        )
    }
}

fn fs_err(path: &str, e: BtrfsError) -> FsError {
    FsError::Read {
        path: path.to_string(),
        detail: e.to_string(),
    }
}

impl BootFs for BtrfsFs {
    fn kind(&self) -> &'static str {
        "btrfs"
    }

    fn uuid(&self) -> Option<String> {
        Some(self.fsid_text())
    }

    fn label(&self) -> Option<String> {
        (!self.sb.label.is_empty()).then(|| self.sb.label.clone())
    }

    fn read_file(&self, path: &str, max: u64) -> Result<Option<Vec<u8>>, FsError> {
        let Some((pos, inode)) = self.find(path, true)? else {
            return Ok(None);
        };
        if !inode.is_file() {
            return Ok(None);
        }
        if inode.size > max {
            return Err(FsError::TooLarge {
                path: path.to_string(),
                size: inode.size,
                max,
            });
        }
        self.file_data(pos.tree, pos.ino, inode.size)
            .map(Some)
            .map_err(|e| fs_err(path, e))
    }

    fn list_dir(&self, path: &str) -> Result<Option<Vec<String>>, FsError> {
        match self.find(path, true)? {
            Some((pos, inode)) if inode.is_dir() => {
                self.dir_names(pos).map(Some).map_err(|e| fs_err(path, e))
            }
            _ => Ok(None),
        }
    }

    fn read_link(&self, path: &str) -> Result<Option<String>, FsError> {
        match self.find(path, false)? {
            Some((pos, inode)) if inode.is_symlink() => self
                .link_target(pos, &inode)
                .map(Some)
                .map_err(|e| fs_err(path, e)),
            _ => Ok(None),
        }
    }

    fn root_prefixes(&self, rootflags: Option<&str>) -> Vec<String> {
        self.mount_prefixes(rootflags)
    }

    fn notes(&self) -> Option<String> {
        let subs = match self.subvolumes() {
            Ok(s) => s,
            Err(e) => return Some(format!("subvolumes unreadable: {e}")),
        };
        let name = |id: u64| match subs.iter().find(|s| s.id == id) {
            Some(s) => format!("{} (id {id})", s.path),
            None => "the top level".to_string(),
        };
        let list: Vec<String> = subs.iter().take(20).map(|s| name(s.id)).collect();
        let more = subs.len().saturating_sub(20);
        Some(format!(
            "subvolumes: {}{}; default subvolume: {}",
            if list.is_empty() {
                "none".into()
            } else {
                list.join(", ")
            },
            if more > 0 {
                format!(" and {more} more")
            } else {
                String::new()
            },
            name(self.default)
        ))
    }
}
