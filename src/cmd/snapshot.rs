//! `ovf-run snapshot NAME DIR [--stop]` and `ovf-run restore DIR [run
//! options]`: the command line of `ovf_run::snapshots`.
//!
//! `snapshot` makes DIR (the instance's supervising thread may not create
//! files), leaves a request for the running instance (see `detach.rs`) and
//! waits for its `snapshot` or `snapshot-failed` event; with `--stop` it
//! then waits for the instance to power off, as `ovf-run stop` does.
//! `restore` is a run whose instance starts from the snapshot: the same
//! supervision, ready conditions, `-d`, time limits and exit codes.

use super::detach::{send_request, Request};
use super::run::{exit_code_for, options, RunArgs};
use super::{human_bytes, say, EXIT_USAGE};
use clap::Args;
use ovf_run::events::{events_path, read_events};
use ovf_run::launch::Progress;
use ovf_run::snapshots::{self, RestoreOptions};
use ovf_run::state::{self, state_root};
use ovf_run::{Event, Instance, Trust};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Args, Debug)]
pub struct SnapshotArgs {
    /// The running instance (see ovf-run ps).
    pub name: String,
    /// Where the snapshot goes: a new or empty directory.
    pub dir: PathBuf,
    /// Stop the instance after the snapshot (power button, then kill
    /// after --time).
    #[arg(long)]
    pub stop: bool,
    /// With --stop: seconds the guest gets to power off.
    #[arg(long, short = 't', value_name = "SECONDS", default_value_t = 10)]
    pub time: u64,
}

/// How long `snapshot` waits for the instance to write it.
const SNAPSHOT_WAIT: Duration = Duration::from_secs(900);

pub fn snapshot(args: SnapshotArgs) -> ExitCode {
    let root = match state_root() {
        Ok(r) => r,
        Err(e) => {
            say(e.to_string());
            return ExitCode::FAILURE;
        }
    };
    let listed = match state::find(&root, &args.name) {
        Ok(l) if l.alive => l,
        Ok(_) => {
            say(format!("{}: not running", args.name));
            return ExitCode::FAILURE;
        }
        Err(e) => {
            say(e.to_string());
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let Some(pid) = listed.info.as_ref().map(|i| i.pid) else {
        say(format!(
            "{}: no info.json; cannot tell its process",
            args.name
        ));
        return ExitCode::FAILURE;
    };
    let mut dir = Some(args.dir.clone());
    if let Err(code) = super::run::prepare_snapshot_dir(&mut dir) {
        return code;
    }
    let dir = dir.unwrap_or_default();
    let request = Request::Snapshot {
        dir: dir.clone(),
        then_stop: args.stop.then(|| Duration::from_secs(args.time)),
    };
    if let Err(e) = send_request(&listed.dir, pid, &request) {
        say(format!("{}: cannot signal process {pid}: {e}", args.name));
        return ExitCode::FAILURE;
    }
    let ok = match wait_for_snapshot(&listed.dir, &dir) {
        Some(Event::Snapshot {
            paused_ms,
            bytes_on_disk,
            ..
        }) => {
            println!(
                "{}: snapshot in {} (guest paused {paused_ms} ms, {} on disk)",
                args.name,
                dir.display(),
                human_bytes(bytes_on_disk)
            );
            true
        }
        Some(Event::SnapshotFailed { message, .. }) => {
            say(format!("{}: {message}", args.name));
            false
        }
        _ => {
            say(format!(
                "{}: no snapshot within {} s (did the instance exit? see ovf-run logs {})",
                args.name,
                SNAPSHOT_WAIT.as_secs(),
                args.name
            ));
            false
        }
    };
    if !ok {
        return ExitCode::FAILURE;
    }
    if args.stop {
        return super::instances::wait_and_reap(&listed, Duration::from_secs(args.time + 30));
    }
    ExitCode::SUCCESS
}

/// The instance's answer to a snapshot request for `dir`.
fn wait_for_snapshot(instance_dir: &Path, dir: &Path) -> Option<Event> {
    let want = dir.display().to_string();
    let start = Instant::now();
    while start.elapsed() < SNAPSHOT_WAIT {
        let events = read_events(&events_path(instance_dir));
        let answer = events.into_iter().rev().find(|r| match &r.event {
            Event::Snapshot { dir, .. } | Event::SnapshotFailed { dir, .. } => *dir == want,
            _ => false,
        });
        if let Some(r) = answer {
            return Some(r.event);
        }
        if !state::is_alive(instance_dir) {
            return None;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    None
}

/// Where `restore` starts from.
#[derive(Debug, Clone)]
pub struct RestoreSource {
    pub dir: PathBuf,
    pub package: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct RestoreArgs {
    /// The snapshot directory (ovf-run snapshot, --snapshot-when-ready).
    pub dir: PathBuf,
    /// The package, when it moved since the snapshot (it must be the same
    /// file: its identity is checked).
    #[arg(long, value_name = "FILE")]
    pub package: Option<PathBuf>,
    /// The run options a clone takes (the machine is the snapshot's).
    #[command(flatten)]
    pub run: CloneArgs,
}

/// The options of a run that a clone can take.
#[derive(Args, Debug, Clone)]
pub struct CloneArgs {
    #[arg(long)]
    pub no_verify: bool,
    #[command(flatten)]
    pub trust: super::verify::TrustArgs,
    #[arg(long, value_name = "FILE")]
    pub console_log: Option<PathBuf>,
    #[arg(long)]
    pub no_console: bool,
    #[arg(long)]
    pub no_reboot: bool,
    /// Publish guest ports (as for a run); the clone's own.
    #[arg(
        short = 'p',
        long = "publish",
        value_name = "[[ADDR:]HOST:]GUEST[/PROTO]"
    )]
    pub publish: Vec<devices::net_backend::publish::Publish>,
    /// How the first NIC is connected (default: as in the snapshot; a new
    /// passt for user-mode networking).
    #[arg(long, value_name = "user|tap=NAME|none")]
    pub net: Option<ovf_run::net::NetMode>,
    #[arg(long = "ready-when", value_name = "COND")]
    pub ready_when: Vec<ovf_run::ReadyWhen>,
    #[arg(long, value_name = "DURATION", default_value = "10m", value_parser = ovf_run::parse_duration)]
    pub ready_timeout: Duration,
    #[arg(long, value_name = "DURATION", value_parser = ovf_run::parse_duration)]
    pub timeout: Option<Duration>,
    #[arg(long, value_name = "PATH")]
    pub events: Option<PathBuf>,
    #[arg(short = 'd', long)]
    pub detach: bool,
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
    /// Snapshot the clone when ready (new or empty DIR).
    #[arg(long, value_name = "DIR")]
    pub snapshot_when_ready: Option<PathBuf>,
}

/// `restore DIR …` is a run of a clone.
pub fn restore_as_run(args: RestoreArgs) -> RunArgs {
    let c = args.run;
    let mut run = RunArgs {
        no_verify: c.no_verify,
        trust: c.trust,
        console_log: c.console_log,
        no_console: c.no_console,
        no_reboot: c.no_reboot,
        ready_when: c.ready_when,
        ready_timeout: c.ready_timeout,
        timeout: c.timeout,
        events: c.events,
        detach: c.detach,
        name: c.name,
        snapshot_when_ready: c.snapshot_when_ready,
        restore: Some(RestoreSource {
            dir: args.dir,
            package: args.package,
        }),
        ..RunArgs::default()
    };
    run.net.publish = c.publish;
    run.net.net = c.net;
    run
}

/// Plan and start a clone (held, as a run's instance is).
pub fn launch_clone(
    args: &RunArgs,
    from: &RestoreSource,
    detached_child: bool,
) -> Result<Instance, ExitCode> {
    let progress: Progress = Arc::new(|_, _, _| {});
    let opts = RestoreOptions {
        launch: options(args, true, detached_child, progress),
        package: from.package.clone(),
        trust: Trust {
            trust_pem: args.trust.trust.clone(),
            require_trusted: args.trust.require_trusted,
            use_cache: true,
        },
    };
    let plan = snapshots::restore(&from.dir, &opts).map_err(|e| {
        say(e.to_string());
        match &e {
            snapshots::RestoreError::Launch(l) => exit_code_for(l),
            _ => ExitCode::FAILURE,
        }
    })?;
    let missing = plan.missing_ports(&args.ready_when);
    if let Some(port) = missing.first() {
        say(format!(
            "--ready-when needs guest port {port} published: add -p {port} (a free host port) or -p HOST:{port}"
        ));
        return Err(ExitCode::from(EXIT_USAGE));
    }
    say(format!(
        "restoring {} from {} ({} vCPU(s), {} memory, changes discarded at exit)",
        plan.name,
        from.dir.display(),
        plan.machine.vcpus,
        human_bytes(plan.machine.memory_mib << 20),
    ));
    let inst = plan.start_held().map_err(|e| {
        say(e.to_string());
        exit_code_for(&e)
    })?;
    super::run::say_network(&inst);
    Ok(inst)
}
