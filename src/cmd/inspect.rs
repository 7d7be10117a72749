//! `ovf-run inspect`: what a package contains and what it would run.

use super::{human_bytes, open_package};
use clap::Args;
use ovf_loader::inspect::{inspect_with_properties, InspectReport};
use ovf_loader::model::FirmwareHint;
use ovf_loader::properties::ValueSource;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Args, Debug)]
pub struct InspectArgs {
    /// The package: an .ova, or an .ovf with its files beside it.
    pub package: PathBuf,
    /// Print the report as JSON (documented in docs/inspect-json.md).
    #[arg(long)]
    pub json: bool,
    /// Map the hardware of this deployment option instead of the default.
    #[arg(long, value_name = "NAME")]
    pub configuration: Option<String>,
    /// Show the property values and disk sizes these settings give.
    #[command(flatten)]
    pub props: super::propargs::PropArgs,
}

pub fn run(args: InspectArgs) -> ExitCode {
    let pkg = match open_package(&args.package) {
        Ok(p) => p,
        Err(code) => return code,
    };
    if let Some(name) = args.configuration.as_deref() {
        let known = &pkg.envelope.configurations;
        if !known.iter().any(|c| c.id == name) {
            let names: Vec<&str> = known.iter().map(|c| c.id.as_str()).collect();
            eprintln!(
                "ovf-run: {}: no deployment option is called '{name}' ({})",
                args.package.display(),
                if names.is_empty() {
                    "the package defines none".to_string()
                } else {
                    format!("the package has: {}", names.join(", "))
                }
            );
            return ExitCode::from(super::EXIT_USAGE);
        }
    }
    let usage = |e: &dyn std::fmt::Display| {
        eprintln!("ovf-run: {e}");
        ExitCode::from(super::EXIT_USAGE)
    };
    let assignments = match args.props.assignments() {
        Ok(a) => a,
        Err(e) => return usage(&e),
    };
    let mut report =
        match inspect_with_properties(&pkg, args.configuration.as_deref(), &assignments) {
            Ok(r) => r,
            Err(e) => return usage(&format!("{}: {e}", args.package.display())),
        };
    let drivers = find_boot(&pkg, &mut report);
    if args.json {
        match serde_json::to_string_pretty(&report) {
            Ok(s) => println!("{s}"),
            Err(e) => {
                eprintln!("ovf-run: cannot write JSON: {e}");
                return ExitCode::FAILURE;
            }
        }
    } else {
        print_text(&report);
        if let Some(d) = drivers {
            print!("Drivers:   {}", d);
        }
    }
    ExitCode::SUCCESS
}

/// Look inside the first system's boot disk for what would boot; return
/// the virtio driver check's summary (its problems also go to warnings).
fn find_boot(pkg: &ovf_loader::Package, report: &mut InspectReport) -> Option<String> {
    let Some(system) = report.systems.iter().find(|s| s.hardware.is_some()) else {
        report.boot_error = Some("no virtual system with mappable hardware".into());
        return None;
    };
    let hw = system.hardware.as_ref().expect("filtered above");
    let efi_hint = hw.firmware == Some(FirmwareHint::Efi);
    let Some(disk) = hw.disks.first() else {
        report.boot_error = Some(format!("virtual system '{}' has no disk", system.id));
        return None;
    };
    let Some(cache) = ovf_loader::cache_dir() else {
        report.boot_error = Some("no cache folder (set HOME or XDG_CACHE_HOME)".into());
        return None;
    };
    // A gzip-compressed disk is inflated once into the cache: show progress.
    let progress = std::sync::Arc::new(super::progress::ByteProgress::new());
    let mut image_cache = disk_image::CacheDir::new(cache.join("inflated"));
    let p = progress.clone();
    image_cache.progress = Some(std::sync::Arc::new(move |done, total| {
        p.update("decompressing", done, total)
    }));
    let opened = ovf_loader::disks::open_disk_checked(pkg, disk, &image_cache);
    progress.finish();
    let source = match opened {
        Ok((s, warnings)) => {
            report.warnings.extend(warnings);
            s
        }
        Err(e) => {
            report.boot_error = Some(format!("cannot open the boot disk {}: {e}", disk.disk_id));
            return None;
        }
    };
    let boot_bytes;
    match boot_discovery::describe(source.clone()) {
        Ok(plan) => {
            report.firmware_auto = Some("direct".into());
            boot_bytes = plan.kernel_size + plan.initrd_size.unwrap_or(0);
            report.boot = Some(ovf_loader::inspect::BootInfo {
                system_id: system.id.clone(),
                kernel: plan.kernel_path.clone(),
                initrd: plan.initrd_path.clone(),
                cmdline: boot_discovery::final_cmdline(&plan.cmdline, &Default::default()),
                entry_cmdline: plan.cmdline.clone(),
                entry: plan.entry_title.clone(),
                reasons: plan.reasons.clone(),
            })
        }
        Err(e) => {
            report.boot_error = Some(e.to_string());
            // SeaBIOS cannot start a UEFI-only disk: a run refuses it.
            report.firmware_auto = Some(if efi_hint {
                "none".into()
            } else {
                "bios".into()
            });
            return None;
        }
    }
    // describe only sized the kernel and initrd; the driver check reads
    // both, so inspect (which must stay cheap on hostile packages, issue
    // 15) does it only for files of a real kernel's and initramfs' size.
    if boot_bytes > INSPECT_READ_BUDGET {
        report.warnings.push(format!(
            "virtio driver check skipped: kernel and initrd are {} MiB together, more than inspect reads ({} MiB); a run checks them when it boots",
            boot_bytes >> 20,
            INSPECT_READ_BUDGET >> 20
        ));
        return None;
    }
    drivers_summary(source, report)
}

/// What inspect reads of kernel + initrd for the driver check at most.
const INSPECT_READ_BUDGET: u64 = 192 << 20;

/// Virtio drivers in the initramfs (issue 12). This reads the kernel and
/// initrd, which `describe` above only sized.
fn drivers_summary(
    source: std::sync::Arc<dyn boot_discovery::BlockSource>,
    report: &mut InspectReport,
) -> Option<String> {
    match boot_discovery::drivers::check(source) {
        Ok(d) => {
            report
                .warnings
                .extend(d.problems.iter().map(|p| format!("virtio drivers: {p}")));
            Some(d.summary())
        }
        Err(e) => {
            report.warnings.push(format!(
                "cannot check the initramfs for virtio drivers: {e}"
            ));
            None
        }
    }
}

/// A value for a line of text: quoted, long ones cut.
fn shorten(value: &str) -> String {
    const MAX: usize = 60;
    let n = value.chars().count();
    if n <= MAX {
        format!("{value:?}")
    } else {
        let head: String = value.chars().take(MAX).collect();
        format!("{head:?}... ({n} characters)")
    }
}

fn opt(v: &Option<String>) -> &str {
    v.as_deref().unwrap_or("-")
}

fn print_text(r: &InspectReport) {
    let kind = match (r.package.kind, r.package.container) {
        (ovf_loader::package::PackageKind::Ova, Some(c)) => format!("OVA, {}", c.name()),
        (ovf_loader::package::PackageKind::Ova, None) => "OVA".to_string(),
        (ovf_loader::package::PackageKind::Ovf, _) => "OVF folder".to_string(),
    };
    println!(
        "Package:   {} ({kind}, OVF {}, descriptor {})",
        r.package.path, r.package.ovf_version, r.package.descriptor
    );
    for p in r
        .products
        .iter()
        .filter(|p| p.product.is_some() || p.vendor.is_some())
    {
        println!(
            "Product:   {} {} by {}{}",
            opt(&p.product),
            p.full_version
                .as_deref()
                .or(p.version.as_deref())
                .unwrap_or(""),
            opt(&p.vendor),
            p.product_url
                .as_deref()
                .map(|u| format!(" <{u}>"))
                .unwrap_or_default()
        );
    }
    println!(
        "EULA:      {}",
        if r.eula.present {
            format!("yes ({}), acceptance required to run", r.eula.count)
        } else {
            "none".into()
        }
    );
    if !r.configurations.is_empty() {
        let names: Vec<String> = r
            .configurations
            .iter()
            .map(|c| {
                format!(
                    "{}{}",
                    c.id,
                    if Some(&c.id) == r.default_configuration.as_ref() {
                        " (default)"
                    } else {
                        ""
                    }
                )
            })
            .collect();
        println!("Configurations: {}", names.join(", "));
    }
    for s in &r.systems {
        println!(
            "System:    {} {}",
            s.id,
            s.name
                .as_deref()
                .map(|n| format!("\"{n}\""))
                .unwrap_or_default()
        );
        if let Some(os) = &s.operating_system {
            println!("  OS:        {os}");
        }
        match (&s.hardware, &s.hardware_error) {
            (Some(h), _) => {
                println!("  CPUs:      {}", h.vcpus);
                println!("  Memory:    {}", human_bytes(h.memory_bytes));
                match h.firmware {
                    Some(FirmwareHint::Efi) => println!("  Firmware:  EFI in the package (vmw:Config firmware=\"efi\"): the disk is read through its EFI System Partition; the kernel boots directly"),
                    Some(FirmwareHint::Bios) => println!("  Firmware:  BIOS in the package"),
                    None => {}
                }
                for (i, d) in h.disks.iter().enumerate() {
                    let file = r.disks.iter().find(|x| x.disk_id == d.disk_id);
                    println!(
                        "  Disk {i}:    {} capacity {}, {}, {}{}{}",
                        d.disk_id,
                        human_bytes(d.capacity_bytes),
                        match (&d.file_ref, file.and_then(|f| f.file_size)) {
                            (None, _) => "blank disk".to_string(),
                            (Some(_), Some(size)) => format!("{} in package", human_bytes(size)),
                            (Some(_), None) => "image MISSING from package".to_string(),
                        },
                        d.format
                            .as_deref()
                            .and_then(|f| f.rsplit(['#', '/']).next())
                            .unwrap_or("unknown format"),
                        d.controller
                            .as_ref()
                            .map(|c| format!(", on {}", c.kind))
                            .unwrap_or_default(),
                        if i == 0 { " (boot)" } else { "" }
                    );
                }
                for c in &h.cdroms {
                    println!(
                        "  CD/DVD:    {} (read-only CD-ROM, virtio-scsi here)",
                        c.file_ref
                    );
                }
                for (i, n) in h.nics.iter().enumerate() {
                    println!(
                        "  NIC {i}:     network {} ({} in the descriptor; virtio-net here){}",
                        opt(&n.network),
                        opt(&n.model),
                        n.mac
                            .as_deref()
                            .map(|m| format!(", MAC {m}"))
                            .unwrap_or_default()
                    );
                }
                for ig in &h.ignored {
                    println!(
                        "  ignored:   {} (item {}): {}",
                        opt(&ig.name),
                        ig.instance_id,
                        ig.reason
                    );
                }
                for w in &h.warnings {
                    println!("  warning:   {w}");
                }
            }
            (None, Some(e)) => println!("  hardware:  cannot be mapped: {e}"),
            (None, None) => {}
        }
    }
    if !r.properties.is_empty() {
        println!("Properties:");
        for p in &r.properties {
            let value = if p.property.password {
                "(password)".to_string()
            } else {
                shorten(&p.final_value)
            };
            let source = match p.source {
                ValueSource::User => " (given)",
                ValueSource::Configuration => " (configuration)",
                ValueSource::Default | ValueSource::Empty => "",
            };
            println!(
                "  {} [{}]{} = {}{source}{}",
                p.property.full_key,
                ovf_loader::properties::declared(&p.property),
                if p.property.user_configurable {
                    " user-configurable"
                } else {
                    ""
                },
                value,
                p.property
                    .label
                    .as_deref()
                    .map(|l| format!("  ({l})"))
                    .unwrap_or_default()
            );
        }
    }
    if !r.missing_properties.is_empty() {
        let e = ovf_loader::properties::PropertyError::Required(r.missing_properties.clone());
        println!("Required:  {e}");
    }
    match (&r.boot, &r.boot_error) {
        (Some(b), _) => {
            println!("Boot:      {} (entry \"{}\")", b.kernel, b.entry);
            println!("  initrd:    {}", b.initrd.as_deref().unwrap_or("none"));
            println!("  cmdline:   {}", b.cmdline);
            for reason in &b.reasons {
                println!("  why:       {reason}");
            }
        }
        (None, Some(e)) => println!("Boot:      no kernel for direct boot: {e}"),
        (None, None) => {}
    }
    match r.firmware_auto.as_deref() {
        Some("direct") => println!("Firmware:  --firmware auto boots the kernel above directly"),
        Some("none") => println!("Firmware:  --firmware auto refuses it: no kernel to boot directly, and the package was made for EFI firmware, which ovf-run does not have"),
        Some(_) => {
            println!("Firmware:  --firmware auto boots the disk's own boot loader through SeaBIOS")
        }
        None => {}
    }
    // Exporters repeat vendor settings (vmw:Config) dozens of times: one line per kind.
    let mut seen: Vec<(&str, &str, &str, usize)> = Vec::new();
    for i in &r.ignored {
        match seen
            .iter_mut()
            .find(|(e, c, _, _)| *e == i.element && *c == i.context)
        {
            Some(entry) => entry.3 += 1,
            None => seen.push((&i.element, &i.context, &i.reason, 1)),
        }
    }
    for (element, context, reason, count) in seen {
        let times = if count > 1 {
            format!(" (x{count})")
        } else {
            String::new()
        };
        println!("Ignored:   {element}{times} in {context}: {reason}");
    }
    for w in &r.warnings {
        println!("Warning:   {w}");
    }
}
