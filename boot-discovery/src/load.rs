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

/// Why a kernel image cannot boot on an x86-64 VM, when its header says so:
/// a bzImage without the 64-bit entry (boot protocol before 2.12, or
/// `xloadflags` bit 0, XLF_KERNEL_64, clear: a 32-bit-only kernel), or a
/// 32-bit ELF. `None` for anything else (unknown formats are left to the
/// loader, which names them).
pub fn kernel_arch_problem(kernel: &[u8]) -> Option<String> {
    let u16_at = |o: usize| {
        kernel
            .get(o..o + 2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]))
    };
    if kernel.get(0x202..0x206) == Some(b"HdrS") {
        let version = u16_at(0x206)?;
        // Boot protocols are 2.00 to 2.xx; anything else is not a header
        // to judge by (the loader names it).
        if !(0x200..=0x2ff).contains(&version) {
            return None;
        }
        let xloadflags = if version >= 0x20c { u16_at(0x236)? } else { 0 };
        return (xloadflags & 1 == 0).then(|| {
            format!(
                "is a 32-bit-only kernel (bzImage boot protocol {}.{:02}, no 64-bit entry point): ovf-run boots x86-64 kernels only; give --kernel with a 64-bit kernel, or --firmware bios",
                version >> 8,
                version & 0xff
            )
        });
    }
    if kernel.starts_with(b"\x7fELF") && kernel.get(4) == Some(&1) {
        return Some("is a 32-bit ELF kernel: ovf-run boots x86-64 kernels only".into());
    }
    None
}

#[cfg(test)]
mod tests {
    use super::kernel_arch_problem;

    fn bzimage(version: u16, xloadflags: u16) -> Vec<u8> {
        let mut k = vec![0u8; 0x400];
        k[0x202..0x206].copy_from_slice(b"HdrS");
        k[0x206..0x208].copy_from_slice(&version.to_le_bytes());
        k[0x236..0x238].copy_from_slice(&xloadflags.to_le_bytes());
        k
    }

    #[test]
    fn only_64_bit_kernels_pass() {
        assert_eq!(kernel_arch_problem(&bzimage(0x20f, 0x7f)), None);
        let p = kernel_arch_problem(&bzimage(0x20f, 0x02)).unwrap();
        assert!(p.contains("32-bit-only") && p.contains("2.15"), "{p}");
        assert!(kernel_arch_problem(&bzimage(0x20a, 0)).is_some());
        let mut elf32 = b"\x7fELF\x01\x01\x01".to_vec();
        elf32.resize(64, 0);
        assert!(kernel_arch_problem(&elf32).is_some());
        elf32[4] = 2;
        assert_eq!(kernel_arch_problem(&elf32), None);
        assert_eq!(kernel_arch_problem(b"short"), None);
        assert_eq!(kernel_arch_problem(&bzimage(0xddbe, 0)), None);
        // A header cut short after the magic is not a verdict.
        assert_eq!(kernel_arch_problem(&bzimage(0x20f, 0)[..0x207]), None);
    }
}
