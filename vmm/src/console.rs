//! The guest's serial console on the host: stdout, an optional log file, a
//! tail kept for error reports, and stdin in raw mode with an escape key.

use devices::lifecycle::{StopReason, StopSignal};
use devices::serial::Serial;
use event_manager::{EventOps, Events, MutEventSubscriber};
use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use vmm_sys_util::epoll::EventSet;

/// Where the console goes.
#[derive(Debug, Clone, Default)]
pub struct ConsoleConfig {
    /// Copy guest output to our stdout and feed our stdin to the guest.
    pub stdio: bool,
    /// Also append guest output to this file.
    pub log: Option<PathBuf>,
}

/// How many bytes of console output are kept for error reports.
const TAIL_BYTES: usize = 4096;

struct SinkInner {
    stdout: bool,
    log: Option<File>,
    tail: VecDeque<u8>,
    first_output: Option<std::time::Instant>,
}

/// The serial's output writer; cheap to clone, all clones share state.
#[derive(Clone)]
pub struct ConsoleSink {
    inner: Arc<Mutex<SinkInner>>,
}

impl ConsoleSink {
    pub fn new(config: &ConsoleConfig) -> io::Result<Self> {
        let log = match &config.log {
            Some(p) => Some(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(p)
                    .map_err(|e| {
                        io::Error::new(
                            e.kind(),
                            format!("cannot open console log {}: {e}", p.display()),
                        )
                    })?,
            ),
            None => None,
        };
        Ok(ConsoleSink {
            inner: Arc::new(Mutex::new(SinkInner {
                stdout: config.stdio,
                log,
                tail: VecDeque::with_capacity(TAIL_BYTES),
                first_output: None,
            })),
        })
    }

    /// When the guest first printed anything.
    pub fn first_output(&self) -> Option<std::time::Instant> {
        self.inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .first_output
    }

    /// The last lines the guest printed (at most `n`).
    pub fn last_lines(&self, n: usize) -> Vec<String> {
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let bytes: Vec<u8> = inner.tail.iter().copied().collect();
        let text = String::from_utf8_lossy(&bytes);
        let lines: Vec<String> = text
            .lines()
            .map(|l| l.trim_end_matches('\r').to_string())
            .filter(|l| !l.is_empty())
            .collect();
        lines[lines.len().saturating_sub(n)..].to_vec()
    }
}

impl Write for ConsoleSink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if inner.first_output.is_none() {
            inner.first_output = Some(std::time::Instant::now());
        }
        if inner.stdout {
            let mut out = io::stdout().lock();
            let _ = out.write_all(buf);
            let _ = out.flush();
        }
        if let Some(f) = inner.log.as_mut() {
            let _ = f.write_all(buf);
        }
        for &b in buf {
            if inner.tail.len() == TAIL_BYTES {
                inner.tail.pop_front();
            }
            inner.tail.push_back(b);
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Puts a terminal in raw mode and restores it when dropped.
pub struct RawTerminal {
    fd: i32,
    saved: libc::termios,
}

impl RawTerminal {
    /// Raw mode on stdin if it is a terminal; `None` otherwise.
    pub fn stdin() -> Option<RawTerminal> {
        let fd = io::stdin().as_raw_fd();
        // SAFETY: isatty/tcgetattr/tcsetattr only read and write the termios
        // struct we own.
        unsafe {
            if libc::isatty(fd) != 1 {
                return None;
            }
            let mut t: libc::termios = std::mem::zeroed();
            if libc::tcgetattr(fd, &mut t) != 0 {
                return None;
            }
            let saved = t;
            libc::cfmakeraw(&mut t);
            // Keep output post-processing so our own messages stay readable.
            t.c_oflag |= libc::OPOST;
            if libc::tcsetattr(fd, libc::TCSANOW, &t) != 0 {
                return None;
            }
            Some(RawTerminal { fd, saved })
        }
    }
}

impl Drop for RawTerminal {
    fn drop(&mut self) {
        // SAFETY: restores the attributes saved in `stdin()`.
        unsafe {
            libc::tcsetattr(self.fd, libc::TCSANOW, &self.saved);
        }
    }
}

/// The escape prefix: Ctrl-A, then `x` quits, Ctrl-A again sends Ctrl-A.
pub const ESCAPE: u8 = 0x01;

/// Reads stdin in the event loop and feeds the serial port. What does not
/// fit the UART's receive FIFO waits here (a pasted line, a script piping
/// commands) and goes in as the guest reads: [`StdinInput::pump`] runs on
/// every turn of the event loop.
pub struct StdinInput {
    serial: Arc<Mutex<Serial>>,
    stop: Arc<StopSignal>,
    escape_pending: bool,
    pending: std::collections::VecDeque<u8>,
}

/// Input held for the guest before stdin is no longer read.
const MAX_PENDING: usize = 64 << 10;

impl StdinInput {
    pub fn new(serial: Arc<Mutex<Serial>>, stop: Arc<StopSignal>) -> Self {
        StdinInput {
            serial,
            stop,
            escape_pending: false,
            pending: std::collections::VecDeque::new(),
        }
    }

    /// Move held input into the UART as far as its FIFO has room.
    pub fn pump(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let (front, _) = self.pending.as_slices();
        let taken = self
            .serial
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .enqueue_input(front);
        self.pending.drain(..taken);
    }

    /// Apply the escape sequence; returns the bytes meant for the guest.
    fn filter(&mut self, input: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(input.len());
        for &b in input {
            if self.escape_pending {
                self.escape_pending = false;
                match b {
                    b'x' | b'X' => {
                        self.stop.stop(StopReason::UserQuit);
                        break;
                    }
                    ESCAPE => out.push(ESCAPE),
                    other => out.push(other),
                }
            } else if b == ESCAPE {
                self.escape_pending = true;
            } else {
                out.push(b);
            }
        }
        out
    }
}

impl MutEventSubscriber for StdinInput {
    fn process(&mut self, events: Events, ops: &mut EventOps) {
        if self.pending.len() >= MAX_PENDING {
            self.pump();
            return;
        }
        let mut buf = [0u8; 4096];
        let n = match io::stdin().lock().read(&mut buf) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return,
            Err(_) => 0,
        };
        if n == 0 || events.event_set().contains(EventSet::HANG_UP) {
            // End of input: stop watching, keep the guest running.
            let _ = ops.remove(Events::new(&io::stdin(), EventSet::IN));
            return;
        }
        let data = self.filter(&buf[..n]);
        self.pending.extend(data);
        self.pump();
    }

    fn init(&mut self, ops: &mut EventOps) {
        if let Err(e) = ops.add(Events::new(&io::stdin(), EventSet::IN)) {
            tracing::warn!("console input disabled: {e:?}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use devices::bus::BusDevice;
    use devices::interrupt::IrqTrigger;

    #[test]
    fn tail_keeps_last_lines_and_escape_quits() {
        let mut sink = ConsoleSink::new(&ConsoleConfig::default()).unwrap();
        sink.write_all(b"one\r\ntwo\nthree\n").unwrap();
        assert_eq!(sink.last_lines(2), vec!["two", "three"]);

        let stop = Arc::new(StopSignal::new().unwrap());
        let serial = Arc::new(Mutex::new(Serial::new(
            IrqTrigger::new().unwrap(),
            Box::new(io::sink()),
        )));
        let mut input = StdinInput::new(serial, stop.clone());
        assert_eq!(input.filter(b"a\x01\x01b"), b"a\x01b");
        assert_eq!(stop.reason(), None);
        assert_eq!(input.filter(b"\x01"), b"");
        assert_eq!(input.filter(b"x"), b"");
        assert_eq!(stop.reason(), Some(StopReason::UserQuit));
    }

    #[test]
    fn input_beyond_the_fifo_waits_instead_of_being_dropped() {
        let stop = Arc::new(StopSignal::new().unwrap());
        let serial = Arc::new(Mutex::new(Serial::new(
            IrqTrigger::new().unwrap(),
            Box::new(io::sink()),
        )));
        let mut input = StdinInput::new(serial.clone(), stop);
        let line: Vec<u8> = (0..200u8).map(|i| b'a' + i % 26).collect();
        input.pending.extend(line.iter().copied());
        input.pump();
        assert!(
            !input.pending.is_empty(),
            "a 200-byte line does not fit a UART FIFO"
        );
        // The guest reads the receive buffer register byte by byte.
        let mut got = Vec::new();
        while got.len() < line.len() {
            let mut b = [0u8];
            let mut lsr = [0u8];
            serial.lock().unwrap().read(5, &mut lsr);
            if lsr[0] & 1 == 0 {
                input.pump();
                continue;
            }
            serial.lock().unwrap().read(0, &mut b);
            got.push(b[0]);
        }
        assert_eq!(got, line);
    }
}
