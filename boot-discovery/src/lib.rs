//! Boot discovery: find an appliance's kernel, initrd and command line
//! inside its own boot disk, and say why that choice.
//!
//! The disk is read in place through [`BlockSource`]: partition table (MBR
//! with logical partitions, GPT, or none), LVM2 linear volumes, ext2/3/4, FAT,
//! XFS and btrfs (subvolumes as GRUB sees them, compressed extents), then
//! the boot loader's own configuration, in this order: GRUB 2
//! (the EFI System Partition's `/EFI/*/grub.cfg` first, its stub's
//! `configfile` followed to the real menu, then `/boot/grub/grub.cfg` and
//! kin), Boot Loader Spec type #1 entries, unified kernel images
//! (`EFI/Linux/*.efi`, read with [`pe`]), extlinux/syslinux, or, failing
//! those, the `/vmlinuz` links.
//!
//! ```no_run
//! # use std::sync::Arc;
//! # fn f(disk: Arc<dyn block_source::BlockSource>) -> Result<(), boot_discovery::DiscoveryError> {
//! let plan = boot_discovery::discover(disk)?;
//! let over = boot_discovery::CmdlineOverride { replace: None, append: vec!["quiet".into()] };
//! let cmdline = boot_discovery::final_cmdline(&plan.cmdline, &over);
//! # Ok(()) }
//! ```

pub mod cmdline;
pub mod config;
mod discover;
pub mod drivers;
pub mod error;
pub mod fs;
pub mod initramfs;
pub mod load;
pub mod lvm;
pub mod partition;
pub mod pe;
pub mod view;
pub mod volumes;

pub use block_source::BlockSource;
pub use cmdline::{final_cmdline, serial_cmdline, CmdlineOverride, SERIAL_CONSOLE};
pub use discover::{describe, discover, BootPlan};
pub use error::DiscoveryError;
pub use load::{Load, MAX_INITRD, MAX_KERNEL};
pub use partition::{PartitionInfo, TableKind};
