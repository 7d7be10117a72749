//! User-mode networking end to end: `ovf-run -p 18080:80 APPLIANCE.ova`
//! in the KVM test host (one run, one boot), driven by
//! `tests/net/appliance-inside.sh`:
//!
//! - the appliance's page answers `curl http://127.0.0.1:18080/` through
//!   passt's published port, and not on the host's other address;
//! - the guest resolves a name through passt: its DHCP lease names passt's
//!   gateway as DNS server and passt forwards the query to the host's
//!   resolver. The test host has no network, so that resolver is a stub
//!   (`tests/net/dns-stub.py` on 127.0.0.1, named by a bind-mounted
//!   /etc/resolv.conf) answering `*.ovf-run.test` with 192.0.2.53; the
//!   appliance's `ovfrun.test=dns` hook prints the address glibc got;
//! - SIGTERM stops ovf-run (power button, guest shutdown) and passt is gone
//!   afterwards: no orphan, the port is closed.

use testbed::{appliance_path, runner_or_fail, scratch_dir, RunOptions, Variant};

#[test]
fn published_port_serves_the_page_and_the_guest_resolves_through_passt() {
    let runner = runner_or_fail();
    let ova = appliance_path(Variant::Mbr).unwrap_or_else(|e| panic!("{e}"));
    let dir = scratch_dir("net-appliance").expect("scratch directory");
    let work = dir.path();
    let script = testbed::repo_root().join("tests/net/appliance-inside.sh");
    let args = [
        "bash".to_string(),
        script.display().to_string(),
        work.display().to_string(),
        env!("CARGO_BIN_EXE_ovf-run").to_string(),
        ova.display().to_string(),
    ];
    let opts = RunOptions {
        timeout: std::time::Duration::from_secs(1500),
        mem_mib: None,
        share: Some(work.to_path_buf()),
    };
    let out = runner.run(&opts, &args).expect("run scripts/kvm-run");
    let read = |name: &str| std::fs::read_to_string(work.join(name)).unwrap_or_default();
    let console = read("console.log");
    let tail: Vec<&str> = console.lines().rev().take(40).collect();
    let ctx = format!(
        "status {}\nstdout:\n{}\nstderr:\n{}\novf-run stderr:\n{}\nstub log:\n{}\nconsole tail:\n{}",
        out.status,
        out.stdout,
        out.stderr,
        read("ovf-run.stderr"),
        read("dns.log"),
        tail.into_iter().rev().collect::<Vec<_>>().join("\n")
    );
    assert!(
        out.status == 0 && out.stdout.contains("NET-TEST DONE"),
        "the network test in the test host failed:\n{ctx}"
    );
    let stderr = read("ovf-run.stderr");
    assert!(
        stderr.contains("http://127.0.0.1:18080 → guest :80"),
        "progress line names the published port:\n{ctx}"
    );
    assert!(
        out.stdout.contains("NET-TEST curl ok"),
        "page through the published port:\n{ctx}"
    );
    let dns = out
        .stdout
        .lines()
        .find(|l| l.starts_with("NET-TEST dns guest:"))
        .unwrap_or_default();
    assert!(
        dns.contains("OVF-RUN-DNS ok 192.0.2.53 dns-probe.ovf-run.test"),
        "the guest resolved the name through passt:\n{ctx}"
    );
    assert!(
        read("dns.log").contains("query dns-probe.ovf-run.test type 1"),
        "the host's resolver saw the guest's query:\n{ctx}"
    );
    assert!(
        out.stdout
            .contains("NET-TEST seccomp every thread filtered"),
        "every thread of the monitor runs under its seccomp filter:\n{ctx}"
    );
    assert!(
        out.stdout.contains("NET-TEST stop passt gone"),
        "passt stopped with ovf-run:\n{ctx}"
    );
    eprintln!("{}", out.stdout);
}
