//! virtio-rng: fills the guest's buffers from the host's getrandom(2).

use super::runner::Runner;
use super::worker::{drain_queue, QueueHandler};
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
    runner: Runner<RngHandler>,
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
        self.runner.start("virtio-rng", RngHandler, queues, mem)?;
        Ok(())
    }
    fn reset(&mut self) {
        self.runner.reset();
    }
    fn pause(&mut self) -> io::Result<Vec<super::SavedQueue>> {
        self.runner.pause()
    }
    fn resume(&mut self) -> io::Result<()> {
        self.runner.resume("virtio-rng")
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
    fn a_paused_device_leaves_its_queue_alone_until_resumed() {
        use crate::virtio::{ActiveQueue, Signal, VirtioDevice};
        use std::sync::Arc;
        use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};
        let mem = Memory::from_ranges(&[(GuestAddress(0), 0x10_0000)]).unwrap();
        let vq = MockSplitQueue::new(&mem, 16);
        let desc = |i: u64| {
            RawDescriptor::from(SplitDescriptor::new(
                0x8000 + i * 0x100,
                64,
                VRING_DESC_F_WRITE as u16,
                0,
            ))
        };
        let mut dev = VirtioRng::default();
        assert!(dev.pause().unwrap().is_empty(), "not started: no queues");
        vq.add_desc_chains(&[desc(0)], 0).unwrap();
        let notify = EventFd::new(EFD_NONBLOCK).unwrap();
        let queue = ActiveQueue {
            queue: vq.create_queue().unwrap(),
            notify: notify.try_clone().unwrap(),
            interrupt: Arc::new(EventFd::new(EFD_NONBLOCK).unwrap()) as Arc<dyn Signal>,
        };
        dev.activate(mem.clone(), 0, vec![queue]).unwrap();
        let used = || vq.used().idx().load();
        let wait_for = |n: u16| {
            let t0 = std::time::Instant::now();
            while used() < n {
                assert!(
                    t0.elapsed().as_secs() < 10,
                    "used index stuck at {}",
                    used()
                );
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
        };
        wait_for(1);
        let saved = dev.pause().unwrap();
        assert_eq!((saved[0].next_avail, saved[0].next_used), (1, 1));
        vq.add_desc_chains(&[desc(1)], 1).unwrap();
        notify.write(1).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        assert_eq!(used(), 1, "a paused device serves nothing");
        assert_eq!(dev.pause().unwrap(), saved, "pausing again changes nothing");
        dev.resume().unwrap();
        wait_for(2);
        dev.reset();
    }

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
