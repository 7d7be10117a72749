//! The I/O thread of an activated device: an event-manager loop over the
//! queue eventfds plus a kill eventfd for reset.

use super::{ActiveQueue, Memory};
use event_manager::{EventManager, EventOps, Events, MutEventSubscriber, SubscriberOps};
use std::io;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use vmm_sys_util::epoll::EventSet;
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

/// The per-device part: process one queue after a notification.
pub trait QueueHandler: Send {
    /// Handle everything available on queue `index`. Errors in guest
    /// requests are answered in the used ring; an `Err` here means the
    /// queue itself is broken and is logged.
    fn process(&mut self, index: usize, queue: &mut ActiveQueue, mem: &Memory) -> io::Result<()>;
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

/// A running device thread; dropping it stops the thread.
pub struct Worker {
    kill: EventFd,
    thread: Option<JoinHandle<()>>,
}

impl Worker {
    pub fn spawn<H: QueueHandler + 'static>(
        name: &str,
        handler: H,
        queues: Vec<ActiveQueue>,
        mem: Memory,
    ) -> io::Result<Worker> {
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
                let mut em = match EventManager::<Arc<Mutex<Loop<H>>>>::new() {
                    Ok(em) => em,
                    Err(e) => {
                        tracing::error!("device event loop: {e:?}");
                        return;
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
                        return;
                    }
                    if lp.lock().unwrap_or_else(|e| e.into_inner()).done {
                        return;
                    }
                }
            })?;
        Ok(Worker {
            kill,
            thread: Some(thread),
        })
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.kill.write(1);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
