//! The package's disks behind overlays: the package is only read; guest
//! writes go to an ephemeral overlay in the cache (gone with the instance)
//! or to `--persist DIR` (kept, reused by the next run of the same package).
//! The package's CD-ROM images (ResourceType 15/16 with a file) become
//! read-only CD-ROM drives (virtio-scsi), as on the hypervisor that made
//! the package: the guest sees `/dev/sr0`, not a disk.

use super::{LaunchError, Progress};
use disk_image::{CacheDir, Overlay};
use ovf_loader::disks::open_disk;
use ovf_loader::{MachineSpec, Package};
use sha2::{Digest, Sha256};
use std::path::Path;
use std::sync::Arc;
use vmm::{CdromConfig, DiskConfig};

/// Identity of a disk for a persistent overlay (and a snapshot's frozen
/// layer): the package's descriptor and the disk's id and size, so a
/// different package never reuses it.
pub fn overlay_fingerprint(pkg: &Package, disk_id: &str, capacity: u64) -> String {
    let digest = hex::encode(Sha256::digest(&pkg.descriptor));
    format!("ovf-run/1 descriptor-sha256={digest} disk={disk_id} capacity={capacity}")
}

/// The cache that holds gzip-compressed images inflated once.
fn image_cache(cache: &Path, progress: Option<Progress>) -> CacheDir {
    let mut image_cache = CacheDir::new(cache.join("inflated"));
    if let Some(p) = progress {
        image_cache.progress = Some(Arc::new(move |done, total| p("decompressing", done, total)));
    }
    image_cache
}

/// Where the guest's writes go, above the package's disks.
#[derive(Debug, Clone, Copy)]
pub enum Layering<'a> {
    /// An ephemeral overlay per disk (gone with the instance).
    Ephemeral,
    /// `--persist DIR`: kept in `DIR/diskN`.
    Persist(&'a Path),
    /// A restored clone: an ephemeral overlay over the snapshot's frozen
    /// layer `SNAPSHOT/diskN` of each disk.
    Snapshot(&'a Path),
}

/// An opened disk: what the VM gets, and the overlay a snapshot freezes.
pub struct OpenedDisk {
    pub config: DiskConfig,
    pub overlay: Arc<Overlay>,
    pub fingerprint: String,
}

/// The name of disk `i`'s directory (persist and snapshot directories).
pub fn layer_dir(i: usize) -> String {
    format!("disk{i}")
}

/// Open every disk of `spec` behind an overlay.
pub fn open_disks(
    pkg: &Package,
    spec: &MachineSpec,
    layering: Layering,
    progress: Option<Progress>,
) -> Result<Vec<OpenedDisk>, LaunchError> {
    let cache = ovf_loader::cache_dir().ok_or(LaunchError::NoCache)?;
    let image_cache = image_cache(&cache, progress);
    let mut out = Vec::new();
    for (i, disk) in spec.disks.iter().enumerate() {
        let base = open_disk(pkg, disk, &image_cache)?;
        let fingerprint = overlay_fingerprint(pkg, &disk.disk_id, base.capacity());
        let overlay = match layering {
            Layering::Persist(dir) => {
                Overlay::persistent(base, &dir.join(layer_dir(i)), &fingerprint)
            }
            Layering::Ephemeral => Overlay::ephemeral(base, &cache.join("overlays")),
            Layering::Snapshot(dir) => {
                let frozen = Overlay::frozen(base, &dir.join(layer_dir(i)), &fingerprint)?;
                Overlay::ephemeral_over(Arc::new(frozen), &cache.join("overlays"))
            }
        }?;
        let overlay = Arc::new(overlay);
        out.push(OpenedDisk {
            config: DiskConfig {
                source: overlay.clone(),
                read_only: false,
                id: disk.disk_id.chars().take(20).collect(),
            },
            overlay,
            fingerprint,
        });
    }
    Ok(out)
}

/// Open every CD-ROM image of `spec` (read-only, no overlay: a CD-ROM
/// is never written), in the descriptor's order.
pub fn open_cdroms(
    pkg: &Package,
    spec: &MachineSpec,
    progress: Option<Progress>,
) -> Result<Vec<CdromConfig>, LaunchError> {
    if spec.cdroms.is_empty() {
        return Ok(Vec::new());
    }
    let cache = ovf_loader::cache_dir().ok_or(LaunchError::NoCache)?;
    let image_cache = image_cache(&cache, progress);
    let mut out = Vec::new();
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
        out.push(CdromConfig {
            source: open_disk(pkg, &disk, &image_cache)?,
            serial: cdrom_serial(i, &cd.file_ref),
        });
    }
    Ok(out)
}

/// The unit serial number a CD-ROM shows the guest (VPD page 0x80, at most
/// 20 characters): the package's file id, so `/dev/disk/by-id` names it.
fn cdrom_serial(index: usize, file_ref: &str) -> String {
    let clean: String = file_ref
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        .take(20)
        .collect();
    if clean.is_empty() {
        format!("cdrom{index}")
    } else {
        clean
    }
}

#[cfg(test)]
mod tests {
    use super::cdrom_serial;

    #[test]
    fn cdrom_serials_are_the_file_id_cut_to_20_printable_characters() {
        assert_eq!(cdrom_serial(0, "file2"), "file2");
        assert_eq!(
            cdrom_serial(1, "a very/long<file> id 0123456789"),
            "averylongfileid01234"
        );
        assert_eq!(cdrom_serial(2, "ä ö"), "cdrom2");
    }
}
