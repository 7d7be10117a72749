//! Time the whole virtio driver injection on a real disk image:
//! `cargo run --release -p boot-discovery --example prepare_time -- DISK.raw [RUNS]`.
//! Discovery runs once (untimed: a launch does it anyway); then the fastest
//! of RUNS `drivers::prepare` calls: the initramfs pass, the root
//! filesystem's module tree, the modules copied and the archive built.
//! That is what the injection adds before the first guest instruction.

#[path = "support/raw.rs"]
mod raw;

use block_source::BlockSource;
use std::sync::Arc;
use std::time::Instant;

fn main() {
    let mut args = std::env::args().skip(1);
    let Some(path) = args.next() else {
        eprintln!("usage: prepare_time DISK.raw [RUNS]");
        std::process::exit(2);
    };
    let runs: usize = args.next().and_then(|r| r.parse().ok()).unwrap_or(5);
    let disk: Arc<dyn BlockSource> = Arc::new(raw::RawFile::open_or_exit(&path));
    let plan = boot_discovery::discover(disk.clone()).unwrap_or_else(|e| {
        eprintln!("{path}: {e}");
        std::process::exit(1)
    });
    let mut best = f64::MAX;
    let mut report = None;
    for _ in 0..runs.max(1) {
        let t = Instant::now();
        let r = boot_discovery::drivers::prepare(disk.clone(), &plan).unwrap_or_else(|e| {
            eprintln!("{path}: {e}");
            std::process::exit(1)
        });
        best = best.min(t.elapsed().as_secs_f64());
        report = Some(r);
    }
    let r = report.expect("at least one run");
    println!(
        "{path}: initrd {} bytes, {} module(s) added, archive {} bytes; best of {runs}: {:.1} ms",
        plan.initrd.as_ref().map_or(0, Vec::len),
        r.added.len(),
        r.appended_cpio.as_ref().map_or(0, Vec::len),
        best * 1000.0
    );
}
