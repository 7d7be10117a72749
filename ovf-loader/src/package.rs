//! A package as found on disk: an `.ova` tar read in place, or an `.ovf`
//! with its files beside it.
//!
//! Everything that leaves this module names bytes by location (file, offset,
//! length) and never copies them: members of an OVA are byte ranges of the
//! archive. Names from the descriptor are checked here, once: no absolute
//! paths, no `..` out of the package, no URLs.

use crate::model::{self, DescriptorError, Envelope};
use crate::tar_index::{self, TarError, TarMember};
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
    #[error("{}: not a usable tar archive: {source}", path.display())]
    Tar { path: PathBuf, source: TarError },
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
    #[error("{package}: file '{href}' is {actual} bytes but the descriptor says {declared}")]
    SizeMismatch {
        package: String,
        href: String,
        declared: u64,
        actual: u64,
    },
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
    archive: Option<Arc<File>>,
    pub warnings: Vec<String>,
}

/// Largest descriptor we read into memory.
const MAX_DESCRIPTOR: u64 = crate::xml::MAX_DOCUMENT_BYTES as u64;

impl Package {
    pub fn open(path: &Path) -> Result<Package, PackageError> {
        let io_err = |source| PackageError::Io {
            path: path.to_path_buf(),
            source,
        };
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        let file = crate::regular_file::open_regular(path)
            .map_err(io_err)?
            .map_err(|what| PackageError::NotRegularFile {
                path: path.to_path_buf(),
                what,
            })?;
        match ext.as_deref() {
            Some("ova") => Self::open_ova(path, file),
            Some("ovf") | Some("xml") => Self::open_ovf(path, file),
            _ => {
                // Sniff: a tar header has "ustar" at 257, or at least a valid checksum.
                let mut head = [0u8; 512];
                if file.read_exact_at(&mut head, 0).is_ok() && &head[257..262] == b"ustar" {
                    Self::open_ova(path, file)
                } else if head.iter().take(64).any(|&b| b == b'<') {
                    Self::open_ovf(path, file)
                } else {
                    Err(PackageError::UnknownKind(path.to_path_buf()))
                }
            }
        }
    }

    fn open_ova(path: &Path, file: File) -> Result<Package, PackageError> {
        let members = tar_index::index(&file).map_err(|source| PackageError::Tar {
            path: path.to_path_buf(),
            source,
        })?;
        let mut warnings = Vec::new();
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
        file.read_exact_at(&mut descriptor, desc.offset)
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
        Ok(Package {
            path: path.to_path_buf(),
            kind: PackageKind::Ova,
            descriptor_name: desc.name.clone(),
            descriptor,
            envelope,
            members,
            archive: Some(Arc::new(file)),
            warnings,
        })
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
        Ok(Package {
            path: path.to_path_buf(),
            kind: PackageKind::Ovf,
            descriptor_name: name,
            descriptor,
            envelope,
            members: Vec::new(),
            archive: None,
            warnings: Vec::new(),
        })
    }

    fn display(&self) -> String {
        self.path.display().to_string()
    }

    /// The folder a folder package's hrefs are relative to.
    fn base_dir(&self) -> PathBuf {
        self.path
            .parent()
            .map(Path::to_path_buf)
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or_else(|| ".".into())
    }

    /// Normalise an href into a package-relative name, refusing escapes and URLs.
    pub fn check_href(&self, href: &str) -> Result<String, PackageError> {
        if href.contains("://") || href.starts_with("http:") || href.starts_with("https:") {
            return Err(PackageError::RemoteHref {
                package: self.display(),
                href: href.into(),
            });
        }
        let href_path = href.strip_prefix("file:").unwrap_or(href);
        let mut parts: Vec<String> = Vec::new();
        for c in Path::new(href_path).components() {
            match c {
                Component::Normal(p) => parts.push(p.to_string_lossy().into_owned()),
                Component::CurDir => {}
                Component::ParentDir if !parts.is_empty() && self.kind == PackageKind::Ovf => {
                    parts.pop();
                }
                _ => {
                    return Err(PackageError::HrefEscapes {
                        package: self.display(),
                        href: href.into(),
                    })
                }
            }
        }
        if parts.is_empty() {
            return Err(PackageError::HrefEscapes {
                package: self.display(),
                href: href.into(),
            });
        }
        Ok(parts.join("/"))
    }

    /// Locate a file by package-relative name (a tar member or a file beside the descriptor).
    pub fn locate_name(&self, name: &str) -> Result<Option<Extent>, PackageError> {
        let name = self.check_href(name)?;
        match &self.archive {
            Some(archive) => Ok(self
                .members
                .iter()
                .find(|m| m.name == name)
                .map(|m| Extent {
                    file: archive.clone(),
                    path: self.path.clone(),
                    offset: m.offset,
                    len: m.size,
                })),
            None => {
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
        }
    }

    /// Locate a `References/File` by id, joining chunks and checking the declared size.
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
        let location = FileLocation {
            name,
            extents,
            gzip: reference.compression.as_deref() == Some("gzip"),
        };
        if let Some(declared) = reference.size {
            if declared != location.len() {
                return Err(PackageError::SizeMismatch {
                    package: self.display(),
                    href: reference.href.clone(),
                    declared,
                    actual: location.len(),
                });
            }
        }
        Ok(location)
    }

    /// Names of every file in the package other than the descriptor
    /// (members of an OVA; files referenced or conventionally beside an OVF).
    pub fn file_names(&self) -> Vec<String> {
        match self.kind {
            PackageKind::Ova => self.members.iter().map(|m| m.name.clone()).collect(),
            PackageKind::Ovf => {
                let stem = self
                    .path
                    .file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let mut names = vec![self.descriptor_name.clone()];
                for ext in ["mf", "cert"] {
                    let n = format!("{stem}.{ext}");
                    if self.base_dir().join(&n).is_file() {
                        names.push(n);
                    }
                }
                for r in &self.envelope.references {
                    if let Ok(name) = self.check_href(&r.href) {
                        names.push(name);
                    }
                }
                names
            }
        }
    }

    /// The manifest (`*.mf`) name, if the package has one.
    pub fn manifest_name(&self) -> Option<String> {
        self.companion("mf")
    }

    /// The signing certificate (`*.cert`) name, if the package has one.
    pub fn certificate_name(&self) -> Option<String> {
        self.companion("cert")
    }

    fn companion(&self, ext: &str) -> Option<String> {
        let stem = self
            .descriptor_name
            .rsplit_once('.')
            .map(|(s, _)| s)
            .unwrap_or(&self.descriptor_name);
        let wanted = format!("{stem}.{ext}");
        let names = self.file_names();
        names
            .iter()
            .find(|n| **n == wanted)
            .or_else(|| {
                names
                    .iter()
                    .find(|n| n.to_ascii_lowercase().ends_with(&format!(".{ext}")))
            })
            .cloned()
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
