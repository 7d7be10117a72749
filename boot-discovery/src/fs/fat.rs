//! FAT12/16/32, read-only: EFI system partitions and syslinux boot
//! partitions hold boot loader entries (`/loader/entries`,
//! `/syslinux.cfg`) and sometimes the kernels themselves.
//!
//! Names are matched case-insensitively, as FAT does; long file names are
//! assembled from their LFN entries. Cluster chains are bounded by the
//! cluster count, so a looping FAT ends with an error.

use super::BootFs;
use crate::error::FsError;
use crate::view::read_vec;
use block_source::BlockSource;
use std::sync::Arc;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Fat12,
    Fat16,
    Fat32,
}

pub struct FatFs {
    src: Arc<dyn BlockSource>,
    kind: Kind,
    cluster_size: u64,
    fat_offset: u64,
    /// FAT12/16 fixed root directory: (offset, size).
    root_region: (u64, u64),
    root_cluster: u32,
    data_offset: u64,
    clusters: u32,
    serial: u32,
}

#[derive(Debug, Clone)]
struct Entry {
    name: String,
    dir: bool,
    cluster: u32,
    size: u32,
}

fn le16(b: &[u8], o: usize) -> u64 {
    u16::from_le_bytes([b[o], b[o + 1]]) as u64
}
fn le32(b: &[u8], o: usize) -> u64 {
    u32::from_le_bytes(b[o..o + 4].try_into().unwrap()) as u64
}

/// Bound on what one directory may contain (entries read).
const MAX_DIR_BYTES: u64 = 4 << 20;

impl FatFs {
    pub fn open(src: Arc<dyn BlockSource>) -> Result<Self, String> {
        let b =
            read_vec(&*src, 0, 512).map_err(|e| format!("cannot read the FAT boot sector: {e}"))?;
        let bps = le16(&b, 11);
        let spc = b[13] as u64;
        let reserved = le16(&b, 14);
        let nfats = b[16] as u64;
        let root_entries = le16(&b, 17);
        let total = if le16(&b, 19) != 0 {
            le16(&b, 19)
        } else {
            le32(&b, 32)
        };
        let fat_size = if le16(&b, 22) != 0 {
            le16(&b, 22)
        } else {
            le32(&b, 36)
        };
        if !matches!(bps, 512 | 1024 | 2048 | 4096)
            || !spc.is_power_of_two()
            || reserved == 0
            || nfats == 0
            || fat_size == 0
        {
            return Err("FAT boot sector has impossible geometry".into());
        }
        let root_sectors = (root_entries * 32).div_ceil(bps);
        let meta = reserved + nfats * fat_size + root_sectors;
        if total <= meta {
            return Err("FAT filesystem is smaller than its own metadata".into());
        }
        let clusters = (total - meta) / spc;
        let kind = if clusters < 4085 {
            Kind::Fat12
        } else if clusters < 65525 {
            Kind::Fat16
        } else {
            Kind::Fat32
        };
        let serial = if kind == Kind::Fat32 {
            le32(&b, 67)
        } else {
            le32(&b, 39)
        } as u32;
        Ok(FatFs {
            kind,
            cluster_size: spc * bps,
            fat_offset: reserved * bps,
            root_region: ((reserved + nfats * fat_size) * bps, root_sectors * bps),
            root_cluster: if kind == Kind::Fat32 {
                le32(&b, 44) as u32
            } else {
                0
            },
            data_offset: meta * bps,
            clusters: clusters.min(u32::MAX as u64 - 2) as u32,
            serial,
            src,
        })
    }

    fn next_cluster(&self, c: u32) -> Result<Option<u32>, String> {
        let (off, len) = match self.kind {
            Kind::Fat12 => (c as u64 + c as u64 / 2, 2),
            Kind::Fat16 => (c as u64 * 2, 2),
            Kind::Fat32 => (c as u64 * 4, 4),
        };
        let b = read_vec(&*self.src, self.fat_offset + off, len).map_err(|e| e.to_string())?;
        let v = match self.kind {
            Kind::Fat12 => {
                let v = le16(&b, 0) as u32;
                if c & 1 == 1 {
                    v >> 4
                } else {
                    v & 0xfff
                }
            }
            Kind::Fat16 => le16(&b, 0) as u32,
            Kind::Fat32 => le32(&b, 0) as u32 & 0x0fff_ffff,
        };
        let end = match self.kind {
            Kind::Fat12 => 0xff7,
            Kind::Fat16 => 0xfff7,
            Kind::Fat32 => 0x0fff_fff7,
        };
        Ok((v >= 2 && v < end && v < self.clusters + 2).then_some(v))
    }

    /// Read up to `limit` bytes following a cluster chain.
    fn read_chain(&self, first: u32, limit: u64) -> Result<Vec<u8>, String> {
        let mut out = Vec::new();
        let mut c = first;
        let mut steps = 0u32;
        while (out.len() as u64) < limit {
            if c < 2 || c >= self.clusters + 2 {
                break;
            }
            steps += 1;
            if steps > self.clusters {
                return Err("FAT cluster chain loops".into());
            }
            let at = self.data_offset + (c as u64 - 2) * self.cluster_size;
            let n = self.cluster_size.min(limit - out.len() as u64) as usize;
            out.extend(read_vec(&*self.src, at, n).map_err(|e| e.to_string())?);
            match self.next_cluster(c)? {
                Some(n) => c = n,
                None => break,
            }
        }
        Ok(out)
    }

    fn dir_bytes(&self, dir: Option<&Entry>) -> Result<Vec<u8>, String> {
        match dir {
            None if self.kind != Kind::Fat32 => {
                read_vec(&*self.src, self.root_region.0, self.root_region.1 as usize)
                    .map_err(|e| e.to_string())
            }
            None => self.read_chain(self.root_cluster, MAX_DIR_BYTES),
            Some(e) => self.read_chain(e.cluster, MAX_DIR_BYTES),
        }
    }

    fn entries(&self, dir: Option<&Entry>) -> Result<Vec<Entry>, String> {
        let data = self.dir_bytes(dir)?;
        let mut out = Vec::new();
        let mut lfn: Vec<(u8, Vec<u16>)> = Vec::new();
        for d in data.chunks_exact(32) {
            match d[0] {
                0 => break,
                0xe5 => {
                    lfn.clear();
                    continue;
                }
                _ => {}
            }
            let attr = d[11];
            if attr & 0x3f == 0x0f {
                let mut units = Vec::with_capacity(13);
                for r in [1..11, 14..26, 28..32] {
                    units.extend(
                        d[r].chunks_exact(2)
                            .map(|c| u16::from_le_bytes([c[0], c[1]])),
                    );
                }
                lfn.push((d[0] & 0x1f, units));
                continue;
            }
            if attr & 0x08 != 0 {
                lfn.clear();
                continue;
            }
            let name = if lfn.is_empty() {
                short_name(d)
            } else {
                lfn.sort_by_key(|(seq, _)| *seq);
                let units: Vec<u16> = lfn
                    .iter()
                    .flat_map(|(_, u)| u.iter().copied())
                    .take_while(|&u| u != 0 && u != 0xffff)
                    .collect();
                String::from_utf16_lossy(&units)
            };
            lfn.clear();
            if name == "." || name == ".." {
                continue;
            }
            let hi = if self.kind == Kind::Fat32 {
                le16(d, 20) << 16
            } else {
                0
            };
            out.push(Entry {
                name,
                dir: attr & 0x10 != 0,
                cluster: (hi | le16(d, 26)) as u32,
                size: le32(d, 28) as u32,
            });
        }
        Ok(out)
    }

    /// Walk an absolute path; `None` when a component is missing.
    fn lookup(&self, path: &str) -> Result<Option<Option<Entry>>, String> {
        let mut cur: Option<Entry> = None;
        let Some(parts) = super::components(path) else {
            return Ok(None);
        };
        for comp in parts {
            if cur.as_ref().is_some_and(|e| !e.dir) {
                return Ok(None);
            }
            match self
                .entries(cur.as_ref())?
                .into_iter()
                .find(|e| e.name.eq_ignore_ascii_case(comp))
            {
                Some(e) => cur = Some(e),
                None => return Ok(None),
            }
        }
        Ok(Some(cur))
    }
}

fn short_name(d: &[u8]) -> String {
    let lower_base = d[12] & 0x08 != 0;
    let lower_ext = d[12] & 0x10 != 0;
    let conv = |b: &[u8], lower: bool| {
        let s: String = b
            .iter()
            .map(|&c| c as char)
            .collect::<String>()
            .trim_end()
            .to_string();
        if lower {
            s.to_ascii_lowercase()
        } else {
            s
        }
    };
    let mut base = conv(&d[0..8], lower_base);
    if d[0] == 0x05 {
        base.replace_range(0..1, "\u{e5}");
    }
    let ext = conv(&d[8..11], lower_ext);
    if ext.is_empty() {
        base
    } else {
        format!("{base}.{ext}")
    }
}

impl BootFs for FatFs {
    fn kind(&self) -> &'static str {
        "vfat"
    }

    fn uuid(&self) -> Option<String> {
        Some(format!(
            "{:04X}-{:04X}",
            self.serial >> 16,
            self.serial & 0xffff
        ))
    }

    fn read_file(&self, path: &str, max: u64) -> Result<Option<Vec<u8>>, FsError> {
        let err = |detail: String| FsError::Read {
            path: path.to_string(),
            detail,
        };
        match self.lookup(path).map_err(err)? {
            Some(Some(e)) if !e.dir => {
                if e.size as u64 > max {
                    return Err(FsError::TooLarge {
                        path: path.to_string(),
                        size: e.size as u64,
                        max,
                    });
                }
                let data = self.read_chain(e.cluster, e.size as u64).map_err(err)?;
                if data.len() as u64 != e.size as u64 {
                    return Err(FsError::Read {
                        path: path.to_string(),
                        detail: "cluster chain is shorter than the file".into(),
                    });
                }
                Ok(Some(data))
            }
            _ => Ok(None),
        }
    }

    fn read_head(&self, path: &str, len: u64, _max: u64) -> Result<Option<Vec<u8>>, FsError> {
        let err = |detail: String| FsError::Read {
            path: path.to_string(),
            detail,
        };
        match self.lookup(path).map_err(err)? {
            Some(Some(e)) if !e.dir => {
                let want = len.min(e.size as u64);
                let data = self.read_chain(e.cluster, want).map_err(err)?;
                if (data.len() as u64) < want {
                    return Err(err("cluster chain is shorter than the file".into()));
                }
                Ok(Some(data))
            }
            _ => Ok(None),
        }
    }

    fn list_dir(&self, path: &str) -> Result<Option<Vec<String>>, FsError> {
        let err = |detail: String| FsError::Read {
            path: path.to_string(),
            detail,
        };
        match self.lookup(path).map_err(err)? {
            Some(dir) if dir.as_ref().is_none_or(|e| e.dir) => Ok(Some(
                self.entries(dir.as_ref())
                    .map_err(err)?
                    .into_iter()
                    .map(|e| e.name)
                    .collect(),
            )),
            _ => Ok(None),
        }
    }

    fn read_link(&self, _path: &str) -> Result<Option<String>, FsError> {
        Ok(None)
    }
}
