//! Firmware boot (SeaBIOS from Debian's `seabios` package), in one KVM test
//! host job driven by `tests/firmware/inside.sh`:
//!
//! 1. the `grubonly` test appliance (an MBR disk whose GRUB only sets up
//!    the serial console, prints a marker and halts: no Linux at all) with
//!    the default `--firmware auto`: ovf-run says it falls back to the BIOS
//!    and the marker appears on the console;
//! 2. the mbr test appliance with `--firmware bios`: SeaBIOS, the disk's own
//!    GRUB, its Linux to `http:80` ready, the page through `-p`, and a clean
//!    poweroff on the ACPI power button (`stop`, exit 0).
//!
//! And on the host: `--firmware direct` on the grubonly appliance fails with
//! the boot discovery's report before any VM starts, and `inspect` says
//! which path `--firmware auto` takes for each appliance.

use std::process::Command;
use std::time::Duration;
use testbed::{appliance_path, job, scratch_dir, Variant};

fn ova(v: Variant) -> std::path::PathBuf {
    appliance_path(v).unwrap_or_else(|e| panic!("{e}"))
}

fn inspect_firmware(ova: &std::path::Path, cache: &std::path::Path) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_ovf-run"))
        .args(["inspect", "--json"])
        .arg(ova)
        .env("XDG_CACHE_HOME", cache)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v["firmware_auto"].as_str().unwrap_or("null").to_string()
}

#[test]
fn direct_boot_refuses_a_disk_without_linux_and_inspect_names_the_path() {
    let grubonly = ova(Variant::GrubOnly);
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_ovf-run"))
        .args([
            "--accept-eula",
            "--no-console",
            "--net",
            "none",
            "--firmware",
            "direct",
        ])
        .arg(&grubonly)
        .env("XDG_CACHE_HOME", dir.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("no bootable Linux kernel"), "{stderr}");
    assert!(stderr.contains("ext4"), "names what it found:\n{stderr}");
    assert_eq!(inspect_firmware(&grubonly, dir.path()), "bios");
    assert_eq!(inspect_firmware(&ova(Variant::Mbr), dir.path()), "direct");
}

#[test]
fn seabios_boots_a_disk_without_linux_and_the_mbr_appliance() {
    let dir = scratch_dir("firmware").expect("scratch directory");
    let work = dir.path();
    let args = [
        env!("CARGO_BIN_EXE_ovf-run").to_string(),
        ova(Variant::Mbr).display().to_string(),
        ova(Variant::GrubOnly).display().to_string(),
    ];
    let out = job::run_script(
        "tests/firmware/inside.sh",
        work,
        &args,
        Duration::from_secs(1800),
    );
    let files = [
        "grubonly.stderr",
        "grubonly.console",
        "bios.stderr",
        "bios.console",
    ];
    let ctx = job::report(&out, work, &files);
    assert!(
        out.status == 0 && out.stdout.contains("FIRMWARE-TEST DONE"),
        "the firmware test in the test host failed:\n{ctx}"
    );
    for line in [
        "FIRMWARE-TEST grubonly marker",
        "FIRMWARE-TEST grubonly said why",
        "FIRMWARE-TEST bios ready",
        "FIRMWARE-TEST bios page ok",
        "FIRMWARE-TEST bios stop",
        "FIRMWARE-TEST nothing left",
    ] {
        assert!(out.stdout.contains(line), "missing {line:?}:\n{ctx}");
    }
    eprintln!("{}", out.stdout);
}
