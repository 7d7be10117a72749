//! A guest's serial console, captured to a file, and waiting for markers in
//! it.
//!
//! The console is a file rather than a pipe because the guest may run inside
//! the KVM test host: the file lives in a directory shared with it (see
//! `RunOptions::share`), and the host side polls it. A failed wait reports
//! the last lines of the console, which is what one needs to see why a guest
//! did not come up.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::Child;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How many console lines a failure report shows.
pub const TAIL_LINES: usize = 40;
/// How often the console file is polled.
const POLL: Duration = Duration::from_millis(200);
/// Upper bound on what is kept in memory while searching (markers are short;
/// only the unsearched end of the file matters).
const MAX_WINDOW: usize = 1 << 20;

/// Why waiting for a marker failed. Each variant carries the console tail.
#[derive(Debug, thiserror::Error)]
pub enum WaitError {
    #[error("marker {marker:?} not seen on the console {path} within {timeout:?}; last {TAIL_LINES} lines:\n{tail}")]
    Timeout {
        marker: String,
        path: PathBuf,
        timeout: Duration,
        tail: String,
    },
    #[error("the process running the guest exited ({status}) before marker {marker:?} appeared on {path}; last {TAIL_LINES} lines:\n{tail}")]
    Exited {
        marker: String,
        path: PathBuf,
        status: String,
        tail: String,
    },
    #[error("cannot read console {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// A serial console captured to a file.
#[derive(Debug, Clone)]
pub struct Console {
    path: PathBuf,
}

impl Console {
    /// A console written to `path` by someone else (e.g. `-serial file:`).
    pub fn at(path: impl Into<PathBuf>) -> Self {
        Console { path: path.into() }
    }

    /// Copy everything `reader` yields (e.g. a child's stdout) into `path`,
    /// on a thread, and return the console plus the thread's handle.
    pub fn capture<R: Read + Send + 'static>(
        reader: R,
        path: impl Into<PathBuf>,
    ) -> std::io::Result<(Self, JoinHandle<std::io::Result<u64>>)> {
        let path = path.into();
        let mut file = File::create(&path)?;
        let mut reader = reader;
        let handle = std::thread::spawn(move || {
            let mut buf = [0u8; 8192];
            let mut total = 0u64;
            loop {
                let n = match reader.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(e),
                };
                file.write_all(&buf[..n])?;
                file.flush()?;
                total += n as u64;
            }
            Ok(total)
        });
        Ok((Console { path }, handle))
    }

    /// Path of the console file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Everything captured so far (lossy UTF-8; empty if nothing yet).
    pub fn contents(&self) -> String {
        std::fs::read(&self.path)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    /// The last `n` lines captured so far.
    pub fn tail(&self, n: usize) -> String {
        let text = self.contents();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    /// Wait until `marker` appears on the console; returns the time waited.
    pub fn wait_for(&self, marker: &str, timeout: Duration) -> Result<Duration, WaitError> {
        self.wait_inner(marker, timeout, None)
    }

    /// Like `wait_for`, but fail early if `child` (what runs the guest) exits.
    pub fn wait_for_while(
        &self,
        marker: &str,
        timeout: Duration,
        child: &mut Child,
    ) -> Result<Duration, WaitError> {
        self.wait_inner(marker, timeout, Some(child))
    }

    fn wait_inner(
        &self,
        marker: &str,
        timeout: Duration,
        mut child: Option<&mut Child>,
    ) -> Result<Duration, WaitError> {
        let start = Instant::now();
        let mut offset = 0u64;
        let mut window: Vec<u8> = Vec::new();
        let needle = marker.as_bytes();
        loop {
            if self.read_new(&mut offset, &mut window)? && contains(&window, needle) {
                return Ok(start.elapsed());
            }
            // Keep only what a marker split across reads could still need.
            let keep = needle.len().saturating_sub(1).max(1);
            if window.len() > keep {
                window.drain(..window.len() - keep);
            }
            if let Some(child) = child.as_deref_mut() {
                let status = child.try_wait().map_err(|e| self.io_err(e))?;
                if let Some(status) = status {
                    // One last look: the marker may have landed just before exit.
                    if self.read_new(&mut offset, &mut window)? && contains(&window, needle) {
                        return Ok(start.elapsed());
                    }
                    return Err(WaitError::Exited {
                        marker: marker.into(),
                        path: self.path.clone(),
                        status: status.to_string(),
                        tail: self.tail(TAIL_LINES),
                    });
                }
            }
            if start.elapsed() >= timeout {
                return Err(WaitError::Timeout {
                    marker: marker.into(),
                    path: self.path.clone(),
                    timeout,
                    tail: self.tail(TAIL_LINES),
                });
            }
            std::thread::sleep(POLL);
        }
    }

    /// Append bytes written since `offset` to `window`; true if any. A file
    /// that does not exist yet counts as empty.
    fn read_new(&self, offset: &mut u64, window: &mut Vec<u8>) -> Result<bool, WaitError> {
        let mut file = match File::open(&self.path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(self.io_err(e)),
        };
        let len = file.metadata().map_err(|e| self.io_err(e))?.len();
        if len < *offset {
            *offset = 0; // truncated and rewritten
        }
        if len == *offset {
            return Ok(false);
        }
        file.seek(SeekFrom::Start(*offset))
            .map_err(|e| self.io_err(e))?;
        let mut chunk = Vec::new();
        (&mut file)
            .take(MAX_WINDOW as u64)
            .read_to_end(&mut chunk)
            .map_err(|e| self.io_err(e))?;
        *offset += chunk.len() as u64;
        window.extend_from_slice(&chunk);
        Ok(!chunk.is_empty())
    }

    fn io_err(&self, source: std::io::Error) -> WaitError {
        WaitError::Io {
            path: self.path.clone(),
            source,
        }
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_a_marker_written_later_and_split_across_writes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("console.log");
        let console = Console::at(&path);
        let writer_path = path.clone();
        let writer = std::thread::spawn(move || {
            let mut f = File::create(&writer_path).unwrap();
            f.write_all(b"booting\nOVF-RUN-RE").unwrap();
            f.flush().unwrap();
            std::thread::sleep(Duration::from_millis(500));
            f.write_all(b"ADY host\n").unwrap();
        });
        console
            .wait_for("OVF-RUN-READY", Duration::from_secs(20))
            .unwrap();
        writer.join().unwrap();
    }

    #[test]
    fn timeout_reports_the_last_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("console.log");
        let text: String = (0..100).map(|i| format!("line {i}\n")).collect();
        std::fs::write(&path, text).unwrap();
        let err = Console::at(&path)
            .wait_for("NEVER", Duration::from_millis(300))
            .unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("line 99"), "{msg}");
        assert!(msg.contains("line 60"), "{msg}");
        assert!(!msg.contains("line 59\n"), "{msg}");
    }

    #[test]
    fn exited_child_fails_early() {
        let dir = tempfile::tempdir().unwrap();
        let console = Console::at(dir.path().join("missing.log"));
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let err = console
            .wait_for_while("X", Duration::from_secs(60), &mut child)
            .unwrap_err();
        assert!(matches!(err, WaitError::Exited { .. }), "{err}");
    }

    #[test]
    fn capture_copies_a_reader() {
        let dir = tempfile::tempdir().unwrap();
        let (console, handle) = Console::capture(
            std::io::Cursor::new(b"hello\nOVF-RUN-READY\n".to_vec()),
            dir.path().join("c.log"),
        )
        .unwrap();
        handle.join().unwrap().unwrap();
        assert_eq!(console.tail(1), "OVF-RUN-READY");
    }
}
