//! `ovf-run`: boot OVF/OVA appliances directly on KVM.
//!
//! The binary is thin: it parses the command line and hands each
//! subcommand to its module under `cmd/`.

mod cmd;

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = cmd::Cli::parse();
    cmd::init_logging(cli.verbose);
    cmd::run(cli)
}
