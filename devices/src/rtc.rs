//! The PC's CMOS real-time clock (Motorola MC146818A), at I/O ports 0x70
//! (index) and 0x71 (data).
//!
//! What a guest reads here: the wall-clock time (seconds to year, and the
//! century byte at 0x32), in BCD or binary and 12- or 24-hour form as
//! register B asks; register A's update-in-progress bit in the last 244 µs
//! before each second ticks over, as the chip raises it; register C's
//! periodic, alarm and update-ended flags (cleared by reading C), computed
//! from the clock when C is read; register D's "valid RAM and time" bit; and
//! the rest of the 128 bytes of CMOS RAM, which firmware (SeaBIOS) reads for
//! the memory size and CPU count ([`Rtc::set_memory_layout`]).
//!
//! A guest that sets the time (SET bit in register B, then the time
//! registers) moves its own view of the clock only: an offset from the host
//! clock, kept until the VM stops. No interrupt line is raised (IRQ 8 is not
//! wired): Linux reads the clock at boot and keeps time with its own
//! clocksource; `hwclock` works by polling.
//!
//! Datasheet: MC146818A, "Real-Time Clock Plus RAM (RTC)", Motorola (the
//! register map, the UIP timing in its Figure 3, the periodic rates in its
//! Table 5).

use crate::bus::BusDevice;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// I/O port of the index register; the data register follows.
pub const RTC_BASE: u64 = 0x70;
/// Both ports.
pub const RTC_LEN: u64 = 2;

const SECONDS: usize = 0x00;
const SECONDS_ALARM: usize = 0x01;
const MINUTES: usize = 0x02;
const MINUTES_ALARM: usize = 0x03;
const HOURS: usize = 0x04;
const HOURS_ALARM: usize = 0x05;
const DAY_OF_WEEK: usize = 0x06;
const DAY_OF_MONTH: usize = 0x07;
const MONTH: usize = 0x08;
const YEAR: usize = 0x09;
const REG_A: usize = 0x0a;
const REG_B: usize = 0x0b;
const REG_C: usize = 0x0c;
const REG_D: usize = 0x0d;
/// The century byte (BCD), where PC firmware and Linux look for it.
const CENTURY: usize = 0x32;

const A_UIP: u8 = 0x80;
const A_RATE_MASK: u8 = 0x0f;
const B_SET: u8 = 0x80;
const B_PIE: u8 = 0x40;
const B_AIE: u8 = 0x20;
const B_UIE: u8 = 0x10;
const B_BINARY: u8 = 0x04;
const B_24H: u8 = 0x02;
const C_IRQF: u8 = 0x80;
const C_PF: u8 = 0x40;
const C_AF: u8 = 0x20;
const C_UF: u8 = 0x10;
const D_VRT: u8 = 0x80;
/// The UIP bit is set this long before the second ends (datasheet: 244 µs).
const UIP_WINDOW: Duration = Duration::from_micros(244);
/// An alarm register with its two top bits set matches any value.
const ALARM_DONT_CARE: u8 = 0xc0;

/// Where the RTC reads the host's time; tests supply their own.
pub trait Clock: Send {
    /// Time since the Unix epoch.
    fn now(&self) -> Duration;
}

/// The host's wall clock.
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Duration {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
    }
}

/// The CMOS RTC and its RAM.
pub struct Rtc {
    clock: Box<dyn Clock>,
    index: u8,
    cmos: [u8; 128],
    /// Guest time minus host time, in seconds (the guest set its clock).
    offset_secs: i64,
    /// While register B's SET bit is on, the clock registers hold what the
    /// guest writes and do not tick.
    frozen: Option<i64>,
    /// When register C was last read: flags are computed for the time since.
    last_c_read: Duration,
}

impl Rtc {
    /// An RTC on the host's wall clock.
    pub fn new() -> Self {
        Self::with_clock(Box::new(SystemClock))
    }

    /// An RTC on `clock`: 24-hour BCD mode, 1024 Hz periodic rate, as PC
    /// firmware leaves it.
    pub fn with_clock(clock: Box<dyn Clock>) -> Self {
        let now = clock.now();
        let mut cmos = [0u8; 128];
        cmos[REG_A] = 0x26; // 32.768 kHz time base, 1024 Hz periodic rate
        cmos[REG_B] = B_24H;
        cmos[REG_D] = D_VRT;
        Rtc {
            clock,
            index: 0,
            cmos,
            offset_secs: 0,
            frozen: None,
            last_c_read: now,
        }
    }

    /// Fill the CMOS bytes PC firmware reads for memory and CPUs (the
    /// layout QEMU's PC machine writes, which SeaBIOS expects): base memory
    /// in KiB (0x15/0x16), memory from 1 MiB in KiB up to 63 MiB (0x17/0x18,
    /// 0x30/0x31), memory from 16 MiB below 4 GiB in 64 KiB units
    /// (0x34/0x35), memory above 4 GiB in 64 KiB units (0x5b..0x5d), and
    /// the CPU count minus one (0x5f).
    pub fn set_memory_layout(&mut self, below_4g: u64, above_4g: u64, cpus: u8) {
        let put16 = |cmos: &mut [u8; 128], at: usize, v: u64| {
            let v = v.min(0xffff) as u16;
            cmos[at..at + 2].copy_from_slice(&v.to_le_bytes());
        };
        put16(&mut self.cmos, 0x15, 640);
        let ext_kib = (below_4g.saturating_sub(1 << 20) >> 10).min(0xfc00);
        put16(&mut self.cmos, 0x17, ext_kib);
        put16(&mut self.cmos, 0x30, ext_kib);
        put16(
            &mut self.cmos,
            0x34,
            below_4g.saturating_sub(16 << 20) >> 16,
        );
        let high = (above_4g >> 16).min(0xff_ffff) as u32;
        self.cmos[0x5b..0x5e].copy_from_slice(&high.to_le_bytes()[..3]);
        self.cmos[0x5f] = cpus.saturating_sub(1);
    }

    /// A CMOS byte as the guest would read it (for tests and callers that
    /// fill RAM bytes).
    pub fn cmos_byte(&mut self, index: u8) -> u8 {
        self.read_register(usize::from(index & 0x7f))
    }

    fn guest_secs(&self, now: Duration) -> i64 {
        match self.frozen {
            Some(t) => t,
            None => now.as_secs() as i64 + self.offset_secs,
        }
    }

    fn binary(&self) -> bool {
        self.cmos[REG_B] & B_BINARY != 0
    }

    fn encode(&self, v: u8) -> u8 {
        if self.binary() {
            v
        } else {
            (v / 10) << 4 | (v % 10)
        }
    }

    fn decode(&self, v: u8) -> u8 {
        if self.binary() {
            v
        } else {
            (v >> 4) * 10 + (v & 0x0f)
        }
    }

    /// The hour register's value for a 0..=23 hour in the current mode.
    fn encode_hour(&self, hour: u8) -> u8 {
        if self.cmos[REG_B] & B_24H != 0 {
            return self.encode(hour);
        }
        let pm = if hour >= 12 { 0x80 } else { 0 };
        let h12 = match hour % 12 {
            0 => 12,
            h => h,
        };
        self.encode(h12) | pm
    }

    fn decode_hour(&self, v: u8) -> u8 {
        if self.cmos[REG_B] & B_24H != 0 {
            return self.decode(v);
        }
        let h12 = self.decode(v & 0x7f) % 12;
        if v & 0x80 != 0 {
            h12 + 12
        } else {
            h12
        }
    }

    fn read_register(&mut self, reg: usize) -> u8 {
        let now = self.clock.now();
        let t = civil_from_unix(self.guest_secs(now));
        match reg {
            SECONDS => self.encode(t.second),
            MINUTES => self.encode(t.minute),
            HOURS => self.encode_hour(t.hour),
            DAY_OF_WEEK => self.encode(t.weekday),
            DAY_OF_MONTH => self.encode(t.day),
            MONTH => self.encode(t.month),
            YEAR => self.encode((t.year % 100) as u8),
            CENTURY => self.encode((t.year / 100) as u8),
            REG_A => {
                let in_window = self.frozen.is_none()
                    && Duration::from_secs(1) - Duration::from_nanos(now.subsec_nanos().into())
                        <= UIP_WINDOW;
                (self.cmos[REG_A] & !A_UIP) | if in_window { A_UIP } else { 0 }
            }
            REG_C => self.read_flags(now),
            _ => self.cmos[reg],
        }
    }

    /// Register C: the events since it was last read; reading clears them.
    fn read_flags(&mut self, now: Duration) -> u8 {
        let since = self.last_c_read;
        self.last_c_read = now;
        if self.frozen.is_some() || now <= since {
            return 0;
        }
        let mut flags = 0;
        if let Some(period) = periodic_period(self.cmos[REG_A] & A_RATE_MASK) {
            // A periodic tick (a multiple of the period) lies in (since, now].
            if now.as_nanos() / period.as_nanos() != since.as_nanos() / period.as_nanos() {
                flags |= C_PF;
            }
        }
        if now.as_secs() != since.as_secs() {
            flags |= C_UF;
            if self.alarm_passed(since.as_secs(), now.as_secs()) {
                flags |= C_AF;
            }
        }
        let enabled = self.cmos[REG_B] & (B_PIE | B_AIE | B_UIE);
        // IRQF: an enabled event happened (PF with PIE, AF with AIE, UF with UIE).
        if flags & enabled != 0 {
            flags |= C_IRQF;
        }
        flags
    }

    /// Did a second in (from, to] of host time match the alarm registers?
    fn alarm_passed(&self, from: u64, to: u64) -> bool {
        // At most one day of seconds is worth checking: the alarm repeats daily.
        let first = from.saturating_add(1).max(to.saturating_sub(86_400));
        (first..=to).any(|s| {
            let t = civil_from_unix(s as i64 + self.offset_secs);
            let matches = |alarm: u8, value: u8| {
                alarm & ALARM_DONT_CARE == ALARM_DONT_CARE || self.decode(alarm) == value
            };
            let hour_alarm = self.cmos[HOURS_ALARM];
            let hour_ok = hour_alarm & ALARM_DONT_CARE == ALARM_DONT_CARE
                || self.decode_hour(hour_alarm) == t.hour;
            matches(self.cmos[SECONDS_ALARM], t.second)
                && matches(self.cmos[MINUTES_ALARM], t.minute)
                && hour_ok
        })
    }

    fn write_register(&mut self, reg: usize, value: u8) {
        match reg {
            REG_B => {
                let was_set = self.cmos[REG_B] & B_SET != 0;
                let now_set = value & B_SET != 0;
                if now_set && !was_set {
                    // Freeze the time registers at the current time.
                    self.frozen = Some(self.guest_secs(self.clock.now()));
                } else if !now_set && was_set {
                    // The guest's new time runs from now on.
                    if let Some(t) = self.frozen.take() {
                        self.offset_secs = t - self.clock.now().as_secs() as i64;
                    }
                }
                self.cmos[REG_B] = value;
            }
            REG_A => self.cmos[REG_A] = value & !A_UIP,
            // Read-only.
            REG_C | REG_D => {}
            SECONDS | MINUTES | HOURS | DAY_OF_WEEK | DAY_OF_MONTH | MONTH | YEAR | CENTURY => {
                self.set_time_field(reg, value)
            }
            _ => self.cmos[reg] = value,
        }
    }

    /// A time register written: takes effect on the frozen time (SET on), or
    /// at once on the running clock (some guests skip SET).
    fn set_time_field(&mut self, reg: usize, value: u8) {
        let current = self.guest_secs(self.clock.now());
        let mut t = civil_from_unix(current);
        match reg {
            SECONDS => t.second = self.decode(value).min(59),
            MINUTES => t.minute = self.decode(value).min(59),
            HOURS => t.hour = self.decode_hour(value).min(23),
            DAY_OF_MONTH => t.day = self.decode(value).clamp(1, 31),
            MONTH => t.month = self.decode(value).clamp(1, 12),
            YEAR => t.year = t.year / 100 * 100 + i64::from(self.decode(value).min(99)),
            CENTURY => t.year = i64::from(self.decode(value)) * 100 + t.year % 100,
            _ => return, // the weekday follows from the date
        }
        let secs = unix_from_civil(&t);
        match &mut self.frozen {
            Some(f) => *f = secs,
            None => self.offset_secs = secs - self.clock.now().as_secs() as i64,
        }
    }
}

impl Default for Rtc {
    fn default() -> Self {
        Self::new()
    }
}

impl BusDevice for Rtc {
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        let value = match offset {
            0 => self.index,
            _ => self.read_register(usize::from(self.index & 0x7f)),
        };
        data.fill(0);
        if let Some(b) = data.first_mut() {
            *b = value;
        }
    }

    fn write(&mut self, offset: u64, data: &[u8]) {
        let Some(&value) = data.first() else { return };
        match offset {
            // Bit 7 of the index port masks NMIs on a PC; there are none here.
            0 => self.index = value & 0x7f,
            _ => self.write_register(usize::from(self.index & 0x7f), value),
        }
    }
}

/// The periodic interrupt's period for register A's rate bits (datasheet
/// Table 5, 32.768 kHz time base): none for 0, 3.90625 ms and 7.8125 ms for
/// 1 and 2, else 2^(rate-1) / 32768 s (rate 6: 1024 Hz).
fn periodic_period(rate: u8) -> Option<Duration> {
    let ticks: u64 = match rate {
        0 => return None,
        1 => 128,
        2 => 256,
        r => 1 << (r - 1),
    };
    Some(Duration::from_nanos(ticks * 1_000_000_000 / 32_768))
}

/// A broken-down UTC time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Civil {
    year: i64,
    month: u8,
    day: u8,
    hour: u8,
    minute: u8,
    second: u8,
    /// 1 = Sunday .. 7 = Saturday, as the RTC counts.
    weekday: u8,
}

/// Days since 1970-01-01 to a (year, month, day), proleptic Gregorian
/// (Howard Hinnant's `civil_from_days` algorithm).
fn civil_from_unix(secs: i64) -> Civil {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u8;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u8;
    let year = yoe + era * 400 + i64::from(month <= 2);
    Civil {
        year,
        month,
        day,
        hour: (rem / 3600) as u8,
        minute: (rem / 60 % 60) as u8,
        second: (rem % 60) as u8,
        // 1970-01-01 was a Thursday (5 when Sunday is 1).
        weekday: ((days + 4).rem_euclid(7) + 1) as u8,
    }
}

/// The inverse of [`civil_from_unix`] (Hinnant's `days_from_civil`).
fn unix_from_civil(t: &Civil) -> i64 {
    let y = t.year - i64::from(t.month <= 2);
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(t.month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(t.day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    days * 86_400 + i64::from(t.hour) * 3600 + i64::from(t.minute) * 60 + i64::from(t.second)
}

#[cfg(test)]
#[path = "rtc_tests.rs"]
mod tests;
