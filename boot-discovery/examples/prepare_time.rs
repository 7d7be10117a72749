//! Time the whole virtio driver injection on a real disk image:
//! `cargo run --release -p boot-discovery --example prepare_time -- DISK.raw [RUNS]`.
//! Discovery runs once (untimed: a launch does it anyway); then the fastest
//! of RUNS `drivers::prepare` calls: the initramfs pass, the root
//! filesystem's module tree, the modules copied and the archive built.
//! That is what the injection adds before the first guest instruction.

use block_source::{check_range, BlockSource};
use std::os::unix::fs::FileExt;
use std::sync::Arc;
use std::time::Instant;

struct Raw(std::fs::File, u64);

impl BlockSource for Raw {
    fn capacity(&self) -> u64 {
        self.1
    }
    fn read_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
        check_range(self.1, offset, buf.len())?;
        self.0.read_exact_at(buf, offset)
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let Some(path) = args.next() else {
        eprintln!("usage: prepare_time DISK.raw [RUNS]");
        std::process::exit(2);
    };
    let runs: usize = args.next().and_then(|r| r.parse().ok()).unwrap_or(5);
    let file = std::fs::File::open(&path).unwrap_or_else(|e| {
        eprintln!("{path}: {e}");
        std::process::exit(1)
    });
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let disk: Arc<dyn BlockSource> = Arc::new(Raw(file, len));
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
