//! Discovery through LVM2: volumes made by pvcreate/vgcreate/lvcreate/
//! lvextend on a loop device (metadata only: no device-mapper needed), with
//! filesystems written where `lvs` says each segment lives.

mod common;

use boot_discovery::discover;
use common::*;

const FEDORA_BOOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/fedora-bls/boot");

fn big_kernel() -> Vec<u8> {
    (0..3u32 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect()
}

#[test]
fn debian_root_on_lvm_with_two_segments() {
    if !have("losetup") || !have("pvcreate") || !have("sfdisk") || !have("mkfs.ext4") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let disk = make_disk(tmp.path(), 96, "label: dos\nstart=2048, type=8e\n", &[]);
    let vg = format!("ovfrun_test{}", std::process::id());
    let root_lv = format!("{vg}/root");
    let steps: [&[&str]; 4] = [
        &[
            "lvcreate", "-q", "-an", "-Zn", "-y", "-L", "16M", "-n", "boot", &vg,
        ],
        &[
            "lvcreate", "-q", "-an", "-Zn", "-y", "-L", "8M", "-n", "root", &vg,
        ],
        &[
            "lvcreate", "-q", "-an", "-Zn", "-y", "-L", "8M", "-n", "gap", &vg,
        ],
        &["lvextend", "-q", "-y", "-L", "+16M", &root_lv],
    ];
    let Some(map) = make_lvm(&disk, partition_start(&disk, 1), &vg, &steps) else {
        return;
    };
    assert_eq!(
        map["root"].len(),
        2,
        "lvextend should have made a second segment: {map:?}"
    );

    let dm = format!("{vg}-root");
    let cfg = format!("set default=0\nmenuentry 'Debian on LVM' {{\n insmod lvm\n set root='lvm/{dm}'\n linux /boot/vmlinuz-6.1.0-13-amd64 root=/dev/mapper/{dm} ro quiet\n initrd /boot/initrd.img-6.1.0-13-amd64\n}}\n");
    let kernel = big_kernel();
    // The decoy is what a wrong `lvm/…` resolution would find instead.
    let boot = ext4_image(
        tmp.path(),
        "boot",
        16,
        "11111111-2222-4333-8444-555555555555",
        &[
            ("/grub/grub.cfg", cfg.as_bytes()),
            ("/boot/vmlinuz-6.1.0-13-amd64", b"decoy on the wrong volume"),
        ],
        &[],
    );
    let root = ext4_image(
        tmp.path(),
        "root",
        24,
        "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee",
        &[
            ("/boot/vmlinuz-6.1.0-13-amd64", &kernel),
            ("/boot/initrd.img-6.1.0-13-amd64", b"lvm-initrd"),
            ("/etc/fstab", b""),
        ],
        &[],
    );
    write_lv(&disk, &map, "boot", &boot);
    write_lv(&disk, &map, "root", &root);

    let plan = discover(source(&disk)).unwrap();
    let why = plan.reasons.join("\n");
    assert!(plan.kernel == kernel, "wrong kernel bytes; {why}");
    assert_eq!(plan.initrd.as_deref(), Some(&b"lvm-initrd"[..]));
    assert_eq!(
        plan.partition.logical_volume.as_deref(),
        Some(root_lv.as_str())
    );
    assert_eq!(plan.cmdline, format!("root=/dev/mapper/{dm} ro quiet"));
    assert!(
        why.contains(&format!("/grub/grub.cfg on LVM volume {vg}/boot")),
        "{why}"
    );
}

/// The RHEL 8/9 and Fedora server layout: GPT, BIOS boot partition, XFS
/// /boot with grub2 + BLS entries + grubenv `kernelopts`, root and swap
/// as LVM volumes.
#[test]
fn rhel_layout_xfs_boot_bls_and_lvm_root() {
    if !have("losetup")
        || !have("pvcreate")
        || !have("sfdisk")
        || !have("mkfs.xfs")
        || !have("mkfs.ext4")
    {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let read = |p: &str| std::fs::read(format!("{FEDORA_BOOT}/{p}")).unwrap();
    let mut owned: Vec<(String, Vec<u8>)> = vec![
        ("/grub2/grub.cfg".into(), read("grub2/grub.cfg")),
        ("/grub2/grubenv".into(), read("grub2/grubenv")),
    ];
    for e in std::fs::read_dir(format!("{FEDORA_BOOT}/loader/entries")).unwrap() {
        let p = e.unwrap().path();
        owned.push((
            format!(
                "/loader/entries/{}",
                p.file_name().unwrap().to_str().unwrap()
            ),
            std::fs::read(&p).unwrap(),
        ));
    }
    let kernel = big_kernel();
    owned.push(("/vmlinuz-6.5.6-300.fc39.x86_64".into(), kernel.clone()));
    owned.push((
        "/initramfs-6.5.6-300.fc39.x86_64.img".into(),
        b"rhel-initramfs".to_vec(),
    ));
    owned.push(("/vmlinuz-6.5.5-300.fc39.x86_64".into(), b"older".to_vec()));
    let files: Vec<(&str, &[u8])> = owned
        .iter()
        .map(|(p, d)| (p.as_str(), d.as_slice()))
        .collect();
    // grub.cfg searches for this UUID to find /boot.
    let boot = xfs_image(
        tmp.path(),
        "boot",
        64,
        &["-m", "uuid=9e8d7c6b-5a49-4382-9170-6f5e4d3c2b1a"],
        &files,
        &[],
    );
    let script = "label: gpt\nsize=1M, type=21686148-6449-6E6F-744E-656564454649\nsize=64M, type=L\ntype=E6D6D379-F507-44C2-A23C-238F2A3DF928\n";
    let disk = make_disk(tmp.path(), 128, script, &[(2, &boot)]);
    let vg = format!("rhel{}", std::process::id());
    let steps: [&[&str]; 2] = [
        &[
            "lvcreate", "-q", "-an", "-Zn", "-y", "-L", "8M", "-n", "swap", &vg,
        ],
        &[
            "lvcreate", "-q", "-an", "-Zn", "-y", "-L", "32M", "-n", "root", &vg,
        ],
    ];
    let Some(map) = make_lvm(&disk, partition_start(&disk, 3), &vg, &steps) else {
        return;
    };
    let root = ext4_image(
        tmp.path(),
        "root",
        32,
        "3c4d2e1f-0a9b-4c8d-8e7f-6a5b4c3d2e1f",
        &[("/etc/fstab", b"")],
        &[],
    );
    write_lv(&disk, &map, "root", &root);

    let plan = discover(source(&disk)).unwrap();
    let why = plan.reasons.join("\n");
    eprintln!("{}", plan.summary());
    assert!(plan.kernel == kernel, "wrong kernel; {why}");
    assert_eq!(plan.initrd.as_deref(), Some(&b"rhel-initramfs"[..]));
    assert_eq!(plan.partition.number, 2);
    assert_eq!(
        plan.cmdline,
        "root=UUID=3c4d2e1f-0a9b-4c8d-8e7f-6a5b4c3d2e1f ro rootflags=subvol=root rhgb quiet"
    );
    assert!(
        why.contains(
            "readable filesystems: partition 2 (xfs UUID 9e8d7c6b-5a49-4382-9170-6f5e4d3c2b1a)"
        ),
        "{why}"
    );
    assert!(
        why.contains(&format!("LVM volume {vg}/root (ext4")),
        "{why}"
    );
    assert!(
        why.contains("blscfg: 3 Boot Loader Spec entries on partition 2"),
        "{why}"
    );
}
