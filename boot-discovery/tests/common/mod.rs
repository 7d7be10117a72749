//! Helpers shared by the image tests: build filesystems and disks with the
//! real tools (sfdisk, mkfs.ext4 -d, mkfs.xfs -p, LVM on a loop device)
//! from staging directories, without mounting anything.
#![allow(dead_code)]

use block_source::{check_range, BlockSource};
use std::collections::HashMap;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;

pub const MIB: u64 = 1 << 20;

/// Whether a tool is installed. A missing tool fails the test with what to
/// install (scripts/setup-deps installs them all): a test that cannot run
/// never passes silently.
pub fn have(tool: &str) -> bool {
    let ok = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "command -v {tool} || test -x /usr/sbin/{tool} || test -x /sbin/{tool}"
        ))
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !ok {
        panic!("{tool} is not installed: run scripts/setup-deps (Debian packages fdisk e2fsprogs xfsprogs lvm2 dosfstools mtools btrfs-progs)");
    }
    ok
}

pub fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Write files (and `name -> target` symlinks) into a staging directory.
pub fn stage(dir: &Path, files: &[(&str, &[u8])], links: &[(&str, &str)]) {
    std::fs::create_dir_all(dir).unwrap();
    for (p, data) in files {
        let full = dir.join(p.trim_start_matches('/'));
        std::fs::create_dir_all(full.parent().unwrap()).unwrap();
        std::fs::write(full, data).unwrap();
    }
    for (p, target) in links {
        let full = dir.join(p.trim_start_matches('/'));
        std::fs::create_dir_all(full.parent().unwrap()).unwrap();
        std::os::unix::fs::symlink(target, full).unwrap();
    }
}

/// `mkfs.ext4 -d staging` into a new image file of `mib` MiB.
pub fn ext4_image(
    tmp: &Path,
    name: &str,
    mib: u64,
    uuid: &str,
    files: &[(&str, &[u8])],
    links: &[(&str, &str)],
) -> PathBuf {
    let dir = tmp.join(format!("{name}.d"));
    stage(&dir, files, links);
    let img = tmp.join(format!("{name}.img"));
    run(Command::new("mkfs.ext4")
        .args(["-q", "-F", "-U", uuid, "-d"])
        .arg(&dir)
        .arg(&img)
        .arg(format!("{mib}M")));
    img
}

/// `mkfs.vfat` (FAT`bits`) of `mib` MiB, filled with `mcopy -s` from a
/// staging directory (long names kept; no symlinks on FAT).
pub fn fat_image(tmp: &Path, name: &str, mib: u64, bits: u32, files: &[(&str, &[u8])]) -> PathBuf {
    let dir = tmp.join(format!("{name}.d"));
    stage(&dir, files, &[]);
    let img = tmp.join(format!("{name}.img"));
    std::fs::File::create(&img)
        .unwrap()
        .set_len(mib * MIB)
        .unwrap();
    run(Command::new("mkfs.vfat")
        .args(["-F", &bits.to_string(), "-i", "1234ABCD", "-n", "ESP"])
        .arg(&img));
    for e in std::fs::read_dir(&dir).unwrap() {
        run(Command::new("mcopy")
            .arg("-s")
            .arg("-i")
            .arg(&img)
            .arg(e.unwrap().path())
            .arg("::/"));
    }
    img
}

/// A mkfs.xfs protofile describing a staging directory.
fn proto_entries(dir: &Path, out: &mut String) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for p in entries {
        let name = p.file_name().unwrap().to_str().unwrap().to_string();
        let md = std::fs::symlink_metadata(&p).unwrap();
        if md.file_type().is_symlink() {
            out.push_str(&format!(
                "{name} l--777 0 0 {}\n",
                std::fs::read_link(&p).unwrap().display()
            ));
        } else if md.is_dir() {
            out.push_str(&format!("{name} d--755 0 0\n"));
            proto_entries(&p, out);
            out.push_str("$\n");
        } else {
            out.push_str(&format!("{name} ---644 0 0 {}\n", p.display()));
        }
    }
}

/// `mkfs.xfs -p proto` from a staging directory. Below 300 MiB needs
/// `--unsupported` (fine for a test image).
pub fn xfs_image(
    tmp: &Path,
    name: &str,
    mib: u64,
    mkfs_args: &[&str],
    files: &[(&str, &[u8])],
    links: &[(&str, &str)],
) -> PathBuf {
    let dir = tmp.join(format!("{name}.d"));
    stage(&dir, files, links);
    let mut proto = String::from("/dev/null\n0 0\nd--755 0 0\n");
    proto_entries(&dir, &mut proto);
    proto.push_str("$\n");
    let pf = tmp.join(format!("{name}.proto"));
    std::fs::write(&pf, proto).unwrap();
    let img = tmp.join(format!("{name}.img"));
    std::fs::File::create(&img)
        .unwrap()
        .set_len(mib * MIB)
        .unwrap();
    let mut cmd = Command::new("mkfs.xfs");
    cmd.arg("-q").args(mkfs_args);
    if mib < 300 {
        cmd.arg("--unsupported");
    }
    run(cmd.arg("-p").arg(&pf).arg(&img));
    img
}

/// Partition a new `mib` MiB disk with an sfdisk script, then copy images
/// to the starts of the given partitions.
pub fn make_disk(tmp: &Path, mib: u64, script: &str, contents: &[(u32, &Path)]) -> PathBuf {
    let disk = tmp.join("disk.img");
    std::fs::File::create(&disk)
        .unwrap()
        .set_len(mib * MIB)
        .unwrap();
    let mut child = Command::new("sfdisk")
        .arg("-q")
        .arg(&disk)
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), script.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "sfdisk: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let f = std::fs::OpenOptions::new().write(true).open(&disk).unwrap();
    for (num, img) in contents {
        f.write_all_at(&std::fs::read(img).unwrap(), partition_start(&disk, *num))
            .unwrap();
    }
    disk
}

/// Byte offset of partition `num`, as `sfdisk -d` reports it.
pub fn partition_start(disk: &Path, num: u32) -> u64 {
    let dump = run(Command::new("sfdisk").arg("-d").arg(disk));
    let prefix = format!("{}{num} ", disk.display());
    let sectors: u64 = dump
        .lines()
        .find(|l| l.starts_with(&prefix))
        .and_then(|l| l.split("start=").nth(1))
        .and_then(|s| s.split(',').next())
        .map(|s| s.trim().parse().unwrap())
        .unwrap_or_else(|| panic!("partition {num} not in {dump}"));
    sectors * 512
}

/// A raw image file read in place (big images stay out of memory).
pub struct FileSource(std::fs::File, u64);

impl BlockSource for FileSource {
    fn capacity(&self) -> u64 {
        self.1
    }
    fn read_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
        check_range(self.1, offset, buf.len())?;
        self.0.read_exact_at(buf, offset)
    }
}

pub fn source(path: &Path) -> Arc<dyn BlockSource> {
    let f = std::fs::File::open(path).unwrap();
    let len = f.metadata().unwrap().len();
    Arc::new(FileSource(f, len))
}

pub fn fake_kernel(version: &str) -> Vec<u8> {
    format!("bzImage for Linux {version}\n")
        .repeat(1000)
        .into_bytes()
}

/// Detaches the loop device it names when dropped (only that one).
struct Loop(String);
impl Drop for Loop {
    fn drop(&mut self) {
        let _ = Command::new("losetup").args(["-d", &self.0]).status();
    }
}

/// Where each LV's segments live on the disk: `(lv_offset, len, disk_offset)`.
pub type LvMap = HashMap<String, Vec<(u64, u64, u64)>>;

/// Make partition at `part_off` of `disk` an LVM2 PV of a new VG `vg`, run
/// `steps` (lvcreate/lvextend argument lists, without the program's
/// device options), and report where every LV's segments landed, as the
/// LVM tools themselves say. `None` when no loop device can be had.
///
/// Only metadata is written: no device-mapper, udev, backup or devices
/// file is used, so nothing is left behind on the host.
pub fn make_lvm(disk: &Path, part_off: u64, vg: &str, steps: &[&[&str]]) -> Option<LvMap> {
    // Tests run in parallel; one loop device and one LVM run at a time.
    static LVM_LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _serial = LVM_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let out = Command::new("losetup")
        .args(["-f", "--show", "-o", &part_off.to_string()])
        .arg(disk)
        .output()
        .unwrap();
    if !out.status.success() {
        panic!(
            "no loop device available for the LVM test: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let dev = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let _guard = Loop(dev.clone());
    let conf = "devices { use_devicesfile=0 } global { activation=0 } activation { udev_sync=0 udev_rules=0 } backup { backup=0 archive=0 }";
    let lvm = |args: &[&str]| {
        run(Command::new(args[0])
            .env("LVM_SUPPRESS_FD_WARNINGS", "1")
            .args(["--devices", &dev, "--config", conf])
            .args(&args[1..]))
    };
    lvm(&["pvcreate", "-q", "-y", "-ff", &dev]);
    lvm(&["vgcreate", "-q", vg, &dev]);
    for step in steps {
        lvm(step);
    }
    let num = |args: &[&str]| -> u64 { lvm(args).trim().parse().unwrap() };
    let pe_start = num(&[
        "pvs",
        "--noheadings",
        "--units",
        "b",
        "--nosuffix",
        "-o",
        "pe_start",
    ]);
    let extent = num(&[
        "vgs",
        "--noheadings",
        "--units",
        "b",
        "--nosuffix",
        "-o",
        "vg_extent_size",
    ]);
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
    let mut map = LvMap::new();
    for l in segs.lines() {
        let f: Vec<&str> = l.trim().split(':').collect();
        if f.len() < 5 {
            continue;
        }
        let first_pe: u64 = f[4].split('-').next().unwrap().parse().unwrap();
        map.entry(f[0].to_string()).or_default().push((
            f[1].parse().unwrap(),
            f[2].parse().unwrap(),
            part_off + pe_start + first_pe * extent,
        ));
    }
    Some(map)
}

/// Write a filesystem image into an LV through its segments.
pub fn write_lv(disk: &Path, map: &LvMap, lv: &str, image: &Path) {
    let data = std::fs::read(image).unwrap();
    let f = std::fs::OpenOptions::new().write(true).open(disk).unwrap();
    for &(lv_off, len, disk_off) in &map[lv] {
        let end = (lv_off + len).min(data.len() as u64);
        if lv_off < end {
            f.write_all_at(&data[lv_off as usize..end as usize], disk_off)
                .unwrap();
        }
    }
}

/// The private mkfs.btrfs (>= 6.7, for `--subvol` and `--compress`) that
/// scripts/setup-deps unpacks; fails (never skips) when it is not there.
pub fn btrfs_mkfs() -> PathBuf {
    let cache = std::env::var_os("OVF_RUN_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(&std::env::var("HOME").unwrap()).join(".cache/ovf-run"));
    let m = cache.join("btrfs-progs/sbin/mkfs.btrfs");
    assert!(
        m.exists(),
        "{} is missing: run scripts/setup-deps (it unpacks btrfs-progs >= 6.7 there)",
        m.display()
    );
    m
}
