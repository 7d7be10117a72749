//! Ready conditions (`--ready-when`): `console:TEXT` (a console line
//! contains TEXT), `tcp:GUESTPORT` (a connection through the published
//! port stays open), `http:GUESTPORT[/PATH]` (a GET through the published
//! port answers below 500). All given conditions must hold.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

/// One condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadyWhen {
    Console(String),
    Tcp(u16),
    Http { port: u16, path: String },
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ReadyParseError {
    #[error("--ready-when {0:?}: expected console:TEXT, tcp:GUESTPORT or http:GUESTPORT[/PATH]")]
    Kind(String),
    #[error("--ready-when {0:?}: the port is not a number from 1 to 65535")]
    Port(String),
    #[error("--ready-when {0:?}: console: needs a text to wait for")]
    EmptyText(String),
}

impl FromStr for ReadyWhen {
    type Err = ReadyParseError;
    fn from_str(s: &str) -> Result<Self, ReadyParseError> {
        let (kind, rest) = s
            .split_once(':')
            .ok_or_else(|| ReadyParseError::Kind(s.into()))?;
        let port = |p: &str| match p.parse::<u16>() {
            Ok(n) if n > 0 && !p.starts_with('+') => Ok(n),
            _ => Err(ReadyParseError::Port(s.into())),
        };
        match kind {
            "console" if rest.is_empty() => Err(ReadyParseError::EmptyText(s.into())),
            "console" => Ok(ReadyWhen::Console(rest.to_string())),
            "tcp" => Ok(ReadyWhen::Tcp(port(rest)?)),
            "http" => {
                let (p, path) = match rest.find('/') {
                    Some(i) => (&rest[..i], &rest[i..]),
                    None => (rest, "/"),
                };
                Ok(ReadyWhen::Http {
                    port: port(p)?,
                    path: path.to_string(),
                })
            }
            _ => Err(ReadyParseError::Kind(s.into())),
        }
    }
}

impl std::fmt::Display for ReadyWhen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReadyWhen::Console(t) => write!(f, "console:{t}"),
            ReadyWhen::Tcp(p) => write!(f, "tcp:{p}"),
            ReadyWhen::Http { port, path } if path == "/" => write!(f, "http:{port}"),
            ReadyWhen::Http { port, path } => write!(f, "http:{port}{path}"),
        }
    }
}

impl ReadyWhen {
    /// The guest port this condition reaches through, if any.
    pub fn guest_port(&self) -> Option<u16> {
        match self {
            ReadyWhen::Console(_) => None,
            ReadyWhen::Tcp(p) | ReadyWhen::Http { port: p, .. } => Some(*p),
        }
    }
}

/// Follows a growing console log and remembers whether a text was seen.
#[derive(Debug, Default)]
pub struct ConsoleWatch {
    pos: u64,
    carry: Vec<u8>,
}

/// Longest console line kept while looking for a text.
const MAX_LINE: usize = 64 * 1024;

impl ConsoleWatch {
    /// Read what was appended since the last call; true if a line (ended
    /// or not yet) contains `text`.
    pub fn poll(&mut self, log: &Path, text: &str) -> bool {
        let Ok(mut f) = std::fs::File::open(log) else {
            return false;
        };
        use std::io::Seek;
        if f.seek(std::io::SeekFrom::Start(self.pos)).is_err() {
            return false;
        }
        let mut buf = Vec::new();
        if f.take(8 << 20).read_to_end(&mut buf).is_err() {
            return false;
        }
        self.pos += buf.len() as u64;
        self.carry.extend_from_slice(&buf);
        let needle = text.as_bytes();
        let mut found = false;
        let mut start = 0;
        for (i, &b) in self.carry.iter().enumerate() {
            if b == b'\n' {
                found |= contains(&self.carry[start..i], needle);
                start = i + 1;
            }
        }
        self.carry.drain(..start);
        found |= contains(&self.carry, needle);
        if self.carry.len() > MAX_LINE {
            let cut = self.carry.len() - MAX_LINE;
            self.carry.drain(..cut);
        }
        found
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || hay.windows(needle.len()).any(|w| w == needle)
}

/// A TCP connection to `addr` opens and is not closed at once. Through
/// passt a connection is accepted on the host before the guest answers; a
/// guest that refuses closes it right away.
pub fn tcp_ready(addr: SocketAddr) -> bool {
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_secs(2)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
    let mut b = [0u8; 1];
    match s.read(&mut b) {
        Ok(0) => false,
        Ok(_) => true,
        Err(e) => matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
    }
}

/// The status of `GET path` at `addr`, if an HTTP answer came.
pub fn http_status(addr: SocketAddr, path: &str) -> Option<u16> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    s.set_write_timeout(Some(Duration::from_secs(5))).ok()?;
    let host = match addr {
        SocketAddr::V4(a) => a.to_string(),
        SocketAddr::V6(a) => format!("[{}]:{}", a.ip(), a.port()),
    };
    let request = format!(
        "GET {path} HTTP/1.0\r\nHost: {host}\r\nUser-Agent: ovf-run\r\nConnection: close\r\n\r\n"
    );
    s.write_all(request.as_bytes()).ok()?;
    let mut head = [0u8; 64];
    let mut n = 0;
    while n < 12 {
        match s.read(&mut head[n..]) {
            Ok(0) | Err(_) => break,
            Ok(k) => n += k,
        }
    }
    parse_status(&head[..n])
}

/// `HTTP/1.1 200 OK` → 200.
fn parse_status(head: &[u8]) -> Option<u16> {
    let text = std::str::from_utf8(head).ok()?;
    let mut parts = text.split_whitespace();
    if !parts.next()?.starts_with("HTTP/") {
        return None;
    }
    parts.next()?.get(..3)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    #[test]
    fn conditions_parse_and_print_back() {
        let c = |s: &str| s.parse::<ReadyWhen>();
        assert_eq!(c("console:login:"), Ok(ReadyWhen::Console("login:".into())));
        assert_eq!(c("tcp:22"), Ok(ReadyWhen::Tcp(22)));
        assert_eq!(
            c("http:80"),
            Ok(ReadyWhen::Http {
                port: 80,
                path: "/".into()
            })
        );
        assert_eq!(
            c("http:8080/health?x=1"),
            Ok(ReadyWhen::Http {
                port: 8080,
                path: "/health?x=1".into()
            })
        );
        for s in ["console:a:b", "tcp:22", "http:80", "http:80/x"] {
            assert_eq!(c(s).unwrap().to_string(), s);
        }
    }

    #[test]
    fn bad_conditions_say_what_to_type() {
        let c = |s: &str| s.parse::<ReadyWhen>().unwrap_err();
        assert!(matches!(c("ping:80"), ReadyParseError::Kind(_)));
        assert!(matches!(c("80"), ReadyParseError::Kind(_)));
        assert!(matches!(c("tcp:65536"), ReadyParseError::Port(_)));
        assert!(matches!(c("tcp:0"), ReadyParseError::Port(_)));
        assert!(matches!(c("http:x/"), ReadyParseError::Port(_)));
        assert!(matches!(c("console:"), ReadyParseError::EmptyText(_)));
        assert!(c("ping:80").to_string().contains("console:TEXT"));
    }

    #[test]
    fn console_watch_follows_a_growing_log() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("console.log");
        let mut w = ConsoleWatch::default();
        assert!(!w.poll(&log, "READY"), "no file yet");
        std::fs::write(&log, "booting\r\nREA").unwrap();
        assert!(!w.poll(&log, "READY"));
        std::fs::OpenOptions::new()
            .append(true)
            .open(&log)
            .unwrap()
            .write_all(b"DY now\r\n")
            .unwrap();
        assert!(w.poll(&log, "READY"), "split across two reads");
    }

    #[test]
    fn http_status_and_tcp_against_a_local_server() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let t = std::thread::spawn(move || {
            for code in ["204 No Content", "503 Busy"] {
                let (mut s, _) = l.accept().unwrap();
                let mut got = Vec::new();
                let mut b = [0u8; 512];
                while !got.ends_with(b"\r\n\r\n") {
                    match s.read(&mut b) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => got.extend_from_slice(&b[..n]),
                    }
                }
                write!(s, "HTTP/1.1 {code}\r\n\r\n").unwrap();
            }
            // tcp_ready: keep one connection open without talking.
            let (s, _) = l.accept().unwrap();
            std::thread::sleep(Duration::from_secs(1));
            drop(s);
        });
        assert_eq!(http_status(addr, "/"), Some(204));
        assert_eq!(http_status(addr, "/"), Some(503));
        assert!(tcp_ready(addr));
        t.join().unwrap();
        assert_eq!(parse_status(b"garbage"), None);
    }
}
