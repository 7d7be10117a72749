//! The Debian test appliances (built by `scripts/setup`) inspect and
//! verify, and one changed byte in the disk member makes `verify` fail
//! naming that file.

use std::process::Command;
use testbed::appliance::{appliance_path, Variant};

fn ovf_run(args: &[&str], cache: &std::path::Path) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_ovf-run"))
        .args(args)
        .env("XDG_CACHE_HOME", cache)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

fn check(variant: Variant) {
    let ova = appliance_path(variant).unwrap_or_else(|e| panic!("{e}"));
    let dir = tempfile::tempdir().unwrap();
    let (code, out) = ovf_run(&["inspect", "--json", ova.to_str().unwrap()], dir.path());
    assert_eq!(code, 0, "{out}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let hw = &v["systems"][0]["hardware"];
    assert_eq!(hw["vcpus"], 2);
    assert_eq!(hw["memory_bytes"], 1u64 << 30);
    assert_eq!(hw["disks"][0]["controller"]["kind"], "scsi");
    assert_eq!(hw["nics"][0]["network"], "VM Network");
    assert_eq!(v["eula"]["present"], true);
    assert_eq!(
        v["package"]["descriptor"],
        format!("debian-bookworm-{}.ovf", variant.name())
    );

    let (code, out) = ovf_run(&["verify", ova.to_str().unwrap()], dir.path());
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("Signature: valid"), "{out}");

    // Corrupt one byte of the disk member in a copy.
    let mut bytes = std::fs::read(&ova).unwrap();
    let members = ovf_loader::tar_index::index(bytes.as_slice()).unwrap();
    let disk = members.iter().find(|m| m.name.ends_with(".vmdk")).unwrap();
    bytes[(disk.offset + disk.size / 2) as usize] ^= 0x01;
    let bad = dir.path().join("bad.ova");
    std::fs::write(&bad, bytes).unwrap();
    let (code, out) = ovf_run(&["verify", bad.to_str().unwrap()], dir.path());
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(&format!(
            "FAILED: {}: SHA256 digest does not match",
            disk.name
        )),
        "{out}"
    );
}

#[test]
fn mbr_appliance_inspects_verifies_and_detects_corruption() {
    check(Variant::Mbr);
}

#[test]
fn gpt_appliance_inspects_verifies_and_detects_corruption() {
    check(Variant::Gpt);
}
