//! What a snapshot holds: the state of every vCPU, of KVM's in-kernel
//! devices (PIC, IOAPIC, PIT, clock), each emulated device's own state (an
//! opaque, versioned blob its owner encodes), where guest memory lies in
//! the memory file, and the launch layer's own record (which package, which
//! overlays), also opaque here.
//!
//! KVM's structures are kept as KVM defines them (`kvm-bindings` with its
//! `serde` feature stores each as its bytes), so a restore hands KVM back
//! exactly what it gave.

use kvm_bindings::{
    kvm_clock_data, kvm_cpuid_entry2, kvm_debugregs, kvm_irqchip, kvm_lapic_state, kvm_mp_state,
    kvm_msr_entry, kvm_pit_state2, kvm_regs, kvm_sregs, kvm_vcpu_events, kvm_xcrs, kvm_xsave,
};
use serde::{Deserialize, Serialize};

/// Everything but guest memory's contents (those are in the memory file).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Snapshot {
    pub meta: Meta,
    pub vcpus: Vec<VcpuState>,
    pub vm: VmState,
    pub devices: Vec<DeviceState>,
    pub memory: Vec<MemoryRegion>,
    /// The launch layer's record (package, digest, overlays, options):
    /// encoded and checked by its owner; the VMM knows nothing of OVF.
    pub launch: Vec<u8>,
}

/// Who wrote the snapshot, when, and on what CPU.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Meta {
    /// The version of the program that wrote it (`CARGO_PKG_VERSION`).
    pub writer_version: String,
    /// Seconds since the Unix epoch, when the vCPUs were paused.
    pub taken_unix: u64,
    /// The host CPU's vendor string (CPUID leaf 0), e.g. "AuthenticAMD".
    pub cpu_vendor: String,
    /// The host's TSC frequency in kHz when it was taken (0: unknown).
    pub tsc_khz: u32,
}

/// One vCPU, as the KVM ioctls of the same names give it.
#[derive(Serialize, Deserialize)]
pub struct VcpuState {
    pub id: u8,
    /// The CPUID the guest was given (KVM_SET_CPUID2); a restore sets the
    /// same, after checking that this host offers every feature in it.
    pub cpuid: Vec<kvm_cpuid_entry2>,
    pub regs: kvm_regs,
    pub sregs: kvm_sregs,
    /// FPU, SSE and AVX state (also covers what KVM_GET_FPU gives).
    pub xsave: kvm_xsave,
    pub xcrs: kvm_xcrs,
    /// Every MSR KVM saves for this vCPU (its MSR index list), TSC,
    /// kvmclock and SYSCALL MSRs among them.
    pub msrs: Vec<kvm_msr_entry>,
    pub lapic: kvm_lapic_state,
    pub mp_state: kvm_mp_state,
    pub events: kvm_vcpu_events,
    pub debugregs: kvm_debugregs,
}

impl Clone for VcpuState {
    fn clone(&self) -> Self {
        Self {
            id: self.id,
            cpuid: self.cpuid.clone(),
            regs: self.regs,
            sregs: self.sregs,
            // kvm_xsave ends in a flexible array (KVM_GET_XSAVE2's larger
            // buffers), so it is not Clone; the fixed 4 KiB region is what
            // KVM_GET_XSAVE fills.
            xsave: kvm_xsave {
                region: self.xsave.region,
                ..Default::default()
            },
            xcrs: self.xcrs,
            msrs: self.msrs.clone(),
            lapic: self.lapic,
            mp_state: self.mp_state,
            events: self.events,
            debugregs: self.debugregs,
        }
    }
}

impl std::fmt::Debug for VcpuState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VcpuState")
            .field("id", &self.id)
            .field("rip", &format_args!("{:#x}", self.regs.rip))
            .field("cpuid_entries", &self.cpuid.len())
            .field("msrs", &self.msrs.len())
            .field("mp_state", &self.mp_state.mp_state)
            .finish()
    }
}

/// KVM's in-kernel devices of the VM.
#[derive(Clone, Serialize, Deserialize)]
pub struct VmState {
    /// KVM_GET_IRQCHIP for chip 0 (PIC master), 1 (PIC slave), 2 (IOAPIC).
    pub pic_master: kvm_irqchip,
    pub pic_slave: kvm_irqchip,
    pub ioapic: kvm_irqchip,
    pub pit: kvm_pit_state2,
    /// kvmclock at the pause; a restore moves it on by the time that passed
    /// (see [`VmState::clock_after`]).
    pub clock: kvm_clock_data,
}

impl std::fmt::Debug for VmState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VmState")
            .field("clock_ns", &self.clock.clock)
            .finish_non_exhaustive()
    }
}

impl VmState {
    /// The kvmclock to set at a restore `elapsed_ns` after the snapshot was
    /// taken: the guest's clock continues from the pause plus the wall time
    /// that passed, so its time of day is right and its uptime did not
    /// jump backwards.
    ///
    /// When KVM gave the host's real time with the clock (Linux 5.16 and
    /// later, `KVM_CLOCK_REALTIME`), it is handed back with that flag and
    /// KVM itself adds the real time that passed, measured at the moment of
    /// KVM_SET_CLOCK (`elapsed_ns` is then unused: it was measured earlier,
    /// before the VM was built). Otherwise only the clock value is set,
    /// moved on by `elapsed_ns` (other flags are cleared: KVM rejects flags
    /// it does not take).
    pub fn clock_after(&self, elapsed_ns: u64) -> kvm_clock_data {
        if self.clock.flags & kvm_bindings::KVM_CLOCK_REALTIME != 0 {
            return kvm_clock_data {
                clock: self.clock.clock,
                flags: kvm_bindings::KVM_CLOCK_REALTIME,
                realtime: self.clock.realtime,
                ..Default::default()
            };
        }
        kvm_clock_data {
            clock: self.clock.clock.saturating_add(elapsed_ns),
            ..Default::default()
        }
    }
}

/// One emulated device's state, encoded by the device model itself.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceState {
    /// Unique within the snapshot, e.g. "serial0", "pci:00:03.0".
    pub id: String,
    /// The device model's own state format version.
    pub version: u16,
    pub data: Vec<u8>,
}

/// Where a range of guest physical memory lies in the memory file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemoryRegion {
    pub guest_addr: u64,
    pub size: u64,
    pub file_offset: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vm_state(flags: u32) -> VmState {
        VmState {
            pic_master: Default::default(),
            pic_slave: Default::default(),
            ioapic: Default::default(),
            pit: Default::default(),
            clock: kvm_clock_data {
                clock: 1_000,
                flags: flags | kvm_bindings::KVM_CLOCK_TSC_STABLE,
                realtime: 77,
                ..Default::default()
            },
        }
    }

    #[test]
    fn the_clock_moves_on_by_kvms_real_time_or_by_the_elapsed_time() {
        let with_realtime = vm_state(kvm_bindings::KVM_CLOCK_REALTIME).clock_after(500);
        assert_eq!(
            (
                with_realtime.clock,
                with_realtime.flags,
                with_realtime.realtime
            ),
            (1_000, kvm_bindings::KVM_CLOCK_REALTIME, 77),
            "KVM adds the real time that passed itself"
        );
        let without = vm_state(0).clock_after(500);
        assert_eq!((without.clock, without.flags), (1_500, 0));
    }
}
