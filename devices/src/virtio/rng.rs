//! virtio-rng: fills the guest's buffers from the host's getrandom(2).

use super::worker::{drain_queue, QueueHandler, Worker};
use super::{ActiveQueue, Memory, VirtioDevice, VIRTIO_ID_RNG, VIRTIO_RING_F_EVENT_IDX};
use std::io::{self, Write};
use virtio_queue::DescriptorChain;

/// At most this many bytes per request, so a guest cannot make us
/// allocate or block on an absurd buffer.
const MAX_PER_REQUEST: usize = 64 * 1024;
const QUEUE_SIZE: u16 = 256;

pub struct RngHandler;

fn getrandom(buf: &mut [u8]) -> io::Result<()> {
    let mut done = 0;
    while done < buf.len() {
        // SAFETY: writes at most `buf.len() - done` bytes into `buf[done..]`.
        let n = unsafe { libc::getrandom(buf[done..].as_mut_ptr().cast(), buf.len() - done, 0) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        done += n as usize;
    }
    Ok(())
}

impl RngHandler {
    /// Fill one chain; returns the bytes written.
    pub fn handle(&self, chain: DescriptorChain<&Memory>, mem: &Memory) -> u32 {
        let Ok(mut writer) = chain.writer(mem) else {
            return 0;
        };
        let n = writer.available_bytes().min(MAX_PER_REQUEST);
        let mut buf = vec![0u8; n];
        if getrandom(&mut buf).is_err() || writer.write_all(&buf).is_err() {
            return 0;
        }
        n as u32
    }
}

impl QueueHandler for RngHandler {
    fn process(&mut self, _index: usize, aq: &mut ActiveQueue, mem: &Memory) -> io::Result<()> {
        drain_queue(aq, mem, |chain| self.handle(chain, mem))
    }
}

#[derive(Default)]
pub struct VirtioRng {
    worker: Option<Worker<RngHandler>>,
}

impl VirtioRng {
    pub fn new() -> Self {
        Self::default()
    }
}

impl VirtioDevice for VirtioRng {
    fn device_type(&self) -> u32 {
        VIRTIO_ID_RNG
    }
    fn queue_max_sizes(&self) -> &[u16] {
        &[QUEUE_SIZE]
    }
    fn features(&self) -> u64 {
        VIRTIO_RING_F_EVENT_IDX
    }
    fn read_config(&self, _offset: u64, data: &mut [u8]) {
        data.fill(0);
    }
    fn activate(
        &mut self,
        mem: Memory,
        _features: u64,
        queues: Vec<ActiveQueue>,
    ) -> io::Result<()> {
        self.worker = Some(Worker::spawn("virtio-rng", RngHandler, queues, mem)?);
        Ok(())
    }
    fn reset(&mut self) {
        self.worker = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use virtio_bindings::bindings::virtio_ring::VRING_DESC_F_WRITE;
    use virtio_queue::desc::{split::Descriptor as SplitDescriptor, RawDescriptor};
    use virtio_queue::mock::MockSplitQueue;
    use virtio_queue::Queue;
    use virtio_queue::QueueT;
    use vm_memory::{Bytes, GuestAddress};

    #[test]
    fn fills_writable_buffers_and_ignores_readable_ones() {
        let mem = Memory::from_ranges(&[(GuestAddress(0), 0x10_0000)]).unwrap();
        let vq = MockSplitQueue::new(&mem, 16);
        let descs = [
            RawDescriptor::from(SplitDescriptor::new(
                0x8000,
                64,
                VRING_DESC_F_WRITE as u16,
                0,
            )),
            RawDescriptor::from(SplitDescriptor::new(0x9000, 64, 0, 0)),
        ];
        vq.add_desc_chains(&descs, 0).unwrap();
        let mut q: Queue = vq.create_queue().unwrap();
        let c1 = q.pop_descriptor_chain(&mem).unwrap();
        assert_eq!(RngHandler.handle(c1, &mem), 64);
        let got: [u8; 64] = {
            let mut b = [0u8; 64];
            mem.read_slice(&mut b, GuestAddress(0x8000)).unwrap();
            b
        };
        assert_ne!(got, [0u8; 64]);
        let c2 = q.pop_descriptor_chain(&mem).unwrap();
        assert_eq!(
            RngHandler.handle(c2, &mem),
            0,
            "a read-only buffer gets nothing"
        );
    }
}
