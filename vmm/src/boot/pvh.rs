//! The PVH boot protocol: `hvm_start_info` + memory map, entered in 32-bit
//! protected mode with `ebx` pointing at the start info.

use super::e820::memory_map;
use super::{place_initrd, BootError};
use crate::layout::{CMDLINE_ADDR, PVH_INFO_ADDR, PVH_MEMMAP_ADDR, PVH_MEMMAP_MAX};
use crate::memory::GuestMemory;
use linux_loader::loader::elf::start_info::{
    hvm_memmap_table_entry, hvm_modlist_entry, hvm_start_info,
};
use vm_memory::{Bytes, GuestAddress};

const XEN_HVM_START_MAGIC: u32 = 0x336e_c578;
/// Right after the start info page's memory map area.
const MODLIST_ADDR: u64 = PVH_INFO_ADDR + 0x80;

fn bytes_of<T: Copy>(v: &T) -> &[u8] {
    // SAFETY: only used with the plain-old-data repr(C) boot structures.
    unsafe { std::slice::from_raw_parts(v as *const T as *const u8, std::mem::size_of::<T>()) }
}

fn write<T: Copy>(mem: &GuestMemory, v: &T, addr: u64) -> Result<(), BootError> {
    mem.write_slice(bytes_of(v), GuestAddress(addr))
        .map_err(|_| BootError::GuestMemory(addr))
}

/// Write the start info; returns its address (the `ebx` value).
pub fn write_start_info(
    mem: &GuestMemory,
    _cmdline_len: usize,
    initrd: Option<&[u8]>,
    rsdp: u64,
    kernel_end: Option<u64>,
) -> Result<u64, BootError> {
    let map = memory_map(mem);
    if map.len() > PVH_MEMMAP_MAX {
        return Err(BootError::TooManyMemoryEntries(map.len()));
    }
    for (i, e) in map.iter().enumerate() {
        let entry = hvm_memmap_table_entry {
            addr: e.addr,
            size: e.size,
            type_: e.kind,
            reserved: 0,
        };
        write(
            mem,
            &entry,
            PVH_MEMMAP_ADDR + (i * std::mem::size_of::<hvm_memmap_table_entry>()) as u64,
        )?;
    }
    let mut info = hvm_start_info {
        magic: XEN_HVM_START_MAGIC,
        version: 1,
        cmdline_paddr: CMDLINE_ADDR,
        rsdp_paddr: rsdp,
        memmap_paddr: PVH_MEMMAP_ADDR,
        memmap_entries: map.len() as u32,
        ..Default::default()
    };
    if let Some(data) = initrd {
        // PVH kernels take the initrd from anywhere in RAM; keep it below
        // 4 GiB and above the kernel like the bzImage path does.
        let addr = place_initrd(mem, data, kernel_end.unwrap_or(0x400_0000), u32::MAX as u64)?;
        let module = hvm_modlist_entry {
            paddr: addr,
            size: data.len() as u64,
            ..Default::default()
        };
        write(mem, &module, MODLIST_ADDR)?;
        info.nr_modules = 1;
        info.modlist_paddr = MODLIST_ADDR;
    }
    write(mem, &info, PVH_INFO_ADDR)?;
    Ok(PVH_INFO_ADDR)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_info_points_at_map_cmdline_and_module() {
        let mem = crate::memory::create(256).unwrap();
        let at = write_start_info(&mem, 3, Some(&[9u8; 100]), 0xe0000, None).unwrap();
        let mut raw = [0u8; 56];
        mem.read_slice(&mut raw, GuestAddress(at)).unwrap();
        assert_eq!(
            u32::from_le_bytes(raw[0..4].try_into().unwrap()),
            XEN_HVM_START_MAGIC
        );
        assert_eq!(
            u32::from_le_bytes(raw[12..16].try_into().unwrap()),
            1,
            "one module"
        );
        assert_eq!(u64::from_le_bytes(raw[32..40].try_into().unwrap()), 0xe0000);
        let mut m = [0u8; 16];
        mem.read_slice(&mut m, GuestAddress(MODLIST_ADDR)).unwrap();
        let paddr = u64::from_le_bytes(m[0..8].try_into().unwrap());
        assert_eq!(paddr, (256 << 20) - 0x1000);
        assert_eq!(mem.read_obj::<u8>(GuestAddress(paddr)).unwrap(), 9);
    }
}
