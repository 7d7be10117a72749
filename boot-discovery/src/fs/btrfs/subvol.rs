//! Subvolumes as the root tree records them: the default one (the
//! `default` entry of directory 6 in the root tree), each subvolume's path
//! from the top level (ROOT_BACKREF items, then INODE_REF items up from the
//! directory holding it), and the path prefixes under which the kernel's
//! root mount (`rootflags=subvol=`/`subvolid=`) finds its files.

use super::le::{le16, le64, Key};
use super::{BtrfsError, BtrfsFs, ROOT_ITEM, TOP_LEVEL};
use std::collections::BTreeMap;
use std::ops::ControlFlow;

const ROOT_TREE_DIR: u64 = 6;
const DIR_ITEM: u8 = 84;
const INODE_REF: u8 = 12;
const ROOT_BACKREF: u8 = 144;
/// Nesting of subvolumes and of directories we follow upwards.
const MAX_DEPTH: usize = 256;
/// Parent directories one subvolume listing may look up in all (real
/// layouts need a few per subvolume; a hostile one could ask for depth
/// times the number of subvolumes).
const MAX_LOOKUPS: usize = 1 << 14;

/// A subvolume: its id and its path from the top level, without a leading
/// slash (`@`, `@/.snapshots/1/snapshot`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subvolume {
    pub id: u64,
    pub path: String,
}

/// ROOT_BACKREF: subvolume → (parent subvolume, directory in it, name).
type Backrefs = BTreeMap<u64, (u64, u64, String)>;

impl BtrfsFs {
    pub(super) fn default_subvolume(&self) -> Result<u64, BtrfsError> {
        let key = Key::new(ROOT_TREE_DIR, DIR_ITEM, super::le::name_hash(b"default"));
        let mut id = TOP_LEVEL;
        self.blocks().search(self.root_tree(), key, key, |(_, d)| {
            // location key (17), transid, data_len, name_len, type, name
            if d.len() >= 30 + 7 && &d[30..37] == b"default" && d[8] == ROOT_ITEM {
                id = le64(d, 0);
            }
            ControlFlow::Break(())
        })?;
        // A default that is not an FS tree we know falls back to the top.
        Ok(if self.roots.contains_key(&id) {
            id
        } else {
            TOP_LEVEL
        })
    }

    fn backrefs(&self) -> Result<Backrefs, BtrfsError> {
        let lo = Key::new(256, ROOT_BACKREF, 0);
        let hi = Key::new(u64::MAX, ROOT_BACKREF, u64::MAX);
        let mut refs = BTreeMap::new();
        self.blocks().search(self.root_tree(), lo, hi, |(k, d)| {
            if k.kind == ROOT_BACKREF && d.len() >= 18 {
                let n = le16(d, 16) as usize;
                if let Some(name) = d.get(18..18 + n) {
                    let name = String::from_utf8_lossy(name).into_owned();
                    refs.insert(k.objectid, (k.offset, le64(d, 0), name));
                }
            }
            if refs.len() > super::MAX_SUBVOLUMES {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        })?;
        Ok(refs)
    }

    /// Every subvolume but the top level, with its path.
    pub fn subvolumes(&self) -> Result<Vec<Subvolume>, BtrfsError> {
        let refs = self.backrefs()?;
        let mut out = Vec::new();
        let mut budget = MAX_LOOKUPS;
        for &id in self.roots.keys().filter(|&&id| id != TOP_LEVEL) {
            if let Some(path) = self.subvol_path(id, &refs, &mut budget)? {
                out.push(Subvolume { id, path });
            }
        }
        Ok(out)
    }

    /// Path of subvolume `id` from the top level; `None` when it hangs
    /// nowhere (deleted, or an orphan).
    fn subvol_path(
        &self,
        id: u64,
        refs: &Backrefs,
        budget: &mut usize,
    ) -> Result<Option<String>, BtrfsError> {
        let mut parts: Vec<String> = Vec::new();
        let mut cur = id;
        for _ in 0..MAX_DEPTH {
            if cur == TOP_LEVEL {
                parts.reverse();
                return Ok(Some(parts.join("/")));
            }
            let Some((parent, dir, name)) = refs.get(&cur) else {
                return Ok(None);
            };
            parts.push(name.clone());
            if !self.roots.contains_key(parent) {
                return Ok(None);
            }
            parts.extend(self.dir_path(*parent, *dir, budget)?.into_iter().rev());
            cur = *parent;
        }
        Err(BtrfsError::Corrupt("subvolumes nested too deep".into()))
    }

    /// Names from subvolume `tree`'s root directory down to `dir`.
    fn dir_path(
        &self,
        tree: u64,
        mut dir: u64,
        budget: &mut usize,
    ) -> Result<Vec<String>, BtrfsError> {
        let root = self.root_dir(tree)?;
        let fs_tree = self.fs_tree(tree)?;
        let mut names = Vec::new();
        for _ in 0..MAX_DEPTH {
            if dir == root {
                names.reverse();
                return Ok(names);
            }
            *budget = budget.checked_sub(1).ok_or_else(|| {
                BtrfsError::Corrupt("subvolumes hang in too many directories".into())
            })?;
            let lo = Key::new(dir, INODE_REF, 0);
            let hi = Key::new(dir, INODE_REF, u64::MAX);
            let mut up = None;
            self.blocks().search(fs_tree, lo, hi, |(k, d)| {
                if d.len() >= 10 {
                    let n = le16(d, 8) as usize;
                    let name = d.get(10..10 + n).unwrap_or_default();
                    up = Some((k.offset, String::from_utf8_lossy(name).into_owned()));
                }
                ControlFlow::Break(())
            })?;
            let (parent, name) =
                up.ok_or_else(|| BtrfsError::Corrupt(format!("directory {dir} has no parent")))?;
            names.push(name);
            dir = parent;
        }
        Err(BtrfsError::Corrupt("directories nested too deep".into()))
    }

    /// Path prefixes, best first, under which the root filesystem a kernel
    /// mounts with these `rootflags=` (comma-separated options) has its
    /// files: `subvol=`, else `subvolid=`, else the default subvolume, and
    /// then the top level and each subvolume as guesses.
    pub(super) fn mount_prefixes(&self, rootflags: Option<&str>) -> Vec<String> {
        let subvols = self.subvolumes().unwrap_or_default();
        let prefix = |p: &str| {
            let p = p.trim_matches('/');
            if p.is_empty() {
                String::new()
            } else {
                format!("/{p}")
            }
        };
        let by_id = |id: u64| -> Option<String> {
            if id == TOP_LEVEL {
                return Some(String::new());
            }
            subvols.iter().find(|s| s.id == id).map(|s| prefix(&s.path))
        };
        let opts = rootflags.unwrap_or("").split(',');
        let mut named = None;
        for o in opts {
            if let Some(p) = o.strip_prefix("subvol=") {
                named = Some(prefix(p));
            } else if let Some(id) = o.strip_prefix("subvolid=") {
                named = named.or_else(|| id.parse().ok().and_then(by_id));
            }
        }
        if let Some(p) = named {
            return vec![p];
        }
        let mut out = vec![by_id(self.default).unwrap_or_default(), String::new()];
        out.extend(subvols.iter().map(|s| prefix(&s.path)));
        out.dedup();
        let mut seen = std::collections::BTreeSet::new();
        out.retain(|p| seen.insert(p.clone()));
        out
    }
}
