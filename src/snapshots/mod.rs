//! Snapshots of running instances, and clones restored from them.
//!
//! A snapshot directory holds:
//! - `state`: the state file ([`snapshot::format`]: vCPUs, KVM devices,
//!   emulated devices, where memory lies, and this layer's [`LaunchRecord`]);
//! - `memory`: guest memory, sparse (holes for pages never written);
//! - `kernel`, `initrd`: what the source booted (a clone boots them again
//!   when its guest reboots, without searching the disk);
//! - `diskN/`: each disk's frozen layer ([`disk_image::Overlay::freeze`]):
//!   what the guest had written above the package at that moment. The
//!   package itself is never copied; the record names it with its path and
//!   identity, and a restore refuses another file.
//!
//! [`take`] (through [`crate::Instance::snapshot`]) pauses the VM, writes all
//! of it, and lets the VM run on. [`restore`] starts a clone: the package's
//! disks under the snapshot's layers under an ephemeral overlay of the
//! clone's own, the memory file mapped copy-on-write (clones of one snapshot
//! share the pages they do not write), a new passt with the clone's own
//! published ports, the guest's clock moved on by the time since the
//! snapshot.
//!
//! Not done: snapshots of firmware boots (refused, named), of instances on
//! tap networking while the tap is in use by the source (the clone opens
//! the tap again), and live migration of any kind.

pub mod record;
mod restore;

pub use record::{LaunchRecord, RecordError};
pub use restore::{restore, RestoreError, RestoreOptions};

use crate::launch::disks::{layer_dir, OpenedDisk};
use crate::launch::{BootChoice, LaunchOptions, MachinePlan};
use disk_image::Overlay;
use ovf_loader::Package;
use record::{DiskLayer, KernelRecord, NicRecord, RECORD_VERSION};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// The state file's name in a snapshot directory.
pub const STATE_FILE: &str = "state";
/// The memory file's name in a snapshot directory.
pub const MEMORY_FILE: &str = "memory";
/// The kernel's copy in a snapshot directory.
pub const KERNEL_FILE: &str = "kernel";
/// The initrd's copy in a snapshot directory (when the source had one).
pub const INITRD_FILE: &str = "initrd";
/// How long a snapshot may take before [`take`] gives up waiting (writing
/// gigabytes of memory on a slow disk).
const CAPTURE_TIMEOUT: Duration = Duration::from_secs(600);

/// What an instance keeps for snapshots of it: its disks' overlays and the
/// record a snapshot will carry; for a clone, also the state it starts from.
pub struct Source {
    pub(crate) record: LaunchRecord,
    pub(crate) overlays: Vec<Arc<Overlay>>,
    /// The kernel and initrd files the VM boots (copied into a snapshot).
    pub(crate) boot_files: Vec<(PathBuf, &'static str)>,
    pub(crate) restore: Option<vmm::RestoreFrom>,
}

impl Source {
    pub(crate) fn new(
        pkg: &Package,
        opts: &LaunchOptions,
        name: &str,
        machine: &MachinePlan,
        disks: &[OpenedDisk],
        boot: &BootChoice,
    ) -> Self {
        let record = LaunchRecord {
            version: RECORD_VERSION,
            package: std::path::absolute(&pkg.path).unwrap_or_else(|_| pkg.path.clone()),
            package_identity: record::package_identity(pkg),
            source_name: name.to_string(),
            taken_unix_ns: 0,
            skip_verify: opts.skip_verify,
            configuration: opts.configuration.clone(),
            system: opts.system.clone(),
            vcpus: machine.vcpus,
            memory_mib: machine.memory_mib,
            kernel: KernelRecord {
                cmdline: boot.cmdline.clone(),
                has_initrd: boot.initrd_path.is_some(),
                description: boot.description.clone(),
            },
            properties: opts
                .properties
                .iter()
                .map(|a| (a.key.clone(), a.value.clone()))
                .collect(),
            nics: machine.nics.iter().map(NicRecord::of).collect(),
            disks: disks
                .iter()
                .enumerate()
                .map(|(i, d)| DiskLayer {
                    dir: layer_dir(i),
                    fingerprint: d.fingerprint.clone(),
                    capacity: block_source::BlockSource::capacity(d.overlay.as_ref()),
                })
                .collect(),
            no_reboot: opts.no_reboot,
        };
        let mut boot_files = Vec::new();
        if let vmm::Kernel::Path(p) = &boot.kernel {
            boot_files.push((p.clone(), KERNEL_FILE));
        }
        if let Some(p) = &boot.initrd_path {
            boot_files.push((p.clone(), INITRD_FILE));
        }
        Source {
            record,
            overlays: disks.iter().map(|d| d.overlay.clone()).collect(),
            boot_files,
            restore: None,
        }
    }
}

/// A snapshot written.
#[derive(Debug, Clone)]
pub struct Saved {
    pub dir: PathBuf,
    /// How long the guest was paused.
    pub paused_for: Duration,
    /// Bytes the snapshot directory takes on disk (state, memory, kernel
    /// and initrd copies, disk layers; sparse files count what they hold).
    pub bytes_on_disk: u64,
}

/// Why a snapshot could not be taken (the instance runs on either way).
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("{}: the snapshot directory must be new or empty", .0.display())]
    DirNotEmpty(PathBuf),
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot snapshot the instance: {0}")]
    Capture(#[from] vmm::CaptureError),
}

/// Whether `dir` can take a snapshot: missing, or an empty directory.
pub fn check_dir(dir: &Path) -> Result<(), SnapshotError> {
    match std::fs::read_dir(dir) {
        Ok(entries) => match entries.count() {
            0 => Ok(()),
            _ => Err(SnapshotError::DirNotEmpty(dir.to_path_buf())),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(SnapshotError::Io {
            path: dir.to_path_buf(),
            source,
        }),
    }
}

/// Pause the VM behind `control`, write the snapshot into `dir` (created
/// if missing; must be empty), and let the VM run on. The files are
/// written by the VM's own thread while the VM is paused; on failure what
/// was written is removed again.
pub(crate) fn take(
    control: &vmm::VmControl,
    source: &Source,
    dir: &Path,
) -> Result<Saved, SnapshotError> {
    let dir = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
    check_dir(&dir)?;
    if !dir.exists() {
        std::fs::create_dir_all(&dir).map_err(|source| SnapshotError::Io {
            path: dir.clone(),
            source,
        })?;
    }
    let mut record = source.record.clone();
    let overlays = source.overlays.clone();
    let boot_files = source.boot_files.clone();
    let hook_dir = dir.clone();
    let finish: vmm::FinishHook = Box::new(move |snap| {
        for (overlay, layer) in overlays.iter().zip(&record.disks) {
            overlay.freeze(&hook_dir.join(&layer.dir), &layer.fingerprint)?;
        }
        for (from, name) in &boot_files {
            copy_file(from, &hook_dir.join(name))?;
        }
        record.taken_unix_ns = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        snap.launch = record.encode();
        let tmp = hook_dir.join(format!("{STATE_FILE}.new"));
        std::fs::write(&tmp, snapshot::format::encode(snap))?;
        std::fs::rename(&tmp, hook_dir.join(STATE_FILE))?;
        Ok(())
    });
    let memory = dir.join(MEMORY_FILE);
    match control.capture_with(Some(&memory), CAPTURE_TIMEOUT, Some(finish)) {
        Ok(captured) => Ok(Saved {
            bytes_on_disk: bytes_on_disk(&dir),
            dir,
            paused_for: captured.paused_for,
        }),
        Err(e) => {
            remove_snapshot_files(&dir, source.record.disks.len());
            Err(e.into())
        }
    }
}

/// Copy with plain reads and writes: the VM's thread may not use
/// copy_file_range(2) or sendfile(2), which `std::fs::copy` tries first.
fn copy_file(from: &Path, to: &Path) -> std::io::Result<()> {
    use std::io::{Read, Write};
    let mut src = std::fs::File::open(from)?;
    let mut dst = std::fs::File::options()
        .write(true)
        .create_new(true)
        .open(to)?;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = src.read(&mut buf)?;
        if n == 0 {
            break;
        }
        dst.write_all(&buf[..n])?;
    }
    dst.sync_all()
}

/// Remove what [`take`] writes (not the directory, which may be the user's).
fn remove_snapshot_files(dir: &Path, disks: usize) {
    for name in [
        STATE_FILE,
        "state.new",
        MEMORY_FILE,
        KERNEL_FILE,
        INITRD_FILE,
    ] {
        let _ = std::fs::remove_file(dir.join(name));
    }
    for i in 0..disks {
        let _ = std::fs::remove_dir_all(dir.join(layer_dir(i)));
    }
}

/// Blocks allocated by the files of a snapshot directory (sparse files
/// count what they hold, not their length).
pub fn bytes_on_disk(dir: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let mut total = 0;
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    for e in entries.flatten() {
        let Ok(m) = e.metadata() else { continue };
        if m.is_dir() {
            total += bytes_on_disk(&e.path());
        } else {
            total += m.blocks() * 512;
        }
    }
    total
}
