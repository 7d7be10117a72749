//! Which kernel boots: `--kernel` (with `--initrd`), else the one boot
//! discovery finds in the boot disk, with the command line adjusted by
//! `--cmdline`/`--append`; or no kernel at all: firmware (SeaBIOS) that
//! runs the disk's own boot loader (`--firmware bios`).

use super::LaunchError;
use boot_discovery::CmdlineOverride;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use vmm::{BlockSource, Kernel};

/// The kernel choice; keeps a discovered initrd's file while it lives.
pub struct BootChoice {
    pub kernel: Kernel,
    pub initrd_path: Option<PathBuf>,
    /// The discovered initrd, written to the cache; removed when dropped.
    pub initrd_file: Option<tempfile::NamedTempFile>,
    /// The discovered kernel, written to the cache (the VM reads it at each
    /// boot, and a snapshot copies it); removed when dropped.
    pub kernel_file: Option<tempfile::NamedTempFile>,
    pub cmdline: String,
    /// "/boot/vmlinuz-6.1 from \"Debian\"" or "FILE (--kernel)".
    pub description: String,
}

/// How the guest starts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Firmware {
    /// Direct boot when boot discovery finds a Linux kernel, else BIOS.
    #[default]
    Auto,
    /// Always the kernel found in the disk (or `--kernel`); fail if none.
    Direct,
    /// Always SeaBIOS and the disk's own boot loader.
    Bios,
}

/// What the user said about the kernel.
#[derive(Debug, Clone, Default)]
pub struct KernelOptions {
    pub kernel: Option<PathBuf>,
    pub initrd: Option<PathBuf>,
    pub append: Vec<String>,
    pub cmdline: Option<String>,
    pub firmware: Firmware,
    /// The BIOS image (default: Debian's SeaBIOS, [`vmm::firmware::DEBIAN_BIOS`]).
    pub bios: Option<PathBuf>,
}

/// Firmware boot: the BIOS image, no kernel, no command line.
fn bios_choice(opts: &KernelOptions, why: &str) -> BootChoice {
    let image = opts
        .bios
        .clone()
        .unwrap_or_else(|| PathBuf::from(vmm::firmware::DEBIAN_BIOS));
    BootChoice {
        description: format!(
            "the disk's own boot loader through {} ({why})",
            image.display()
        ),
        kernel: Kernel::Bios(image),
        initrd_path: None,
        initrd_file: None,
        kernel_file: None,
        cmdline: String::new(),
    }
}

/// What boots: the BIOS, `--kernel`, or the kernel discovery finds on the
/// boot disk. `hint` is the firmware the package names: with `auto`, an
/// EFI package whose kernel is not found is refused rather than handed to
/// SeaBIOS, which cannot start a UEFI-only disk.
pub fn choose_kernel(
    opts: &KernelOptions,
    boot_disk: Arc<dyn BlockSource>,
    hint: Option<ovf_loader::model::FirmwareHint>,
) -> Result<BootChoice, LaunchError> {
    if opts.firmware == Firmware::Bios {
        return Ok(bios_choice(opts, "--firmware bios"));
    }
    if let Some(kernel) = &opts.kernel {
        let base = opts
            .cmdline
            .clone()
            .unwrap_or_else(|| boot_discovery::SERIAL_CONSOLE.to_string());
        let over = CmdlineOverride {
            replace: None,
            append: opts.append.clone(),
        };
        return Ok(BootChoice {
            kernel: Kernel::Path(kernel.clone()),
            initrd_path: opts.initrd.clone(),
            initrd_file: None,
            kernel_file: None,
            cmdline: boot_discovery::final_cmdline(&base, &over),
            description: format!("{} (--kernel)", kernel.display()),
        });
    }
    let over = CmdlineOverride {
        replace: opts.cmdline.clone(),
        append: opts.append.clone(),
    };
    // The discovery error already says what was found and what is missing.
    let plan = match boot_discovery::discover(boot_disk.clone()) {
        Ok(plan) => plan,
        Err(source)
            if opts.firmware == Firmware::Auto
                && hint == Some(ovf_loader::model::FirmwareHint::Efi) =>
        {
            return Err(LaunchError::EfiOnly { source });
        }
        Err(e) if opts.firmware == Firmware::Auto => {
            tracing::warn!("no kernel to boot directly ({e}); booting through the BIOS instead");
            return Ok(bios_choice(opts, "no kernel found for direct boot"));
        }
        Err(e) => return Err(e.into()),
    };
    for r in &plan.reasons {
        tracing::info!("{r}");
    }
    let drivers = check_drivers(boot_disk, &plan);
    let dir = ovf_loader::cache_dir()
        .ok_or(LaunchError::NoCache)?
        .join("boot");
    let io = |source| LaunchError::Io {
        path: dir.clone(),
        source,
    };
    std::fs::create_dir_all(&dir).map_err(io)?;
    // The kernel as a file rather than bytes held for reboots: the
    // instance's memory stays smaller, and a snapshot copies it.
    let mut kernel_file = tempfile::NamedTempFile::new_in(&dir).map_err(io)?;
    kernel_file.write_all(&plan.kernel).map_err(io)?;
    let (initrd_path, initrd_file) = match &plan.initrd {
        Some(bytes) => {
            let mut f = tempfile::NamedTempFile::new_in(&dir).map_err(io)?;
            f.write_all(bytes).map_err(io)?;
            // The kernel unpacks concatenated archives; ours goes last,
            // 4-byte aligned. Only this cached copy changes, never the disk.
            if let Some(cpio) = drivers.as_ref().and_then(|d| d.appended_cpio.as_ref()) {
                f.write_all(&[0u8; 3][..bytes.len().next_multiple_of(4) - bytes.len()])
                    .map_err(io)?;
                f.write_all(cpio).map_err(io)?;
            }
            (Some(f.path().to_path_buf()), Some(f))
        }
        None => (None, None),
    };
    let (entry_cmdline, extra) = match &drivers {
        Some(d) => (d.cmdline.clone(), d.cmdline_extra.clone()),
        None => (plan.cmdline.clone(), Vec::new()),
    };
    let over = CmdlineOverride {
        append: extra.into_iter().chain(over.append).collect(),
        ..over
    };
    Ok(BootChoice {
        kernel: Kernel::Path(kernel_file.path().to_path_buf()),
        initrd_path,
        initrd_file,
        kernel_file: Some(kernel_file),
        cmdline: boot_discovery::final_cmdline(&entry_cmdline, &over),
        description: format!("{} from \"{}\"", plan.kernel_path, plan.entry_title),
    })
}

/// Virtio drivers and root device names (issue 12): what the initramfs
/// lacks is added to the in-memory copy, an old `root=/dev/sdXN` becomes
/// `root=UUID=`. A failure here is logged and the plan boots unchanged: the
/// guest may still manage (a kernel with everything built in).
fn check_drivers(
    disk: Arc<dyn BlockSource>,
    plan: &boot_discovery::BootPlan,
) -> Option<boot_discovery::drivers::DriverReport> {
    match boot_discovery::drivers::prepare(disk, plan) {
        Ok(report) => {
            for line in report.summary().lines() {
                tracing::info!("drivers: {}", line.trim());
            }
            for p in &report.problems {
                tracing::warn!("the guest will probably not find its disk: {p}");
            }
            Some(report)
        }
        Err(e) => {
            tracing::warn!(
                "cannot check the initramfs for virtio drivers: {e}; booting it as it is"
            );
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ovf_loader::model::FirmwareHint;

    fn blank_disk() -> Arc<dyn BlockSource> {
        Arc::new(block_source::MemorySource::new(vec![0; 1 << 20], true))
    }

    fn auto() -> KernelOptions {
        KernelOptions {
            kernel: None,
            initrd: None,
            append: Vec::new(),
            cmdline: None,
            firmware: Firmware::Auto,
            bios: Some(PathBuf::from("/nonexistent/bios.bin")),
        }
    }

    #[test]
    fn auto_hands_a_bios_package_without_kernel_to_the_bios() {
        let choice = choose_kernel(&auto(), blank_disk(), Some(FirmwareHint::Bios)).unwrap();
        assert!(matches!(choice.kernel, Kernel::Bios(_)));
        let choice = choose_kernel(&auto(), blank_disk(), None).unwrap();
        assert!(matches!(choice.kernel, Kernel::Bios(_)));
    }

    #[test]
    fn auto_refuses_an_efi_package_without_kernel() {
        let Err(err) = choose_kernel(&auto(), blank_disk(), Some(FirmwareHint::Efi)) else {
            panic!("an EFI package without kernel was handed to the BIOS");
        };
        assert!(matches!(err, LaunchError::EfiOnly { .. }), "{err}");
        let text = err.to_string();
        assert!(text.contains("no bootable Linux kernel"), "{text}");
        assert!(text.contains("EFI firmware"), "{text}");
    }
}
