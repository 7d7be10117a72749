//! Firmware boot: SeaBIOS (Debian's `seabios` package) runs the disk's own
//! boot loader, for appliances whose kernel ovf-run cannot find or boot.
//!
//! What SeaBIOS needs from the machine, as on QEMU (SeaBIOS 1.16 source:
//! `src/fw/paravirt.c`, `src/fw/romfile_loader.c`, `src/fw/pciinit.c`):
//! - the image in RAM ending at 1 MiB (it runs from 0xE0000–0xFFFFF and
//!   writes its variables there: no PAM registers here to "shadow" it) and a
//!   read-only copy ending at 4 GiB, where the reset vector is (the vCPU
//!   starts in KVM's reset state, F000:FFF0 with CS base 0xFFFF0000);
//! - fw_cfg at 0x510: the CPU count (it waits for that many CPUs to answer
//!   its SIPI), `etc/e820` (the RAM it hands on through int 15h), no
//!   graphics (so its serial console `sercon` prints to COM1), a
//!   `bootorder` naming the boot disk, the ACPI tables through
//!   `etc/table-loader` (it only finds them that way on a machine without
//!   a PIIX4/ICH9 power management device) and the SMBIOS tables;
//! - the CMOS RTC at 0x70 (memory size and CPU count as a fallback, the
//!   time for int 1Ah);
//! - the in-kernel PIT with the speaker port (its TSC calibration polls
//!   port 0x61), which every VM here has;
//! - PCI BARs that move where it assigns them (`pci_setup`).
//!
//! Not done: NVRAM, option ROMs, a VGA device, the fw_cfg write interface
//! (WRITE_POINTER, e.g. for a VM generation ID), firmware reset without
//! rebuilding the VM (a guest reset rebuilds it, which also restores the
//! image SeaBIOS changed).

use crate::acpi;
use crate::boot::e820::{E820_RAM, E820_RESERVED};
use crate::layout::{FOUR_GIB, HIMEM_START, KVM_IDENTITY_MAP_ADDR, PCI_ECAM_SIZE, PCI_ECAM_START};
use crate::memory::GuestMemory;
use crate::smbios::{self, SmbiosInfo};
use devices::fw_cfg::{e820_file, FwCfg, FwCfgError};
use std::path::{Path, PathBuf};
use vm_memory::{Bytes, GuestAddress, GuestMemoryBackend, GuestMemoryRegion};

/// Debian's `seabios` package's build for QEMU's microvm machine: like this
/// VM, a platform with hardware-reduced ACPI, where the OS never programs
/// the 8259 PIC. The PC build (`bios.bin`) leaves the PIC initialised at
/// vector 8 with IRQ 0 unmasked, and Linux, which under hardware-reduced
/// ACPI leaves the PIC alone, took the first timer tick as a double fault
/// (seen in the test host). This build (HARDWARE_IRQ off) never enables the
/// PIC; GRUB and SeaBIOS time themselves with the TSC.
pub const DEBIAN_BIOS: &str = "/usr/share/seabios/bios-microvm.bin";
/// The largest image that fits below 1 MiB above the option ROM area.
const MAX_IMAGE: usize = 256 << 10;

#[derive(Debug, thiserror::Error)]
pub enum FirmwareError {
    #[error(
        "cannot read the BIOS image {path}: {source}{}",
        if source.kind() == std::io::ErrorKind::NotFound && path == Path::new(DEBIAN_BIOS) {
            " (install Debian's seabios package, or name an image with --bios FILE)"
        } else {
            ""
        }
    )]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "the BIOS image {path} is {size} bytes; a SeaBIOS image is a multiple of 64 KiB, at most 256 KiB"
    )]
    BadSize { path: PathBuf, size: usize },
    #[error("cannot write the BIOS image into guest memory")]
    GuestMemory,
    #[error("cannot set up the BIOS's flash mapping: {0}")]
    Flash(std::io::Error),
    #[error("fw_cfg: {0}")]
    FwCfg(#[from] FwCfgError),
}

/// Read and check a BIOS image.
pub fn read_image(path: &Path) -> Result<Vec<u8>, FirmwareError> {
    let image = std::fs::read(path).map_err(|source| FirmwareError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    if image.is_empty() || image.len() % (64 << 10) != 0 || image.len() > MAX_IMAGE {
        return Err(FirmwareError::BadSize {
            path: path.to_path_buf(),
            size: image.len(),
        });
    }
    Ok(image)
}

/// Copy the image so that it ends at 1 MiB, as a PC's shadowed BIOS does.
pub fn place(mem: &GuestMemory, image: &[u8]) -> Result<(), FirmwareError> {
    let at = HIMEM_START - image.len() as u64;
    mem.write_slice(image, GuestAddress(at))
        .map_err(|_| FirmwareError::GuestMemory)
}

/// The read-only copy of the image that ends at 4 GiB (the flash chip of a
/// PC), as its own KVM memory slot. Keep it alive as long as the VM.
pub struct Flash {
    region: vm_memory::mmap::MmapRegion<()>,
    pub guest_addr: u64,
}

impl Flash {
    pub fn new(image: &[u8]) -> Result<Flash, FirmwareError> {
        let region = vm_memory::mmap::MmapRegion::<()>::new(image.len())
            .map_err(|e| FirmwareError::Flash(std::io::Error::other(e.to_string())))?;
        // SAFETY: the region was just mapped with `image.len()` bytes and
        // nothing else refers to it yet.
        unsafe {
            std::ptr::copy_nonoverlapping(image.as_ptr(), region.as_ptr(), image.len());
        }
        Ok(Flash {
            region,
            guest_addr: FOUR_GIB - image.len() as u64,
        })
    }

    /// Register it with KVM as read-only memory in `slot`.
    pub fn register(&self, vm: &kvm_ioctls::VmFd, slot: u32) -> Result<(), FirmwareError> {
        let r = kvm_bindings::kvm_userspace_memory_region {
            slot,
            flags: kvm_bindings::KVM_MEM_READONLY,
            guest_phys_addr: self.guest_addr,
            memory_size: self.region.size() as u64,
            userspace_addr: self.region.as_ptr() as u64,
        };
        // SAFETY: the mapping lives in `self`, which the VM's owner keeps
        // until the VM file descriptor is closed.
        unsafe { vm.set_user_memory_region(r) }
            .map_err(|e| FirmwareError::Flash(std::io::Error::from_raw_os_error(e.errno())))
    }
}

/// The memory map SeaBIOS reads from `etc/e820` (it carves out its own
/// areas below 1 MiB, as on QEMU): RAM below the hole and above 4 GiB, the
/// PCI ECAM window and KVM's identity map and TSS reserved.
pub fn e820(mem: &GuestMemory) -> Vec<(u64, u64, u32)> {
    let mut map = Vec::new();
    for region in mem.iter() {
        map.push((region.start_addr().0, region.len(), E820_RAM));
    }
    map.push((PCI_ECAM_START, PCI_ECAM_SIZE, E820_RESERVED));
    map.push((KVM_IDENTITY_MAP_ADDR, 0x4000, E820_RESERVED));
    map
}

/// Everything the firmware reads through fw_cfg.
pub struct FirmwareInfo<'a> {
    pub vcpus: u8,
    pub smbios: &'a SmbiosInfo,
    /// The PCI slot of the disk to boot first.
    pub boot_slot: Option<u8>,
}

/// Build the fw_cfg device for SeaBIOS (DMA on, through `mem`).
pub fn fw_cfg(mem: &GuestMemory, info: &FirmwareInfo) -> Result<FwCfg, FirmwareError> {
    let mut f = FwCfg::new(Some(mem.clone()));
    let ram: u64 = mem.iter().map(|r| r.len()).sum();
    f.set_machine(ram, u16::from(info.vcpus));
    f.add_file("etc/e820", e820_file(&e820(mem)))?;
    // No boot menu, and retry after 5 s (not 60) when nothing boots.
    f.add_file("etc/show-boot-menu", 0u16.to_le_bytes().to_vec())?;
    f.add_file("etc/boot-fail-wait", 5000u32.to_le_bytes().to_vec())?;
    if let Some(slot) = info.boot_slot {
        f.add_file("bootorder", bootorder(slot).into_bytes())?;
    }
    let acpi = acpi::loader::build(info.vcpus);
    f.add_file("etc/acpi/tables", acpi.tables)?;
    f.add_file("etc/acpi/rsdp", acpi.rsdp)?;
    f.add_file("etc/table-loader", acpi.loader)?;
    let (anchor, tables) = smbios::build(info.smbios, 0);
    f.add_file("etc/smbios/smbios-anchor", anchor)?;
    f.add_file("etc/smbios/smbios-tables", tables)?;
    Ok(f)
}

/// SeaBIOS's boot order line for the PCI function in `slot` of bus 0 (any
/// device name matches: `build_pci_path` with a `*` glob).
pub fn bootorder(slot: u8) -> String {
    format!("/pci@i0cf8/*@{slot:x}\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn images_of_the_wrong_size_are_refused_with_the_package_named() {
        let dir = std::env::temp_dir().join(format!("ovf-run-bios-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let odd = dir.join("odd.bin");
        std::fs::write(&odd, vec![0u8; 1000]).unwrap();
        assert!(matches!(
            read_image(&odd),
            Err(FirmwareError::BadSize { size: 1000, .. })
        ));
        let big = dir.join("big.bin");
        std::fs::write(&big, vec![0u8; 512 << 10]).unwrap();
        assert!(matches!(
            read_image(&big),
            Err(FirmwareError::BadSize { .. })
        ));
        let ok = dir.join("ok.bin");
        std::fs::write(&ok, vec![0u8; 128 << 10]).unwrap();
        assert_eq!(read_image(&ok).unwrap().len(), 128 << 10);
        std::fs::remove_dir_all(&dir).unwrap();
        let e = FirmwareError::Read {
            path: DEBIAN_BIOS.into(),
            source: std::io::ErrorKind::NotFound.into(),
        };
        assert!(e.to_string().contains("seabios package"), "{e}");
    }

    #[test]
    fn the_image_ends_at_one_mib_and_the_map_has_ram_and_holes() {
        let mem = crate::memory::create(256).unwrap();
        let image: Vec<u8> = (0..128 << 10).map(|i| (i % 251) as u8).collect();
        place(&mem, &image).unwrap();
        let mut tail = [0u8; 16];
        mem.read_slice(&mut tail, GuestAddress(HIMEM_START - 16))
            .unwrap();
        assert_eq!(&tail[..], &image[image.len() - 16..]);
        let map = e820(&mem);
        assert_eq!(map[0], (0, 256 << 20, E820_RAM));
        assert!(map.contains(&(PCI_ECAM_START, PCI_ECAM_SIZE, E820_RESERVED)));
        assert_eq!(bootorder(1), "/pci@i0cf8/*@1\n");
        assert_eq!(bootorder(12), "/pci@i0cf8/*@c\n");
    }

    #[test]
    fn fw_cfg_lists_what_seabios_reads() {
        let mem = crate::memory::create(256).unwrap();
        let info = SmbiosInfo::default();
        let f = fw_cfg(
            &mem,
            &FirmwareInfo {
                vcpus: 2,
                smbios: &info,
                boot_slot: Some(1),
            },
        )
        .unwrap();
        let names = f.file_names();
        for n in [
            "bootorder",
            "etc/acpi/rsdp",
            "etc/acpi/tables",
            "etc/e820",
            "etc/smbios/smbios-anchor",
            "etc/smbios/smbios-tables",
            "etc/table-loader",
        ] {
            assert!(names.iter().any(|x| x == n), "{n} missing from {names:?}");
        }
    }
}
