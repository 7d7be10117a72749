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

/// The UART's registers and receive FIFO, for a snapshot (vm-superio's
/// `SerialState`, which has no serde support, field for field).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SerialSnapshot {
    pub baud_divisor_low: u8,
    pub baud_divisor_high: u8,
    pub interrupt_enable: u8,
    pub interrupt_identification: u8,
    pub line_control: u8,
    pub line_status: u8,
    pub modem_control: u8,
    pub modem_status: u8,
    pub scratch: u8,
    pub in_buffer: Vec<u8>,
}

/// The snapshot's receive FIFO is larger than a 16550A's.
#[derive(Debug, thiserror::Error)]
#[error("the serial port's saved receive FIFO holds {0} bytes, more than the UART's 64")]
pub struct BadSerialState(usize);

pub struct Serial {
    uart: Uart,
}

impl Serial {
    pub fn new(irq: IrqTrigger, out: Box<dyn Write + Send>) -> Self {
        Serial {
            uart: vm_superio::Serial::new(irq, out),
        }
    }

    /// The registers and FIFO now (the VM is paused).
    pub fn snapshot(&self) -> SerialSnapshot {
        let s = self.uart.state();
        SerialSnapshot {
            baud_divisor_low: s.baud_divisor_low,
            baud_divisor_high: s.baud_divisor_high,
            interrupt_enable: s.interrupt_enable,
            interrupt_identification: s.interrupt_identification,
            line_control: s.line_control,
            line_status: s.line_status,
            modem_control: s.modem_control,
            modem_status: s.modem_status,
            scratch: s.scratch,
            in_buffer: s.in_buffer,
        }
    }

    /// A UART in a saved state.
    pub fn from_snapshot(
        state: &SerialSnapshot,
        irq: IrqTrigger,
        out: Box<dyn Write + Send>,
    ) -> Result<Self, BadSerialState> {
        let s = vm_superio::serial::SerialState {
            baud_divisor_low: state.baud_divisor_low,
            baud_divisor_high: state.baud_divisor_high,
            interrupt_enable: state.interrupt_enable,
            interrupt_identification: state.interrupt_identification,
            line_control: state.line_control,
            line_status: state.line_status,
            modem_control: state.modem_control,
            modem_status: state.modem_status,
            scratch: state.scratch,
            in_buffer: state.in_buffer.clone(),
        };
        let uart = vm_superio::Serial::from_state(&s, irq, vm_superio::serial::NoEvents, out)
            .map_err(|_| BadSerialState(state.in_buffer.len()))?;
        Ok(Serial { uart })
    }

    /// Feed bytes typed on the console to the guest, as many as the
    /// receive FIFO has room for; returns how many were taken (the caller
    /// keeps the rest for when the guest has read some).
    pub fn enqueue_input(&mut self, bytes: &[u8]) -> usize {
        let n = bytes.len().min(self.uart.fifo_capacity());
        if n == 0 {
            return 0;
        }
        match self.uart.enqueue_raw_bytes(&bytes[..n]) {
            Ok(_) => n,
            Err(e) => {
                tracing::warn!("serial input not taken: {e:?}");
                0
            }
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

    #[test]
    fn a_saved_uart_comes_back_with_its_registers_and_fifo() {
        let mut s = Serial::new(IrqTrigger::new().unwrap(), Box::new(std::io::sink()));
        s.write(7, &[0x5a]); // scratch
        s.write(1, &[0x01]); // interrupt enable: data available
        s.enqueue_input(b"ab");
        let saved = s.snapshot();
        let mut back = Serial::from_snapshot(
            &saved,
            IrqTrigger::new().unwrap(),
            Box::new(std::io::sink()),
        )
        .unwrap();
        assert_eq!(back.snapshot(), saved);
        let mut d = [0u8];
        back.read(7, &mut d);
        assert_eq!(d[0], 0x5a);
        back.read(0, &mut d);
        assert_eq!(d[0], b'a');
        let too_much = SerialSnapshot {
            in_buffer: vec![0; 65],
            ..saved
        };
        assert!(Serial::from_snapshot(
            &too_much,
            IrqTrigger::new().unwrap(),
            Box::new(std::io::sink())
        )
        .is_err());
    }
}
