//! The tables read back by `dmidecode` (Debian's `dmidecode` package,
//! installed by scripts/setup-deps) from a dump file, as it reads
//! /sys/firmware/dmi/tables in a guest.

use super::*;
use std::process::Command;

fn info() -> SmbiosInfo {
    SmbiosInfo {
        uuid: [
            0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0xde, 0xf0, 0x01, 0x23, 0x45, 0x67, 0x89, 0xab,
            0xcd, 0xef,
        ],
        serial: "sandbox-42".into(),
    }
}

/// dmidecode's `--from-dump` format: the entry point at offset 0 and the
/// table at the address the entry point names (0x20 for base 0).
fn dmidecode(info: &SmbiosInfo, args: &[&str]) -> String {
    let (ep, table) = build(info, 0);
    let mut dump = ep.clone();
    dump.resize(TABLE_OFFSET as usize, 0);
    dump.extend_from_slice(&table);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("dmi.bin");
    std::fs::write(&file, &dump).unwrap();
    let out = Command::new("dmidecode")
        .arg("--from-dump")
        .arg(&file)
        .args(args)
        .output()
        .expect("dmidecode is missing: run scripts/setup-deps (Debian package dmidecode)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "dmidecode {args:?}: {text}");
    text
}

#[test]
fn the_entry_point_sums_to_zero_and_points_at_the_table() {
    let (ep, table) = build(&info(), SMBIOS_ADDR);
    assert_eq!(&ep[..5], b"_SM3_");
    assert_eq!(ep.len(), 24);
    assert_eq!(ep.iter().fold(0u8, |a, b| a.wrapping_add(*b)), 0);
    assert_eq!(
        u32::from_le_bytes(ep[12..16].try_into().unwrap()) as usize,
        table.len()
    );
    assert_eq!(
        u64::from_le_bytes(ep[16..24].try_into().unwrap()),
        SMBIOS_ADDR + 0x20
    );
    assert!(SMBIOS_ADDR + 0x20 + table.len() as u64 <= SMBIOS_END);
    assert!(
        table.ends_with(&[127, 4, 0x7f, 0, 0, 0]),
        "end-of-table last"
    );
}

#[test]
fn dmidecode_reads_the_system_the_guest_will_see() {
    let i = info();
    let s = |key: &str| dmidecode(&i, &["-s", key]).trim().to_string();
    assert_eq!(s("system-manufacturer"), "ovf-run");
    assert_eq!(s("system-product-name"), "ovf-run");
    assert_eq!(s("system-version"), env!("CARGO_PKG_VERSION"));
    assert_eq!(s("system-serial-number"), "sandbox-42");
    assert_eq!(s("system-uuid"), "12345678-9abc-def0-0123-456789abcdef");
    assert_eq!(s("bios-vendor"), "ovf-run");
    assert_eq!(s("chassis-serial-number"), "sandbox-42");
    let all = dmidecode(&i, &[]);
    assert!(all.contains("SMBIOS 3.2.0 present"), "{all}");
    assert!(all.contains("System is a virtual machine"), "{all}");
    for bad in ["Invalid", "Wrong", "truncated", "Bad"] {
        assert!(!all.contains(bad), "dmidecode complains ({bad}): {all}");
    }
}

#[test]
fn without_a_serial_number_no_string_is_left_dangling() {
    let i = SmbiosInfo::default();
    let all = dmidecode(&i, &[]);
    assert!(all.contains("Serial Number: Not Specified"), "{all}");
    assert!(
        !all.contains("Invalid") && !all.contains("<BAD INDEX>"),
        "{all}"
    );
}
