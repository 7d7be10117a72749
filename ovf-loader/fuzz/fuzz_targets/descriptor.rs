//! The OVF descriptor parser and the hardware mapping never panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(env) = ovf_loader::model::parse_descriptor(data) {
        for vs in env.systems() {
            let _ = ovf_loader::machine_spec(&env, Some(&vs.id), None);
        }
    }
});
