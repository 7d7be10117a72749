//! Can this host run a snapshot's guest? The guest was given a CPUID when it
//! booted and may be using any feature in it (AVX-512, XSAVES, RDPID…); a
//! restore on a CPU without one of them would crash the guest later, far
//! from the cause. So a restore compares the feature bits of the saved
//! CPUID with what a fresh VM would get on this host and refuses, naming
//! the missing bits, before any guest code runs.

use kvm_bindings::kvm_cpuid_entry2;

/// A CPUID register's bits the guest had and this host does not offer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MissingFeatures {
    pub leaf: u32,
    pub index: u32,
    /// 0..4 = EAX EBX ECX EDX.
    pub register: u8,
    pub bits: u32,
}

impl std::fmt::Display for MissingFeatures {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let reg = ["EAX", "EBX", "ECX", "EDX"][usize::from(self.register & 3)];
        write!(
            f,
            "CPUID {:#x}.{} {reg} bits {:#010x}",
            self.leaf, self.index, self.bits
        )
    }
}

/// The registers holding feature flags: (leaf, subleaf, register, bits that
/// change at run time and are not features: OSXSAVE, APIC enable, OSPKE).
const FEATURE_REGISTERS: &[(u32, u32, u8, u32)] = &[
    (1, 0, 2, 1 << 27),
    (1, 0, 3, 1 << 9),
    (7, 0, 1, 0),
    (7, 0, 2, 1 << 4),
    (7, 0, 3, 0),
    (7, 1, 0, 0),
    // XSAVE: the state components (XCR0) and the XSAVE instructions.
    (0xd, 0, 0, 0),
    (0xd, 0, 3, 0),
    (0xd, 1, 0, 0),
    (0x8000_0001, 0, 2, 0),
    (0x8000_0001, 0, 3, 0),
    (0x8000_0008, 0, 1, 0),
];

fn register(e: &kvm_cpuid_entry2, r: u8) -> u32 {
    match r {
        0 => e.eax,
        1 => e.ebx,
        2 => e.ecx,
        _ => e.edx,
    }
}

fn find(entries: &[kvm_cpuid_entry2], leaf: u32, index: u32) -> Option<&kvm_cpuid_entry2> {
    // Leaves without subleaves ignore the index (KVM reports index 0).
    entries
        .iter()
        .find(|e| e.function == leaf && e.index == index)
}

/// Feature bits in `saved` (the guest's CPUID) that `here` (what this host
/// would give the same vCPU) lacks; empty when the guest can run here.
pub fn missing_features(
    saved: &[kvm_cpuid_entry2],
    here: &[kvm_cpuid_entry2],
) -> Vec<MissingFeatures> {
    let mut missing = Vec::new();
    for &(leaf, index, reg, dynamic) in FEATURE_REGISTERS {
        let Some(s) = find(saved, leaf, index) else {
            continue;
        };
        let had = register(s, reg) & !dynamic;
        let offered = find(here, leaf, index).map_or(0, |h| register(h, reg));
        let bits = had & !offered;
        if bits != 0 {
            missing.push(MissingFeatures {
                leaf,
                index,
                register: reg,
                bits,
            });
        }
    }
    missing
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(function: u32, index: u32, ebx: u32, ecx: u32) -> kvm_cpuid_entry2 {
        kvm_cpuid_entry2 {
            function,
            index,
            ebx,
            ecx,
            ..Default::default()
        }
    }

    #[test]
    fn same_or_more_features_here_is_fine() {
        let saved = [entry(7, 0, 0b1010, 0)];
        let here = [entry(7, 0, 0b1110, 0)];
        assert!(missing_features(&saved, &here).is_empty());
    }

    #[test]
    fn a_feature_the_guest_had_and_the_host_lacks_is_named() {
        let saved = [entry(7, 0, 0b1010, 0), entry(0x8000_0001, 0, 0, 1)];
        let here = [entry(7, 0, 0b0010, 0)];
        let m = missing_features(&saved, &here);
        assert_eq!(m.len(), 2, "{m:?}");
        assert_eq!(m[0].to_string(), "CPUID 0x7.0 EBX bits 0x00000008");
        assert_eq!(m[1].leaf, 0x8000_0001, "a leaf absent here lacks all");
    }

    #[test]
    fn run_time_bits_are_not_features() {
        // OSXSAVE (leaf 1 ECX bit 27) follows CR4 and OSPKE (leaf 7 ECX
        // bit 4) follows CR4.PKE: set in a running guest's CPUID, never in
        // a fresh one.
        let saved = [entry(1, 0, 0, 1 << 27), entry(7, 0, 0, 1 << 4)];
        let here = [entry(1, 0, 0, 0), entry(7, 0, 0, 0)];
        assert!(missing_features(&saved, &here).is_empty());
    }
}
