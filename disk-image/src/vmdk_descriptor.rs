//! VMDK text descriptors and the disks made of their extents
//! (monolithicFlat, twoGbMaxExtentSparse/Flat, vmfs, and the descriptor
//! embedded in sparse files).
//!
//! The descriptor only *names* extent files; turning a name into bytes is
//! the caller's job ([`ExtentResolver`]) because only the package layer
//! knows whether names live in a tar or a folder and which names are safe.

use crate::byte_range::ByteRange;
use crate::error::DiskError;
use crate::raw::{RawSource, ZeroSource};
use crate::sparse_reader::SharedCache;
use crate::vmdk_sparse;
use block_source::{check_range, BlockSource};
use std::collections::HashMap;
use std::io;
use std::sync::Arc;

const FORMAT: &str = "VMDK descriptor";
const SECTOR: u64 = 512;
/// Descriptors are a few hundred bytes; anything bigger is not one.
pub const MAX_DESCRIPTOR_BYTES: u64 = 1 << 20;
/// Most extents accepted (a 2 TB twoGbMaxExtent disk has about 1000).
const MAX_EXTENTS: usize = 1 << 16;

/// Turns an extent file name from a descriptor into its bytes.
pub trait ExtentResolver {
    /// `name` is exactly as written in the descriptor, relative to it.
    /// Implementations must refuse names that leave the package
    /// (`..`, absolute paths).
    fn resolve(&self, name: &str) -> io::Result<Box<dyn ByteRange>>;
}

/// For images that must not reference other files.
pub struct NoExtents;

impl ExtentResolver for NoExtents {
    fn resolve(&self, name: &str) -> io::Result<Box<dyn ByteRange>> {
        Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("no extent files can be opened here (wanted {name:?})"),
        ))
    }
}

/// Resolves names to files in one directory, refusing anything that is
/// not a plain file name inside it.
pub struct DirResolver {
    pub dir: std::path::PathBuf,
}

impl ExtentResolver for DirResolver {
    fn resolve(&self, name: &str) -> io::Result<Box<dyn ByteRange>> {
        let path = std::path::Path::new(name);
        let plain = !name.is_empty()
            && path
                .components()
                .all(|c| matches!(c, std::path::Component::Normal(_)));
        if !plain {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!("extent name {name:?} is not a plain relative file name"),
            ));
        }
        Ok(Box::new(crate::byte_range::FileRange::open(
            &self.dir.join(path),
        )?))
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ExtentKind {
    Flat,
    Sparse,
    Zero,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExtentLine {
    pub sectors: u64,
    pub kind: ExtentKind,
    pub file: String,
    /// Start inside the file, in sectors (flat extents only).
    pub offset_sectors: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Descriptor {
    pub create_type: String,
    pub parent_cid: Option<String>,
    pub parent_hint: Option<String>,
    pub extents: Vec<ExtentLine>,
}

impl Descriptor {
    /// Whether the disk is a delta on top of another disk.
    pub fn has_parent(&self) -> bool {
        self.parent_cid
            .as_deref()
            .is_some_and(|c| !c.eq_ignore_ascii_case("ffffffff"))
    }
}

fn unquote(s: &str) -> &str {
    s.trim().trim_matches('"')
}

/// Parse descriptor text. `name` is for error messages.
pub fn parse(name: &str, text: &str) -> Result<Descriptor, DiskError> {
    let mut d = Descriptor::default();
    let mut offset = 0u64;
    for line in text.split('\n') {
        let here = offset;
        offset += line.len() as u64 + 1;
        let line = line.trim_matches(|c: char| c.is_whitespace() || c == '\0');
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let first = line.split_whitespace().next().unwrap_or("");
        if matches!(first, "RW" | "RDONLY" | "NOACCESS") {
            if d.extents.len() >= MAX_EXTENTS {
                return Err(DiskError::malformed(name, FORMAT, here, "too many extents"));
            }
            d.extents.push(parse_extent(name, here, line)?);
        } else if let Some((k, v)) = line.split_once('=') {
            match k.trim() {
                "createType" => d.create_type = unquote(v).to_string(),
                "parentCID" => d.parent_cid = Some(unquote(v).to_string()),
                "parentFileNameHint" => d.parent_hint = Some(unquote(v).to_string()),
                _ => {}
            }
        }
    }
    Ok(d)
}

fn parse_extent(name: &str, at: u64, line: &str) -> Result<ExtentLine, DiskError> {
    let bad = |what: String| DiskError::malformed(name, FORMAT, at, what);
    // ACCESS SIZE TYPE ["FILE" [OFFSET]]; the file name may hold spaces.
    let (head, quoted, tail) = match (line.find('"'), line.rfind('"')) {
        (Some(a), Some(b)) if b > a => (&line[..a], &line[a + 1..b], &line[b + 1..]),
        _ => (line, "", ""),
    };
    let fields: Vec<&str> = head.split_whitespace().collect();
    if fields.len() != 3 {
        return Err(bad(format!(
            "extent line {line:?} is not `ACCESS SECTORS TYPE \"FILE\" [OFFSET]`"
        )));
    }
    if fields[0] == "NOACCESS" {
        return Err(DiskError::unsupported(name, "VMDK", "NOACCESS extents"));
    }
    let sectors: u64 = fields[1]
        .parse()
        .map_err(|_| bad(format!("extent size {:?} is not a number", fields[1])))?;
    let kind = match fields[2] {
        "FLAT" | "VMFS" => ExtentKind::Flat,
        "SPARSE" => ExtentKind::Sparse,
        "ZERO" => ExtentKind::Zero,
        other => {
            return Err(DiskError::unsupported(
                name,
                "VMDK",
                format!("extent type {other}"),
            ))
        }
    };
    let offset_sectors = match tail.trim() {
        "" => 0,
        t => t
            .parse()
            .map_err(|_| bad(format!("extent offset {t:?} is not a number")))?,
    };
    if kind != ExtentKind::Zero && quoted.is_empty() {
        return Err(bad(format!("extent line {line:?} names no file")));
    }
    Ok(ExtentLine {
        sectors,
        kind,
        file: quoted.to_string(),
        offset_sectors,
    })
}

/// A disk made of extents laid end to end.
pub struct ExtentsSource {
    /// (start byte on the disk, source); sorted, contiguous.
    parts: Vec<(u64, Box<dyn BlockSource>)>,
    capacity: u64,
}

impl BlockSource for ExtentsSource {
    fn capacity(&self) -> u64 {
        self.capacity
    }

    fn read_at(&self, mut buf: &mut [u8], mut offset: u64) -> io::Result<()> {
        check_range(self.capacity, offset, buf.len())?;
        while !buf.is_empty() {
            let i = self
                .parts
                .partition_point(|(s, _)| *s <= offset)
                .saturating_sub(1);
            let (start, part) = &self.parts[i];
            let inner = offset - start;
            let n = ((part.capacity() - inner) as usize).min(buf.len());
            let (head, tail) = std::mem::take(&mut buf).split_at_mut(n);
            part.read_at(head, inner)?;
            buf = tail;
            offset += n as u64;
        }
        Ok(())
    }

    fn data_range(&self, offset: u64) -> io::Result<Option<(u64, u64)>> {
        let first = self
            .parts
            .partition_point(|(s, _)| *s <= offset)
            .saturating_sub(1);
        for (start, part) in &self.parts[first..] {
            let inner = offset.saturating_sub(*start);
            if let Some((a, b)) = part.data_range(inner)? {
                return Ok(Some((start + a, start + b)));
            }
        }
        Ok(None)
    }
}

/// Open the disk a text descriptor describes.
pub fn open(
    descriptor: &dyn ByteRange,
    resolver: &dyn ExtentResolver,
) -> Result<ExtentsSource, DiskError> {
    let name = descriptor.name();
    if descriptor.len() > MAX_DESCRIPTOR_BYTES {
        return Err(DiskError::malformed(
            &name,
            FORMAT,
            0,
            format!("{} bytes is too large for a descriptor", descriptor.len()),
        ));
    }
    let mut bytes = vec![0u8; descriptor.len() as usize];
    descriptor
        .read_at(&mut bytes, 0)
        .map_err(|e| DiskError::io(&name, "descriptor", e))?;
    let d = parse(&name, &String::from_utf8_lossy(&bytes))?;
    if d.has_parent() {
        return Err(DiskError::unsupported(
            &name,
            "VMDK",
            format!(
                "a delta disk on top of parent {:?}; only self-contained disks can be read",
                d.parent_hint.unwrap_or_default()
            ),
        ));
    }
    if d.extents.is_empty() {
        return Err(DiskError::malformed(
            &name,
            FORMAT,
            0,
            "descriptor lists no extents",
        ));
    }
    let mut parts: Vec<(u64, Box<dyn BlockSource>)> = Vec::new();
    let mut capacity = 0u64;
    // Each file is resolved and (if sparse) opened once, however many
    // lines name it, and all sparse extents share one grain-cache budget:
    // a descriptor of many lines costs no more memory than its files.
    let mut files: HashMap<&str, Arc<dyn ByteRange>> = HashMap::new();
    let mut sparse_files: HashMap<&str, Arc<vmdk_sparse::SparseSource>> = HashMap::new();
    let cache = SharedCache::new();
    for e in &d.extents {
        let bytes = e
            .sectors
            .checked_mul(SECTOR)
            .filter(|b| capacity.checked_add(*b).is_some_and(|c| c <= 1 << 50))
            .ok_or_else(|| {
                DiskError::malformed(
                    &name,
                    FORMAT,
                    0,
                    "extent sizes add up to an absurd capacity",
                )
            })?;
        if bytes == 0 {
            continue;
        }
        let extent_error = |what: String| DiskError::Extent {
            name: name.clone(),
            extent: e.file.clone(),
            what,
        };
        let source: Box<dyn BlockSource> = match e.kind {
            ExtentKind::Zero => Box::new(ZeroSource { capacity: bytes }),
            ExtentKind::Flat | ExtentKind::Sparse => {
                let range = match files.get(e.file.as_str()) {
                    Some(r) => r.clone(),
                    None => {
                        let r: Arc<dyn ByteRange> = Arc::from(
                            resolver
                                .resolve(&e.file)
                                .map_err(|err| extent_error(err.to_string()))?,
                        );
                        files.insert(&e.file, r.clone());
                        r
                    }
                };
                if e.kind == ExtentKind::Flat {
                    let start = e.offset_sectors.saturating_mul(SECTOR);
                    if start.checked_add(bytes).is_none_or(|end| end > range.len()) {
                        return Err(extent_error(format!(
                            "flat extent needs {bytes} bytes from offset {start} but the file has {}",
                            range.len()
                        )));
                    }
                    Box::new(RawSource::window(range, start, bytes))
                } else {
                    let sparse = match sparse_files.get(e.file.as_str()) {
                        Some(s) => s.clone(),
                        None => {
                            let s = Arc::new(vmdk_sparse::open_shared(range, &cache)?);
                            sparse_files.insert(&e.file, s.clone());
                            s
                        }
                    };
                    if sparse.capacity() < bytes {
                        return Err(extent_error(format!(
                            "sparse extent holds {} bytes, the descriptor says {bytes}",
                            sparse.capacity()
                        )));
                    }
                    Box::new(Window {
                        inner: sparse,
                        capacity: bytes,
                    })
                }
            }
        };
        parts.push((capacity, source));
        capacity += bytes;
    }
    Ok(ExtentsSource { parts, capacity })
}

/// The first `capacity` bytes of a source.
struct Window<S> {
    inner: S,
    capacity: u64,
}

impl<S: BlockSource> BlockSource for Window<S> {
    fn capacity(&self) -> u64 {
        self.capacity
    }
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        check_range(self.capacity, offset, buf.len())?;
        self.inner.read_at(buf, offset)
    }
    fn data_range(&self, offset: u64) -> io::Result<Option<(u64, u64)>> {
        if offset >= self.capacity {
            return Ok(None);
        }
        Ok(self
            .inner
            .data_range(offset)?
            .map(|(a, b)| (a, b.min(self.capacity)))
            .filter(|(a, b)| a < b))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::byte_range::MemRange;

    const TEXT: &str = "# Disk DescriptorFile\nversion=1\nCID=12345678\nparentCID=ffffffff\ncreateType=\"twoGbMaxExtentFlat\"\n\n# Extent description\nRW 4 FLAT \"my disk-f001.vmdk\" 0\nRW 2 ZERO\nRDONLY 4 FLAT \"b.vmdk\" 1\n\nddb.adapterType = \"ide\"\n";

    struct Map(HashMap<String, Vec<u8>>);
    impl ExtentResolver for Map {
        fn resolve(&self, name: &str) -> io::Result<Box<dyn ByteRange>> {
            self.0
                .get(name)
                .map(|b| Box::new(MemRange::new(b.clone(), name)) as Box<dyn ByteRange>)
                .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "missing"))
        }
    }

    #[test]
    fn parses_extents_with_spaces_and_offsets() {
        let d = parse("d", TEXT).unwrap();
        assert_eq!(d.create_type, "twoGbMaxExtentFlat");
        assert!(!d.has_parent());
        assert_eq!(d.extents.len(), 3);
        assert_eq!(d.extents[0].file, "my disk-f001.vmdk");
        assert_eq!(d.extents[1].kind, ExtentKind::Zero);
        assert_eq!(d.extents[2].offset_sectors, 1);
    }

    #[test]
    fn reads_across_extents() {
        let mut files = HashMap::new();
        files.insert("my disk-f001.vmdk".to_string(), vec![1u8; 2048]);
        files.insert("b.vmdk".to_string(), vec![2u8; 2560]);
        let src = open(
            &MemRange::new(TEXT.as_bytes().to_vec(), "d.vmdk"),
            &Map(files),
        )
        .unwrap();
        assert_eq!(src.capacity(), 10 * 512);
        let mut all = vec![9u8; 5120];
        src.read_at(&mut all, 0).unwrap();
        assert!(all[..2048].iter().all(|&b| b == 1));
        assert!(all[2048..3072].iter().all(|&b| b == 0));
        assert!(all[3072..].iter().all(|&b| b == 2));
    }

    #[test]
    fn refuses_parents_missing_files_and_short_extents() {
        let with_parent = TEXT.replace("parentCID=ffffffff", "parentCID=abcdef01");
        let e = open(&MemRange::new(with_parent.into_bytes(), "d"), &NoExtents)
            .err()
            .unwrap();
        assert!(e.to_string().contains("parent"), "{e}");
        let e = open(&MemRange::new(TEXT.as_bytes().to_vec(), "d"), &NoExtents)
            .err()
            .unwrap();
        assert!(e.to_string().contains("my disk-f001.vmdk"), "{e}");
        let mut files = HashMap::new();
        files.insert("my disk-f001.vmdk".to_string(), vec![1u8; 100]);
        let e = open(&MemRange::new(TEXT.as_bytes().to_vec(), "d"), &Map(files))
            .err()
            .unwrap();
        assert!(e.to_string().contains("needs 2048 bytes"), "{e}");
    }

    /// Counts how often each name is resolved.
    struct Counting(Vec<u8>, std::sync::atomic::AtomicUsize);
    impl ExtentResolver for Counting {
        fn resolve(&self, name: &str) -> io::Result<Box<dyn ByteRange>> {
            self.1.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            Ok(Box::new(MemRange::new(self.0.clone(), name)))
        }
    }

    #[test]
    fn a_file_named_by_many_lines_is_opened_once() {
        // A 4 KiB sparse extent (8 sectors, 1 grain) whose one grain is
        // stored uncompressed at sector 3.
        let mut s = vec![0u8; 512 * 3 + 4096];
        s[0..4].copy_from_slice(b"KDMV");
        s[4..8].copy_from_slice(&1u32.to_le_bytes());
        s[12..20].copy_from_slice(&8u64.to_le_bytes());
        s[20..28].copy_from_slice(&8u64.to_le_bytes());
        s[44..48].copy_from_slice(&4u32.to_le_bytes());
        s[56..64].copy_from_slice(&1u64.to_le_bytes());
        s[512..516].copy_from_slice(&2u32.to_le_bytes());
        s[1024..1028].copy_from_slice(&3u32.to_le_bytes());
        s[1536..].fill(0x33);
        let mut text = String::from("# Disk DescriptorFile\ncreateType=\"twoGbMaxExtentSparse\"\n");
        for _ in 0..5000 {
            text.push_str("RW 8 SPARSE \"s.vmdk\"\n");
        }
        let r = Counting(s, Default::default());
        let src = open(&MemRange::new(text.into_bytes(), "d.vmdk"), &r).unwrap();
        assert_eq!(r.1.load(std::sync::atomic::Ordering::Relaxed), 1);
        assert_eq!(src.capacity(), 5000 * 4096);
        let mut buf = vec![0u8; 3 * 4096];
        src.read_at(&mut buf, 4096 * 4000).unwrap();
        assert!(buf.iter().all(|&b| b == 0x33));
    }

    #[test]
    fn dir_resolver_refuses_escapes() {
        let r = DirResolver { dir: "/tmp".into() };
        for bad in ["../etc/passwd", "/etc/passwd", "a/../../b", ""] {
            assert!(r.resolve(bad).is_err(), "{bad}");
        }
    }
}
