//! A running appliance: its VM runs on its own thread (which also starts
//! passt, so passt's parent-death signal follows the VM), its state lives
//! in an instance directory, and the handle waits for readiness, hands out
//! published addresses, and stops, kills or waits for the VM. Dropping an
//! [`Instance`] kills the VM if it still runs and removes what it made
//! (passt, the overlay, the initrd copy, the instance directory unless
//! kept).

use crate::events::{events_path, Event, EventLog, Record};
use crate::launch::{LaunchError, LaunchPlan};
use crate::net;
use crate::ready::{http_status, tcp_ready, ConsoleWatch, ReadyWhen};
use crate::snapshots::{Saved, SnapshotError};
use crate::state::{self, Info, InstanceDir};
use devices::net_backend::publish::{Protocol, Publish};
use devices::virtio::net::format_mac;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use vmm::{ConsoleConfig, ExitStatus, VmConfig, VmControl, VmmError};

/// How an instance ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExitReason {
    /// The guest powered off.
    Poweroff,
    /// The guest rebooted and `no_reboot` was set.
    Reset,
    /// Triple fault with `no_reboot`, KVM internal error, failed entry.
    GuestCrash(String),
    /// Killed without the guest's consent ([`Instance::kill`], or the stop
    /// grace period ran out).
    Killed,
    /// The owner's overall time limit ran out.
    Timeout,
    /// The ready conditions did not hold in time.
    ReadyTimeout,
    /// The owner stopped it on signal N.
    Signal(i32),
    /// The monitor failed.
    Error(String),
}

impl ExitReason {
    /// The process exit code the CLI uses: 0 poweroff/reset, 1 error,
    /// 3 ready timeout, 4 guest crash, 124 timeout, 128+N signal N,
    /// 137 killed.
    pub fn code(&self) -> i32 {
        match self {
            ExitReason::Poweroff | ExitReason::Reset => 0,
            ExitReason::Error(_) => 1,
            ExitReason::ReadyTimeout => 3,
            ExitReason::GuestCrash(_) => 4,
            ExitReason::Timeout => 124,
            ExitReason::Signal(n) => 128 + n,
            ExitReason::Killed => 137,
        }
    }

    /// The `reason` of the `exited` event.
    pub fn kind(&self) -> &'static str {
        match self {
            ExitReason::Poweroff => "poweroff",
            ExitReason::Reset => "reset",
            ExitReason::GuestCrash(_) => "guest-crash",
            ExitReason::Killed => "killed",
            ExitReason::Timeout => "timeout",
            ExitReason::ReadyTimeout => "ready-timeout",
            ExitReason::Signal(_) => "signal",
            ExitReason::Error(_) => "error",
        }
    }

    pub fn message(&self) -> Option<String> {
        match self {
            ExitReason::GuestCrash(m) | ExitReason::Error(m) => Some(m.clone()),
            ExitReason::Signal(n) => Some(format!("signal {n}")),
            _ => None,
        }
    }
}

impl std::fmt::Display for ExitReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.message() {
            Some(m) => write!(f, "{}: {m}", self.kind()),
            None => f.write_str(self.kind()),
        }
    }
}

/// Why [`Instance::wait_ready`] returned without the conditions holding.
#[derive(Debug, thiserror::Error)]
pub enum ReadyError {
    #[error("not ready after {}: still waiting for {}", crate::duration::format_duration(*.after), .pending.join(", "))]
    Timeout {
        after: Duration,
        pending: Vec<String>,
    },
    #[error("the instance exited before it was ready ({0})")]
    Exited(ExitReason),
    #[error("ready condition {0}: guest port {1} is not published (add -p {1})")]
    NotPublished(String, u16),
}

type VmResult = Result<ExitStatus, VmmError>;

/// A running (or finished) appliance.
pub struct Instance {
    name: String,
    dir: Option<InstanceDir>,
    console: PathBuf,
    control: VmControl,
    thread: Option<JoinHandle<VmResult>>,
    events: EventLog,
    published: Vec<Publish>,
    lines: Vec<String>,
    exit: Option<ExitReason>,
    cause: Option<ExitReason>,
    _persist_lock: Option<std::fs::File>,
    snapshot: crate::snapshots::Source,
}

/// Start `plan`: make the instance directory, choose free host ports,
/// start the VM thread (NICs first) and return once the VM is starting.
pub(crate) fn start(plan: LaunchPlan, held: bool) -> Result<Instance, LaunchError> {
    let LaunchPlan {
        name,
        package,
        machine,
        disks,
        boot,
        environment: _,
        cdroms,
        smbios,
        persist_lock,
        options,
        mut snapshot,
    } = plan;
    let restore_from = snapshot.restore.take();
    let restored = restore_from.is_some();
    let root = match &options.state_root {
        Some(r) => r.clone(),
        None => state::state_root()?,
    };
    let mut dir = InstanceDir::create(&root, &name)?;
    dir.keep(options.keep_state);
    let started = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    dir.write_info(&Info {
        name: name.clone(),
        package: package.display().to_string(),
        pid: std::process::id(),
        started,
    })?;
    let events = EventLog::new(&name);
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| LaunchError::Io { path, source }
    };
    let ev_path = events_path(dir.path());
    events.add_file(&ev_path).map_err(io(&ev_path))?;
    if let Some(p) = &options.events {
        events.add_file(p).map_err(io(p))?;
    }
    events.emit(Event::Verified {
        package: package.display().to_string(),
        skipped: options.skip_verify,
    });
    let console = match &options.console_log {
        Some(p) => {
            let _ = std::os::unix::fs::symlink(
                std::path::absolute(p).unwrap_or(p.clone()),
                dir.path().join("console.log"),
            );
            p.clone()
        }
        None => dir.path().join("console.log"),
    };
    let mut publish = machine.publish.clone();
    net::choose_host_ports(&mut publish)?;

    let mut config = VmConfig::new(boot.kernel);
    config.vcpus = machine.vcpus;
    config.memory_mib = machine.memory_mib;
    config.initrd = boot.initrd_path;
    config.cmdline = boot.cmdline;
    config.disks = disks;
    config.cdroms = cdroms;
    config.smbios = smbios;
    config.no_reboot = options.no_reboot;
    config.console = ConsoleConfig {
        stdio: options.console_stdio,
        log: Some(console.clone()),
    };
    let initrd_file = boot.initrd_file;
    let kernel_file = boot.kernel_file;
    let control = VmControl::new();
    if held {
        control.hold();
    }
    let (tx, rx) = mpsc::channel::<Result<Vec<String>, net::NetError>>();
    let nic_plans = machine.nics.clone();
    let ports = publish.clone();
    let vm_control = control.clone();
    let thread = std::thread::Builder::new()
        .name(format!("vm-{name}"))
        .spawn(move || -> VmResult {
            let _initrd = initrd_file;
            let _kernel = kernel_file;
            // passt starts here: its parent-death signal follows this thread.
            match net::start(&nic_plans, &ports) {
                Ok((nics, lines)) => {
                    config.nics = nics;
                    let _ = tx.send(Ok(lines));
                }
                Err(e) => {
                    let _ = tx.send(Err(e));
                    return Ok(ExitStatus::Stopped);
                }
            }
            match restore_from {
                Some(from) => vmm::restore_controlled(config, from, &vm_control),
                None => vmm::run_controlled(config, &vm_control),
            }
        })
        .map_err(LaunchError::Thread)?;
    let lines = match rx.recv() {
        Ok(Ok(lines)) => lines,
        Ok(Err(e)) => {
            let _ = thread.join();
            return Err(e.into());
        }
        Err(_) => {
            let r = thread.join();
            return Err(LaunchError::Thread(std::io::Error::other(format!(
                "the VM thread ended while starting the network: {r:?}"
            ))));
        }
    };
    for p in &publish {
        events.emit(Event::Published {
            guest_port: p.guest_port,
            protocol: p.protocol.to_string(),
            host: SocketAddr::new(p.addr, p.host_port).to_string(),
        });
    }
    events.emit(Event::Booting {
        kernel: if restored {
            format!(
                "{} (restored from a snapshot, not booted)",
                boot.description
            )
        } else {
            boot.description
        },
        cpus: machine.vcpus as u32,
        memory_mib: machine.memory_mib,
        mac: machine.nics.iter().map(|n| format_mac(&n.mac)).collect(),
    });
    Ok(Instance {
        name,
        dir: Some(dir),
        console,
        control,
        thread: Some(thread),
        events,
        published: publish,
        lines,
        exit: None,
        cause: None,
        _persist_lock: persist_lock,
        snapshot,
    })
}

impl Instance {
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The instance directory (events, console, info).
    pub fn dir(&self) -> Option<&Path> {
        self.dir.as_ref().map(|d| d.path())
    }

    /// Progress lines about the network (NICs, published URLs).
    pub fn network_lines(&self) -> &[String] {
        &self.lines
    }

    /// Every published port, host ports chosen.
    pub fn published(&self) -> &[Publish] {
        &self.published
    }

    /// Where the guest's TCP `guest_port` is reachable on the host.
    pub fn host_addr(&self, guest_port: u16) -> Option<SocketAddr> {
        self.published
            .iter()
            .find(|p| p.guest_port == guest_port && p.protocol == Protocol::Tcp)
            .map(|p| SocketAddr::new(p.addr, p.host_port))
    }

    /// The serial console's log file.
    pub fn console_path(&self) -> &Path {
        &self.console
    }

    /// Everything the guest printed on its console so far.
    pub fn console(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(&self.console).unwrap_or_default()).into_owned()
    }

    /// The events so far.
    pub fn events(&self) -> Vec<Record> {
        self.events.records()
    }

    /// Record an event of the caller's (e.g. `stopping` for its own reason).
    pub fn emit(&self, event: Event) {
        self.events.emit(event)
    }

    /// Whether the vCPUs have been started (and the VM not ended).
    pub fn is_running(&self) -> bool {
        self.control.is_running()
    }

    /// Wait until every condition holds (none: until the vCPUs run).
    pub fn wait_ready(
        &mut self,
        conditions: &[ReadyWhen],
        timeout: Duration,
    ) -> Result<Duration, ReadyError> {
        let mut waiter = self.ready_waiter(conditions)?;
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(after) = waiter.poll(self)? {
                return Ok(after);
            }
            if Instant::now() >= deadline {
                return Err(ReadyError::Timeout {
                    after: timeout,
                    pending: waiter.pending(),
                });
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// A non-blocking ready check, for callers with their own loop.
    pub fn ready_waiter(&self, conditions: &[ReadyWhen]) -> Result<ReadyWaiter, ReadyError> {
        for c in conditions {
            if let Some(port) = c.guest_port() {
                if self.host_addr(port).is_none() {
                    return Err(ReadyError::NotPublished(c.to_string(), port));
                }
            }
        }
        Ok(ReadyWaiter {
            pending: conditions
                .iter()
                .map(|c| (c.clone(), ConsoleWatch::default()))
                .collect(),
            all: conditions.to_vec(),
        })
    }

    /// Pause the VM, write a snapshot of it into `dir` (new or empty; see
    /// [`crate::snapshots`]) and let it run on. Clones start from it with
    /// [`crate::snapshots::restore`].
    pub fn snapshot(&self, dir: &Path) -> Result<Saved, SnapshotError> {
        let result = crate::snapshots::take(&self.control, &self.snapshot, dir);
        self.events.emit(match &result {
            Ok(saved) => Event::Snapshot {
                dir: saved.dir.display().to_string(),
                paused_ms: saved.paused_for.as_millis() as u64,
                bytes_on_disk: saved.bytes_on_disk,
            },
            Err(e) => Event::SnapshotFailed {
                dir: dir.display().to_string(),
                message: e.to_string(),
            },
        });
        result
    }

    /// Press the power button and wait up to `grace` for the guest to
    /// power off; then kill it. Returns how it ended.
    pub fn stop(&mut self, grace: Duration) -> ExitReason {
        self.stop_because(grace, None)
    }

    /// [`Instance::stop`], recording `cause` (timeout, ready-timeout,
    /// signal) as the exit reason.
    pub fn stop_because(&mut self, grace: Duration, cause: Option<ExitReason>) -> ExitReason {
        if self.exit.is_none() {
            if cause.is_some() {
                self.cause = cause;
            }
            let why = self.cause.as_ref().map(|c| c.kind()).unwrap_or("stop");
            self.events.emit(Event::Stopping { why: why.into() });
            self.control.power_button();
            let deadline = Instant::now() + grace;
            while !self.finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            if !self.finished() {
                tracing::warn!(
                    "{}: the guest did not power off within {grace:?}; stopping it",
                    self.name
                );
                if self.cause.is_none() {
                    self.cause = Some(ExitReason::Killed);
                }
                self.control.kill();
            }
        }
        self.wait()
    }

    /// Let the vCPUs of an instance started with
    /// [`crate::LaunchPlan::start_held`] run (nothing otherwise).
    pub fn release(&self) {
        self.control.release();
    }

    /// Press the power button and return at once (a `stopping` event).
    pub fn request_stop(&self) {
        self.events.emit(Event::Stopping { why: "stop".into() });
        self.control.power_button();
    }

    /// Press the power button, no event (the caller writes its own).
    pub fn request_power_button(&self) {
        self.control.power_button();
    }

    /// Stop the VM now, without asking the guest.
    pub fn kill(&mut self) -> ExitReason {
        if self.exit.is_none() && self.cause.is_none() {
            self.cause = Some(ExitReason::Killed);
        }
        self.control.kill();
        self.wait()
    }

    /// Set the reason reported if the VM ends because of the caller.
    pub fn set_cause(&mut self, cause: ExitReason) {
        self.cause = Some(cause);
    }

    fn finished(&self) -> bool {
        self.thread.as_ref().is_none_or(|t| t.is_finished())
    }

    /// The exit reason if the VM has ended, without blocking.
    pub fn try_wait(&mut self) -> Option<ExitReason> {
        if self.finished() {
            Some(self.wait())
        } else {
            None
        }
    }

    /// Block until the VM ends; the `exited` event is written once.
    pub fn wait(&mut self) -> ExitReason {
        if let Some(e) = &self.exit {
            return e.clone();
        }
        let own = match self.thread.take().map(|t| t.join()) {
            Some(Ok(Ok(ExitStatus::Poweroff))) => ExitReason::Poweroff,
            Some(Ok(Ok(ExitStatus::Reboot))) => ExitReason::Reset,
            Some(Ok(Ok(ExitStatus::Crashed(m)))) => ExitReason::GuestCrash(m),
            Some(Ok(Ok(ExitStatus::Stopped))) | None => ExitReason::Killed,
            Some(Ok(Err(e))) => ExitReason::Error(e.to_string()),
            Some(Err(_)) => ExitReason::Error("the VM thread panicked".into()),
        };
        // The caller's cause wins unless the guest crashed or the monitor
        // failed; a guest that powered off on a plain stop() is "poweroff".
        let reason = match (&own, self.cause.take()) {
            (ExitReason::GuestCrash(_) | ExitReason::Error(_), _) => own,
            (_, Some(ExitReason::Killed)) => ExitReason::Killed,
            (_, Some(cause)) => cause,
            (_, None) => own,
        };
        self.events.emit(Event::Exited {
            code: reason.code(),
            reason: reason.kind().into(),
            message: reason.message(),
        });
        self.exit = Some(reason.clone());
        reason
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        if self.exit.is_none() {
            if !self.finished() {
                self.cause.get_or_insert(ExitReason::Killed);
                self.control.kill();
            }
            self.wait();
        }
    }
}

/// Follows ready conditions between polls.
pub struct ReadyWaiter {
    pending: Vec<(ReadyWhen, ConsoleWatch)>,
    all: Vec<ReadyWhen>,
}

impl ReadyWaiter {
    /// `Some(after)` once every condition held (the `ready` event is
    /// written then); an error if the instance ended first.
    pub fn poll(&mut self, inst: &mut Instance) -> Result<Option<Duration>, ReadyError> {
        if let Some(r) = inst.try_wait() {
            return Err(ReadyError::Exited(r));
        }
        let console = inst.console.clone();
        let running = inst.control.boots() > 0;
        self.pending.retain_mut(|(c, watch)| {
            let met = match c {
                ReadyWhen::Console(text) => watch.poll(&console, text),
                ReadyWhen::Tcp(p) => running && inst.host_addr(*p).is_some_and(tcp_ready),
                ReadyWhen::Http { port, path } => {
                    running
                        && inst
                            .host_addr(*port)
                            .and_then(|a| http_status(a, path))
                            .is_some_and(|s| s < 500)
                }
            };
            !met
        });
        if !self.pending.is_empty() || !running {
            return Ok(None);
        }
        let after = inst.events.elapsed_ms();
        inst.events.emit(Event::Ready {
            after_ms: after,
            conditions: self.all.iter().map(|c| c.to_string()).collect(),
        });
        Ok(Some(Duration::from_millis(after)))
    }

    /// The conditions not met yet.
    pub fn pending(&self) -> Vec<String> {
        let p: Vec<String> = self.pending.iter().map(|(c, _)| c.to_string()).collect();
        if p.is_empty() {
            vec!["the vCPUs to start".into()]
        } else {
            p
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_and_reasons() {
        let cases = [
            (ExitReason::Poweroff, 0, "poweroff"),
            (ExitReason::Reset, 0, "reset"),
            (ExitReason::Error("x".into()), 1, "error"),
            (ExitReason::ReadyTimeout, 3, "ready-timeout"),
            (
                ExitReason::GuestCrash("triple fault".into()),
                4,
                "guest-crash",
            ),
            (ExitReason::Timeout, 124, "timeout"),
            (ExitReason::Signal(15), 143, "signal"),
            (ExitReason::Signal(2), 130, "signal"),
            (ExitReason::Killed, 137, "killed"),
        ];
        for (r, code, kind) in cases {
            assert_eq!((r.code(), r.kind()), (code, kind), "{r:?}");
        }
        assert_eq!(
            ExitReason::GuestCrash("triple fault".into()).to_string(),
            "guest-crash: triple fault"
        );
        assert_eq!(ExitReason::Poweroff.to_string(), "poweroff");
    }
}
