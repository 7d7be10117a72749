//! The virtual machine monitor: takes a plain VM description and runs it
//! on KVM. It knows nothing about OVF; the package side turns appliances
//! into a [`VmConfig`].

pub mod acpi;
pub mod boot;
pub mod capture;
pub mod console;
mod control;
pub mod cpuid;
pub mod firmware;
pub mod interrupts;
pub mod layout;
pub mod memory;
pub mod net;
mod pause;
mod pci_setup;
mod restore;
pub mod rss;
mod signals;
pub mod smbios;
pub mod snapshot;
pub mod vcpu;
mod vm;
pub mod vmgenid;

pub use boot::{BzImageMode, Kernel};
pub use capture::{CaptureError, Captured, FinishHook};
pub use console::ConsoleConfig;
pub use control::VmControl;
pub use devices::BlockSource;
pub use net::{BackendSlot, NicConfig};
pub use restore::{RestoreError, RestoreFrom};

use std::path::PathBuf;
use std::sync::Arc;

/// A disk as the guest sees it: a virtio-blk device.
#[derive(Clone)]
pub struct DiskConfig {
    pub source: Arc<dyn BlockSource>,
    /// Refuse writes and advertise VIRTIO_BLK_F_RO.
    pub read_only: bool,
    /// The serial the guest reads with VIRTIO_BLK_T_GET_ID (at most 20 bytes).
    pub id: String,
}

impl std::fmt::Debug for DiskConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DiskConfig")
            .field("capacity", &self.source.capacity())
            .field("read_only", &self.read_only)
            .field("id", &self.id)
            .finish()
    }
}

/// A CD-ROM drive as the guest sees it: a virtio-scsi controller of its
/// own with the medium at target 0, LUN 0 (Linux: `/dev/sr*`), read-only.
#[derive(Clone)]
pub struct CdromConfig {
    /// The ISO image, read in 2048-byte blocks.
    pub source: Arc<dyn BlockSource>,
    /// The unit serial number (VPD page 0x80; at most 20 characters).
    pub serial: String,
}

impl std::fmt::Debug for CdromConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CdromConfig")
            .field("capacity", &self.source.capacity())
            .field("serial", &self.serial)
            .finish()
    }
}

/// Everything needed to run a VM.
#[derive(Debug, Clone)]
pub struct VmConfig {
    pub vcpus: u8,
    pub memory_mib: u64,
    pub kernel: Kernel,
    pub initrd: Option<PathBuf>,
    pub cmdline: String,
    pub disks: Vec<DiskConfig>,
    /// virtio-net devices, after the disks on the PCI bus. Their backends
    /// outlive guest reboots.
    pub nics: Vec<NicConfig>,
    /// Add a virtio-rng device.
    pub entropy: bool,
    /// CD-ROM drives, last on the PCI bus (so adding one never moves the
    /// slots, and thus the guest's names, of the disks and NICs).
    pub cdroms: Vec<CdromConfig>,
    pub console: ConsoleConfig,
    /// Exit instead of restarting when the guest reboots.
    pub no_reboot: bool,
    pub bzimage_mode: BzImageMode,
    /// Features hidden from the guest's CPUID.
    pub cpuid_masks: Vec<cpuid::CpuidMask>,
    /// The machine's SMBIOS identity (system UUID and serial number).
    pub smbios: smbios::SmbiosInfo,
}

impl VmConfig {
    /// A config with the usual defaults: 1 vCPU, 512 MiB, console on stdio.
    pub fn new(kernel: Kernel) -> Self {
        VmConfig {
            vcpus: 1,
            memory_mib: 512,
            kernel,
            initrd: None,
            cmdline: String::new(),
            disks: Vec::new(),
            nics: Vec::new(),
            entropy: true,
            cdroms: Vec::new(),
            console: ConsoleConfig {
                stdio: true,
                log: None,
            },
            no_reboot: false,
            bzimage_mode: BzImageMode::PreferPvh,
            cpuid_masks: Vec::new(),
            smbios: smbios::SmbiosInfo::default(),
        }
    }
}

/// How the VM ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExitStatus {
    /// The guest powered off.
    Poweroff,
    /// The guest rebooted and `no_reboot` was set.
    Reboot,
    /// The user quit from the console escape, or the VM was killed through
    /// its [`VmControl`].
    Stopped,
    /// The guest crashed: a triple fault with `no_reboot`, or something KVM
    /// cannot run (internal error, failed entry). The text says what, with
    /// the last console lines.
    Crashed(String),
}

#[derive(Debug, thiserror::Error)]
pub enum VmmError {
    #[error("cannot open /dev/kvm: {0} (is KVM available and are you allowed to use it?)")]
    Kvm(kvm_ioctls::Error),
    #[error("KVM refused to {what}: {source}")]
    KvmSetup {
        what: &'static str,
        source: kvm_ioctls::Error,
    },
    #[error("the VM needs 1 to 254 vCPUs, not {0}")]
    VcpuCount(u8),
    #[error(transparent)]
    Memory(#[from] memory::MemoryError),
    #[error(transparent)]
    Boot(#[from] boot::BootError),
    #[error(transparent)]
    Vcpu(#[from] vcpu::VcpuError),
    #[error("cannot build the ACPI tables: {0}")]
    Acpi(String),
    #[error("cannot write the SMBIOS tables: {0}")]
    Smbios(vm_memory::GuestMemoryError),
    #[error(transparent)]
    Firmware(#[from] firmware::FirmwareError),
    #[error("cannot set up device {what}: {source}")]
    Device {
        what: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Seccomp(#[from] thread_filter::FilterError),
    #[error("cannot restore the snapshot: {0}")]
    Restore(#[from] RestoreError),
    #[error("the VM failed: {reason}{}", format_tail(.last_lines))]
    Failed {
        reason: String,
        last_lines: Vec<String>,
    },
}

fn format_tail(lines: &[String]) -> String {
    if lines.is_empty() {
        return "\n(the guest printed nothing on its console)".into();
    }
    let mut s = String::from("\nlast console lines:");
    for l in lines {
        s.push_str("\n  | ");
        s.push_str(l);
    }
    s
}

/// Run the VM until it powers off (or reboots with `no_reboot`).
pub fn run(config: VmConfig) -> Result<ExitStatus, VmmError> {
    run_controlled(config, &VmControl::new())
}

/// [`run`], stoppable from another thread through `control`. Blocks the
/// calling thread; several VMs may run at once on their own threads.
pub fn run_controlled(config: VmConfig, control: &VmControl) -> Result<ExitStatus, VmmError> {
    run_vm(config, control, None)
}

/// Continue a VM from a snapshot instead of booting it, then run it like
/// [`run_controlled`] (a reboot of the guest boots it afresh). `config`
/// must describe the same machine (vCPUs, memory, devices).
pub fn restore_controlled(
    config: VmConfig,
    from: RestoreFrom,
    control: &VmControl,
) -> Result<ExitStatus, VmmError> {
    run_vm(config, control, Some(from))
}

fn run_vm(
    config: VmConfig,
    control: &VmControl,
    mut restore: Option<RestoreFrom>,
) -> Result<ExitStatus, VmmError> {
    signals::install();
    // Every thread the VM starts filters its own system calls; build the
    // filters now so that a failure stops the start, not a thread later.
    thread_filter::check()?;
    let sink = console::ConsoleSink::new(&config.console).map_err(|source| VmmError::Device {
        what: "console".into(),
        source,
    })?;
    let _raw = if config.console.stdio {
        console::RawTerminal::stdin()
    } else {
        None
    };
    loop {
        let from = restore.take();
        match vm::run_once(&config, &sink, control, from.as_ref())? {
            vm::Outcome::Poweroff => return Ok(ExitStatus::Poweroff),
            vm::Outcome::Reset if config.no_reboot => return Ok(ExitStatus::Reboot),
            vm::Outcome::TripleFault if config.no_reboot => {
                return Ok(ExitStatus::Crashed(format!(
                    "triple fault{}",
                    format_tail(&sink.last_lines(15))
                )))
            }
            vm::Outcome::Reset | vm::Outcome::TripleFault => {
                tracing::info!("guest rebooted; starting it again");
                continue;
            }
            vm::Outcome::Stopped => return Ok(ExitStatus::Stopped),
            vm::Outcome::Crashed(reason) => {
                return Ok(ExitStatus::Crashed(format!(
                    "{reason}{}",
                    format_tail(&sink.last_lines(15))
                )))
            }
        }
    }
}
