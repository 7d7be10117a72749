//! Run boot discovery on a raw disk image and print the plan:
//! `cargo run --release -p boot-discovery --example discover -- disk.raw`
//! (make one from a VMDK with `qemu-img convert -O raw disk.vmdk disk.raw`).

#[path = "support/raw.rs"]
mod raw;

use raw::RawFile;
use std::sync::Arc;
use std::time::Instant;

fn main() {
    let Some(path) = std::env::args().nth(1) else {
        eprintln!("usage: discover DISK.raw");
        std::process::exit(2);
    };
    let disk = RawFile::open_or_exit(&path);
    let start = Instant::now();
    match boot_discovery::discover(Arc::new(disk)) {
        Ok(plan) => {
            let took = start.elapsed();
            print!("{}", plan.summary());
            println!(
                "serial cmdline: {}",
                boot_discovery::serial_cmdline(&plan.cmdline)
            );
            eprintln!("discovery took {:.1} ms", took.as_secs_f64() * 1000.0);
        }
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1);
        }
    }
}
