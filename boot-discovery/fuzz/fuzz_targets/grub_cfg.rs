//! Any text as a grub.cfg: the script interpreter and the default-entry
//! choice never panic and stay within their statement budget.
#![no_main]
use boot_discovery::config::grub::{choose, read_menu};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let menu = read_menu(&text, &Default::default());
    let _ = choose(&menu, &menu.items);
});
