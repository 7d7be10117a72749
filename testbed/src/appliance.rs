//! Where the cached test appliances and scratch directories live.
//!
//! Building appliances is the job of `scripts/setup` (slow, cached); tests
//! only locate them and fail with the command to run when they are missing.

use std::path::PathBuf;

use crate::runner::RunError;

/// The Debian test appliances built by `scripts/build-appliance`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Variant {
    /// MBR disk, one ext4 root, `linux-image-cloud-amd64`.
    Mbr,
    /// GPT disk, separate ext4 `/boot`, `linux-image-amd64`.
    Gpt,
    /// The MBR layout with cloud-init reading the OVF environment, made
    /// like Ubuntu's cloud OVAs.
    Cloudinit,
    /// No Linux: an MBR disk whose GRUB prints a marker and halts (only
    /// firmware boot starts it).
    GrubOnly,
    /// Made as for VMware: host-only initramfs (`MODULES=list`, VMware's
    /// drivers, no virtio), `root=/dev/sda1`, `linux-image-amd64`.
    Vmware,
    /// UEFI-only: GPT with an EFI System Partition, GRUB x86_64-efi, no
    /// BIOS boot code, `vmw:Config firmware="efi"`.
    Uefi,
    /// Root and `/boot` in btrfs subvolume `@` (zstd-compressed), GRUB
    /// i386-pc with paths `/@/boot/...`.
    Btrfs,
}

impl Variant {
    /// The name the scripts use (`mbr`, `gpt`, `cloudinit`, `grubonly`,
    /// `vmware`, `uefi`, `btrfs`).
    pub fn name(self) -> &'static str {
        match self {
            Variant::Mbr => "mbr",
            Variant::Gpt => "gpt",
            Variant::Cloudinit => "cloudinit",
            Variant::GrubOnly => "grubonly",
            Variant::Vmware => "vmware",
            Variant::Uefi => "uefi",
            Variant::Btrfs => "btrfs",
        }
    }
}

/// Path of a cached appliance OVA, or an error saying how to build it.
pub fn appliance_path(variant: Variant) -> Result<PathBuf, RunError> {
    let path = crate::cache_dir()
        .join("appliances")
        .join(format!("debian-bookworm-{}.ova", variant.name()));
    if path.is_file() {
        Ok(path)
    } else {
        Err(RunError::Missing {
            what: format!("test appliance {}", path.display()),
            fix: format!(
                "scripts/setup (or scripts/build-appliance {})",
                variant.name()
            ),
        })
    }
}

/// A fresh directory under the cache, removed on drop.
///
/// Unlike `/tmp`, the cache is visible at the same path inside the KVM test
/// host, so the directory can be handed to `RunOptions::share`.
pub fn scratch_dir(prefix: &str) -> Result<tempfile::TempDir, RunError> {
    let base = crate::cache_dir().join("scratch");
    std::fs::create_dir_all(&base)
        .map_err(|e| RunError::Io(format!("create {}", base.display()), e))?;
    tempfile::Builder::new()
        .prefix(&format!("{prefix}-"))
        .tempdir_in(&base)
        .map_err(|e| {
            RunError::Io(
                format!("create a scratch directory in {}", base.display()),
                e,
            )
        })
}
