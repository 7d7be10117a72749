//! An instance's life as JSON Lines, one object per event (schema in
//! `docs/events.md`): `{"v":1,"t_ms":…,"name":…,"event":"booting",…}`.
//! `t_ms` counts from the instance's start on a monotonic clock. The
//! console is not an event: its log has it.

use serde::{Deserialize, Serialize};
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// The schema version written in every line's `v`.
pub const EVENTS_VERSION: u32 = 1;

/// What happened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "kebab-case")]
pub enum Event {
    /// The package was checked (or checking was skipped on request).
    Verified { package: String, skipped: bool },
    /// The VM is being started.
    Booting {
        kernel: String,
        cpus: u32,
        memory_mib: u64,
        mac: Vec<String>,
    },
    /// A guest port is reachable at `host` (`127.0.0.1:49153`).
    Published {
        guest_port: u16,
        protocol: String,
        host: String,
    },
    /// Every ready condition held `after_ms` after the start.
    Ready {
        after_ms: u64,
        conditions: Vec<String>,
    },
    /// A snapshot was written to `dir` (the guest paused `paused_ms`; its
    /// files take `bytes_on_disk`).
    Snapshot {
        dir: String,
        paused_ms: u64,
        bytes_on_disk: u64,
    },
    /// A snapshot could not be taken; the instance runs on.
    SnapshotFailed { dir: String, message: String },
    /// Stopping was asked for (`why`: stop, timeout, ready-timeout, signal…).
    Stopping { why: String },
    /// The instance ended: exit code and reason (poweroff, reset,
    /// guest-crash, killed, timeout, ready-timeout, signal, error).
    Exited {
        code: i32,
        reason: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        message: Option<String>,
    },
}

/// One line of the log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub v: u32,
    pub t_ms: u64,
    pub name: String,
    #[serde(flatten)]
    pub event: Event,
}

struct Inner {
    files: Vec<File>,
    records: Vec<Record>,
}

/// Where an instance's events go: kept in memory and appended to files.
#[derive(Clone)]
pub struct EventLog {
    name: String,
    start: Instant,
    inner: Arc<Mutex<Inner>>,
}

impl EventLog {
    pub fn new(name: &str) -> Self {
        EventLog {
            name: name.to_string(),
            start: Instant::now(),
            inner: Arc::new(Mutex::new(Inner {
                files: Vec::new(),
                records: Vec::new(),
            })),
        }
    }

    /// Also append every event, past and future, to `path`.
    pub fn add_file(&self, path: &Path) -> std::io::Result<()> {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        let mut inner = self.lock();
        for r in &inner.records {
            writeln!(f, "{}", to_line(r))?;
        }
        inner.files.push(f);
        Ok(())
    }

    /// Milliseconds since the log was made (the instance's start).
    pub fn elapsed_ms(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }

    pub fn emit(&self, event: Event) {
        let record = Record {
            v: EVENTS_VERSION,
            t_ms: self.elapsed_ms(),
            name: self.name.clone(),
            event,
        };
        let line = to_line(&record);
        let mut inner = self.lock();
        for f in &mut inner.files {
            // A full disk must not stop the VM; the in-memory copy remains.
            let _ = writeln!(f, "{line}");
        }
        inner.records.push(record);
    }

    pub fn records(&self) -> Vec<Record> {
        self.lock().records.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn to_line(r: &Record) -> String {
    serde_json::to_string(r).unwrap_or_default()
}

/// Read an events file; lines that do not parse (a line being written,
/// a newer schema's event) are skipped.
pub fn read_events(path: &Path) -> Vec<Record> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// The events file of an instance directory.
pub fn events_path(dir: &Path) -> PathBuf {
    dir.join("events.jsonl")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_carry_version_time_name_and_kind() {
        let log = EventLog::new("web1");
        log.emit(Event::Published {
            guest_port: 80,
            protocol: "tcp".into(),
            host: "127.0.0.1:49153".into(),
        });
        log.emit(Event::Exited {
            code: 0,
            reason: "poweroff".into(),
            message: None,
        });
        let r = log.records();
        let line = to_line(&r[0]);
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["v"], 1);
        assert_eq!(v["name"], "web1");
        assert_eq!(v["event"], "published");
        assert_eq!(v["guest_port"], 80);
        assert_eq!(v["host"], "127.0.0.1:49153");
        assert!(v["t_ms"].is_u64());
        let exited = to_line(&r[1]);
        assert!(!exited.contains("message"), "{exited}");
        assert_eq!(serde_json::from_str::<Record>(&exited).unwrap(), r[1]);
    }

    #[test]
    fn files_get_past_and_future_events_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = events_path(dir.path());
        let log = EventLog::new("a");
        log.emit(Event::Stopping { why: "stop".into() });
        log.add_file(&path).unwrap();
        log.emit(Event::Ready {
            after_ms: 5,
            conditions: vec!["http:80".into()],
        });
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(b"{\"v\":1,\"t_ms\":")
            .unwrap();
        let back = read_events(&path);
        assert_eq!(back, log.records());
    }
}
