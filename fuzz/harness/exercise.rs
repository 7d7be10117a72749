//! The reads every disk-image fuzz target makes on an image that opened:
//! a few offsets, then three back to back (the read-ahead path runs too).
//! Shared with `disk-image/tests/fuzz_seeds.rs`.

#![allow(dead_code)]

use disk_image::BlockSource;

pub fn exercise(src: &dyn BlockSource) {
    let cap = src.capacity();
    let mut buf = vec![0u8; 256 << 10];
    for off in [
        0,
        512,
        cap / 3,
        cap / 2,
        cap.saturating_sub(buf.len() as u64),
    ] {
        let n = (cap - off.min(cap)).min(buf.len() as u64) as usize;
        let _ = src.read_at(&mut buf[..n], off);
    }
    let mut at = 0u64;
    for _ in 0..3 {
        let n = (cap - at).min(64 << 10) as usize;
        let _ = src.read_at(&mut buf[..n], at);
        at += n as u64;
    }
    // Where the data is, as export asks (holes skipped); the answer must
    // keep BlockSource's contract, offset <= start < end <= capacity.
    let mut off = 0u64;
    for _ in 0..16 {
        if off >= cap {
            break;
        }
        match src.data_range(off) {
            Ok(Some((start, end))) => {
                assert!(
                    off <= start && start < end && end <= cap,
                    "data_range({off}) = ({start}, {end}), capacity {cap}"
                );
                off = end;
            }
            _ => break,
        }
    }
}
