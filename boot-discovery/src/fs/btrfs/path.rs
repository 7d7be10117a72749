//! Inodes, directory entries and path resolution inside FS trees,
//! crossing into subvolumes where a directory entry points at a root item.

use super::le::{le16, le32, le64, name_hash, Key};
use super::{fs_err, BtrfsError, BtrfsFs, ROOT_ITEM, TOP_LEVEL};
use crate::error::FsError;
use std::ops::ControlFlow;

const INODE_ITEM: u8 = 1;
const DIR_ITEM: u8 = 84;
const DIR_INDEX: u8 = 96;
const S_IFMT: u32 = 0o170000;
const S_IFDIR: u32 = 0o040000;
const S_IFREG: u32 = 0o100000;
const S_IFLNK: u32 = 0o120000;
const MAX_SYMLINKS: usize = 40;
/// Path components one lookup may walk (symlink expansions included).
const MAX_STEPS: usize = 4096;
/// Entries one directory listing may return.
const MAX_ENTRIES: usize = 1 << 17;
/// Root subvolumes of installers that leave the top level the default:
/// Ubuntu and Arch (`@`), Debian (`@rootfs`), Fedora (`root`).
const ROOT_SUBVOLUMES: [&str; 3] = ["@", "@rootfs", "root"];
/// Longest symlink target btrfs allows (one page, inline).
const MAX_LINK: u64 = 4096;

/// An inode in one FS tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pos {
    pub tree: u64,
    pub ino: u64,
}

pub struct Inode {
    pub mode: u32,
    pub size: u64,
}

impl Inode {
    pub fn is_dir(&self) -> bool {
        self.mode & S_IFMT == S_IFDIR
    }
    pub fn is_file(&self) -> bool {
        self.mode & S_IFMT == S_IFREG
    }
    pub fn is_symlink(&self) -> bool {
        self.mode & S_IFMT == S_IFLNK
    }
}

/// One directory entry: its name and what it points at.
pub struct Entry {
    pub name: Vec<u8>,
    pub location: Key,
}

/// Every entry packed in one DIR_ITEM/DIR_INDEX item.
fn entries(d: &[u8]) -> Result<Vec<Entry>, BtrfsError> {
    let mut out = Vec::new();
    let mut p = 0usize;
    while p < d.len() {
        let h = d
            .get(p..p + 30)
            .ok_or_else(|| BtrfsError::Corrupt("a directory entry is cut short".into()))?;
        let data_len = le16(h, 25) as usize;
        let name_len = le16(h, 27) as usize;
        let name = d
            .get(p + 30..p + 30 + name_len)
            .ok_or_else(|| BtrfsError::Corrupt("a directory entry's name is cut short".into()))?;
        out.push(Entry {
            name: name.to_vec(),
            location: Key::parse(h),
        });
        p += 30 + name_len + data_len;
    }
    Ok(out)
}

impl BtrfsFs {
    pub(super) fn inode(&self, pos: Pos) -> Result<Option<Inode>, BtrfsError> {
        let key = Key::new(pos.ino, INODE_ITEM, 0);
        let mut found = None;
        self.blocks()
            .search(self.fs_tree(pos.tree)?, key, key, |(_, d)| {
                found = (d.len() >= 160).then(|| Inode {
                    size: le64(d, 16),
                    mode: le32(d, 52),
                });
                ControlFlow::Break(())
            })?;
        Ok(found)
    }

    /// Where `name` in directory `dir` leads: an inode of the same tree, or
    /// the root directory of a subvolume.
    fn child(&self, dir: Pos, name: &[u8]) -> Result<Option<Pos>, BtrfsError> {
        let key = Key::new(dir.ino, DIR_ITEM, name_hash(name));
        let mut item = None;
        self.blocks()
            .search(self.fs_tree(dir.tree)?, key, key, |(_, d)| {
                item = Some(d.to_vec());
                ControlFlow::Break(())
            })?;
        let Some(item) = item else { return Ok(None) };
        let Some(e) = entries(&item)?.into_iter().find(|e| e.name == name) else {
            return Ok(None);
        };
        let loc = e.location;
        match loc.kind {
            INODE_ITEM => Ok(Some(Pos {
                tree: dir.tree,
                ino: loc.objectid,
            })),
            // A subvolume that was deleted keeps no root item: not found.
            ROOT_ITEM if !self.roots.contains_key(&loc.objectid) => Ok(None),
            ROOT_ITEM => Ok(Some(Pos {
                tree: loc.objectid,
                ino: self.root_dir(loc.objectid)?,
            })),
            k => Err(BtrfsError::Corrupt(format!(
                "a directory entry points at an item of type {k}"
            ))),
        }
    }

    /// Names in a directory, in index (creation) order.
    pub(super) fn dir_names(&self, dir: Pos) -> Result<Vec<String>, BtrfsError> {
        let lo = Key::new(dir.ino, DIR_INDEX, 0);
        let hi = Key::new(dir.ino, DIR_INDEX, u64::MAX);
        let items = self
            .blocks()
            .collect(self.fs_tree(dir.tree)?, lo, hi, MAX_ENTRIES)?;
        let mut names = Vec::with_capacity(items.len());
        for (_, d) in items {
            for e in entries(&d)? {
                names.push(String::from_utf8_lossy(&e.name).into_owned());
            }
        }
        Ok(names)
    }

    pub(super) fn link_target(&self, pos: Pos, inode: &Inode) -> Result<String, BtrfsError> {
        if inode.size > MAX_LINK {
            return Err(BtrfsError::Corrupt(format!(
                "a symlink of {} bytes",
                inode.size
            )));
        }
        let data = self.file_data(pos.tree, pos.ino, inode.size)?;
        Ok(String::from_utf8_lossy(&data).into_owned())
    }

    /// `path` from the top level, then (when not found) from the default
    /// subvolume if that is another, else from a root subvolume of a
    /// conventional name ([`ROOT_SUBVOLUMES`]).
    pub(super) fn find(&self, path: &str, follow: bool) -> Result<Option<(Pos, Inode)>, FsError> {
        let err = |e| fs_err(path, e);
        let top = Pos {
            tree: TOP_LEVEL,
            ino: self.root_dir(TOP_LEVEL).map_err(err)?,
        };
        if let Some(found) = self.resolve(top, path, follow)? {
            return Ok(Some(found));
        }
        if self.default != TOP_LEVEL {
            let base = Pos {
                tree: self.default,
                ino: self.root_dir(self.default).map_err(err)?,
            };
            return self.resolve(base, path, follow);
        }
        // Installers that keep the top level as default put the root in a
        // subvolume of a conventional name (GRUB is told which by the
        // prefix in its core image, which we do not read).
        for name in ROOT_SUBVOLUMES {
            let sub = self.child(top, name.as_bytes()).map_err(err)?;
            if let Some(base) = sub.filter(|p| p.tree != TOP_LEVEL) {
                if let Some(found) = self.resolve(base, path, follow)? {
                    return Ok(Some(found));
                }
            }
        }
        Ok(None)
    }

    /// Resolve `path` with `base` as `/`; symlinks inside it are followed
    /// (the last one only when `follow`).
    pub(super) fn resolve(
        &self,
        base: Pos,
        path: &str,
        follow: bool,
    ) -> Result<Option<(Pos, Inode)>, FsError> {
        let err = |e| fs_err(path, e);
        let mut pending: Vec<String> = components(path);
        let mut stack = vec![base];
        let mut links = 0usize;
        let mut steps = 0usize;
        let mut cur = match self.inode(base).map_err(err)? {
            Some(i) => i,
            None => {
                return Err(err(BtrfsError::Corrupt(
                    "a subvolume without its root directory".into(),
                )))
            }
        };
        while let Some(name) = pending.pop() {
            steps += 1;
            if steps > MAX_STEPS {
                return Err(FsError::SymlinkLoop { path: path.into() });
            }
            if name == ".." {
                if stack.len() > 1 {
                    stack.pop();
                }
                cur = self
                    .inode(*stack.last().unwrap())
                    .map_err(err)?
                    .ok_or_else(|| err(BtrfsError::Corrupt("a directory vanished".into())))?;
                continue;
            }
            if !cur.is_dir() {
                return Ok(None);
            }
            let dir = *stack.last().unwrap();
            let Some(pos) = self.child(dir, name.as_bytes()).map_err(err)? else {
                return Ok(None);
            };
            let Some(inode) = self.inode(pos).map_err(err)? else {
                return Ok(None);
            };
            if inode.is_symlink() && (follow || !pending.is_empty()) {
                links += 1;
                if links > MAX_SYMLINKS {
                    return Err(FsError::SymlinkLoop { path: path.into() });
                }
                let target = self.link_target(pos, &inode).map_err(err)?;
                if target.starts_with('/') {
                    stack.truncate(1);
                }
                pending.extend(components(&target));
                cur = self
                    .inode(*stack.last().unwrap())
                    .map_err(err)?
                    .ok_or_else(|| err(BtrfsError::Corrupt("a directory vanished".into())))?;
                continue;
            }
            stack.push(pos);
            cur = inode;
        }
        Ok(Some((*stack.last().unwrap(), cur)))
    }
}

/// Components of a path, reversed (so `pop` yields them in order), with
/// `.` and empty ones dropped; `..` is kept for [`BtrfsFs::resolve`].
fn components(path: &str) -> Vec<String> {
    path.split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .rev()
        .map(str::to_string)
        .collect()
}
