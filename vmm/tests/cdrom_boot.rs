//! The CD-ROM end to end: an ISO 9660 image built by `disk_image::iso_writer`
//! (as the OVF environment transport builds it) on a virtio-scsi CD-ROM;
//! Debian's cloud kernel with its own virtio_scsi, sr_mod and isofs modules
//! finds `/dev/sr0`, reads the whole device (hash checked against the
//! image), mounts it and reads `ovf-env.xml` (hash checked).
//!
//! Like linux_boot.rs, the outer test prepares everything here and runs the
//! `inner` test of this binary inside the KVM test host. It shares the
//! cloud kernel with linux_boot.rs (same cache directory) and uses its own
//! file names there.

use disk_image::iso_writer::{build_iso, IsoFile};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;
use testbed::{runner_or_fail, RunOptions};
use vmm::{CdromConfig, ConsoleConfig, ExitStatus, Kernel, VmConfig};

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

/// An environment document with enough lines to span several blocks.
fn env_xml() -> Vec<u8> {
    let mut x = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Environment xmlns=\"http://schemas.dmtf.org/ovf/environment/1\">\n");
    for i in 0..300 {
        x.push_str(&format!("  <!-- line {i} of a test environment -->\n"));
    }
    x.push_str("</Environment>\n");
    x.into_bytes()
}

fn sha(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// Returns (sha256 of the image, sha256 of ovf-env.xml, image sectors).
fn prepare(work: &Path) -> (String, String, usize) {
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
    let s = Command::new(guest_scripts().join("build-cdrom-initramfs"))
        .arg(&modules)
        .arg(work.join("cdrom-init.cpio.gz"))
        .status()
        .unwrap();
    assert!(s.success(), "building the CD-ROM initramfs failed");
    let xml = env_xml();
    let iso = build_iso(
        "OVF ENV",
        &[IsoFile {
            name: "ovf-env.xml".into(),
            contents: xml.clone(),
        }],
    )
    .unwrap();
    std::fs::write(work.join("cdrom.iso"), &iso).unwrap();
    let _ = std::fs::remove_file(work.join("console-cdrom.log"));
    (sha(&iso), sha(&xml), iso.len() / 512)
}

#[test]
fn cloud_kernel_reads_and_mounts_the_cdrom() {
    let work = work_dir();
    let (iso_sha, xml_sha, sectors) = prepare(&work);
    let runner = runner_or_fail();
    let exe = std::env::current_exe().unwrap();
    let opts = RunOptions {
        timeout: Duration::from_secs(900),
        share: Some(work.clone()),
        ..RunOptions::default()
    };
    let args = ["--exact", "inner", "--ignored", "--nocapture"];
    let mut argv = vec![exe.as_os_str()];
    argv.extend(args.iter().map(std::ffi::OsStr::new));
    let out = runner
        .run(&opts, &argv)
        .expect("run through scripts/kvm-run");
    let console = std::fs::read_to_string(work.join("console-cdrom.log")).unwrap_or_default();
    let guest: Vec<&str> = console.lines().filter(|l| l.starts_with("GUEST")).collect();
    eprintln!("{}", guest.join("\n"));
    assert!(
        out.success(),
        "the boot failed (status {}):\n{}\n{}\nguest lines:\n{}",
        out.status,
        out.stdout,
        out.stderr,
        guest.join("\n")
    );
    let has = |s: &str| guest.iter().any(|l| l.trim_end() == s);
    for m in ["virtio_scsi", "sr_mod", "isofs"] {
        assert!(has(&format!("GUEST: loaded {m}")), "{m}: {guest:?}");
    }
    assert!(has("GUEST: sr0 type 5"), "{guest:?}");
    assert!(has("GUEST: sr0 vendor OVF-RUN"), "{guest:?}");
    assert!(has("GUEST: sr0 removable 1"), "{guest:?}");
    assert!(has(&format!("GUEST: sr0 sectors {sectors}")), "{guest:?}");
    assert!(has(&format!("GUEST: sr0 sha256 {iso_sha}")), "{guest:?}");
    assert!(has("GUEST: mounted"), "{guest:?}");
    assert!(has("GUEST: files ovf-env.xml"), "{guest:?}");
    assert!(
        has(&format!("GUEST: ovf-env.xml sha256 {xml_sha}")),
        "{guest:?}"
    );
}

/// Runs inside the test host: boot with the CD-ROM and expect a poweroff.
#[test]
#[ignore = "selected by the outer test inside the test host"]
fn inner() {
    let work = work_dir();
    let iso = devices::raw_file::RawFileSource::open(&work.join("cdrom.iso"), true).unwrap();
    let mut c = VmConfig::new(Kernel::Path(kernel_path(&work)));
    c.vcpus = 1;
    c.memory_mib = 512;
    c.initrd = Some(work.join("cdrom-init.cpio.gz"));
    c.cmdline = "console=ttyS0 panic=-1 loglevel=4".into();
    c.entropy = false;
    c.cdroms = vec![CdromConfig {
        source: Arc::new(iso),
        serial: "cdrom0".into(),
    }];
    c.no_reboot = true;
    c.console = ConsoleConfig {
        stdio: false,
        log: Some(work.join("console-cdrom.log")),
    };
    let started = std::time::Instant::now();
    let r = vmm::run(c);
    println!(
        "cdrom: {r:?} after {:.1} s",
        started.elapsed().as_secs_f64()
    );
    assert_eq!(r.unwrap(), ExitStatus::Poweroff);
}
