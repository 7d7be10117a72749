//! The launch layer's record in a snapshot: which package (path and
//! identity), the choices that decided the machine (so a restore plans the
//! same one), the NICs' MACs and modes (the guest keeps its addresses), and
//! each disk's frozen layer. Encoded with postcard into
//! [`snapshot::Snapshot::launch`], behind its own version number.
//!
//! Pure: no files are opened here except by [`package_identity`].

use crate::launch::KernelOptions;
use crate::net::{NetMode, NicPlan};
use ovf_loader::Package;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::path::PathBuf;

/// The record's own format version (the state file has another).
pub const RECORD_VERSION: u16 = 1;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LaunchRecord {
    pub version: u16,
    /// The package, as an absolute path.
    pub package: PathBuf,
    /// [`package_identity`] of the package at the snapshot.
    pub package_identity: String,
    /// The instance the snapshot was taken of.
    pub source_name: String,
    /// Nanoseconds since the Unix epoch when it was taken.
    pub taken_unix_ns: u128,
    pub skip_verify: bool,
    pub configuration: Option<String>,
    pub system: Option<String>,
    pub vcpus: u8,
    pub memory_mib: u64,
    pub kernel: KernelRecord,
    /// Property values as given (`key`, `value`), in order.
    pub properties: Vec<(String, String)>,
    pub nics: Vec<NicRecord>,
    pub disks: Vec<DiskLayer>,
    pub no_reboot: bool,
}

/// What the source booted, as the snapshot keeps it: its kernel and
/// initrd are copied into the snapshot directory ([`super::KERNEL_FILE`],
/// [`super::INITRD_FILE`]), so a clone neither searches the disk for them
/// again nor checks the initramfs (and a reboot of a clone boots the same).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KernelRecord {
    /// The final kernel command line.
    pub cmdline: String,
    pub has_initrd: bool,
    /// What booted, for messages ("/boot/vmlinuz-6.1 from \"Debian\"").
    pub description: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NicRecord {
    pub network: Option<String>,
    pub mac: [u8; 6],
    /// "user", "tap=NAME" or "none".
    pub mode: String,
}

/// A disk's layer in the snapshot directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiskLayer {
    /// Directory name inside the snapshot directory (`disk0`, …).
    pub dir: String,
    /// The overlay fingerprint of the package disk below it.
    pub fingerprint: String,
    pub capacity: u64,
}

/// Why a record cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("the snapshot holds no launch record (it was not written by ovf-run's launch layer)")]
    Missing,
    #[error("the snapshot's launch record does not decode: {0}")]
    Decode(postcard::Error),
    #[error("the snapshot's launch record is format {found}; this ovf-run reads format {RECORD_VERSION}: take the snapshot again with this version")]
    Version { found: u16 },
}

impl LaunchRecord {
    pub fn encode(&self) -> Vec<u8> {
        postcard::to_stdvec(self).expect("a launch record always encodes")
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, RecordError> {
        if bytes.is_empty() {
            return Err(RecordError::Missing);
        }
        // The version leads the record: read it alone first, so a record
        // of another version says so instead of failing to decode.
        let (version, _): (u16, _) =
            postcard::take_from_bytes(bytes).map_err(RecordError::Decode)?;
        if version != RECORD_VERSION {
            return Err(RecordError::Version { found: version });
        }
        postcard::from_bytes(bytes).map_err(RecordError::Decode)
    }
}

impl KernelRecord {
    /// Boot the snapshot's own copies in `dir` (direct boot, no search).
    pub fn options(&self, dir: &std::path::Path) -> KernelOptions {
        KernelOptions {
            kernel: Some(dir.join(super::KERNEL_FILE)),
            initrd: self.has_initrd.then(|| dir.join(super::INITRD_FILE)),
            append: Vec::new(),
            cmdline: Some(self.cmdline.clone()),
            firmware: crate::launch::Firmware::Direct,
            bios: None,
        }
    }
}

impl NicRecord {
    pub fn of(plan: &NicPlan) -> Self {
        NicRecord {
            network: plan.network.clone(),
            mac: plan.mac,
            mode: match &plan.mode {
                NetMode::User => "user".into(),
                NetMode::Tap(name) => format!("tap={name}"),
                NetMode::None => "none".into(),
            },
        }
    }

    /// The NIC as it was; `None` for a mode this version does not know.
    pub fn plan(&self) -> Option<NicPlan> {
        let mode = match self.mode.as_str() {
            "user" => NetMode::User,
            "none" => NetMode::None,
            other => NetMode::Tap(other.strip_prefix("tap=")?.to_string()),
        };
        Some(NicPlan {
            network: self.network.clone(),
            mac: self.mac,
            mode,
            by_default: false,
        })
    }
}

/// The package's identity: SHA-256 of its descriptor and, for each file it
/// is made of, the file's size and a digest of samples of its content
/// (start, middle, end; as the verification cache identifies files). A
/// restore compares it before anything else: a rebuilt or replaced package
/// is refused. (The files' full digests are checked by the verification a
/// restore runs like any start.)
pub fn package_identity(pkg: &Package) -> String {
    let mut h = Sha256::new();
    h.update(b"ovf-run package identity v1\n");
    h.update((pkg.descriptor.len() as u64).to_le_bytes());
    h.update(&pkg.descriptor);
    // Not the file names: a package moved or renamed (restore --package)
    // is the same package; the descriptor names a folder package's files.
    for path in ovf_loader::own_files::package_files(pkg) {
        match std::fs::metadata(&path) {
            Ok(m) => {
                h.update(m.len().to_le_bytes());
                let sample = ovf_loader::verify_cache::sample_digest(&path, m.len());
                h.update(sample.unwrap_or_else(|| "unreadable".into()));
            }
            Err(_) => h.update(b"missing"),
        }
    }
    hex::encode(h.finalize())
}

/// A record for tests.
#[cfg(test)]
pub(crate) fn sample_record() -> LaunchRecord {
    tests::record()
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) fn record() -> LaunchRecord {
        LaunchRecord {
            version: RECORD_VERSION,
            package: "/srv/app.ova".into(),
            package_identity: "ab".repeat(32),
            source_name: "web".into(),
            taken_unix_ns: 1_765_000_000_000_000_000,
            skip_verify: false,
            configuration: Some("small".into()),
            system: None,
            vcpus: 2,
            memory_mib: 1024,
            kernel: KernelRecord {
                cmdline: "console=ttyS0 quiet".into(),
                has_initrd: true,
                description: "/boot/vmlinuz".into(),
            },
            properties: vec![("k".into(), "v=1".into())],
            nics: vec![NicRecord {
                network: Some("VM Network".into()),
                mac: [0x52, 0x54, 0, 1, 2, 3],
                mode: "user".into(),
            }],
            disks: vec![DiskLayer {
                dir: "disk0".into(),
                fingerprint: "fp".into(),
                capacity: 1 << 30,
            }],
            no_reboot: false,
        }
    }

    #[test]
    fn a_record_round_trips_and_other_versions_are_named() {
        let r = record();
        assert_eq!(LaunchRecord::decode(&r.encode()).unwrap(), r);
        let mut other = r.clone();
        other.version = 7;
        let e = LaunchRecord::decode(&other.encode()).unwrap_err();
        assert!(matches!(e, RecordError::Version { found: 7 }), "{e}");
        assert!(matches!(
            LaunchRecord::decode(&[]),
            Err(RecordError::Missing)
        ));
        let bytes = r.encode();
        for cut in 1..bytes.len() {
            assert!(LaunchRecord::decode(&bytes[..cut]).is_err(), "cut at {cut}");
        }
    }

    #[test]
    fn nic_modes_round_trip() {
        for mode in [NetMode::User, NetMode::None, NetMode::Tap("tap0".into())] {
            let plan = NicPlan {
                network: None,
                mac: [2, 0, 0, 0, 0, 1],
                mode: mode.clone(),
                by_default: true,
            };
            let back = NicRecord::of(&plan).plan().unwrap();
            assert_eq!((back.mode, back.mac), (mode, plan.mac));
        }
        let odd = NicRecord {
            network: None,
            mac: [2, 0, 0, 0, 0, 1],
            mode: "vde".into(),
        };
        assert!(odd.plan().is_none());
    }
}
