//! User-mode networking: passt as ovf-run's child.
//!
//! passt gets one end of a socketpair (`-F FD`) instead of a socket path:
//! as root it drops to `nobody` before binding a path, so a private
//! directory would refuse it, and a shared one would let other users in.
//! With `-1` it exits when our end closes, so it never outlives ovf-run;
//! dropping the backend also kills it, and PR_SET_PDEATHSIG sends it
//! SIGTERM if ovf-run dies without unwinding (where passt keeps it).
//!
//! Readiness is checked with a real exchange, not a delay: an ARP probe
//! from the guest's MAC, which passt answers once its ports are bound and
//! its loop runs. If passt exits instead, the error carries its messages
//! and, when a published port is taken, says which.

use super::passt::StreamBackend;
use super::publish::{Protocol, Publish};
use super::{BackendError, NetBackend, MAX_FRAME};
use std::collections::VecDeque;
use std::io::{self, BufRead, BufReader, Read};
use std::os::unix::io::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Lines of passt's stderr kept for error messages.
const KEEP_LINES: usize = 20;
const MAX_LINE: usize = 300;

#[derive(Debug, Clone)]
pub struct PasstOptions {
    /// The guest NIC's MAC; the readiness probe is sent from it.
    pub mac: [u8; 6],
    pub publish: Vec<Publish>,
    /// The passt executable; `passt` from PATH by default.
    pub binary: PathBuf,
    /// How long passt may take to answer the probe.
    pub start_timeout: Duration,
}

impl PasstOptions {
    pub fn new(mac: [u8; 6], publish: Vec<Publish>) -> Self {
        PasstOptions {
            mac,
            publish,
            binary: PathBuf::from("passt"),
            // Generous: inside the TCG test host everything is slow.
            start_timeout: Duration::from_secs(20),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PasstError {
    #[error("user-mode networking needs passt, which is not installed ({binary}): install the Debian package passt (`apt-get install passt`), or run with --net none")]
    NotInstalled { binary: String },
    #[error("cannot start passt ({binary}): {source}")]
    Spawn { binary: String, source: io::Error },
    #[error("cannot make the socket pair for passt: {0}")]
    Socket(io::Error),
    #[error("passt exited while starting ({status}){hint}{messages}")]
    Exited {
        status: String,
        hint: String,
        messages: String,
    },
    #[error("passt did not answer within {secs} s of starting{messages}")]
    NoAnswer { secs: u64, messages: String },
}

/// passt's stderr, last lines kept, collected by a thread.
#[derive(Clone, Default)]
struct Messages(Arc<Mutex<VecDeque<String>>>);

impl Messages {
    fn collect(&self, stderr: std::process::ChildStderr) {
        let me = self.clone();
        let _ = std::thread::Builder::new()
            .name("passt-stderr".into())
            .spawn(move || {
                thread_filter::install_or_log(thread_filter::Kind::PasstRelay);
                let mut r = BufReader::new(stderr);
                let mut line = Vec::new();
                loop {
                    line.clear();
                    // Bounded: a line longer than this is cut.
                    match (&mut r).take(4096).read_until(b'\n', &mut line) {
                        Ok(0) | Err(_) => return,
                        Ok(_) => {}
                    }
                    let s = String::from_utf8_lossy(&line);
                    let s = s.trim();
                    // Debian's passt reports every failed syslog write.
                    if s.is_empty() || s.starts_with("Failed to send") && s.ends_with("to syslog") {
                        continue;
                    }
                    let mut q = me.0.lock().unwrap_or_else(|e| e.into_inner());
                    if q.len() == KEEP_LINES {
                        q.pop_front();
                    }
                    q.push_back(s.chars().take(MAX_LINE).collect());
                }
            });
    }

    /// ": line; line" or "" when passt said nothing useful.
    fn summary(&self) -> String {
        let q = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let lines: Vec<&str> = q
            .iter()
            .map(|s| s.as_str())
            .filter(|s| !s.starts_with("Don't run as root"))
            .collect();
        if lines.is_empty() {
            String::new()
        } else {
            format!(": {}", lines.join("; "))
        }
    }
}

/// The running passt; killed when dropped.
struct PasstChild {
    child: Child,
    messages: Messages,
}

impl PasstChild {
    fn exit_status(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }
}

impl Drop for PasstChild {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The stream protocol to a passt we started.
pub struct PasstBackend {
    stream: StreamBackend,
    child: PasstChild,
}

impl PasstBackend {
    /// passt's process id, for tests and diagnostics.
    pub fn pid(&self) -> u32 {
        self.child.child.id()
    }

    fn explain(&mut self, e: BackendError) -> BackendError {
        match e {
            BackendError::Gone { backend, reason } => {
                // Give passt a moment to be reaped so the status is known.
                let status = self.child.exit_status().or_else(|| {
                    std::thread::sleep(Duration::from_millis(50));
                    self.child.exit_status()
                });
                let status = status.map(|s| format!(" (passt {s})")).unwrap_or_default();
                BackendError::Gone {
                    backend,
                    reason: format!("{reason}{status}{}", self.child.messages.summary()),
                }
            }
            other => other,
        }
    }
}

impl NetBackend for PasstBackend {
    fn send(&mut self, frame: &[u8]) -> Result<(), BackendError> {
        self.stream.send(frame).map_err(|e| self.explain(e))
    }
    fn recv(&mut self, buf: &mut [u8]) -> Result<Option<usize>, BackendError> {
        self.stream.recv(buf).map_err(|e| self.explain(e))
    }
    fn flush(&mut self) -> Result<bool, BackendError> {
        self.stream.flush().map_err(|e| self.explain(e))
    }
    fn poll_fd(&self) -> Option<RawFd> {
        self.stream.poll_fd()
    }
    fn describe(&self) -> String {
        "passt".to_string()
    }
}

/// passt's command line for `fd` and the published ports.
pub fn passt_command_args(fd: RawFd, publish: &[Publish]) -> Vec<String> {
    let mut args: Vec<String> = ["-f", "-q", "-1", "-F"].map(String::from).to_vec();
    args.push(fd.to_string());
    for p in publish {
        args.extend(p.passt_args());
    }
    args
}

/// An ARP probe ("who has 240.0.0.1", sender 0.0.0.0) from `mac`. passt
/// answers any request except for the guest's own address; 240.0.0.1 is
/// reserved, so it is never that.
pub fn arp_probe(mac: [u8; 6]) -> Vec<u8> {
    let mut f = vec![0xff; 6];
    f.extend_from_slice(&mac);
    f.extend_from_slice(&[0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, 1]);
    f.extend_from_slice(&mac);
    f.extend_from_slice(&[0, 0, 0, 0]);
    f.extend_from_slice(&[0; 6]);
    f.extend_from_slice(&[240, 0, 0, 1]);
    f
}

fn is_arp_reply(f: &[u8]) -> bool {
    f.len() >= 42 && f[12..14] == [0x08, 0x06] && f[20..22] == [0, 2]
}

/// For a passt that exited at start: which published port is taken.
fn busy_port_hint(publish: &[Publish]) -> String {
    for p in publish {
        let addr = std::net::SocketAddr::new(p.addr, p.host_port);
        let r = match p.protocol {
            Protocol::Tcp => std::net::TcpListener::bind(addr).map(drop),
            Protocol::Udp => std::net::UdpSocket::bind(addr).map(drop),
        };
        match r {
            Err(e) if e.kind() == io::ErrorKind::AddrInUse => {
                return format!("; published port {addr}/{} is already in use", p.protocol)
            }
            Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
                return format!(
                    "; published port {addr}/{} needs privileges (ports below 1024)",
                    p.protocol
                )
            }
            Err(e) if e.kind() == io::ErrorKind::AddrNotAvailable => {
                return format!("; {} is not an address of this host", p.addr)
            }
            _ => {}
        }
    }
    String::new()
}

fn wait_readable(fd: RawFd, timeout: Duration) -> bool {
    let mut pfd = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    let ms = timeout.as_millis().min(i32::MAX as u128) as i32;
    // SAFETY: one valid pollfd.
    unsafe { libc::poll(&mut pfd, 1, ms) > 0 }
}

/// Start passt for one NIC and wait until it answers.
pub fn start_passt(opts: &PasstOptions) -> Result<PasstBackend, PasstError> {
    let (ours, theirs) = UnixStream::pair().map_err(PasstError::Socket)?;
    let fd = theirs.as_raw_fd();
    let mut cmd = Command::new(&opts.binary);
    cmd.args(passt_command_args(fd, &opts.publish))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    // SAFETY: getpid before the fork; only async-signal-safe calls between
    // fork and exec.
    let parent = unsafe { libc::getpid() };
    unsafe {
        cmd.pre_exec(move || {
            // Let passt inherit its end of the pair.
            if libc::fcntl(fd, libc::F_SETFD, 0) < 0 {
                return Err(io::Error::last_os_error());
            }
            // Not in our process group: a Ctrl-C for ovf-run must not kill
            // passt before the guest has been stopped.
            libc::setpgid(0, 0);
            // If ovf-run dies without dropping us (SIGKILL, abort), passt
            // gets SIGTERM. A second line of defence: passt started as root
            // changes user, which clears it; `-1` (exit when the socket
            // closes, which the kernel does for a dead ovf-run) always
            // holds. The signal follows the thread that forked, so start
            // passt from a thread that lives as long as the VM.
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM as libc::c_ulong) < 0 {
                return Err(io::Error::last_os_error());
            }
            // The parent died before prctl: nobody would signal us.
            if libc::getppid() != parent {
                libc::_exit(1);
            }
            Ok(())
        });
    }
    let binary = opts.binary.display().to_string();
    let mut child = cmd.spawn().map_err(|source| {
        if source.kind() == io::ErrorKind::NotFound {
            PasstError::NotInstalled {
                binary: binary.clone(),
            }
        } else {
            PasstError::Spawn {
                binary: binary.clone(),
                source,
            }
        }
    })?;
    drop(theirs);
    let messages = Messages::default();
    if let Some(stderr) = child.stderr.take() {
        messages.collect(stderr);
    }
    let mut child = PasstChild { child, messages };
    let mut stream = StreamBackend::new(ours, "passt").map_err(PasstError::Socket)?;

    let exited = |child: &mut PasstChild| {
        // The socket closes a moment before the process is reaped.
        let deadline = Instant::now() + Duration::from_secs(2);
        let status = loop {
            if let Some(s) = child.exit_status() {
                break s.to_string();
            }
            if Instant::now() > deadline {
                break "closed its socket".to_string();
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        // Let the stderr thread catch up with the last lines.
        std::thread::sleep(Duration::from_millis(20));
        PasstError::Exited {
            status,
            hint: busy_port_hint(&opts.publish),
            messages: child.messages.summary(),
        }
    };

    if stream.send(&arp_probe(opts.mac)).is_err() {
        return Err(exited(&mut child));
    }
    let deadline = Instant::now() + opts.start_timeout;
    let mut buf = vec![0u8; MAX_FRAME];
    loop {
        match stream.recv(&mut buf) {
            // Anything before the answer was meant for a guest that has not
            // booted yet; a NIC that is not up would not see it either.
            Ok(Some(n)) if is_arp_reply(&buf[..n]) => break,
            Ok(Some(_)) => continue,
            Ok(None) => {}
            Err(e) if e.is_gone() => return Err(exited(&mut child)),
            Err(_) => continue,
        }
        let now = Instant::now();
        if now >= deadline {
            return Err(PasstError::NoAnswer {
                secs: opts.start_timeout.as_secs(),
                messages: child.messages.summary(),
            });
        }
        wait_readable(stream.poll_fd().unwrap_or(-1), deadline - now);
    }
    Ok(PasstBackend { stream, child })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_line_has_the_fd_and_ports() {
        let p: Vec<Publish> = vec![
            "18080:80".parse().unwrap(),
            "0.0.0.0:5353:53/udp".parse().unwrap(),
        ];
        assert_eq!(
            passt_command_args(7, &p),
            [
                "-f",
                "-q",
                "-1",
                "-F",
                "7",
                "-t",
                "127.0.0.1/18080:80",
                "-u",
                "0.0.0.0/5353:53"
            ]
        );
    }

    #[test]
    fn probe_is_an_arp_request_from_the_guest() {
        let mac = [2, 1, 2, 3, 4, 5];
        let f = arp_probe(mac);
        assert_eq!(f.len(), 42);
        assert_eq!(&f[6..12], &mac);
        assert_eq!(&f[22..28], &mac);
        assert!(!is_arp_reply(&f));
        let mut r = f.clone();
        r[21] = 2;
        assert!(is_arp_reply(&r));
    }

    #[test]
    fn missing_binary_says_how_to_install_it() {
        let mut o = PasstOptions::new([2, 0, 0, 0, 0, 1], vec![]);
        o.binary = "/nonexistent/passt".into();
        let e = start_passt(&o).err().expect("must fail");
        assert!(matches!(e, PasstError::NotInstalled { .. }));
        assert!(e.to_string().contains("apt-get install passt"), "{e}");
    }

    #[test]
    fn a_program_that_exits_is_reported_with_its_status() {
        let mut o = PasstOptions::new([2, 0, 0, 0, 0, 1], vec![]);
        o.binary = "false".into();
        let e = start_passt(&o).err().expect("must fail");
        assert!(matches!(e, PasstError::Exited { .. }), "{e}");
    }
}
