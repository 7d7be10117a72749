//! Taking the state of a running VM (the monitor's side of a snapshot):
//! pause every vCPU (each reads its own state as it parks), read KVM's
//! in-kernel devices, write guest memory to a sparse file, resume.
//!
//! Asked for through [`crate::VmControl::capture`]; runs on the VM's own
//! loop thread, which owns the VM and its devices, so nothing else touches
//! them meanwhile. The virtio devices are paused (their threads stopped
//! after the request in progress) before the vCPUs are read and resumed
//! after memory is written and the owner's [`FinishHook`] ran (the launch
//! layer writes the disks' layers and the state file there); firmware
//! boots are refused ([`crate::restore::unsupported`]).

use crate::memory::GuestMemory;
use crate::pause::PauseGate;
use crate::snapshot::{capture_vm, StateError};
use snapshot::{MemoryRegion, Meta, Snapshot};
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use vm_memory::{Bytes, GuestMemoryBackend, GuestMemoryRegion};

/// What [`crate::VmControl::capture`] gives back.
#[derive(Debug)]
pub struct Captured {
    pub snapshot: Snapshot,
    /// How long the vCPUs were paused.
    pub paused_for: Duration,
}

/// Why a capture failed (the VM runs on either way).
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    #[error("the VM is not running")]
    NotRunning,
    #[error("snapshots of VMs with {0} are not supported yet")]
    Unsupported(&'static str),
    #[error("the vCPUs did not pause within {0:?}")]
    PauseTimeout(Duration),
    #[error("the VM did not answer the capture request within {0:?}")]
    NoAnswer(Duration),
    #[error(transparent)]
    State(#[from] StateError),
    #[error("cannot pause a device: {0}")]
    Device(String),
    #[error("vCPU {0} did not report its state")]
    MissingVcpu(usize),
    #[error("cannot write guest memory to {}: {source}", path.display())]
    Memory { path: PathBuf, source: io::Error },
    /// The owner's own step failed (see [`FinishHook`]).
    #[error(transparent)]
    Finish(Box<dyn std::error::Error + Send + Sync>),
}

/// The owner's last step of a capture, run on the VM's loop thread while
/// the VM is still paused, with the snapshot as read: the launch layer
/// adds its record and writes the disks' layers and the state file there
/// (the guest cannot write its disks meanwhile).
pub type FinishHook =
    Box<dyn FnOnce(&mut Snapshot) -> Result<(), Box<dyn std::error::Error + Send + Sync>> + Send>;

/// A request waiting for the VM loop.
pub(crate) struct CaptureRequest {
    pub memory_file: Option<PathBuf>,
    pub finish: Option<FinishHook>,
    pub reply: std::sync::mpsc::Sender<Result<Captured, CaptureError>>,
}

/// Pages written to the memory file; all-zero pages are left as holes.
const PAGE: usize = 4096;
/// Memory is copied out in chunks of this size.
const CHUNK: usize = 1 << 20;
/// How long vCPUs get to leave KVM_RUN.
const PAUSE_TIMEOUT: Duration = Duration::from_secs(5);

/// Everything the VM loop hands to a capture.
pub(crate) struct CaptureContext<'a> {
    pub kvm: &'a kvm_ioctls::Kvm,
    pub vm: &'a kvm_ioctls::VmFd,
    pub mem: &'a GuestMemory,
    pub gate: &'a PauseGate,
    pub kick: &'a dyn Fn(),
    pub config: &'a crate::VmConfig,
    pub serial: &'a std::sync::Mutex<devices::serial::Serial>,
    pub virtio: &'a [crate::pci_setup::AttachedVirtio],
}

/// Pause, read, write, resume (always resume, also on failure).
pub(crate) fn capture(
    ctx: &CaptureContext,
    memory_file: Option<&Path>,
    finish: Option<FinishHook>,
) -> Result<Captured, CaptureError> {
    if let Some(what) = crate::restore::unsupported(ctx.config) {
        return Err(CaptureError::Unsupported(what));
    }
    let msrs = Arc::new(crate::snapshot::msr_index_list(ctx.kvm)?);
    let t0 = Instant::now();
    ctx.gate.request();
    let result = if ctx.gate.wait_parked(PAUSE_TIMEOUT, ctx.kick) {
        paused(ctx, msrs, memory_file).and_then(|mut snapshot| {
            if let Some(finish) = finish {
                finish(&mut snapshot).map_err(CaptureError::Finish)?;
            }
            Ok(snapshot)
        })
    } else {
        Err(CaptureError::PauseTimeout(PAUSE_TIMEOUT))
    };
    // Devices first (a device paused by a capture that failed half-way
    // serves again too), then the vCPUs.
    crate::pci_setup::resume_all(ctx.virtio);
    ctx.gate.resume();
    let paused_for = t0.elapsed();
    result.map(|snapshot| Captured {
        snapshot,
        paused_for,
    })
}

fn paused(
    ctx: &CaptureContext,
    msrs: Arc<Vec<u32>>,
    memory_file: Option<&Path>,
) -> Result<Snapshot, CaptureError> {
    // The devices stop before the vCPUs are read: an interrupt a device
    // raises after a vCPU was read would be missing from the snapshot.
    let mut devices = crate::pci_setup::save_all(ctx.virtio).map_err(CaptureError::Device)?;
    let mut vcpus = Vec::new();
    for (i, s) in ctx
        .gate
        .capture_parked(msrs, PAUSE_TIMEOUT)
        .into_iter()
        .enumerate()
    {
        vcpus.push(s.ok_or(CaptureError::MissingVcpu(i))??);
    }
    let vm = capture_vm(ctx.vm)?;
    let serial = ctx
        .serial
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .snapshot();
    devices.push(crate::restore::serial_state(&serial));
    let memory = match memory_file {
        Some(path) => write_memory(ctx.mem, path).map_err(|source| CaptureError::Memory {
            path: path.to_path_buf(),
            source,
        })?,
        None => Vec::new(),
    };
    Ok(Snapshot {
        meta: Meta {
            writer_version: env!("CARGO_PKG_VERSION").into(),
            taken_unix: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            cpu_vendor: cpu_vendor(),
            tsc_khz: 0,
        },
        vcpus,
        vm,
        devices,
        memory,
        launch: Vec::new(),
    })
}

/// Guest memory, region after region, into a new sparse file: only pages
/// holding a non-zero byte are written.
pub fn write_memory(mem: &GuestMemory, path: &Path) -> io::Result<Vec<MemoryRegion>> {
    let file = File::options().write(true).create_new(true).open(path)?;
    let mut regions = Vec::new();
    let mut offset = 0u64;
    let mut buf = vec![0u8; CHUNK];
    for r in mem.iter() {
        let len = r.len();
        let mut done = 0u64;
        while done < len {
            let n = (len - done).min(CHUNK as u64) as usize;
            mem.read_slice(
                &mut buf[..n],
                vm_memory::GuestAddress(r.start_addr().0 + done),
            )
            .map_err(io::Error::other)?;
            for (i, page) in buf[..n].chunks(PAGE).enumerate() {
                if page.iter().any(|&b| b != 0) {
                    file.write_all_at(page, offset + done + (i * PAGE) as u64)?;
                }
            }
            done += n as u64;
        }
        regions.push(MemoryRegion {
            guest_addr: r.start_addr().0,
            size: len,
            file_offset: offset,
        });
        offset += len;
    }
    file.set_len(offset)?;
    file.sync_all()?;
    Ok(regions)
}

fn cpu_vendor() -> String {
    // CPUID leaf 0 exists on every x86-64 CPU.
    let r = std::arch::x86_64::__cpuid(0);
    let bytes: Vec<u8> = [r.ebx, r.edx, r.ecx]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
}
