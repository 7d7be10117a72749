//! `ovf-run APPLIANCE.ova`: verify, accept the EULA, map the hardware,
//! find the kernel inside the boot disk, and boot it.
//!
//! The package is only ever read. Guest writes go to an overlay: a file in
//! the cache that vanishes with the process, or `--persist DIR`, kept and
//! reused by the next run of the same package.

use super::verify::{verify_package, TrustArgs};
use super::{human_bytes, open_package, EXIT_USAGE};
use boot_discovery::CmdlineOverride;
use clap::Args;
use disk_image::{CacheDir, Overlay};
use ovf_loader::disks::open_disk;
use ovf_loader::{machine_spec, MachineSpec, Package};
use sha2::{Digest, Sha256};
use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use vmm::{BlockSource, ConsoleConfig, DiskConfig, ExitStatus, Kernel, VmConfig};

#[derive(Args, Debug, Default)]
pub struct RunArgs {
    /// The appliance: an .ova, or an .ovf with its files beside it.
    pub package: Option<PathBuf>,
    /// Accept the package's license agreement (EULA) without being asked.
    #[arg(long)]
    pub accept_eula: bool,
    /// Skip manifest and signature verification (not recommended).
    #[arg(long)]
    pub no_verify: bool,
    #[command(flatten)]
    pub trust: TrustArgs,
    /// Use this deployment option instead of the package's default.
    #[arg(long, value_name = "NAME")]
    pub configuration: Option<String>,
    /// Run this virtual system of a multi-system package.
    #[arg(long, value_name = "ID")]
    pub system: Option<String>,
    /// Number of vCPUs (default: the descriptor's).
    #[arg(long)]
    pub cpus: Option<u8>,
    /// Guest memory in MiB (default: the descriptor's).
    #[arg(long, value_name = "MIB")]
    pub memory: Option<u64>,
    /// Keep the guest's disk changes in DIR and reuse them next time.
    #[arg(long, value_name = "DIR")]
    pub persist: Option<PathBuf>,
    /// Boot this kernel instead of the one found in the disk.
    #[arg(long, value_name = "FILE")]
    pub kernel: Option<PathBuf>,
    /// With --kernel: the initramfs to use.
    #[arg(long, value_name = "FILE", requires = "kernel")]
    pub initrd: Option<PathBuf>,
    /// Add to the kernel command line (repeatable).
    #[arg(long, value_name = "ARGS")]
    pub append: Vec<String>,
    /// Replace the kernel command line.
    #[arg(long, value_name = "ARGS", conflicts_with = "append")]
    pub cmdline: Option<String>,
    /// Also write the guest's console to this file.
    #[arg(long, value_name = "FILE")]
    pub console_log: Option<PathBuf>,
    /// Do not attach the terminal: no console on stdout, no input.
    #[arg(long)]
    pub no_console: bool,
    /// Exit when the guest reboots instead of starting it again.
    #[arg(long)]
    pub no_reboot: bool,
    #[command(flatten)]
    pub net: super::net::NetArgs,
}

fn say(msg: impl AsRef<str>) {
    eprintln!("ovf-run: {}", msg.as_ref());
}

fn fail(msg: impl AsRef<str>) -> ExitCode {
    say(msg);
    ExitCode::FAILURE
}

pub fn run(args: RunArgs) -> ExitCode {
    let Some(path) = args.package.clone() else {
        eprintln!(
            "ovf-run: name an appliance to run (ovf-run APPLIANCE.ova), or see ovf-run --help"
        );
        return ExitCode::from(EXIT_USAGE);
    };
    let pkg = match open_package(&path) {
        Ok(p) => p,
        Err(code) => return code,
    };
    if let Err(code) = check_package(&pkg, &args) {
        return code;
    }
    if let Err(code) = accept_eula(&pkg, args.accept_eula) {
        return code;
    }
    let mut spec = match machine_spec(
        &pkg.envelope,
        args.system.as_deref(),
        args.configuration.as_deref(),
    ) {
        Ok(s) => s,
        Err(e) => return fail(format!("{}: {e}", path.display())),
    };
    for w in &spec.warnings {
        say(format!("warning: {w}"));
    }
    apply_overrides(&mut spec, &args);
    let disks = match open_disks(&pkg, &spec, args.persist.as_deref()) {
        Ok(d) => d,
        Err(msg) => return fail(msg),
    };
    let Some(boot_disk) = disks.first() else {
        return fail(format!(
            "{}: the virtual system has no disk to boot from",
            path.display()
        ));
    };
    let boot = match choose_kernel(&args, boot_disk.source.clone()) {
        Ok(b) => b,
        Err(msg) => return fail(msg),
    };
    let nics = match super::net::setup_for_package(&args.net, &spec.nics, &pkg.descriptor) {
        Ok(n) => n,
        Err(msg) => return fail(msg),
    };
    say(format!(
        "booting {} with {} vCPU(s), {} memory, {} disk(s){}",
        boot.description,
        spec.vcpus,
        human_bytes(spec.memory_bytes),
        disks.len(),
        match &args.persist {
            Some(dir) => format!(", changes kept in {}", dir.display()),
            None => ", changes discarded at exit".into(),
        }
    ));
    let mut config = VmConfig::new(boot.kernel);
    config.vcpus = spec.vcpus.min(254) as u8;
    config.memory_mib = spec.memory_bytes.div_ceil(1 << 20);
    config.initrd = boot.initrd_path;
    config.cmdline = boot.cmdline;
    config.disks = disks;
    config.nics = nics;
    config.no_reboot = args.no_reboot;
    config.console = ConsoleConfig {
        stdio: !args.no_console,
        log: args.console_log.clone(),
    };
    let result = vmm::run(config);
    drop(boot.initrd_file);
    match result {
        Ok(ExitStatus::Poweroff) => ExitCode::SUCCESS,
        Ok(ExitStatus::Reboot) => {
            say("the guest rebooted (--no-reboot)");
            ExitCode::SUCCESS
        }
        Ok(ExitStatus::Stopped) => {
            say("stopped before the guest powered off");
            ExitCode::from(130)
        }
        Err(e) => fail(e.to_string()),
    }
}

fn check_package(pkg: &Package, args: &RunArgs) -> Result<(), ExitCode> {
    for w in &pkg.warnings {
        say(format!("warning: {w}"));
    }
    if args.no_verify {
        say("warning: --no-verify: the package's digests and signature are not checked");
        return Ok(());
    }
    say(format!("verifying {}", pkg.path.display()));
    let report = verify_package(pkg, &args.trust, true)?;
    for w in report
        .warnings
        .iter()
        .filter(|w| !w.contains("verified earlier"))
    {
        say(format!("warning: {w}"));
    }
    if !report.ok() {
        for p in &report.problems {
            say(format!("verification failed: {p}"));
        }
        say("refusing to run a package that does not verify (see ovf-run verify; --no-verify skips the check)");
        return Err(ExitCode::FAILURE);
    }
    Ok(())
}

fn accept_eula(pkg: &Package, accepted: bool) -> Result<(), ExitCode> {
    let Some(content) = &pkg.envelope.content else {
        return Ok(());
    };
    let eulas = content.all_eulas();
    if eulas.is_empty() || accepted {
        return Ok(());
    }
    if !std::io::stdin().is_terminal() {
        say(format!(
            "{} has a license agreement; read it with 'ovf-run eula {}' and pass --accept-eula to run it",
            pkg.path.display(),
            pkg.path.display()
        ));
        return Err(ExitCode::FAILURE);
    }
    let mut err = std::io::stderr();
    for (i, e) in eulas.iter().enumerate() {
        let _ = writeln!(
            err,
            "--- License agreement {} of {} ---\n{}\n",
            i + 1,
            eulas.len(),
            e.license
        );
    }
    let _ = write!(
        err,
        "Accept the license agreement{}? [y/N] ",
        if eulas.len() > 1 { "s" } else { "" }
    );
    let _ = err.flush();
    let mut answer = String::new();
    let _ = std::io::stdin().lock().read_line(&mut answer);
    if matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes") {
        Ok(())
    } else {
        say("license not accepted; nothing was started");
        Err(ExitCode::FAILURE)
    }
}

fn apply_overrides(spec: &mut MachineSpec, args: &RunArgs) {
    if let Some(cpus) = args.cpus {
        spec.vcpus = cpus as u32;
    }
    if let Some(mib) = args.memory {
        spec.memory_bytes = mib << 20;
    }
}

/// Identity of a disk for a persistent overlay: the package's descriptor
/// and the disk's id and size, so a different package never reuses it.
fn overlay_fingerprint(pkg: &Package, disk_id: &str, capacity: u64) -> String {
    let digest = hex::encode(Sha256::digest(&pkg.descriptor));
    format!("ovf-run/1 descriptor-sha256={digest} disk={disk_id} capacity={capacity}")
}

fn open_disks(
    pkg: &Package,
    spec: &MachineSpec,
    persist: Option<&Path>,
) -> Result<Vec<DiskConfig>, String> {
    let cache =
        ovf_loader::cache_dir().ok_or("cannot find a cache folder: set HOME or XDG_CACHE_HOME")?;
    // gzip-compressed disks are inflated once into the cache: show progress.
    let progress = Arc::new(super::progress::ByteProgress::new());
    let mut image_cache = CacheDir::new(cache.join("inflated"));
    let p = progress.clone();
    image_cache.progress = Some(Arc::new(move |done, total| {
        p.update("decompressing", done, total)
    }));
    let mut out = Vec::new();
    for (i, disk) in spec.disks.iter().enumerate() {
        let base = open_disk(pkg, disk, &image_cache).map_err(|e| {
            progress.finish();
            e.to_string()
        })?;
        let overlay = match persist {
            Some(dir) => {
                let fp = overlay_fingerprint(pkg, &disk.disk_id, base.capacity());
                Overlay::persistent(base, &dir.join(format!("disk{i}")), &fp)
            }
            None => Overlay::ephemeral(base, &cache.join("overlays")),
        }
        .map_err(|e| e.to_string())?;
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
        let source = open_disk(pkg, &disk, &image_cache).map_err(|e| {
            progress.finish();
            e.to_string()
        })?;
        out.push(DiskConfig {
            source,
            read_only: true,
            id: disk.disk_id,
        });
    }
    progress.finish();
    Ok(out)
}

struct BootChoice {
    kernel: Kernel,
    initrd_path: Option<PathBuf>,
    /// Keeps a discovered initrd's temporary file alive while the VM runs.
    initrd_file: Option<tempfile::NamedTempFile>,
    cmdline: String,
    description: String,
}

fn choose_kernel(args: &RunArgs, boot_disk: Arc<dyn BlockSource>) -> Result<BootChoice, String> {
    let over = CmdlineOverride {
        replace: args.cmdline.clone(),
        append: args.append.clone(),
    };
    if let Some(kernel) = &args.kernel {
        let base = args
            .cmdline
            .clone()
            .unwrap_or_else(|| boot_discovery::SERIAL_CONSOLE.to_string());
        let over = CmdlineOverride {
            replace: None,
            append: args.append.clone(),
        };
        return Ok(BootChoice {
            kernel: Kernel::Path(kernel.clone()),
            initrd_path: args.initrd.clone(),
            initrd_file: None,
            cmdline: boot_discovery::final_cmdline(&base, &over),
            description: format!("{} (--kernel)", kernel.display()),
        });
    }
    // The discovery error already says what was found and what is missing.
    let plan = boot_discovery::discover(boot_disk).map_err(|e| e.to_string())?;
    for r in &plan.reasons {
        tracing::info!("{r}");
    }
    let (initrd_path, initrd_file) = match &plan.initrd {
        Some(bytes) => {
            let dir = ovf_loader::cache_dir()
                .ok_or("cannot find a cache folder")?
                .join("boot");
            std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
            let mut f = tempfile::NamedTempFile::new_in(&dir)
                .map_err(|e| format!("{}: {e}", dir.display()))?;
            f.write_all(bytes)
                .map_err(|e| format!("{}: {e}", dir.display()))?;
            (Some(f.path().to_path_buf()), Some(f))
        }
        None => (None, None),
    };
    Ok(BootChoice {
        kernel: Kernel::Bytes(plan.kernel.clone()),
        initrd_path,
        initrd_file,
        cmdline: boot_discovery::final_cmdline(&plan.cmdline, &over),
        description: format!("{} from \"{}\"", plan.kernel_path, plan.entry_title),
    })
}
