//! Run boot discovery on a raw disk image and print the plan:
//! `cargo run --release -p boot-discovery --example discover -- disk.raw`
//! (make one from a VMDK with `qemu-img convert -O raw disk.vmdk disk.raw`).

use block_source::{check_range, BlockSource};
use std::os::unix::fs::FileExt;
use std::sync::Arc;
use std::time::Instant;

struct RawFile(std::fs::File, u64);

impl BlockSource for RawFile {
    fn capacity(&self) -> u64 {
        self.1
    }
    fn read_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
        check_range(self.1, offset, buf.len())?;
        self.0.read_exact_at(buf, offset)
    }
}

fn main() {
    let Some(path) = std::env::args().nth(1) else {
        eprintln!("usage: discover DISK.raw");
        std::process::exit(2);
    };
    let f = std::fs::File::open(&path).unwrap_or_else(|e| {
        eprintln!("{path}: {e}");
        std::process::exit(1)
    });
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let start = Instant::now();
    match boot_discovery::discover(Arc::new(RawFile(f, len))) {
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
