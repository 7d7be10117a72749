//! What a snapshot of a running VM holds, and its state file.
//!
//! - [`state`]: the vCPUs' registers, FPU/XSAVE, MSRs, LAPIC, MP state and
//!   events; KVM's in-kernel PIC, IOAPIC, PIT and clock; each emulated
//!   device's own versioned state; where guest memory lies in the memory
//!   file; and an opaque record of the launch layer's (package, overlays).
//! - [`format`]: the versioned, checksummed state file (magic, format
//!   version, length, SHA-256, body), whose parser turns every bad input
//!   into a [`StateFileError`] (fuzzed: `snapshot/fuzz`).
//! - [`cpu`]: whether this host offers every CPU feature the snapshot's
//!   guest was given.
//!
//! This crate only describes and (de)serializes: `vmm` captures the state
//! from KVM and gives it back. It does not hold guest memory's contents
//! (the memory file is raw and sparse, mapped copy-on-write at restore) nor
//! the disks (the launch layer keeps their overlays beside it).

pub mod cpu;
pub mod format;
pub mod state;

pub use format::{decode, encode, StateFileError, FORMAT_VERSION};
pub use state::{DeviceState, MemoryRegion, Meta, Snapshot, VcpuState, VmState};
