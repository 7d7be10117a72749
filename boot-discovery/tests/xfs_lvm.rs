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
