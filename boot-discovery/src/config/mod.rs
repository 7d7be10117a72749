//! Boot loader configurations: GRUB 2, Boot Loader Spec, extlinux/syslinux.
//!
//! Every format is reduced to the same [`BootEntry`]: a kernel path, initrd
//! paths, arguments, and (GRUB only) the device the paths are relative to.
//! Parsers take text and never touch the disk; `discover` does the reading.

pub mod bls;
pub mod extlinux;
pub mod grub;
mod grub_script;
pub mod grubenv;

/// One bootable entry, as its config wrote it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootEntry {
    pub title: String,
    pub id: Option<String>,
    /// Kernel path, possibly with a GRUB device prefix: `(hd0,msdos1)/vmlinuz`.
    pub kernel: String,
    pub initrds: Vec<String>,
    /// The entry's kernel arguments, joined by single spaces.
    pub args: String,
    /// GRUB's `$root` when the `linux` line ran: `hd0,gpt2`,
    /// `uuid=…`, `label=…` or `file=…` (from `search`).
    pub device: Option<String>,
    /// BLS `version`, for sorting and display.
    pub version: Option<String>,
    /// `kernel` names a unified kernel image (a BLS entry's `efi` key):
    /// kernel, initrd and maybe the command line are its PE sections.
    pub efi: bool,
}
