//! Discovery on the test-bed's Debian appliances, when they have been built
//! (`~/.cache/ovf-run/appliances/debian-bookworm-{mbr,gpt}.ova`, or the
//! directory in `OVF_RUN_APPLIANCES`). The VMDK is taken out with `tar` and
//! made raw with `qemu-img convert`, independently of ovf-run's own
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

fn check(variant: &str) {
    let Some(ova) = appliance(variant) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let st = Command::new("tar")
        .arg("-C")
        .arg(tmp.path())
        .arg("-xf")
        .arg(&ova)
        .args(["--wildcards", "*.vmdk"])
        .status()
        .unwrap();
    assert!(st.success());
    let vmdk = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "vmdk"))
        .unwrap();
    let raw = tmp.path().join("disk.raw");
    let st = Command::new("qemu-img")
        .args(["convert", "-O", "raw"])
        .arg(&vmdk)
        .arg(&raw)
        .status()
        .unwrap();
    assert!(st.success());
    let f = std::fs::File::open(&raw).unwrap();
    let len = f.metadata().unwrap().len();
    let disk: Arc<dyn BlockSource> = Arc::new(FileSource(f, len));
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
    for name in ["virtio_blk", "virtio_pci", "virtio_net"] {
        let out = Command::new("modprobe")
            .arg("-d")
            .arg(&result)
            .args(["-S", &rel, "--show-depends", name])
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

#[test]
fn debian_bookworm_mbr_appliance() {
    check("mbr");
}

#[test]
fn debian_bookworm_gpt_appliance() {
    check("gpt");
}
