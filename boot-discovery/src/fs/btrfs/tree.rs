//! B-tree blocks and the range search over them.
//!
//! A tree block is a 101-byte header then either key pointers (interior
//! nodes, level > 0) or item headers whose data fills the block from its
//! end (leaves, level 0). Every block read is checked: its own logical
//! address, its level against what the parent promised, its item count
//! against the block size, its CRC-32C when the filesystem uses that
//! checksum (the others, xxhash/sha256/blake2, are not verified). One search
//! reads at most [`MAX_BLOCKS`] blocks, so a hostile tree whose pointers
//! form a loop or a fan-out to the same blocks ends with an error.

use super::chunks::ChunkMap;
use super::le::{le32, le64, Key};
use super::BtrfsError;
use crate::view::read_vec;
use block_source::BlockSource;
use std::ops::ControlFlow;

const HEADER: usize = 101;
const KEY_PTR: usize = 33;
const ITEM: usize = 25;
/// btrfs trees are at most 8 levels (BTRFS_MAX_LEVEL).
pub const MAX_LEVEL: u8 = 7;
/// Blocks one search may read.
pub const MAX_BLOCKS: usize = 1 << 15;
const CSUM_CRC32C: u16 = 0;

/// A tree: its root block and that block's level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tree {
    pub bytenr: u64,
    pub level: u8,
}

/// What reading tree blocks needs.
pub struct Blocks<'a> {
    pub src: &'a dyn BlockSource,
    pub map: &'a ChunkMap,
    pub node_size: u32,
    pub csum_type: u16,
}

/// One leaf item: its key and its data.
pub type Item<'b> = (Key, &'b [u8]);

impl Blocks<'_> {
    /// Read and check the block at `logical`, expected at `level`.
    pub fn block(&self, logical: u64, level: u8) -> Result<Vec<u8>, BtrfsError> {
        let size = self.node_size as u64;
        let phys = self.map.map(logical, size)?;
        let b = read_vec(self.src, phys, size as usize)
            .map_err(|e| BtrfsError::Io(format!("tree block {logical:#x}: {e}")))?;
        if self.csum_type == CSUM_CRC32C {
            let want = le32(&b, 0);
            let got = crc::Crc::<u32>::new(&crc::CRC_32_ISCSI).checksum(&b[32..]);
            if want != got {
                return Err(BtrfsError::Corrupt(format!(
                    "tree block {logical:#x} fails its checksum"
                )));
            }
        }
        if le64(&b, 0x30) != logical {
            return Err(BtrfsError::Corrupt(format!(
                "tree block {logical:#x} says it is at {:#x}",
                le64(&b, 0x30)
            )));
        }
        if b[0x64] != level {
            return Err(BtrfsError::Corrupt(format!(
                "tree block {logical:#x} is at level {}, expected {level}",
                b[0x64]
            )));
        }
        let n = le32(&b, 0x60) as usize;
        let per = if level == 0 { ITEM } else { KEY_PTR };
        if n > (b.len() - HEADER) / per {
            return Err(BtrfsError::Corrupt(format!(
                "tree block {logical:#x} claims {n} items"
            )));
        }
        Ok(b)
    }

    /// Visit every item with `lo <= key <= hi`, in key order, until `f`
    /// breaks.
    pub fn search<F>(&self, tree: Tree, lo: Key, hi: Key, mut f: F) -> Result<(), BtrfsError>
    where
        F: FnMut(Item) -> ControlFlow<()>,
    {
        if tree.level > MAX_LEVEL {
            return Err(BtrfsError::Corrupt(format!(
                "a tree of {} levels",
                tree.level
            )));
        }
        let mut budget = MAX_BLOCKS;
        self.walk(tree.bytenr, tree.level, lo, hi, &mut f, &mut budget)
            .map(|_| ())
    }

    fn walk<F>(
        &self,
        logical: u64,
        level: u8,
        lo: Key,
        hi: Key,
        f: &mut F,
        budget: &mut usize,
    ) -> Result<ControlFlow<()>, BtrfsError>
    where
        F: FnMut(Item) -> ControlFlow<()>,
    {
        *budget = budget.checked_sub(1).ok_or_else(|| {
            BtrfsError::Corrupt(format!("a search reads more than {MAX_BLOCKS} tree blocks"))
        })?;
        let b = self.block(logical, level)?;
        let n = le32(&b, 0x60) as usize;
        if level == 0 {
            return leaf_items(&b, n, lo, hi, f);
        }
        let key_at = |i: usize| Key::parse(&b[HEADER + i * KEY_PTR..]);
        for i in 0..n {
            // Child i holds keys from key_at(i) up to key_at(i+1).
            if i + 1 < n && key_at(i + 1) <= lo {
                continue;
            }
            if key_at(i) > hi {
                break;
            }
            let ptr = le64(&b, HEADER + i * KEY_PTR + Key::LEN);
            if self.walk(ptr, level - 1, lo, hi, f, budget)?.is_break() {
                return Ok(ControlFlow::Break(()));
            }
        }
        Ok(ControlFlow::Continue(()))
    }

    /// Items with keys in `[lo, hi]`, copied out (for callers that need
    /// more than one); at most `max` of them.
    pub fn collect(
        &self,
        tree: Tree,
        lo: Key,
        hi: Key,
        max: usize,
    ) -> Result<Vec<(Key, Vec<u8>)>, BtrfsError> {
        let mut out = Vec::new();
        let mut over = false;
        self.search(tree, lo, hi, |(k, d)| {
            if out.len() >= max {
                over = true;
                return ControlFlow::Break(());
            }
            out.push((k, d.to_vec()));
            ControlFlow::Continue(())
        })?;
        if over {
            return Err(BtrfsError::Corrupt(format!(
                "more than {max} items where at most that many were expected"
            )));
        }
        Ok(out)
    }
}

fn leaf_items<F>(
    b: &[u8],
    n: usize,
    lo: Key,
    hi: Key,
    f: &mut F,
) -> Result<ControlFlow<()>, BtrfsError>
where
    F: FnMut(Item) -> ControlFlow<()>,
{
    for i in 0..n {
        let h = HEADER + i * ITEM;
        let key = Key::parse(&b[h..]);
        if key < lo {
            continue;
        }
        if key > hi {
            return Ok(ControlFlow::Break(()));
        }
        let off = le32(b, h + Key::LEN) as usize;
        let size = le32(b, h + Key::LEN + 4) as usize;
        let data = HEADER
            .checked_add(off)
            .and_then(|s| Some((s, s.checked_add(size)?)))
            .and_then(|(s, e)| b.get(s..e))
            .ok_or_else(|| BtrfsError::Corrupt(format!("leaf item {i} lies outside its block")))?;
        if f((key, data)).is_break() {
            return Ok(ControlFlow::Break(()));
        }
    }
    Ok(ControlFlow::Continue(()))
}
