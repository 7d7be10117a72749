//! Benchmark helper: start a VM whose first instruction is an `out` to
//! COM1, power it off, and print how long the monitor took from the start
//! of `vmm::run` to the guest's first exit (the "first guest instruction").
//! Runs on any /dev/kvm, PVM included: `tiny_startup [RUNS]`.

use std::time::Instant;
use vmm::{ConsoleConfig, ExitStatus, Kernel, VmConfig};

fn main() {
    let runs: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(20);
    tracing_subscriber::fmt()
        .with_env_filter("vmm=info")
        .with_writer(std::io::stderr)
        .without_time()
        .with_ansi(false)
        .init();
    let code = vec![
        0x66, 0xba, 0xf8, 0x03, // mov dx, 0x3f8
        0xb0, b'.', 0xee, // mov al, '.'; out dx, al
        0x66, 0xba, 0x00, 0x06, 0xb0, 0x34, 0xee, // S5 through the ACPI sleep register
        0xf4,
    ];
    for _ in 0..runs {
        let mut c = VmConfig::new(Kernel::Raw {
            code: code.clone(),
            load_addr: 0x10_0000,
        });
        c.memory_mib = 512;
        c.entropy = false;
        c.console = ConsoleConfig {
            stdio: false,
            log: None,
        };
        let t = Instant::now();
        let r = vmm::run(c);
        assert_eq!(r.unwrap(), ExitStatus::Poweroff);
        println!(
            "run_to_poweroff_ms {:.2}",
            t.elapsed().as_secs_f64() * 1000.0
        );
    }
}
