//! `ovf-run export-disk`: write a package's disk as a sparse raw image.

use clap::Args;
use std::process::ExitCode;

#[derive(Args, Debug)]
pub struct ExportDiskArgs {}

pub fn run(_args: ExportDiskArgs) -> ExitCode {
    eprintln!("ovf-run export-disk: not implemented yet");
    ExitCode::from(1)
}
