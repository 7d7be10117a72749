//! `ovf-run APPLIANCE.ova` boots the Debian test appliances with their own
//! kernel, found inside their own disk, where a real /dev/kvm is (the KVM
//! test host here; natively on real hardware).
//!
//! Each run boots to the ready marker, on which the guest reports the CPUs
//! and memory it sees; the appliance's test hook (kernel command line
//! `ovfrun.test=persist,poweroff`, see resources/appliance-rootfs) counts its
//! boots in a file on its disk and powers off with `systemctl poweroff`,
//! which must end ovf-run with status 0. The package's sha256 must not change.

use sha2::{Digest, Sha256};
use std::path::Path;
use std::process::Child;
use std::time::Duration;
use testbed::{
    appliance_path, runner_or_fail, scratch_dir, Console, KvmRunner, RunOptions, Variant,
};

/// One boot in the test host, test host start included.
const RUN_LIMIT: Duration = Duration::from_secs(900);
/// Waiting for the marker, queueing for the test host included.
const WAIT_LIMIT: Duration = Duration::from_secs(2400);

fn sha256_file(path: &Path) -> String {
    let mut f = std::fs::File::open(path).unwrap();
    let mut h = Sha256::new();
    std::io::copy(&mut f, &mut h).unwrap();
    hex::encode(h.finalize())
}

struct Boot {
    console: String,
    stdout: String,
    stderr: String,
    status: i32,
}

/// Run the appliance once; returns after ovf-run exits.
fn boot(runner: &KvmRunner, ova: &Path, work: &Path, name: &str, persist: bool) -> Boot {
    let console_path = work.join(format!("{name}.console"));
    let console = Console::at(&console_path);
    let bin = env!("CARGO_BIN_EXE_ovf-run");
    let mut args: Vec<String> = vec![
        bin.into(),
        "--accept-eula".into(),
        "--no-console".into(),
        "--console-log".into(),
        console_path.display().to_string(),
        "--append".into(),
        "ovfrun.test=persist,poweroff".into(),
        // Networking has its own end-to-end test (net_appliance.rs); passt
        // needs a routable interface, which the test host does not have.
        "--net".into(),
        "none".into(),
    ];
    if persist {
        args.push("--persist".into());
        args.push(work.join("persist").display().to_string());
    }
    args.push(ova.display().to_string());
    let opts = RunOptions {
        timeout: RUN_LIMIT,
        mem_mib: None,
        share: Some(work.to_path_buf()),
    };
    let mut cmd = runner.command(&opts, &args);
    // The cache (overlays, verification records) must be writable inside the test host.
    cmd.env("XDG_CACHE_HOME", work.join("cache"));
    cmd.stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child: Child = cmd.spawn().expect("start scripts/kvm-run");
    let waited = console.wait_for_while("OVF-RUN-READY", WAIT_LIMIT, &mut child);
    let out = child.wait_with_output().expect("wait for ovf-run");
    let b = Boot {
        console: console.contents(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        status: out.status.code().unwrap_or(-1),
    };
    if let Err(e) = waited {
        panic!(
            "{name}: no ready marker: {e}\novf-run stderr:\n{}\nstdout:\n{}",
            b.stderr, b.stdout
        );
    }
    b
}

fn marker_field<'a>(console: &'a str, key: &str) -> Option<&'a str> {
    let line = console.lines().find(|l| l.contains("OVF-RUN-READY"))?;
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(key)?.strip_prefix('='))
}

fn boots_counted(console: &str) -> Option<u32> {
    // The getty's login prompt may share the line ("… login: OVF-RUN-BOOTS 1").
    console.lines().find_map(|l| {
        let (_, rest) = l.split_once("OVF-RUN-BOOTS ")?;
        rest.split_whitespace().next()?.parse().ok()
    })
}

fn check_boot(b: &Boot, name: &str) {
    let ctx = || format!("{name}\nconsole:\n{}\nstderr:\n{}", b.console, b.stderr);
    assert_eq!(
        b.status,
        0,
        "ovf-run did not exit 0 after the guest's poweroff: {}",
        ctx()
    );
    assert_eq!(
        marker_field(&b.console, "cpus"),
        Some("2"),
        "the OVF asks for 2 CPUs: {}",
        ctx()
    );
    let mem_kb: u64 = marker_field(&b.console, "mem_kb")
        .and_then(|m| m.parse().ok())
        .unwrap_or_else(|| panic!("no mem_kb: {}", ctx()));
    // 1024 MB in the OVF; the kernel keeps some for itself.
    assert!(
        (900 << 10..=1024 << 10).contains(&mem_kb),
        "guest sees {mem_kb} KiB: {}",
        ctx()
    );
    assert!(
        b.stderr.contains("booting /boot/vmlinuz-") || b.stderr.contains("booting /vmlinuz-"),
        "{}",
        ctx()
    );
}

fn run_appliance(variant: Variant, second_persistent_run: bool) {
    let runner = runner_or_fail();
    let ova = appliance_path(variant).unwrap_or_else(|e| panic!("{e}"));
    let before = sha256_file(&ova);
    let dir = scratch_dir(&format!("run-{}", variant.name())).expect("scratch directory");
    let work = dir.path();

    let first = boot(&runner, &ova, work, "first", true);
    check_boot(&first, "first run");
    assert_eq!(
        boots_counted(&first.console),
        Some(1),
        "first boot writes the first line:\n{}",
        first.console
    );

    if second_persistent_run {
        // --persist keeps the file written by the first run.
        let second = boot(&runner, &ova, work, "second", true);
        check_boot(&second, "second run (--persist)");
        assert_eq!(
            boots_counted(&second.console),
            Some(2),
            "the first run's file is kept:\n{}",
            second.console
        );
        // Without --persist the disk starts clean again.
        let third = boot(&runner, &ova, work, "third", false);
        check_boot(&third, "third run (ephemeral)");
        assert_eq!(
            boots_counted(&third.console),
            Some(1),
            "an ephemeral run starts clean:\n{}",
            third.console
        );
    }
    assert_eq!(sha256_file(&ova), before, "the package changed");
}

#[test]
fn mbr_appliance_boots_persists_and_powers_off() {
    run_appliance(Variant::Mbr, true);
}

#[test]
fn gpt_appliance_boots_and_powers_off() {
    run_appliance(Variant::Gpt, false);
}
