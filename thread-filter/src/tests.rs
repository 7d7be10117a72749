//! Each kind's filter, installed in a child process (the test binary run
//! again with an environment variable naming the kind), lets the child's
//! ordinary work through and kills it with the logged message on a call no
//! list allows.

use super::*;
use std::process::Command;

const CHILD_KIND: &str = "THREAD_FILTER_TEST_KIND";

fn kind_by_label(label: &str) -> Kind {
    *Kind::ALL
        .iter()
        .find(|k| k.label() == label)
        .expect("known kind")
}

/// Not a test of its own: the child's side of the tests below.
#[test]
fn child_side() {
    let Ok(label) = std::env::var(CHILD_KIND) else {
        return;
    };
    // SAFETY: names this thread (what the report prints).
    unsafe { libc::prctl(libc::PR_SET_NAME, c"test-thread".as_ptr(), 0, 0, 0) };
    install(kind_by_label(&label)).expect("install the filter");
    // Ordinary work passes: allocation, stdout, time, a lock.
    let v: Vec<u8> = (0..100_000u32).map(|i| i as u8).collect();
    let m = std::sync::Mutex::new(v.len());
    println!(
        "filter on, {} bytes, {:?}",
        *m.lock().unwrap(),
        std::time::Instant::now().elapsed() < std::time::Duration::from_secs(1)
    );
    if std::env::var("THREAD_FILTER_TEST_FORBIDDEN").is_ok() {
        let mut uts: libc::utsname = unsafe { std::mem::zeroed() };
        // SAFETY: uname(2) into a local buffer; the filter denies it.
        unsafe { libc::syscall(libc::SYS_uname, &mut uts) };
        println!("survived the forbidden call");
    }
}

fn run_child(kind: Kind, forbidden: bool) -> std::process::Output {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args([
        "--exact",
        "tests::child_side",
        "--nocapture",
        "--test-threads=1",
    ])
    .env(CHILD_KIND, kind.label());
    if forbidden {
        cmd.env("THREAD_FILTER_TEST_FORBIDDEN", "1");
    }
    cmd.output().expect("run the child")
}

#[test]
fn a_forbidden_call_kills_the_process_naming_thread_and_call() {
    for kind in Kind::ALL {
        let out = run_child(kind, true);
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            out.status.code(),
            Some(sigsys::EXIT_STATUS),
            "{kind:?}\n{stdout}\n{stderr}"
        );
        assert!(
            stdout.contains("filter on"),
            "{kind:?}: ordinary work passed\n{stdout}"
        );
        assert!(!stdout.contains("survived"), "{kind:?}\n{stdout}");
        let expected = format!(
            "ovf-run: seccomp: thread test-thread ({}) made the forbidden system call 63 (uname)",
            kind.label()
        );
        assert!(stderr.contains(&expected), "{kind:?}\n{stderr}");
    }
}

#[test]
fn allowed_work_runs_to_the_end_under_every_filter() {
    for kind in Kind::ALL {
        let out = run_child(kind, false);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{kind:?}\n{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(stdout.contains("filter on, 100000 bytes, true"), "{stdout}");
    }
}

#[test]
fn every_kind_compiles_and_the_name_table_is_sorted() {
    for kind in Kind::ALL {
        assert!(!compile(kind).unwrap().is_empty());
    }
    assert!(
        lists::COMMON.contains(&libc::SYS_write) && lists::COMMON.contains(&libc::SYS_exit_group),
        "the SIGSYS report needs write and exit_group everywhere"
    );
    assert_eq!(lists::syscall_name(63), "uname");
    assert_eq!(lists::syscall_name(0), "read");
    assert_eq!(lists::syscall_name(100_000), "unknown");
}

#[test]
fn disabled_means_nothing_is_installed() {
    // In this process (the test harness) the switch is only read here.
    set_enabled(false);
    assert!(!enabled());
    install(Kind::Vcpu).unwrap();
    set_enabled(true);
    // Still unfiltered: a call no list allows works.
    let mut uts: libc::utsname = unsafe { std::mem::zeroed() };
    // SAFETY: uname(2) into a local buffer.
    assert_eq!(unsafe { libc::syscall(libc::SYS_uname, &mut uts) }, 0);
}

#[test]
fn kvm_ioctl_numbers_match_linux() {
    // From linux/kvm.h as the C preprocessor expands them on x86_64.
    assert_eq!(lists::VCPU_IOCTLS[0], 0xae80, "KVM_RUN");
    assert_eq!(lists::VCPU_IOCTLS[1], 0x4008_ae6a, "KVM_SET_GSI_ROUTING");
    assert_eq!(lists::VCPU_IOCTLS[2], 0x4020_ae76, "KVM_IRQFD");
    assert_eq!(lists::VCPU_IOCTLS[3], 0x4040_ae79, "KVM_IOEVENTFD");
    // The state reads of a vCPU parked for a snapshot.
    for (n, name) in [
        (0x8004_ae98, "KVM_GET_MP_STATE"),
        (0xc008_ae91, "KVM_GET_CPUID2"),
        (0x8090_ae81, "KVM_GET_REGS"),
        (0x8138_ae83, "KVM_GET_SREGS"),
        (0x9000_aea4, "KVM_GET_XSAVE"),
        (0x8188_aea6, "KVM_GET_XCRS"),
        (0x8080_aea1, "KVM_GET_DEBUGREGS"),
        (0x8400_ae8e, "KVM_GET_LAPIC"),
        (0xc008_ae88, "KVM_GET_MSRS"),
        (0x8040_ae9f, "KVM_GET_VCPU_EVENTS"),
        (0xaead, "KVM_KVMCLOCK_CTRL"),
    ] {
        assert!(lists::VCPU_IOCTLS.contains(&n), "{name} {n:#x}");
    }
}

#[test]
fn read_only_opens_pass_and_writing_opens_are_trapped() {
    if std::env::var(CHILD_KIND).is_ok() {
        return;
    }
    for (forbidden, code) in [(false, 0), (true, sigsys::EXIT_STATUS)] {
        let mut cmd = Command::new(std::env::current_exe().unwrap());
        cmd.args(["--exact", "tests::open_child", "--nocapture"])
            .env(
                "THREAD_FILTER_TEST_OPEN",
                if forbidden { "write" } else { "read" },
            );
        let out = cmd.output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(code), "{stderr}");
        if forbidden {
            assert!(stderr.contains("(openat)"), "{stderr}");
        }
    }
}

/// The child's side of the test above.
#[test]
fn open_child() {
    let Ok(how) = std::env::var("THREAD_FILTER_TEST_OPEN") else {
        return;
    };
    install(Kind::Worker).unwrap();
    let read = std::fs::read_to_string("/proc/self/stat").is_ok();
    println!("read-only open worked: {read}");
    if how == "write" {
        let _ = std::fs::OpenOptions::new().append(true).open("/dev/null");
    }
}

/// The supervisor's real work passes its filter: a TCP ready check through
/// a published port (connect with a timeout, a request, the answer), a
/// stop request read and removed, and the instance directory removed.
#[test]
fn the_supervisor_filter_lets_its_work_through() {
    use std::io::{Read, Write};
    let dir = tempfile::tempdir().unwrap();
    let inst = dir.path().join("inst");
    std::fs::create_dir_all(inst.join("sub")).unwrap();
    std::fs::write(inst.join("request"), "stop 5").unwrap();
    std::fs::write(inst.join("sub/console.log"), "x").unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        let mut buf = [0u8; 64];
        let _ = s.read(&mut buf);
        s.write_all(b"HTTP/1.0 200 OK\r\n\r\n").unwrap();
    });
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "tests::supervisor_child", "--nocapture"])
        .env("THREAD_FILTER_TEST_SUPERVISOR", format!("{addr}"))
        .env("THREAD_FILTER_TEST_DIR", &inst)
        .output()
        .unwrap();
    server.join().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("answer HTTP/1.0 200 OK"), "{stdout}");
    assert!(!inst.exists(), "the instance directory was removed");
}

/// The child's side of the test above.
#[test]
fn supervisor_child() {
    use std::io::{Read, Write};
    let Ok(addr) = std::env::var("THREAD_FILTER_TEST_SUPERVISOR") else {
        return;
    };
    let dir = std::path::PathBuf::from(std::env::var("THREAD_FILTER_TEST_DIR").unwrap());
    install(Kind::Supervisor).unwrap();
    let request = std::fs::read_to_string(dir.join("request")).unwrap();
    std::fs::remove_file(dir.join("request")).unwrap();
    let mut s = std::net::TcpStream::connect_timeout(
        &addr.parse().unwrap(),
        std::time::Duration::from_secs(2),
    )
    .unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(2)))
        .unwrap();
    s.write_all(b"GET / HTTP/1.0\r\n\r\n").unwrap();
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    println!("request {request}, answer {}", answer.trim());
    std::fs::remove_dir_all(&dir).unwrap();
}
