//! Export a bare image file (VMDK of any kind, qcow2, raw, or gzip of one)
//! as a sparse raw image, without the rest of ovf-run. The user-facing
//! command is `ovf-run export-disk PKG [--disk N] -o FILE`
//! (`src/cmd/export_disk.rs`), which takes a package's disk the same way.
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
