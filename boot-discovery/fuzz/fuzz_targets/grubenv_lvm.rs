//! Any bytes as a grubenv block and as LVM2 text metadata.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = boot_discovery::config::grubenv::parse(data);
    let _ = boot_discovery::lvm::parse_metadata(&String::from_utf8_lossy(data));
});
