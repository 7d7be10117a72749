//! Unit tests of the CMOS RTC on a clock the test moves.

use super::*;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// A clock at a settable number of nanoseconds since the epoch.
#[derive(Clone)]
struct TestClock(Arc<AtomicU64>);

impl TestClock {
    fn at(secs: u64, nanos: u64) -> Self {
        TestClock(Arc::new(AtomicU64::new(secs * 1_000_000_000 + nanos)))
    }
    fn advance(&self, d: Duration) {
        self.0.fetch_add(d.as_nanos() as u64, Ordering::SeqCst);
    }
}

impl Clock for TestClock {
    fn now(&self) -> Duration {
        Duration::from_nanos(self.0.load(Ordering::SeqCst))
    }
}

/// 2026-12-07 04:05:06 UTC, a Monday.
const T0: u64 = 1_796_616_306;

fn rtc_at(secs: u64, nanos: u64) -> (Rtc, TestClock) {
    let clock = TestClock::at(secs, nanos);
    (Rtc::with_clock(Box::new(clock.clone())), clock)
}

fn read(rtc: &mut Rtc, reg: u8) -> u8 {
    rtc.write(0, &[reg]);
    let mut b = [0u8];
    rtc.read(1, &mut b);
    b[0]
}

fn write(rtc: &mut Rtc, reg: u8, v: u8) {
    rtc.write(0, &[reg]);
    rtc.write(1, &[v]);
}

#[test]
fn calendar_conversion_round_trips_and_knows_leap_years() {
    let t = civil_from_unix(T0 as i64);
    assert_eq!(
        (t.year, t.month, t.day, t.hour, t.minute, t.second, t.weekday),
        (2026, 12, 7, 4, 5, 6, 2)
    );
    assert_eq!(unix_from_civil(&t), T0 as i64);
    // 2024-02-29 exists; 2100-02-28 is followed by March 1st.
    let leap = civil_from_unix(1_709_164_800);
    assert_eq!((leap.year, leap.month, leap.day), (2024, 2, 29));
    let t2100 = civil_from_unix(4_107_456_000);
    assert_eq!((t2100.year, t2100.month, t2100.day), (2100, 2, 28));
    let next = civil_from_unix(4_107_456_000 + 86_400);
    assert_eq!((next.year, next.month, next.day), (2100, 3, 1));
    for s in [0i64, 951_782_400, 4_107_455_999, 253_402_300_799] {
        assert_eq!(unix_from_civil(&civil_from_unix(s)), s);
    }
}

#[test]
fn time_registers_in_bcd_by_default() {
    let (mut rtc, _) = rtc_at(T0, 0);
    assert_eq!(read(&mut rtc, 0x00), 0x06);
    assert_eq!(read(&mut rtc, 0x02), 0x05);
    assert_eq!(read(&mut rtc, 0x04), 0x04);
    assert_eq!(read(&mut rtc, 0x06), 0x02);
    assert_eq!(read(&mut rtc, 0x07), 0x07);
    assert_eq!(read(&mut rtc, 0x08), 0x12);
    assert_eq!(read(&mut rtc, 0x09), 0x26);
    assert_eq!(read(&mut rtc, 0x32), 0x20);
    // The index port reads back what was written (NMI bit dropped).
    rtc.write(0, &[0x89]);
    let mut b = [0u8];
    rtc.read(0, &mut b);
    assert_eq!(b[0], 0x09);
}

#[test]
fn binary_and_twelve_hour_modes() {
    let (mut rtc, _) = rtc_at(T0 + 13 * 3600, 0); // 17:05:06
    write(&mut rtc, 0x0b, B_BINARY | B_24H);
    assert_eq!(read(&mut rtc, 0x04), 17);
    assert_eq!(read(&mut rtc, 0x09), 26);
    write(&mut rtc, 0x0b, B_BINARY);
    assert_eq!(read(&mut rtc, 0x04), 0x80 | 5, "5 PM");
    write(&mut rtc, 0x0b, 0);
    assert_eq!(read(&mut rtc, 0x04), 0x80 | 0x05, "5 PM, BCD");
}

#[test]
fn the_clock_ticks_with_the_host() {
    let (mut rtc, clock) = rtc_at(T0, 0);
    clock.advance(Duration::from_secs(60 * 60 * 24));
    assert_eq!(read(&mut rtc, 0x07), 0x08, "next day");
    assert_eq!(read(&mut rtc, 0x06), 0x03, "Tuesday");
}

#[test]
fn update_in_progress_only_in_the_last_244_us_of_a_second() {
    let (mut rtc, clock) = rtc_at(T0, 0);
    assert_eq!(read(&mut rtc, 0x0a) & A_UIP, 0);
    clock.advance(Duration::from_nanos(999_700_000)); // 300 µs before the tick
    assert_eq!(read(&mut rtc, 0x0a) & A_UIP, 0);
    clock.advance(Duration::from_micros(100)); // 200 µs before
    assert_eq!(read(&mut rtc, 0x0a) & A_UIP, A_UIP);
    clock.advance(Duration::from_micros(200)); // the next second
    assert_eq!(read(&mut rtc, 0x0a) & A_UIP, 0);
    // The rate bits read back; UIP cannot be written.
    write(&mut rtc, 0x0a, 0x80 | 0x2f);
    assert_eq!(read(&mut rtc, 0x0a), 0x2f);
}

#[test]
fn register_c_reports_periodic_and_update_flags_and_clears_on_read() {
    let (mut rtc, clock) = rtc_at(T0, 100_000_000);
    // Rate 6: 1024 Hz (976.5625 µs).
    assert_eq!(periodic_period(6), Some(Duration::from_nanos(976_562)));
    assert_eq!(periodic_period(0), None);
    assert_eq!(periodic_period(1), Some(Duration::from_nanos(3_906_250)));
    assert_eq!(read(&mut rtc, 0x0c), 0, "nothing happened yet");
    clock.advance(Duration::from_millis(2));
    assert_eq!(
        read(&mut rtc, 0x0c),
        C_PF,
        "a periodic tick, no interrupt enabled"
    );
    assert_eq!(read(&mut rtc, 0x0c), 0, "cleared by the read");
    write(&mut rtc, 0x0b, B_24H | B_PIE);
    clock.advance(Duration::from_millis(2));
    assert_eq!(read(&mut rtc, 0x0c), C_IRQF | C_PF);
    clock.advance(Duration::from_secs(1));
    assert_eq!(read(&mut rtc, 0x0c), C_IRQF | C_PF | C_UF);
    // No periodic rate: no PF.
    write(&mut rtc, 0x0a, 0x20);
    write(&mut rtc, 0x0b, B_24H | B_UIE);
    clock.advance(Duration::from_secs(1));
    assert_eq!(read(&mut rtc, 0x0c), C_IRQF | C_UF);
}

#[test]
fn alarm_flag_when_the_alarm_time_passes() {
    let (mut rtc, clock) = rtc_at(T0, 0); // 04:05:06
    write(&mut rtc, 0x0a, 0x20); // no periodic flag
    write(&mut rtc, 0x01, 0x10); // :10 seconds
    write(&mut rtc, 0x03, 0xc0); // any minute
    write(&mut rtc, 0x05, 0xc0); // any hour
    read(&mut rtc, 0x0c);
    clock.advance(Duration::from_secs(2)); // :08
    assert_eq!(read(&mut rtc, 0x0c), C_UF);
    clock.advance(Duration::from_secs(3)); // :11, passed :10
    assert_eq!(read(&mut rtc, 0x0c), C_UF | C_AF);
}

#[test]
fn the_guest_sets_its_own_time_with_the_set_bit() {
    let (mut rtc, clock) = rtc_at(T0, 0);
    write(&mut rtc, 0x0b, B_24H | B_SET);
    write(&mut rtc, 0x09, 0x30); // 2030
    write(&mut rtc, 0x04, 0x23); // 23:xx
    clock.advance(Duration::from_secs(10));
    assert_eq!(read(&mut rtc, 0x00), 0x06, "frozen while SET is on");
    assert_eq!(read(&mut rtc, 0x0a) & A_UIP, 0);
    write(&mut rtc, 0x0b, B_24H);
    clock.advance(Duration::from_secs(2));
    assert_eq!(read(&mut rtc, 0x09), 0x30);
    assert_eq!(read(&mut rtc, 0x04), 0x23);
    assert_eq!(read(&mut rtc, 0x00), 0x08, "runs again from the set time");
}

#[test]
fn cmos_ram_and_memory_layout_for_firmware() {
    let (mut rtc, _) = rtc_at(T0, 0);
    write(&mut rtc, 0x40, 0xab);
    assert_eq!(read(&mut rtc, 0x40), 0xab);
    assert_eq!(read(&mut rtc, 0x0d), D_VRT, "valid RAM and time");
    write(&mut rtc, 0x0d, 0);
    assert_eq!(read(&mut rtc, 0x0d), D_VRT, "register D is read-only");
    // 3 GiB below 4 GiB, 1 GiB above, 4 CPUs.
    rtc.set_memory_layout(3 << 30, 1 << 30, 4);
    let word = |rtc: &mut Rtc, at: u8| {
        u16::from(rtc.cmos_byte(at)) | u16::from(rtc.cmos_byte(at + 1)) << 8
    };
    assert_eq!(word(&mut rtc, 0x15), 640);
    assert_eq!(word(&mut rtc, 0x17), 0xfc00, "capped at 63 MiB");
    assert_eq!(
        word(&mut rtc, 0x34),
        (((3u64 << 30) - (16 << 20)) >> 16) as u16
    );
    let high = u32::from(rtc.cmos_byte(0x5b))
        | u32::from(rtc.cmos_byte(0x5c)) << 8
        | u32::from(rtc.cmos_byte(0x5d)) << 16;
    assert_eq!(high, (1 << 30) >> 16);
    assert_eq!(rtc.cmos_byte(0x5f), 3);
}

#[test]
fn odd_accesses_do_not_panic() {
    let (mut rtc, _) = rtc_at(0, 0);
    rtc.write(1, &[]);
    rtc.read(1, &mut []);
    let mut wide = [0xffu8; 4];
    rtc.write(0, &[0xff]);
    rtc.read(1, &mut wide);
    assert_eq!(&wide[1..], &[0, 0, 0]);
    for reg in 0..=0x7f {
        write(&mut rtc, reg, 0xff);
        read(&mut rtc, reg);
    }
}
