//! The acceptance boot: Debian's cloud kernel with an initramfs built here
//! (busybox + the kernel's own virtio modules), 2 vCPUs, a virtio-blk disk
//! whose sha256 the guest prints, a read-only second disk, virtio-rng; the
//! guest writes a marker and powers off.
//!
//! These run where the test bed finds a real /dev/kvm (inside the KVM test
//! host on a PVM machine): the outer test prepares everything on this
//! machine, then runs this same test binary in the test host with the
//! `inner_*` test selected, which calls `vmm::run`. Both boots together
//! take about 35 s in the test host (QEMU 10 TCG).

use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;
use testbed::{runner_or_fail, RunOptions};
use vmm::{BzImageMode, ConsoleConfig, DiskConfig, ExitStatus, Kernel, VmConfig};

const DISK_BYTES: usize = 32 << 20;
const MARKER: &[u8] = b"written-by-the-guest";
const MARKER_OFFSET: usize = 2048 * 512;

fn work_dir() -> PathBuf {
    testbed::cache_dir().join("vmm-linux-boot")
}

fn guest_scripts() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/guest")
}

fn kernel_path(work: &Path) -> PathBuf {
    let release = std::fs::read_to_string(work.join("kernel/RELEASE")).expect("kernel fetched");
    work.join("kernel/unpacked/boot")
        .join(format!("vmlinuz-{}", release.trim()))
}

fn disk_path(work: &Path, mode: &str) -> PathBuf {
    work.join(format!("disk-{mode}.img"))
}

/// Pseudo-random but reproducible disk contents.
fn disk_contents() -> Vec<u8> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut v = Vec::with_capacity(DISK_BYTES);
    while v.len() < DISK_BYTES {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.extend_from_slice(&x.to_le_bytes());
    }
    v
}

fn prepare(work: &Path, mode: &str) -> String {
    std::fs::create_dir_all(work).unwrap();
    let s = Command::new(guest_scripts().join("fetch-cloud-kernel"))
        .arg(work.join("kernel"))
        .status()
        .unwrap();
    assert!(s.success(), "fetching the cloud kernel failed");
    let release = std::fs::read_to_string(work.join("kernel/RELEASE")).unwrap();
    let modules = work
        .join("kernel/unpacked/lib/modules")
        .join(release.trim());
    let s = Command::new(guest_scripts().join("build-initramfs"))
        .arg(&modules)
        .arg(work.join("init.cpio.gz"))
        .status()
        .unwrap();
    assert!(s.success(), "building the initramfs failed");
    let data = disk_contents();
    std::fs::write(disk_path(work, mode), &data).unwrap();
    std::fs::write(work.join(format!("ro-{mode}.img")), vec![0u8; 1 << 20]).unwrap();
    let _ = std::fs::remove_file(work.join(format!("console-{mode}.log")));
    hex::encode(Sha256::digest(&data))
}

/// Both outer tests rebuild the same initramfs in the same directory: run
/// them one after the other (the test host runs one job at a time anyway).
/// Concurrently, one boot once read a half-written init.cpio.gz
/// ("Initramfs unpacking failed: junk within compressed archive").
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn outer(mode: &str, inner: &str) {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let work = work_dir();
    let sha = prepare(&work, mode);
    let runner = runner_or_fail();
    let exe = std::env::current_exe().unwrap();
    let opts = RunOptions {
        timeout: Duration::from_secs(1500),
        share: Some(work.clone()),
        ..RunOptions::default()
    };
    let out = runner
        .run(
            &opts,
            &[
                exe.as_os_str(),
                "--exact".as_ref(),
                inner.as_ref(),
                "--ignored".as_ref(),
                "--nocapture".as_ref(),
            ],
        )
        .expect("run through scripts/kvm-run");
    let console =
        std::fs::read_to_string(work.join(format!("console-{mode}.log"))).unwrap_or_default();
    let tail: Vec<&str> = console
        .lines()
        .rev()
        .take(40)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    assert!(
        out.success(),
        "the boot failed (status {}):\n{}\n{}\nconsole tail:\n{}",
        out.status,
        out.stdout,
        out.stderr,
        tail.join("\n")
    );
    let guest: Vec<&str> = console
        .lines()
        .filter(|l| l.starts_with("GUEST:"))
        .collect();
    eprintln!("{}", guest.join("\n"));
    let has = |s: &str| guest.iter().any(|l| l.trim_end() == s);
    assert!(has("GUEST: cpus 2"), "{guest:?}");
    for m in ["virtio_pci", "virtio_blk", "virtio-rng"] {
        assert!(
            has(&format!("GUEST: loaded {m}")),
            "{m} not loaded: {guest:?}"
        );
    }
    assert!(
        has(&format!("GUEST: vda sha256 {sha}")),
        "hash mismatch (host {sha}): {guest:?}"
    );
    assert!(has("GUEST: vda serial disk0"), "{guest:?}");
    assert!(has("GUEST: vdb ro 1"), "{guest:?}");
    assert!(has("GUEST: rng virtio_rng.0"), "{guest:?}");
    assert!(has("GUEST: hwrng bytes 64"), "{guest:?}");
    assert!(has("GUEST: wrote vda"), "{guest:?}");
    assert!(has("GUEST: vdb write refused"), "{guest:?}");
    let disk = std::fs::read(disk_path(&work, mode)).unwrap();
    assert_eq!(&disk[MARKER_OFFSET..MARKER_OFFSET + MARKER.len()], MARKER);
    let ro = std::fs::read(work.join(format!("ro-{mode}.img"))).unwrap();
    assert!(ro.iter().all(|&b| b == 0), "the read-only disk changed");
}

/// Runs inside the test host: boot and expect a clean poweroff.
fn inner(mode: &str, bz: BzImageMode) {
    let work = work_dir();
    let disk = |p: PathBuf, ro: bool, id: &str| DiskConfig {
        source: Arc::new(devices::raw_file::RawFileSource::open(&p, ro).unwrap()),
        read_only: ro,
        id: id.into(),
    };
    let mut c = VmConfig::new(Kernel::Path(kernel_path(&work)));
    c.vcpus = 2;
    c.memory_mib = 512;
    c.initrd = Some(work.join("init.cpio.gz"));
    c.cmdline = "console=ttyS0 panic=-1 loglevel=4".into();
    c.disks = vec![
        disk(disk_path(&work, mode), false, "disk0"),
        disk(work.join(format!("ro-{mode}.img")), true, "disk1"),
    ];
    c.entropy = true;
    c.no_reboot = true;
    c.bzimage_mode = bz;
    c.console = ConsoleConfig {
        stdio: false,
        log: Some(work.join(format!("console-{mode}.log"))),
    };
    let started = std::time::Instant::now();
    let r = vmm::run(c);
    println!(
        "{mode}: {r:?} after {:.1} s",
        started.elapsed().as_secs_f64()
    );
    assert_eq!(r.unwrap(), ExitStatus::Poweroff);
}

#[test]
fn cloud_kernel_boots_pvh_decompressed_on_the_host() {
    outer("pvh", "inner_pvh");
}

#[test]
fn cloud_kernel_boots_from_its_bzimage() {
    outer("bzimage", "inner_bzimage");
}

#[test]
#[ignore = "selected by the outer tests inside the test host"]
fn inner_pvh() {
    inner("pvh", BzImageMode::PreferPvh);
}

#[test]
#[ignore = "selected by the outer tests inside the test host"]
fn inner_bzimage() {
    inner("bzimage", BzImageMode::GuestDecompress);
}
