//! The guest physical address map. One place, so boot code, ACPI tables
//! and devices agree.
//!
//! ```text
//! 0x0000_0500  GDT                      0x0000_7000  boot_params (zero page)
//! 0x0000_6000  PVH hvm_start_info       0x0000_9000  page tables (bzImage 64-bit entry)
//! 0x0000_6100  PVH memory map           0x0002_0000  kernel command line
//! 0x0009_fc00  EBDA .. 0x10_0000 reserved; the VM generation ID at
//!              0x000d_f000, ACPI tables from 0x000e_0000, SMBIOS entry
//!              point and tables from 0x000f_0000
//! 0x0100_0000  kernel (bzImage protected-mode part)
//! 0xc000_0000  PCI MMIO window (BARs)   0xe000_0000  PCI ECAM (bus 0)
//! 0xfec0_0000  IOAPIC                   0xfee0_0000  local APIC
//! 0x1_0000_0000 RAM above the hole
//! ```

pub const GDT_ADDR: u64 = 0x500;
pub const PVH_INFO_ADDR: u64 = 0x6000;
pub const PVH_MEMMAP_ADDR: u64 = 0x6100;
/// Room for the PVH memory map entries (24 bytes each) before 0x7000.
pub const PVH_MEMMAP_MAX: usize = (0x7000 - 0x6100) / 24;
pub const ZERO_PAGE_ADDR: u64 = 0x7000;
pub const BOOT_STACK_TOP: u64 = 0x8ff0;
pub const PML4_ADDR: u64 = 0x9000;
pub const PDPT_ADDR: u64 = 0xa000;
/// Four page directories (0xb000..0xf000) map the low 4 GiB with 2 MiB pages.
pub const PD_ADDR: u64 = 0xb000;
pub const CMDLINE_ADDR: u64 = 0x20000;
pub const CMDLINE_MAX: usize = 0x10000;
/// End of conventional memory below the EBDA.
pub const EBDA_START: u64 = 0x9fc00;
/// The 16-byte VM generation ID (`vmgenid.rs`), in the reserved area.
pub const VMGENID_ADDR: u64 = 0xdf000;
pub const ACPI_TABLES_ADDR: u64 = 0xe0000;
pub const ACPI_TABLES_END: u64 = 0xf0000;
/// Where x86 Linux (and dmidecode) scan for the SMBIOS entry point.
pub const SMBIOS_ADDR: u64 = 0xf0000;
pub const SMBIOS_END: u64 = 0x100000;
pub const HIMEM_START: u64 = 0x10_0000;
pub const KERNEL_LOAD_ADDR: u64 = 0x100_0000;

/// Start of the hole below 4 GiB that holds no RAM.
pub const MMIO_HOLE_START: u64 = 0xc000_0000;
pub const FOUR_GIB: u64 = 0x1_0000_0000;
pub const PCI_MMIO_START: u64 = 0xc000_0000;
pub const PCI_MMIO_SIZE: u64 = 0x2000_0000;
pub const PCI_ECAM_START: u64 = 0xe000_0000;
/// One bus: 32 devices x 8 functions x 4 KiB.
pub const PCI_ECAM_SIZE: u64 = 0x10_0000;
pub const IOAPIC_ADDR: u64 = 0xfec0_0000;
pub const LAPIC_ADDR: u64 = 0xfee0_0000;
/// KVM needs three pages for the TSS and one for the identity map just
/// below the IOAPIC on Intel; harmless elsewhere.
pub const KVM_TSS_ADDR: u64 = 0xfffb_d000;
pub const KVM_IDENTITY_MAP_ADDR: u64 = 0xfffb_c000;

/// IOAPIC pins KVM emulates; line GSIs are 0..24 and MSI GSIs follow.
pub const IOAPIC_PINS: u32 = 24;
/// GSI the generic event device (power button) signals on.
pub const GED_IRQ: u32 = 9;
/// GSI the generic event device signals a new VM generation ID on.
pub const VMGENID_IRQ: u32 = 10;
pub const GED_MMIO_ADDR: u64 = 0xfed0_0000 - 0x1000;
