//! Disk images read in place: raw, VMDK (sparse, streamOptimized, flat and
//! split extents), qcow2, VHD (fixed, dynamic), VHDX and gzip, as
//! [`BlockSource`]s, plus a
//! copy-on-write [`overlay`] and a sparse raw [`export`].
//!
//! The input is always a [`ByteRange`] — a member of an `.ova` tar, a file
//! beside an `.ovf`, or chunks read as one — so nothing is converted or
//! copied before the guest runs (gzip excepted: it cannot be read at
//! random). Every structure read from an image is checked against the
//! image's size before use: a hostile image gives a [`DiskError`], never a
//! panic or an unbounded allocation.

pub mod byte_range;
mod data_ranges;
pub mod error;
pub mod export;
mod grain_cache;
pub mod gzip;
pub mod inflate;
pub mod iso_writer;
pub mod overlay;
mod partial_cleanup;
pub mod qcow2;
pub mod raw;
pub mod sparse_reader;
pub mod vhd;
pub mod vhdx;
pub mod vmdk_descriptor;
mod vmdk_scan;
pub mod vmdk_sparse;

pub use block_source::BlockSource;
pub use byte_range::{ByteRange, ChunkedRange, FileRange, MemRange};
pub use error::DiskError;
pub use export::export_raw;
pub use gzip::{CacheDir, ProgressFn};
pub use overlay::Overlay;
pub use vmdk_descriptor::{DirResolver, ExtentResolver, NoExtents};

use std::sync::Arc;

/// The container formats recognised.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DiskFormat {
    Raw,
    /// A `KDMV` sparse file: monolithicSparse or streamOptimized.
    VmdkSparse,
    /// A VMDK text descriptor naming extent files.
    VmdkDescriptor,
    Qcow2,
    /// Virtual PC / Hyper-V VHD, fixed or dynamic.
    Vhd,
    Vhdx,
    Gzip,
}

impl DiskFormat {
    pub fn name(self) -> &'static str {
        match self {
            DiskFormat::Raw => "raw",
            DiskFormat::VmdkSparse => "VMDK sparse",
            DiskFormat::VmdkDescriptor => "VMDK descriptor",
            DiskFormat::Qcow2 => "qcow2",
            DiskFormat::Vhd => "VHD",
            DiskFormat::Vhdx => "VHDX",
            DiskFormat::Gzip => "gzip",
        }
    }
}

impl DiskFormat {
    /// The format an OVF `ovf:format` URI names, when it is one ovf-run knows.
    pub fn from_ovf_uri(uri: &str) -> Option<DiskFormat> {
        let u = uri.to_ascii_lowercase();
        if u.contains("vmdk") {
            Some(DiskFormat::VmdkSparse)
        } else if u.contains("vhdx") {
            Some(DiskFormat::Vhdx)
        } else if u.contains("vhd") || u.contains("137171") || u.contains("bb676673") {
            Some(DiskFormat::Vhd)
        } else if u.contains("qcow") {
            Some(DiskFormat::Qcow2)
        } else if u.contains("raw") {
            Some(DiskFormat::Raw)
        } else {
            None
        }
    }

    /// The name of what a declaration names (`VMDK` for either VMDK kind).
    fn family_name(self) -> &'static str {
        match self {
            DiskFormat::VmdkSparse | DiskFormat::VmdkDescriptor => "VMDK",
            other => other.name(),
        }
    }

    /// Formats that one declaration covers (a VMDK URI names sparse and
    /// descriptor files alike).
    fn family(self) -> &'static str {
        match self {
            DiskFormat::VmdkSparse | DiskFormat::VmdkDescriptor => "vmdk",
            other => other.name(),
        }
    }
}

/// Recognise a format from the first bytes of an image.
pub fn sniff(head: &[u8]) -> DiskFormat {
    if head.starts_with(vmdk_sparse::MAGIC) {
        DiskFormat::VmdkSparse
    } else if head.starts_with(qcow2::MAGIC) {
        DiskFormat::Qcow2
    } else if head.starts_with(vhdx::MAGIC) {
        DiskFormat::Vhdx
    } else if head.starts_with(vhd::FOOTER_MAGIC) {
        DiskFormat::Vhd
    } else if head.starts_with(&[0x1f, 0x8b]) {
        DiskFormat::Gzip
    } else if looks_like_descriptor(head) {
        DiskFormat::VmdkDescriptor
    } else {
        DiskFormat::Raw
    }
}

fn looks_like_descriptor(head: &[u8]) -> bool {
    let text = String::from_utf8_lossy(head);
    let t = text.trim_start();
    t.starts_with("# Disk DescriptorFile")
        || (t.starts_with('#') && text.contains("createType=") && head.is_ascii())
}

/// Open a disk image for reading.
///
/// `format_hint` is what the package declares (e.g. from the OVF's
/// `ovf:format`); the bytes' own magic wins over it, except that a hint of
/// `Raw` is taken at its word. `resolver` finds the extent files a VMDK
/// descriptor names; `cache` receives decompressed gzip images.
pub fn open_image(
    input: Box<dyn ByteRange>,
    format_hint: Option<DiskFormat>,
    resolver: &dyn ExtentResolver,
    cache: &CacheDir,
) -> Result<Arc<dyn BlockSource>, DiskError> {
    open_depth(Arc::from(input), format_hint, resolver, cache, 0).map(|(s, _)| s)
}

/// An image opened against what a package declares about it.
pub struct Opened {
    pub source: Arc<dyn BlockSource>,
    /// The format found in the bytes (inside gzip, for a compressed file).
    pub format: DiskFormat,
    /// Where the declaration and the content disagree (the content wins).
    pub warnings: Vec<String>,
}

/// Open an image whose package declares a format (an OVF `ovf:format`
/// URI). The bytes decide how it is read; a declaration they contradict
/// is a warning naming both, not an error (exports are often sloppy).
pub fn open_declared(
    input: Box<dyn ByteRange>,
    declared_uri: Option<&str>,
    resolver: &dyn ExtentResolver,
    cache: &CacheDir,
) -> Result<Opened, DiskError> {
    let name = input.name();
    let (source, format) = open_depth(Arc::from(input), None, resolver, cache, 0)?;
    let mut warnings = Vec::new();
    if let Some(uri) = declared_uri {
        match DiskFormat::from_ovf_uri(uri) {
            Some(declared) if declared.family() != format.family() => warnings.push(format!(
                "{name}: declared as {} (ovf:format {uri}) but the content is {}; read as {}",
                declared.family_name(),
                format.name(),
                format.name()
            )),
            _ => {}
        }
    }
    Ok(Opened {
        source,
        format,
        warnings,
    })
}

fn open_depth(
    input: Arc<dyn ByteRange>,
    hint: Option<DiskFormat>,
    resolver: &dyn ExtentResolver,
    cache: &CacheDir,
    depth: u32,
) -> Result<(Arc<dyn BlockSource>, DiskFormat), DiskError> {
    let name = input.name();
    let mut head = vec![0u8; input.len().min(1024) as usize];
    input
        .read_at(&mut head, 0)
        .map_err(|e| DiskError::io(&name, "the first bytes", e))?;
    let mut found = sniff(&head);
    // A fixed VHD is raw bytes with its footer at the end.
    if found == DiskFormat::Raw && hint != Some(DiskFormat::Raw) && vhd::has_fixed_footer(&*input) {
        found = DiskFormat::Vhd;
    }
    let format = match (hint, found) {
        (Some(DiskFormat::Raw), _) => DiskFormat::Raw,
        (Some(declared), DiskFormat::Raw) if declared != DiskFormat::VmdkDescriptor => {
            return Err(DiskError::FormatMismatch {
                name,
                declared: declared.name(),
                what: "its first bytes carry no such magic".into(),
            })
        }
        (_, found) => found,
    };
    let source: Arc<dyn BlockSource> = match format {
        DiskFormat::Raw => Arc::new(raw::RawSource::new(input)),
        DiskFormat::VmdkSparse => Arc::new(vmdk_sparse::open(input)?),
        DiskFormat::VmdkDescriptor => Arc::new(vmdk_descriptor::open(&*input, resolver)?),
        DiskFormat::Qcow2 => Arc::new(qcow2::open(input)?),
        DiskFormat::Vhd => vhd::open(input)?,
        DiskFormat::Vhdx => vhdx::open(input)?,
        DiskFormat::Gzip => {
            if depth > 0 {
                return Err(DiskError::unsupported(&name, "gzip", "gzip inside gzip"));
            }
            let inflated = gzip::inflate_to_cache(&*input, cache)?;
            // The inflated image is sniffed afresh: the hint described it.
            let hint = hint.filter(|h| *h != DiskFormat::Gzip);
            return open_depth(Arc::new(inflated), hint, resolver, cache, depth + 1);
        }
    };
    Ok((source, format))
}

/// Open an image file on the local disk; extents resolve beside it.
pub fn open_path(
    path: &std::path::Path,
    cache: &CacheDir,
) -> Result<Arc<dyn BlockSource>, DiskError> {
    let range =
        FileRange::open(path).map_err(|e| DiskError::local(path, "cannot open the image", e))?;
    let dir = path.parent().map(|p| p.to_path_buf()).unwrap_or_default();
    let dir = if dir.as_os_str().is_empty() {
        ".".into()
    } else {
        dir
    };
    open_image(Box::new(range), None, &DirResolver { dir }, cache)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sniffs_formats() {
        assert_eq!(sniff(b"KDMV\x01\0\0\0"), DiskFormat::VmdkSparse);
        assert_eq!(sniff(b"QFI\xfb\0\0\0\x03"), DiskFormat::Qcow2);
        assert_eq!(sniff(&[0x1f, 0x8b, 8, 0]), DiskFormat::Gzip);
        assert_eq!(
            sniff(b"# Disk DescriptorFile\nversion=1\n"),
            DiskFormat::VmdkDescriptor
        );
        assert_eq!(sniff(&[0u8; 512]), DiskFormat::Raw);
        assert_eq!(sniff(b""), DiskFormat::Raw);
    }

    #[test]
    fn declared_format_without_magic_is_an_error() {
        let cache = CacheDir::new(std::env::temp_dir());
        let r = Box::new(MemRange::new(vec![0u8; 4096], "disk1.vmdk"));
        let e = open_image(r, Some(DiskFormat::VmdkSparse), &NoExtents, &cache)
            .err()
            .unwrap();
        assert!(
            e.to_string()
                .contains("disk1.vmdk: declared as VMDK sparse"),
            "{e}"
        );
    }

    #[test]
    fn gzip_is_inflated_then_sniffed() {
        use std::io::Write;
        let mut data = vec![0u8; 3 << 20];
        data[2 << 20..].fill(0x42);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&data).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let seen = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let s2 = seen.clone();
        let mut cache = CacheDir::new(dir.path());
        cache.progress = Some(Arc::new(move |done, _| {
            s2.store(done, std::sync::atomic::Ordering::Relaxed)
        }));
        let compressed = gz.finish().unwrap();
        let clen = compressed.len() as u64;
        let src = open_image(
            Box::new(MemRange::new(compressed, "d.img.gz")),
            None,
            &NoExtents,
            &cache,
        )
        .unwrap();
        assert_eq!(src.capacity(), 3 << 20);
        let mut back = vec![0u8; 3 << 20];
        src.read_at(&mut back, 0).unwrap();
        assert_eq!(back, data);
        assert_eq!(seen.load(std::sync::atomic::Ordering::Relaxed), clen);
        // Nothing named is left behind in the cache.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
