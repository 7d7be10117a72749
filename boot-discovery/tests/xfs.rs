//! Discovery on XFS made by mkfs.xfs with a protofile (no mount needed):
//! every directory form (short-form, block, leaf/node, btree), a kernel
//! spread over extents, symlinks.

mod common;

use boot_discovery::discover;
use boot_discovery::fs::{probe, Probe};
use common::*;

const CFG: &str = include_str!("data/debian-bookworm-grub.cfg");
const CFG_UUID: &str = "6f0b8f1e-5e2a-4b3c-9d8e-7f6a5b4c3d2e";

pub fn big_kernel() -> Vec<u8> {
    // 3 MiB of non-repeating bytes, so extent mapping errors show.
    (0..3u32 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect()
}

/// A Debian-style XFS root: /boot/grub/grub.cfg, a kernel, /boot padded with
/// `extra` files (which decides the directory form), a /vmlinuz symlink.
fn debian_root(tmp: &std::path::Path, kernel: &[u8], extra: usize) -> std::path::PathBuf {
    let names: Vec<String> = (0..extra)
        .map(|i| format!("/boot/config-6.1.0-{i}-amd64-with-a-long-name"))
        .collect();
    let mut files: Vec<(&str, &[u8])> = names.iter().map(|n| (n.as_str(), &b"x"[..])).collect();
    files.extend([
        ("/boot/vmlinuz-6.1.0-13-amd64", kernel),
        ("/boot/initrd.img-6.1.0-13-amd64", &b"xfs-initrd"[..]),
        ("/boot/grub/grub.cfg", CFG.as_bytes()),
        ("/etc/fstab", &b""[..]),
    ]);
    xfs_image(
        tmp,
        "xfs",
        320,
        &["-m", &format!("uuid={CFG_UUID}")],
        &files,
        &[("/vmlinuz", "boot/vmlinuz-6.1.0-13-amd64")],
    )
}

#[test]
fn xfs_whole_disk_grub_root() {
    if !have("mkfs.xfs") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let k = big_kernel();
    let img = debian_root(tmp.path(), &k, 600);
    let plan = discover(source(&img)).unwrap();
    assert!(plan.kernel == k, "kernel bytes differ");
    assert_eq!(plan.initrd.as_deref(), Some(&b"xfs-initrd"[..]));
    assert_eq!(plan.kernel_path, "/boot/vmlinuz-6.1.0-13-amd64");
    let why = plan.reasons.join("\n");
    assert!(why.contains(&format!("xfs UUID {CFG_UUID}")), "{why}");
}

#[test]
fn xfs_directory_forms_and_symlinks() {
    if !have("mkfs.xfs") {
        return;
    }
    // 0: short-form in the inode; 40: one block; 600: leaf/node; 3000: btree.
    for n in [0usize, 40, 600, 3000] {
        let tmp = tempfile::tempdir().unwrap();
        let img = debian_root(tmp.path(), b"tiny kernel", n);
        let Probe::Fs(fs) = probe(source(&img)) else {
            panic!("not xfs")
        };
        let names = fs.list_dir("/boot").unwrap().unwrap();
        assert_eq!(names.len(), n + 3, "with {n} extra files");
        assert_eq!(
            fs.read_file("/vmlinuz", 1 << 20).unwrap().unwrap(),
            b"tiny kernel"
        );
        assert_eq!(
            fs.read_link("/vmlinuz").unwrap().unwrap(),
            "boot/vmlinuz-6.1.0-13-amd64"
        );
        assert_eq!(
            fs.read_file("/boot/../boot/./grub/grub.cfg", 1 << 20)
                .unwrap()
                .unwrap(),
            CFG.as_bytes()
        );
        assert!(fs.read_file("/boot/missing", 1 << 20).unwrap().is_none());
        assert!(fs.read_file("/boot", 1 << 20).unwrap().is_none());
        assert!(
            fs.read_file("/boot/vmlinuz-6.1.0-13-amd64", 4).is_err(),
            "size limit"
        );
        assert_eq!(fs.uuid().as_deref(), Some(CFG_UUID));
    }
}
