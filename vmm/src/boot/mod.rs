//! Loading a kernel and initrd into guest memory and choosing the entry.
//!
//! Order of preference: an ELF with a PVH note boots through PVH; a
//! bzImage whose payload decompresses (on the host) to such an ELF also
//! boots through PVH, which skips the guest's own slow decompression; any
//! other bzImage boots through the Linux 64-bit entry.

pub mod decompress;
pub mod e820;
mod linux;
mod pvh;

use crate::layout::{CMDLINE_ADDR, CMDLINE_MAX, HIMEM_START, KERNEL_LOAD_ADDR};
use crate::memory::GuestMemory;
use crate::vcpu::BootEntry;
use linux_loader::loader::elf::{Elf, PvhBootCapability};
use linux_loader::loader::KernelLoader;
use std::io::Cursor;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use vm_memory::{Bytes, GuestAddress};

/// The kernel to boot.
#[derive(Debug, Clone)]
pub enum Kernel {
    /// A bzImage or an ELF vmlinux on disk.
    Path(PathBuf),
    /// The same, already in memory.
    Bytes(Vec<u8>),
    /// Hand-made 32-bit code, loaded at `load_addr` and entered there in
    /// flat protected mode (tests and experiments).
    Raw { code: Vec<u8>, load_addr: u64 },
    /// No kernel: a PC BIOS image (SeaBIOS) that runs the boot loader of
    /// the first disk ([`crate::firmware`]); the initrd and command line
    /// are not used.
    Bios(PathBuf),
}

/// How a bzImage is booted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BzImageMode {
    /// Decompress on the host and boot PVH when the ELF has the note.
    #[default]
    PreferPvh,
    /// Always let the guest decompress itself (the 64-bit entry).
    GuestDecompress,
}

#[derive(Debug, thiserror::Error)]
pub enum BootError {
    #[error("cannot read the kernel {path}: {source}")]
    ReadKernel {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot read the initrd {path}: {source}")]
    ReadInitrd {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the kernel is neither an ELF vmlinux nor a bzImage")]
    UnknownFormat,
    #[error(
        "the ELF kernel has no PVH entry note (XEN_ELFNOTE_PHYS32_ENTRY); boot its bzImage instead"
    )]
    NoPvhNote,
    #[error("cannot load the kernel: {0}")]
    Load(String),
    #[error(transparent)]
    Decompress(#[from] decompress::DecompressError),
    #[error("the kernel command line is {0} bytes; at most {CMDLINE_MAX} fit")]
    CmdlineTooLong(usize),
    #[error(
        "the initrd ({size} bytes) does not fit in low memory below {limit:#x} above the kernel"
    )]
    InitrdTooLarge { size: u64, limit: u64 },
    #[error("cannot write boot information into guest memory at {0:#x}")]
    GuestMemory(u64),
    #[error("the boot needs {0} memory map entries; at most 128 fit")]
    TooManyMemoryEntries(usize),
}

/// What was loaded and how to start.
#[derive(Debug, Clone)]
pub struct BootSetup {
    pub entry: BootEntry,
    /// "pvh", "linux64" or "raw", for messages and benchmarks.
    pub protocol: &'static str,
    /// Time spent decompressing the kernel on the host, if it was.
    pub host_decompress: Option<Duration>,
}

fn read_kernel(kernel: &Kernel) -> Result<Vec<u8>, BootError> {
    match kernel {
        Kernel::Path(p) => std::fs::read(p).map_err(|source| BootError::ReadKernel {
            path: p.clone(),
            source,
        }),
        Kernel::Bytes(b) => Ok(b.clone()),
        Kernel::Raw { code, .. } => Ok(code.clone()),
        Kernel::Bios(_) => Err(BootError::Load(
            "a BIOS image is firmware, not a kernel".into(),
        )),
    }
}

fn is_bzimage(img: &[u8]) -> bool {
    img.len() > 0x206 && &img[0x202..0x206] == b"HdrS"
}

/// Load an ELF; `Ok(None)` when it has no PVH note.
fn load_pvh_elf(mem: &GuestMemory, elf: &[u8]) -> Result<Option<u64>, BootError> {
    let r = Elf::load(
        mem,
        None,
        &mut Cursor::new(elf),
        Some(GuestAddress(HIMEM_START)),
    )
    .map_err(|e| BootError::Load(e.to_string()))?;
    match r.pvh_boot_cap {
        PvhBootCapability::PvhEntryPresent(a) => Ok(Some(a.0)),
        _ => Ok(None),
    }
}

/// Load everything and write the boot information; `rsdp` is where the
/// ACPI tables start.
pub fn load(
    mem: &GuestMemory,
    kernel: &Kernel,
    initrd: Option<&PathBuf>,
    cmdline: &str,
    mode: BzImageMode,
    rsdp: u64,
) -> Result<BootSetup, BootError> {
    if let Kernel::Raw { code, load_addr } = kernel {
        mem.write_slice(code, GuestAddress(*load_addr))
            .map_err(|_| BootError::GuestMemory(*load_addr))?;
        return Ok(BootSetup {
            entry: BootEntry::Flat32 {
                entry: *load_addr,
                ebx: 0,
            },
            protocol: "raw",
            host_decompress: None,
        });
    }
    if cmdline.len() + 1 > CMDLINE_MAX {
        return Err(BootError::CmdlineTooLong(cmdline.len()));
    }
    let mut c = cmdline.as_bytes().to_vec();
    c.push(0);
    mem.write_slice(&c, GuestAddress(CMDLINE_ADDR))
        .map_err(|_| BootError::GuestMemory(CMDLINE_ADDR))?;

    let image = read_kernel(kernel)?;
    let initrd_data = match initrd {
        Some(p) => Some(std::fs::read(p).map_err(|source| BootError::ReadInitrd {
            path: p.clone(),
            source,
        })?),
        None => None,
    };

    if image.starts_with(b"\x7fELF") {
        let entry = load_pvh_elf(mem, &image)?.ok_or(BootError::NoPvhNote)?;
        let ebx = pvh::write_start_info(mem, cmdline.len(), initrd_data.as_deref(), rsdp, None)?;
        return Ok(BootSetup {
            entry: BootEntry::Flat32 { entry, ebx },
            protocol: "pvh",
            host_decompress: None,
        });
    }
    if !is_bzimage(&image) {
        return Err(BootError::UnknownFormat);
    }
    if mode == BzImageMode::PreferPvh {
        let started = Instant::now();
        match decompress::vmlinux(&image) {
            Ok(elf) => {
                let took = started.elapsed();
                if let Some(entry) = load_pvh_elf(mem, &elf)? {
                    let ebx = pvh::write_start_info(
                        mem,
                        cmdline.len(),
                        initrd_data.as_deref(),
                        rsdp,
                        None,
                    )?;
                    return Ok(BootSetup {
                        entry: BootEntry::Flat32 { entry, ebx },
                        protocol: "pvh",
                        host_decompress: Some(took),
                    });
                }
                tracing::info!("the bzImage's kernel has no PVH note; booting the bzImage");
            }
            Err(e) => tracing::info!(
                "not decompressing the kernel on the host ({e}); booting the bzImage"
            ),
        }
    }
    let (entry, rsi) = linux::load_bzimage(
        mem,
        &image,
        GuestAddress(KERNEL_LOAD_ADDR),
        cmdline.len(),
        initrd_data.as_deref(),
        rsdp,
    )?;
    Ok(BootSetup {
        entry: BootEntry::Long64 { entry, rsi },
        protocol: "linux64",
        host_decompress: None,
    })
}

/// Put the initrd at the top of low memory (below `limit`), page aligned,
/// above `kernel_end`.
pub(crate) fn place_initrd(
    mem: &GuestMemory,
    data: &[u8],
    kernel_end: u64,
    limit: u64,
) -> Result<u64, BootError> {
    let top = e820::low_ram_end(mem).min(limit);
    let size = data.len() as u64;
    let addr = top.checked_sub(size).map(|a| a & !0xfff);
    match addr {
        Some(a) if a >= kernel_end => {
            mem.write_slice(data, GuestAddress(a))
                .map_err(|_| BootError::GuestMemory(a))?;
            Ok(a)
        }
        _ => Err(BootError::InitrdTooLarge { size, limit: top }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn initrd_goes_to_the_top_of_low_memory() {
        let mem = crate::memory::create(128).unwrap();
        let a = place_initrd(&mem, &[1u8; 5000], 0x200_0000, u32::MAX as u64).unwrap();
        assert_eq!(a, (128 << 20) - 0x2000);
        let a = place_initrd(&mem, &[1u8; 10], 0x200_0000, 0x400_0000).unwrap();
        assert_eq!(a, 0x400_0000 - 0x1000);
        assert!(place_initrd(&mem, &vec![0u8; 127 << 20], 0x200_0000, u64::MAX).is_err());
    }

    #[test]
    fn garbage_kernels_are_refused() {
        let mem = crate::memory::create(64).unwrap();
        let r = load(
            &mem,
            &Kernel::Bytes(vec![0u8; 4096]),
            None,
            "",
            BzImageMode::PreferPvh,
            0,
        );
        assert!(matches!(r, Err(BootError::UnknownFormat)));
        let r = load(
            &mem,
            &Kernel::Bytes(b"\x7fELF\x02\x01".repeat(20)),
            None,
            "",
            BzImageMode::PreferPvh,
            0,
        );
        assert!(matches!(r, Err(BootError::Load(_))));
    }
}
