//! Device models. `BlockSource` is the block backend trait (re-exported).
//!
//! Devices are plain state machines behind [`bus::BusDevice`]; the monitor
//! (`vmm`) owns KVM and maps them on its buses, so everything here is
//! testable without `/dev/kvm`.
pub use block_source::BlockSource;

pub mod acpi_power;
pub mod bus;
pub mod debugcon;
pub mod fw_cfg;
pub mod i8042;
pub mod interrupt;
pub mod lifecycle;
pub mod net_backend;
pub mod pci;
pub mod raw_file;
pub mod rtc;
pub mod serial;
pub mod virtio;
