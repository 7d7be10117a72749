//! `ovf-run boot`: run a kernel without a package.

use clap::Args;
use std::process::ExitCode;

#[derive(Args, Debug)]
pub struct BootArgs {}

pub fn run(_args: BootArgs) -> ExitCode {
    eprintln!("ovf-run boot: not implemented yet");
    ExitCode::from(1)
}
