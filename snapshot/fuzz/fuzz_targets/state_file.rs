//! Any bytes as a snapshot state file, and as a body whose digest was
//! already checked (the fuzzer cannot forge SHA-256, so the body decoder is
//! driven directly too): an error or a snapshot, never a panic, a hang or
//! an unbounded allocation; whatever decodes encodes and decodes again.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = snapshot::decode(data);
    if let Ok(s) = snapshot::format::decode_body(data) {
        let again = snapshot::decode(&snapshot::encode(&s)).expect("a decoded snapshot re-encodes");
        assert_eq!(again.vcpus.len(), s.vcpus.len());
    }
});
