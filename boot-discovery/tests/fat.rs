//! FAT boot partitions made by mkfs.vfat and filled by mcopy: a systemd-boot
//! EFI system partition holding the kernel and BLS entries, and a syslinux
//! partition with long file names, on FAT32, FAT16 and FAT12.

mod common;

use boot_discovery::discover;
use boot_discovery::fs::{probe, Probe};
use common::*;

#[test]
fn systemd_boot_esp_with_kernel_on_fat32() {
    if !have("mkfs.vfat") || !have("mcopy") || !have("sfdisk") || !have("mkfs.ext4") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let k = fake_kernel("6.6.1-arch1-1");
    let esp = fat_image(
        tmp.path(),
        "esp",
        40,
        32,
        &[
            ("/loader/loader.conf", b"default arch.conf\ntimeout 3\n"),
            ("/loader/entries/arch.conf", b"title   Arch Linux\nlinux   /vmlinuz-linux\ninitrd  /initramfs-linux.img\noptions root=UUID=aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee rw\n"),
            ("/loader/entries/arch-fallback.conf", b"title   Arch Linux (fallback)\nlinux   /vmlinuz-linux\ninitrd  /initramfs-linux-fallback.img\noptions root=UUID=aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee rw\n"),
            ("/vmlinuz-linux", &k),
            ("/initramfs-linux.img", b"arch-initramfs"),
            ("/initramfs-linux-fallback.img", b"fallback"),
            ("/EFI/systemd/systemd-bootx64.efi", b"MZ"),
        ],
    );
    let root = ext4_image(
        tmp.path(),
        "root",
        16,
        "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee",
        &[("/etc/fstab", b"")],
        &[],
    );
    let script = "label: gpt\nsize=40M, type=U\nsize=16M, type=L\n";
    let disk = make_disk(tmp.path(), 64, script, &[(1, &esp), (2, &root)]);
    let plan = discover(source(&disk)).unwrap();
    assert_eq!(plan.kernel, k);
    assert_eq!(plan.initrd.as_deref(), Some(&b"arch-initramfs"[..]));
    assert_eq!(
        plan.cmdline,
        "root=UUID=aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee rw"
    );
    assert_eq!(plan.partition.number, 1);
    let why = plan.reasons.join("\n");
    assert!(why.contains("partition 1 (vfat UUID 1234-ABCD)"), "{why}");
    assert!(why.contains("loader.conf says default arch.conf"), "{why}");
}

#[test]
fn syslinux_on_fat16_and_fat12_with_long_names() {
    if !have("mkfs.vfat") || !have("mcopy") || !have("sfdisk") {
        return;
    }
    for (bits, mib) in [(16u32, 32u64), (12, 4)] {
        let tmp = tempfile::tempdir().unwrap();
        let k = fake_kernel("5.10.0-26-amd64");
        let cfg = b"DEFAULT appliance\nLABEL appliance\n  KERNEL vmlinuz-5.10.0-26-amd64\n  APPEND initrd=initrd.img-5.10.0-26-amd64 root=/dev/sda2 ro console=tty0\n";
        let many: Vec<String> = (0..40)
            .map(|i| format!("/docs/A Rather Long File Name Number {i}.txt"))
            .collect();
        let mut files: Vec<(&str, &[u8])> = vec![
            ("/syslinux.cfg", cfg),
            ("/vmlinuz-5.10.0-26-amd64", &k),
            ("/initrd.img-5.10.0-26-amd64", b"fat-initrd"),
        ];
        files.extend(many.iter().map(|n| (n.as_str(), &b"doc"[..])));
        let boot = fat_image(tmp.path(), "boot", mib, bits, &files);
        let Probe::Fs(fs) = probe(source(&boot)) else {
            panic!("FAT{bits} not recognised")
        };
        let docs = fs.list_dir("/DOCS").unwrap().unwrap();
        assert_eq!(docs.len(), 40, "FAT{bits}: {docs:?}");
        assert!(
            docs.iter()
                .any(|d| d == "A Rather Long File Name Number 39.txt"),
            "{docs:?}"
        );
        assert_eq!(
            fs.read_file("/docs/a rather long file name number 7.TXT", 100)
                .unwrap()
                .unwrap(),
            b"doc"
        );

        let disk = make_disk(
            tmp.path(),
            mib + 2,
            "label: dos\nstart=2048, type=e, bootable\n",
            &[(1, &boot)],
        );
        let plan = discover(source(&disk)).unwrap_or_else(|e| panic!("FAT{bits}: {e}"));
        assert_eq!(plan.kernel, k, "FAT{bits}");
        assert_eq!(plan.initrd.as_deref(), Some(&b"fat-initrd"[..]));
        assert_eq!(plan.cmdline, "root=/dev/sda2 ro console=tty0");
        assert_eq!(plan.kernel_path, "/vmlinuz-5.10.0-26-amd64");
    }
}
