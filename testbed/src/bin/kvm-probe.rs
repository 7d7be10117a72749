//! `kvm-probe [ITERATIONS]`: run the tiny probe guest (see `testbed::probe`),
//! check its checksum and print the elapsed time.
//!
//! Exit status 0 when the guest computed the right value, 1 otherwise. The
//! KVM detection in `scripts/kvm-mode` runs it under a time limit.

use std::process::ExitCode;

fn main() -> ExitCode {
    let arg = std::env::args().nth(1);
    let iterations = match arg.as_deref().map(str::parse::<u32>) {
        None => 10_000_000,
        Some(Ok(n)) => n,
        Some(Err(e)) => {
            eprintln!(
                "kvm-probe: iteration count '{}' is not a number from 1 to 4294967295: {e}",
                arg.unwrap_or_default()
            );
            return ExitCode::from(2);
        }
    };
    match testbed::probe::run_probe(iterations) {
        Ok(run) => {
            let want = testbed::probe::expected_checksum(iterations);
            if run.checksum == want {
                println!(
                    "kvm-probe: ok iterations={iterations} checksum={:#010x} elapsed_ms={:.3}",
                    run.checksum,
                    run.elapsed.as_secs_f64() * 1000.0
                );
                ExitCode::SUCCESS
            } else {
                eprintln!(
                    "kvm-probe: wrong checksum {:#010x}, expected {want:#010x}",
                    run.checksum
                );
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("kvm-probe: {e}");
            ExitCode::FAILURE
        }
    }
}
