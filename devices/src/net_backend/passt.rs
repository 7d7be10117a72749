//! QEMU's stream protocol over a UNIX stream socket: each Ethernet frame
//! travels behind its length as a 4-byte big-endian number. passt speaks
//! it (`passt -s SOCK` or `-F FD`), as do QEMU's `-netdev stream` and
//! `-netdev socket`.
//!
//! The socket is non-blocking. Incoming bytes are read in large chunks
//! into a bounded buffer and cut into frames, so a burst costs few
//! syscalls; a frame length beyond [`MAX_FRAME`] means the stream is out
//! of step and the backend is treated as gone (never an allocation).
//!
//! Sending never waits: a full socket answers [`BackendError::Full`] and
//! the device keeps the frame; the tail of a frame written only in part is
//! kept here and pushed out first ([`NetBackend::flush`]). Waiting in
//! send would deadlock with a peer that is itself waiting for us to read
//! (passt writes to its end of the socket blocking).

use super::{BackendError, NetBackend, MAX_FRAME, MIN_FRAME};
use std::io::{self, Read};
use std::os::unix::io::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;

/// Bytes of the length prefix.
pub const LEN_BYTES: usize = 4;
/// Receive buffer: room for several maximum frames per read.
const RBUF_SIZE: usize = 4 * (LEN_BYTES + MAX_FRAME);

pub struct StreamBackend {
    sock: UnixStream,
    name: String,
    rbuf: Box<[u8]>,
    start: usize,
    end: usize,
    /// The unsent tail of a frame written in part, from `wdone` on.
    wpend: Vec<u8>,
    wdone: usize,
}

impl StreamBackend {
    /// Wrap a connected stream socket; `name` appears in messages.
    pub fn new(sock: UnixStream, name: &str) -> io::Result<Self> {
        sock.set_nonblocking(true)?;
        Ok(StreamBackend {
            sock,
            name: name.to_string(),
            rbuf: vec![0u8; RBUF_SIZE].into_boxed_slice(),
            start: 0,
            end: 0,
            wpend: Vec::new(),
            wdone: 0,
        })
    }

    fn gone(&self, reason: impl Into<String>) -> BackendError {
        BackendError::Gone {
            backend: self.name.clone(),
            reason: reason.into(),
        }
    }

    /// Cut one complete frame out of the buffer, if there is one.
    fn take_buffered(&mut self, buf: &mut [u8]) -> Result<Option<usize>, BackendError> {
        loop {
            let have = self.end - self.start;
            if have < LEN_BYTES {
                return Ok(None);
            }
            let mut lenb = [0u8; LEN_BYTES];
            lenb.copy_from_slice(&self.rbuf[self.start..self.start + LEN_BYTES]);
            let len = u32::from_be_bytes(lenb) as usize;
            if len > MAX_FRAME {
                return Err(self.gone(format!(
                    "announced a {len}-byte frame (at most {MAX_FRAME}); the stream is out of step"
                )));
            }
            if have < LEN_BYTES + len {
                return Ok(None);
            }
            let body = self.start + LEN_BYTES;
            self.start = body + len;
            if self.start == self.end {
                self.start = 0;
                self.end = 0;
            }
            if len < MIN_FRAME {
                tracing::debug!("{}: skipped a {len}-byte frame", self.name);
                continue;
            }
            if buf.len() < len {
                return Err(BackendError::FrameDropped {
                    backend: self.name.clone(),
                    reason: format!("{len}-byte frame, receive buffer of {}", buf.len()),
                });
            }
            buf[..len].copy_from_slice(&self.rbuf[body..body + len]);
            return Ok(Some(len));
        }
    }
}

/// sendmsg(2) of `parts` from byte `skip` on, without SIGPIPE.
fn send_parts(fd: RawFd, parts: &[&[u8]; 2], skip: usize) -> io::Result<usize> {
    let mut iov = [libc::iovec {
        iov_base: std::ptr::null_mut(),
        iov_len: 0,
    }; 2];
    let mut n = 0;
    let mut skip = skip;
    for p in parts {
        if skip >= p.len() {
            skip -= p.len();
            continue;
        }
        iov[n] = libc::iovec {
            iov_base: p[skip..].as_ptr() as *mut libc::c_void,
            iov_len: p.len() - skip,
        };
        skip = 0;
        n += 1;
    }
    // SAFETY: zeroed msghdr is valid; iov points at live slices for the call.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = iov.as_mut_ptr();
    msg.msg_iovlen = n as _;
    // SAFETY: fd is a socket we own; msg is fully initialised.
    let r = unsafe { libc::sendmsg(fd, &msg, libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT) };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r as usize)
    }
}

impl NetBackend for StreamBackend {
    fn send(&mut self, frame: &[u8]) -> Result<(), BackendError> {
        if !(MIN_FRAME..=MAX_FRAME).contains(&frame.len()) {
            return Err(BackendError::FrameDropped {
                backend: self.name.clone(),
                reason: format!("{}-byte frame", frame.len()),
            });
        }
        if !self.flush()? {
            return Err(BackendError::Full {
                backend: self.name.clone(),
            });
        }
        let lenb = (frame.len() as u32).to_be_bytes();
        let parts: [&[u8]; 2] = [&lenb, frame];
        let total = LEN_BYTES + frame.len();
        loop {
            match send_parts(self.sock.as_raw_fd(), &parts, 0) {
                Ok(n) if n >= total => return Ok(()),
                Ok(n) => {
                    // Taken in part: the rest goes out before anything else.
                    self.wpend.clear();
                    self.wpend.extend_from_slice(&lenb[n.min(LEN_BYTES)..]);
                    self.wpend
                        .extend_from_slice(&frame[n.saturating_sub(LEN_BYTES)..]);
                    self.wdone = 0;
                    return Ok(());
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    return Err(BackendError::Full {
                        backend: self.name.clone(),
                    })
                }
                Err(e) => return Err(self.gone(format!("send: {e}"))),
            }
        }
    }

    fn flush(&mut self) -> Result<bool, BackendError> {
        while self.wdone < self.wpend.len() {
            let parts: [&[u8]; 2] = [&self.wpend[self.wdone..], &[]];
            match send_parts(self.sock.as_raw_fd(), &parts, 0) {
                Ok(n) => self.wdone += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) => return Err(self.gone(format!("send: {e}"))),
            }
        }
        self.wpend.clear();
        self.wdone = 0;
        Ok(true)
    }

    fn recv(&mut self, buf: &mut [u8]) -> Result<Option<usize>, BackendError> {
        loop {
            if let Some(n) = self.take_buffered(buf)? {
                return Ok(Some(n));
            }
            // Make room for the rest of a maximum frame after `end`.
            if self.rbuf.len() - self.end < LEN_BYTES + MAX_FRAME && self.start > 0 {
                self.rbuf.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
            }
            let end = self.end;
            match self.sock.read(&mut self.rbuf[end..]) {
                Ok(0) => return Err(self.gone("closed the connection")),
                Ok(n) => self.end += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(None),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(self.gone(format!("receive: {e}"))),
            }
        }
    }

    fn poll_fd(&self) -> Option<RawFd> {
        Some(self.sock.as_raw_fd())
    }

    fn describe(&self) -> String {
        self.name.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn frame(len: usize, fill: u8) -> Vec<u8> {
        vec![fill; len]
    }

    fn framed(f: &[u8]) -> Vec<u8> {
        let mut v = (f.len() as u32).to_be_bytes().to_vec();
        v.extend_from_slice(f);
        v
    }

    #[test]
    fn frames_cross_a_socketpair_both_ways() {
        let (a, mut b) = UnixStream::pair().unwrap();
        let mut be = StreamBackend::new(a, "test").unwrap();
        be.send(&frame(60, 1)).unwrap();
        be.send(&frame(MAX_FRAME, 2)).unwrap();
        let mut got = vec![0u8; LEN_BYTES + 60 + LEN_BYTES + MAX_FRAME];
        b.read_exact(&mut got).unwrap();
        assert_eq!(&got[..64], &framed(&frame(60, 1))[..]);
        assert_eq!(&got[64..], &framed(&frame(MAX_FRAME, 2))[..]);

        let mut buf = vec![0u8; MAX_FRAME];
        assert_eq!(be.recv(&mut buf).unwrap(), None);
        // A frame split across writes arrives once complete.
        let f = framed(&frame(100, 7));
        b.write_all(&f[..3]).unwrap();
        assert_eq!(be.recv(&mut buf).unwrap(), None);
        b.write_all(&f[3..50]).unwrap();
        assert_eq!(be.recv(&mut buf).unwrap(), None);
        b.write_all(&f[50..]).unwrap();
        assert_eq!(be.recv(&mut buf).unwrap(), Some(100));
        assert!(buf[..100].iter().all(|&x| x == 7));
    }

    #[test]
    fn many_frames_in_one_read_and_buffer_wraps() {
        let (a, mut b) = UnixStream::pair().unwrap();
        let mut be = StreamBackend::new(a, "test").unwrap();
        let writer = std::thread::spawn(move || {
            for i in 0..40u32 {
                let len = 1000 + (i as usize * 1543) % 64000;
                b.write_all(&framed(&frame(len, i as u8))).unwrap();
            }
        });
        let mut buf = vec![0u8; MAX_FRAME];
        let mut seen = 0u32;
        while seen < 40 {
            match be.recv(&mut buf).unwrap() {
                Some(n) => {
                    assert_eq!(n, 1000 + (seen as usize * 1543) % 64000);
                    assert!(buf[..n].iter().all(|&x| x == seen as u8));
                    seen += 1;
                }
                None => std::thread::sleep(std::time::Duration::from_millis(1)),
            }
        }
        writer.join().unwrap();
    }

    #[test]
    fn hostile_lengths() {
        let (a, mut b) = UnixStream::pair().unwrap();
        let mut be = StreamBackend::new(a, "test").unwrap();
        let mut buf = vec![0u8; MAX_FRAME];
        // A runt is skipped, the next frame still arrives.
        b.write_all(&framed(&[1, 2, 3])).unwrap();
        b.write_all(&framed(&frame(20, 9))).unwrap();
        assert_eq!(be.recv(&mut buf).unwrap(), Some(20));
        // An absurd length means the stream is lost.
        b.write_all(&u32::MAX.to_be_bytes()).unwrap();
        assert!(be.recv(&mut buf).unwrap_err().is_gone());
        // Bad sizes on send fail only that frame.
        assert!(!be.send(&[0u8; 5]).unwrap_err().is_gone());
        assert!(!be.send(&vec![0u8; MAX_FRAME + 1]).unwrap_err().is_gone());
    }

    #[test]
    fn a_full_socket_says_full_and_a_partial_frame_is_finished_first() {
        let (a, mut b) = UnixStream::pair().unwrap();
        let mut be = StreamBackend::new(a, "test").unwrap();
        // Fill the socket without reading: the last frame that fits may go
        // in part; the next answers Full without taking anything.
        let mut sent = 0usize;
        let full = loop {
            match be.send(&frame(MAX_FRAME, sent as u8)) {
                Ok(()) => sent += 1,
                Err(e) => break e,
            }
            assert!(sent < 10_000, "the socket never filled");
        };
        assert!(full.is_full(), "{full}");
        // The reader drains; every frame taken arrives whole, in order.
        let reader = std::thread::spawn(move || {
            let mut got = vec![0u8; LEN_BYTES + MAX_FRAME];
            for i in 0..sent + 1 {
                b.read_exact(&mut got).unwrap();
                assert_eq!(&got[..LEN_BYTES], &(MAX_FRAME as u32).to_be_bytes());
                assert!(got[LEN_BYTES..].iter().all(|&x| x == i as u8), "frame {i}");
            }
        });
        let mut f = be.flush();
        while !f.as_ref().is_ok_and(|&done| done) {
            assert!(f.is_ok());
            std::thread::sleep(std::time::Duration::from_millis(1));
            f = be.flush();
        }
        loop {
            match be.send(&frame(MAX_FRAME, sent as u8)) {
                Ok(()) => break,
                Err(e) if e.is_full() => std::thread::sleep(std::time::Duration::from_millis(1)),
                Err(e) => panic!("{e}"),
            }
        }
        while !be.flush().unwrap() {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        reader.join().unwrap();
    }

    #[test]
    fn closed_peer_is_gone_not_a_panic() {
        let (a, b) = UnixStream::pair().unwrap();
        let mut be = StreamBackend::new(a, "passt").unwrap();
        drop(b);
        let mut buf = vec![0u8; MAX_FRAME];
        let e = be.recv(&mut buf).unwrap_err();
        assert!(e.is_gone(), "{e}");
        assert!(e.to_string().contains("passt"), "{e}");
        assert!(be.send(&frame(60, 0)).unwrap_err().is_gone());
    }
}
