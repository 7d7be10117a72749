//! See `harness/chunks.rs`: never a panic, a hang or an unbounded allocation.
#![no_main]

#[path = "../harness/chunks.rs"]
mod chunks;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| chunks::run(data));
