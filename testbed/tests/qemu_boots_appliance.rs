//! QEMU-KVM boots each Debian test appliance's disk (taken out of the OVA by
//! scripts/bench-qemu-boot with tar + qemu-img, not by ovf-run) to its ready
//! marker, where a real /dev/kvm is: this proves the appliances and the KVM
//! test host independently of our VMM.
//!
//! Each boot takes about one minute in the test host (QEMU 10 TCG). Both tests share the
//! test host through its lock, so the second one waits for the first.

use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::Duration;

use testbed::{appliance_path, runner_or_fail, scratch_dir, stop, Console, Variant};

/// Time limit of one boot inside the test host (the script enforces it);
/// a normal one takes about one minute.
const BOOT_LIMIT: Duration = Duration::from_secs(420);
/// How long the test waits for the marker, queueing for the test host included.
const WAIT_LIMIT: Duration = Duration::from_secs(2700);

/// One reference boot; the script's stdout on success, the reason otherwise.
fn attempt(runner: &testbed::KvmRunner, variant: Variant) -> Result<String, String> {
    let ova = appliance_path(variant).unwrap_or_else(|e| panic!("{e}"));
    let dir = scratch_dir(&format!("qemu-boot-{}", variant.name())).expect("scratch directory");
    let console = Console::at(dir.path().join("console.log"));

    let mut child = Command::new(runner.script("bench-qemu-boot"))
        .arg(variant.name())
        .arg("--dir")
        .arg(dir.path())
        .arg("--timeout")
        .arg(BOOT_LIMIT.as_secs().to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .expect("start scripts/bench-qemu-boot");

    let waited = console.wait_for_while("OVF-RUN-READY", WAIT_LIMIT, &mut child);
    if waited.is_err() {
        // SIGTERM to the whole group: kvm-run stops its QEMU and frees the
        // test host lock now rather than at the time limit.
        stop(&mut child);
    }
    let out = child
        .wait_with_output()
        .expect("wait for scripts/bench-qemu-boot");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    if let Err(e) = waited {
        return Err(format!("{} did not boot to its ready marker: {e}\nbench stdout:\n{stdout}\nbench stderr:\n{stderr}", ova.display()));
    }
    if !out.status.success() {
        return Err(format!(
            "marker seen, but bench-qemu-boot failed ({}) (web page check?)\nstdout:\n{stdout}\nstderr:\n{stderr}",
            out.status
        ));
    }
    if !stdout.contains("phase ready-to-http-page") {
        return Err(format!("no web page phase in:\n{stdout}"));
    }
    eprintln!("{} ({:?}):\n{stdout}", ova.display(), runner.mode());
    Ok(stdout)
}

/// The reference boot must work for the comparison to mean anything. It
/// is the reference, not our VMM, and in the QEMU 10 test host (no THP) it
/// still failed 2 of about 13 times: once not caught, once the test host's
/// kernel died in the reference QEMU's own thread ("corrupted stack end
/// detected inside scheduler", in its SeaBIOS/GRUB phase; ovf-run boots PVH
/// and never takes that path). So up to three attempts, each failure said
/// loudly and appended to the cache's `qemu-boot-retries.log`; three
/// failures fail the test. (With bookworm's QEMU 7.2 as the test host it
/// failed in most runs.)
fn boots_to_ready_marker(variant: Variant) {
    const ATTEMPTS: usize = 3;
    let runner = runner_or_fail();
    let mut failures = Vec::new();
    for attempt_no in 1..=ATTEMPTS {
        match attempt(&runner, variant) {
            Ok(_) => return,
            Err(e) => {
                eprintln!("qemu_boots_appliance: reference boot attempt {attempt_no} of {ATTEMPTS} failed:\n{e}");
                let log = testbed::cache_dir().join("qemu-boot-retries.log");
                if let Ok(mut f) = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&log)
                {
                    use std::io::Write;
                    let _ = writeln!(
                        f,
                        "==== {} {} attempt {attempt_no}\n{e}",
                        variant.name(),
                        unix_time()
                    );
                }
                failures.push(e);
            }
        }
    }
    panic!(
        "the reference boot failed {ATTEMPTS} times:\n{}",
        failures.join("\n---- next attempt ----\n")
    );
}

fn unix_time() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[test]
fn qemu_kvm_boots_the_mbr_appliance() {
    boots_to_ready_marker(Variant::Mbr);
}

#[test]
fn qemu_kvm_boots_the_gpt_appliance() {
    boots_to_ready_marker(Variant::Gpt);
}
