//! Found but not bootable (issue 12): what discovery cannot boot is named,
//! with what to do, before any VM starts.
//! - a LUKS-encrypted partition (the LUKS header as cryptsetup writes its
//!   first bytes: magic `LUKS\xba\xbe`, version 2): no key, so a /boot
//!   inside cannot be reached;
//! - a 32-bit-only kernel (a bzImage whose header has no 64-bit entry).
//!
//! LVM thin and RAID volumes are named by the LVM test (tests/lvm.rs).

mod common;

use boot_discovery::{discover, DiscoveryError};
use common::*;
use std::os::unix::fs::FileExt;

const UUID: &str = "3b1f2c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d";

#[test]
fn luks_partition_is_named_with_what_to_do() {
    assert!(have("sfdisk") && have("mkfs.ext4"));
    let tmp = tempfile::tempdir().unwrap();
    let root = ext4_image(
        tmp.path(),
        "root",
        8,
        UUID,
        &[("/etc/os-release", b"ID=debian\n")],
        &[],
    );
    let disk = make_disk(
        tmp.path(),
        20,
        "label: dos\nsize=4M, type=83\nsize=8M, type=83\n",
        &[(2, &root)],
    );
    let mut luks = b"LUKS\xba\xbe\x00\x02".to_vec();
    luks.resize(4096, 0);
    std::fs::OpenOptions::new()
        .write(true)
        .open(&disk)
        .unwrap()
        .write_all_at(&luks, partition_start(&disk, 1))
        .unwrap();
    let err = discover(source(&disk)).unwrap_err();
    let DiscoveryError::NothingBootable { report } = &err else {
        panic!("{err}")
    };
    assert!(
        report.contains("partition 1") && report.contains("LUKS encrypted volume"),
        "{report}"
    );
    assert!(
        report.contains("no key") && report.contains("--kernel"),
        "{report}"
    );
}

#[test]
fn a_32_bit_only_kernel_is_refused_by_name() {
    assert!(have("sfdisk") && have("mkfs.ext4"));
    let tmp = tempfile::tempdir().unwrap();
    // A bzImage header (boot protocol 2.15) with xloadflags 0: no 64-bit entry.
    let mut kernel = vec![0u8; 0x1000];
    kernel[0x202..0x206].copy_from_slice(b"HdrS");
    kernel[0x206..0x208].copy_from_slice(&0x20fu16.to_le_bytes());
    let cfg = format!(
        "set default=0\nmenuentry 'Old 32-bit' {{\n linux /boot/vmlinuz-4.19-686 root=UUID={UUID} ro\n}}\n"
    );
    let root = ext4_image(
        tmp.path(),
        "root",
        8,
        UUID,
        &[
            ("/boot/grub/grub.cfg", cfg.as_bytes()),
            ("/boot/vmlinuz-4.19-686", &kernel),
        ],
        &[],
    );
    let disk = make_disk(
        tmp.path(),
        12,
        "label: dos\nsize=8M, type=83\n",
        &[(1, &root)],
    );
    let err = discover(source(&disk)).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("/boot/vmlinuz-4.19-686 is a 32-bit-only kernel"),
        "{msg}"
    );
    assert!(msg.contains("x86-64 kernels only"), "{msg}");
}
