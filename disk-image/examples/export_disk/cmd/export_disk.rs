//! `ovf-run export-disk`: write a disk as a sparse raw image, so it can be
//! taken to another tool.
//!
//! The input is an image file (VMDK of any kind, qcow2, raw, gzip); the
//! package form lives in ovf-run (`src/cmd/export_disk.rs`).

use clap::Args;
use disk_image::{BlockSource, CacheDir};
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

#[derive(Args, Debug)]
pub struct ExportDiskArgs {
    /// The disk image to export (VMDK, qcow2, VHD, VHDX, raw, or gzip of one).
    pub image: PathBuf,
    /// Where to write the raw image (replaced if it exists).
    #[arg(short, long)]
    pub output: PathBuf,
    /// Print no progress.
    #[arg(short, long)]
    pub quiet: bool,
}

/// Draws `label: NN% (done of total MiB)` on stderr, when it is a terminal.
fn progress(label: &'static str, quiet: bool) -> Option<Arc<dyn Fn(u64, u64) + Send + Sync>> {
    if quiet || !std::io::stderr().is_terminal() {
        return None;
    }
    let last = std::sync::atomic::AtomicU64::new(u64::MAX);
    Some(Arc::new(move |done: u64, total: u64| {
        let pct = (done * 100).checked_div(total).unwrap_or(100);
        if last.swap(pct, std::sync::atomic::Ordering::Relaxed) != pct {
            let mut e = std::io::stderr().lock();
            let _ = write!(
                e,
                "\r{label}: {pct:3}% ({} of {} MiB)",
                done >> 20,
                total >> 20
            );
            if done >= total {
                let _ = writeln!(e);
            }
        }
    }))
}

/// Export an opened disk; shared with the package form.
pub fn export(
    source: &dyn BlockSource,
    output: &std::path::Path,
    quiet: bool,
) -> Result<(), disk_image::DiskError> {
    let bar = progress("exporting", quiet);
    disk_image::export_raw(source, output, &|done, total| {
        if let Some(p) = &bar {
            p(done, total)
        }
    })
}

pub fn run(args: ExportDiskArgs) -> ExitCode {
    let same = match (args.image.canonicalize(), args.output.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    };
    if same {
        eprintln!(
            "ovf-run export-disk: the output {} is the input image; choose another file",
            args.output.display()
        );
        return ExitCode::from(super::EXIT_USAGE);
    }
    let mut cache = CacheDir::new(CacheDir::default_location());
    cache.progress = progress("decompressing", args.quiet);
    let source = match disk_image::open_path(&args.image, &cache) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("ovf-run export-disk: {e}");
            return ExitCode::from(1);
        }
    };
    match export(&*source, &args.output, args.quiet) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ovf-run export-disk: {e}");
            ExitCode::from(1)
        }
    }
}
