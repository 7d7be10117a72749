//! How much of a kernel or initrd discovery reads: the whole file (to
//! boot it) or only its size (to describe it, as `inspect` does). Either
//! way the size is checked against its cap before a byte is read, so a
//! filesystem declaring a 250 MiB kernel costs only the lookup.

use crate::error::FsError;
use crate::fs::BootFs;

/// Kernels: a distribution bzImage is 8–16 MiB, a kernel with everything
/// built in and debug options (but no debug info, which is never booted)
/// stays under 64 MiB. 128 MiB leaves room and refuses absurd sizes.
pub const MAX_KERNEL: u64 = 128 << 20;
/// Initramfs images: host-only ones are 20–80 MiB, generic ones carrying all
/// firmware (Ubuntu, RHEL without host-only) 100–250 MiB. 512 MiB leaves
/// room; the whole image is held in memory when the appliance runs.
pub const MAX_INITRD: u64 = 512 << 20;

/// What discovery reads of the files it picks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Load {
    /// Read kernel and initrd whole: the plan can boot.
    Contents,
    /// Look up their sizes only: the plan describes what would boot.
    SizesOnly,
}

/// A file as discovery loaded it.
pub struct Loaded {
    pub size: u64,
    /// The contents; empty with [`Load::SizesOnly`].
    pub bytes: Vec<u8>,
}

/// Load `path` from `fs` as `load` asks, refusing files larger than `max`
/// before reading them. `Ok(None)` when the file is missing.
pub fn load_file(
    fs: &dyn BootFs,
    path: &str,
    max: u64,
    load: Load,
) -> Result<Option<Loaded>, FsError> {
    match load {
        Load::Contents => Ok(fs.read_file(path, max)?.map(|bytes| Loaded {
            size: bytes.len() as u64,
            bytes,
        })),
        Load::SizesOnly => match fs.file_size(path)? {
            Some(size) if size > max => Err(FsError::TooLarge {
                path: path.to_string(),
                size,
                max,
            }),
            Some(size) => Ok(Some(Loaded {
                size,
                bytes: Vec::new(),
            })),
            None => Ok(None),
        },
    }
}
