//! Booting from btrfs subvolumes, on images made by mkfs.btrfs
//! (btrfs-progs >= 6.7 from `scripts/setup-deps`, `--subvol`): the
//! subvolume list and default subvolume, an Ubuntu-style disk (root in
//! `@`, the top level default, GRUB naming `/@/boot/vmlinuz-…` and
//! `rootflags=subvol=@`) discovered whole with its virtio drivers taken
//! from `@/lib/modules`, an openSUSE-style default subvolume, and damaged
//! metadata.

mod common;

use boot_discovery::drivers::{self, State};
use boot_discovery::fs::{BootFs, BtrfsFs};
use common::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

const REL: &str = "6.1.0-13-amd64";
const UUID: &str = "7b1f6a52-2c7e-4d0b-9a51-3c2d1e0f9a88";
const DEP: &str = "kernel/drivers/virtio/virtio.ko:
kernel/drivers/virtio/virtio_ring.ko:
kernel/drivers/virtio/virtio_pci.ko: kernel/drivers/virtio/virtio_ring.ko kernel/drivers/virtio/virtio.ko
kernel/drivers/block/virtio_blk.ko: kernel/drivers/virtio/virtio_ring.ko kernel/drivers/virtio/virtio.ko
kernel/drivers/net/virtio_net.ko: kernel/drivers/virtio/virtio_ring.ko kernel/drivers/virtio/virtio.ko
";

fn image(tmp: &Path, staging: &Path, args: &[&str]) -> PathBuf {
    let img = tmp.join("btrfs.img");
    std::fs::File::create(&img)
        .unwrap()
        .set_len(128 * MIB)
        .unwrap();
    run(Command::new(btrfs_mkfs())
        .args(["-q", "-f", "-n", "4096", "-U", UUID, "--rootdir"])
        .arg(staging)
        .args(args)
        .arg(&img));
    img
}

/// An uncompressed initramfs-tools archive with only vmw_pvscsi.
fn vmware_initramfs(tmp: &Path) -> Vec<u8> {
    let d = tmp.join("initramfs.d");
    let m = format!("lib/modules/{REL}");
    stage(
        &d,
        &[
            ("conf/initramfs.conf", b"MODULES=list\n"),
            ("conf/modules", b"vmw_pvscsi"),
            ("scripts/functions", b"# initramfs-tools\n"),
            (&format!("{m}/kernel/drivers/scsi/vmw_pvscsi.ko"), b"ko"),
            (
                &format!("{m}/modules.dep"),
                b"kernel/drivers/scsi/vmw_pvscsi.ko:\n",
            ),
        ],
        &[],
    );
    let list = run(Command::new("find").arg(".").current_dir(&d));
    let mut child = Command::new("cpio")
        .args(["-o", "-H", "newc", "--quiet"])
        .current_dir(&d)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("cpio (scripts/setup-deps installs it)");
    let mut stdin = child.stdin.take().unwrap();
    std::io::Write::write_all(&mut stdin, list.as_bytes()).unwrap();
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    out.stdout
}

/// Files of a root filesystem under `root` in the staging directory:
/// kernel, initrd, GRUB config, the release's module tree.
fn root_files(root: &str, cfg_dir: &str, cfg: &str, initrd: &[u8]) -> Vec<(String, Vec<u8>)> {
    let m = format!("{root}/lib/modules/{REL}");
    let mut files = vec![
        (
            format!("{root}/{cfg_dir}/grub.cfg"),
            cfg.as_bytes().to_vec(),
        ),
        (format!("{root}/boot/vmlinuz-{REL}"), fake_kernel(REL)),
        (format!("{root}/boot/initrd.img-{REL}"), initrd.to_vec()),
        (format!("{m}/modules.dep"), DEP.as_bytes().to_vec()),
        (format!("{m}/modules.builtin"), b"".to_vec()),
    ];
    for line in DEP.lines() {
        let path = line.split(':').next().unwrap();
        files.push((format!("{m}/{path}"), format!("module {path}").into_bytes()));
    }
    files
}

fn stage_all(dir: &Path, files: &[(String, Vec<u8>)]) {
    let refs: Vec<(&str, &[u8])> = files.iter().map(|(p, d)| (p.as_str(), &d[..])).collect();
    stage(dir, &refs, &[]);
}

#[test]
fn ubuntu_layout_discovers_and_takes_drivers_from_the_subvolume() {
    let tmp = tempfile::tempdir().unwrap();
    let initrd = vmware_initramfs(tmp.path());
    let cfg = format!(
        "set default=0\nmenuentry 'Ubuntu' {{\n  search --no-floppy --fs-uuid --set=root {UUID}\n  linux /@/boot/vmlinuz-{REL} root=UUID={UUID} ro rootflags=subvol=@ quiet\n  initrd /@/boot/initrd.img-{REL}\n}}\n"
    );
    let st = tmp.path().join("root");
    let mut files = root_files("/@", "boot/grub", &cfg, &initrd);
    // A decoy module tree at the top level, without virtio: only
    // rootflags=subvol=@ tells the kernel's root apart from it.
    files.push((
        format!("/lib/modules/{REL}/modules.dep"),
        b"kernel/drivers/scsi/vmw_pvscsi.ko:\n".to_vec(),
    ));
    files.push(("/@home/user/notes".into(), b"n".to_vec()));
    stage_all(&st, &files);
    let img = image(tmp.path(), &st, &["-u", "@", "-u", "@home"]);

    let fs = BtrfsFs::open(source(&img)).unwrap();
    assert_eq!(fs.default_subvolume_id(), 5);
    let subs = fs.subvolumes().unwrap();
    let mut paths: Vec<&str> = subs.iter().map(|s| s.path.as_str()).collect();
    paths.sort();
    assert_eq!(paths, ["@", "@home"], "{subs:?}");
    let home = subs.iter().find(|s| s.path == "@home").unwrap();
    let at_id = subs.iter().find(|s| s.path == "@").unwrap().id;
    assert_eq!(fs.root_prefixes(Some("subvol=@")), ["/@"]);
    assert_eq!(fs.root_prefixes(Some("compress=zstd,subvol=/@/")), ["/@"]);
    assert_eq!(
        fs.root_prefixes(Some(&format!("subvolid={}", home.id))),
        ["/@home"]
    );
    let guesses = fs.root_prefixes(None);
    assert_eq!(guesses.len(), 3);
    assert_eq!(guesses[0], "", "the default (top level) first: {guesses:?}");
    assert_eq!(
        fs.read_file("/@home/user/notes", 10).unwrap().unwrap(),
        b"n"
    );
    // Ubuntu's GRUB looks in /@/boot/grub; a path not at the top is tried in @.
    assert!(fs.read_file("/boot/grub/grub.cfg", 4096).unwrap().is_some());

    let disk = make_disk(tmp.path(), 136, "label: dos\n,,L,*\n", &[(1, &img)]);
    let src = source(&disk);
    let plan = boot_discovery::discover(src.clone()).unwrap();
    assert_eq!(plan.kernel_path, format!("/@/boot/vmlinuz-{REL}"));
    assert_eq!(plan.kernel, fake_kernel(REL));
    assert_eq!(plan.initrd.as_deref(), Some(&initrd[..]));
    assert!(
        plan.cmdline.contains("rootflags=subvol=@"),
        "{}",
        plan.cmdline
    );
    let why = plan.reasons.join("\n");
    assert!(why.contains("btrfs"), "{why}");
    let seen = boot_discovery::volumes::scan(src.clone())
        .unwrap()
        .findings
        .join("\n");
    assert!(
        seen.contains(&format!("@ (id {at_id})"))
            && seen.contains("default subvolume: the top level"),
        "{seen}"
    );

    let report = drivers::prepare(src, &plan).unwrap();
    eprintln!("{}", report.summary());
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    assert!(
        report.modules.iter().all(|m| m.state == State::Added),
        "{:?}",
        report.modules
    );
    assert!(
        report.added.iter().any(|a| a.ends_with("virtio_blk.ko")),
        "{:?}",
        report.added
    );
}

#[test]
fn opensuse_default_subvolume() {
    let tmp = tempfile::tempdir().unwrap();
    let initrd = vmware_initramfs(tmp.path());
    let cfg = format!(
        "set default=0\nmenuentry 'openSUSE' {{\n  linux /boot/vmlinuz-{REL} root=UUID={UUID} ro\n  initrd /boot/initrd.img-{REL}\n}}\n"
    );
    let st = tmp.path().join("root");
    stage_all(
        &st,
        &root_files("/@/.snapshots/1/snapshot", "boot/grub2", &cfg, &initrd),
    );
    let img = image(
        tmp.path(),
        &st,
        &["-u", "@", "-u", "default:@/.snapshots/1/snapshot"],
    );
    let fs = BtrfsFs::open(source(&img)).unwrap();
    let subs = fs.subvolumes().unwrap();
    let snap = subs
        .iter()
        .find(|s| s.path == "@/.snapshots/1/snapshot")
        .unwrap();
    assert_eq!(fs.default_subvolume_id(), snap.id, "{subs:?}");
    assert_eq!(fs.root_prefixes(None)[0], "/@/.snapshots/1/snapshot");
    assert_eq!(fs.root_prefixes(Some("subvolid=5")), [""]);
    // Relative to the default subvolume, as openSUSE's GRUB reads it.
    assert_eq!(
        fs.read_file(&format!("/boot/vmlinuz-{REL}"), 1 << 20)
            .unwrap()
            .unwrap(),
        fake_kernel(REL)
    );
    let plan = boot_discovery::discover(source(&img)).unwrap();
    assert_eq!(plan.kernel_path, format!("/boot/vmlinuz-{REL}"));
    let report = drivers::prepare(source(&img), &plan).unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    assert!(
        report.added.iter().any(|a| a.ends_with("virtio_pci.ko")),
        "{:?}",
        report.added
    );
}

/// Debian's installer: root in `@rootfs`, top level default; Fedora's:
/// `root`. GRUB's config is found inside the subvolume.
#[test]
fn debian_and_fedora_root_subvolume_names() {
    for (sub, cfg_dir) in [("@rootfs", "boot/grub"), ("root", "boot/grub2")] {
        let tmp = tempfile::tempdir().unwrap();
        let initrd = vmware_initramfs(tmp.path());
        let cfg = format!(
            "set default=0\nmenuentry 'Linux' {{\n  linux /{sub}/boot/vmlinuz-{REL} root=UUID={UUID} ro rootflags=subvol={sub}\n  initrd /{sub}/boot/initrd.img-{REL}\n}}\n"
        );
        let st = tmp.path().join("root");
        stage_all(&st, &root_files(&format!("/{sub}"), cfg_dir, &cfg, &initrd));
        let img = image(tmp.path(), &st, &["-u", sub]);
        let plan = boot_discovery::discover(source(&img)).unwrap();
        assert_eq!(plan.kernel_path, format!("/{sub}/boot/vmlinuz-{REL}"));
        let report = drivers::prepare(source(&img), &plan).unwrap();
        assert!(report.problems.is_empty(), "{sub}: {:?}", report.problems);
        assert!(
            report.added.iter().any(|a| a.ends_with("virtio_blk.ko")),
            "{sub}"
        );
    }
}
