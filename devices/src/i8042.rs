//! The part of the i8042 keyboard controller a PC kernel uses to reset.
//!
//! Linux's `reboot=k` path (and its fallback chain) writes 0xFE, "pulse the
//! reset line", to the command port 0x64. Everything else reads as an idle
//! controller so probing finds no keyboard and gives up quickly.

use crate::bus::BusDevice;
use crate::lifecycle::{StopReason, StopSignal};
use std::sync::Arc;

/// Mapped at port 0x60 with length 5 (data 0x60, command/status 0x64).
pub struct I8042 {
    stop: Arc<StopSignal>,
}

pub const I8042_BASE: u64 = 0x60;
pub const I8042_LEN: u64 = 5;
const COMMAND_OFFSET: u64 = 4;
const CMD_RESET: u8 = 0xfe;

impl I8042 {
    pub fn new(stop: Arc<StopSignal>) -> Self {
        I8042 { stop }
    }
}

impl BusDevice for I8042 {
    fn read(&mut self, _offset: u64, data: &mut [u8]) {
        // Status: output buffer empty, input buffer empty.
        data.fill(0);
    }

    fn write(&mut self, offset: u64, data: &[u8]) {
        if offset == COMMAND_OFFSET && data.first() == Some(&CMD_RESET) {
            self.stop.stop(StopReason::Reset);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reset_command_stops_with_reset() {
        let stop = Arc::new(StopSignal::new().unwrap());
        let mut dev = I8042::new(stop.clone());
        dev.write(0, &[CMD_RESET]);
        assert_eq!(stop.reason(), None);
        dev.write(COMMAND_OFFSET, &[CMD_RESET]);
        assert_eq!(stop.reason(), Some(StopReason::Reset));
    }
}
