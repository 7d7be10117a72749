//! Any bytes as a PE image (a unified kernel image): the section reader
//! never panics, and every range it returns lies within the input.
#![no_main]
use boot_discovery::pe;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = pe::headers_len(data);
    // The file may be longer than the bytes read (describe reads headers).
    let _ = pe::sections(data, u64::MAX);
    let Ok(secs) = pe::sections(data, data.len() as u64) else {
        return;
    };
    for s in &secs {
        assert!(pe::slice(data, &s.file_range).is_some(), "{s:?}");
    }
    let Ok(u) = pe::uki(&secs) else { return };
    for r in [&u.linux, &u.initrd, &u.cmdline, &u.uname].into_iter().flatten() {
        assert!(pe::slice(data, r).is_some());
    }
    if let Some(o) = u.osrel.as_ref().and_then(|r| pe::slice(data, r)) {
        let _ = pe::pretty_name(&String::from_utf8_lossy(o));
    }
});
