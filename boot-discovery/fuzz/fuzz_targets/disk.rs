//! Any bytes as a whole boot disk: partition tables (MBR, GPT), LVM, the
//! ext2/3/4, XFS and FAT readers and the boot loader configurations on
//! them, as `describe` (inspect) and `discover` (run) walk them.
#![no_main]
use block_source::MemorySource;
use libfuzzer_sys::fuzz_target;
use std::sync::Arc;

fuzz_target!(|data: &[u8]| {
    let disk = Arc::new(MemorySource::new(data.to_vec(), true));
    let _ = boot_discovery::describe(disk.clone());
    let _ = boot_discovery::discover(disk);
});
