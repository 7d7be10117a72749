//! Any text as a Boot Loader Spec entry, and version comparison of its lines.
#![no_main]
use boot_discovery::config::bls::{parse_entry, sort_entries, vercmp};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let entry = parse_entry("fuzz", &text, &Default::default());
    let mut lines: Vec<&str> = text.lines().take(64).collect();
    lines.sort_by(|a, b| vercmp(a, b));
    if let Some(e) = entry {
        sort_entries(&mut [e.clone(), e]);
    }
});
