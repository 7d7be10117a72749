//! Time the virtio driver check's initramfs pass on a real image:
//! `cargo run --release -p boot-discovery --example initramfs_time -- INITRD [RUNS]`.
//! Prints the image's archives, entry count and the fastest of RUNS reads
//! (inflate + cpio walk + facts), which is what launching adds before the
//! guest starts when nothing has to be appended.

use boot_discovery::drivers::facts;
use boot_discovery::initramfs::{read, Limits};
use std::time::Instant;

fn main() {
    let mut args = std::env::args().skip(1);
    let Some(path) = args.next() else {
        eprintln!("usage: initramfs_time INITRD [RUNS]");
        std::process::exit(2);
    };
    let runs: usize = args.next().and_then(|r| r.parse().ok()).unwrap_or(5);
    let image = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("{path}: {e}");
            std::process::exit(1);
        }
    };
    let mut best = f64::MAX;
    for _ in 0..runs.max(1) {
        let t = Instant::now();
        let ird = match read(&image, &facts::keep, Limits::default()) {
            Ok(i) => i,
            Err(e) => {
                eprintln!("{path}: {e}");
                std::process::exit(1);
            }
        };
        let f = facts::gather(&ird);
        std::hint::black_box(&f);
        best = best.min(t.elapsed().as_secs_f64());
    }
    let ird = read(&image, &|_| false, Limits::default()).expect("read above");
    let kinds: Vec<&str> = ird.segments.iter().map(|s| s.compression.name()).collect();
    println!(
        "{path}: {} bytes, archives {}, {} entries; best of {runs}: {:.1} ms",
        image.len(),
        kinds.join(" + "),
        ird.entries.len(),
        best * 1000.0
    );
}
