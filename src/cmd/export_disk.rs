//! `ovf-run export-disk`: write one of a package's disks as a sparse raw
//! image, so it can be taken to another tool.
//!
//! The disk is read in place from the package exactly as `ovf-run` would
//! boot it (through `ovf_loader::disks::open_disk` and `disk-image`), so
//! the output equals `qemu-img convert -O raw` of the disk's image file.
//! Disks are numbered as `ovf-run inspect` prints them (0 is the boot
//! disk). Before anything is written, the disk's file is checked against
//! the package's manifests (`--no-verify` skips that). A bare image file
//! (VMDK, qcow2, VHD, VHDX, raw, or gzip of one) is accepted too.

use super::progress::ByteProgress;
use super::{human_bytes, open_package, EXIT_USAGE};
use clap::Args;
use disk_image::{BlockSource, CacheDir};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

#[derive(Args, Debug)]
pub struct ExportDiskArgs {
    /// The package (.ova, or .ovf with its files beside it), or a bare
    /// disk image file.
    pub package: PathBuf,
    /// Which disk, numbered as `ovf-run inspect` lists them (0: boot disk).
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub disk: usize,
    /// Where to write the raw image (replaced if it exists).
    #[arg(short, long, value_name = "FILE")]
    pub output: PathBuf,
    /// The virtual system to take the disk from, when there are several.
    #[arg(long, value_name = "ID")]
    pub system: Option<String>,
    /// Print no progress.
    #[arg(short, long)]
    pub quiet: bool,
    /// Do not check the disk's digest against the package's manifests.
    #[arg(long)]
    pub no_verify: bool,
}

fn fail(msg: impl std::fmt::Display) -> ExitCode {
    eprintln!("ovf-run export-disk: {msg}");
    ExitCode::FAILURE
}

fn is_package(path: &Path) -> bool {
    path.is_dir()
        || path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| e.eq_ignore_ascii_case("ova") || e.eq_ignore_ascii_case("ovf"))
}

pub fn run(args: ExportDiskArgs) -> ExitCode {
    let same = match (args.package.canonicalize(), args.output.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    };
    if same {
        eprintln!(
            "ovf-run export-disk: the output {} is the input; choose another file",
            args.output.display()
        );
        return ExitCode::from(EXIT_USAGE);
    }
    let Some(cache) = ovf_loader::cache_dir() else {
        return fail("cannot find a cache folder: set HOME or XDG_CACHE_HOME");
    };
    let progress = Arc::new(ByteProgress::new());
    let mut image_cache = CacheDir::new(cache.join("inflated"));
    if !args.quiet {
        let p = progress.clone();
        image_cache.progress = Some(Arc::new(move |done, total| {
            p.update("decompressing", done, total)
        }));
    }
    let opened = if is_package(&args.package) {
        open_package_disk(&args, &image_cache)
    } else {
        disk_image::open_path(&args.package, &image_cache)
            .map(|s| (s, args.package.display().to_string()))
            .map_err(|e| fail(e))
    };
    let (source, label) = match opened {
        Ok(s) => s,
        Err(code) => {
            progress.finish();
            return code;
        }
    };
    let result = disk_image::export_raw(&*source, &args.output, &|done, total| {
        if !args.quiet {
            progress.update("exporting", done, total)
        }
    });
    progress.finish();
    match result {
        Ok(()) => {
            if !args.quiet {
                eprintln!(
                    "exported {label} ({}) to {}",
                    human_bytes(source.capacity()),
                    args.output.display()
                );
            }
            ExitCode::SUCCESS
        }
        // export_raw writes beside the output and renames when done: a
        // failure leaves no partial image and any old file untouched.
        Err(e) => fail(e),
    }
}

/// The package's disk `args.disk`, read in place, and a label for it.
fn open_package_disk(
    args: &ExportDiskArgs,
    cache: &CacheDir,
) -> Result<(Arc<dyn BlockSource>, String), ExitCode> {
    let pkg = open_package(&args.package)?;
    if let Some(own) = ovf_loader::own_files::package_file_at(&pkg, &args.output) {
        eprintln!(
            "ovf-run export-disk: the output {} is {}, one of the package's own files; choose another file",
            args.output.display(),
            own.display()
        );
        return Err(ExitCode::from(EXIT_USAGE));
    }
    let spec = ovf_loader::machine_spec(&pkg.envelope, args.system.as_deref(), None)
        .map_err(|e| fail(format!("{}: {e}", args.package.display())))?;
    let Some(disk) = spec.disks.get(args.disk) else {
        eprintln!(
            "ovf-run export-disk: {} has {} disk(s) (numbered from 0, as `ovf-run inspect` shows); there is no disk {}",
            args.package.display(),
            spec.disks.len(),
            args.disk
        );
        return Err(ExitCode::from(EXIT_USAGE));
    };
    if !args.no_verify {
        verify_disk(&pkg, disk, args.quiet)?;
    }
    let (source, warnings) = ovf_loader::disks::open_disk_checked(&pkg, disk, cache)
        .map_err(|e| fail(format!("disk {} ({}): {e}", args.disk, disk.disk_id)))?;
    for w in warnings {
        eprintln!("ovf-run export-disk: warning: disk {}: {w}", args.disk);
    }
    Ok((source, format!("disk {} ({})", args.disk, disk.disk_id)))
}

/// Check the disk's file(s), the descriptor and the signature against the
/// manifests before anything is written (`--no-verify` skips this).
fn verify_disk(
    pkg: &ovf_loader::Package,
    disk: &ovf_loader::machine::DiskSpec,
    quiet: bool,
) -> Result<(), ExitCode> {
    let Some(file_ref) = disk.file_ref.as_deref() else {
        return Ok(());
    };
    let location = pkg.locate(file_ref).map_err(fail)?;
    let mut names = vec![location.name.clone()];
    if location.extents.len() > 1 {
        names.extend((0..location.extents.len()).map(|i| format!("{}.{i:09}", location.name)));
    }
    let bar = super::progress::ByteProgress::new();
    let progress = |name: &str, done: u64, total: u64| {
        if !quiet {
            bar.update(name, done, total)
        }
    };
    let opts = ovf_loader::verify::VerifyOptions {
        progress: Some(&progress),
        only_files: Some(&names),
        ..Default::default()
    };
    let report = ovf_loader::verify::verify(pkg, &opts).map_err(fail)?;
    bar.finish();
    if !quiet {
        for w in pkg.warnings.iter().chain(&report.warnings) {
            eprintln!("ovf-run export-disk: warning: {w}");
        }
    }
    if report.ok() {
        return Ok(());
    }
    for p in &report.problems {
        eprintln!("ovf-run export-disk: FAILED: {p}");
    }
    Err(fail(format!(
        "{}: verification failed; nothing was written (--no-verify exports anyway)",
        pkg.path.display()
    )))
}
