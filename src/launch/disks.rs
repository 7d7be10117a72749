//! The package's disks behind overlays: the package is only read; guest
//! writes go to an ephemeral overlay in the cache (gone with the instance)
//! or to `--persist DIR` (kept, reused by the next run of the same package).

use super::{LaunchError, Progress};
use disk_image::{CacheDir, Overlay};
use ovf_loader::disks::open_disk;
use ovf_loader::{MachineSpec, Package};
use sha2::{Digest, Sha256};
use std::path::Path;
use std::sync::Arc;
use vmm::DiskConfig;

/// Identity of a disk for a persistent overlay: the package's descriptor
/// and the disk's id and size, so a different package never reuses it.
fn overlay_fingerprint(pkg: &Package, disk_id: &str, capacity: u64) -> String {
    let digest = hex::encode(Sha256::digest(&pkg.descriptor));
    format!("ovf-run/1 descriptor-sha256={digest} disk={disk_id} capacity={capacity}")
}

/// Open every disk and CD-ROM of `spec`, disks behind overlays.
pub fn open_disks(
    pkg: &Package,
    spec: &MachineSpec,
    persist: Option<&Path>,
    progress: Option<Progress>,
) -> Result<Vec<DiskConfig>, LaunchError> {
    let cache = ovf_loader::cache_dir().ok_or(LaunchError::NoCache)?;
    // gzip-compressed disks are inflated once into the cache.
    let mut image_cache = CacheDir::new(cache.join("inflated"));
    if let Some(p) = progress {
        image_cache.progress = Some(Arc::new(move |done, total| p("decompressing", done, total)));
    }
    let mut out = Vec::new();
    for (i, disk) in spec.disks.iter().enumerate() {
        let base = open_disk(pkg, disk, &image_cache)?;
        let overlay = match persist {
            Some(dir) => {
                let fp = overlay_fingerprint(pkg, &disk.disk_id, base.capacity());
                Overlay::persistent(base, &dir.join(format!("disk{i}")), &fp)
            }
            None => Overlay::ephemeral(base, &cache.join("overlays")),
        }?;
        out.push(DiskConfig {
            source: Arc::new(overlay),
            read_only: false,
            id: disk.disk_id.chars().take(20).collect(),
        });
    }
    for (i, cd) in spec.cdroms.iter().enumerate() {
        let disk = ovf_loader::machine::DiskSpec {
            disk_id: format!("cdrom{i}"),
            file_ref: Some(cd.file_ref.clone()),
            capacity_bytes: 0,
            format: None,
            controller: cd.controller.clone(),
            address_on_parent: None,
            item_instance_id: String::new(),
        };
        let source = open_disk(pkg, &disk, &image_cache)?;
        out.push(DiskConfig {
            source,
            read_only: true,
            id: disk.disk_id,
        });
    }
    Ok(out)
}
