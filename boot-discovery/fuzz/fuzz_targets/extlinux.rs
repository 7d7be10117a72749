//! Any text as an extlinux.conf / syslinux.cfg.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = boot_discovery::config::extlinux::parse(&String::from_utf8_lossy(data));
});
