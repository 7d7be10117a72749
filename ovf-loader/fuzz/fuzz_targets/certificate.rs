//! Any bytes as a package's signing certificate file (`SHA256(x.mf)= sig`
//! then PEM certificates): parsing and checking never panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

const MANIFEST: &[u8] = b"SHA256(vm.ovf)= 00\n";

fuzz_target!(|data: &[u8]| {
    let _ = ovf_loader::cert::check("fuzz.cert", data, "vm.mf", MANIFEST, Some(data));
});
