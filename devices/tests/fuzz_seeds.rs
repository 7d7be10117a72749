//! Every committed input of the virtio fuzz targets (`devices/fuzz/seeds`,
//! `devices/fuzz/regressions`) replayed through the targets' own harness
//! (`devices/fuzz/harness`), so a ring that once hung or crashed a device
//! stays fixed in an ordinary `cargo test`.

#[path = "../../tests/support/fuzz_inputs.rs"]
mod fuzz_inputs;
#[path = "../fuzz/harness/mod.rs"]
mod harness;

use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;

fn fuzz_dir() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/fuzz"))
}

/// Run every input of `target` through `run`, each on a thread of its own
/// so that a hang fails the test (naming the input) instead of stalling it.
fn replay(target: &str, run: fn(&[u8])) {
    for (path, data) in fuzz_inputs::inputs(fuzz_dir(), target) {
        let (done, finished) = mpsc::channel();
        std::thread::spawn(move || {
            run(&data);
            let _ = done.send(());
        });
        match finished.recv_timeout(Duration::from_secs(30)) {
            Ok(()) => {}
            Err(mpsc::RecvTimeoutError::Timeout) => panic!("{}: hangs", path.display()),
            Err(mpsc::RecvTimeoutError::Disconnected) => panic!("{}: panicked", path.display()),
        }
    }
}

#[test]
fn virtio_blk_inputs() {
    replay("virtio_blk", harness::blk::run);
}

#[test]
fn virtio_net_inputs() {
    replay("virtio_net", harness::net::run);
}

#[test]
fn virtio_rng_inputs() {
    replay("virtio_rng", harness::rng::run);
}
