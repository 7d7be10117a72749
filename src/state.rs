//! Instance state on disk: one directory per instance under
//! `$XDG_RUNTIME_DIR/ovf-run/` (else `~/.cache/ovf-run/run/`), holding
//! `lock` (flocked by the process that runs the instance, for its whole
//! life), `info.json` (name, package, pid, start time), `events.jsonl`,
//! `console.log`, and for detached instances `ovf-run.log` (its stderr).
//!
//! An instance is alive while its lock is held; a directory whose lock can
//! be taken belongs to a process that died, and is stale. The same flock
//! guards `--persist` directories.

use serde::{Deserialize, Serialize};
use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error(
        "cannot find a folder for instance state: set XDG_RUNTIME_DIR, HOME or XDG_CACHE_HOME"
    )]
    NoRoot,
    #[error("{0:?} is not an instance name: use 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit")]
    BadName(String),
    #[error("an instance named {0:?} is already running (see ovf-run ps; stop it with ovf-run stop {0})")]
    Duplicate(String),
    #[error("no instance named {0:?} is running (see ovf-run ps)")]
    Unknown(String),
    #[error("{} is in use by another ovf-run ({what}); stop that one first or use another directory", path.display())]
    Locked { path: PathBuf, what: String },
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StateError + '_ {
    move |source| StateError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Where instance directories live.
pub fn state_root() -> Result<PathBuf, StateError> {
    if let Some(d) = std::env::var_os("XDG_RUNTIME_DIR").filter(|d| !d.is_empty()) {
        let d = PathBuf::from(d);
        if d.is_dir() {
            return Ok(d.join("ovf-run"));
        }
    }
    ovf_loader::cache_dir()
        .map(|c| c.join("run"))
        .ok_or(StateError::NoRoot)
}

/// Instance names: what docker accepts, and safe as a directory name.
pub fn check_name(name: &str) -> Result<(), StateError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.as_bytes()[0].is_ascii_alphanumeric()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(StateError::BadName(name.to_string()))
    }
}

/// A fresh name: `ovf-` and 8 hex digits from the clock and the pid.
pub fn generate_name() -> String {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let seed = format!(
        "{}-{}-{}",
        t.as_nanos(),
        std::process::id(),
        COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    );
    let mac = devices::virtio::net::stable_mac(&seed);
    format!(
        "ovf-{:02x}{:02x}{:02x}{:02x}",
        mac[2], mac[3], mac[4], mac[5]
    )
}

static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Take an exclusive flock on `path` (created if missing) without waiting.
/// `None` when another process holds it.
pub fn try_lock(path: &Path) -> Result<Option<File>, StateError> {
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(path)
        .map_err(io(path))?;
    // SAFETY: flock on a descriptor we own.
    let r = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if r == 0 {
        Ok(Some(f))
    } else {
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() == Some(libc::EWOULDBLOCK) {
            Ok(None)
        } else {
            Err(io(path)(e))
        }
    }
}

/// Lock a `--persist` directory for one instance (released when the file
/// is dropped).
pub fn lock_persist_dir(dir: &Path) -> Result<File, StateError> {
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let path = dir.join("ovf-run.lock");
    try_lock(&path)?.ok_or_else(|| StateError::Locked {
        path: dir.to_path_buf(),
        what: "its --persist lock is held".into(),
    })
}

/// What `ps` shows about an instance, written at start.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Info {
    pub name: String,
    pub package: String,
    pub pid: u32,
    /// Seconds since the Unix epoch.
    pub started: u64,
}

/// An instance's directory, locked while this value lives; removed on
/// drop unless kept (detached instances keep it for `stop`/`wait`).
#[derive(Debug)]
pub struct InstanceDir {
    path: PathBuf,
    _lock: File,
    keep: bool,
}

impl InstanceDir {
    /// Make (or take over a stale) directory for `name` under `root`.
    pub fn create(root: &Path, name: &str) -> Result<Self, StateError> {
        check_name(name)?;
        std::fs::create_dir_all(root).map_err(io(root))?;
        let path = root.join(name);
        match std::fs::create_dir(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(io(&path)(e)),
        }
        let lock =
            try_lock(&path.join("lock"))?.ok_or_else(|| StateError::Duplicate(name.to_string()))?;
        // A stale directory: start clean, keeping the lock file we hold.
        if let Ok(entries) = std::fs::read_dir(&path) {
            for e in entries.flatten() {
                if e.file_name() != "lock" {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
        Ok(InstanceDir {
            path,
            _lock: lock,
            keep: false,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Keep the directory when this value is dropped.
    pub fn keep(&mut self, keep: bool) {
        self.keep = keep;
    }

    pub fn write_info(&self, info: &Info) -> Result<(), StateError> {
        let p = self.path.join("info.json");
        let tmp = self.path.join("info.json.tmp");
        std::fs::write(&tmp, serde_json::to_vec(info).unwrap_or_default()).map_err(io(&tmp))?;
        std::fs::rename(&tmp, &p).map_err(io(&p))
    }
}

impl Drop for InstanceDir {
    fn drop(&mut self) {
        if !self.keep {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

/// An instance directory seen from outside (`ps`, `stop`, …).
#[derive(Debug, Clone)]
pub struct Listed {
    pub name: String,
    pub dir: PathBuf,
    pub alive: bool,
    pub info: Option<Info>,
}

/// Whether the process owning `dir` still holds its lock.
pub fn is_alive(dir: &Path) -> bool {
    let lock = dir.join("lock");
    if !lock.exists() {
        return false;
    }
    matches!(try_lock(&lock), Ok(None))
}

pub fn read_info(dir: &Path) -> Option<Info> {
    serde_json::from_slice(&std::fs::read(dir.join("info.json")).ok()?).ok()
}

/// Every instance directory under `root`, sorted by name.
pub fn list(root: &Path) -> Vec<Listed> {
    let mut out: Vec<Listed> = std::fs::read_dir(root)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.path().is_dir())
        .map(|e| {
            let dir = e.path();
            Listed {
                name: e.file_name().to_string_lossy().into_owned(),
                alive: is_alive(&dir),
                info: read_info(&dir),
                dir,
            }
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// The directory of a named instance, if it exists.
pub fn find(root: &Path, name: &str) -> Result<Listed, StateError> {
    check_name(name)?;
    let dir = root.join(name);
    if !dir.is_dir() {
        return Err(StateError::Unknown(name.to_string()));
    }
    Ok(Listed {
        name: name.to_string(),
        alive: is_alive(&dir),
        info: read_info(&dir),
        dir,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for ok in ["web1", "a", "x.y_z-1", &"a".repeat(64)] {
            assert!(check_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", "-x", ".x", "a/b", "..", "a b", &"a".repeat(65)] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
        let (a, b) = (generate_name(), generate_name());
        assert_ne!(a, b);
        assert!(check_name(&a).is_ok());
    }

    #[test]
    fn a_live_name_is_refused_and_a_dead_one_taken_over() {
        let root = tempfile::tempdir().unwrap();
        let first = InstanceDir::create(root.path(), "web").unwrap();
        std::fs::write(first.path().join("console.log"), "old").unwrap();
        assert!(is_alive(first.path()));
        let e = InstanceDir::create(root.path(), "web").unwrap_err();
        assert!(matches!(e, StateError::Duplicate(_)), "{e}");
        let listed = list(root.path());
        assert_eq!((listed.len(), listed[0].alive), (1, true));
        let mut first = first;
        first.keep(true);
        drop(first);
        assert!(
            !is_alive(&root.path().join("web")),
            "stale after its owner went"
        );
        let second = InstanceDir::create(root.path(), "web").unwrap();
        assert!(
            !second.path().join("console.log").exists(),
            "stale files removed"
        );
        let p = second.path().to_path_buf();
        drop(second);
        assert!(!p.exists(), "removed when not kept");
        assert!(matches!(
            find(root.path(), "web"),
            Err(StateError::Unknown(_))
        ));
    }

    #[test]
    fn persist_dirs_are_locked() {
        let d = tempfile::tempdir().unwrap();
        let held = lock_persist_dir(d.path()).unwrap();
        let e = lock_persist_dir(d.path()).unwrap_err();
        assert!(e.to_string().contains("in use by another ovf-run"), "{e}");
        drop(held);
        lock_persist_dir(d.path()).unwrap();
    }
}
