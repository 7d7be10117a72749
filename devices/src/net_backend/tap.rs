//! A host TAP interface (`--net tap=NAME`), for users with CAP_NET_ADMIN
//! who bridge or route the guest themselves. Opened with IFF_TAP |
//! IFF_NO_PI, without a virtio-net header: frames are plain Ethernet, so
//! the device offers no checksum or segmentation offloads through it.

use super::{BackendError, NetBackend, MAX_FRAME, MIN_FRAME};
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::io::{AsRawFd, RawFd};

const TUN_PATH: &str = "/dev/net/tun";
/// _IOW('T', 202, int)
const TUNSETIFF: libc::c_ulong = 0x4004_54ca;
const IFF_TAP: libc::c_short = 0x0002;
const IFF_NO_PI: libc::c_short = 0x1000;

#[derive(Debug, thiserror::Error)]
pub enum TapError {
    #[error("TAP interface name {0:?} must be 1 to 15 bytes without '/' or NUL")]
    BadName(String),
    #[error(
        "cannot open {TUN_PATH} for TAP interface {name}: {source} (is the tun module loaded?)"
    )]
    Open { name: String, source: io::Error },
    #[error("cannot attach TAP interface {name}: {source}; creating or using a TAP needs CAP_NET_ADMIN (create it first with `ip tuntap add {name} mode tap user $USER`)")]
    Attach { name: String, source: io::Error },
}

pub struct TapBackend {
    file: File,
    name: String,
}

#[repr(C)]
struct IfReq {
    name: [u8; libc::IFNAMSIZ],
    flags: libc::c_short,
    _pad: [u8; 22],
}

impl TapBackend {
    /// Attach to (or create) the TAP interface `name`.
    pub fn open(name: &str) -> Result<TapBackend, TapError> {
        if name.is_empty()
            || name.len() >= libc::IFNAMSIZ
            || name.bytes().any(|b| b == b'/' || b == 0)
        {
            return Err(TapError::BadName(name.to_string()));
        }
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
            .open(TUN_PATH)
            .map_err(|source| TapError::Open {
                name: name.to_string(),
                source,
            })?;
        let mut req = IfReq {
            name: [0; libc::IFNAMSIZ],
            flags: IFF_TAP | IFF_NO_PI,
            _pad: [0; 22],
        };
        req.name[..name.len()].copy_from_slice(name.as_bytes());
        // SAFETY: TUNSETIFF reads and writes one ifreq, which `req` is.
        let r = unsafe { libc::ioctl(file.as_raw_fd(), TUNSETIFF as _, &mut req) };
        if r < 0 {
            return Err(TapError::Attach {
                name: name.to_string(),
                source: io::Error::last_os_error(),
            });
        }
        Ok(TapBackend {
            file,
            name: name.to_string(),
        })
    }

    fn gone(&self, reason: String) -> BackendError {
        BackendError::Gone {
            backend: self.describe(),
            reason,
        }
    }
}

impl NetBackend for TapBackend {
    fn send(&mut self, frame: &[u8]) -> Result<(), BackendError> {
        let drop = |reason: String| BackendError::FrameDropped {
            backend: format!("TAP {}", self.name),
            reason,
        };
        if !(MIN_FRAME..=MAX_FRAME).contains(&frame.len()) {
            return Err(drop(format!("{}-byte frame", frame.len())));
        }
        loop {
            match self.file.write(frame) {
                Ok(_) => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                // A full queue or an interface that is down drops the
                // frame, as a real wire would.
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    return Err(drop("queue full".into()))
                }
                Err(e) if matches!(e.raw_os_error(), Some(libc::EIO) | Some(libc::EINVAL)) => {
                    return Err(drop(e.to_string()))
                }
                Err(e) => return Err(self.gone(format!("write: {e}"))),
            }
        }
    }

    fn recv(&mut self, buf: &mut [u8]) -> Result<Option<usize>, BackendError> {
        loop {
            match self.file.read(buf) {
                Ok(0) => return Err(self.gone("end of file".into())),
                Ok(n) if n < MIN_FRAME => continue,
                Ok(n) => return Ok(Some(n)),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(None),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(self.gone(format!("read: {e}"))),
            }
        }
    }

    fn poll_fd(&self) -> Option<RawFd> {
        Some(self.file.as_raw_fd())
    }

    fn describe(&self) -> String {
        format!("TAP {}", self.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_bad_names_before_touching_the_system() {
        for n in ["", "a/b", "0123456789abcdef", "x\0y"] {
            assert!(
                matches!(TapBackend::open(n), Err(TapError::BadName(_))),
                "{n:?}"
            );
        }
    }

    #[test]
    fn ifreq_has_the_kernel_layout() {
        assert_eq!(std::mem::size_of::<IfReq>(), 40);
    }
}
