//! Discovery on XFS (mkfs.xfs with a protofile, no mount needed) and on LVM2
//! (pvcreate/vgcreate/lvcreate on a loop device).

use block_source::{BlockSource, MemorySource};
use boot_discovery::discover;
use boot_discovery::fs::{probe, Probe};
use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;

const CFG: &str = include_str!("data/debian-bookworm-grub.cfg");
const CFG_UUID: &str = "6f0b8f1e-5e2a-4b3c-9d8e-7f6a5b4c3d2e";

fn have(tool: &str) -> bool {
    let ok = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "command -v {tool} || test -x /usr/sbin/{tool} || test -x /sbin/{tool}"
        ))
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !ok {
        eprintln!("SKIP: {tool} is not installed (apt-get install xfsprogs lvm2)");
    }
    ok
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn big_kernel() -> Vec<u8> {
    // 3 MiB of non-repeating bytes, so extent mapping errors show.
    (0..3u32 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect()
}

/// An XFS image of a Debian-style root: /boot/grub/grub.cfg, a 3 MiB kernel,
/// /boot padded with many files (block/leaf/node directory forms) and a
/// /vmlinuz symlink.
fn xfs_image(tmp: &Path, kernel: &[u8], extra_boot_files: usize) -> std::path::PathBuf {
    let src = tmp.join("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("grub.cfg"), CFG).unwrap();
    std::fs::write(src.join("kernel"), kernel).unwrap();
    std::fs::write(src.join("initrd"), b"xfs-initrd").unwrap();
    std::fs::write(src.join("small"), b"x").unwrap();
    let s = |n: &str| src.join(n).display().to_string();
    let mut proto = String::from("/dev/null\n0 0\nd--755 0 0\n");
    proto.push_str("boot d--755 0 0\n");
    for i in 0..extra_boot_files {
        let _ = writeln!(
            proto,
            "config-6.1.0-{i}-amd64-with-a-long-name ---644 0 0 {}",
            s("small")
        );
    }
    let _ = writeln!(proto, "vmlinuz-6.1.0-13-amd64 ---644 0 0 {}", s("kernel"));
    let _ = writeln!(
        proto,
        "initrd.img-6.1.0-13-amd64 ---644 0 0 {}",
        s("initrd")
    );
    let _ = writeln!(
        proto,
        "grub d--755 0 0\ngrub.cfg ---644 0 0 {}\n$\n$",
        s("grub.cfg")
    );
    proto.push_str("etc d--755 0 0\nfstab ---644 0 0 /dev/null\n$\n");
    proto.push_str("vmlinuz l--777 0 0 boot/vmlinuz-6.1.0-13-amd64\n$\n");
    let pf = tmp.join("proto");
    std::fs::write(&pf, proto).unwrap();
    let img = tmp.join("xfs.img");
    std::fs::File::create(&img)
        .unwrap()
        .set_len(320 << 20)
        .unwrap();
    run(Command::new("mkfs.xfs")
        .args(["-q", "-m", &format!("uuid={CFG_UUID}"), "-p"])
        .arg(&pf)
        .arg(&img));
    img
}

fn open(img: &Path) -> Arc<dyn BlockSource> {
    Arc::new(MemorySource::new(std::fs::read(img).unwrap(), true))
}

#[test]
fn xfs_whole_disk_grub_root() {
    if !have("mkfs.xfs") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let k = big_kernel();
    // 600 long names: several directory blocks, so leaf/node form.
    let img = xfs_image(tmp.path(), &k, 600);
    let plan = discover(open(&img)).unwrap();
    assert_eq!(plan.kernel.len(), k.len());
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
    for n in [0usize, 40, 3000] {
        let tmp = tempfile::tempdir().unwrap();
        let img = xfs_image(tmp.path(), b"tiny kernel", n);
        let Probe::Fs(fs) = probe(open(&img)) else {
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
    }
}

/// Detaches the loop device it names when dropped (only that one).
struct Loop(String);
impl Drop for Loop {
    fn drop(&mut self) {
        let _ = Command::new("losetup").args(["-d", &self.0]).status();
    }
}

fn ext4(tmp: &Path, name: &str, mib: u64, files: &[(&str, &[u8])]) -> Vec<u8> {
    let dir = tmp.join(name);
    for (p, d) in files {
        let f = dir.join(p.trim_start_matches('/'));
        std::fs::create_dir_all(f.parent().unwrap()).unwrap();
        std::fs::write(f, d).unwrap();
    }
    std::fs::create_dir_all(&dir).unwrap();
    let img = tmp.join(format!("{name}.img"));
    run(Command::new("mkfs.ext4")
        .args(["-q", "-F", "-d"])
        .arg(&dir)
        .arg(&img)
        .arg(format!("{mib}M")));
    std::fs::read(img).unwrap()
}

#[test]
fn lvm_root_with_two_segments_on_mbr_partition() {
    if !have("losetup") || !have("pvcreate") || !have("sfdisk") || !have("mkfs.ext4") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let disk = tmp.path().join("disk.img");
    std::fs::File::create(&disk)
        .unwrap()
        .set_len(96 << 20)
        .unwrap();
    let mut sf = Command::new("sfdisk")
        .arg("-q")
        .arg(&disk)
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(
        sf.stdin.as_mut().unwrap(),
        b"label: dos\nstart=2048, type=8e\n",
    )
    .unwrap();
    assert!(sf.wait().unwrap().success());
    let part_off = 2048u64 * 512;
    let out = Command::new("losetup")
        .args(["-f", "--show", "-o", &part_off.to_string()])
        .arg(&disk)
        .output()
        .unwrap();
    if !out.status.success() {
        eprintln!(
            "SKIP: no loop device available: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        return;
    }
    let dev = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let guard = Loop(dev.clone());
    let vg = format!("ovfrun_test{}", std::process::id());
    // No device-mapper, udev, backups or devices file: metadata only, nothing left on the host.
    let conf = "devices { use_devicesfile=0 } global { activation=0 } activation { udev_sync=0 udev_rules=0 } backup { backup=0 archive=0 }";
    let lvm = |args: &[&str]| {
        run(Command::new(args[0])
            .env("LVM_SUPPRESS_FD_WARNINGS", "1")
            .args(["--devices", &dev, "--config", conf])
            .args(&args[1..]))
    };
    lvm(&["pvcreate", "-q", "-y", "-ff", &dev]);
    lvm(&["vgcreate", "-q", &vg, &dev]);
    lvm(&[
        "lvcreate", "-q", "-an", "-Zn", "-y", "-L", "16M", "-n", "boot", &vg,
    ]);
    lvm(&[
        "lvcreate", "-q", "-an", "-Zn", "-y", "-L", "8M", "-n", "root", &vg,
    ]);
    lvm(&[
        "lvcreate", "-q", "-an", "-Zn", "-y", "-L", "8M", "-n", "gap", &vg,
    ]);
    lvm(&["lvextend", "-q", "-y", "-L", "+16M", &format!("{vg}/root")]);
    let segs = lvm(&[
        "lvs",
        "--noheadings",
        "--units",
        "b",
        "--nosuffix",
        "--separator",
        ":",
        "-o",
        "lv_name,seg_start,seg_size,seg_pe_ranges",
    ]);
    let pe_start: u64 = lvm(&[
        "pvs",
        "--noheadings",
        "--units",
        "b",
        "--nosuffix",
        "-o",
        "pe_start",
    ])
    .trim()
    .parse()
    .unwrap();
    let extent: u64 = lvm(&[
        "vgs",
        "--noheadings",
        "--units",
        "b",
        "--nosuffix",
        "-o",
        "vg_extent_size",
    ])
    .trim()
    .parse()
    .unwrap();
    drop(guard);

    let root_segments: Vec<(u64, u64, u64)> = segs
        .lines()
        .filter(|l| l.trim().starts_with("root:"))
        .map(|l| {
            let f: Vec<&str> = l.trim().split(':').collect();
            let first_pe: u64 = f[4].split('-').next().unwrap().parse().unwrap();
            (f[1].parse().unwrap(), f[2].parse().unwrap(), first_pe)
        })
        .collect();
    assert_eq!(
        root_segments.len(),
        2,
        "lvextend should have made a second segment: {segs}"
    );

    let dm = format!("{vg}-root");
    let cfg = format!("set default=0\nmenuentry 'Debian on LVM' {{\n insmod lvm\n set root='lvm/{dm}'\n linux /boot/vmlinuz-6.1.0-13-amd64 root=/dev/mapper/{dm} ro quiet\n initrd /boot/initrd.img-6.1.0-13-amd64\n}}\n");
    let kernel = big_kernel();
    let boot = ext4(
        tmp.path(),
        "boot",
        16,
        &[
            ("/grub/grub.cfg", cfg.as_bytes()),
            ("/boot/vmlinuz-6.1.0-13-amd64", b"decoy on the wrong volume"),
        ],
    );
    let root = ext4(
        tmp.path(),
        "root",
        24,
        &[
            ("/boot/vmlinuz-6.1.0-13-amd64", &kernel),
            ("/boot/initrd.img-6.1.0-13-amd64", b"lvm-initrd"),
            ("/etc/fstab", b""),
        ],
    );
    use std::os::unix::fs::FileExt;
    let f = std::fs::OpenOptions::new().write(true).open(&disk).unwrap();
    let boot_line = segs
        .lines()
        .find(|l| l.trim().starts_with("boot:"))
        .unwrap();
    let boot_pe: u64 = boot_line
        .trim()
        .split(':')
        .nth(4)
        .unwrap()
        .split('-')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    f.write_all_at(&boot, part_off + pe_start + boot_pe * extent)
        .unwrap();
    for (lv_off, len, pe) in &root_segments {
        f.write_all_at(
            &root[*lv_off as usize..(*lv_off + *len) as usize],
            part_off + pe_start + pe * extent,
        )
        .unwrap();
    }
    drop(f);

    let plan = discover(open(&disk)).unwrap();
    let why = plan.reasons.join("\n");
    assert!(plan.kernel == kernel, "wrong kernel bytes; {why}");
    assert_eq!(plan.initrd.as_deref(), Some(&b"lvm-initrd"[..]));
    assert_eq!(
        plan.partition.logical_volume.as_deref(),
        Some(&*format!("{vg}/root"))
    );
    assert_eq!(plan.cmdline, format!("root=/dev/mapper/{dm} ro quiet"));
    assert!(
        why.contains(&format!("/grub/grub.cfg on LVM volume {vg}/boot")),
        "{why}"
    );
    eprintln!("{why}");
}
