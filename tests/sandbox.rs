//! Test sandboxes end to end, in two KVM test host jobs (each costs a test
//! host boot, and each is retried on its own when the test host dies),
//! driven by `tests/sandbox/inside.sh`:
//!
//! 1. job "library": [`inner_four_instances_through_the_library`] (this
//!    binary, run again inside the test host) starts 4 instances of the mbr
//!    appliance at once through the public API only (768 MiB each, port 80
//!    published on a free host port), waits for `http:80` on each, fetches
//!    each page through its own host port, stops all four and checks each
//!    exit reason is poweroff and nothing is left (no passt or ovf-run
//!    process, no instance directory, no overlay file);
//! 2. job "cli": 3 detached instances, `ps --json` with 3 distinct host
//!    ports, `port`, `logs`, `curl` each page, `stop` exits 0 for each,
//!    `ps` empty afterwards;
//! 3. at the same time as 2: `--ready-when console:SOMETHING-NEVER-PRINTED
//!    --ready-timeout 60s` exits 3 in under 90 s, and `--timeout 30s` exits
//!    124 in under 60 s; nothing is left running.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::Duration;
use testbed::{appliance_path, job, scratch_dir, Variant};

/// Run one part of tests/sandbox/inside.sh in the test host and check the
/// lines it reports.
fn run_part(part: &str, expected: &[&str]) {
    let ova = appliance_path(Variant::Mbr).unwrap_or_else(|e| panic!("{e}"));
    let dir = scratch_dir(&format!("sandbox-{part}")).expect("scratch directory");
    let work = dir.path();
    let args = [
        part.to_string(),
        std::env::current_exe().unwrap().display().to_string(),
        env!("CARGO_BIN_EXE_ovf-run").to_string(),
        ova.display().to_string(),
    ];
    let out = job::run_script(
        "tests/sandbox/inside.sh",
        work,
        &args,
        Duration::from_secs(1800),
    );
    let ctx = job::report(&out, work, &["library.out", "cli.stderr"]);
    assert!(
        out.status == 0 && out.stdout.contains("SANDBOX-TEST DONE"),
        "the sandbox test ({part}) in the test host failed:\n{ctx}"
    );
    for line in expected.iter().chain(&["SANDBOX-TEST nothing left"]) {
        assert!(out.stdout.contains(line), "missing {line:?}:\n{ctx}");
    }
    eprintln!("{}", out.stdout);
}

#[test]
fn sandboxes_through_the_library() {
    run_part("library", &["SANDBOX-TEST library ok"]);
}

#[test]
fn sandboxes_through_the_cli() {
    run_part(
        "cli",
        &[
            "SANDBOX-TEST cli ps 3 distinct ports",
            "SANDBOX-TEST cli stop ok",
            "SANDBOX-TEST cli ps empty",
            "SANDBOX-TEST ready-timeout exit 3",
            "SANDBOX-TEST timeout exit 124",
        ],
    );
}

/// GET / through `addr`; the body.
fn fetch(addr: std::net::SocketAddr) -> std::io::Result<String> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    s.set_read_timeout(Some(Duration::from_secs(20)))?;
    s.write_all(b"GET / HTTP/1.0\r\nHost: sandbox\r\nConnection: close\r\n\r\n")?;
    let mut body = String::new();
    s.read_to_string(&mut body)?;
    Ok(body)
}

/// Processes whose name is `passt`, `passt.avx2` or `ovf-run`.
fn leftover_processes() -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let comm = std::fs::read_to_string(e.path().join("comm")).unwrap_or_default();
        let comm = comm.trim();
        if matches!(comm, "passt" | "passt.avx2" | "ovf-run") {
            out.push(format!("{} {comm}", e.file_name().to_string_lossy()));
        }
    }
    out
}

fn files_in(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .collect()
}

/// Run inside the test host by `inside.sh` (needs `OVF_RUN_SANDBOX_OVA`
/// and the uplink the script makes); ignored in a normal `cargo test`.
#[test]
#[ignore = "runs inside the KVM test host, started by sandboxes_through_the_library"]
fn inner_four_instances_through_the_library() {
    use ovf_run::{Appliance, ExitReason, LaunchOptions, ReadyWhen, Trust};
    let ova = PathBuf::from(std::env::var_os("OVF_RUN_SANDBOX_OVA").expect("OVF_RUN_SANDBOX_OVA"));
    let mut app = Appliance::open(&ova).expect("open");
    app.verify(
        &Trust {
            use_cache: true,
            ..Default::default()
        },
        None,
    )
    .expect("verify");
    // Consoles and events also in the shared directory, for failures.
    let work =
        PathBuf::from(std::env::var_os("OVF_RUN_SANDBOX_WORK").expect("OVF_RUN_SANDBOX_WORK"));
    let started = std::time::Instant::now();
    let mut instances = Vec::new();
    for i in 0..4 {
        let mut opts = LaunchOptions::default();
        opts.name = Some(format!("lib{i}"));
        opts.accept_eula = true;
        opts.overrides.memory_mib = Some(768);
        // One vCPU each: 4 guests share the test host's 2 (TCG) CPUs, and
        // 2-vCPU guests spin on each other's preempted locks there.
        opts.overrides.cpus = Some(1);
        opts.console_log = Some(work.join(format!("lib{i}.console")));
        opts.events = Some(work.join(format!("lib{i}.events")));
        opts.net.publish = vec!["0:80".parse().unwrap()];
        let inst = app.plan(&opts).expect("plan").start().expect("start");
        assert!(inst.dir().is_some_and(|d| d.is_dir()));
        instances.push(inst);
    }
    let ports: Vec<u16> = instances
        .iter()
        .map(|i| i.host_addr(80).expect("published").port())
        .collect();
    let mut distinct = ports.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), 4, "distinct host ports: {ports:?}");
    let http: ReadyWhen = "http:80".parse().unwrap();
    for inst in &mut instances {
        // In steps of a minute, to show progress in the job's output.
        let mut tries = 0;
        let after = loop {
            match inst.wait_ready(std::slice::from_ref(&http), Duration::from_secs(60)) {
                Ok(after) => break after,
                Err(ovf_run::ReadyError::Timeout { .. }) if tries < 15 => {
                    tries += 1;
                    let console = inst.console();
                    let tail: Vec<&str> = console.lines().rev().take(2).collect();
                    println!(
                        "{} not ready yet after {:?}: {tail:?}",
                        inst.name(),
                        started.elapsed()
                    );
                }
                Err(e) => panic!("{}: {e}\nconsole:\n{}", inst.name(), inst.console()),
            }
        };
        println!("{} ready after {after:?}", inst.name());
    }
    println!("all 4 ready after {:?}", started.elapsed());
    for inst in &instances {
        let addr = inst.host_addr(80).unwrap();
        let page = fetch(addr).unwrap_or_else(|e| panic!("{}: GET {addr}: {e}", inst.name()));
        assert!(
            page.contains("OVF-RUN-TEST-PAGE"),
            "{}: {page}",
            inst.name()
        );
        println!("{} page ok through {addr}", inst.name());
    }
    let dirs: Vec<PathBuf> = instances
        .iter()
        .map(|i| i.dir().unwrap().to_path_buf())
        .collect();
    for inst in &instances {
        inst.request_stop();
    }
    for mut inst in instances {
        // Four TCG guests shutting down at once on the test host's two
        // CPUs: one took more than 180 s once (session 6 rehearsal).
        let reason = inst.stop(Duration::from_secs(300));
        assert_eq!(reason, ExitReason::Poweroff, "{}", inst.name());
        let events = inst.events();
        assert!(events
            .iter()
            .any(|r| matches!(r.event, ovf_run::Event::Ready { .. })));
        println!("{} exited: {reason}", inst.name());
    }
    for d in &dirs {
        assert!(!d.exists(), "instance directory left: {}", d.display());
    }
    std::thread::sleep(Duration::from_secs(1));
    let left = leftover_processes();
    assert!(left.is_empty(), "processes left: {left:?}");
    let cache = ovf_loader::cache_dir().unwrap();
    let overlays = files_in(&cache.join("overlays"));
    assert!(overlays.is_empty(), "overlay files left: {overlays:?}");
    let root = ovf_run::state::state_root().unwrap();
    assert!(
        files_in(&root).is_empty(),
        "state left in {}",
        root.display()
    );
    println!("LIBRARY-TEST OK");
}
