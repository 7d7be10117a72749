//! Where a virtio-net device's Ethernet frames go: a [`NetBackend`].
//!
//! A backend moves whole Ethernet frames (no virtio header) and exposes
//! one file descriptor to poll for incoming frames, so the device's I/O
//! thread can stop watching it while the guest has no receive buffers
//! (backpressure) instead of reading and dropping.
//!
//! Backends: [`passt::StreamBackend`] (QEMU's stream protocol, spoken by
//! passt) and [`passt_process::start_passt`] which runs passt as our child,
//! [`tap::TapBackend`] (a host TAP interface) and [`none::NoneBackend`].

pub mod none;
pub mod passt;
pub mod passt_process;
pub mod publish;
pub mod tap;

use std::os::unix::io::RawFd;

/// The largest Ethernet frame any backend accepts or delivers: 65535
/// bytes of IP payload plus Ethernet and VLAN headers, with headroom.
/// Frames from either side beyond this are malformed.
pub const MAX_FRAME: usize = 65550;
/// The smallest frame worth forwarding: an Ethernet header.
pub const MIN_FRAME: usize = 14;

/// Why a backend could not move a frame.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// This frame was dropped; the backend is still usable.
    #[error("{backend}: dropped a frame: {reason}")]
    FrameDropped { backend: String, reason: String },
    /// The backend cannot take this frame now (its socket is full); none
    /// of it was taken. Retry when [`NetBackend::poll_fd`] is writable.
    #[error("{backend}: full, try again when it is writable")]
    Full { backend: String },
    /// The backend is gone (passt exited, the TAP device vanished); the
    /// device keeps the guest running without network.
    #[error("{backend} stopped working: {reason}; the VM keeps running without network")]
    Gone { backend: String, reason: String },
}

impl BackendError {
    pub fn is_gone(&self) -> bool {
        matches!(self, BackendError::Gone { .. })
    }

    pub fn is_full(&self) -> bool {
        matches!(self, BackendError::Full { .. })
    }
}

/// A host-side network endpoint for one NIC.
pub trait NetBackend: Send {
    /// Send one Ethernet frame (`MIN_FRAME..=MAX_FRAME` bytes). Never
    /// blocks: [`BackendError::Full`] means nothing was taken and the
    /// caller keeps the frame until [`Self::poll_fd`] is writable. A
    /// backend may take a frame it could only partly write and keep the
    /// rest for [`Self::flush`].
    fn send(&mut self, frame: &[u8]) -> Result<(), BackendError>;
    /// Push out the rest of a partly written frame. `Ok(true)` when
    /// nothing is left; `Ok(false)`: wait for [`Self::poll_fd`] to be
    /// writable and call again.
    fn flush(&mut self) -> Result<bool, BackendError> {
        Ok(true)
    }
    /// Receive one frame into `buf` (at least [`MAX_FRAME`] bytes).
    /// `Ok(None)` means nothing is ready now: wait for [`Self::poll_fd`].
    /// Callers must call this until it returns `Ok(None)` before waiting,
    /// since a backend may hold frames it has already read.
    fn recv(&mut self, buf: &mut [u8]) -> Result<Option<usize>, BackendError>;
    /// Readable when [`Self::recv`] may return a frame; `None` for a
    /// backend that never receives.
    fn poll_fd(&self) -> Option<RawFd>;
    /// What this backend is, for messages ("passt", "TAP tap0").
    fn describe(&self) -> String;
}

impl std::fmt::Debug for dyn NetBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "NetBackend({})", self.describe())
    }
}
