//! The KVM side of a snapshot: read each paused vCPU's state and the VM's
//! in-kernel devices out of KVM, and give them back to a new VM.
//!
//! The orders follow KVM's rules (Documentation/virt/kvm/api.rst, and
//! Firecracker's `vstate/vcpu.rs`, which does the same):
//! - capture: MP state first (reading it settles pending APIC events), then
//!   registers, XSAVE, XCRs, debug registers, LAPIC, MSRs; vCPU events last
//!   (the other reads may change what is pending);
//! - restore: CPUID first (it decides which MSRs and XSAVE components
//!   exist), MSRs with the TSC deadline after the TSC (else the deadline is
//!   armed against the wrong clock), registers, XSAVE, XCRs, debug
//!   registers, LAPIC, MP state, vCPU events last;
//! - the VM: PIT and both PICs and the IOAPIC as they were; kvmclock moved on
//!   by the time the snapshot rested ([`snapshot::VmState::clock_after`]).
//!
//! Not here: pausing the vCPUs (they must be out of KVM_RUN before
//! [`capture_vcpu`]), device models' state, guest memory.

use kvm_bindings::{
    kvm_irqchip, kvm_msr_entry, CpuId, Msrs, KVM_IRQCHIP_IOAPIC, KVM_IRQCHIP_PIC_MASTER,
    KVM_IRQCHIP_PIC_SLAVE, KVM_MAX_CPUID_ENTRIES, KVM_MAX_MSR_ENTRIES,
};
use kvm_ioctls::{Cap, Kvm, VcpuFd, VmFd};
use snapshot::{VcpuState, VmState};

/// MSR_IA32_TSC_DEADLINE.
const MSR_TSC_DEADLINE: u32 = 0x6e0;
/// The fixed XSAVE area KVM_GET_XSAVE / KVM_SET_XSAVE use.
const XSAVE_LEN: i32 = 4096;

/// A KVM state ioctl failed, or gave less than asked.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("{}cannot {what}: {source}", vcpu_prefix(*vcpu))]
    Kvm {
        vcpu: Option<u8>,
        what: &'static str,
        source: kvm_ioctls::Error,
    },
    #[error("vCPU {vcpu}: KVM refused MSR {index:#x} ({set} of {total} MSRs set); this host's KVM does not support the snapshot's CPU state")]
    MsrRefused {
        vcpu: u8,
        index: u32,
        set: usize,
        total: usize,
    },
    #[error("this host's XSAVE state is {size} bytes (AMX?); snapshots support the 4096-byte XSAVE area only")]
    XsaveTooLarge { size: i32 },
}

fn vcpu_prefix(vcpu: Option<u8>) -> String {
    vcpu.map(|v| format!("vCPU {v}: ")).unwrap_or_default()
}

fn vcpu_err(id: u8, what: &'static str) -> impl Fn(kvm_ioctls::Error) -> StateError {
    move |source| StateError::Kvm {
        vcpu: Some(id),
        what,
        source,
    }
}

fn vm_err(what: &'static str) -> impl Fn(kvm_ioctls::Error) -> StateError {
    move |source| StateError::Kvm {
        vcpu: None,
        what,
        source,
    }
}

/// The MSRs KVM saves and restores on this host (KVM_GET_MSR_INDEX_LIST).
pub fn msr_index_list(kvm: &Kvm) -> Result<Vec<u32>, StateError> {
    let list = kvm
        .get_msr_index_list()
        .map_err(vm_err("list the MSRs KVM saves"))?;
    Ok(list.as_slice().to_vec())
}

/// Read every MSR of `indices` that this vCPU has: KVM_GET_MSRS stops at
/// the first MSR it cannot read (one the vCPU's CPUID does not have), so
/// that one is left out and the read goes on after it.
fn read_msrs(id: u8, fd: &VcpuFd, indices: &[u32]) -> Result<Vec<kvm_msr_entry>, StateError> {
    let mut out = Vec::with_capacity(indices.len());
    let mut rest = indices;
    while !rest.is_empty() {
        let chunk = &rest[..rest.len().min(KVM_MAX_MSR_ENTRIES)];
        let entries: Vec<kvm_msr_entry> = chunk
            .iter()
            .map(|&index| kvm_msr_entry {
                index,
                ..Default::default()
            })
            .collect();
        let mut msrs = Msrs::from_entries(&entries).expect("at most KVM_MAX_MSR_ENTRIES");
        let read = fd
            .get_msrs(&mut msrs)
            .map_err(vcpu_err(id, "read its MSRs"))?;
        out.extend_from_slice(&msrs.as_slice()[..read]);
        if read < chunk.len() {
            tracing::debug!("vCPU {id}: MSR {:#x} not saved (unreadable)", chunk[read]);
            rest = &rest[read + 1..];
        } else {
            rest = &rest[read..];
        }
    }
    Ok(out)
}

/// Put the TSC deadline after the TSC, keep the rest in order.
fn restore_order(msrs: &[kvm_msr_entry]) -> Vec<kvm_msr_entry> {
    let (mut first, last): (Vec<kvm_msr_entry>, Vec<kvm_msr_entry>) = msrs
        .iter()
        .copied()
        .partition(|m| m.index != MSR_TSC_DEADLINE);
    first.extend(last);
    first
}

/// The state of a paused vCPU (not in KVM_RUN).
pub fn capture_vcpu(id: u8, fd: &VcpuFd, msr_indices: &[u32]) -> Result<VcpuState, StateError> {
    let mp_state = fd
        .get_mp_state()
        .map_err(vcpu_err(id, "read its MP state"))?;
    let cpuid = fd
        .get_cpuid2(KVM_MAX_CPUID_ENTRIES)
        .map_err(vcpu_err(id, "read its CPUID"))?;
    let regs = fd.get_regs().map_err(vcpu_err(id, "read its registers"))?;
    let sregs = fd
        .get_sregs()
        .map_err(vcpu_err(id, "read its special registers"))?;
    let xsave = fd
        .get_xsave()
        .map_err(vcpu_err(id, "read its XSAVE state"))?;
    let xcrs = fd.get_xcrs().map_err(vcpu_err(id, "read its XCRs"))?;
    let debugregs = fd
        .get_debug_regs()
        .map_err(vcpu_err(id, "read its debug registers"))?;
    let lapic = fd.get_lapic().map_err(vcpu_err(id, "read its LAPIC"))?;
    let msrs = read_msrs(id, fd, msr_indices)?;
    let events = fd
        .get_vcpu_events()
        .map_err(vcpu_err(id, "read its pending events"))?;
    Ok(VcpuState {
        id,
        cpuid: cpuid.as_slice().to_vec(),
        regs,
        sregs,
        xsave,
        xcrs,
        msrs,
        lapic,
        mp_state,
        events,
        debugregs,
    })
}

/// Give a new vCPU (created, not yet run) a captured state. The caller has
/// checked the CPUID against this host ([`snapshot::cpu::missing_features`]).
pub fn restore_vcpu(vm: &VmFd, fd: &VcpuFd, state: &VcpuState) -> Result<(), StateError> {
    let id = state.id;
    let cpuid = CpuId::from_entries(&state.cpuid)
        .map_err(|_| vcpu_err(id, "take its CPUID")(kvm_ioctls::Error::new(libc::E2BIG)))?;
    fd.set_cpuid2(&cpuid)
        .map_err(vcpu_err(id, "set its CPUID"))?;
    let ordered = restore_order(&state.msrs);
    for chunk in ordered.chunks(KVM_MAX_MSR_ENTRIES) {
        let msrs = Msrs::from_entries(chunk).expect("at most KVM_MAX_MSR_ENTRIES");
        let set = fd.set_msrs(&msrs).map_err(vcpu_err(id, "set its MSRs"))?;
        if set < chunk.len() {
            return Err(StateError::MsrRefused {
                vcpu: id,
                index: chunk[set].index,
                set,
                total: chunk.len(),
            });
        }
    }
    fd.set_regs(&state.regs)
        .map_err(vcpu_err(id, "set its registers"))?;
    fd.set_sregs(&state.sregs)
        .map_err(vcpu_err(id, "set its special registers"))?;
    let xsave_size = vm.check_extension_int(Cap::Xsave2);
    if xsave_size > XSAVE_LEN {
        return Err(StateError::XsaveTooLarge { size: xsave_size });
    }
    // SAFETY: KVM reads at most KVM_CAP_XSAVE2's size (checked above to be
    // at most the 4096-byte region kvm_xsave holds) from the buffer.
    unsafe { fd.set_xsave(&state.xsave) }.map_err(vcpu_err(id, "set its XSAVE state"))?;
    fd.set_xcrs(&state.xcrs)
        .map_err(vcpu_err(id, "set its XCRs"))?;
    fd.set_debug_regs(&state.debugregs)
        .map_err(vcpu_err(id, "set its debug registers"))?;
    fd.set_lapic(&state.lapic)
        .map_err(vcpu_err(id, "set its LAPIC"))?;
    fd.set_mp_state(state.mp_state)
        .map_err(vcpu_err(id, "set its MP state"))?;
    fd.set_vcpu_events(&state.events)
        .map_err(vcpu_err(id, "set its pending events"))?;
    Ok(())
}

fn irqchip(vm: &VmFd, chip_id: u32, what: &'static str) -> Result<kvm_irqchip, StateError> {
    let mut chip = kvm_irqchip {
        chip_id,
        ..Default::default()
    };
    vm.get_irqchip(&mut chip).map_err(vm_err(what))?;
    Ok(chip)
}

/// KVM's in-kernel devices of a VM whose vCPUs are paused.
pub fn capture_vm(vm: &VmFd) -> Result<VmState, StateError> {
    Ok(VmState {
        pic_master: irqchip(vm, KVM_IRQCHIP_PIC_MASTER, "read the master PIC")?,
        pic_slave: irqchip(vm, KVM_IRQCHIP_PIC_SLAVE, "read the slave PIC")?,
        ioapic: irqchip(vm, KVM_IRQCHIP_IOAPIC, "read the IOAPIC")?,
        pit: vm.get_pit2().map_err(vm_err("read the PIT"))?,
        clock: vm.get_clock().map_err(vm_err("read the KVM clock"))?,
    })
}

/// Give a new VM (irqchip and PIT created) its devices' state back, the
/// clock moved on by `elapsed_ns`.
pub fn restore_vm(vm: &VmFd, state: &VmState, elapsed_ns: u64) -> Result<(), StateError> {
    vm.set_pit2(&state.pit).map_err(vm_err("set the PIT"))?;
    vm.set_irqchip(&state.pic_master)
        .map_err(vm_err("set the master PIC"))?;
    vm.set_irqchip(&state.pic_slave)
        .map_err(vm_err("set the slave PIC"))?;
    vm.set_irqchip(&state.ioapic)
        .map_err(vm_err("set the IOAPIC"))?;
    vm.set_clock(&state.clock_after(elapsed_ns))
        .map_err(vm_err("set the KVM clock"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MSR_TSC: u32 = 0x10;

    fn msr(index: u32) -> kvm_msr_entry {
        kvm_msr_entry {
            index,
            ..Default::default()
        }
    }

    #[test]
    fn the_tsc_deadline_is_restored_after_the_tsc() {
        let ordered = restore_order(&[msr(MSR_TSC_DEADLINE), msr(0x174), msr(MSR_TSC)]);
        let order: Vec<u32> = ordered.iter().map(|m| m.index).collect();
        assert_eq!(order, [0x174, MSR_TSC, MSR_TSC_DEADLINE]);
    }
}
