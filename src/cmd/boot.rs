//! `ovf-run boot`: run a kernel without a package (for testing, and for
//! people who have a kernel and a disk).

use super::EXIT_USAGE;
use clap::Args;
use devices::raw_file::RawFileSource;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};
use vmm::{BzImageMode, ConsoleConfig, DiskConfig, ExitStatus, Kernel, VmConfig, VmControl};

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
    pub net: super::netargs::NetArgs,
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

fn fail(msg: impl std::fmt::Display, code: u8) -> ExitCode {
    eprintln!("ovf-run boot: {msg}");
    ExitCode::from(code)
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
            Err(e) => return fail(e, EXIT_USAGE),
        }
    }
    let mut net = args.net.options();
    let plans = match ovf_run::net::plan_for_boot(&net) {
        Ok(p) => p,
        Err(e) => return fail(e, 1),
    };
    if let Err(e) = ovf_run::net::choose_host_ports(&mut net.publish) {
        return fail(e, 1);
    }
    let mut config = VmConfig::new(Kernel::Path(args.kernel));
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
    let control = VmControl::new();
    // The vCPUs wait until this thread is under its seccomp filter.
    control.hold();
    let c = control.clone();
    let (tx, rx) = std::sync::mpsc::channel();
    // passt starts on the VM's thread: its parent-death signal follows it.
    let vm = std::thread::spawn(move || {
        match ovf_run::net::start(&plans, &net.publish) {
            Ok((nics, lines)) => {
                config.nics = nics;
                let _ = tx.send(Ok(lines));
            }
            Err(e) => {
                let _ = tx.send(Err(e));
                return None;
            }
        }
        Some(vmm::run_controlled(config, &c))
    });
    match rx.recv() {
        Ok(Ok(lines)) => lines.iter().for_each(|l| eprintln!("ovf-run boot: {l}")),
        Ok(Err(e)) => return fail(e, 1),
        Err(_) => return fail("the VM thread ended while starting", 1),
    }
    super::signals::install();
    if let Err(e) = thread_filter::install(thread_filter::Kind::Supervisor) {
        control.kill();
        let _ = vm.join();
        return fail(e, 1);
    }
    control.release();
    let mut seen = 0;
    let mut kill_at: Option<Instant> = None;
    while !vm.is_finished() {
        let (count, _) = super::signals::received();
        if count > seen {
            seen = count;
            if kill_at.is_some() {
                control.kill();
            } else {
                control.power_button();
                kill_at = Some(Instant::now() + Duration::from_secs(10));
            }
        }
        if kill_at.is_some_and(|k| Instant::now() > k) {
            control.kill();
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    match vm.join() {
        Ok(Some(Ok(ExitStatus::Poweroff))) => ExitCode::SUCCESS,
        Ok(Some(Ok(ExitStatus::Reboot))) => {
            eprintln!("ovf-run boot: the guest rebooted (--no-reboot)");
            ExitCode::SUCCESS
        }
        Ok(Some(Ok(ExitStatus::Stopped))) => fail("stopped before the guest powered off", 130),
        Ok(Some(Ok(ExitStatus::Crashed(why)))) => fail(format!("the guest crashed: {why}"), 4),
        Ok(Some(Err(e))) => fail(e, 1),
        Ok(None) | Err(_) => fail("the VM thread failed", 1),
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
