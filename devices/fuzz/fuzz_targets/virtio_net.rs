//! A guest-controlled memory image and queue setup driving the device's
//! queue processing (see `harness/mod.rs` for the input layout): any
//! ring contents give answered or refused requests, never a panic, a hang
//! or an unbounded allocation.
#![no_main]

#[path = "../harness/mod.rs"]
mod harness;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| harness::net::run(data));
