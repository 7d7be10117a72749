//! CPUID for the guest: what KVM supports, with our topology written in.
//!
//! Each vCPU is one core of one socket (no SMT). Linux builds its topology
//! from leaf 1 (APIC id, logical count), leaf 4 (cores per package) and
//! leaf 0xB/0x1F (x2APIC levels); inconsistent values make it print
//! warnings or mis-size per-CPU data.

use kvm_bindings::{CpuId, KVM_MAX_CPUID_ENTRIES};
use kvm_ioctls::Kvm;

/// Features to hide from the guest: (leaf, subleaf or None for all,
/// register 0..4 = eax ebx ecx edx, bit).
#[derive(Debug, Clone, Copy)]
pub struct CpuidMask {
    pub leaf: u32,
    pub index: Option<u32>,
    pub register: u8,
    pub bit: u8,
}

/// KVM's supported CPUID.
pub fn supported(kvm: &Kvm) -> Result<CpuId, kvm_ioctls::Error> {
    kvm.get_supported_cpuid(KVM_MAX_CPUID_ENTRIES)
}

const LEAF_CACHE: u32 = 4;
const LEAF_TOPOLOGY: u32 = 0xb;
const LEAF_TOPOLOGY_V2: u32 = 0x1f;
const ECX_HYPERVISOR: u32 = 1 << 31;
/// Advanced power management: EDX bit 8 is the invariant TSC.
const LEAF_APM: u32 = 0x8000_0007;
const EDX_INVARIANT_TSC: u32 = 1 << 8;

/// Fill in the topology for vCPU `id` of `count` and apply `masks`.
pub fn for_vcpu(base: &CpuId, id: u8, count: u8, masks: &[CpuidMask]) -> CpuId {
    let mut cpuid = base.clone();
    let count = count.max(1) as u32;
    // Bits needed to number `count` cores.
    let core_bits = 32 - (count - 1).leading_zeros();
    for e in cpuid.as_mut_slice() {
        match e.function {
            1 => {
                e.ebx = (e.ebx & 0x0000_ffff) | ((id as u32) << 24) | (count.min(255) << 16);
                e.ecx |= ECX_HYPERVISOR;
                // HTT: "more than one logical processor" per package.
                if count > 1 {
                    e.edx |= 1 << 28;
                }
            }
            // Cores per package - 1 in 31:26; threads sharing the cache in
            // 25:14 (every core shares L3, each core owns L1/L2).
            LEAF_CACHE if e.eax & 0x1f != 0 => {
                let level = (e.eax >> 5) & 7;
                let sharing = if level >= 3 { count - 1 } else { 0 };
                e.eax = (e.eax & 0x3fff) | ((count - 1) << 26) | (sharing << 14);
            }
            LEAF_TOPOLOGY | LEAF_TOPOLOGY_V2 => {
                e.edx = id as u32;
                match e.index {
                    0 => {
                        // SMT level: one thread per core.
                        e.eax = 0;
                        e.ebx = 1;
                        e.ecx = 1 << 8;
                    }
                    1 => {
                        e.eax = core_bits;
                        e.ebx = count;
                        e.ecx = (2 << 8) | 1;
                    }
                    n => {
                        e.eax = 0;
                        e.ebx = 0;
                        e.ecx = n & 0xff;
                    }
                }
            }
            // Hidden, as QEMU's CPU models hide it (it blocks migration
            // there): with an invariant TSC, Linux prefers the TSC over
            // kvm-clock as its clocksource, and a VM restored from a
            // snapshot then keeps the time of the snapshot (its TSC goes
            // on from the saved value), while kvm-clock is moved on by
            // the time since (snapshot::VmState::clock_after).
            LEAF_APM => e.edx &= !EDX_INVARIANT_TSC,
            _ => {}
        }
        for m in masks {
            if m.leaf == e.function && m.index.is_none_or(|i| i == e.index) {
                let reg = match m.register {
                    0 => &mut e.eax,
                    1 => &mut e.ebx,
                    2 => &mut e.ecx,
                    _ => &mut e.edx,
                };
                *reg &= !(1u32 << (m.bit & 31));
            }
        }
    }
    cpuid
}

#[cfg(test)]
mod tests {
    use super::*;
    use kvm_bindings::kvm_cpuid_entry2;

    fn entry(function: u32, index: u32) -> kvm_cpuid_entry2 {
        kvm_cpuid_entry2 {
            function,
            index,
            eax: 0x121,
            ebx: 0xffff_ffff,
            ecx: 0,
            edx: 0xffff_ffff,
            ..Default::default()
        }
    }

    #[test]
    fn topology_and_masks_are_written() {
        let base = CpuId::from_entries(&[
            entry(1, 0),
            entry(4, 0),
            entry(0xb, 0),
            entry(0xb, 1),
            entry(LEAF_APM, 0),
        ])
        .unwrap();
        let masks = [CpuidMask {
            leaf: 1,
            index: None,
            register: 3,
            bit: 0,
        }];
        let c = for_vcpu(&base, 3, 4, &masks);
        let e = c.as_slice();
        assert_eq!(e[0].ebx >> 24, 3);
        assert_eq!((e[0].ebx >> 16) & 0xff, 4);
        assert_eq!(e[0].ecx & ECX_HYPERVISOR, ECX_HYPERVISOR);
        assert_eq!(e[0].edx & 1, 0, "masked");
        assert_eq!(e[1].eax >> 26, 3);
        assert_eq!(e[2].edx, 3);
        assert_eq!(e[3].eax, 2);
        assert_eq!(e[3].ebx, 4);
        assert_eq!(e[4].edx & EDX_INVARIANT_TSC, 0, "no invariant TSC");
        assert_eq!(e[4].edx | EDX_INVARIANT_TSC, 0xffff_ffff, "the rest kept");
    }
}
