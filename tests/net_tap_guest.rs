//! TAP networking end to end: in the KVM test host, inside a network
//! namespace the test makes, `ovf-run boot --net tap=ovfrun-tap0` boots a
//! small guest (Debian's cloud kernel, a busybox initramfs with virtio-net:
//! `tests/net/build-net-initramfs`) with 10.99.0.2 on a TAP whose host side
//! is 10.99.0.1. Traffic both ways (`tests/net/tap-inside.sh`): the guest
//! fetches a page from the host side, the host side fetches the guest's
//! page and pings it; then the guest powers off and ovf-run exits 0.
//!
//! A small guest rather than the appliance: a few seconds to boot instead
//! of minutes, and the same virtio-net device and TAP backend.

use std::path::PathBuf;
use std::process::Command;
use testbed::{runner_or_fail, scratch_dir, RunOptions};

/// The cloud kernel (shared with vmm's linux_boot test) and the network
/// initramfs: (kernel, initrd).
pub fn net_guest() -> (PathBuf, PathBuf) {
    let root = testbed::repo_root();
    let kdir = testbed::cache_dir().join("vmm-linux-boot/kernel");
    let s = Command::new(root.join("vmm/tests/guest/fetch-cloud-kernel"))
        .arg(&kdir)
        .stdout(std::process::Stdio::null())
        .status()
        .expect("run fetch-cloud-kernel");
    assert!(s.success(), "fetching Debian's cloud kernel failed");
    let release = std::fs::read_to_string(kdir.join("RELEASE")).unwrap();
    let release = release.trim();
    let kernel = kdir.join(format!("unpacked/boot/vmlinuz-{release}"));
    let out = testbed::cache_dir().join("net-guest");
    std::fs::create_dir_all(&out).unwrap();
    let initrd = out.join("net.cpio.gz");
    let s = Command::new(root.join("tests/net/build-net-initramfs"))
        .arg(kdir.join("unpacked/lib/modules").join(release))
        .arg(&initrd)
        .status()
        .expect("run build-net-initramfs");
    assert!(s.success(), "building the network initramfs failed");
    (kernel, initrd)
}

#[test]
fn tap_in_a_namespace_passes_traffic_both_ways() {
    let runner = runner_or_fail();
    let (kernel, initrd) = net_guest();
    let dir = scratch_dir("net-tap").expect("scratch directory");
    let work = dir.path();
    let script = testbed::repo_root().join("tests/net/tap-inside.sh");
    let args = [
        "bash".to_string(),
        script.display().to_string(),
        work.display().to_string(),
        env!("CARGO_BIN_EXE_ovf-run").to_string(),
        kernel.display().to_string(),
        initrd.display().to_string(),
    ];
    let opts = RunOptions {
        timeout: std::time::Duration::from_secs(900),
        mem_mib: None,
        share: Some(work.to_path_buf()),
    };
    let out = runner.run(&opts, &args).expect("run scripts/kvm-run");
    let read = |name: &str| std::fs::read_to_string(work.join(name)).unwrap_or_default();
    let ctx = format!(
        "status {}\nstdout:\n{}\nstderr:\n{}\novf-run stderr:\n{}\nconsole:\n{}",
        out.status,
        out.stdout,
        out.stderr,
        read("ovf-run.stderr"),
        read("console.log")
    );
    assert!(
        out.status == 0 && out.stdout.contains("NET-TEST DONE"),
        "the TAP test in the test host failed:\n{ctx}"
    );
    for step in [
        "NET-TEST host-to-guest http: GUEST-SIDE 10.99.0.2/24",
        "NET-TEST host-to-guest ping: 2 packets received",
        "NET-TEST guest-to-host http: GUEST-NET: fetched HOST-SIDE-",
        "NET-TEST stop guest powered off",
    ] {
        assert!(out.stdout.contains(step), "missing {step:?}:\n{ctx}");
    }
    assert!(
        read("ovf-run.stderr").contains("TAP interface ovfrun-tap0"),
        "ovf-run names the backend:\n{ctx}"
    );
    eprintln!("{}", out.stdout);
}
