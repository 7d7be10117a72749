//! A counting global allocator for memory-bound regression tests.
//!
//! Include it with `#[path = ".../tests/support/peak_alloc.rs"] mod peak_alloc;`
//! in a test binary; it installs itself as that binary's global allocator.
//! `measure` runs a closure and reports its peak heap growth. Measurements
//! are serialised by a lock, since the counter is process-wide and tests run
//! on several threads; keep other work out of a measuring test binary.

#![allow(dead_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

struct Counting;

static CURRENT: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);
static LOCK: Mutex<()> = Mutex::new(());

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        CURRENT.fetch_sub(layout.size(), Ordering::Relaxed);
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            CURRENT.fetch_sub(layout.size(), Ordering::Relaxed);
            grew(new_size);
        }
        p
    }
}

fn grew(size: usize) {
    let now = CURRENT.fetch_add(size, Ordering::Relaxed) + size;
    PEAK.fetch_max(now, Ordering::Relaxed);
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// What one measured closure cost.
#[derive(Debug, Clone, Copy)]
pub struct Cost {
    /// Highest heap size reached during the closure, minus the size before.
    pub peak_bytes: usize,
    pub elapsed: Duration,
}

/// Run `f` and report its peak heap growth and its wall time.
pub fn measure<T>(f: impl FnOnce() -> T) -> (T, Cost) {
    let _guard = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let base = CURRENT.load(Ordering::Relaxed);
    PEAK.store(base, Ordering::Relaxed);
    let start = Instant::now();
    let out = f();
    let elapsed = start.elapsed();
    let peak = PEAK.load(Ordering::Relaxed).saturating_sub(base);
    (
        out,
        Cost {
            peak_bytes: peak,
            elapsed,
        },
    )
}

/// A time bound for the build being tested: `release` as given, twenty times
/// more for an unoptimised test build (quick-xml, zlib-rs and friends run
/// 10-20 times slower unoptimised; the bounds catch quadratic work, which
/// takes minutes to hours, not constant factors).
pub fn time_bound(release: Duration) -> Duration {
    if cfg!(debug_assertions) {
        release * 20
    } else {
        release
    }
}

pub const MIB: usize = 1 << 20;
