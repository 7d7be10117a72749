//! QEMU's debug console port (0x402), where SeaBIOS writes its log when a
//! read of the port returns 0xe9 (`qemu_debug_preinit`). Lines go to the
//! monitor's log at debug level (`ovf-run -vv`), never to the guest's
//! console: a firmware's chatter is for whoever debugs the boot.

use crate::bus::BusDevice;

pub const DEBUGCON_PORT: u64 = 0x402;
pub const DEBUGCON_LEN: u64 = 1;
/// What a read returns: "a debug console is here" to SeaBIOS.
const PRESENT: u8 = 0xe9;
/// A line longer than this is logged in pieces (a guest cannot make the
/// monitor buffer without bound).
const MAX_LINE: usize = 512;

#[derive(Default)]
pub struct DebugCon {
    line: Vec<u8>,
    /// Every completed line, for tests.
    #[cfg(test)]
    lines: Vec<String>,
}

impl DebugCon {
    pub fn new() -> Self {
        Self::default()
    }

    fn flush(&mut self) {
        let text = String::from_utf8_lossy(&self.line).trim_end().to_string();
        self.line.clear();
        tracing::debug!(target: "firmware", "{text}");
        #[cfg(test)]
        self.lines.push(text);
    }
}

impl BusDevice for DebugCon {
    fn read(&mut self, _offset: u64, data: &mut [u8]) {
        data.fill(PRESENT);
    }

    fn write(&mut self, _offset: u64, data: &[u8]) {
        for &b in data {
            if b == b'\n' {
                self.flush();
            } else if b != b'\r' {
                self.line.push(b);
                if self.line.len() >= MAX_LINE {
                    self.flush();
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn announces_itself_and_splits_lines() {
        let mut d = DebugCon::new();
        let mut b = [0u8; 1];
        d.read(0, &mut b);
        assert_eq!(b[0], 0xe9);
        d.write(0, b"SeaBIOS (version 1.16)\r\nfound virtio-blk");
        d.write(0, b" at 00:01.0\n");
        d.write(0, &[b'x'; 1000]);
        assert_eq!(
            d.lines[..2],
            ["SeaBIOS (version 1.16)", "found virtio-blk at 00:01.0"]
        );
        assert_eq!(d.lines[2].len(), 512, "a long line is cut, not buffered");
    }
}
