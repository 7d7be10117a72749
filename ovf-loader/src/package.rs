//! A package as found on disk: an `.ova` archive (tar read in place; zip,
//! tar.gz or tar.xz, see [`crate::container`]), or an `.ovf` with its files
//! beside it (given as the `.ovf`, or as a folder holding exactly one).
//!
//! Everything that leaves this module names bytes by location (file, offset,
//! length) and never copies them: members of an OVA are byte ranges of the
//! archive. Names from the descriptor are checked here, once: no absolute
//! paths, no `..` out of the package, no URLs. A descriptor in a folder of
//! the archive (`subfolder/test.ovf`) has its hrefs resolved in that folder.

use crate::container::{self, Container, ContainerError};
use crate::model::{self, DescriptorError, Envelope};
use crate::tar_index::TarMember;
use disk_image::CacheDir;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PackageKind {
    Ova,
    Ovf,
}

/// One contiguous run of bytes in one host file.
#[derive(Debug, Clone)]
pub struct Extent {
    pub file: Arc<File>,
    pub path: PathBuf,
    pub offset: u64,
    pub len: u64,
}

/// Where a logical package file lives: one extent, or several for an
/// OVF chunked file (`name.000000000`, `name.000000001`, …).
#[derive(Debug, Clone)]
pub struct FileLocation {
    /// The name as the package knows it (member name or relative path).
    pub name: String,
    pub extents: Vec<Extent>,
    pub gzip: bool,
}

impl FileLocation {
    pub fn len(&self) -> u64 {
        self.extents.iter().map(|e| e.len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Read `buf.len()` bytes at `offset` of the logical (still compressed, if gzip) file.
    pub fn read_at(&self, mut buf: &mut [u8], mut offset: u64) -> io::Result<()> {
        for e in &self.extents {
            if buf.is_empty() {
                break;
            }
            if offset >= e.len {
                offset -= e.len;
                continue;
            }
            let n = (e.len - offset).min(buf.len() as u64) as usize;
            e.file.read_exact_at(&mut buf[..n], e.offset + offset)?;
            buf = &mut buf[n..];
            offset = 0;
        }
        if buf.is_empty() {
            Ok(())
        } else {
            Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("read past the end of {}", self.name),
            ))
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PackageError {
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
    #[error("{}: {source}", path.display())]
    Container {
        path: PathBuf,
        source: ContainerError,
    },
    #[error("{}: the folder holds no .ovf descriptor", path.display())]
    NoDescriptorInFolder { path: PathBuf },
    #[error("{}: the folder holds several .ovf descriptors ({names}); name the one to use", path.display())]
    SeveralDescriptors { path: PathBuf, names: String },
    #[error("{}: the archive holds no .ovf descriptor", path.display())]
    NoDescriptor { path: PathBuf },
    #[error("{}: {name} {source}", path.display())]
    Descriptor {
        path: PathBuf,
        name: String,
        source: DescriptorError,
    },
    #[error("{}: not an .ova or .ovf package", .0.display())]
    UnknownKind(PathBuf),
    #[error("{package}: chunked file '{href}': {problem}")]
    BadChunks {
        package: String,
        href: String,
        problem: String,
    },
    #[error("{}: is {what}, not a regular file; packages are read from regular files only", path.display())]
    NotRegularFile { path: PathBuf, what: &'static str },
    #[error("{package}: file '{href}' (id {id}) is not in the package")]
    MissingFile {
        package: String,
        id: String,
        href: String,
    },
    #[error("{package}: file id '{id}' is not listed in References")]
    UnknownFileId { package: String, id: String },
    #[error("{package}: href '{href}' points outside the package; refused")]
    HrefEscapes { package: String, href: String },
    #[error("{package}: href '{href}' is a URL; ovf-run only reads files inside the package")]
    RemoteHref { package: String, href: String },
}

pub struct Package {
    pub path: PathBuf,
    pub kind: PackageKind,
    /// The descriptor's name (member name or file name).
    pub descriptor_name: String,
    pub descriptor: Vec<u8>,
    pub envelope: Envelope,
    /// Members of an OVA in archive order (empty for a folder package).
    pub members: Vec<TarMember>,
    /// How an OVA's members are stored (`None` for a folder package).
    pub container: Option<Container>,
    /// The file each member's bytes are in (parallel to `members`).
    member_files: Vec<Arc<File>>,
    pub warnings: Vec<String>,
}

/// Largest descriptor we read into memory.
const MAX_DESCRIPTOR: u64 = crate::xml::MAX_DOCUMENT_BYTES as u64;

impl Package {
    /// Open a package; compressed archives inflate into ovf-run's cache folder.
    pub fn open(path: &Path) -> Result<Package, PackageError> {
        Self::open_with_cache(path, &Self::default_cache())
    }

    /// Where inflated archives go: `<cache_dir>/inflated`, else the temp folder.
    pub fn default_cache() -> CacheDir {
        let dir = crate::cache_dir()
            .map(|d| d.join("inflated"))
            .unwrap_or_else(|| std::env::temp_dir().join("ovf-run"));
        CacheDir::new(dir)
    }

    /// Open a package; `cache` receives inflated copies of compressed archives.
    pub fn open_with_cache(path: &Path, cache: &CacheDir) -> Result<Package, PackageError> {
        let io_err = |source| PackageError::Io {
            path: path.to_path_buf(),
            source,
        };
        if path.is_dir() {
            return Self::open_folder(path);
        }
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        // Refused before any read: a FIFO or device would block or never end.
        let file = crate::regular_file::open_regular(path)
            .map_err(io_err)?
            .map_err(|what| PackageError::NotRegularFile {
                path: path.to_path_buf(),
                what,
            })?;
        let mut head = [0u8; 512];
        let head_len = read_head(&file, &mut head);
        let sniffed = container::sniff(&head[..head_len]);
        match (ext.as_deref(), sniffed) {
            (Some("ovf") | Some("xml"), _) => Self::open_ovf(path, file),
            (_, Some(kind)) => Self::open_ova(path, file, kind, cache),
            // An .ova that is none of the known containers: the tar reader says why.
            (Some("ova"), None) => Self::open_ova(path, file, Container::Tar, cache),
            (_, None) if head[..head_len].iter().take(64).any(|&b| b == b'<') => {
                Self::open_ovf(path, file)
            }
            _ => Err(PackageError::UnknownKind(path.to_path_buf())),
        }
    }

    /// A folder given as the package: the one `.ovf` inside it.
    fn open_folder(dir: &Path) -> Result<Package, PackageError> {
        let entries = std::fs::read_dir(dir).map_err(|source| PackageError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        let mut found: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e.eq_ignore_ascii_case("ovf")) && p.is_file())
            .collect();
        found.sort();
        match found.as_slice() {
            [] => Err(PackageError::NoDescriptorInFolder {
                path: dir.to_path_buf(),
            }),
            [one] => {
                let file = crate::regular_file::open_regular(one)
                    .map_err(|source| PackageError::Io {
                        path: one.clone(),
                        source,
                    })?
                    .map_err(|what| PackageError::NotRegularFile {
                        path: one.clone(),
                        what,
                    })?;
                Self::open_ovf(one, file)
            }
            many => Err(PackageError::SeveralDescriptors {
                path: dir.to_path_buf(),
                names: many
                    .iter()
                    .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
                    .collect::<Vec<_>>()
                    .join(", "),
            }),
        }
    }

    fn open_ova(
        path: &Path,
        file: File,
        kind: Container,
        cache: &CacheDir,
    ) -> Result<Package, PackageError> {
        let archive =
            container::open(file, kind, cache).map_err(|source| PackageError::Container {
                path: path.to_path_buf(),
                source,
            })?;
        let members = archive.members;
        let mut warnings = archive.notes;
        let (pos, desc) = members
            .iter()
            .enumerate()
            .find(|(_, m)| m.name.to_ascii_lowercase().ends_with(".ovf"))
            .ok_or_else(|| PackageError::NoDescriptor {
                path: path.to_path_buf(),
            })?;
        if pos != 0 {
            warnings.push(format!(
                "the descriptor {} is member {} of the archive; OVF requires it to be first",
                desc.name,
                pos + 1
            ));
        }
        if desc.size > MAX_DESCRIPTOR {
            return Err(PackageError::Descriptor {
                path: path.to_path_buf(),
                name: desc.name.clone(),
                source: DescriptorError {
                    line: 1,
                    column: 1,
                    message: format!("descriptor is {} bytes; too large", desc.size),
                },
            });
        }
        let mut descriptor = vec![0u8; desc.size as usize];
        archive.files[pos]
            .read_exact_at(&mut descriptor, desc.offset)
            .map_err(|source| PackageError::Io {
                path: path.to_path_buf(),
                source,
            })?;
        let envelope =
            model::parse_descriptor(&descriptor).map_err(|source| PackageError::Descriptor {
                path: path.to_path_buf(),
                name: desc.name.clone(),
                source,
            })?;
        let descriptor_name = desc.name.clone();
        let mut pkg = Package {
            path: path.to_path_buf(),
            kind: PackageKind::Ova,
            descriptor_name,
            descriptor,
            envelope,
            members,
            container: Some(archive.container),
            member_files: archive.files,
            warnings,
        };
        pkg.add_size_warnings();
        Ok(pkg)
    }

    fn open_ovf(path: &Path, file: File) -> Result<Package, PackageError> {
        let io_err = |source| PackageError::Io {
            path: path.to_path_buf(),
            source,
        };
        let len = file.metadata().map_err(io_err)?.len();
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if len > MAX_DESCRIPTOR {
            return Err(PackageError::Descriptor {
                path: path.to_path_buf(),
                name,
                source: DescriptorError {
                    line: 1,
                    column: 1,
                    message: format!("descriptor is {len} bytes; too large"),
                },
            });
        }
        let mut descriptor = vec![0u8; len as usize];
        file.read_exact_at(&mut descriptor, 0).map_err(io_err)?;
        let envelope =
            model::parse_descriptor(&descriptor).map_err(|source| PackageError::Descriptor {
                path: path.to_path_buf(),
                name: name.clone(),
                source,
            })?;
        let mut pkg = Package {
            path: path.to_path_buf(),
            kind: PackageKind::Ovf,
            descriptor_name: name,
            descriptor,
            envelope,
            members: Vec::new(),
            container: None,
            member_files: Vec::new(),
            warnings: Vec::new(),
        };
        pkg.add_size_warnings();
        Ok(pkg)
    }

    fn display(&self) -> String {
        self.path.display().to_string()
    }

    /// The folder a folder package's hrefs are relative to.
    pub(crate) fn base_dir(&self) -> PathBuf {
        self.path
            .parent()
            .map(Path::to_path_buf)
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or_else(|| ".".into())
    }

    /// The descriptor's folder inside the archive (`""` at the top, and
    /// always `""` for a folder package, whose names are relative to it).
    pub fn descriptor_dir(&self) -> &str {
        match self.kind {
            PackageKind::Ova => self
                .descriptor_name
                .rsplit_once('/')
                .map(|(d, _)| d)
                .unwrap_or(""),
            PackageKind::Ovf => "",
        }
    }

    /// Normalise an href from the descriptor into a package name (archive
    /// member or path beside the descriptor), refusing escapes and URLs.
    pub fn check_href(&self, href: &str) -> Result<String, PackageError> {
        if href.contains("://") || href.starts_with("http:") || href.starts_with("https:") {
            return Err(PackageError::RemoteHref {
                package: self.display(),
                href: href.into(),
            });
        }
        let href_path = href.strip_prefix("file:").unwrap_or(href);
        self.normalise_in(self.descriptor_dir(), href_path)
            .ok_or_else(|| PackageError::HrefEscapes {
                package: self.display(),
                href: href.into(),
            })
    }

    /// `name` relative to the package folder `dir`, as a package name;
    /// `None` when it is absolute, empty or climbs out of the package.
    pub(crate) fn normalise_in(&self, dir: &str, name: &str) -> Option<String> {
        let mut parts: Vec<String> = dir
            .split('/')
            .filter(|p| !p.is_empty())
            .map(str::to_string)
            .collect();
        for c in Path::new(name).components() {
            match c {
                Component::Normal(p) => parts.push(p.to_string_lossy().into_owned()),
                Component::CurDir => {}
                Component::ParentDir if !parts.is_empty() && self.kind == PackageKind::Ovf => {
                    parts.pop();
                }
                _ => return None,
            }
        }
        (!parts.is_empty()).then(|| parts.join("/"))
    }

    /// Locate a file by package name (a member, or a path beside the descriptor).
    pub fn locate_name(&self, name: &str) -> Result<Option<Extent>, PackageError> {
        let name = self
            .normalise_in("", name)
            .ok_or_else(|| PackageError::HrefEscapes {
                package: self.display(),
                href: name.into(),
            })?;
        if self.kind == PackageKind::Ova {
            return Ok(self
                .members
                .iter()
                .zip(&self.member_files)
                .find(|(m, _)| m.name == name)
                .map(|(m, file)| Extent {
                    file: file.clone(),
                    path: self.path.clone(),
                    offset: m.offset,
                    len: m.size,
                }));
        }
        let base = self.base_dir();
        let candidate = base.join(&name);
        let file = match crate::regular_file::open_regular(&candidate) {
            Ok(Ok(file)) => file,
            Ok(Err(what)) => {
                return Err(PackageError::NotRegularFile {
                    path: candidate,
                    what,
                })
            }
            Err(_) => return Ok(None),
        };
        // A symlink inside the folder may still point outside it.
        let real = candidate
            .canonicalize()
            .map_err(|source| PackageError::Io {
                path: candidate.clone(),
                source,
            })?;
        let real_base = base.canonicalize().map_err(|source| PackageError::Io {
            path: base.clone(),
            source,
        })?;
        if !real.starts_with(&real_base) {
            return Err(PackageError::HrefEscapes {
                package: self.display(),
                href: name,
            });
        }
        let meta = file.metadata().map_err(|source| PackageError::Io {
            path: candidate.clone(),
            source,
        })?;
        if !meta.is_file() {
            return Ok(None);
        }
        Ok(Some(Extent {
            file: Arc::new(file),
            path: candidate,
            offset: 0,
            len: meta.len(),
        }))
    }

    /// Locate a `References/File` by id, joining chunks. A declared
    /// `ovf:size` that disagrees is not an error (the real size wins, as in
    /// virt-v2v): [`Package::open`] warns about it.
    pub fn locate(&self, id: &str) -> Result<FileLocation, PackageError> {
        let reference = self
            .envelope
            .reference(id)
            .ok_or_else(|| PackageError::UnknownFileId {
                package: self.display(),
                id: id.into(),
            })?;
        let name = self.check_href(&reference.href)?;
        let missing = || PackageError::MissingFile {
            package: self.display(),
            id: id.into(),
            href: reference.href.clone(),
        };
        let extents = match reference.chunk_size {
            None => vec![self.locate_name(&name)?.ok_or_else(missing)?],
            Some(chunk_size) => {
                let mut extents = Vec::new();
                for index in 0u32.. {
                    match self.locate_name(&format!("{name}.{index:09}"))? {
                        Some(e) => extents.push(e),
                        None => break,
                    }
                }
                if extents.is_empty() {
                    return Err(missing());
                }
                crate::chunks::check_chunks(
                    &self.display(),
                    &reference.href,
                    chunk_size,
                    reference.size,
                    &extents,
                )?;
                extents
            }
        };
        Ok(FileLocation {
            name,
            extents,
            gzip: reference.compression.as_deref() == Some("gzip"),
        })
    }

    /// Warn about every file whose `ovf:size` is not its real size.
    fn add_size_warnings(&mut self) {
        let mut found = Vec::new();
        for r in &self.envelope.references {
            let (Some(declared), Ok(loc)) = (r.size, self.locate(&r.id)) else {
                continue;
            };
            if declared != loc.len() {
                found.push(format!(
                    "file '{}': ovf:size says {declared} bytes but it is {} bytes; \
                     using the real size (the descriptor's size is stale)",
                    r.href,
                    loc.len()
                ));
            }
        }
        self.warnings.extend(found);
    }

    /// Read a small companion file (manifest, certificate) whole.
    pub fn read_small(&self, name: &str, limit: u64) -> Result<Vec<u8>, PackageError> {
        let extent = self
            .locate_name(name)?
            .ok_or_else(|| PackageError::MissingFile {
                package: self.display(),
                id: name.into(),
                href: name.into(),
            })?;
        if extent.len > limit {
            return Err(PackageError::Io {
                path: extent.path.clone(),
                source: io::Error::other(format!(
                    "{name} is {} bytes; more than the {limit} expected",
                    extent.len
                )),
            });
        }
        let mut buf = vec![0u8; extent.len as usize];
        extent
            .file
            .read_exact_at(&mut buf, extent.offset)
            .map_err(|source| PackageError::Io {
                path: extent.path.clone(),
                source,
            })?;
        Ok(buf)
    }
}

/// Read up to `head.len()` bytes from the start of `file`; how many were read.
fn read_head(file: &File, head: &mut [u8]) -> usize {
    let mut filled = 0;
    while filled < head.len() {
        match file.read_at(&mut head[filled..], filled as u64) {
            Ok(0) | Err(_) => break,
            Ok(n) => filled += n,
        }
    }
    filled
}
