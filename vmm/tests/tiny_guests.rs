//! Hand-made guests on this machine's own /dev/kvm: the vCPU loop, port
//! and MMIO dispatch, serial output, i8042 reset and ACPI poweroff.
//! Skipped (with a message) where /dev/kvm cannot be opened.

use vmm::{ConsoleConfig, ExitStatus, Kernel, VmConfig};

fn kvm_available() -> bool {
    if std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .is_ok()
    {
        return true;
    }
    eprintln!("skipped: /dev/kvm is not usable here");
    false
}

/// 32-bit code: print `text` on COM1, then run `tail`.
fn guest(text: &[u8], tail: &[u8]) -> Vec<u8> {
    let mut code = vec![0x66, 0xba, 0xf8, 0x03]; // mov dx, 0x3f8
    for &b in text {
        code.extend_from_slice(&[0xb0, b, 0xee]); // mov al, b; out dx, al
    }
    code.extend_from_slice(tail);
    code.extend_from_slice(&[0xf4, 0xeb, 0xfe]); // hlt; jmp $
    code
}

const RESET_TAIL: &[u8] = &[0xb0, 0xfe, 0xe6, 0x64]; // mov al, 0xfe; out 0x64, al
/// mov dx, 0x600; mov al, (5 << 2) | SLP_EN; out dx, al
const POWEROFF_TAIL: &[u8] = &[0x66, 0xba, 0x00, 0x06, 0xb0, 0x34, 0xee];

fn config(code: Vec<u8>, log: &std::path::Path) -> VmConfig {
    let mut c = VmConfig::new(Kernel::Raw {
        code,
        load_addr: 0x10_0000,
    });
    c.memory_mib = 64;
    c.entropy = false;
    c.no_reboot = true;
    c.console = ConsoleConfig {
        stdio: false,
        log: Some(log.to_path_buf()),
    };
    c
}

fn log_path(name: &str) -> std::path::PathBuf {
    let p = std::env::temp_dir().join(format!("ovf-run-tiny-{name}-{}.log", std::process::id()));
    let _ = std::fs::remove_file(&p);
    p
}

#[test]
fn serial_output_then_i8042_reset() {
    if !kvm_available() {
        return;
    }
    let log = log_path("reset");
    let status = vmm::run(config(guest(b"hello from the guest\n", RESET_TAIL), &log)).unwrap();
    assert_eq!(status, ExitStatus::Reboot);
    assert_eq!(
        std::fs::read_to_string(&log).unwrap(),
        "hello from the guest\n"
    );
    std::fs::remove_file(&log).ok();
}

#[test]
fn acpi_sleep_register_powers_off() {
    if !kvm_available() {
        return;
    }
    let log = log_path("poweroff");
    let status = vmm::run(config(guest(b"bye", POWEROFF_TAIL), &log)).unwrap();
    assert_eq!(status, ExitStatus::Poweroff);
    assert_eq!(std::fs::read_to_string(&log).unwrap(), "bye");
    std::fs::remove_file(&log).ok();
}

#[test]
fn unmapped_mmio_reads_all_ones_and_two_vcpus_start() {
    if !kvm_available() {
        return;
    }
    let log = log_path("mmio");
    // mov al, [0xd0000000] (nothing mapped there); out dx, al
    let mut tail = vec![0xa0, 0x00, 0x00, 0x00, 0xd0, 0xee];
    tail.extend_from_slice(POWEROFF_TAIL);
    let mut c = config(guest(b"", &tail), &log);
    c.vcpus = 2;
    assert_eq!(vmm::run(c).unwrap(), ExitStatus::Poweroff);
    assert_eq!(std::fs::read(&log).unwrap(), vec![0xff]);
    std::fs::remove_file(&log).ok();
}

#[test]
fn a_guest_that_faults_reports_a_failure_with_its_console() {
    if !kvm_available() {
        return;
    }
    let log = log_path("fault");
    // Print, then jump to an address outside RAM and the buses: the vCPU
    // fetches from nowhere, which must end in a clear error or a reset,
    // never a hang or a panic.
    let tail = [0xb8, 0x00, 0x00, 0x00, 0xd0, 0xff, 0xe0]; // mov eax, 0xd0000000; jmp eax
    let r = vmm::run(config(guest(b"about to crash\n", &tail), &log));
    match r {
        Ok(ExitStatus::Reboot) => {}
        Ok(ExitStatus::Crashed(why)) => assert!(why.contains("about to crash"), "{why}"),
        Err(e) => assert!(e.to_string().contains("about to crash"), "{e}"),
        other => panic!("unexpected {other:?}"),
    }
    std::fs::remove_file(&log).ok();
}

#[test]
fn pci_config_through_ports_and_ecam() {
    if !kvm_available() {
        return;
    }
    let log = log_path("pci");
    let mut code = vec![
        0x66, 0xba, 0xf8, 0x0c, // mov dx, 0xcf8
        0xb8, 0x00, 0x00, 0x00, 0x80, // mov eax, 0x80000000 (00:00.0, reg 0)
        0xef, // out dx, eax
        0x66, 0xba, 0xfc, 0x0c, // mov dx, 0xcfc
        0xed, // in eax, dx
        0x66, 0xba, 0xf8, 0x03, // mov dx, 0x3f8
        0xee, // out dx, al: host bridge vendor, low byte
        0xa1, 0x00, 0x00, 0x00, 0xe0, // mov eax, [ECAM 00:00.0]
        0xee, 0xa1, 0x00, 0x80, 0x00, 0xe0, // mov eax, [ECAM 00:01.0] (virtio-rng)
        0xee, 0xa1, 0x02, 0x80, 0x00,
        0xe0, // mov eax, [ECAM 00:01.0 + 2]: crosses a dword, all ones
        0xee,
    ];
    code.extend_from_slice(POWEROFF_TAIL);
    code.extend_from_slice(&[0xf4]);
    let mut c = config(code, &log);
    c.entropy = true;
    assert_eq!(vmm::run(c).unwrap(), ExitStatus::Poweroff);
    assert_eq!(std::fs::read(&log).unwrap(), vec![0x36, 0x36, 0xf4, 0xff]);
    std::fs::remove_file(&log).ok();
}
