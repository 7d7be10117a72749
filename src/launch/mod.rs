//! Package → running VM, step by step:
//! [`Appliance::open`] → [`Appliance::verify`] (or skip on request) → the
//! EULA decision ([`Appliance::eulas`], [`LaunchOptions::accept_eula`]) →
//! [`Appliance::plan`] → a [`LaunchPlan`] → [`LaunchPlan::start`] → an
//! [`crate::Instance`]. The plan applies the user's property values
//! ([`LaunchOptions::properties`]) and prepares the OVF environment
//! ([`environment`]).
//!
//! The mapping of the OVF machine and the user's overrides onto the VM is
//! pure and lives in [`plan`]; this module opens files (disks, overlays,
//! the kernel) around it.

pub mod disks;
pub mod environment;
pub mod kernel;
pub mod plan;

use crate::host::HostLimits;
use crate::net::NetOptions;
use crate::ready::ReadyWhen;
use crate::state::{self, StateError};
pub use environment::{EnvironmentPlan, Transport};
pub use kernel::{BootChoice, Firmware, KernelOptions};
pub use ovf_loader::properties::Assignment;
use ovf_loader::verify::{verify, VerifyOptions, VerifyReport};
use ovf_loader::verify_cache::VerifyCache;
use ovf_loader::{machine_spec, Package};
pub use plan::{MachinePlan, Overrides, PlanError};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use vmm::DiskConfig;

/// Progress of long steps (hashing, decompressing): what, done, total.
pub type Progress = Arc<dyn Fn(&str, u64, u64) + Send + Sync>;

#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    #[error(transparent)]
    Package(#[from] ovf_loader::PackageError),
    #[error("{}: {source}", path.display())]
    Machine {
        path: PathBuf,
        source: ovf_loader::machine::MachineError,
    },
    #[error("{}: {source}", path.display())]
    Plan { path: PathBuf, source: PlanError },
    /// A bad `--prop`, or a property that needs a value.
    #[error("{}: {source}", path.display())]
    Properties {
        path: PathBuf,
        source: ovf_loader::properties::PropertyError,
    },
    #[error("{}: {source}", path.display())]
    Environment {
        path: PathBuf,
        source: ovf_loader::environment::EnvironmentError,
    },
    #[error("{}: cannot build the OVF environment's CD-ROM image: {source}", path.display())]
    EnvironmentIso {
        path: PathBuf,
        source: disk_image::iso_writer::IsoWriteError,
    },
    #[error("--trust {}: {source}", path.display())]
    Trust {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{} does not verify: {}; see ovf-run verify (--no-verify skips the check)", path.display(), problems.join("; "))]
    NotVerified {
        path: PathBuf,
        problems: Vec<String>,
    },
    #[error("{} was not verified: call verify() first or set skip_verify", path.display())]
    VerifyFirst { path: PathBuf },
    #[error("{} has a license agreement; read it with 'ovf-run eula {}' and pass --accept-eula to run it", path.display(), path.display())]
    EulaNotAccepted { path: PathBuf },
    #[error("cannot find a cache folder: set HOME or XDG_CACHE_HOME")]
    NoCache,
    #[error(transparent)]
    Disk(#[from] ovf_loader::disks::DiskOpenError),
    #[error(transparent)]
    Overlay(#[from] disk_image::DiskError),
    #[error(transparent)]
    Boot(#[from] boot_discovery::DiscoveryError),
    /// The package names EFI firmware and no kernel was found to boot
    /// directly: SeaBIOS cannot start a UEFI-only disk.
    #[error("{source}\nthe package was made for EFI firmware (vmw:Config firmware=\"efi\"), which ovf-run does not have: --firmware bios cannot start a UEFI-only disk; give --kernel (and --initrd, --cmdline) to boot its system directly")]
    EfiOnly {
        #[source]
        source: boot_discovery::DiscoveryError,
    },
    #[error(transparent)]
    State(#[from] StateError),
    #[error(transparent)]
    Net(#[from] crate::net::NetError),
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot start the VM thread: {0}")]
    Thread(std::io::Error),
}

/// How to check a package.
#[derive(Debug, Clone, Default)]
pub struct Trust {
    /// Also trust the certificates in this PEM file.
    pub trust_pem: Option<PathBuf>,
    /// Fail when the signer is not trusted.
    pub require_trusted: bool,
    /// Accept an earlier successful verification of the same files.
    pub use_cache: bool,
}

/// An opened package.
pub struct Appliance {
    pkg: Package,
    verified: bool,
}

impl Appliance {
    /// Open an .ova, or an .ovf with its files beside it.
    pub fn open(path: &Path) -> Result<Self, LaunchError> {
        Ok(Appliance {
            pkg: Package::open(path)?,
            verified: false,
        })
    }

    pub fn package(&self) -> &Package {
        &self.pkg
    }

    pub fn path(&self) -> &Path {
        &self.pkg.path
    }

    /// Problems found while opening that do not stop it.
    pub fn warnings(&self) -> &[String] {
        &self.pkg.warnings
    }

    /// Check the manifest digests and signature. A report with problems is
    /// an error; warnings stay in the report.
    pub fn verify(
        &mut self,
        trust: &Trust,
        progress: Option<Progress>,
    ) -> Result<VerifyReport, LaunchError> {
        let trust_pem = match &trust.trust_pem {
            Some(path) => Some(std::fs::read(path).map_err(|source| LaunchError::Trust {
                path: path.clone(),
                source,
            })?),
            None => None,
        };
        let fingerprint = options_fingerprint(trust_pem.as_deref(), trust.require_trusted);
        let cache = VerifyCache::default_location();
        if trust.use_cache
            && cache
                .as_ref()
                .is_some_and(|c| c.is_verified(&self.pkg, &fingerprint))
        {
            self.verified = true;
            return Ok(VerifyReport {
                manifest: None,
                manifests: Vec::new(),
                files: Vec::new(),
                certificate: None,
                problems: Vec::new(),
                warnings: Vec::new(),
            });
        }
        let p = progress.clone();
        let cb = move |name: &str, done: u64, total: u64| {
            if let Some(p) = &p {
                p(name, done, total)
            }
        };
        let opts = VerifyOptions {
            trust_pem,
            require_trusted: trust.require_trusted,
            progress: Some(&cb),
            only_files: None,
        };
        let report = verify(&self.pkg, &opts)?;
        if !report.ok() {
            return Err(LaunchError::NotVerified {
                path: self.pkg.path.clone(),
                problems: report.problems.clone(),
            });
        }
        if let Some(cache) = &cache {
            cache.remember(&self.pkg, &fingerprint);
        }
        self.verified = true;
        Ok(report)
    }

    /// The license agreements the user must accept (empty: none).
    pub fn eulas(&self) -> Vec<String> {
        self.pkg
            .envelope
            .content
            .as_ref()
            .map(|c| c.all_eulas().iter().map(|e| e.license.clone()).collect())
            .unwrap_or_default()
    }

    /// Decide the machine and open its disks and kernel.
    pub fn plan(&self, opts: &LaunchOptions) -> Result<LaunchPlan, LaunchError> {
        let layering = match &opts.persist {
            Some(dir) => disks::Layering::Persist(dir),
            None => disks::Layering::Ephemeral,
        };
        self.plan_layered(opts, layering)
    }

    /// [`Appliance::plan`] with the disks' overlays chosen by the caller
    /// (a restore puts them over a snapshot's layers).
    pub(crate) fn plan_layered(
        &self,
        opts: &LaunchOptions,
        layering: disks::Layering,
    ) -> Result<LaunchPlan, LaunchError> {
        let path = self.pkg.path.clone();
        if !self.verified && !opts.skip_verify {
            return Err(LaunchError::VerifyFirst { path });
        }
        if !opts.accept_eula && !self.eulas().is_empty() {
            return Err(LaunchError::EulaNotAccepted { path });
        }
        let name = match &opts.name {
            Some(n) => {
                state::check_name(n)?;
                n.clone()
            }
            None => state::generate_name(),
        };
        let properties = |source| LaunchError::Properties {
            path: path.clone(),
            source,
        };
        let resolution = ovf_loader::properties::resolve(
            &self.pkg.envelope,
            opts.configuration.as_deref(),
            &opts.properties,
        )
        .map_err(properties)?;
        // `${key}` disk capacities take the final values.
        let envelope = ovf_loader::properties::apply_to_envelope(&self.pkg.envelope, &resolution)
            .map_err(properties)?;
        let spec = machine_spec(
            &envelope,
            opts.system.as_deref(),
            opts.configuration.as_deref(),
        )
        .map_err(|source| LaunchError::Machine {
            path: path.clone(),
            source,
        })?;
        let visible = ovf_loader::environment::visible_owners(&envelope, &spec.system_id);
        resolution
            .require_complete_for(|owner| visible.iter().any(|v| v == owner))
            .map_err(properties)?;
        let mut machine = plan::plan_machine(&spec, &opts.overrides, &opts.net, &name, opts.host)
            .map_err(|source| LaunchError::Plan {
            path: path.clone(),
            source,
        })?;
        machine.notes.splice(0..0, spec.warnings.iter().cloned());
        machine.notes.extend(resolution.warnings.iter().cloned());
        let environment = environment::plan_environment(
            &envelope,
            &spec.system_id,
            resolution,
            &machine.nics,
            &environment::host_platform(),
        )
        .map_err(|source| LaunchError::Environment {
            path: path.clone(),
            source,
        })?;
        // The package's own CD-ROM images first (descriptor order), then
        // the OVF environment's.
        let mut cdroms = disks::open_cdroms(&self.pkg, &spec, opts.progress.clone())?;
        cdroms.extend(environment::cdroms(&environment).map_err(|source| {
            LaunchError::EnvironmentIso {
                path: path.clone(),
                source,
            }
        })?);
        let persist_lock = match &opts.persist {
            Some(dir) => Some(state::lock_persist_dir(dir)?),
            None => None,
        };
        let opened = disks::open_disks(&self.pkg, &spec, layering, opts.progress.clone())?;
        let boot =
            kernel::choose_kernel(&opts.kernel, opened[0].config.source.clone(), spec.firmware)?;
        let smbios = plan::machine_identity(&self.pkg.descriptor, &name);
        let snapshot =
            crate::snapshots::Source::new(&self.pkg, opts, &name, &machine, &opened, &boot);
        Ok(LaunchPlan {
            name,
            package: path,
            machine,
            disks: opened.into_iter().map(|d| d.config).collect(),
            boot,
            environment,
            cdroms,
            smbios,
            persist_lock,
            options: opts.clone(),
            snapshot,
        })
    }
}

/// The verification cache's key for these trust options (the same as
/// `ovf-run verify --cached` uses).
/// The verification cache's key for the trust options: a package verified
/// under other options is verified again. Shared with `ovf-run verify`.
pub fn options_fingerprint(trust_pem: Option<&[u8]>, require_trusted: bool) -> String {
    use sha2::{Digest, Sha256};
    let trust = trust_pem
        .map(|p| hex::encode(Sha256::digest(p)))
        .unwrap_or_default();
    format!("v1 require_trusted={require_trusted} trust={trust}")
}

/// Everything the user can choose about an instance.
#[derive(Clone)]
pub struct LaunchOptions {
    /// The instance name (default: generated). Names the state directory
    /// and seeds the MAC addresses.
    pub name: Option<String>,
    pub skip_verify: bool,
    pub accept_eula: bool,
    pub configuration: Option<String>,
    pub system: Option<String>,
    pub overrides: Overrides,
    pub persist: Option<PathBuf>,
    pub kernel: KernelOptions,
    pub net: NetOptions,
    /// Copy the console to our stdout and feed it our stdin.
    pub console_stdio: bool,
    /// Also write the console here (it is always in the instance directory).
    pub console_log: Option<PathBuf>,
    /// Also write the events here (they are always in the instance directory).
    pub events: Option<PathBuf>,
    pub no_reboot: bool,
    /// The limits plans are checked against (default: this host's).
    pub host: HostLimits,
    /// Where the instance directory goes (default: [`state::state_root`]).
    pub state_root: Option<PathBuf>,
    /// Keep the instance directory after exit (detached instances).
    pub keep_state: bool,
    pub progress: Option<Progress>,
    /// Property values (`--prop`, `--prop-file`); later ones win.
    pub properties: Vec<Assignment>,
}

impl Default for LaunchOptions {
    fn default() -> Self {
        LaunchOptions {
            name: None,
            skip_verify: false,
            accept_eula: false,
            configuration: None,
            system: None,
            overrides: Overrides::default(),
            persist: None,
            kernel: KernelOptions::default(),
            net: NetOptions::default(),
            console_stdio: false,
            console_log: None,
            events: None,
            no_reboot: false,
            host: HostLimits::of_this_host(),
            state_root: None,
            keep_state: false,
            progress: None,
            properties: Vec::new(),
        }
    }
}

/// A decided instance, its disks open, ready to start.
pub struct LaunchPlan {
    pub name: String,
    pub package: PathBuf,
    pub machine: MachinePlan,
    pub disks: Vec<DiskConfig>,
    pub boot: BootChoice,
    /// The OVF environment: transport, `ovf-env.xml`, final property values.
    pub environment: EnvironmentPlan,
    /// CD-ROMs for the guest, each on a virtio-scsi controller (`/dev/srN`):
    /// the package's own CD-ROM images in the descriptor's order, then the
    /// OVF environment's ISO image (transport `iso`).
    pub cdroms: Vec<vmm::CdromConfig>,
    /// The machine's SMBIOS identity: a system UUID stable for this package
    /// and instance name, and the instance name as serial number.
    pub smbios: vmm::smbios::SmbiosInfo,
    pub(crate) persist_lock: Option<std::fs::File>,
    pub options: LaunchOptions,
    /// What a snapshot of the instance needs (and, for a restore, the
    /// state it continues from).
    pub(crate) snapshot: crate::snapshots::Source,
}

impl LaunchPlan {
    /// Start the VM on its own thread; see [`crate::Instance`].
    pub fn start(self) -> Result<crate::Instance, LaunchError> {
        crate::instance::start(self, false)
    }

    /// Like [`LaunchPlan::start`], but the vCPUs wait (the VM built, its
    /// network up, no guest code run) until [`crate::Instance::release`]:
    /// for a caller that must finish its own setup before the guest runs,
    /// as the CLI does to put its own thread under seccomp.
    pub fn start_held(self) -> Result<crate::Instance, LaunchError> {
        crate::instance::start(self, true)
    }

    /// The `ovf-env.xml` for the transport (`None`: no environment).
    pub fn environment_xml(&self) -> Option<&[u8]> {
        self.environment.environment_xml.as_deref()
    }

    /// The ports a `tcp:`/`http:` ready condition needs published.
    pub fn missing_ports(&self, ready: &[ReadyWhen]) -> Vec<u16> {
        ready
            .iter()
            .filter_map(|r| r.guest_port())
            .filter(|g| !self.machine.publish.iter().any(|p| p.guest_port == *g))
            .collect()
    }
}
