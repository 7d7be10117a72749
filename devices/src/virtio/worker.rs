//! The I/O thread of an activated device: an event-manager loop over the
//! queue eventfds plus a kill eventfd for reset.

use super::{ActiveQueue, Memory};
use event_manager::{EventManager, EventOps, Events, MutEventSubscriber, SubscriberOps};
use std::io;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use virtio_queue::{DescriptorChain, QueueT};
use vmm_sys_util::epoll::EventSet;
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

/// The per-device part: process one queue after a notification.
pub trait QueueHandler: Send {
    /// Handle everything available on queue `index`. Errors in guest
    /// requests are answered in the used ring; an `Err` here means the
    /// queue itself is broken and is logged.
    fn process(&mut self, index: usize, queue: &mut ActiveQueue, mem: &Memory) -> io::Result<()>;
}

/// Answer every available chain of `aq` with `handle` (which returns the
/// used length), the way Linux's drivers expect:
/// - the guest's kicks are off while the ring is drained and re-armed
///   after; a chain added in between is taken at once (each kick is a VM
///   exit, expensive when the guest is itself nested);
/// - with VIRTIO_RING_F_EVENT_IDX the guest is interrupted as soon as a
///   completion it waits for is in the used ring (used_event), and not for
///   the ones it will find while it is still handling the first;
///   without it, once per drain, as before.
pub fn drain_queue(
    aq: &mut ActiveQueue,
    mem: &Memory,
    mut handle: impl FnMut(DescriptorChain<&Memory>) -> u32,
) -> io::Result<()> {
    let ring = |e: virtio_queue::Error| io::Error::other(format!("virtio ring: {e}"));
    // A driver may kick a queue it did not enable (SeaBIOS sets up only the
    // queues it uses): nothing to do there.
    if !aq.queue.ready() {
        return Ok(());
    }
    let event_idx = aq.queue.event_idx_enabled();
    let mut unsignalled = false;
    let mut first = true;
    loop {
        aq.queue.disable_notification(mem).map_err(ring)?;
        let mut popped = false;
        while let Some(chain) = aq.queue.pop_descriptor_chain(mem) {
            popped = true;
            let head = chain.head_index();
            let len = handle(chain);
            aq.queue.add_used(mem, head, len).map_err(ring)?;
            unsignalled = true;
            if event_idx && aq.queue.needs_notification(mem).map_err(ring)? {
                aq.interrupt.signal()?;
                unsignalled = false;
            }
        }
        if !first && !popped {
            // The last round saw chains waiting but none can be taken.
            return Err(stuck_ring(&aq.queue, mem));
        }
        first = false;
        if !aq.queue.enable_notification(mem).map_err(ring)? {
            break;
        }
    }
    if unsignalled && (!event_idx || aq.queue.needs_notification(mem).map_err(ring)?) {
        aq.interrupt.signal()?;
    }
    Ok(())
}

/// The error for a ring whose available index says chains are waiting
/// while none can be taken: the index is more than the queue size ahead of
/// the device, or the ring sits at guest address 0, which virtio-queue
/// treats as "not set up". Without this check the drain loop would spin
/// forever on such a ring (`devices/fuzz/regressions/virtio_blk`). The
/// queue stays unserved until the driver resets the device.
pub fn stuck_ring(queue: &virtio_queue::Queue, mem: &Memory) -> io::Error {
    let idx = queue
        .avail_idx(mem, std::sync::atomic::Ordering::Acquire)
        .map(|i| i.0.to_string())
        .unwrap_or_else(|_| "unreadable".into());
    io::Error::other(format!(
        "virtio ring broken by the driver: available index {idx}, next chain {}, \
         queue size {}, available ring at {:#x}; no chain can be taken, the queue \
         is not served until the device is reset",
        queue.next_avail(),
        queue.size(),
        queue.avail_ring()
    ))
}

const KILL_TOKEN: u32 = u32::MAX;

struct Loop<H: QueueHandler> {
    handler: H,
    queues: Vec<ActiveQueue>,
    mem: Memory,
    kill: EventFd,
    done: bool,
}

impl<H: QueueHandler> MutEventSubscriber for Loop<H> {
    fn process(&mut self, events: Events, _ops: &mut EventOps) {
        let idx = events.data();
        if idx == KILL_TOKEN {
            let _ = self.kill.read();
            self.done = true;
            return;
        }
        let Some(q) = self.queues.get_mut(idx as usize) else {
            return;
        };
        let _ = q.notify.read();
        if let Err(e) = self.handler.process(idx as usize, q, &self.mem) {
            tracing::warn!("virtio queue {idx}: {e}");
        }
    }

    fn init(&mut self, ops: &mut EventOps) {
        for (i, q) in self.queues.iter().enumerate() {
            if let Err(e) = ops.add(Events::with_data(&q.notify, i as u32, EventSet::IN)) {
                tracing::error!("cannot watch virtio queue {i}: {e:?}");
            }
        }
        if let Err(e) = ops.add(Events::with_data(&self.kill, KILL_TOKEN, EventSet::IN)) {
            tracing::error!("cannot watch the device kill event: {e:?}");
        }
    }
}

/// What a stopped worker hands back: its handler, queues and memory.
pub type Parts<H> = (H, Vec<ActiveQueue>, Memory);

/// A running device thread; dropping it stops the thread, and
/// [`Worker::stop`] stops it and hands back the handler and the queues
/// (their positions included), to save them or to start the thread again.
pub struct Worker<H: QueueHandler + 'static> {
    kill: EventFd,
    thread: Option<JoinHandle<Option<Parts<H>>>>,
}

impl<H: QueueHandler + 'static> Worker<H> {
    /// Start serving `queues`. Chains the driver added before (also while a
    /// previous worker was stopped) are served at once, without a kick.
    pub fn spawn(
        name: &str,
        handler: H,
        queues: Vec<ActiveQueue>,
        mem: Memory,
    ) -> io::Result<Self> {
        let kill = EventFd::new(EFD_NONBLOCK)?;
        let lp = Loop {
            handler,
            queues,
            mem,
            kill: kill.try_clone()?,
            done: false,
        };
        let thread = std::thread::Builder::new()
            .name(name.to_string())
            .spawn(move || {
                thread_filter::install_or_log(thread_filter::Kind::Worker);
                run_loop(lp)
            })?;
        Ok(Worker {
            kill,
            thread: Some(thread),
        })
    }

    /// Stop the thread after the request it is serving (every request is
    /// answered within one event, so none is left half done) and take the
    /// handler, queues and memory back; None when the thread had failed.
    pub fn stop(mut self) -> Option<Parts<H>> {
        let _ = self.kill.write(1);
        self.thread.take().and_then(|t| t.join().ok().flatten())
    }
}

/// The thread's body: serve until killed, then give the parts back.
fn run_loop<H: QueueHandler + 'static>(lp: Loop<H>) -> Option<Parts<H>> {
    let mut em = match EventManager::<Arc<Mutex<Loop<H>>>>::new() {
        Ok(em) => em,
        Err(e) => {
            tracing::error!("device event loop: {e:?}");
            return Some((lp.handler, lp.queues, lp.mem));
        }
    };
    let lp = Arc::new(Mutex::new(lp));
    em.add_subscriber(lp.clone());
    // Drain notifications that came before the loop started.
    {
        let mut l = lp.lock().unwrap_or_else(|e| e.into_inner());
        let l = &mut *l;
        for (i, q) in l.queues.iter_mut().enumerate() {
            let _ = l.handler.process(i, q, &l.mem);
        }
    }
    loop {
        if let Err(e) = em.run() {
            tracing::error!("device event loop: {e:?}");
            break;
        }
        if lp.lock().unwrap_or_else(|e| e.into_inner()).done {
            break;
        }
    }
    drop(em);
    let l = Arc::try_unwrap(lp)
        .ok()?
        .into_inner()
        .unwrap_or_else(|e| e.into_inner());
    Some((l.handler, l.queues, l.mem))
}

impl<H: QueueHandler + 'static> Drop for Worker<H> {
    fn drop(&mut self) {
        let _ = self.kill.write(1);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::virtio::Signal;
    use virtio_bindings::bindings::virtio_ring::VRING_DESC_F_WRITE;
    use virtio_queue::desc::{split::Descriptor as SplitDescriptor, RawDescriptor};
    use virtio_queue::mock::MockSplitQueue;
    use vm_memory::{Bytes, GuestAddress};

    fn run(event_idx: bool) -> (u64, u16, u16) {
        let mem = Memory::from_ranges(&[(GuestAddress(0), 0x40_0000)]).unwrap();
        let vq = MockSplitQueue::new(&mem, 16);
        let descs: Vec<RawDescriptor> = (0..3)
            .map(|i| {
                RawDescriptor::from(SplitDescriptor::new(
                    0x10_0000 + i * 0x1000,
                    64,
                    VRING_DESC_F_WRITE as u16,
                    0,
                ))
            })
            .collect();
        vq.add_desc_chains(&descs, 0).unwrap();
        let irq = EventFd::new(EFD_NONBLOCK).unwrap();
        let mut q: virtio_queue::Queue = vq.create_queue().unwrap();
        q.set_event_idx(event_idx);
        let mut aq = ActiveQueue {
            queue: q,
            notify: EventFd::new(EFD_NONBLOCK).unwrap(),
            interrupt: Arc::new(irq.try_clone().unwrap()) as Arc<dyn Signal>,
        };
        drain_queue(&mut aq, &mem, |_| 64).unwrap();
        let avail_event: u16 = mem
            .read_obj(GuestAddress(vq.used_addr().0 + 4 + 8 * 16))
            .unwrap();
        let used_flags: u16 = mem.read_obj(vq.used_addr()).unwrap();
        (irq.read().unwrap_or(0), avail_event, used_flags)
    }

    #[test]
    fn drain_with_event_idx_interrupts_once_and_rearms_kicks() {
        // used_event is 0: the driver waits for the first completion only.
        let (irqs, avail_event, _) = run(true);
        assert_eq!(irqs, 1);
        assert_eq!(avail_event, 3, "kick wanted at the next chain");
    }

    #[test]
    fn a_ring_whose_index_runs_past_the_queue_is_an_error_not_a_spin() {
        let mem = Memory::from_ranges(&[(GuestAddress(0), 0x40_0000)]).unwrap();
        let vq = MockSplitQueue::new(&mem, 16);
        let desc = SplitDescriptor::new(0x10_0000, 64, VRING_DESC_F_WRITE as u16, 0);
        vq.add_desc_chains(&[RawDescriptor::from(desc)], 0).unwrap();
        // The driver claims 1000 chains in a 16-entry ring.
        vq.avail().idx().store(1000);
        let mut aq = ActiveQueue {
            queue: vq.create_queue().unwrap(),
            notify: EventFd::new(EFD_NONBLOCK).unwrap(),
            interrupt: Arc::new(EventFd::new(EFD_NONBLOCK).unwrap()) as Arc<dyn Signal>,
        };
        let e = drain_queue(&mut aq, &mem, |_| 64).unwrap_err();
        assert!(e.to_string().contains("available index 1000"), "{e}");
    }

    #[test]
    fn a_stopped_worker_hands_back_its_queues_and_a_new_one_serves_what_came_meanwhile() {
        use crate::virtio::rng::RngHandler;
        let mem = Memory::from_ranges(&[(GuestAddress(0), 0x40_0000)]).unwrap();
        let vq = MockSplitQueue::new(&mem, 16);
        let desc = |i: u64| {
            RawDescriptor::from(SplitDescriptor::new(
                0x10_0000 + i * 0x1000,
                64,
                VRING_DESC_F_WRITE as u16,
                0,
            ))
        };
        vq.add_desc_chains(&[desc(0), desc(1)], 0).unwrap();
        let queue = ActiveQueue {
            queue: vq.create_queue().unwrap(),
            notify: EventFd::new(EFD_NONBLOCK).unwrap(),
            interrupt: Arc::new(EventFd::new(EFD_NONBLOCK).unwrap()) as Arc<dyn Signal>,
        };
        let used = || vq.used().idx().load();
        let w = Worker::spawn("test", RngHandler, vec![queue], mem.clone()).unwrap();
        let t0 = std::time::Instant::now();
        while used() < 2 {
            assert!(t0.elapsed().as_secs() < 10, "not served");
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        let (handler, queues, _) = w.stop().expect("the parts come back");
        assert_eq!(queues[0].queue.next_used(), 2);
        assert_eq!(queues[0].queue.next_avail(), 2);
        // Added while no worker runs, and never kicked.
        vq.add_desc_chains(&[desc(2)], 2).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        assert_eq!(used(), 2, "nobody serves a stopped queue");
        let w = Worker::spawn("test", handler, queues, mem.clone()).unwrap();
        let t0 = std::time::Instant::now();
        while used() < 3 {
            assert!(
                t0.elapsed().as_secs() < 10,
                "the restarted worker did not serve"
            );
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        drop(w);
    }

    #[test]
    fn drain_without_event_idx_interrupts_once_and_leaves_kicks_on() {
        let (irqs, _, used_flags) = run(false);
        assert_eq!(irqs, 1);
        assert_eq!(
            used_flags, 0,
            "VRING_USED_F_NO_NOTIFY cleared after the drain"
        );
    }
}
