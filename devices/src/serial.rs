//! COM1: a 16550A UART (vm-superio) on the I/O bus.
//!
//! Output goes to any `Write` (the console sink); input is pushed in by the
//! event loop with [`Serial::enqueue_input`]. The interrupt is an eventfd
//! that the monitor registers as an irqfd on IRQ 4.

use crate::bus::BusDevice;
use crate::interrupt::IrqTrigger;
use std::io::Write;

pub const COM1_BASE: u64 = 0x3f8;
pub const COM1_LEN: u64 = 8;
pub const COM1_IRQ: u32 = 4;

type Uart = vm_superio::Serial<IrqTrigger, vm_superio::serial::NoEvents, Box<dyn Write + Send>>;

pub struct Serial {
    uart: Uart,
}

impl Serial {
    pub fn new(irq: IrqTrigger, out: Box<dyn Write + Send>) -> Self {
        Serial {
            uart: vm_superio::Serial::new(irq, out),
        }
    }

    /// Feed bytes typed on the console to the guest. Bytes beyond the
    /// receive FIFO are dropped, as a real UART would drop them.
    pub fn enqueue_input(&mut self, bytes: &[u8]) {
        if self.uart.fifo_capacity() == 0 {
            return;
        }
        let n = bytes.len().min(self.uart.fifo_capacity());
        if let Err(e) = self.uart.enqueue_raw_bytes(&bytes[..n]) {
            tracing::warn!("serial input dropped: {e:?}");
        }
    }
}

impl BusDevice for Serial {
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        if data.len() != 1 || offset >= COM1_LEN {
            data.fill(0xff);
            return;
        }
        data[0] = self.uart.read(offset as u8);
    }

    fn write(&mut self, offset: u64, data: &[u8]) {
        if data.len() != 1 || offset >= COM1_LEN {
            return;
        }
        if let Err(e) = self.uart.write(offset as u8, data[0]) {
            tracing::debug!("serial write: {e:?}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);
    impl Write for Shared {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn bytes_written_to_thr_reach_the_sink_and_input_is_readable() {
        let out = Shared::default();
        let mut s = Serial::new(IrqTrigger::new().unwrap(), Box::new(out.clone()));
        for b in b"hi" {
            s.write(0, &[*b]);
        }
        assert_eq!(&*out.0.lock().unwrap(), b"hi");
        s.enqueue_input(b"x");
        let mut lsr = [0u8];
        s.read(5, &mut lsr);
        assert_eq!(lsr[0] & 1, 1, "data ready");
        let mut d = [0u8];
        s.read(0, &mut d);
        assert_eq!(d[0], b'x');
    }
}
