//! Subcommands. Each lives in its own file; this module only dispatches.

mod boot;
mod export_disk;
mod inspect;
mod net;
mod progress;
mod run;
mod verify;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// Exit status for usage errors (as clap uses).
pub const EXIT_USAGE: u8 = 2;

#[derive(Parser, Debug)]
#[command(
    name = "ovf-run",
    version,
    about = "Boot OVF/OVA virtual appliances directly on KVM"
)]
pub struct Cli {
    /// More log output (-v info, -vv debug, -vvv trace).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,

    #[command(subcommand)]
    pub command: Option<Command>,

    /// Without a command: run the appliance.
    #[command(flatten)]
    pub run: run::RunArgs,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run an appliance (the same as giving the package without a command).
    Run(run::RunArgs),
    /// Print a package's license agreements.
    Eula(EulaArgs),
    /// Show what a package contains and the machine it describes.
    Inspect(inspect::InspectArgs),
    /// Check a package's manifest digests and signature.
    Verify(verify::VerifyArgs),
    /// Boot a kernel directly, without a package.
    Boot(boot::BootArgs),
    /// Write one of a package's disks as a sparse raw image.
    ExportDisk(export_disk::ExportDiskArgs),
}

pub fn init_logging(verbose: u8) {
    let level = match verbose {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("OVF_RUN_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .without_time()
        .try_init();
}

pub fn run(cli: Cli) -> ExitCode {
    // Options given before the subcommand (`ovf-run --configuration X
    // inspect PKG`) land in the flattened run options: hand them on.
    let global_configuration = cli.run.configuration.clone();
    match cli.command.unwrap_or(Command::Run(cli.run)) {
        Command::Run(args) => run::run(args),
        Command::Eula(args) => print_eula(args),
        Command::Inspect(mut args) => {
            args.configuration = args.configuration.or(global_configuration);
            inspect::run(args)
        }
        Command::Verify(args) => verify::run(args),
        Command::Boot(args) => boot::run(args),
        Command::ExportDisk(args) => export_disk::run(args),
    }
}

/// Open a package, printing the error the way every subcommand does. A
/// compressed archive (tar.gz, tar.xz) is inflated into the cache folder
/// with a progress bar on a terminal.
pub fn open_package(path: &std::path::Path) -> Result<ovf_loader::Package, ExitCode> {
    let bar = std::sync::Arc::new(progress::ByteProgress::new());
    let mut cache = ovf_loader::Package::default_cache();
    let b = bar.clone();
    cache.progress = Some(std::sync::Arc::new(move |done, total| {
        b.update("inflating the archive", done, total)
    }));
    let opened = ovf_loader::Package::open_with_cache(path, &cache);
    bar.finish();
    opened.map_err(|e| {
        eprintln!("ovf-run: {e}");
        ExitCode::FAILURE
    })
}

/// `1.5 GiB`-style sizes for people.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[derive(clap::Args, Debug)]
pub struct EulaArgs {
    /// The package: an .ova, or an .ovf with its files beside it.
    pub package: std::path::PathBuf,
}

fn print_eula(args: EulaArgs) -> ExitCode {
    let pkg = match open_package(&args.package) {
        Ok(p) => p,
        Err(code) => return code,
    };
    let eulas = pkg
        .envelope
        .content
        .as_ref()
        .map(|c| c.all_eulas())
        .unwrap_or_default();
    if eulas.is_empty() {
        println!("{} has no license agreement.", args.package.display());
    }
    for (i, e) in eulas.iter().enumerate() {
        println!(
            "--- License agreement {} of {} ---\n{}\n",
            i + 1,
            eulas.len(),
            e.license
        );
    }
    ExitCode::SUCCESS
}
