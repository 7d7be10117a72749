//! The tar index never panics and never reports a member outside the archive.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(members) = ovf_loader::tar_index::index(data) {
        for m in members {
            assert!(m.offset + m.size <= data.len() as u64);
            assert!(!m.name.starts_with('/') && !m.name.split('/').any(|p| p == ".."));
        }
    }
});
