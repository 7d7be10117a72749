//! `ovf-run boot`: run a kernel without a package (for testing, and for
//! people who have a kernel and a disk).

use super::EXIT_USAGE;
use clap::Args;
use devices::raw_file::RawFileSource;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use vmm::{BzImageMode, ConsoleConfig, DiskConfig, ExitStatus, Kernel, VmConfig};

#[derive(Args, Debug)]
pub struct BootArgs {
    /// The kernel: a bzImage, or an ELF vmlinux with a PVH note.
    #[arg(long, value_name = "FILE")]
    pub kernel: PathBuf,
    /// An initramfs.
    #[arg(long, value_name = "FILE")]
    pub initrd: Option<PathBuf>,
    /// The kernel command line.
    #[arg(long, value_name = "ARGS", default_value = "console=ttyS0")]
    pub append: String,
    /// A raw disk image, as a virtio-blk disk; `,ro` makes it read-only.
    /// Repeat for more disks (vda, vdb, ...).
    #[arg(long, value_name = "FILE[,ro]")]
    pub disk: Vec<String>,
    /// Number of vCPUs.
    #[arg(long, default_value_t = 1)]
    pub cpus: u8,
    /// Guest memory in MiB.
    #[arg(long, default_value_t = 512)]
    pub memory: u64,
    /// Also write the guest's console to this file.
    #[arg(long, value_name = "FILE")]
    pub console_log: Option<PathBuf>,
    /// Exit when the guest reboots instead of starting it again.
    #[arg(long)]
    pub no_reboot: bool,
    /// Boot a bzImage through its own decompressor instead of
    /// decompressing it on the host and booting PVH.
    #[arg(long)]
    pub guest_decompress: bool,
    /// Do not attach a terminal: no console on stdout, no input.
    #[arg(long)]
    pub no_console: bool,
    /// No NIC unless --net or --publish asks for one.
    #[command(flatten)]
    pub net: super::net::NetArgs,
}

/// `FILE` or `FILE,ro`.
fn parse_disk(spec: &str) -> (PathBuf, bool) {
    match spec.strip_suffix(",ro") {
        Some(path) => (PathBuf::from(path), true),
        None => (
            PathBuf::from(spec.strip_suffix(",rw").unwrap_or(spec)),
            false,
        ),
    }
}

pub fn run(args: BootArgs) -> ExitCode {
    let mut disks = Vec::new();
    for (i, spec) in args.disk.iter().enumerate() {
        let (path, read_only) = parse_disk(spec);
        match RawFileSource::open(&path, read_only) {
            Ok(src) => disks.push(DiskConfig {
                source: Arc::new(src),
                read_only,
                id: format!("disk{i}"),
            }),
            Err(e) => {
                eprintln!("ovf-run boot: {e}");
                return ExitCode::from(EXIT_USAGE);
            }
        }
    }
    let nics = match super::net::setup_for_boot(&args.net) {
        Ok(n) => n,
        Err(e) => {
            eprintln!("ovf-run boot: {e}");
            return ExitCode::from(1);
        }
    };
    let mut config = VmConfig::new(Kernel::Path(args.kernel));
    config.nics = nics;
    config.vcpus = args.cpus;
    config.memory_mib = args.memory;
    config.initrd = args.initrd;
    config.cmdline = args.append;
    config.disks = disks;
    config.no_reboot = args.no_reboot;
    config.console = ConsoleConfig {
        stdio: !args.no_console,
        log: args.console_log,
    };
    if args.guest_decompress {
        config.bzimage_mode = BzImageMode::GuestDecompress;
    }
    match vmm::run(config) {
        Ok(ExitStatus::Poweroff) => ExitCode::SUCCESS,
        Ok(ExitStatus::Reboot) => {
            eprintln!("ovf-run boot: the guest rebooted (--no-reboot)");
            ExitCode::SUCCESS
        }
        Ok(ExitStatus::Stopped) => {
            eprintln!("ovf-run boot: stopped before the guest powered off");
            ExitCode::from(130)
        }
        Err(e) => {
            eprintln!("ovf-run boot: {e}");
            ExitCode::from(1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disk_specs() {
        assert_eq!(parse_disk("a.img"), (PathBuf::from("a.img"), false));
        assert_eq!(parse_disk("a.img,ro"), (PathBuf::from("a.img"), true));
        assert_eq!(parse_disk("a.img,rw"), (PathBuf::from("a.img"), false));
    }
}
