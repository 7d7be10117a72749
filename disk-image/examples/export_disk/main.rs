//! The `ovf-run export-disk` subcommand as a standalone program, built and
//! tried before the root package depends on disk-image. `export_disk.rs`
//! beside this file is exactly what goes into `src/cmd/export_disk.rs`.
//!
//! cargo run -p disk-image --example export_disk -- IMAGE -o OUT.raw

mod cmd {
    /// Exit status for usage errors (as in `src/cmd/mod.rs`).
    pub const EXIT_USAGE: u8 = 2;
    pub mod export_disk;
}

use clap::Parser;

#[derive(Parser)]
#[command(name = "export-disk")]
struct Cli {
    #[command(flatten)]
    args: cmd::export_disk::ExportDiskArgs,
}

fn main() -> std::process::ExitCode {
    cmd::export_disk::run(Cli::parse().args)
}
