//! The archive an OVA comes in: plain tar (read in place), tar compressed
//! with gzip or xz, or zip — the containers virt-v2v accepts.
//!
//! A plain tar and the *stored* members of a zip are byte ranges of the
//! archive, read in place like every other package file. A compressed tar
//! has no random access: it is inflated once, front to back, into an
//! anonymous file in the cache folder (holes kept sparse, the same size cap
//! as gzip disks) and indexed there; the file has no name and vanishes with
//! the process. Deflated zip members are inflated the same way, one
//! anonymous file each. Member names get the same checks as tar names.

use crate::tar_index::{self, TarError, TarMember};
use disk_image::CacheDir;
use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::sync::Arc;

/// How the members are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Container {
    Tar,
    TarGzip,
    TarXz,
    Zip,
}

impl Container {
    pub fn name(self) -> &'static str {
        match self {
            Container::Tar => "tar",
            Container::TarGzip => "tar.gz",
            Container::TarXz => "tar.xz",
            Container::Zip => "zip",
        }
    }
}

/// Recognise a container from the archive's first bytes (at least 512).
pub fn sniff(head: &[u8]) -> Option<Container> {
    if head.starts_with(&[0x1f, 0x8b]) {
        Some(Container::TarGzip)
    } else if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
        Some(Container::TarXz)
    } else if head.starts_with(b"PK\x03\x04") || head.starts_with(b"PK\x05\x06") {
        Some(Container::Zip)
    } else if head.len() >= 262 && &head[257..262] == b"ustar" {
        Some(Container::Tar)
    } else {
        None
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ContainerError {
    #[error("not a usable tar archive: {0}")]
    Tar(#[from] TarError),
    #[error("not a usable zip archive: {0}")]
    Zip(#[from] zip::result::ZipError),
    #[error("the zip archive has more than {0} members")]
    TooManyMembers(usize),
    #[error("zip member '{name}': {what}")]
    ZipMember { name: String, what: String },
    #[error("the {container} stream breaks after {done} decompressed bytes: {source}")]
    Inflate {
        container: &'static str,
        done: u64,
        source: io::Error,
    },
    #[error("{what} inflates to more than the {limit} byte limit")]
    TooLarge { what: String, limit: u64 },
    #[error("{}: {what}: {source}", dir.display())]
    Cache {
        dir: std::path::PathBuf,
        what: &'static str,
        source: io::Error,
    },
}

/// An archive's members, each a byte range of `files[i]`.
pub struct Archive {
    pub container: Container,
    pub members: Vec<TarMember>,
    /// The file each member's bytes are in (the archive, or an inflated copy).
    pub files: Vec<Arc<File>>,
    /// What was done to read it, for `inspect` (inflated into the cache…).
    pub notes: Vec<String>,
}

/// Index an archive of a known container kind.
pub fn open(file: File, kind: Container, cache: &CacheDir) -> Result<Archive, ContainerError> {
    match kind {
        Container::Tar => Ok(in_place_tar(Arc::new(file), kind, Vec::new())?),
        Container::TarGzip => {
            let input = io::BufReader::with_capacity(1 << 20, Progress::new(file, cache));
            inflated_tar(flate2::read::MultiGzDecoder::new(input), kind, cache)
        }
        Container::TarXz => {
            let input = io::BufReader::with_capacity(1 << 20, Progress::new(file, cache));
            inflated_tar(xz2::read::XzDecoder::new_multi_decoder(input), kind, cache)
        }
        Container::Zip => open_zip(file, cache),
    }
}

/// Reads a stream, reporting (bytes read, `total`) to the cache's progress
/// callback (the CLI's "inflating" bar).
struct Progress<'a, R> {
    inner: R,
    done: u64,
    total: u64,
    cache: &'a CacheDir,
}

impl<'a> Progress<'a, File> {
    /// The compressed archive, against its size.
    fn new(file: File, cache: &'a CacheDir) -> Self {
        let total = file.metadata().map(|m| m.len()).unwrap_or(0);
        Progress::of(file, total, cache)
    }
}

impl<'a, R> Progress<'a, R> {
    fn of(inner: R, total: u64, cache: &'a CacheDir) -> Self {
        Progress {
            inner,
            done: 0,
            total,
            cache,
        }
    }
}

impl<R: Read> Read for Progress<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.done += n as u64;
        if let Some(p) = &self.cache.progress {
            p(self.done, self.total);
        }
        Ok(n)
    }
}

fn in_place_tar(
    file: Arc<File>,
    container: Container,
    notes: Vec<String>,
) -> Result<Archive, TarError> {
    let members = tar_index::index(&*file)?;
    let files = vec![file; members.len()];
    Ok(Archive {
        container,
        members,
        files,
        notes,
    })
}

fn inflated_tar(
    reader: impl Read,
    container: Container,
    cache: &CacheDir,
) -> Result<Archive, ContainerError> {
    let (file, len) = inflate_to_cache(reader, container.name(), "the archive", cache)?;
    let note = format!(
        "the archive is a {} ({len} bytes inflated): a compressed tar has no random access, \
         so it was inflated once into the cache folder {} (an unnamed file, gone when ovf-run exits)",
        container.name(),
        cache.dir.display()
    );
    Ok(in_place_tar(Arc::new(file), container, vec![note])?)
}

/// Inflate a stream into an anonymous sparse file in the cache folder,
/// refusing more than `cache.max_inflated_bytes`.
fn inflate_to_cache(
    mut reader: impl Read,
    container: &'static str,
    what: &str,
    cache: &CacheDir,
) -> Result<(File, u64), ContainerError> {
    let cache_err = |what: &'static str| {
        let dir = cache.dir.clone();
        move |source| ContainerError::Cache { dir, what, source }
    };
    std::fs::create_dir_all(&cache.dir).map_err(cache_err("cannot create the cache folder"))?;
    let out = tempfile::tempfile_in(&cache.dir)
        .map_err(cache_err("cannot create a file for the inflated archive"))?;
    const BLOCK: usize = 64 << 10;
    let mut buf = vec![0u8; 1 << 20];
    let mut written = 0u64;
    loop {
        let mut filled = 0;
        while filled < buf.len() {
            match reader.read(&mut buf[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(source) => {
                    return Err(ContainerError::Inflate {
                        container,
                        done: written + filled as u64,
                        source,
                    })
                }
            }
        }
        if filled == 0 {
            break;
        }
        if written + filled as u64 > cache.max_inflated_bytes {
            return Err(ContainerError::TooLarge {
                what: what.to_string(),
                limit: cache.max_inflated_bytes,
            });
        }
        for (i, block) in buf[..filled].chunks(BLOCK).enumerate() {
            if !disk_image::export::is_zero(block) {
                out.write_all_at(block, written + (i * BLOCK) as u64)
                    .map_err(cache_err("cannot write the inflated archive"))?;
            }
        }
        written += filled as u64;
    }
    out.set_len(written)
        .map_err(cache_err("cannot size the inflated archive"))?;
    Ok((out, written))
}

fn open_zip(file: File, cache: &CacheDir) -> Result<Archive, ContainerError> {
    let archive_file = Arc::new(file.try_clone().map_err(zip::result::ZipError::Io)?);
    let mut zip = zip::ZipArchive::new(file)?;
    if zip.len() > tar_index::MAX_MEMBERS {
        return Err(ContainerError::TooManyMembers(tar_index::MAX_MEMBERS));
    }
    let mut archive = Archive {
        container: Container::Zip,
        members: Vec::new(),
        files: Vec::new(),
        notes: Vec::new(),
    };
    let mut inflated = 0u64;
    for i in 0..zip.len() {
        let Some(entry) = zip_entry(&mut zip, i)? else {
            continue;
        };
        if archive.members.iter().any(|m| m.name == entry.name) {
            return Err(entry.error("appears twice"));
        }
        let (file, offset, len) = match entry.method {
            zip::CompressionMethod::Stored => {
                let total = archive_file.metadata().map(|m| m.len()).unwrap_or(0);
                let end = entry.data_start.checked_add(entry.compressed);
                if end.is_none_or(|e| e > total) {
                    return Err(entry.error("its data runs past the end of the archive"));
                }
                (archive_file.clone(), entry.data_start, entry.compressed)
            }
            zip::CompressionMethod::Deflated => {
                let budget = CacheDir {
                    max_inflated_bytes: cache.max_inflated_bytes.saturating_sub(inflated),
                    ..cache.clone()
                };
                let file = inflate_member(&mut zip, i, &entry, &budget)?;
                inflated += entry.size;
                (Arc::new(file), 0, entry.size)
            }
            other => {
                return Err(entry.error(&format!(
                    "compression method {other:?} is not read (stored and deflate are)"
                )))
            }
        };
        archive.members.push(TarMember {
            name: entry.name,
            offset,
            size: len,
        });
        archive.files.push(file);
    }
    if inflated > 0 {
        archive.notes.push(format!(
            "deflated zip members ({inflated} bytes) were inflated once into the cache folder {} \
             (unnamed files, gone when ovf-run exits); stored members are read in place",
            cache.dir.display()
        ));
    }
    Ok(archive)
}

/// What the central directory says about one member.
struct ZipEntry {
    name: String,
    method: zip::CompressionMethod,
    data_start: u64,
    compressed: u64,
    size: u64,
}

impl ZipEntry {
    fn error(&self, what: &str) -> ContainerError {
        ContainerError::ZipMember {
            name: self.name.clone(),
            what: what.to_string(),
        }
    }
}

/// Member `i`, checked like a tar member; `None` for a folder entry.
fn zip_entry(
    zip: &mut zip::ZipArchive<File>,
    i: usize,
) -> Result<Option<ZipEntry>, ContainerError> {
    let entry = zip.by_index_raw(i)?;
    if entry.is_dir() {
        return Ok(None);
    }
    let member_err = |what: &str| ContainerError::ZipMember {
        name: entry.name().to_string(),
        what: what.to_string(),
    };
    if entry.is_symlink() {
        return Err(member_err("is a symbolic link; an OVA needs none"));
    }
    if entry.encrypted() {
        return Err(member_err("is encrypted; ovf-run reads plain members"));
    }
    let name = tar_index::check_name(entry.name()).map_err(|m| member_err(&m))?;
    Ok(Some(ZipEntry {
        name,
        method: entry.compression(),
        data_start: entry.data_start(),
        compressed: entry.compressed_size(),
        size: entry.size(),
    }))
}

/// Inflate a deflated member (CRC checked by the zip reader) into the cache.
fn inflate_member(
    zip: &mut zip::ZipArchive<File>,
    i: usize,
    entry: &ZipEntry,
    budget: &CacheDir,
) -> Result<File, ContainerError> {
    let reader = Progress::of(zip.by_index(i)?, entry.size, budget);
    let what = format!("member '{}'", entry.name);
    let (file, len) = inflate_to_cache(reader, "zip deflate", &what, budget)?;
    if len != entry.size {
        return Err(entry.error(&format!(
            "inflates to {len} bytes, the directory says {}",
            entry.size
        )));
    }
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn cache(dir: &std::path::Path, max: u64) -> CacheDir {
        CacheDir {
            max_inflated_bytes: max,
            ..CacheDir::new(dir)
        }
    }

    #[test]
    fn sniffs_containers() {
        assert_eq!(sniff(&[0x1f, 0x8b, 8]), Some(Container::TarGzip));
        assert_eq!(sniff(b"\xfd7zXZ\0rest"), Some(Container::TarXz));
        assert_eq!(sniff(b"PK\x03\x04...."), Some(Container::Zip));
        let mut tar = [0u8; 512];
        tar[257..262].copy_from_slice(b"ustar");
        assert_eq!(sniff(&tar), Some(Container::Tar));
        assert_eq!(sniff(b"<?xml"), None);
    }

    #[test]
    fn compressed_archive_beyond_the_cap_is_refused_and_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&vec![0u8; 3 << 20]).unwrap();
        let path = dir.path().join("bomb.ova");
        std::fs::write(&path, gz.finish().unwrap()).unwrap();
        let cache_dir = dir.path().join("cache");
        let e = open(
            File::open(&path).unwrap(),
            Container::TarGzip,
            &cache(&cache_dir, 1 << 20),
        )
        .err()
        .expect("refused");
        assert!(
            matches!(e, ContainerError::TooLarge { limit, .. } if limit == 1 << 20),
            "{e}"
        );
        assert_eq!(std::fs::read_dir(&cache_dir).unwrap().count(), 0);
    }

    #[test]
    fn a_broken_stream_says_where_it_breaks() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cut.ova");
        std::fs::write(&path, b"\xfd7zXZ\0\0\x04garbage").unwrap();
        let e = open(
            File::open(&path).unwrap(),
            Container::TarXz,
            &cache(dir.path(), 1 << 30),
        )
        .err()
        .expect("refused");
        assert!(e.to_string().contains("tar.xz stream breaks"), "{e}");
    }
}
