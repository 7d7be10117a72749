//! virtio-net: both queues processed as the device's I/O thread does after
//! kicks on both, with an in-memory backend (no passt, no TAP) that holds
//! the frames the input names and is full on the sends it says.

use super::{guest, queue, F_MERGEABLE};
use devices::net_backend::{BackendError, NetBackend, MAX_FRAME, MIN_FRAME};
use std::collections::VecDeque;
use std::os::unix::io::RawFd;

/// Rounds of (transmit batch, receive batch) before the queues must have
/// settled: there are at most 256 chains and 4 frames to move.
const ROUNDS: usize = 64;

struct MemBackend {
    frames: VecDeque<usize>,
    full: u8,
    sends: u32,
}

impl NetBackend for MemBackend {
    fn send(&mut self, frame: &[u8]) -> Result<(), BackendError> {
        assert!(
            (MIN_FRAME..=MAX_FRAME).contains(&frame.len()),
            "the device sent a {}-byte frame",
            frame.len()
        );
        let i = self.sends;
        self.sends += 1;
        if i < 8 && self.full & (1 << i) != 0 {
            return Err(BackendError::Full {
                backend: self.describe(),
            });
        }
        Ok(())
    }

    fn recv(&mut self, buf: &mut [u8]) -> Result<Option<usize>, BackendError> {
        let Some(len) = self.frames.pop_front() else {
            return Ok(None);
        };
        let n = len.min(buf.len()).min(MAX_FRAME);
        for (i, b) in buf[..n].iter_mut().enumerate() {
            *b = i as u8;
        }
        Ok(Some(n))
    }

    fn poll_fd(&self) -> Option<RawFd> {
        None
    }

    fn describe(&self) -> String {
        "in-memory fuzz backend".into()
    }
}

pub fn run(data: &[u8]) {
    let Some((h, mem)) = guest(data) else { return };
    let (Some(rx), Some(tx)) = (queue(&h, 0, &mem), queue(&h, 1, &mem)) else {
        return;
    };
    let b = &h.bytes;
    let count = usize::from(b[17] % 5);
    let frames = (0..count)
        .map(|i| usize::from(u16::from_le_bytes([b[18 + 2 * i], b[19 + 2 * i]])))
        .collect();
    let backend = MemBackend {
        frames,
        full: b[26],
        sends: 0,
    };
    let busy = devices::virtio::net::process_queues(
        rx,
        tx,
        mem,
        Box::new(backend),
        h.flag(F_MERGEABLE),
        ROUNDS,
    );
    // An Err is a ring the driver broke; still busy after ROUNDS is a spin.
    assert!(
        !matches!(busy, Ok(true)),
        "virtio-net still busy after {ROUNDS} rounds"
    );
}
