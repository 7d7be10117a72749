//! `--net none`: a NIC with the cable unplugged. Frames from the guest
//! are discarded and nothing ever arrives, so the guest sees a working
//! device without a network.

use super::{BackendError, NetBackend};
use std::os::unix::io::RawFd;

#[derive(Debug, Default)]
pub struct NoneBackend;

impl NetBackend for NoneBackend {
    fn send(&mut self, _frame: &[u8]) -> Result<(), BackendError> {
        Ok(())
    }
    fn recv(&mut self, _buf: &mut [u8]) -> Result<Option<usize>, BackendError> {
        Ok(None)
    }
    fn poll_fd(&self) -> Option<RawFd> {
        None
    }
    fn describe(&self) -> String {
        "no network".to_string()
    }
}
