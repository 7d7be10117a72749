//! The ACPI hardware-reduced sleep and reset registers.
//!
//! A hardware-reduced FADT names a sleep control register, a sleep status
//! register and a reset register instead of PM1 blocks. Linux's `poweroff`
//! writes `SLP_TYP(5) << 2 | SLP_EN` to the control register (SLP_TYP comes
//! from the DSDT's `_S5_`), and `reboot` writes the reset value.

use crate::bus::BusDevice;
use crate::lifecycle::{StopReason, StopSignal};
use std::sync::Arc;

/// I/O ports: control at +0, status at +1, reset at +2.
pub const ACPI_PM_BASE: u64 = 0x600;
pub const ACPI_PM_LEN: u64 = 3;
pub const SLEEP_CONTROL_OFFSET: u64 = 0;
pub const SLEEP_STATUS_OFFSET: u64 = 1;
pub const RESET_OFFSET: u64 = 2;
/// What the FADT tells the guest to write to the reset register.
pub const RESET_VALUE: u8 = 0x0f;
/// The S5 sleep type this platform advertises in `_S5_`.
pub const S5_SLEEP_TYPE: u8 = 5;

const SLP_EN: u8 = 1 << 5;

pub struct AcpiPower {
    stop: Arc<StopSignal>,
}

impl AcpiPower {
    pub fn new(stop: Arc<StopSignal>) -> Self {
        AcpiPower { stop }
    }
}

impl BusDevice for AcpiPower {
    fn read(&mut self, _offset: u64, data: &mut [u8]) {
        // Wake status is never set: the guest never sleeps and wakes.
        data.fill(0);
    }

    fn write(&mut self, offset: u64, data: &[u8]) {
        let Some(&v) = data.first() else { return };
        match offset {
            SLEEP_CONTROL_OFFSET if v & SLP_EN != 0 => {
                let slp_typ = (v >> 2) & 7;
                if slp_typ == S5_SLEEP_TYPE {
                    self.stop.stop(StopReason::Poweroff);
                } else {
                    tracing::info!("guest asked for sleep type {slp_typ}, which is not supported");
                }
            }
            RESET_OFFSET if v == RESET_VALUE => self.stop.stop(StopReason::Reset),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s5_powers_off_and_reset_value_resets() {
        let stop = Arc::new(StopSignal::new().unwrap());
        let mut d = AcpiPower::new(stop.clone());
        d.write(SLEEP_CONTROL_OFFSET, &[S5_SLEEP_TYPE << 2]);
        assert_eq!(stop.reason(), None, "no SLP_EN, no sleep");
        d.write(SLEEP_CONTROL_OFFSET, &[(S5_SLEEP_TYPE << 2) | SLP_EN]);
        assert_eq!(stop.reason(), Some(StopReason::Poweroff));
        let stop = Arc::new(StopSignal::new().unwrap());
        let mut d = AcpiPower::new(stop.clone());
        d.write(RESET_OFFSET, &[RESET_VALUE]);
        assert_eq!(stop.reason(), Some(StopReason::Reset));
    }
}
