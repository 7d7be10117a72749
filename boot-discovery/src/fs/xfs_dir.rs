//! XFS directories: short-form (inside the inode), and block/leaf/node
//! forms, whose names all live in "data" blocks below the 32 GiB logical
//! offset. Reading just the data blocks covers every non-inline form, so
//! the hash-ordered leaf and free-space blocks are never needed.

use super::xfs::{Fork, Inode, XfsFs, DIR_LEAF_OFFSET};

/// A directory bigger than this is not a boot directory; stop reading.
const MAX_DIR_BYTES: u64 = 64 << 20;

fn be16(b: &[u8], o: usize) -> usize {
    u16::from_be_bytes([b[o], b[o + 1]]) as usize
}

fn be_n(b: &[u8], o: usize, n: usize) -> u64 {
    b[o..o + n]
        .iter()
        .fold(0u64, |acc, &x| (acc << 8) | x as u64)
}

/// All `(name, inode)` pairs of a directory.
pub fn entries(fs: &XfsFs, dir: &Inode) -> Result<Vec<(Vec<u8>, u64)>, String> {
    match &dir.fork {
        Fork::Local(d) => short_form(fs, d),
        Fork::Extents(ext) => {
            let dbs = fs.dir_block_size;
            let mut out = Vec::new();
            let mut seen_blocks = 0u64;
            let mut last = None;
            for e in ext {
                let start = e.file_block.saturating_mul(fs.block_size);
                let end = start
                    .saturating_add(e.count * fs.block_size)
                    .min(DIR_LEAF_OFFSET);
                let mut off = start - start % dbs;
                while off < end {
                    if last != Some(off) {
                        seen_blocks += 1;
                        if seen_blocks * dbs > MAX_DIR_BYTES {
                            return Err("directory is implausibly large".into());
                        }
                        let blk = fs.read_range(ext, off, dbs as usize)?;
                        data_block(fs, &blk, &mut out)?;
                        last = Some(off);
                    }
                    off += dbs;
                }
            }
            Ok(out)
        }
    }
}

/// Look up one name.
pub fn find(fs: &XfsFs, dir: &Inode, name: &[u8]) -> Result<Option<u64>, String> {
    Ok(entries(fs, dir)?
        .into_iter()
        .find(|(n, _)| n == name)
        .map(|(_, i)| i))
}

fn short_form(fs: &XfsFs, d: &[u8]) -> Result<Vec<(Vec<u8>, u64)>, String> {
    let bad = || "corrupt short-form directory".to_string();
    if d.len() < 2 {
        return Err(bad());
    }
    let count = d[0] as usize;
    let ino_len = if d[1] != 0 { 8 } else { 4 };
    let mut pos = 2 + ino_len;
    let mut out = Vec::with_capacity(count);
    for _ in 0..count {
        let namelen = *d.get(pos).ok_or_else(bad)? as usize;
        let name_at = pos + 3;
        let ino_at = name_at + namelen + usize::from(fs.ftype);
        if ino_at + ino_len > d.len() {
            return Err(bad());
        }
        out.push((
            d[name_at..name_at + namelen].to_vec(),
            be_n(d, ino_at, ino_len),
        ));
        pos = ino_at + ino_len;
    }
    Ok(out)
}

fn data_block(fs: &XfsFs, b: &[u8], out: &mut Vec<(Vec<u8>, u64)>) -> Result<(), String> {
    let (hdr, is_block) = match &b[0..4] {
        b"XD2B" => (16, true),
        b"XD2D" => (16, false),
        b"XDB3" => (64, true),
        b"XDD3" => (64, false),
        // A hole or free-index block inside the data range: nothing to read.
        _ => return Ok(()),
    };
    let end = if is_block {
        let count = u32::from_be_bytes(b[b.len() - 8..b.len() - 4].try_into().unwrap()) as usize;
        b.len()
            .checked_sub(8 + count.checked_mul(8).ok_or("bad directory leaf count")?)
            .ok_or("bad directory leaf count")?
    } else {
        b.len()
    };
    let mut pos = hdr;
    while pos + 11 <= end {
        if be16(b, pos) == 0xffff {
            let len = be16(b, pos + 2);
            if len < 8 || len & 7 != 0 {
                return Err("corrupt free space in a directory block".into());
            }
            pos += len;
            continue;
        }
        let ino = be_n(b, pos, 8);
        let namelen = b[pos + 8] as usize;
        if pos + 9 + namelen > end {
            return Err("directory entry runs past its block".into());
        }
        out.push((b[pos + 9..pos + 9 + namelen].to_vec(), ino));
        let size = 8 + 1 + namelen + usize::from(fs.ftype) + 2;
        pos += size.div_ceil(8) * 8;
    }
    Ok(())
}
