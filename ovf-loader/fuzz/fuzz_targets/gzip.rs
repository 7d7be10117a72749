//! See `harness/gzip.rs`: never a panic, a hang or an unbounded allocation.
#![no_main]

#[path = "../harness/gzip.rs"]
mod gzip;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| gzip::run(data));
