//! `ovf-run APPLIANCE.ova`: the command line of the launch library —
//! parse the options, ask for the EULA on a terminal, print progress,
//! supervise the instance (ready conditions, time limits, signals) and turn
//! its exit reason into the exit code. With `-d`, the instance runs in the
//! background (see `detach.rs`).

use super::netargs::NetArgs;
use super::progress::ByteProgress;
use super::verify::TrustArgs;
use super::{human_bytes, say, EXIT_USAGE};
use clap::Args;
use ovf_run::duration::{format_duration, parse_duration};
use ovf_run::launch::{Firmware, KernelOptions, Overrides, Progress};
use ovf_run::{
    Appliance, Event, ExitReason, Instance, LaunchError, LaunchOptions, ReadyWhen, Trust,
};
use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long the guest gets to power off after the power button, when a
/// signal or a time limit stops it.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// `--firmware`: see [`Firmware`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum FirmwareArg {
    #[default]
    Auto,
    Direct,
    Bios,
}

#[derive(Args, Debug, Default, Clone)]
pub struct RunArgs {
    /// The appliance: an .ova, or an .ovf with its files beside it.
    pub package: Option<PathBuf>,
    /// Accept the package's license agreement (EULA) without being asked.
    #[arg(long)]
    pub accept_eula: bool,
    /// Skip manifest and signature verification (not recommended).
    #[arg(long)]
    pub no_verify: bool,
    #[command(flatten)]
    pub trust: TrustArgs,
    /// Use this deployment option instead of the package's default.
    #[arg(long, value_name = "NAME")]
    pub configuration: Option<String>,
    /// Run this virtual system of a multi-system package.
    #[arg(long, value_name = "ID")]
    pub system: Option<String>,
    /// Number of vCPUs (default: the descriptor's, at most the host's).
    #[arg(long)]
    pub cpus: Option<u32>,
    /// Guest memory in MiB (default: the descriptor's; at most the host's).
    #[arg(long, value_name = "MIB")]
    pub memory: Option<u64>,
    /// Keep the guest's disk changes in DIR and reuse them next time
    /// (locked: one instance per DIR).
    #[arg(long, value_name = "DIR")]
    pub persist: Option<PathBuf>,
    /// Boot this kernel instead of the one found in the disk.
    #[arg(long, value_name = "FILE")]
    pub kernel: Option<PathBuf>,
    /// With --kernel: the initramfs to use.
    #[arg(long, value_name = "FILE", requires = "kernel")]
    pub initrd: Option<PathBuf>,
    /// Add to the kernel command line (repeatable).
    #[arg(long, value_name = "ARGS")]
    pub append: Vec<String>,
    /// Replace the kernel command line.
    #[arg(long, value_name = "ARGS", conflicts_with = "append")]
    pub cmdline: Option<String>,
    /// How the guest starts: direct (its Linux kernel, found in the disk),
    /// bios (SeaBIOS runs the disk's own boot loader) or auto (direct when
    /// a kernel is found, else bios).
    #[arg(long, value_enum, default_value_t = FirmwareArg::Auto)]
    pub firmware: FirmwareArg,
    /// With --firmware bios/auto: the BIOS image (default: Debian's
    /// SeaBIOS for hardware-reduced machines, /usr/share/seabios/bios-microvm.bin).
    #[arg(long, value_name = "FILE")]
    pub bios: Option<PathBuf>,
    /// Also write the guest's console to this file.
    #[arg(long, value_name = "FILE")]
    pub console_log: Option<PathBuf>,
    /// Do not attach the terminal: no console on stdout, no input.
    #[arg(long)]
    pub no_console: bool,
    /// Exit when the guest reboots instead of starting it again (a triple
    /// fault is then a guest crash, exit 4).
    #[arg(long)]
    pub no_reboot: bool,
    #[command(flatten)]
    pub net: NetArgs,
    #[command(flatten)]
    pub props: super::propargs::PropArgs,
    /// Ready when this holds (repeatable; all must hold):
    /// console:TEXT (a console line contains TEXT), tcp:GUESTPORT (a
    /// connection through the published port stays open),
    /// http:GUESTPORT[/PATH] (a GET through the published port answers
    /// below 500). Without it, ready means the vCPUs run.
    #[arg(long = "ready-when", value_name = "COND")]
    pub ready_when: Vec<ReadyWhen>,
    /// Give up (exit 3, the instance killed) when not ready in this time,
    /// a number with ms, s, m or h.
    #[arg(long, value_name = "DURATION", default_value = "10m", value_parser = parse_duration)]
    pub ready_timeout: Duration,
    /// Stop the guest (power button, then kill) after this time and exit
    /// 124, like timeout(1).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub timeout: Option<Duration>,
    /// Append JSON Lines events here (schema: docs/events.md).
    #[arg(long, value_name = "PATH")]
    pub events: Option<PathBuf>,
    /// Run in the background: start, wait until ready, print the name and
    /// return (see ovf-run ps, stop, logs, port, wait).
    #[arg(short = 'd', long)]
    pub detach: bool,
    /// The instance name (default: generated).
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
    /// Write a snapshot into DIR (new or empty) the moment the ready
    /// conditions hold, then run on (clones start from it with ovf-run
    /// restore DIR).
    #[arg(long, value_name = "DIR")]
    pub snapshot_when_ready: Option<PathBuf>,
    /// `ovf-run restore DIR`: start a clone of this snapshot instead.
    #[arg(skip)]
    pub restore: Option<super::snapshot::RestoreSource>,
}

pub fn run(args: RunArgs) -> ExitCode {
    // --timeout and --ready-timeout count from here: the whole run.
    let start = Instant::now();
    let path = args.package.clone();
    if path.is_none() && args.restore.is_none() {
        say("name an appliance to run (ovf-run APPLIANCE.ova), or see ovf-run --help");
        return ExitCode::from(EXIT_USAGE);
    }
    if args.detach && std::env::var_os(super::detach::CHILD_ENV).is_none() {
        return super::detach::start_detached(&args);
    }
    let detached_child = std::env::var_os(super::detach::CHILD_ENV).is_some();
    let mut args = args;
    if let Err(code) = prepare_snapshot_dir(&mut args.snapshot_when_ready) {
        return code;
    }
    let launched = match (&args.restore, path) {
        (Some(from), _) => super::snapshot::launch_clone(&args, from, detached_child),
        (None, Some(path)) => launch(&args, path, detached_child),
        (None, None) => return ExitCode::from(EXIT_USAGE),
    };
    let mut inst = match launched {
        Ok(i) => i,
        Err(code) => return code,
    };
    if detached_child {
        super::detach::redirect_stderr(&inst);
    }
    super::signals::install();
    // The VM is built but its vCPUs wait (start_held): this thread goes
    // under its own seccomp filter before any guest code runs.
    if let Err(e) = thread_filter::install(thread_filter::Kind::Supervisor) {
        say(e.to_string());
        inst.set_cause(ExitReason::Error(e.to_string()));
        inst.kill();
        return ExitCode::FAILURE;
    }
    inst.release();
    let reason = supervise(&mut inst, &args, start);
    report_exit(&reason);
    ExitCode::from(reason.code().clamp(0, 255) as u8)
}

/// `--snapshot-when-ready DIR`: checked and made now, as an absolute
/// path, because the supervising thread may not create files later.
pub(super) fn prepare_snapshot_dir(dir: &mut Option<PathBuf>) -> Result<(), ExitCode> {
    let Some(d) = dir.as_mut() else {
        return Ok(());
    };
    let made = ovf_run::snapshots::check_dir(d)
        .map_err(|e| e.to_string())
        .and_then(|_| std::fs::create_dir_all(&*d).map_err(|e| format!("{}: {e}", d.display())))
        .and_then(|_| std::path::absolute(&*d).map_err(|e| format!("{}: {e}", d.display())));
    match made {
        Ok(abs) => {
            *d = abs;
            Ok(())
        }
        Err(e) => {
            say(format!("--snapshot-when-ready: {e}"));
            Err(ExitCode::from(EXIT_USAGE))
        }
    }
}

/// Write a snapshot and say how it went; false when it failed.
fn snapshot_now(inst: &Instance, dir: &std::path::Path) -> bool {
    match inst.snapshot(dir) {
        Ok(saved) => {
            say(format!(
                "snapshot of {} in {} (guest paused {} ms, {} on disk)",
                inst.name(),
                saved.dir.display(),
                saved.paused_for.as_millis(),
                human_bytes(saved.bytes_on_disk)
            ));
            true
        }
        Err(e) => {
            say(format!("{}: {e}", inst.name()));
            false
        }
    }
}

pub(super) fn exit_code_for(e: &LaunchError) -> ExitCode {
    match e {
        LaunchError::Trust { .. }
        | LaunchError::Properties { .. }
        | LaunchError::State(ovf_run::state::StateError::BadName(_)) => ExitCode::from(EXIT_USAGE),
        _ => ExitCode::FAILURE,
    }
}

/// Open, verify, EULA, plan and start; progress on stderr.
fn launch(args: &RunArgs, path: PathBuf, detached_child: bool) -> Result<Instance, ExitCode> {
    let fail = |e: LaunchError| {
        say(e.to_string());
        exit_code_for(&e)
    };
    let properties = args.props.assignments().map_err(|e| {
        say(e.to_string());
        ExitCode::from(EXIT_USAGE)
    })?;
    let mut app = Appliance::open(&path).map_err(fail)?;
    for w in app.warnings() {
        say(format!("warning: {w}"));
    }
    let bar = Arc::new(ByteProgress::new());
    let b = bar.clone();
    let progress: Progress = Arc::new(move |name, done, total| b.update(name, done, total));
    if args.no_verify {
        say("warning: --no-verify: the package's digests and signature are not checked");
    } else {
        say(format!("verifying {}", path.display()));
        let trust = Trust {
            trust_pem: args.trust.trust.clone(),
            require_trusted: args.trust.require_trusted,
            use_cache: true,
        };
        let report = app.verify(&trust, Some(progress.clone()));
        bar.finish();
        for w in report.map_err(fail)?.warnings {
            say(format!("warning: {w}"));
        }
    }
    let accept_eula = args.accept_eula || accept_eula_on_terminal(&app, detached_child)?;
    let mut opts = options(args, accept_eula, detached_child, progress);
    opts.properties = properties;
    let plan = app.plan(&opts);
    bar.finish();
    let plan = plan.map_err(fail)?;
    for n in &plan.machine.notes {
        say(n);
    }
    let missing = plan.missing_ports(&args.ready_when);
    if let Some(port) = missing.first() {
        say(format!(
            "--ready-when needs guest port {port} published: add -p {port} (a free host port) or -p HOST:{port}"
        ));
        return Err(ExitCode::from(EXIT_USAGE));
    }
    say(format!(
        "booting {} as {} with {} vCPU(s), {} memory, {} disk(s){}{}",
        plan.boot.description,
        plan.name,
        plan.machine.vcpus,
        human_bytes(plan.machine.memory_mib << 20),
        plan.disks.len(),
        match plan.cdroms.len() {
            0 => String::new(),
            n => format!(", {n} CD-ROM(s)"),
        },
        match &args.persist {
            Some(dir) => format!(", changes kept in {}", dir.display()),
            None => ", changes discarded at exit".into(),
        }
    ));
    let inst = plan.start_held().map_err(fail)?;
    say_network(&inst);
    Ok(inst)
}

/// The NICs and the published ports, once the instance has them.
pub(super) fn say_network(inst: &Instance) {
    for l in inst.network_lines() {
        say(l);
    }
    for p in inst.published() {
        say(format!(
            "published guest port {}/{} on {}",
            p.guest_port,
            p.protocol,
            std::net::SocketAddr::new(p.addr, p.host_port)
        ));
    }
}

pub(super) fn options(
    args: &RunArgs,
    accept_eula: bool,
    detached: bool,
    progress: Progress,
) -> LaunchOptions {
    LaunchOptions {
        name: match (&args.name, std::env::var(super::detach::NAME_ENV)) {
            (_, Ok(n)) if detached => Some(n),
            (n, _) => n.clone(),
        },
        skip_verify: args.no_verify,
        accept_eula,
        configuration: args.configuration.clone(),
        system: args.system.clone(),
        overrides: Overrides {
            cpus: args.cpus,
            memory_mib: args.memory,
        },
        persist: args.persist.clone(),
        kernel: KernelOptions {
            kernel: args.kernel.clone(),
            initrd: args.initrd.clone(),
            append: args.append.clone(),
            cmdline: args.cmdline.clone(),
            firmware: match args.firmware {
                FirmwareArg::Auto => Firmware::Auto,
                FirmwareArg::Direct => Firmware::Direct,
                FirmwareArg::Bios => Firmware::Bios,
            },
            bios: args.bios.clone(),
        },
        net: args.net.options(),
        console_stdio: !args.no_console && !detached,
        console_log: args.console_log.clone(),
        events: args.events.clone(),
        no_reboot: args.no_reboot,
        keep_state: detached,
        progress: Some(progress),
        ..LaunchOptions::default()
    }
}

/// Ask on a terminal; elsewhere the plan refuses with the way out.
fn accept_eula_on_terminal(app: &Appliance, detached: bool) -> Result<bool, ExitCode> {
    let eulas = app.eulas();
    if eulas.is_empty() || detached || !std::io::stdin().is_terminal() {
        return Ok(false);
    }
    let mut err = std::io::stderr();
    for (i, e) in eulas.iter().enumerate() {
        let _ = writeln!(
            err,
            "--- License agreement {} of {} ---\n{e}\n",
            i + 1,
            eulas.len()
        );
    }
    let _ = write!(
        err,
        "Accept the license agreement{}? [y/N] ",
        if eulas.len() > 1 { "s" } else { "" }
    );
    let _ = err.flush();
    let mut answer = String::new();
    let _ = std::io::stdin().lock().read_line(&mut answer);
    if matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes") {
        Ok(true)
    } else {
        say("license not accepted; nothing was started");
        Err(ExitCode::FAILURE)
    }
}

/// Wait for readiness, then for the end; map signals and time limits onto
/// the instance. Returns how it ended.
fn supervise(inst: &mut Instance, args: &RunArgs, start: Instant) -> ExitReason {
    let mut waiter = match inst.ready_waiter(&args.ready_when) {
        Ok(w) => Some(w),
        Err(e) => {
            say(e.to_string());
            inst.set_cause(ExitReason::Error(e.to_string()));
            return inst.kill();
        }
    };
    let mut seen_signals = 0;
    let mut kill_at: Option<Instant> = None;
    loop {
        if let Some(r) = inst.try_wait() {
            return r;
        }
        if let Some(w) = waiter.as_mut() {
            match w.poll(inst) {
                Ok(Some(after)) => {
                    say(format!(
                        "{} ready after {}",
                        inst.name(),
                        format_duration(after)
                    ));
                    waiter = None;
                    if let Some(dir) = &args.snapshot_when_ready {
                        if !snapshot_now(inst, dir) {
                            inst.set_cause(ExitReason::Error(
                                "--snapshot-when-ready: the snapshot failed".into(),
                            ));
                            return inst.kill();
                        }
                    }
                }
                Ok(None) if start.elapsed() >= args.ready_timeout && kill_at.is_none() => {
                    // A guest that never got ready gets no shutdown grace.
                    say(format!(
                        "not ready within {}: still waiting for {}; killing it",
                        format_duration(args.ready_timeout),
                        w.pending().join(", ")
                    ));
                    inst.set_cause(ExitReason::ReadyTimeout);
                    inst.emit(Event::Stopping {
                        why: "ready-timeout".into(),
                    });
                    return inst.kill();
                }
                Ok(None) => {}
                Err(e) => say(e.to_string()),
            }
        }
        let (count, sig) = super::signals::received();
        if count > seen_signals {
            seen_signals = count;
            match super::detach::stop_request(inst) {
                Some(super::detach::Request::Kill) => return inst.kill(),
                Some(super::detach::Request::Snapshot { dir, then_stop }) => {
                    if snapshot_now(inst, &dir) && kill_at.is_none() {
                        if let Some(grace) = then_stop {
                            inst.request_stop();
                            kill_at = Some(Instant::now() + grace);
                        }
                    }
                }
                Some(super::detach::Request::Stop(grace)) if kill_at.is_none() => {
                    inst.request_stop();
                    kill_at = Some(Instant::now() + grace);
                }
                _ if kill_at.is_some() => return inst.kill(),
                _ => kill_at = Some(stop(inst, ExitReason::Signal(sig))),
            }
        }
        if let Some(t) = args.timeout {
            if start.elapsed() >= t && kill_at.is_none() {
                say(format!(
                    "--timeout {} reached; stopping the guest",
                    format_duration(t)
                ));
                kill_at = Some(stop(inst, ExitReason::Timeout));
            }
        }
        if kill_at.is_some_and(|k| Instant::now() >= k) {
            say(format!(
                "the guest did not power off within {STOP_GRACE:?}; killing it"
            ));
            return inst.kill();
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Press the power button for `cause`; returns when to kill.
fn stop(inst: &mut Instance, cause: ExitReason) -> Instant {
    inst.set_cause(cause.clone());
    inst.emit(Event::Stopping {
        why: cause.kind().into(),
    });
    inst.request_power_button();
    Instant::now() + STOP_GRACE
}

fn report_exit(reason: &ExitReason) {
    match reason {
        ExitReason::Poweroff => {}
        ExitReason::Reset => say("the guest rebooted (--no-reboot)"),
        ExitReason::Signal(n) => say(format!("stopped on signal {n}")),
        ExitReason::Killed => say("killed before the guest powered off"),
        other => say(format!("exited: {other}")),
    }
}
