//! A clone from a snapshot directory: read and check the state file and
//! the launch record, open the package it names (refusing another file),
//! plan the same machine over the snapshot's disk layers, and start the VM
//! from the saved state instead of booting it.

use super::record::{LaunchRecord, RecordError};
use super::{MEMORY_FILE, STATE_FILE};
use crate::launch::disks::Layering;
use crate::launch::{Appliance, LaunchError, LaunchOptions, LaunchPlan, Overrides, Trust};
use ovf_loader::properties::Assignment;
use std::io::Read;
use std::path::{Path, PathBuf};

/// How to start a clone. The machine (CPUs, memory, disks, NICs and their
/// MACs, kernel) is the snapshot's; `launch` gives the rest: name, published
/// ports, console, events, state directory, `no_reboot`.
#[derive(Clone, Default)]
pub struct RestoreOptions {
    pub launch: LaunchOptions,
    /// The package, when it moved since the snapshot (its identity must
    /// still match).
    pub package: Option<PathBuf>,
    pub trust: Trust,
}

/// Why a clone could not start.
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    #[error("{}: not a snapshot directory (no {STATE_FILE} file): {source}", dir.display())]
    NoState {
        dir: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: {source}", path.display())]
    StateFile {
        path: PathBuf,
        source: snapshot::format::StateFileError,
    },
    #[error("{}: {source}", path.display())]
    Record { path: PathBuf, source: RecordError },
    #[error("{}: the package changed since the snapshot was taken of it (identity {found}, the snapshot's {expected}); restore against the same file, or take a new snapshot", path.display())]
    PackageChanged {
        path: PathBuf,
        expected: String,
        found: String,
    },
    #[error("{}: the snapshot's NIC {index} uses a network mode this ovf-run does not know ({mode})", path.display())]
    NicMode {
        path: PathBuf,
        index: usize,
        mode: String,
    },
    #[error("the snapshot was of {expected} with {what}; this package now gives {found}: restore against the package it was taken of")]
    Shape {
        what: &'static str,
        expected: u64,
        found: u64,
    },
    #[error("{}: the snapshot's copy of what its guest booted is missing: {source}", path.display())]
    BootFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Launch(#[from] LaunchError),
}

/// The largest state file read (the format's body limit and its header).
const MAX_STATE_FILE: u64 = snapshot::format::MAX_BODY + 4096;

/// Read and decode `dir/state`.
pub fn read_state(dir: &Path) -> Result<(snapshot::Snapshot, LaunchRecord), RestoreError> {
    let path = dir.join(STATE_FILE);
    let file = std::fs::File::open(&path).map_err(|source| RestoreError::NoState {
        dir: dir.to_path_buf(),
        source,
    })?;
    let mut bytes = Vec::new();
    file.take(MAX_STATE_FILE)
        .read_to_end(&mut bytes)
        .map_err(|source| RestoreError::NoState {
            dir: dir.to_path_buf(),
            source,
        })?;
    let snap = snapshot::format::decode(&bytes).map_err(|source| RestoreError::StateFile {
        path: path.clone(),
        source,
    })?;
    let record = LaunchRecord::decode(&snap.launch)
        .map_err(|source| RestoreError::Record { path, source })?;
    Ok((snap, record))
}

/// The launch options that plan the snapshot's machine again, with the
/// clone's own name, ports, console and events from `opts`.
pub fn clone_options(record: &LaunchRecord, dir: &Path, opts: &LaunchOptions) -> LaunchOptions {
    let mut o = opts.clone();
    o.configuration = record.configuration.clone();
    o.system = record.system.clone();
    o.overrides = Overrides {
        cpus: Some(u32::from(record.vcpus)),
        memory_mib: Some(record.memory_mib),
    };
    o.kernel = record.kernel.options(dir);
    o.properties = record
        .properties
        .iter()
        .map(|(key, value)| Assignment {
            key: key.clone(),
            value: value.clone(),
            origin: "the snapshot".into(),
        })
        .collect();
    // A clone never writes the source's --persist directory.
    o.persist = None;
    o.accept_eula = true;
    o
}

/// Plan a clone of the snapshot in `dir` (see [`RestoreOptions`]); start
/// it with [`LaunchPlan::start`] or [`LaunchPlan::start_held`].
pub fn restore(dir: &Path, opts: &RestoreOptions) -> Result<LaunchPlan, RestoreError> {
    let dir = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
    let (snap, record) = read_state(&dir)?;
    check_boot_files(&dir, &record)?;
    let package = opts
        .package
        .clone()
        .unwrap_or_else(|| record.package.clone());
    let mut app = Appliance::open(&package)?;
    let found = super::record::package_identity(app.package());
    if found != record.package_identity {
        return Err(RestoreError::PackageChanged {
            path: package,
            expected: record.package_identity.clone(),
            found,
        });
    }
    if !opts.launch.skip_verify {
        let trust = Trust {
            use_cache: true,
            ..opts.trust.clone()
        };
        app.verify(&trust, opts.launch.progress.clone())?;
    }
    let launch = clone_options(&record, &dir, &opts.launch);
    let mut plan = app.plan_layered(&launch, Layering::Snapshot(&dir))?;
    check_shape(&record, &plan)?;
    // What the source booted, not the snapshot's copy of it.
    plan.boot.description = record.kernel.description.clone();
    plan.machine.nics = record
        .nics
        .iter()
        .enumerate()
        .map(|(index, n)| {
            n.plan().ok_or_else(|| RestoreError::NicMode {
                path: dir.join(STATE_FILE),
                index,
                mode: n.mode.clone(),
            })
        })
        .collect::<Result<_, _>>()?;
    apply_net_choice(&mut plan.machine.nics, &opts.launch);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    plan.snapshot.restore = Some(vmm::RestoreFrom {
        snapshot: snap,
        memory_file: dir.join(MEMORY_FILE),
        elapsed_ns: now.saturating_sub(record.taken_unix_ns) as u64,
    });
    Ok(plan)
}

/// The snapshot's copies of the kernel and initrd must be there (a clone
/// boots them when its guest reboots).
fn check_boot_files(dir: &Path, record: &LaunchRecord) -> Result<(), RestoreError> {
    let mut files = vec![super::KERNEL_FILE];
    if record.kernel.has_initrd {
        files.push(super::INITRD_FILE);
    }
    for name in files {
        let path = dir.join(name);
        if let Err(source) = std::fs::metadata(&path) {
            return Err(RestoreError::BootFile { path, source });
        }
    }
    Ok(())
}

/// The clone's own `--net` replaces the first NIC's mode (its MAC stays).
fn apply_net_choice(nics: &mut [crate::net::NicPlan], opts: &LaunchOptions) {
    if let (Some(mode), Some(first)) = (&opts.net.net, nics.first_mut()) {
        first.mode = mode.clone();
    }
}

/// The re-planned machine must be the snapshot's (the same descriptor
/// gives it; a host that cannot give the CPUs or memory fails in planning).
fn check_shape(record: &LaunchRecord, plan: &LaunchPlan) -> Result<(), RestoreError> {
    let pairs = [
        (
            "vCPUs",
            u64::from(record.vcpus),
            u64::from(plan.machine.vcpus),
        ),
        ("MiB of memory", record.memory_mib, plan.machine.memory_mib),
        ("disks", record.disks.len() as u64, plan.disks.len() as u64),
        (
            "NICs",
            record.nics.len() as u64,
            plan.machine.nics.len() as u64,
        ),
    ];
    for (what, expected, found) in pairs {
        if expected != found {
            return Err(RestoreError::Shape {
                what,
                expected,
                found,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshots::record::sample_record as record;

    #[test]
    fn a_clone_plans_the_snapshot_machine_with_its_own_name_and_ports() {
        let mut own = LaunchOptions {
            name: Some("clone1".into()),
            persist: Some("/srv/persist".into()),
            ..LaunchOptions::default()
        };
        own.overrides.cpus = Some(8);
        own.net.publish = vec!["0:80".parse().unwrap()];
        let o = clone_options(&record(), Path::new("/snap"), &own);
        assert_eq!(o.name.as_deref(), Some("clone1"));
        assert_eq!(
            (o.overrides.cpus, o.overrides.memory_mib),
            (Some(2), Some(1024))
        );
        assert_eq!(o.configuration.as_deref(), Some("small"));
        assert_eq!(o.kernel.cmdline.as_deref(), Some("console=ttyS0 quiet"));
        assert_eq!(o.kernel.kernel.as_deref(), Some(Path::new("/snap/kernel")));
        assert_eq!(o.kernel.initrd.as_deref(), Some(Path::new("/snap/initrd")));
        assert_eq!(o.kernel.firmware, crate::launch::Firmware::Direct);
        assert_eq!(
            (o.properties[0].key.as_str(), o.properties[0].value.as_str()),
            ("k", "v=1")
        );
        assert_eq!(
            o.persist, None,
            "a clone never writes the source's --persist directory"
        );
        assert_eq!(o.net.publish.len(), 1);
        let mut nics: Vec<_> = record().nics.iter().filter_map(|n| n.plan()).collect();
        apply_net_choice(&mut nics, &o);
        assert_eq!(nics[0].mode, crate::net::NetMode::User);
        own.net.net = Some(crate::net::NetMode::None);
        apply_net_choice(&mut nics, &own);
        assert_eq!(
            (nics[0].mode.clone(), nics[0].mac),
            (crate::net::NetMode::None, [0x52, 0x54, 0, 1, 2, 3])
        );
    }

    #[test]
    fn the_kernel_and_initrd_copies_must_be_there() {
        let dir = tempfile::tempdir().unwrap();
        let mut r = record();
        let e = check_boot_files(dir.path(), &r).unwrap_err();
        assert!(e.to_string().contains("kernel"), "{e}");
        std::fs::write(dir.path().join("kernel"), b"k").unwrap();
        let e = check_boot_files(dir.path(), &r).unwrap_err();
        assert!(e.to_string().contains("initrd"), "{e}");
        r.kernel.has_initrd = false;
        check_boot_files(dir.path(), &r).unwrap();
    }

    #[test]
    fn a_directory_without_a_good_state_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let e = read_state(dir.path()).unwrap_err();
        assert!(matches!(e, RestoreError::NoState { .. }), "{e}");
        std::fs::write(dir.path().join(STATE_FILE), b"OVFRSNAP but cut").unwrap();
        let e = read_state(dir.path()).unwrap_err();
        assert!(matches!(e, RestoreError::StateFile { .. }), "{e}");
        assert!(e.to_string().contains("state"), "{e}");
    }
}
