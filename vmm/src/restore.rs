//! Continuing a VM from a snapshot: what can be restored so far, and the
//! checks made before any guest code runs (the vCPU count, the CPU
//! features the guest was using, the device states).
//!
//! Restorable today: VMs booted directly with the legacy devices (COM1,
//! i8042, ACPI power), KVM's in-kernel ones and virtio disks, CD-ROMs,
//! entropy and NICs (their transport and queue positions; the disks'
//! contents are the caller's: give the restored VM the disks as they were
//! at the snapshot; a NIC gets the restored VM's own backend and announces
//! the guest's MAC on it). Firmware boot is refused with
//! [`RestoreError::Unsupported`], at capture and restore.

use crate::VmConfig;
use devices::serial::SerialSnapshot;
use snapshot::{DeviceState, Snapshot};
use std::path::PathBuf;

/// A VM to continue from a snapshot ([`crate::restore_controlled`]).
pub struct RestoreFrom {
    pub snapshot: Snapshot,
    /// The raw memory file the snapshot's memory regions point into; mapped
    /// privately, never written.
    pub memory_file: PathBuf,
    /// How long ago the snapshot was taken: the guest's kvmclock moves on
    /// by this much.
    pub elapsed_ns: u64,
}

/// Why a snapshot cannot continue here.
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    #[error("snapshots of VMs with {0} are not supported yet")]
    Unsupported(&'static str),
    #[error("the snapshot has {found} vCPUs, the VM to restore has {expected}")]
    VcpuCount { found: usize, expected: u8 },
    #[error("this host's CPU lacks features the snapshot's guest was using ({0}); restore it on the CPU model it was taken on, or boot the appliance afresh")]
    Cpu(String),
    #[error("the snapshot has no state for device {0}")]
    MissingDevice(&'static str),
    #[error("the saved state of device {id} (format {version}) does not decode: {reason}")]
    BadDevice {
        id: String,
        version: u16,
        reason: String,
    },
    #[error(transparent)]
    State(#[from] crate::snapshot::StateError),
}

/// The serial port's device id and state format version in a snapshot.
pub(crate) const SERIAL_ID: &str = "serial0";
pub(crate) const SERIAL_VERSION: u16 = 1;

/// What in `config` has no snapshot support yet (None: all of it does).
pub fn unsupported(config: &VmConfig) -> Option<&'static str> {
    if matches!(config.kernel, crate::Kernel::Bios(_)) {
        Some("firmware boot")
    } else {
        None
    }
}

/// The checks made before building the VM.
pub(crate) fn check(config: &VmConfig, from: &RestoreFrom) -> Result<(), RestoreError> {
    if let Some(what) = unsupported(config) {
        return Err(RestoreError::Unsupported(what));
    }
    if from.snapshot.vcpus.len() != usize::from(config.vcpus) {
        return Err(RestoreError::VcpuCount {
            found: from.snapshot.vcpus.len(),
            expected: config.vcpus,
        });
    }
    Ok(())
}

/// Refuse when this host would not offer a saved vCPU's features.
pub(crate) fn check_cpu(
    saved: &snapshot::VcpuState,
    here: &kvm_bindings::CpuId,
) -> Result<(), RestoreError> {
    let missing = snapshot::cpu::missing_features(&saved.cpuid, here.as_slice());
    if missing.is_empty() {
        return Ok(());
    }
    let list: Vec<String> = missing.iter().map(|m| m.to_string()).collect();
    Err(RestoreError::Cpu(list.join(", ")))
}

pub(crate) fn serial_state(s: &SerialSnapshot) -> DeviceState {
    DeviceState {
        id: SERIAL_ID.into(),
        version: SERIAL_VERSION,
        data: postcard::to_stdvec(s).expect("a serial state always encodes"),
    }
}

pub(crate) fn find_serial(snapshot: &Snapshot) -> Result<SerialSnapshot, RestoreError> {
    let d = snapshot
        .devices
        .iter()
        .find(|d| d.id == SERIAL_ID)
        .ok_or(RestoreError::MissingDevice(SERIAL_ID))?;
    let bad = |reason: String| RestoreError::BadDevice {
        id: d.id.clone(),
        version: d.version,
        reason,
    };
    if d.version != SERIAL_VERSION {
        return Err(bad(format!("this ovf-run reads format {SERIAL_VERSION}")));
    }
    postcard::from_bytes(&d.data).map_err(|e| bad(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_cannot_be_snapshotted_yet_is_named() {
        let mut c = VmConfig::new(crate::Kernel::Raw {
            code: vec![0xf4],
            load_addr: 0x10_0000,
        });
        assert_eq!(unsupported(&c), None, "virtio-rng is restorable");
        c.kernel = crate::Kernel::Bios("/usr/share/seabios/bios.bin".into());
        assert_eq!(unsupported(&c), Some("firmware boot"));
    }
}
