//! Benchmark helper: boot KERNEL with INITRD and a raw DISK, console to
//! LOG (or stdout when LOG is `-`), `pvh` (host decompression) or `bzimage` (guest decompression);
//! prints the wall time to poweroff. The monitor logs (stderr) carry the
//! decompression time, first guest exit, first console output and RSS.
//! Usage: bench_boot KERNEL INITRD DISK LOG pvh|bzimage [CPUS] [MEMORY_MIB]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;
use vmm::{BzImageMode, ConsoleConfig, DiskConfig, Kernel, VmConfig};

fn main() {
    let a: Vec<String> = std::env::args().collect();
    if a.len() < 6 {
        eprintln!("usage: bench_boot KERNEL INITRD DISK LOG pvh|bzimage [CPUS] [MEMORY_MIB]");
        std::process::exit(2);
    }
    // The first line on stdout: with LOG "-" a timestamping pipe learns
    // when the process got to main (exec and loading excluded from the rest).
    println!("bench_boot: main");
    tracing_subscriber::fmt()
        .with_env_filter("vmm=info")
        .with_writer(std::io::stderr)
        .without_time()
        .with_ansi(false)
        .init();
    let mut c = VmConfig::new(Kernel::Path(PathBuf::from(&a[1])));
    c.initrd = Some(PathBuf::from(&a[2]));
    c.disks = vec![DiskConfig {
        source: Arc::new(
            devices::raw_file::RawFileSource::open(&PathBuf::from(&a[3]), false).unwrap(),
        ),
        read_only: false,
        id: "disk0".into(),
    }];
    // LOG "-": the console goes to stdout (for a timestamping pipe).
    c.console = if a[4] == "-" {
        ConsoleConfig {
            stdio: true,
            log: None,
        }
    } else {
        ConsoleConfig {
            stdio: false,
            log: Some(PathBuf::from(&a[4])),
        }
    };
    c.bzimage_mode = if a[5] == "bzimage" {
        BzImageMode::GuestDecompress
    } else {
        BzImageMode::PreferPvh
    };
    c.vcpus = a.get(6).and_then(|v| v.parse().ok()).unwrap_or(2);
    c.memory_mib = a.get(7).and_then(|v| v.parse().ok()).unwrap_or(512);
    // earlyprintk: the bzImage decompressor and the kernel's first lines
    // reach the console, so both boot paths can be timed to the same line;
    // loglevel=6 prints notices, among them the "Linux version" banner.
    c.cmdline = "console=ttyS0 earlyprintk=ttyS0 panic=-1 loglevel=6".into();
    c.no_reboot = true;
    let t = Instant::now();
    let r = vmm::run(c);
    println!(
        "{}: {:?} boot_to_poweroff_ms {:.0}",
        a[5],
        r,
        t.elapsed().as_secs_f64() * 1000.0
    );
}
