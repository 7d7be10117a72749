//! `ovf-run -d`: the instance runs in a background copy of this process.
//!
//! The foreground process starts the copy (same arguments, the name and
//! a marker in the environment, a new session, stderr in a file), waits
//! until the copy's events say `ready` (print the name, exit 0) or the copy
//! exits (print why, exit with its code, remove what it left). The copy
//! runs the instance like a foreground run, with its state kept in the
//! instance directory for `ps`, `stop`, `logs`, `port` and `wait`.
//!
//! `ovf-run stop`, `kill` and `snapshot` write a `request` file in the
//! instance directory (`stop SECONDS`, `kill`, or `snapshot` / `snapshot
//! SECONDS` with the directory on the second line) and send SIGTERM; the
//! copy reads the file when the signal comes. A bare SIGTERM is a signal
//! stop (143).

use super::run::RunArgs;
use super::say;
use ovf_run::events::{events_path, read_events};
use ovf_run::state::{self, state_root};
use ovf_run::{Event, Instance};
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::Duration;

/// Set in the background copy's environment.
pub const CHILD_ENV: &str = "OVF_RUN_DETACHED_CHILD";
/// The instance name the background copy must use.
pub const NAME_ENV: &str = "OVF_RUN_INSTANCE_NAME";

/// What `ovf-run stop`/`kill`/`snapshot` asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    Stop(Duration),
    Kill,
    /// Write a snapshot into the (existing, empty, absolute) directory;
    /// then stop with this grace period if one is given.
    Snapshot {
        dir: PathBuf,
        then_stop: Option<Duration>,
    },
}

/// `stop 30` / `kill` / `snapshot\nDIR` / `snapshot 30\nDIR`.
pub fn parse_request(text: &str) -> Option<Request> {
    let (first, rest) = text.split_once('\n').unwrap_or((text, ""));
    let mut w = first.split_whitespace();
    let secs = |s: &str| s.parse().ok().map(Duration::from_secs);
    match (w.next()?, w.next(), w.next()) {
        ("kill", None, None) => Some(Request::Kill),
        ("stop", Some(s), None) => Some(Request::Stop(secs(s)?)),
        ("snapshot", grace, None) => {
            let dir = PathBuf::from(rest.strip_suffix('\n').unwrap_or(rest));
            if !dir.is_absolute() {
                return None;
            }
            let then_stop = match grace {
                Some(s) => Some(secs(s)?),
                None => None,
            };
            Some(Request::Snapshot { dir, then_stop })
        }
        _ => None,
    }
}

fn request_text(request: &Request) -> String {
    match request {
        Request::Kill => "kill".to_string(),
        Request::Stop(d) => format!("stop {}", d.as_secs()),
        Request::Snapshot { dir, then_stop } => match then_stop {
            Some(d) => format!("snapshot {}\n{}", d.as_secs(), dir.display()),
            None => format!("snapshot\n{}", dir.display()),
        },
    }
}

/// The request left for this instance, taken (read and removed).
pub fn stop_request(inst: &Instance) -> Option<Request> {
    let path = inst.dir()?.join("request");
    let text = std::fs::read_to_string(&path).ok()?;
    let _ = std::fs::remove_file(&path);
    parse_request(&text)
}

/// Ask a running instance to stop or die: write the request, signal it.
pub fn send_request(dir: &Path, pid: u32, request: &Request) -> std::io::Result<()> {
    let text = request_text(request);
    let tmp = dir.join("request.tmp");
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, dir.join("request"))?;
    // SAFETY: kill(2) on the pid the instance recorded for itself.
    if unsafe { libc::kill(pid as i32, libc::SIGTERM) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// From now on, the background copy's messages go to its directory.
pub fn redirect_stderr(inst: &Instance) {
    let Some(dir) = inst.dir() else { return };
    if let Ok(f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("ovf-run.log"))
    {
        // SAFETY: dup2 onto our own stderr.
        unsafe { libc::dup2(f.as_raw_fd(), 2) };
    }
}

/// The foreground half of `-d`.
pub fn start_detached(args: &RunArgs) -> ExitCode {
    let root = match state_root() {
        Ok(r) => r,
        Err(e) => {
            say(e.to_string());
            return ExitCode::FAILURE;
        }
    };
    let name = args.name.clone().unwrap_or_else(state::generate_name);
    if let Err(e) = state::check_name(&name) {
        say(e.to_string());
        return ExitCode::from(super::EXIT_USAGE);
    }
    if state::is_alive(&root.join(&name)) {
        say(state::StateError::Duplicate(name).to_string());
        return ExitCode::FAILURE;
    }
    if let Err(e) = std::fs::create_dir_all(&root) {
        say(format!("{}: {e}", root.display()));
        return ExitCode::FAILURE;
    }
    let start_log = root.join(format!(".{name}.start.log"));
    let log = match std::fs::File::create(&start_log) {
        Ok(f) => f,
        Err(e) => {
            say(format!("{}: {e}", start_log.display()));
            return ExitCode::FAILURE;
        }
    };
    let exe = std::env::current_exe().unwrap_or_else(|_| "ovf-run".into());
    let mut cmd = Command::new(exe);
    cmd.args(std::env::args_os().skip(1))
        .env(CHILD_ENV, "1")
        .env(NAME_ENV, &name)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log);
    // SAFETY: setsid is async-signal-safe; the copy leaves our terminal's
    // session so a Ctrl-C here does not reach it.
    unsafe {
        cmd.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            say(format!("cannot start the background ovf-run: {e}"));
            return ExitCode::FAILURE;
        }
    };
    let dir = root.join(&name);
    let code = loop {
        if let Ok(Some(status)) = child.try_wait() {
            let text = std::fs::read_to_string(&start_log).unwrap_or_default();
            let more = std::fs::read_to_string(dir.join("ovf-run.log")).unwrap_or_default();
            eprint!("{text}{more}");
            say(format!("{name} did not become ready ({status})"));
            if !state::is_alive(&dir) {
                let _ = std::fs::remove_dir_all(&dir);
            }
            break ExitCode::from(status.code().unwrap_or(1).clamp(1, 255) as u8);
        }
        let ours = state::read_info(&dir).is_some_and(|i| i.pid == child.id());
        if ours
            && read_events(&events_path(&dir))
                .iter()
                .any(|r| matches!(r.event, Event::Ready { .. }))
        {
            println!("{name}");
            break ExitCode::SUCCESS;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let _ = std::fs::remove_file(&start_log);
    code
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_round_trip() {
        assert_eq!(parse_request("kill"), Some(Request::Kill));
        assert_eq!(
            parse_request("stop 30\n"),
            Some(Request::Stop(Duration::from_secs(30)))
        );
        assert_eq!(parse_request("stop"), None);
        for r in [
            Request::Snapshot {
                dir: "/srv/snap shots/a".into(),
                then_stop: None,
            },
            Request::Snapshot {
                dir: "/s".into(),
                then_stop: Some(Duration::from_secs(60)),
            },
            Request::Kill,
            Request::Stop(Duration::from_secs(5)),
        ] {
            assert_eq!(parse_request(&request_text(&r)), Some(r));
        }
        assert_eq!(parse_request("snapshot\nrelative/dir"), None);
        assert_eq!(parse_request("snapshot x\n/d"), None);
        assert_eq!(parse_request("reboot 3"), None);
    }
}
