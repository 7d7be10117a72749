//! PCI: configuration spaces, the root complex (bus 0) reached through the
//! 0xCF8/0xCFC ports and the ECAM window, and the device trait.

pub mod config;
pub mod root;

pub use config::{Bar, ConfigSpace, PciId};

/// A memory BAR the guest moved (with memory decoding on): it was mapped at
/// `from` and now decodes at `to` (`None`: not mapped, for a mapper that
/// unmaps; [`ConfigSpace::moved_bar`] never asks for that). Firmware such as SeaBIOS sizes and assigns every
/// BAR itself; an OS may reassign them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BarMove {
    pub index: usize,
    pub from: Option<u64>,
    pub to: Option<u64>,
    pub size: u64,
}

/// A function on the PCI bus.
pub trait PciDevice: Send {
    /// Read config dword `reg` (byte offset `reg * 4`).
    fn config_read(&mut self, reg: usize) -> u32;
    /// Write `data` at config byte offset `offset`.
    fn config_write(&mut self, offset: usize, data: &[u8]);
    /// After a config write: the BAR that now decodes somewhere else (or
    /// no longer, or again), if any. The device takes the new state as its
    /// own; the caller moves the mapping (see [`BarMapper`]).
    fn take_bar_move(&mut self) -> Option<BarMove> {
        None
    }
}

/// Moves a device's BAR mapping in the address space (the VMM: the MMIO
/// bus and its ioeventfds). Called by [`root::PciRoot`] with no device lock
/// held.
pub trait BarMapper: Send + Sync {
    fn move_bar(&self, slot: u8, mv: BarMove);
}

/// The host bridge at 00:00.0, so the bus enumerates like a PC.
pub struct HostBridge {
    config: ConfigSpace,
}

impl HostBridge {
    pub fn new() -> Self {
        HostBridge {
            // Red Hat's "QEMU PCIe host bridge" id, which guests know.
            config: ConfigSpace::new(PciId {
                vendor: 0x1b36,
                device: 0x0008,
                class: 0x060000,
                revision: 0,
                subsystem_vendor: 0x1af4,
                subsystem: 0x1100,
            }),
        }
    }
}

impl Default for HostBridge {
    fn default() -> Self {
        Self::new()
    }
}

impl PciDevice for HostBridge {
    fn config_read(&mut self, reg: usize) -> u32 {
        self.config.read_dword(reg)
    }
    fn config_write(&mut self, offset: usize, data: &[u8]) {
        self.config.write(offset, data);
    }
}
