//! virtio-rng: the request queue drained twice (two kicks).

use super::{guest, queue};
use devices::virtio::rng::RngHandler;
use devices::virtio::worker::QueueHandler;

pub fn run(data: &[u8]) {
    let Some((h, mem)) = guest(data) else { return };
    let Some(mut aq) = queue(&h, 0, &mem) else {
        return;
    };
    for _ in 0..2 {
        let _ = RngHandler.process(0, &mut aq, &mem);
    }
}
