//! Inputs cargo-fuzz found (`fuzz/`), replayed the way the fuzz targets
//! use them. One test in this file on purpose: it counts the process's
//! threads, which other tests running in parallel would disturb.

use disk_image::{qcow2, BlockSource, MemRange};
use std::sync::Arc;

/// Threads of this process.
fn threads() -> usize {
    std::fs::read_dir("/proc/self/task").unwrap().count()
}

/// The fuzz targets' sequence: reads at a few offsets, then three reads
/// back to back (which start read-ahead).
fn exercise(src: &dyn BlockSource) {
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
}

/// fuzz qcow2, leak-4c817bb3…: a qcow2 v3 header with a huge virtual size
/// and nothing mapped. Sequential reads started the read-ahead thread,
/// which was detached and still running when the disk was dropped
/// (LeakSanitizer saw its thread-local state). Now the reader stops and
/// joins it on drop.
#[test]
fn read_ahead_thread_ends_with_the_disk() {
    let bytes = include_bytes!("fuzz-regressions/qcow2-read-ahead-thread-outlives-disk.bin");
    let before = threads();
    let src = qcow2::open(Arc::new(MemRange::new(bytes.to_vec(), "fuzz.qcow2"))).unwrap();
    exercise(&src);
    assert_eq!(
        threads(),
        before + 1,
        "the sequential reads start read-ahead"
    );
    drop(src);
    // The drop joined the thread; only the kernel's reaping may lag.
    let t = std::time::Instant::now();
    while threads() > before && t.elapsed() < std::time::Duration::from_millis(200) {
        std::thread::yield_now();
    }
    assert_eq!(threads(), before, "read-ahead outlived its disk");
}
