//! Subcommands. Each lives in its own file; this module only dispatches.

mod boot;
mod detach;
mod export_disk;
mod inspect;
mod instances;
mod netargs;
mod progress;
mod propargs;
mod run;
mod signals;
mod snapshot;
mod verify;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// Exit status for usage errors (as clap uses).
pub const EXIT_USAGE: u8 = 2;

/// The exit codes, for --help (README.md has the same table).
const EXIT_CODES: &str = "Exit codes of a run:
  0    the guest powered off (or rebooted with --no-reboot)
  1    error before or while starting (the message says what)
  2    usage: a bad option or value, an unknown instance name
  3    the --ready-when conditions did not hold within --ready-timeout
  4    the guest crashed (triple fault with --no-reboot, KVM internal error)
  124  --timeout ran out (the guest was stopped)
  137  the instance was killed (ovf-run kill, or it ignored the power button)
  128+N  stopped on signal N (130: Ctrl-C, 143: SIGTERM)";

#[derive(Parser, Debug)]
#[command(
    name = "ovf-run",
    version,
    about = "Boot OVF/OVA virtual appliances directly on KVM",
    after_help = EXIT_CODES
)]
pub struct Cli {
    /// More log output (-v info, -vv debug, -vvv trace).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,

    /// Seccomp filters on the monitor's threads (docs/seccomp.md); `off`
    /// is for debugging only.
    #[arg(long, global = true, value_enum, default_value_t = Seccomp::On)]
    pub seccomp: Seccomp,

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
    /// List the running detached instances (ovf-run -d).
    Ps(instances::PsArgs),
    /// Stop detached instances (power button, then kill after --time) and
    /// print how each ended.
    Stop(instances::StopArgs),
    /// Kill detached instances at once.
    Kill(instances::NamesArgs),
    /// Print a detached instance's console.
    Logs(instances::LogsArgs),
    /// Print a detached instance's published ports (127.0.0.1:49153).
    Port(instances::PortArgs),
    /// Wait for a detached instance to exit; exit with its code.
    Wait(instances::NameArgs),
    /// Write a snapshot of a running instance into a directory (then let
    /// it run on, or stop it with --stop).
    Snapshot(snapshot::SnapshotArgs),
    /// Start a clone of a snapshot (run options: -p, --name, -d,
    /// --ready-when, --timeout, --events …; the machine is the snapshot's).
    Restore(snapshot::RestoreArgs),
}

/// A message on stderr, prefixed with the program's name.
pub fn say(msg: impl AsRef<str>) {
    eprintln!("ovf-run: {}", msg.as_ref());
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

/// `--seccomp on|off`.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Seccomp {
    On,
    Off,
}

pub fn run(cli: Cli) -> ExitCode {
    thread_filter::set_enabled(cli.seccomp == Seccomp::On);
    // Options given before the subcommand (`ovf-run --configuration X
    // inspect PKG`) land in the flattened run options: hand them on.
    let global_configuration = cli.run.configuration.clone();
    let global_props = cli.run.props.clone();
    match cli.command.unwrap_or(Command::Run(cli.run)) {
        Command::Run(args) => run::run(args),
        Command::Eula(args) => print_eula(args),
        Command::Inspect(mut args) => {
            args.configuration = args.configuration.or(global_configuration);
            if args.props.is_empty() {
                args.props = global_props;
            }
            inspect::run(args)
        }
        Command::Verify(args) => verify::run(args),
        Command::Boot(args) => boot::run(args),
        Command::ExportDisk(args) => export_disk::run(args),
        Command::Ps(args) => instances::ps(args),
        Command::Stop(args) => instances::stop(args),
        Command::Kill(args) => instances::kill(args),
        Command::Logs(args) => instances::logs(args),
        Command::Port(args) => instances::port(args),
        Command::Wait(args) => instances::wait(args),
        Command::Snapshot(args) => snapshot::snapshot(args),
        Command::Restore(args) => run::run(snapshot::restore_as_run(args)),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_sandbox_input_is_a_usage_error_with_a_message() {
        for (args, says) in [
            (vec!["--ready-when", "ping:80", "a.ova"], "console:TEXT"),
            (vec!["-p", "8080:65536", "a.ova"], "1 to 65535"),
            (vec!["--timeout", "10", "a.ova"], "ms, s, m or h"),
            (vec!["--ready-timeout", "soon", "a.ova"], "ms, s, m or h"),
            (vec!["--mac", "01:00:5e:00:00:01", "a.ova"], "unicast"),
            (vec!["--prop", "hostname", "a.ova"], "KEY=VALUE"),
            (vec!["inspect", "--prop", "=x", "a.ova"], "KEY=VALUE"),
        ] {
            let mut argv = vec!["ovf-run"];
            argv.extend(&args);
            let e = Cli::try_parse_from(&argv).unwrap_err();
            assert_eq!(e.exit_code(), 2, "{args:?}");
            assert!(e.to_string().contains(says), "{args:?}: {e}");
        }
    }

    #[test]
    fn properties_parse_on_run_and_inspect() {
        let cli = Cli::try_parse_from([
            "ovf-run",
            "--prop",
            "hostname=a=b",
            "--prop-file",
            "p.txt",
            "--prop",
            "empty=",
            "a.ova",
        ])
        .unwrap();
        let p = &cli.run.props;
        assert_eq!(p.prop.len(), 2);
        assert_eq!(
            (p.prop[0].key.as_str(), p.prop[0].value.as_str()),
            ("hostname", "a=b")
        );
        assert_eq!(p.prop[1].value, "");
        assert_eq!(p.prop_file, vec![std::path::PathBuf::from("p.txt")]);
        let cli = Cli::try_parse_from(["ovf-run", "inspect", "--prop", "k=v", "a.ova"]).unwrap();
        assert!(matches!(cli.command, Some(Command::Inspect(i)) if i.props.prop[0].key == "k"));
        let cli = Cli::try_parse_from(["ovf-run", "run", "--prop", "k=v", "a.ova"]).unwrap();
        assert!(matches!(cli.command, Some(Command::Run(r)) if r.props.prop[0].value == "v"));
    }

    #[test]
    fn a_missing_prop_file_is_a_usage_error() {
        let args = propargs::PropArgs {
            prop: Vec::new(),
            prop_file: vec!["/nonexistent/props.txt".into()],
        };
        let e = args.assignments().unwrap_err().to_string();
        assert!(e.starts_with("--prop-file /nonexistent/props.txt: "), "{e}");
    }

    #[test]
    fn sandbox_options_parse() {
        let cli = Cli::try_parse_from([
            "ovf-run",
            "-d",
            "--name",
            "web1",
            "-p",
            "0:80",
            "-p",
            "443",
            "--ready-when",
            "http:80/health",
            "--ready-when",
            "console:login:",
            "--ready-timeout",
            "90s",
            "--timeout",
            "1h",
            "--events",
            "ev.jsonl",
            "a.ova",
        ])
        .unwrap();
        let r = cli.run;
        assert!(r.detach);
        assert_eq!(r.name.as_deref(), Some("web1"));
        assert_eq!(r.net.publish.len(), 2);
        assert!(r.net.publish.iter().all(|p| p.host_port == 0));
        assert_eq!(r.ready_when.len(), 2);
        assert_eq!(r.ready_timeout, std::time::Duration::from_secs(90));
        assert_eq!(r.timeout, Some(std::time::Duration::from_secs(3600)));
        let cli = Cli::try_parse_from(["ovf-run", "stop", "--time", "5", "a", "b"]).unwrap();
        assert!(matches!(cli.command, Some(Command::Stop(s)) if s.time == 5 && s.names.len() == 2));
        assert!(
            Cli::try_parse_from(["ovf-run", "stop"]).is_err(),
            "a name is required"
        );
    }
}
