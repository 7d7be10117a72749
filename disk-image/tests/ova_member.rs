//! The test appliance's VMDK read straight out of the `.ova` (a tar
//! member is a byte range) must equal what qemu-img reads from the same
//! bytes. The appliance is built by the test-bed scripts; without it this
//! test fails saying so.

mod common;

use common::*;
use disk_image::{open_image, ByteRange, FileRange, NoExtents};
use std::path::{Path, PathBuf};
use std::sync::Arc;

fn appliances() -> Vec<PathBuf> {
    let dir = disk_image::CacheDir::default_location().join("appliances");
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "ova"))
        .collect()
}

/// (name, data offset, size) of each regular member: a minimal ustar walk
/// (the real tar index belongs to ovf-loader).
fn members(ova: &FileRange) -> Vec<(String, u64, u64)> {
    let mut out = Vec::new();
    let mut at = 0u64;
    let mut h = [0u8; 512];
    while at + 512 <= ova.len() {
        ova.read_at(&mut h, at).unwrap();
        if h.iter().all(|&b| b == 0) {
            break;
        }
        let name = String::from_utf8_lossy(&h[..100])
            .trim_end_matches('\0')
            .to_string();
        let size_field = String::from_utf8_lossy(&h[124..136])
            .trim_matches(|c: char| c == '\0' || c == ' ')
            .to_string();
        let size = u64::from_str_radix(&size_field, 8).unwrap();
        if h[156] == b'0' || h[156] == 0 {
            out.push((name, at + 512, size));
        }
        at += 512 + size.div_ceil(512) * 512;
    }
    out
}

fn qemu_raw_of_member(ova: &Path, offset: u64, size: u64, dir: &Path) -> Vec<u8> {
    let spec = format!(
        r#"json:{{"driver":"vmdk","file":{{"driver":"raw","offset":{offset},"size":{size},"file":{{"driver":"file","filename":"{}"}}}}}}"#,
        ova.display()
    );
    let out = dir.join("member.raw");
    qemu_img(&["convert", "-O", "raw", &spec, out.to_str().unwrap()]);
    std::fs::read(&out).unwrap()
}

#[test]
fn appliance_vmdk_from_ova_matches_qemu_img() {
    let ovas = appliances();
    assert!(
        !ovas.is_empty(),
        "no test appliance in {}: run scripts/build-appliance mbr",
        disk_image::CacheDir::default_location()
            .join("appliances")
            .display()
    );
    have_qemu_img();
    for ova in ovas {
        let whole = FileRange::open(&ova).unwrap();
        for (name, offset, size) in members(&whole)
            .into_iter()
            .filter(|m| m.0.ends_with(".vmdk"))
        {
            let dir = tempfile::tempdir().unwrap();
            let member = whole
                .slice(offset, size, format!("{}:{name}", ova.display()))
                .unwrap();
            let t = std::time::Instant::now();
            let src = open_image(Box::new(member), None, &NoExtents, &cache(dir.path())).unwrap();
            eprintln!(
                "{name}: opened in {:?}, capacity {}",
                t.elapsed(),
                src.capacity()
            );
            let want = qemu_raw_of_member(&ova, offset, size, dir.path());
            check_matches(Arc::clone(&src), &want, 77, &name);
        }
    }
}
