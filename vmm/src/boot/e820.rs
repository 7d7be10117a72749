//! The guest's physical memory map, shared by the E820 table (bzImage) and
//! the PVH memory map.

use crate::layout::{
    ACPI_TABLES_ADDR, ACPI_TABLES_END, EBDA_START, FOUR_GIB, HIMEM_START, PCI_ECAM_SIZE,
    PCI_ECAM_START, SMBIOS_ADDR,
};
use crate::memory::GuestMemory;
use vm_memory::{GuestMemoryBackend, GuestMemoryRegion};

pub const E820_RAM: u32 = 1;
pub const E820_RESERVED: u32 = 2;
pub const E820_ACPI: u32 = 3;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryEntry {
    pub addr: u64,
    pub size: u64,
    pub kind: u32,
}

/// RAM below the EBDA, the BIOS area (ACPI tables, then the SMBIOS area), RAM from
/// 1 MiB to the hole, the PCI ECAM window (reserved, so Linux accepts the
/// MCFG), and RAM above 4 GiB.
pub fn memory_map(mem: &GuestMemory) -> Vec<MemoryEntry> {
    let mut map = vec![
        MemoryEntry {
            addr: 0,
            size: EBDA_START,
            kind: E820_RAM,
        },
        MemoryEntry {
            addr: EBDA_START,
            size: ACPI_TABLES_ADDR - EBDA_START,
            kind: E820_RESERVED,
        },
        MemoryEntry {
            addr: ACPI_TABLES_ADDR,
            size: ACPI_TABLES_END - ACPI_TABLES_ADDR,
            kind: E820_ACPI,
        },
        // The system BIOS area of a PC, where the SMBIOS tables are.
        MemoryEntry {
            addr: SMBIOS_ADDR,
            size: HIMEM_START - SMBIOS_ADDR,
            kind: E820_RESERVED,
        },
    ];
    for region in mem.iter() {
        let start = region.start_addr().0;
        let end = start + region.len();
        if start < FOUR_GIB {
            if end > HIMEM_START {
                map.push(MemoryEntry {
                    addr: HIMEM_START,
                    size: end - HIMEM_START,
                    kind: E820_RAM,
                });
            }
        } else {
            map.push(MemoryEntry {
                addr: start,
                size: region.len(),
                kind: E820_RAM,
            });
        }
    }
    map.push(MemoryEntry {
        addr: PCI_ECAM_START,
        size: PCI_ECAM_SIZE,
        kind: E820_RESERVED,
    });
    map.sort_by_key(|e| e.addr);
    map
}

/// End of the RAM that starts at 0 (where the initrd goes, at the top).
pub fn low_ram_end(mem: &GuestMemory) -> u64 {
    mem.iter()
        .find(|r| r.start_addr().0 == 0)
        .map(|r| r.len())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn map_has_no_overlaps_and_reserves_ecam() {
        let mem = crate::memory::create(4096).unwrap();
        let map = memory_map(&mem);
        for w in map.windows(2) {
            assert!(w[0].addr + w[0].size <= w[1].addr, "{map:?}");
        }
        assert!(map
            .iter()
            .any(|e| e.addr == PCI_ECAM_START && e.kind == E820_RESERVED));
        assert_eq!(map.last().unwrap().addr, FOUR_GIB);
        assert_eq!(map.last().unwrap().size, 1 << 30);
        assert_eq!(low_ram_end(&mem), 0xc000_0000);
    }
}
