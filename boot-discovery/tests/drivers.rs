//! Virtio driver injection against real artefacts: an ext4 root made by
//! mkfs.ext4 -d on an sfdisk-partitioned disk, an initramfs made by
//! `cpio -o -H newc` and `gzip`/`zstd` (with an early microcode archive
//! first), and the result unpacked by the real `cpio -i` the way the kernel
//! does (appended archive last) and resolved by the real `modprobe`.

mod common;

use boot_discovery::drivers::{self, State};
use common::*;
use std::path::Path;
use std::process::{Command, Stdio};

const REL: &str = "4.19.0-27-amd64";
const ROOT_UUID: &str = "3f1c2d4e-5a6b-4c7d-8e9f-0a1b2c3d4e5f";

const DEP: &str = "kernel/drivers/scsi/vmw_pvscsi.ko.xz:
kernel/drivers/virtio/virtio.ko.xz:
kernel/drivers/virtio/virtio_ring.ko.xz:
kernel/drivers/virtio/virtio_pci.ko.xz: kernel/drivers/virtio/virtio_ring.ko.xz kernel/drivers/virtio/virtio.ko.xz
kernel/drivers/block/virtio_blk.ko.xz: kernel/drivers/virtio/virtio_ring.ko.xz kernel/drivers/virtio/virtio.ko.xz
kernel/drivers/net/virtio_net.ko.xz: kernel/drivers/net/net_failover.ko.xz kernel/net/core/failover.ko.xz kernel/drivers/virtio/virtio_ring.ko.xz kernel/drivers/virtio/virtio.ko.xz
kernel/drivers/net/net_failover.ko.xz: kernel/net/core/failover.ko.xz
kernel/net/core/failover.ko.xz:
";

fn pipe(cmd: &str, args: &[&str], dir: &Path, input: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut child = Command::new(cmd)
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {cmd} (scripts/setup-deps installs it): {e}"));
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_vec();
    let t = std::thread::spawn(move || stdin.write_all(&input));
    let out = child.wait_with_output().unwrap();
    t.join().unwrap().unwrap();
    assert!(out.status.success(), "{cmd} {args:?} failed");
    out.stdout
}

fn cpio_of(dir: &Path) -> Vec<u8> {
    let list = run(Command::new("find").arg(".").current_dir(dir));
    pipe(
        "cpio",
        &["-o", "-H", "newc", "--quiet"],
        dir,
        list.as_bytes(),
    )
}

/// Module files: real xz data (the content is not looked at).
fn ko(name: &str) -> Vec<u8> {
    pipe(
        "xz",
        &["-c"],
        Path::new("/"),
        format!("module {name}").as_bytes(),
    )
}

/// An initramfs-tools image as MODULES=list on VMware leaves it: vmw_pvscsi
/// only, udev, microcode first; compressed by `tool`.
fn vmware_initramfs(tmp: &Path, tool: &str) -> Vec<u8> {
    let d = tmp.join("initramfs.d");
    let m = format!("lib/modules/{REL}");
    stage(
        &d,
        &[
            ("conf/initramfs.conf", b"MODULES=list\nCOMPRESS=gzip\n"),
            ("conf/modules", b"vmw_pvscsi"),
            ("scripts/functions", b"# initramfs-tools\n"),
            ("lib/systemd/systemd-udevd", b"\x7fELF"),
            (
                &format!("{m}/kernel/drivers/scsi/vmw_pvscsi.ko.xz"),
                &ko("vmw_pvscsi"),
            ),
            (
                &format!("{m}/modules.dep"),
                b"kernel/drivers/scsi/vmw_pvscsi.ko.xz:\n",
            ),
            (&format!("{m}/modules.alias.bin"), b"\xb0\x07\xf4\x57"),
        ],
        &[],
    );
    let u = tmp.join("ucode.d");
    stage(
        &u,
        &[("kernel/x86/microcode/GenuineIntel.bin", b"ucode")],
        &[],
    );
    let mut image = cpio_of(&u);
    image.extend(pipe(tool, &["-c"], &d, &cpio_of(&d)));
    image
}

/// A disk with one ext4 partition holding /boot (grub.cfg naming
/// root=/dev/sda1) and the release's module tree.
fn appliance_disk(tmp: &Path, initrd: &[u8], builtin: &str) -> std::path::PathBuf {
    let m = format!("/lib/modules/{REL}");
    let cfg = format!(
        "set default=0\nmenuentry 'Debian (VMware export)' {{\n  linux /boot/vmlinuz-{REL} root=/dev/sda1 ro quiet\n  initrd /boot/initrd.img-{REL}\n}}\n"
    );
    let mut files: Vec<(String, Vec<u8>)> = vec![
        ("/boot/grub/grub.cfg".into(), cfg.into_bytes()),
        (format!("/boot/vmlinuz-{REL}"), fake_kernel(REL)),
        (format!("/boot/initrd.img-{REL}"), initrd.to_vec()),
        (
            "/etc/fstab".into(),
            b"/dev/sda1 / ext4 defaults 0 1\n".to_vec(),
        ),
        (format!("{m}/modules.dep"), DEP.as_bytes().to_vec()),
        (format!("{m}/modules.builtin"), builtin.as_bytes().to_vec()),
    ];
    for line in DEP.lines() {
        let path = line.split(':').next().unwrap();
        files.push((format!("{m}/{path}"), ko(path)));
    }
    let refs: Vec<(&str, &[u8])> = files.iter().map(|(p, d)| (p.as_str(), &d[..])).collect();
    let root = ext4_image(tmp, "root", 24, ROOT_UUID, &refs, &[]);
    make_disk(tmp, 32, "label: dos\n,,L,*\n", &[(1, &root)])
}

#[test]
fn vmware_initramfs_gets_virtio_from_the_root_filesystem() {
    if !have("sfdisk") || !have("mkfs.ext4") {
        panic!("sfdisk and mkfs.ext4 are needed (scripts/setup-deps)");
    }
    let tmp = tempfile::tempdir().unwrap();
    let initrd = vmware_initramfs(tmp.path(), "gzip");
    let disk = appliance_disk(tmp.path(), &initrd, "kernel/drivers/ata/libata.ko\n");
    let src = source(&disk);
    let plan = boot_discovery::discover(src.clone()).unwrap();
    let report = drivers::prepare(src, &plan).unwrap();
    eprintln!("{}", report.summary());
    assert_eq!(report.release.as_deref(), Some(REL));
    assert_eq!(report.generator.name(), "initramfs-tools");
    assert_eq!(report.archives, ["uncompressed", "gzip"]);
    assert!(report
        .modules
        .iter()
        .all(|m| m.state == State::Added && m.loads_early));
    let mut missing = report.missing.clone();
    missing.sort();
    assert_eq!(
        missing,
        [
            "failover",
            "net_failover",
            "virtio",
            "virtio_blk",
            "virtio_net",
            "virtio_pci",
            "virtio_ring"
        ]
    );
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    assert!(
        report.cmdline_extra.is_empty(),
        "initramfs-tools needs no rd.driver.pre"
    );
    assert_eq!(report.cmdline, format!("root=UUID={ROOT_UUID} ro quiet"));
    assert_eq!(report.root.as_ref().unwrap().from, "root=/dev/sda1");

    // Unpack as the kernel does: the image, then our archive over it.
    let mut combined = initrd.clone();
    combined.resize(combined.len().next_multiple_of(4), 0);
    combined.extend(report.appended_cpio.as_ref().unwrap());
    let unpacked = tmp.path().join("unpacked");
    std::fs::create_dir(&unpacked).unwrap();
    let facts = drivers::initramfs_facts(&combined).unwrap();
    assert_eq!(facts.segments.len(), 3);
    // cpio -i reads one archive at a time: feed it the pieces.
    for seg in &facts.segments {
        let piece = &combined[seg.offset as usize..(seg.offset + seg.len) as usize];
        let piece = match seg.compression {
            boot_discovery::initramfs::Compression::Gzip => {
                pipe("gzip", &["-dc"], Path::new("/"), piece)
            }
            _ => piece.to_vec(),
        };
        pipe(
            "cpio",
            &["-idmu", "--quiet", "--no-absolute-filenames"],
            &unpacked,
            &piece,
        );
    }
    let conf = std::fs::read_to_string(unpacked.join("conf/modules")).unwrap();
    assert!(conf.starts_with("vmw_pvscsi\n"), "{conf}");
    assert!(
        conf.contains("\nvirtio_pci\nvirtio_blk\nvirtio_net\n"),
        "{conf}"
    );
    let modroot = format!("lib/modules/{REL}");
    assert_eq!(
        std::fs::read(
            unpacked
                .join(&modroot)
                .join("kernel/drivers/block/virtio_blk.ko.xz")
        )
        .unwrap(),
        ko("kernel/drivers/block/virtio_blk.ko.xz")
    );
    for (name, count) in [
        ("virtio_blk", 3),
        ("virtio_pci", 3),
        ("virtio_net", 5),
        ("vmw_pvscsi", 1),
    ] {
        let out = run(Command::new("modprobe").arg("-d").arg(&unpacked).args([
            "-S",
            REL,
            "--show-depends",
            name,
        ]));
        assert_eq!(out.lines().count(), count, "{name}: {out}");
    }
}

#[test]
fn dracut_image_with_virtio_but_no_loader_gets_lists_only() {
    if !have("sfdisk") || !have("mkfs.ext4") {
        panic!("sfdisk and mkfs.ext4 are needed (scripts/setup-deps)");
    }
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().join("dracut.d");
    let m = format!("usr/lib/modules/{REL}");
    let mut files: Vec<(String, Vec<u8>)> = vec![
        (
            "usr/lib/dracut/build-parameter.txt".into(),
            b"--hostonly".to_vec(),
        ),
        (format!("{m}/modules.dep"), DEP.as_bytes().to_vec()),
    ];
    for line in DEP.lines() {
        let path = line.split(':').next().unwrap();
        files.push((format!("{m}/{path}"), ko(path)));
    }
    let refs: Vec<(&str, &[u8])> = files.iter().map(|(p, d)| (p.as_str(), &d[..])).collect();
    stage(&d, &refs, &[("lib", "usr/lib")]);
    let initrd = pipe("zstd", &["-q", "-c"], &d, &cpio_of(&d));
    let disk = appliance_disk(tmp.path(), &initrd, "");
    let src = source(&disk);
    let plan = boot_discovery::discover(src.clone()).unwrap();
    let report = drivers::prepare(src, &plan).unwrap();
    assert_eq!(report.generator.name(), "dracut");
    assert!(report.missing.is_empty());
    assert!(report.added.is_empty());
    assert_eq!(
        report.not_loaded_early,
        ["virtio_pci", "virtio_blk", "virtio_net"]
    );
    assert_eq!(
        report.cmdline_extra,
        ["rd.driver.pre=virtio_pci,virtio_blk,virtio_net"]
    );
    let appended = report.appended_cpio.unwrap();
    let listed = pipe("cpio", &["-t", "--quiet"], Path::new("/"), &appended);
    assert_eq!(
        String::from_utf8(listed).unwrap(),
        "etc\netc/modules-load.d\netc/modules-load.d/ovf-run-virtio.conf\n"
    );
}

#[test]
fn built_in_virtio_needs_nothing_and_a_kernel_without_it_is_named() {
    if !have("sfdisk") || !have("mkfs.ext4") {
        panic!("sfdisk and mkfs.ext4 are needed (scripts/setup-deps)");
    }
    let tmp = tempfile::tempdir().unwrap();
    let initrd = vmware_initramfs(tmp.path(), "zstd");
    let builtin = "kernel/drivers/virtio/virtio.ko\nkernel/drivers/virtio/virtio_ring.ko\nkernel/drivers/virtio/virtio_pci.ko\nkernel/drivers/block/virtio_blk.ko\nkernel/drivers/net/virtio_net.ko\n";
    let disk = appliance_disk(tmp.path(), &initrd, builtin);
    let src = source(&disk);
    let plan = boot_discovery::discover(src.clone()).unwrap();
    let report = drivers::prepare(src, &plan).unwrap();
    assert!(report.modules.iter().all(|m| m.state == State::BuiltIn));
    assert!(report.appended_cpio.is_none());
    // Without an initramfs, built-in drivers are all it takes.
    let mut plan = plan;
    plan.initrd = None;
    let report = drivers::prepare(source(&disk), &plan).unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);

    // The same initramfs, but the disk's modules.dep knows no virtio.
    let tmp = tempfile::tempdir().unwrap();
    let initrd = vmware_initramfs(tmp.path(), "xz");
    let disk = appliance_disk(tmp.path(), &initrd, "");
    let mut plan = boot_discovery::discover(source(&disk)).unwrap();
    plan.kernel_path = "/boot/vmlinuz-9.9.9-none".into();
    let report = drivers::prepare(source(&disk), &plan).unwrap();
    assert!(
        report
            .problems
            .iter()
            .any(|p| p.contains("no virtio_blk driver")),
        "{:?}",
        report.problems
    );
}
