//! Discovery against disk images made with the real tools: sfdisk, mkfs.ext4
//! (`-d` populates from a staging directory, no mount needed), mkswap.
//!
//! A test whose tool is missing fails and says what to install
//! (scripts/setup-deps installs them all).

mod common;

use boot_discovery::{discover, DiscoveryError, TableKind};
use common::*;
use std::process::Command;

const DEBIAN_CFG: &str = include_str!("data/debian-bookworm-grub.cfg");
const CFG_UUID: &str = "6f0b8f1e-5e2a-4b3c-9d8e-7f6a5b4c3d2e";

#[test]
fn mbr_separate_boot_on_primary_root_on_logical() {
    if !have("sfdisk") || !have("mkfs.ext4") || !have("mkswap") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let boot_uuid = "11111111-2222-4333-8444-555555555555";
    let root_uuid = "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee";
    // Debian with a separate /boot: paths are relative to /boot's filesystem.
    let cfg = DEBIAN_CFG
        .replace("/boot/vmlinuz", "/vmlinuz")
        .replace("/boot/initrd", "/initrd")
        .replace(
            &format!("--set=root {CFG_UUID}"),
            &format!("--set=root {boot_uuid}"),
        )
        .replace(
            &format!("msdos1  {CFG_UUID}"),
            &format!("msdos1  {boot_uuid}"),
        )
        .replace(
            &format!("root=UUID={CFG_UUID}"),
            &format!("root=UUID={root_uuid}"),
        );
    let k = fake_kernel("6.1.0-13-amd64");
    let boot = ext4_image(
        tmp.path(),
        "boot",
        16,
        boot_uuid,
        &[
            ("/grub/grub.cfg", cfg.as_bytes()),
            ("/vmlinuz-6.1.0-13-amd64", &k),
            ("/initrd.img-6.1.0-13-amd64", b"initrd-13"),
            ("/vmlinuz-6.1.0-12-amd64", b"old"),
        ],
        &[],
    );
    let root = ext4_image(
        tmp.path(),
        "root",
        24,
        root_uuid,
        &[("/etc/fstab", b"UUID=aaaaaaaa / ext4 defaults 0 1\n")],
        &[("/vmlinuz", "boot/vmlinuz-6.1.0-13-amd64")],
    );
    let swap = tmp.path().join("swap.img");
    std::fs::File::create(&swap)
        .unwrap()
        .set_len(8 * MIB)
        .unwrap();
    run(Command::new("mkswap").arg("-q").arg(&swap));
    let script = "label: dos\nstart=2048, size=16M, type=83, bootable\nstart=34816, type=5\nsize=24M, type=83\ntype=82\n";
    let disk = make_disk(
        tmp.path(),
        64,
        script,
        &[(1, &boot), (5, &root), (6, &swap)],
    );

    let plan = discover(source(&disk)).unwrap();
    assert_eq!(plan.kernel, k);
    assert_eq!(plan.initrd.as_deref(), Some(&b"initrd-13"[..]));
    assert_eq!(plan.kernel_path, "/vmlinuz-6.1.0-13-amd64");
    assert_eq!(plan.partition.number, 1);
    assert_eq!(plan.partition.table, TableKind::Mbr);
    assert_eq!(plan.entry_title, "Debian GNU/Linux");
    assert_eq!(
        plan.cmdline,
        format!("root=UUID={root_uuid} ro console=tty0 console=ttyS0,115200n8 quiet")
    );
    let why = plan.reasons.join("\n");
    assert!(why.contains("GRUB 2, /grub/grub.cfg on partition 1 (ext4 UUID 11111111-2222-4333-8444-555555555555)"), "{why}");
    assert!(
        why.contains("no default set") || why.contains("default=\"0\""),
        "{why}"
    );
    eprintln!("{why}");
}

#[test]
fn gpt_root_with_boot_dir_and_saved_submenu_entry() {
    if !have("sfdisk") || !have("mkfs.ext4") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let cfg = include_str!("data/debian-bookworm-grub-saved.cfg").replace("msdos1", "gpt2");
    let env = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/debian-grubenv"
    ))
    .unwrap();
    let k12 = fake_kernel("6.1.0-12-amd64");
    let root = ext4_image(
        tmp.path(),
        "root",
        40,
        CFG_UUID,
        &[
            ("/boot/grub/grub.cfg", cfg.as_bytes()),
            ("/boot/grub/grubenv", &env),
            ("/boot/vmlinuz-6.1.0-13-amd64", b"new"),
            ("/boot/initrd.img-6.1.0-13-amd64", b"i13"),
            ("/boot/vmlinuz-6.1.0-12-amd64", &k12),
            ("/boot/initrd.img-6.1.0-12-amd64", b"i12"),
            ("/etc/fstab", b""),
        ],
        &[("/vmlinuz", "boot/vmlinuz-6.1.0-13-amd64")],
    );
    let script = "label: gpt\nsize=1M, type=21686148-6449-6E6F-744E-656564454649\nsize=40M, type=L, name=root\n";
    let disk = make_disk(tmp.path(), 48, script, &[(2, &root)]);
    let plan = discover(source(&disk)).unwrap();
    assert_eq!(plan.partition.table, TableKind::Gpt);
    assert_eq!(plan.partition.number, 2);
    assert_eq!(plan.partition.name.as_deref(), Some("root"));
    assert_eq!(plan.kernel, k12);
    assert_eq!(plan.initrd.as_deref(), Some(&b"i12"[..]));
    assert_eq!(plan.kernel_path, "/boot/vmlinuz-6.1.0-12-amd64");
    let why = plan.reasons.join("\n");
    assert!(why.contains("saved_entry"), "{why}");
    eprintln!("{why}");
}

#[test]
fn fedora_bls_on_separate_boot() {
    if !have("sfdisk") || !have("mkfs.ext4") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let data = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/fedora-bls/boot");
    let mut files: Vec<(String, Vec<u8>)> = Vec::new();
    for sub in ["grub2/grub.cfg", "grub2/grubenv"] {
        files.push((
            format!("/{sub}"),
            std::fs::read(format!("{data}/{sub}")).unwrap(),
        ));
    }
    for e in std::fs::read_dir(format!("{data}/loader/entries")).unwrap() {
        let p = e.unwrap().path();
        files.push((
            format!(
                "/loader/entries/{}",
                p.file_name().unwrap().to_str().unwrap()
            ),
            std::fs::read(&p).unwrap(),
        ));
    }
    let k = fake_kernel("6.5.6-300.fc39.x86_64");
    files.push(("/vmlinuz-6.5.6-300.fc39.x86_64".into(), k.clone()));
    files.push((
        "/initramfs-6.5.6-300.fc39.x86_64.img".into(),
        b"fedora-initramfs".to_vec(),
    ));
    files.push(("/vmlinuz-6.5.5-300.fc39.x86_64".into(), b"older".to_vec()));
    let refs: Vec<(&str, &[u8])> = files
        .iter()
        .map(|(p, d)| (p.as_str(), d.as_slice()))
        .collect();
    // The UUID grub.cfg searches for.
    let boot = ext4_image(
        tmp.path(),
        "boot",
        16,
        "9e8d7c6b-5a49-4382-9170-6f5e4d3c2b1a",
        &refs,
        &[],
    );
    let root = ext4_image(
        tmp.path(),
        "root",
        16,
        "3c4d2e1f-0a9b-4c8d-8e7f-6a5b4c3d2e1f",
        &[("/etc/fstab", b"")],
        &[],
    );
    let script = "label: gpt\nsize=1M, type=21686148-6449-6E6F-744E-656564454649\nsize=16M, type=L\nsize=16M, type=L\n";
    let disk = make_disk(tmp.path(), 40, script, &[(2, &boot), (3, &root)]);
    let plan = discover(source(&disk)).unwrap();
    assert_eq!(plan.kernel, k);
    assert_eq!(plan.initrd.as_deref(), Some(&b"fedora-initramfs"[..]));
    assert_eq!(
        plan.entry_title,
        "Fedora Linux (6.5.6-300.fc39.x86_64) 39 (Thirty Nine)"
    );
    assert_eq!(
        plan.cmdline,
        "root=UUID=3c4d2e1f-0a9b-4c8d-8e7f-6a5b4c3d2e1f ro rootflags=subvol=root rhgb quiet"
    );
    assert_eq!(plan.partition.number, 2);
    let why = plan.reasons.join("\n");
    assert!(why.contains("blscfg: 3 Boot Loader Spec entries"), "{why}");
    eprintln!("{why}");
}

#[test]
fn whole_disk_ext4_with_only_links() {
    if !have("mkfs.ext4") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let k = fake_kernel("6.1.0-13-amd64");
    let disk = ext4_image(
        tmp.path(),
        "whole",
        16,
        "12345678-1234-4234-8234-123456789abc",
        &[
            ("/boot/vmlinuz-6.1.0-13-amd64", &k),
            ("/boot/initrd.img-6.1.0-13-amd64", b"ird"),
            ("/etc/fstab", b""),
        ],
        &[
            ("/vmlinuz", "boot/vmlinuz-6.1.0-13-amd64"),
            ("/initrd.img", "boot/initrd.img-6.1.0-13-amd64"),
        ],
    );
    let plan = discover(source(&disk)).unwrap();
    assert_eq!(plan.partition.table, TableKind::None);
    assert_eq!(plan.kernel, k);
    assert_eq!(plan.initrd.as_deref(), Some(&b"ird"[..]));
    assert_eq!(
        plan.cmdline,
        "root=UUID=12345678-1234-4234-8234-123456789abc ro"
    );
    assert_eq!(plan.kernel_path, "/vmlinuz -> boot/vmlinuz-6.1.0-13-amd64");
}

#[test]
fn extlinux_on_mbr() {
    if !have("sfdisk") || !have("mkfs.ext4") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let cfg = include_bytes!("data/extlinux.conf");
    let k = fake_kernel("6.1.0-13-amd64");
    let root = ext4_image(
        tmp.path(),
        "root",
        16,
        CFG_UUID,
        &[
            ("/boot/extlinux/extlinux.conf", cfg),
            ("/boot/vmlinuz-6.1.0-13-amd64", &k),
            ("/boot/initrd.img-6.1.0-13-amd64", b"x"),
        ],
        &[],
    );
    let disk = make_disk(
        tmp.path(),
        20,
        "label: dos\nstart=2048, type=83\n",
        &[(1, &root)],
    );
    let plan = discover(source(&disk)).unwrap();
    assert_eq!(plan.kernel, k);
    assert_eq!(plan.cmdline, format!("root=UUID={CFG_UUID} ro quiet"));
    assert!(plan.reasons.join("\n").contains("DEFAULT l0"));
}

#[test]
fn nothing_bootable_says_what_was_found() {
    if !have("sfdisk") || !have("mkfs.ext4") || !have("mkswap") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let data = ext4_image(
        tmp.path(),
        "data",
        8,
        CFG_UUID,
        &[("/README", b"no kernel here")],
        &[],
    );
    let swap = tmp.path().join("swap.img");
    std::fs::File::create(&swap)
        .unwrap()
        .set_len(4 * MIB)
        .unwrap();
    run(Command::new("mkswap").arg("-q").arg(&swap));
    let disk = make_disk(
        tmp.path(),
        20,
        "label: gpt\nsize=8M, type=L\nsize=4M, type=S\nsize=4M, type=L\n",
        &[(1, &data)],
    );
    let err = discover(source(&disk)).unwrap_err();
    let DiscoveryError::NothingBootable { report } = &err else {
        panic!("{err}")
    };
    let msg = err.to_string();
    eprintln!("{msg}");
    assert!(report.contains("partition table GPT"), "{report}");
    assert!(report.contains(&format!("partition 1 at 1 MiB, 8.0 MiB, type Linux filesystem (0FC63DAF-8483-4772-8E79-3D69D8477DE4): ext4 filesystem, UUID {CFG_UUID}")), "{report}");
    assert!(
        report.contains("partition 2") && report.contains("Linux swap"),
        "{report}"
    );
    assert!(
        report.contains("partition 3") && report.contains("no filesystem recognised"),
        "{report}"
    );
    assert!(
        report.contains("/boot/grub/grub.cfg") && report.contains("/vmlinuz"),
        "{report}"
    );
    assert!(
        report.contains("missing: a boot loader configuration"),
        "{report}"
    );
}

#[test]
fn missing_grub_kernel_falls_back_to_links_and_says_so() {
    if !have("mkfs.ext4") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let k = fake_kernel("6.1.0-99-amd64");
    // grub.cfg names 6.1.0-13, which was removed; only the links remain valid.
    let disk = ext4_image(
        tmp.path(),
        "stale",
        16,
        CFG_UUID,
        &[
            ("/boot/grub/grub.cfg", DEBIAN_CFG.as_bytes()),
            ("/boot/vmlinuz-6.1.0-99-amd64", &k),
            ("/etc/fstab", b""),
        ],
        &[("/vmlinuz", "boot/vmlinuz-6.1.0-99-amd64")],
    );
    let plan = discover(source(&disk)).unwrap();
    assert_eq!(plan.kernel, k);
    let why = plan.reasons.join("\n");
    assert!(
        why.contains("kernel /boot/vmlinuz-6.1.0-13-amd64")
            && why.contains("trying the next way to boot"),
        "{why}"
    );
    assert!(why.contains("using the /vmlinuz link"), "{why}");
}

#[test]
fn bls_without_grub_uses_loader_conf_default() {
    if !have("mkfs.ext4") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let entry = |v: &str| {
        format!("title Linux {v}\nversion {v}\nlinux /vmlinuz-{v}\ninitrd /initrd-{v}\noptions root=LABEL=root ro\n")
    };
    let (e1, e2) = (entry("6.1.1"), entry("6.2.0"));
    let k = fake_kernel("6.1.1");
    let disk = ext4_image(
        tmp.path(),
        "sdboot",
        16,
        CFG_UUID,
        &[
            ("/loader/loader.conf", b"timeout 3\ndefault  old-*\n"),
            ("/loader/entries/old-6.1.1.conf", e1.as_bytes()),
            ("/loader/entries/new-6.2.0.conf", e2.as_bytes()),
            ("/vmlinuz-6.1.1", &k),
            ("/initrd-6.1.1", b"i"),
            ("/vmlinuz-6.2.0", b"newer"),
            ("/initrd-6.2.0", b"i"),
        ],
        &[],
    );
    let plan = discover(source(&disk)).unwrap();
    assert_eq!(plan.kernel, k);
    assert_eq!(plan.cmdline, "root=LABEL=root ro");
    assert!(plan
        .reasons
        .join("\n")
        .contains("loader.conf says default old-*"));
}

#[test]
fn several_initrds_are_concatenated_4_byte_aligned() {
    if !have("mkfs.ext4") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let cfg = "menuentry 'ucode' {\n linux /boot/vmlinuz ro\n initrd /boot/intel-ucode.img /boot/initramfs.img\n}\n";
    let disk = ext4_image(
        tmp.path(),
        "multi",
        8,
        CFG_UUID,
        &[
            ("/boot/grub/grub.cfg", cfg.as_bytes()),
            ("/boot/vmlinuz", b"k"),
            ("/boot/intel-ucode.img", b"ucode"),
            ("/boot/initramfs.img", b"main"),
        ],
        &[],
    );
    let plan = discover(source(&disk)).unwrap();
    assert_eq!(plan.initrd.as_deref(), Some(&b"ucode\0\0\0main"[..]));
    assert_eq!(
        plan.initrd_path.as_deref(),
        Some("/boot/intel-ucode.img /boot/initramfs.img")
    );
}

#[test]
fn ext2_and_ext3_without_extents() {
    for mkfs in ["mkfs.ext2", "mkfs.ext3"] {
        if !have(mkfs) {
            return;
        }
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("d");
        let k = fake_kernel("2.6.32");
        stage(
            &dir,
            &[
                ("/boot/grub/grub.cfg", DEBIAN_CFG.as_bytes()),
                ("/boot/vmlinuz-6.1.0-13-amd64", &k),
                ("/boot/initrd.img-6.1.0-13-amd64", b"old-style"),
            ],
            &[],
        );
        let img = tmp.path().join("fs.img");
        run(Command::new(mkfs)
            .args(["-q", "-F", "-U", CFG_UUID, "-d"])
            .arg(&dir)
            .arg(&img)
            .arg("8M"));
        let plan = discover(source(&img)).unwrap_or_else(|e| panic!("{mkfs}: {e}"));
        assert_eq!(plan.kernel, k, "{mkfs}");
        assert_eq!(plan.initrd.as_deref(), Some(&b"old-style"[..]));
    }
}
