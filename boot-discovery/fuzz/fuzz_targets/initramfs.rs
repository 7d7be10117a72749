//! Any bytes as an initramfs image: archive splitting, every decompressor,
//! cpio newc parsing, the driver facts drawn from it, and the
//! `modules.dep.bin` written from its `modules.dep`.
#![no_main]
use boot_discovery::drivers::{facts, kmod_index, modules};
use boot_discovery::initramfs::{read, Limits};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let limits = Limits {
        max_inflated: 64 << 20,
        max_entries: 100_000,
        max_kept_file: 1 << 20,
    };
    if let Ok(ird) = read(data, &|_| true, limits) {
        let f = facts::gather(&ird);
        if let Some(dep) = &f.moddep {
            let _ = kmod_index::modules_dep_bin(dep);
            let _ = dep.closure(&["virtio_blk", "virtio_pci"]);
        }
    }
    let _ = modules::bzimage_release(data);
    let text = String::from_utf8_lossy(data);
    let _ = boot_discovery::drivers::rootdev::translate_root(&text, |d, p| Some(format!("{d}-{p}")));
});
