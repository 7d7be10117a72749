//! virtio-blk: the request queue drained twice (two kicks) over a 64 KiB
//! in-memory disk, read-write unless the input says read-only.

use super::{guest, queue, F_READ_ONLY};
use block_source::MemorySource;
use devices::virtio::block::BlockHandler;
use devices::virtio::worker::QueueHandler;
use std::sync::Arc;

pub fn run(data: &[u8]) {
    let Some((h, mem)) = guest(data) else { return };
    let Some(mut aq) = queue(&h, 0, &mem) else {
        return;
    };
    let disk: Vec<u8> = (0..64 << 10).map(|i: u32| (i / 512) as u8).collect();
    let source = Arc::new(MemorySource::new(disk, false));
    let mut handler = BlockHandler::new(source, h.flag(F_READ_ONLY), "fuzz-disk");
    for _ in 0..2 {
        // An Err is a ring the driver broke; it is logged, not fatal.
        let _ = handler.process(0, &mut aq, &mem);
    }
}
