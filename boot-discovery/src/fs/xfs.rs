//! XFS, read-only, only what finding boot files needs: the superblock,
//! inodes (located arithmetically from their numbers, so no inode-btree
//! walk is needed), data forks in local/extents/btree format, directories in
//! short-form/block/leaf/node form, and symlinks.
//!
//! All structures are big-endian. Every count read from disk is bounded
//! before it sizes an allocation or a loop.

use super::xfs_dir;
use super::BootFs;
use crate::error::FsError;
use crate::view::read_vec;
use block_source::BlockSource;
use std::sync::Arc;

const S_IFMT: u16 = 0o170000;
const S_IFDIR: u16 = 0o040000;
const S_IFREG: u16 = 0o100000;
const S_IFLNK: u16 = 0o120000;
/// Incompat feature bits we must know about to read directories right.
const INCOMPAT_FTYPE: u32 = 1 << 0;
const INCOMPAT_NREXT64: u32 = 1 << 5;
const FEATURES2_FTYPE: u32 = 0x200;
/// Logical byte offset where a directory's leaf blocks start (32 GiB); data
/// blocks, which hold the names, all live below it.
pub const DIR_LEAF_OFFSET: u64 = 32 << 30;
/// No real file has more extents than this; a btree claiming more is hostile.
const MAX_EXTENTS: usize = 1 << 20;
const MAX_SYMLINKS: usize = 40;
/// Real extent btrees are a few levels deep.
const MAX_BTREE_LEVEL: u16 = 8;
/// Blocks one file's extent btree may make us read.
const MAX_BTREE_BLOCKS: usize = 1 << 16;

fn be16(b: &[u8], o: usize) -> u16 {
    u16::from_be_bytes([b[o], b[o + 1]])
}
fn be32(b: &[u8], o: usize) -> u32 {
    u32::from_be_bytes(b[o..o + 4].try_into().unwrap())
}
fn be64(b: &[u8], o: usize) -> u64 {
    u64::from_be_bytes(b[o..o + 8].try_into().unwrap())
}

/// One mapping of file blocks to disk blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Extent {
    /// First file block.
    pub file_block: u64,
    /// First filesystem block (AG-encoded).
    pub fs_block: u64,
    pub count: u64,
    /// Preallocated but never written: reads as zeroes.
    pub unwritten: bool,
}

fn parse_extent(r: &[u8]) -> Extent {
    let hi = be64(r, 0);
    let lo = be64(r, 8);
    Extent {
        unwritten: hi >> 63 != 0,
        file_block: (hi >> 9) & ((1 << 54) - 1),
        fs_block: ((hi & 0x1ff) << 43) | (lo >> 21),
        count: lo & ((1 << 21) - 1),
    }
}

/// A decoded inode: mode, size, and its data fork.
pub struct Inode {
    pub mode: u16,
    pub size: u64,
    pub fork: Fork,
}

pub enum Fork {
    Local(Vec<u8>),
    Extents(Vec<Extent>),
}

pub struct XfsFs {
    src: Arc<dyn BlockSource>,
    pub(super) block_size: u64,
    pub(super) dir_block_size: u64,
    inode_size: u64,
    ag_blocks: u64,
    agblklog: u32,
    inopblog: u32,
    root: u64,
    pub(super) v5: bool,
    pub(super) ftype: bool,
    nrext64: bool,
    uuid: [u8; 16],
    label: String,
}

impl XfsFs {
    pub fn open(src: Arc<dyn BlockSource>) -> Result<Self, String> {
        let sb =
            read_vec(&*src, 0, 512).map_err(|e| format!("cannot read the XFS superblock: {e}"))?;
        if &sb[0..4] != b"XFSB" {
            return Err("no XFS superblock magic".into());
        }
        let block_size = be32(&sb, 4) as u64;
        let version = be16(&sb, 100) & 0xf;
        let inode_size = be16(&sb, 104) as u64;
        let (blocklog, inodelog, inopblog, agblklog, dirblklog) =
            (sb[120], sb[122], sb[123], sb[124], sb[192]);
        let sane = block_size.is_power_of_two()
            && (512..=65536).contains(&block_size)
            && 1u64.checked_shl(blocklog as u32) == Some(block_size)
            && inode_size.is_power_of_two()
            && (256..=2048).contains(&inode_size)
            && 1u64.checked_shl(inodelog as u32) == Some(inode_size)
            && inopblog as u32 + inodelog as u32 == blocklog as u32
            && agblklog > 0
            && agblklog < 32
            && dirblklog < 8;
        if !sane {
            return Err("XFS superblock has impossible geometry (block/inode sizes)".into());
        }
        let v5 = version == 5;
        let incompat = if v5 { be32(&sb, 216) } else { 0 };
        let features2 = be32(&sb, 200);
        let mut uuid = [0u8; 16];
        uuid.copy_from_slice(&sb[32..48]);
        Ok(XfsFs {
            block_size,
            dir_block_size: block_size << dirblklog,
            inode_size,
            ag_blocks: be32(&sb, 84) as u64,
            agblklog: agblklog as u32,
            inopblog: inopblog as u32,
            root: be64(&sb, 56),
            v5,
            ftype: (v5 && incompat & INCOMPAT_FTYPE != 0) || features2 & FEATURES2_FTYPE != 0,
            nrext64: incompat & INCOMPAT_NREXT64 != 0,
            uuid,
            label: String::from_utf8_lossy(&sb[108..120])
                .trim_end_matches('\0')
                .to_string(),
            src,
        })
    }

    /// Byte address of an AG-encoded filesystem block.
    pub(super) fn block_addr(&self, fsb: u64) -> Option<u64> {
        let ag = fsb >> self.agblklog;
        let agb = fsb & ((1u64 << self.agblklog) - 1);
        ag.checked_mul(self.ag_blocks)?
            .checked_add(agb)?
            .checked_mul(self.block_size)
    }

    fn read(&self, offset: u64, len: usize) -> Result<Vec<u8>, String> {
        read_vec(&*self.src, offset, len).map_err(|e| e.to_string())
    }

    pub(super) fn read_inode(&self, ino: u64) -> Result<Inode, String> {
        let ag = ino >> (self.agblklog + self.inopblog);
        let agb = (ino >> self.inopblog) & ((1u64 << self.agblklog) - 1);
        let idx = ino & ((1u64 << self.inopblog) - 1);
        let addr = ag
            .checked_mul(self.ag_blocks)
            .and_then(|b| b.checked_add(agb))
            .and_then(|b| b.checked_mul(self.block_size))
            .and_then(|a| a.checked_add(idx * self.inode_size))
            .ok_or_else(|| format!("inode {ino} is out of range"))?;
        let b = self.read(addr, self.inode_size as usize)?;
        if &b[0..2] != b"IN" {
            return Err(format!("inode {ino} has no inode magic"));
        }
        let mode = be16(&b, 2);
        let version = b[4];
        let format = b[5];
        let size = be64(&b, 56);
        let flags2 = if version >= 3 { be64(&b, 120) } else { 0 };
        let nextents = if self.nrext64 && flags2 & (1 << 4) != 0 {
            be64(&b, 24)
        } else {
            be32(&b, 76) as u64
        };
        let fork_start = if version >= 3 { 176 } else { 100 };
        let forkoff = b[82] as usize * 8;
        let fork_end = if forkoff != 0 {
            (fork_start + forkoff).min(b.len())
        } else {
            b.len()
        };
        if fork_start >= fork_end {
            return Err(format!("inode {ino} has an empty data fork"));
        }
        let fork = &b[fork_start..fork_end];
        let fork = match format {
            1 => Fork::Local(fork[..(size as usize).min(fork.len())].to_vec()),
            2 => {
                let n = (nextents as usize).min(fork.len() / 16);
                Fork::Extents(
                    (0..n)
                        .map(|i| parse_extent(&fork[i * 16..i * 16 + 16]))
                        .collect(),
                )
            }
            3 => {
                let mut out = Vec::new();
                self.btree_root(fork, &mut out)?;
                Fork::Extents(out)
            }
            f => {
                return Err(format!(
                    "inode {ino} has data fork format {f}, which holds no file data"
                ))
            }
        };
        Ok(Inode { mode, size, fork })
    }

    /// The btree root kept in the inode: level, numrecs, keys, pointers.
    fn btree_root(&self, fork: &[u8], out: &mut Vec<Extent>) -> Result<(), String> {
        if fork.len() < 20 {
            return Err("corrupt extent btree root".into());
        }
        let level = be16(fork, 0);
        let n = be16(fork, 2) as usize;
        let maxrecs = (fork.len() - 4) / 16;
        if level == 0 || level > MAX_BTREE_LEVEL || n > maxrecs {
            return Err("corrupt extent btree root".into());
        }
        let mut budget = MAX_BTREE_BLOCKS;
        for i in 0..n {
            let ptr = be64(fork, 4 + maxrecs * 8 + i * 8);
            self.btree_block(ptr, level - 1, out, &mut budget)?;
        }
        Ok(())
    }

    fn btree_block(
        &self,
        fsb: u64,
        level: u16,
        out: &mut Vec<Extent>,
        budget: &mut usize,
    ) -> Result<(), String> {
        // Pointers may repeat (a DAG), so bound the blocks visited, not just depth.
        *budget = budget
            .checked_sub(1)
            .ok_or("extent btree is implausibly large")?;
        let addr = self
            .block_addr(fsb)
            .ok_or("extent btree pointer out of range")?;
        let b = self.read(addr, self.block_size as usize)?;
        let hdr = match &b[0..4] {
            b"BMAP" => 24,
            b"BMA3" => 72,
            _ => return Err("extent btree block has a bad magic".into()),
        };
        if be16(&b, 4) != level {
            return Err("extent btree levels are inconsistent".into());
        }
        let n = be16(&b, 6) as usize;
        if level == 0 {
            let maxrecs = (b.len() - hdr) / 16;
            for i in 0..n.min(maxrecs) {
                if out.len() >= MAX_EXTENTS {
                    return Err("file has too many extents".into());
                }
                out.push(parse_extent(&b[hdr + i * 16..hdr + i * 16 + 16]));
            }
            return Ok(());
        }
        let maxrecs = (b.len() - hdr) / 16;
        for i in 0..n.min(maxrecs) {
            let ptr = be64(&b, hdr + maxrecs * 8 + i * 8);
            self.btree_block(ptr, level - 1, out, budget)?;
        }
        Ok(())
    }

    /// Read `len` bytes of a file at file offset `pos` through its extents;
    /// holes and unwritten extents read as zeroes.
    pub(super) fn read_range(
        &self,
        extents: &[Extent],
        pos: u64,
        len: usize,
    ) -> Result<Vec<u8>, String> {
        let mut buf = vec![0u8; len];
        let end = pos + len as u64;
        for e in extents {
            if e.unwritten {
                continue;
            }
            let e_start = e.file_block.saturating_mul(self.block_size);
            let e_end = e_start.saturating_add(e.count * self.block_size);
            let (s, t) = (e_start.max(pos), e_end.min(end));
            if s >= t {
                continue;
            }
            let disk = self
                .block_addr(e.fs_block)
                .ok_or("extent points outside the filesystem")?
                + (s - e_start);
            let chunk = self.read(disk, (t - s) as usize)?;
            buf[(s - pos) as usize..(t - pos) as usize].copy_from_slice(&chunk);
        }
        Ok(buf)
    }

    fn file_bytes(&self, inode: &Inode, max: u64, path: &str) -> Result<Vec<u8>, FsError> {
        if inode.size > max {
            return Err(FsError::TooLarge {
                path: path.to_string(),
                size: inode.size,
                max,
            });
        }
        match &inode.fork {
            Fork::Local(d) => Ok(d.clone()),
            Fork::Extents(ext) => self
                .read_range(ext, 0, inode.size as usize)
                .map_err(|detail| FsError::Read {
                    path: path.into(),
                    detail,
                }),
        }
    }

    fn symlink_target(&self, inode: &Inode) -> Result<String, String> {
        let size = inode.size.min(4096);
        let data = match &inode.fork {
            Fork::Local(d) => d.clone(),
            Fork::Extents(ext) if !self.v5 => self.read_range(ext, 0, size as usize)?,
            // v5 remote symlink blocks start with a 56-byte header.
            Fork::Extents(ext) => {
                let blk = self.read_range(ext, 0, self.block_size as usize)?;
                if &blk[0..4] != b"XSLM" {
                    return Err("remote symlink block has a bad magic".into());
                }
                blk[56..(56 + size as usize).min(blk.len())].to_vec()
            }
        };
        Ok(String::from_utf8_lossy(&data).into_owned())
    }

    /// Walk a path from the root. `follow_last` decides whether a final
    /// symlink is followed. `Ok(None)` when something on the way is missing.
    fn lookup(&self, path: &str, follow_last: bool) -> Result<Option<(u64, Inode)>, String> {
        let mut pending: Vec<String> = path
            .split('/')
            .rev()
            .filter(|c| !c.is_empty())
            .map(str::to_string)
            .collect();
        let mut stack: Vec<u64> = vec![self.root];
        let mut links = 0;
        let mut cur = (self.root, self.read_inode(self.root)?);
        while let Some(comp) = pending.pop() {
            match comp.as_str() {
                "." => continue,
                ".." => {
                    if stack.len() > 1 {
                        stack.pop();
                    }
                    let ino = *stack.last().unwrap();
                    cur = (ino, self.read_inode(ino)?);
                    continue;
                }
                _ => {}
            }
            if cur.1.mode & S_IFMT != S_IFDIR {
                return Ok(None);
            }
            let Some(child) = xfs_dir::find(self, &cur.1, comp.as_bytes())? else {
                return Ok(None);
            };
            let inode = self.read_inode(child)?;
            if inode.mode & S_IFMT == S_IFLNK && (follow_last || !pending.is_empty()) {
                links += 1;
                if links > MAX_SYMLINKS {
                    return Err("too many levels of symbolic links".into());
                }
                let target = self.symlink_target(&inode)?;
                if target.starts_with('/') {
                    stack.truncate(1);
                }
                pending.extend(
                    target
                        .split('/')
                        .rev()
                        .filter(|c| !c.is_empty())
                        .map(str::to_string),
                );
                let ino = *stack.last().unwrap();
                cur = (ino, self.read_inode(ino)?);
                continue;
            }
            stack.push(child);
            cur = (child, inode);
        }
        Ok(Some(cur))
    }
}

fn read_err(path: &str, detail: String) -> FsError {
    if detail.contains("symbolic links") {
        FsError::SymlinkLoop {
            path: path.to_string(),
        }
    } else {
        FsError::Read {
            path: path.to_string(),
            detail,
        }
    }
}

impl BootFs for XfsFs {
    fn kind(&self) -> &'static str {
        "xfs"
    }

    fn uuid(&self) -> Option<String> {
        let u = &self.uuid;
        Some(format!(
            "{:02x}{:02x}{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}{:02x}{:02x}{:02x}{:02x}",
            u[0], u[1], u[2], u[3], u[4], u[5], u[6], u[7], u[8], u[9], u[10], u[11], u[12], u[13], u[14], u[15]
        ))
    }

    fn label(&self) -> Option<String> {
        (!self.label.is_empty()).then(|| self.label.clone())
    }

    fn read_file(&self, path: &str, max: u64) -> Result<Option<Vec<u8>>, FsError> {
        match self.lookup(path, true).map_err(|d| read_err(path, d))? {
            Some((_, inode)) if inode.mode & S_IFMT == S_IFREG => {
                self.file_bytes(&inode, max, path).map(Some)
            }
            _ => Ok(None),
        }
    }

    fn list_dir(&self, path: &str) -> Result<Option<Vec<String>>, FsError> {
        match self.lookup(path, true).map_err(|d| read_err(path, d))? {
            Some((_, inode)) if inode.mode & S_IFMT == S_IFDIR => {
                let entries = xfs_dir::entries(self, &inode).map_err(|d| read_err(path, d))?;
                Ok(Some(
                    entries
                        .into_iter()
                        .map(|(n, _)| String::from_utf8_lossy(&n).into_owned())
                        .filter(|n| n != "." && n != "..")
                        .collect(),
                ))
            }
            _ => Ok(None),
        }
    }

    fn read_link(&self, path: &str) -> Result<Option<String>, FsError> {
        match self.lookup(path, false).map_err(|d| read_err(path, d))? {
            Some((_, inode)) if inode.mode & S_IFMT == S_IFLNK => self
                .symlink_target(&inode)
                .map(Some)
                .map_err(|d| read_err(path, d)),
            _ => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extent_record_decodes() {
        // startoff=5, startblock spanning both words, blockcount=7, written.
        let fsb: u64 = (3 << 43) | 0x123456;
        let hi: u64 = (5u64 << 9) | (fsb >> 43);
        let lo: u64 = ((fsb & ((1 << 43) - 1)) << 21) | 7;
        let mut r = [0u8; 16];
        r[..8].copy_from_slice(&hi.to_be_bytes());
        r[8..].copy_from_slice(&lo.to_be_bytes());
        assert_eq!(
            parse_extent(&r),
            Extent {
                file_block: 5,
                fs_block: fsb,
                count: 7,
                unwritten: false
            }
        );
    }

    #[test]
    fn garbage_superblock_is_refused() {
        let mut sb = vec![0u8; 4096];
        sb[..4].copy_from_slice(b"XFSB");
        let src: Arc<dyn BlockSource> = Arc::new(block_source::MemorySource::new(sb, true));
        assert!(XfsFs::open(src).err().unwrap().contains("geometry"));
    }
}
