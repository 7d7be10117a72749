//! Discovery on the test-bed's Debian appliances, built by scripts/setup
//! (`~/.cache/ovf-run/appliances/debian-bookworm-{mbr,gpt,vmware}.ova`, or
//! the directory in `OVF_RUN_APPLIANCES`; a missing one fails the test).
//! The VMDK is taken out with `tar` and made raw with `qemu-img convert`, independently of ovf-run's own
//! package and disk code, so only boot discovery is under test here. The
//! real initramfs is also listed against `cpio -t` and checked for virtio
//! drivers, before and after taking them out.

use block_source::{check_range, BlockSource};
use boot_discovery::drivers::{self, State};
use boot_discovery::initramfs::{self, Compression};
use boot_discovery::{discover, serial_cmdline};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;

struct FileSource(std::fs::File, u64);

impl BlockSource for FileSource {
    fn capacity(&self) -> u64 {
        self.1
    }
    fn read_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
        check_range(self.1, offset, buf.len())?;
        self.0.read_exact_at(buf, offset)
    }
}

fn appliance(variant: &str) -> Option<PathBuf> {
    let dir = std::env::var_os("OVF_RUN_APPLIANCES")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/ovf-run/appliances"))
        })?;
    let ova = dir.join(format!("debian-bookworm-{variant}.ova"));
    if !ova.exists() {
        panic!(
            "{} not built yet: run scripts/setup (or scripts/build-appliance {variant})",
            ova.display()
        );
    }
    if Command::new("qemu-img").arg("--version").output().is_err() {
        panic!("qemu-img is not installed: run scripts/setup-deps (qemu-utils)");
    }
    Some(ova)
}

/// The appliance's disk as a raw file in `tmp` (tar + qemu-img convert).
fn raw_disk(variant: &str, tmp: &Path) -> Option<PathBuf> {
    let ova = appliance(variant)?;
    let st = Command::new("tar")
        .arg("-C")
        .arg(tmp)
        .arg("-xf")
        .arg(&ova)
        .args(["--wildcards", "*.vmdk"])
        .status()
        .unwrap();
    assert!(st.success());
    let vmdk = std::fs::read_dir(tmp)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "vmdk"))
        .unwrap();
    let raw = tmp.join("disk.raw");
    let st = Command::new("qemu-img")
        .args(["convert", "-O", "raw"])
        .arg(&vmdk)
        .arg(&raw)
        .status()
        .unwrap();
    assert!(st.success());
    std::fs::remove_file(&vmdk).unwrap();
    Some(raw)
}

fn open_raw(raw: &Path) -> Arc<dyn BlockSource> {
    let f = std::fs::File::open(raw).unwrap();
    let len = f.metadata().unwrap().len();
    Arc::new(FileSource(f, len))
}

fn check(variant: &str) {
    let tmp = tempfile::tempdir().unwrap();
    let Some(raw) = raw_disk(variant, tmp.path()) else {
        return;
    };
    let disk = open_raw(&raw);
    let plan = discover(disk.clone()).unwrap_or_else(|e| panic!("{e}"));
    eprintln!(
        "{variant}: kernel {} ({} bytes), initrd {:?}, cmdline {:?}",
        plan.kernel_path,
        plan.kernel.len(),
        plan.initrd_path,
        plan.cmdline
    );
    eprintln!("{}", plan.reasons.join("\n"));
    eprintln!("serial: {}", serial_cmdline(&plan.cmdline));
    // A bzImage has "HdrS" at 0x202.
    assert_eq!(&plan.kernel[0x202..0x206], b"HdrS", "not a bzImage");
    let initrd = plan
        .initrd
        .as_ref()
        .expect("Debian boots with an initramfs");
    assert!(initrd.len() > 1 << 20);
    assert!(plan.cmdline.contains("root="), "{}", plan.cmdline);
    check_drivers(disk, plan, tmp.path());
}

/// Run a tool with `input` on stdin and return its output.
fn pipe(cmd: &str, args: &[&str], dir: &Path, input: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut child = Command::new(cmd)
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {cmd}: {e}"));
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_vec();
    let t = std::thread::spawn(move || stdin.write_all(&input));
    let out = child.wait_with_output().unwrap();
    t.join().unwrap().unwrap();
    assert!(out.status.success(), "{cmd} {args:?} failed");
    out.stdout
}

/// Unpack every archive of `image` into `dir` with the real tools, in
/// order, overwriting as the kernel does; return `cpio -t`'s listing.
fn unpack(image: &[u8], dir: &Path) -> Vec<String> {
    let facts = drivers::initramfs_facts(image).unwrap();
    let mut names = Vec::new();
    for seg in &facts.segments {
        let piece = &image[seg.offset as usize..(seg.offset + seg.len) as usize];
        let tool = match seg.compression {
            Compression::None => None,
            Compression::Gzip => Some("gzip"),
            Compression::Zstd => Some("zstd"),
            Compression::Xz => Some("xz"),
            other => panic!("no tool for {other:?} here"),
        };
        let raw = match tool {
            Some(t) => pipe(t, &["-dc"], dir, piece),
            None => piece.to_vec(),
        };
        let list = pipe("cpio", &["-t", "--quiet"], dir, &raw);
        names.extend(
            String::from_utf8(list)
                .unwrap()
                .lines()
                .map(|l| l.to_string()),
        );
        pipe(
            "cpio",
            &["-idmu", "--quiet", "--no-absolute-filenames"],
            dir,
            &raw,
        );
    }
    names
}

/// The appliance's real initramfs: our reader lists what `cpio -t` lists;
/// its virtio drivers are found. Then the same image with virtio taken out
/// (as a VMware host-only build would be) gets them back from the
/// appliance's own root filesystem, and the real `modprobe` and `modinfo`
/// find them in the unpacked result.
fn check_drivers(disk: Arc<dyn BlockSource>, mut plan: boot_discovery::BootPlan, tmp: &Path) {
    let initrd = plan.initrd.clone().unwrap();
    let original = tmp.join("original");
    std::fs::create_dir(&original).unwrap();
    let listed = unpack(&initrd, &original);
    let ours = initramfs::read(&initrd, &|_| false, initramfs::Limits::default()).unwrap();
    let ours: Vec<&str> = ours.names().collect();
    let theirs: Vec<&str> = listed.iter().map(|n| initramfs::normalise(n)).collect();
    assert_eq!(ours, theirs);

    let report = drivers::prepare(disk.clone(), &plan).unwrap();
    eprintln!("{}", report.summary());
    let rel = report
        .release
        .clone()
        .expect("release from the bzImage header");
    assert!(
        plan.kernel_path.ends_with(&rel),
        "{rel} vs {}",
        plan.kernel_path
    );
    assert_eq!(report.generator.name(), "initramfs-tools");
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    assert!(report
        .modules
        .iter()
        .all(|m| m.loads_early && m.state != State::Absent && m.state != State::Added));

    // Take virtio out of the unpacked image and repack it with gzip.
    let moddir = original.join("usr/lib/modules").join(&rel);
    let moddir = if moddir.exists() {
        moddir
    } else {
        original.join("lib/modules").join(&rel)
    };
    let st = Command::new("find")
        .arg(&moddir)
        .args(["-name", "virtio*", "-delete"])
        .status()
        .unwrap();
    assert!(st.success());
    let dep = std::fs::read_to_string(moddir.join("modules.dep")).unwrap();
    let kept: String = dep
        .lines()
        .filter(|l| !l.contains("virtio"))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(moddir.join("modules.dep"), kept).unwrap();
    let list = Command::new("find")
        .arg(".")
        .current_dir(&original)
        .output()
        .unwrap()
        .stdout;
    let cpio = pipe("cpio", &["-o", "-H", "newc", "--quiet"], &original, &list);
    let stripped = pipe("gzip", &["-c"], &original, &cpio);
    plan.initrd = Some(stripped.clone());
    let report = drivers::prepare(disk, &plan).unwrap();
    eprintln!("{}", report.summary());
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    assert!(
        report.missing.iter().any(|m| m == "virtio_blk"),
        "{:?}",
        report.missing
    );
    let mut combined = stripped;
    combined.resize(combined.len().next_multiple_of(4), 0);
    combined.extend(report.appended_cpio.as_ref().unwrap());
    let result = tmp.join("result");
    std::fs::create_dir(&result).unwrap();
    unpack(&combined, &result);
    let conf = std::fs::read_to_string(result.join("conf/modules")).unwrap();
    assert!(conf.contains("\nvirtio_blk\n"), "{conf}");
    assert_virtio_resolves(&result, &rel);
}

#[test]
fn debian_bookworm_mbr_appliance() {
    check("mbr");
}

#[test]
fn debian_bookworm_gpt_appliance() {
    check("gpt");
}

/// Unmounts and detaches when dropped.
struct Mounted {
    dir: PathBuf,
    dev: String,
}
impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.dir).status();
        let _ = Command::new("losetup").args(["-d", &self.dev]).status();
    }
}

/// Partition 1 of `raw` mounted read-only at `dir` (dracut reads the
/// appliance's module tree from a directory).
fn mount_ro(raw: &Path, dir: &Path) -> Mounted {
    let dump = String::from_utf8(
        Command::new("sfdisk")
            .arg("-d")
            .arg(raw)
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let start: u64 = dump
        .lines()
        .find_map(|l| l.split("start=").nth(1))
        .and_then(|s| s.split(',').next())
        .map(|s| s.trim().parse().unwrap())
        .expect("a partition");
    let out = Command::new("losetup")
        .args(["-f", "--show", "-r", "-o", &(start * 512).to_string()])
        .arg(raw)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "losetup: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dev = String::from_utf8_lossy(&out.stdout).trim().to_string();
    std::fs::create_dir_all(dir).unwrap();
    let m = Mounted {
        dir: dir.to_path_buf(),
        dev: dev.clone(),
    };
    let st = Command::new("mount")
        .args(["-o", "ro", &dev])
        .arg(dir)
        .status()
        .unwrap();
    assert!(st.success(), "mount {dev}");
    m
}

/// A real dracut image, host-only for VMware as a RHEL/Fedora appliance
/// made on VMware has it: dracut 059 (Debian's dracut-core) builds it from
/// the vmware appliance's own module tree with VMware's storage drivers and
/// no virtio. Our reader lists what `cpio -t` lists; the driver check sees
/// dracut and the missing virtio, adds the modules from the appliance's
/// root with a modules-load.d file and rd.driver.pre=, and the real
/// modprobe resolves them in the unpacked result.
#[test]
fn dracut_hostonly_image_gets_virtio() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(raw) = raw_disk("vmware", tmp.path()) else {
        return;
    };
    let disk = open_raw(&raw);
    let mut plan = discover(disk.clone()).unwrap_or_else(|e| panic!("{e}"));
    let rel = drivers::modules::bzimage_release(&plan.kernel).expect("release");
    let image = tmp.path().join("dracut.img");
    {
        let mnt = tmp.path().join("mnt");
        let _m = mount_ro(&raw, &mnt);
        let out = Command::new("dracut")
            .args(["--no-hostonly", "--no-early-microcode", "--force", "--gzip"])
            .args(["--kver", &rel, "--kmoddir"])
            .arg(mnt.join("lib/modules").join(&rel))
            .args(["--modules", "base kernel-modules"])
            .args(["--drivers", "vmw_pvscsi mptspi ata_piix sd_mod"])
            .args([
                "--omit-drivers",
                "virtio virtio_ring virtio_pci virtio_blk virtio_net virtio_scsi",
            ])
            .arg(&image)
            .output()
            .expect("dracut (dracut-core, scripts/setup-deps)");
        assert!(
            out.status.success(),
            "dracut: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let bytes = std::fs::read(&image).unwrap();
    let listed_dir = tmp.path().join("listed");
    std::fs::create_dir(&listed_dir).unwrap();
    let listed = unpack(&bytes, &listed_dir);
    assert!(
        listed.iter().any(|n| n.ends_with("/vmw_pvscsi.ko")),
        "a VMware image"
    );
    assert!(
        !listed.iter().any(|n| n.contains("virtio")),
        "no virtio in it"
    );
    let ours = initramfs::read(&bytes, &|_| false, initramfs::Limits::default()).unwrap();
    let ours: Vec<&str> = ours.names().collect();
    let theirs: Vec<&str> = listed.iter().map(|n| initramfs::normalise(n)).collect();
    assert_eq!(ours, theirs);

    plan.initrd = Some(bytes.clone());
    let report = drivers::prepare(disk, &plan).unwrap();
    eprintln!("{}", report.summary());
    assert_eq!(report.generator.name(), "dracut");
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    assert!(
        report.missing.iter().any(|m| m == "virtio_blk"),
        "{:?}",
        report.missing
    );
    assert!(
        report
            .cmdline_extra
            .iter()
            .any(|a| a.starts_with("rd.driver.pre=") && a.contains("virtio_blk")),
        "{:?}",
        report.cmdline_extra
    );
    let mut combined = bytes;
    combined.resize(combined.len().next_multiple_of(4), 0);
    combined.extend(report.appended_cpio.as_ref().expect("an archive"));
    let result = tmp.path().join("result");
    std::fs::create_dir(&result).unwrap();
    unpack(&combined, &result);
    let load = std::fs::read_to_string(result.join("etc/modules-load.d/ovf-run-virtio.conf"))
        .expect("modules-load.d file");
    assert!(load.contains("virtio_blk"), "{load}");
    assert_virtio_resolves(&result, &rel);
}

/// The real modprobe resolves virtio_blk/pci/net in the unpacked `result`
/// (image + appended archive), and modinfo reads each added module's name.
fn assert_virtio_resolves(result: &Path, rel: &str) {
    for name in ["virtio_blk", "virtio_pci", "virtio_net"] {
        let out = Command::new("modprobe")
            .arg("-d")
            .arg(result)
            .args(["-S", rel, "--show-depends", name])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && text.contains(&format!("{name}.ko")),
            "{name}: {text}"
        );
        // The added file is the real module: modinfo reads its name.
        let path = text
            .lines()
            .last()
            .unwrap()
            .split_whitespace()
            .nth(1)
            .unwrap();
        let info = Command::new("modinfo")
            .args(["-F", "name", path])
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&info.stdout).trim(), name);
    }
}
