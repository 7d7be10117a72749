//! Virtio drivers for appliances built for other hypervisors.
//!
//! An initramfs made host-only (dracut `hostonly`, initramfs-tools
//! `MODULES=dep`/`list`) on VMware or VirtualBox holds `vmw_pvscsi`,
//! `ahci`, `e1000`… and no virtio: booted on ovf-run it waits forever for
//! its root disk. [`prepare`] looks inside the initramfs the plan chose and,
//! when `virtio_pci`, `virtio_blk` or `virtio_net` (or what they depend on)
//! are missing or would not load early, builds a small cpio archive to
//! append to the in-memory copy (the kernel unpacks concatenated archives,
//! later files replacing earlier ones). The disk is never written.
//!
//! The archive holds the module files from the appliance's own
//! `/lib/modules/<release>` (compression kept: `.ko.xz`/`.ko.zst` need the
//! initramfs' kmod built with that support, or a kernel that decompresses
//! modules itself, as every distribution kernel shipping such modules
//! does), a `modules.dep` and `modules.dep.bin` that know them (kmod's
//! `modprobe` only reads the index), and the early-load lists:
//! initramfs-tools' `conf/modules` (its lines kept) and dracut's
//! `/etc/modules-load.d/ovf-run-virtio.conf` plus `rd.driver.pre=` for the
//! command line; both lists when the generator is not recognised.
//!
//! It also rewrites `root=/dev/sdXN` / `/dev/hdXN` to `root=UUID=` of that
//! partition's filesystem ([`rootdev`]).

pub mod facts;
mod inject;
pub mod kmod_index;
pub mod modules;
pub mod rootdev;

use crate::discover::BootPlan;
use crate::error::{DiscoveryError, FsError};
use crate::initramfs::{self, InitramfsError, Limits};
use crate::partition::human_size;
use crate::volumes::{scan, Volume};
use block_source::BlockSource;
use facts::{gather, Generator, InitramfsFacts};
use inject::RootModules;
use modules::{bzimage_release, release_from_path};
use rootdev::{translate_root, RootTranslation};
use std::sync::Arc;

pub use inject::LOAD_CONF;

/// The drivers the VM's devices need: the PCI transport, the disk, the NIC.
pub const VIRTIO: [&str; 3] = ["virtio_pci", "virtio_blk", "virtio_net"];

#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    #[error("{0}")]
    Initramfs(#[from] InitramfsError),
    #[error("{0}")]
    Disk(#[from] DiscoveryError),
    #[error("reading the appliance's kernel modules: {path}: {source}")]
    RootFs {
        path: String,
        #[source]
        source: FsError,
    },
    #[error("modules.dep on the appliance's disk names {path}, which is not there; its module tree is incomplete")]
    ModuleFileMissing { path: String },
    #[error("the virtio modules to add exceed {limit} bytes; refusing")]
    TooMuch { limit: u64 },
    #[error("the boot plan holds no initrd bytes (made by describe); use discover")]
    NotLoaded,
}

/// Where a virtio driver is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Compiled into the kernel (`modules.builtin`).
    BuiltIn,
    /// A module file in the initramfs.
    InInitramfs,
    /// Copied from the root filesystem into the appended archive.
    Added,
    /// Nowhere: the kernel has no such driver.
    Absent,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModuleState {
    pub name: String,
    pub state: State,
    /// Loaded before the root is looked for (after our archive, if any).
    pub loads_early: bool,
}

/// What [`prepare`] found and did.
#[derive(Debug, Clone)]
pub struct DriverReport {
    pub release: Option<String>,
    pub generator: Generator,
    /// How the initramfs is stored, one word per archive.
    pub archives: Vec<&'static str>,
    pub modules: Vec<ModuleState>,
    /// Modules (the drivers and their dependencies) the initramfs lacked.
    pub missing: Vec<String>,
    /// Drivers present but not loaded early (no list, no udev).
    pub not_loaded_early: Vec<String>,
    /// Files the appended archive adds.
    pub added: Vec<String>,
    /// The archive to append to the initrd, when something must change.
    pub appended_cpio: Option<Vec<u8>>,
    /// Words to add to the command line (`rd.driver.pre=` for dracut).
    pub cmdline_extra: Vec<String>,
    /// `root=/dev/sdXN` rewritten to `root=UUID=`.
    pub root: Option<RootTranslation>,
    /// The entry's command line with the root rewrite applied.
    pub cmdline: String,
    /// What cannot be fixed: the guest will not find its disk.
    pub problems: Vec<String>,
}

impl DriverReport {
    fn new(cmdline: &str) -> Self {
        DriverReport {
            release: None,
            generator: Generator::Unknown,
            archives: Vec::new(),
            modules: Vec::new(),
            missing: Vec::new(),
            not_loaded_early: Vec::new(),
            added: Vec::new(),
            appended_cpio: None,
            cmdline_extra: Vec::new(),
            root: None,
            cmdline: cmdline.to_string(),
            problems: Vec::new(),
        }
    }

    /// Lines for `inspect` and the launch log.
    pub fn summary(&self) -> String {
        let mut s = format!(
            "initramfs: {}, {} archive(s) ({}), kernel release {}\n",
            self.generator.name(),
            self.archives.len(),
            self.archives.join(" + "),
            self.release.as_deref().unwrap_or("unknown")
        );
        for m in &self.modules {
            let state = match m.state {
                State::BuiltIn => "built into the kernel",
                State::InInitramfs if m.loads_early => "in the initramfs, loaded early",
                State::InInitramfs => "in the initramfs, NOT loaded early",
                State::Added => "added from the appliance's /lib/modules",
                State::Absent => "MISSING: the kernel has no such driver",
            };
            s.push_str(&format!("  {}: {state}\n", m.name));
        }
        if !self.missing.is_empty() {
            s.push_str(&format!(
                "  missing from the initramfs: {}\n",
                self.missing.join(", ")
            ));
        }
        if !self.not_loaded_early.is_empty() {
            s.push_str(&format!(
                "  not loaded early: {}\n",
                self.not_loaded_early.join(", ")
            ));
        }
        if let Some(a) = &self.appended_cpio {
            s.push_str(&format!(
                "  appended: a {} cpio archive adding {} module(s) and the early-load lists\n",
                human_size(a.len() as u64),
                self.added.len()
            ));
        }
        if !self.cmdline_extra.is_empty() {
            s.push_str(&format!(
                "  command line: + {}\n",
                self.cmdline_extra.join(" ")
            ));
        }
        if let Some(r) = &self.root {
            s.push_str(&format!("  root device: {} -> {}\n", r.from, r.to));
        }
        for p in &self.problems {
            s.push_str(&format!("  problem: {p}\n"));
        }
        s
    }
}

/// Check a loaded plan's initramfs for virtio drivers and build what to
/// append; rewrite an old-style `root=`. The disk is scanned again (cheap:
/// headers only) to reach the root filesystem's module tree.
pub fn prepare(disk: Arc<dyn BlockSource>, plan: &BootPlan) -> Result<DriverReport, DriverError> {
    let scan = scan(disk)?;
    prepare_with(&scan.volumes, plan)
}

/// Discover what boots (reading its kernel and initrd) and check its
/// drivers: what `inspect` shows.
pub fn check(disk: Arc<dyn BlockSource>) -> Result<DriverReport, DriverError> {
    let plan = crate::discover(disk.clone())?;
    prepare(disk, &plan)
}

/// As [`prepare`], over volumes already scanned.
pub fn prepare_with(volumes: &[Volume], plan: &BootPlan) -> Result<DriverReport, DriverError> {
    let mut report = DriverReport::new(&plan.cmdline);
    if let Some((line, t)) = translate_root(&plan.cmdline, |disk, part| {
        // The boot disk is the first; others are not discovery's to read.
        (disk == 0)
            .then(|| {
                volumes
                    .iter()
                    .find(|v| v.info.logical_volume.is_none() && v.info.number == part)
                    .and_then(|v| v.fs.uuid())
            })
            .flatten()
    }) {
        report.cmdline = line;
        report.root = Some(t);
    }
    let facts = match plan.initrd.as_deref() {
        Some([]) if plan.initrd_size.unwrap_or(0) > 0 => return Err(DriverError::NotLoaded),
        Some(bytes) => {
            let ird = initramfs::read(bytes, &facts::keep, Limits::default())?;
            Some(gather(&ird))
        }
        None => None,
    };
    report.release = bzimage_release(&plan.kernel)
        .or_else(|| release_from_path(&plan.kernel_path))
        .or_else(|| {
            let dirs = &facts.as_ref()?.module_dirs;
            (dirs.len() == 1)
                .then(|| dirs.keys().next().cloned())
                .flatten()
        });
    let Some(rel) = report.release.clone() else {
        report
            .problems
            .push("cannot tell the kernel's release (no version in its header or file name), so its modules cannot be checked".into());
        return Ok(report);
    };
    let rootflags = rootflags(&report.cmdline);
    let root = volumes
        .iter()
        .flat_map(|v| {
            let prefixes = v.fs.root_prefixes(rootflags.as_deref());
            prefixes.into_iter().map(move |p| (v, p))
        })
        .find_map(|(v, p)| RootModules::open(&*v.fs, &p, &rel).transpose())
        .transpose()?;
    match facts {
        Some(f) => {
            report.generator = f.generator;
            report.archives = f.segments.iter().map(|s| s.compression.name()).collect();
            inject::plan(&f, &rel, root.as_ref(), &mut report)?;
        }
        None => no_initramfs(&rel, root.as_ref(), &mut report),
    }
    Ok(report)
}

/// The value of the last `rootflags=` on a command line (what the kernel
/// mounts the root with: `subvol=@`, `subvolid=256` on btrfs).
pub fn rootflags(cmdline: &str) -> Option<String> {
    crate::cmdline::split_words(cmdline)
        .iter()
        .rev()
        .find_map(|w| w.strip_prefix("rootflags=").map(str::to_string))
}

/// Without an initramfs the drivers must be built in.
fn no_initramfs(rel: &str, root: Option<&RootModules>, report: &mut DriverReport) {
    for top in VIRTIO {
        let builtin = root.is_some_and(|r| r.builtin.contains(top));
        report.modules.push(ModuleState {
            name: top.to_string(),
            state: if builtin {
                State::BuiltIn
            } else {
                State::Absent
            },
            loads_early: builtin,
        });
        if !builtin && top != "virtio_net" {
            report.problems.push(format!(
                "there is no initramfs and {top} is not built into kernel {rel}: the kernel cannot reach its root disk"
            ));
        }
    }
}

/// The facts of an initramfs image alone (for tests and tools).
pub fn initramfs_facts(image: &[u8]) -> Result<InitramfsFacts, InitramfsError> {
    Ok(gather(&initramfs::read(
        image,
        &facts::keep,
        Limits::default(),
    )?))
}

#[cfg(test)]
mod tests {
    use super::rootflags;

    #[test]
    fn rootflags_last_one_wins() {
        assert_eq!(rootflags("root=UUID=x ro quiet"), None);
        assert_eq!(
            rootflags("root=UUID=x rootflags=subvol=@old rootflags=subvol=@ ro").as_deref(),
            Some("subvol=@")
        );
    }
}
