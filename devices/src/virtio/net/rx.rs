//! The receive path: one frame from the backend into the guest's buffers.
//!
//! With mergeable receive buffers a frame may span several chains; all of
//! them are taken from the available ring before anything is written, so
//! when there is not enough room the ring is rewound and the frame waits
//! (backpressure) instead of being half-delivered or dropped.

use super::header::{rx_header, HDR_LEN};
use crate::virtio::Memory;
use std::io::Write;
use std::sync::atomic::{fence, Ordering};
use virtio_queue::{Queue, QueueT, Writer};
use vm_memory::{Bytes, GuestAddress};

#[derive(Debug, PartialEq, Eq)]
pub enum RxOutcome {
    /// The frame is in the guest's buffers, spanning this many chains.
    Delivered { buffers: u16 },
    /// Not enough buffers now; the ring is untouched. Try again after the
    /// guest's next notification.
    NoBuffers,
    /// The frame was dropped (it can never fit, or the guest offered a
    /// malformed chain, which is returned to it empty).
    Dropped(&'static str),
}

/// Deliver `frame` into `queue`. Used-ring errors (a broken ring) are the
/// only `Err`.
pub fn deliver(
    queue: &mut Queue,
    mem: &Memory,
    frame: &[u8],
    mergeable: bool,
) -> Result<RxOutcome, virtio_queue::Error> {
    let total = HDR_LEN + frame.len();
    let start = queue.next_avail();
    let mut chains: Vec<(u16, Writer<'_>)> = Vec::new();
    let mut room = 0usize;
    while room < total {
        if !mergeable && !chains.is_empty() {
            // One chain only, and it is too small for this frame.
            queue.set_next_avail(start);
            return Ok(RxOutcome::Dropped("frame larger than the receive buffer"));
        }
        let Some(chain) = queue.pop_descriptor_chain(mem) else {
            if chains.len() >= usize::from(queue.size()) {
                queue.set_next_avail(start);
                return Ok(RxOutcome::Dropped(
                    "frame larger than the whole receive ring",
                ));
            }
            queue.set_next_avail(start);
            return Ok(RxOutcome::NoBuffers);
        };
        let head = chain.head_index();
        let readable = chain.clone().any(|d| !d.is_write_only());
        let writer = match (readable, chain.writer(mem)) {
            (false, Ok(w)) if w.available_bytes() > 0 => w,
            _ => {
                // Hand every chain taken for this frame back empty; the
                // guest's driver drops zero-length buffers.
                for (h, _) in &chains {
                    queue.add_used(mem, *h, 0)?;
                }
                queue.add_used(mem, head, 0)?;
                return Ok(RxOutcome::Dropped("malformed receive chain"));
            }
        };
        room = room.saturating_add(writer.available_bytes());
        chains.push((head, writer));
    }
    let n = chains.len() as u16;
    let hdr = rx_header(if mergeable { n } else { 1 });
    let mut src: [&[u8]; 2] = [&hdr, frame];
    let mut used = Vec::with_capacity(chains.len());
    for (head, mut w) in chains {
        let mut written = 0usize;
        for part in src.iter_mut() {
            let k = part.len().min(w.available_bytes());
            if k == 0 {
                continue;
            }
            if w.write_all(&part[..k]).is_err() {
                break;
            }
            *part = &part[k..];
            written += k;
        }
        used.push((head, written as u32));
    }
    for (head, len) in used {
        queue.add_used(mem, head, len)?;
    }
    Ok(RxOutcome::Delivered { buffers: n })
}

/// Ask the driver to notify the device when it adds its next receive
/// buffer, however many are in the ring now.
///
/// With EVENT_IDX this writes the current avail index to avail_event.
/// virtio-queue's `enable_notification` writes `next_avail` instead, which
/// is right for a drained ring but not here: after [`deliver`] rewinds,
/// buffers too few for a large frame lie between `next_avail` and the avail
/// index, the driver's next index would already be past the event, and it
/// would never kick again. The caller must look at the ring once more
/// afterwards (buffers added before this took effect bring no kick).
pub fn arm_kick_for_more_buffers(
    queue: &mut Queue,
    mem: &Memory,
) -> Result<(), virtio_queue::Error> {
    if queue.event_idx_enabled() {
        let idx = queue.avail_idx(mem, Ordering::Acquire)?;
        // avail_event follows the used ring's flags, idx and elements.
        let at = queue
            .used_ring()
            .checked_add(4 + 8 * u64::from(queue.size()))
            .ok_or(virtio_queue::Error::InvalidSize)?;
        mem.write_obj(idx.0.to_le(), GuestAddress(at))
            .map_err(virtio_queue::Error::GuestMemory)?;
    } else {
        queue.enable_notification(mem)?;
    }
    fence(Ordering::SeqCst);
    Ok(())
}
