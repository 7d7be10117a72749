//! Commands on detached instances: `ps`, `stop`, `kill`, `logs`, `port`,
//! `wait`. They read the instance directories (see `ovf_run::state`); a
//! directory whose process is gone is cleaned by `ps`.

use super::detach::{send_request, Request};
use super::{say, EXIT_USAGE};
use clap::Args;
use ovf_run::events::{events_path, read_events, Record};
use ovf_run::state::{self, state_root, Listed, StateError};
use ovf_run::Event;
use std::io::{Read, Seek, Write};
use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

#[derive(Args, Debug)]
pub struct PsArgs {
    /// Print a JSON array.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct StopArgs {
    /// Seconds the guest gets to power off after the power button before
    /// it is killed.
    #[arg(long, short = 't', value_name = "SECONDS", default_value_t = 10)]
    pub time: u64,
    #[arg(required = true, value_name = "NAME")]
    pub names: Vec<String>,
}

#[derive(Args, Debug)]
pub struct NamesArgs {
    #[arg(required = true, value_name = "NAME")]
    pub names: Vec<String>,
}

#[derive(Args, Debug)]
pub struct LogsArgs {
    /// Keep printing what the guest prints until the instance exits.
    #[arg(short, long)]
    pub follow: bool,
    pub name: String,
}

#[derive(Args, Debug)]
pub struct PortArgs {
    pub name: String,
    /// Only this guest port ("80" or "80/tcp").
    pub guest_port: Option<String>,
}

#[derive(Args, Debug)]
pub struct NameArgs {
    pub name: String,
}

fn root_or_fail() -> Result<std::path::PathBuf, ExitCode> {
    state_root().map_err(|e| {
        say(e.to_string());
        ExitCode::FAILURE
    })
}

/// A running instance by name; unknown names are usage errors.
fn find_live(name: &str) -> Result<Listed, ExitCode> {
    let root = root_or_fail()?;
    match state::find(&root, name) {
        Ok(l) => Ok(l),
        Err(e @ (StateError::Unknown(_) | StateError::BadName(_))) => {
            say(e.to_string());
            Err(ExitCode::from(EXIT_USAGE))
        }
        Err(e) => {
            say(e.to_string());
            Err(ExitCode::FAILURE)
        }
    }
}

fn published(events: &[Record]) -> Vec<(u16, String, String)> {
    events
        .iter()
        .filter_map(|r| match &r.event {
            Event::Published {
                guest_port,
                protocol,
                host,
            } => Some((*guest_port, protocol.clone(), host.clone())),
            _ => None,
        })
        .collect()
}

fn state_of(events: &[Record]) -> &'static str {
    let mut s = "starting";
    for r in events {
        s = match r.event {
            Event::Ready { .. } => "ready",
            Event::Stopping { .. } => "stopping",
            Event::Exited { .. } => "exited",
            _ => s,
        };
    }
    s
}

fn exited(events: &[Record]) -> Option<(i32, String, Option<String>)> {
    events.iter().rev().find_map(|r| match &r.event {
        Event::Exited {
            code,
            reason,
            message,
        } => Some((*code, reason.clone(), message.clone())),
        _ => None,
    })
}

pub fn ps(args: PsArgs) -> ExitCode {
    let root = match root_or_fail() {
        Ok(r) => r,
        Err(c) => return c,
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    let mut rows = Vec::new();
    for l in state::list(&root) {
        if !l.alive {
            // Its process is gone: stale (or exited and never waited for).
            let _ = std::fs::remove_dir_all(&l.dir);
            continue;
        }
        let events = read_events(&events_path(&l.dir));
        let info = l.info.clone();
        rows.push(serde_json::json!({
            "name": l.name,
            "package": info.as_ref().map(|i| i.package.clone()),
            "state": state_of(&events),
            "uptime_s": info.as_ref().map(|i| now.saturating_sub(i.started)),
            "pid": info.as_ref().map(|i| i.pid),
            "ports": published(&events).iter().map(|(g, p, h)| serde_json::json!({
                "guest_port": g, "protocol": p, "host": h
            })).collect::<Vec<_>>(),
        }));
    }
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&rows).unwrap_or_default()
        );
        return ExitCode::SUCCESS;
    }
    println!(
        "{:<20} {:<9} {:>8} {:>8}  {:<30} PACKAGE",
        "NAME", "STATE", "UPTIME", "PID", "PORTS"
    );
    for r in rows {
        let ports: Vec<String> = r["ports"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|p| {
                format!(
                    "{}->{}/{}",
                    p["host"].as_str().unwrap_or(""),
                    p["guest_port"],
                    p["protocol"].as_str().unwrap_or("")
                )
            })
            .collect();
        println!(
            "{:<20} {:<9} {:>7}s {:>8}  {:<30} {}",
            r["name"].as_str().unwrap_or(""),
            r["state"].as_str().unwrap_or(""),
            r["uptime_s"],
            r["pid"],
            ports.join(","),
            r["package"].as_str().unwrap_or("")
        );
    }
    ExitCode::SUCCESS
}

/// Wait until the instance's process let go of its lock.
fn wait_gone(dir: &Path, limit: Option<Duration>) -> bool {
    let start = Instant::now();
    while state::is_alive(dir) {
        if limit.is_some_and(|l| start.elapsed() > l) {
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    true
}

/// Print how it ended, remove its directory; returns the exit code.
fn reap(l: &Listed) -> i32 {
    let events = read_events(&events_path(&l.dir));
    let code = match exited(&events) {
        Some((code, reason, message)) => {
            let msg = message.map(|m| format!(": {m}")).unwrap_or_default();
            println!("{}: exited with {code} ({reason}{msg})", l.name);
            code
        }
        None => {
            println!("{}: its process died without an exit record", l.name);
            1
        }
    };
    let _ = std::fs::remove_dir_all(&l.dir);
    code
}

fn signal_all(names: &[String], request: Request) -> ExitCode {
    let mut targets = Vec::new();
    for name in names {
        match find_live(name) {
            Ok(l) => targets.push(l),
            Err(c) => return c,
        }
    }
    let mut ok = true;
    for l in &targets {
        if !l.alive {
            reap(l);
            continue;
        }
        let Some(info) = &l.info else {
            say(format!("{}: no info.json; cannot tell its process", l.name));
            ok = false;
            continue;
        };
        if let Err(e) = send_request(&l.dir, info.pid, &request) {
            say(format!(
                "{}: cannot signal process {}: {e}",
                l.name, info.pid
            ));
            ok = false;
        }
    }
    let limit = match &request {
        Request::Stop(grace) => *grace + Duration::from_secs(30),
        Request::Kill => Duration::from_secs(30),
        Request::Snapshot { .. } => Duration::from_secs(600),
    };
    for l in targets.iter().filter(|l| l.alive) {
        if wait_gone(&l.dir, Some(limit)) {
            reap(l);
        } else {
            say(format!(
                "{}: still running {} s later",
                l.name,
                limit.as_secs()
            ));
            ok = false;
        }
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// Wait up to `limit` for an instance to exit, then print how it ended.
pub(super) fn wait_and_reap(l: &Listed, limit: Duration) -> ExitCode {
    if !wait_gone(&l.dir, Some(limit)) {
        say(format!(
            "{}: still running {} s later",
            l.name,
            limit.as_secs()
        ));
        return ExitCode::FAILURE;
    }
    ExitCode::from(reap(l).clamp(0, 255) as u8)
}

pub fn stop(args: StopArgs) -> ExitCode {
    signal_all(&args.names, Request::Stop(Duration::from_secs(args.time)))
}

pub fn kill(args: NamesArgs) -> ExitCode {
    signal_all(&args.names, Request::Kill)
}

pub fn wait(args: NameArgs) -> ExitCode {
    let l = match find_live(&args.name) {
        Ok(l) => l,
        Err(c) => return c,
    };
    wait_gone(&l.dir, None);
    ExitCode::from(reap(&l).clamp(0, 255) as u8)
}

pub fn port(args: PortArgs) -> ExitCode {
    let l = match find_live(&args.name) {
        Ok(l) => l,
        Err(c) => return c,
    };
    let want = match &args.guest_port {
        None => None,
        Some(s) => {
            let (port, proto) = s.split_once('/').unwrap_or((s, "tcp"));
            match port.parse::<u16>() {
                Ok(p) if p > 0 && matches!(proto, "tcp" | "udp") => Some((p, proto.to_string())),
                _ => {
                    say(format!("{s:?} is not a guest port like 80 or 53/udp"));
                    return ExitCode::from(EXIT_USAGE);
                }
            }
        }
    };
    let ports = published(&read_events(&events_path(&l.dir)));
    let mut found = false;
    for (g, p, h) in ports {
        match &want {
            Some((wp, wproto)) if (*wp, wproto.as_str()) == (g, p.as_str()) => println!("{h}"),
            Some(_) => continue,
            None => println!("{g}/{p} -> {h}"),
        }
        found = true;
    }
    if !found {
        say(match want {
            Some((p, proto)) => format!("{}: guest port {p}/{proto} is not published", args.name),
            None => format!("{}: no published ports", args.name),
        });
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

pub fn logs(args: LogsArgs) -> ExitCode {
    let l = match find_live(&args.name) {
        Ok(l) => l,
        Err(c) => return c,
    };
    let path = l.dir.join("console.log");
    let mut f = match std::fs::File::open(&path) {
        Ok(f) => f,
        Err(e) => {
            say(format!("{}: {e}", path.display()));
            return ExitCode::FAILURE;
        }
    };
    let mut out = std::io::stdout();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match f.read(&mut buf) {
            Ok(0) => {
                if !args.follow || !state::is_alive(&l.dir) {
                    break;
                }
                let _ = out.flush();
                std::thread::sleep(Duration::from_millis(200));
                let _ = f.stream_position();
            }
            Ok(n) => {
                if out.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
            Err(_) => break,
        }
    }
    let _ = out.flush();
    ExitCode::SUCCESS
}
