//! Any bytes as a qcow2 image: opening and reading
//! must give errors, never panics or runaway allocation.
#![no_main]

use disk_image::{qcow2, BlockSource, MemRange};
use libfuzzer_sys::fuzz_target;
use std::sync::Arc;

fuzz_target!(|data: &[u8]| {
    let Ok(src) = qcow2::open(Arc::new(MemRange::new(data.to_vec(), "fuzz.qcow2"))) else { return };
    let cap = src.capacity();
    let mut buf = vec![0u8; 256 << 10];
    for off in [0, 512, cap / 3, cap / 2, cap.saturating_sub(buf.len() as u64)] {
        let n = (cap - off.min(cap)).min(buf.len() as u64) as usize;
        let _ = src.read_at(&mut buf[..n], off);
    }
    // Back-to-back reads: the read-ahead path runs too.
    let mut at = 0u64;
    for _ in 0..3 {
        let n = (cap - at).min(64 << 10) as usize;
        let _ = src.read_at(&mut buf[..n], at);
        at += n as u64;
    }
});
