//! The manifest parser never panics.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = ovf_loader::manifest::parse("fuzz.mf", data);
});
