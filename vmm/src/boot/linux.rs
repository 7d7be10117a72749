//! The Linux boot protocol through the 64-bit entry: the protected-mode
//! part of the bzImage at 16 MiB, `boot_params` in the zero page.

use super::e820::memory_map;
use super::{place_initrd, BootError};
use crate::layout::{CMDLINE_ADDR, ZERO_PAGE_ADDR};
use crate::memory::GuestMemory;
use linux_loader::loader::bootparam::{boot_e820_entry, boot_params};
use linux_loader::loader::{BzImage, KernelLoader};
use std::io::Cursor;
use vm_memory::{Bytes, GuestAddress};

/// "Undefined" boot loader: the kernel honours the initrd only when a
/// loader type is set.
const LOADER_TYPE_UNDEFINED: u8 = 0xff;
const KEEP_SEGMENTS_AND_HEAP: u8 = 0x80;
/// Offset of `startup_64` from the start of the protected-mode code.
const STARTUP_64_OFFSET: u64 = 0x200;
/// XLF_KERNEL_64: the kernel has the 64-bit entry at +0x200.
const XLF_KERNEL_64: u16 = 1;

/// Load `image`; returns (entry, zero page address).
pub fn load_bzimage(
    mem: &GuestMemory,
    image: &[u8],
    at: GuestAddress,
    cmdline_len: usize,
    initrd: Option<&[u8]>,
    rsdp: u64,
) -> Result<(u64, u64), BootError> {
    let r = BzImage::load(mem, Some(at), &mut Cursor::new(image), None)
        .map_err(|e| BootError::Load(e.to_string()))?;
    let mut hdr = r.setup_header.ok_or(BootError::UnknownFormat)?;
    if hdr.version < 0x20c || hdr.xloadflags & XLF_KERNEL_64 == 0 {
        return Err(BootError::Load(format!(
            "the bzImage (boot protocol {:#x}) has no 64-bit entry point",
            { hdr.version }
        )));
    }
    let mut params = boot_params::default();
    hdr.type_of_loader = LOADER_TYPE_UNDEFINED;
    hdr.loadflags |= KEEP_SEGMENTS_AND_HEAP;
    hdr.cmd_line_ptr = CMDLINE_ADDR as u32;
    hdr.cmdline_size = cmdline_len as u32;
    // The kernel decompresses in place and needs `init_size` bytes from
    // where it was loaded; the initrd must stay out of that.
    let kernel_end = at.0 + (hdr.init_size as u64).max(r.kernel_end - at.0);
    if let Some(data) = initrd {
        let limit = if hdr.initrd_addr_max == 0 {
            0x37ff_ffff
        } else {
            hdr.initrd_addr_max as u64
        };
        let addr = place_initrd(mem, data, kernel_end, limit + 1)?;
        hdr.ramdisk_image = addr as u32;
        hdr.ramdisk_size = data.len() as u32;
    }
    params.hdr = hdr;
    params.acpi_rsdp_addr = rsdp;
    let map = memory_map(mem);
    if map.len() > params.e820_table.len() {
        return Err(BootError::TooManyMemoryEntries(map.len()));
    }
    for (slot, e) in params.e820_table.iter_mut().zip(&map) {
        *slot = boot_e820_entry {
            addr: e.addr,
            size: e.size,
            r#type: e.kind,
        };
    }
    params.e820_entries = map.len() as u8;
    // SAFETY: boot_params is plain-old-data of a fixed repr(C) layout.
    let raw = unsafe {
        std::slice::from_raw_parts(
            &params as *const boot_params as *const u8,
            std::mem::size_of::<boot_params>(),
        )
    };
    mem.write_slice(raw, GuestAddress(ZERO_PAGE_ADDR))
        .map_err(|_| BootError::GuestMemory(ZERO_PAGE_ADDR))?;
    Ok((at.0 + STARTUP_64_OFFSET, ZERO_PAGE_ADDR))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal bzImage: setup header and a few bytes of "kernel".
    fn fake_bzimage() -> Vec<u8> {
        let mut img = vec![0u8; 5 * 512 + 4096];
        img[0x1f1] = 4;
        img[0x1fe..0x200].copy_from_slice(&0xaa55u16.to_le_bytes());
        img[0x202..0x206].copy_from_slice(b"HdrS");
        img[0x206..0x208].copy_from_slice(&0x20fu16.to_le_bytes());
        img[0x211] = 1; // loadflags: LOADED_HIGH
        img[0x214..0x218].copy_from_slice(&0x100000u32.to_le_bytes());
        img[0x22c..0x230].copy_from_slice(&0x7fff_ffffu32.to_le_bytes());
        img[0x236..0x238].copy_from_slice(&1u16.to_le_bytes()); // XLF_KERNEL_64
        img[0x260..0x264].copy_from_slice(&0x100_0000u32.to_le_bytes()); // init_size
        img
    }

    #[test]
    fn boot_params_carry_loader_cmdline_initrd_and_e820() {
        let mem = crate::memory::create(256).unwrap();
        let (entry, zp) = load_bzimage(
            &mem,
            &fake_bzimage(),
            GuestAddress(0x100_0000),
            12,
            Some(&[5u8; 3000]),
            0xe0000,
        )
        .unwrap();
        assert_eq!(entry, 0x100_0200);
        let mut p = [0u8; 4096];
        mem.read_slice(&mut p, GuestAddress(zp)).unwrap();
        assert_eq!(p[0x210], 0xff, "type_of_loader");
        assert_eq!(
            u32::from_le_bytes(p[0x228..0x22c].try_into().unwrap()),
            CMDLINE_ADDR as u32
        );
        assert_eq!(u32::from_le_bytes(p[0x238..0x23c].try_into().unwrap()), 12);
        let ramdisk = u32::from_le_bytes(p[0x218..0x21c].try_into().unwrap());
        assert_eq!(ramdisk, (256 << 20) - 0x1000);
        assert_eq!(
            u32::from_le_bytes(p[0x21c..0x220].try_into().unwrap()),
            3000
        );
        assert_eq!(
            u64::from_le_bytes(p[0x70..0x78].try_into().unwrap()),
            0xe0000
        );
        let n = p[0x1e8] as usize;
        assert_eq!(n, memory_map(&mem).len());
        // First entry: RAM from 0.
        assert_eq!(u64::from_le_bytes(p[0x2d0..0x2d8].try_into().unwrap()), 0);
        assert_eq!(u32::from_le_bytes(p[0x2e0..0x2e4].try_into().unwrap()), 1);
    }

    #[test]
    fn refuses_kernels_without_the_64_bit_entry() {
        let mem = crate::memory::create(128).unwrap();
        let mut img = fake_bzimage();
        img[0x236] = 0;
        assert!(load_bzimage(&mem, &img, GuestAddress(0x100_0000), 0, None, 0).is_err());
    }
}
