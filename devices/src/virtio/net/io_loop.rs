//! The I/O thread of an activated virtio-net device.
//!
//! Unlike the generic [`crate::virtio::worker`], it also polls the
//! backend, and it stops polling it while the guest has no receive buffers
//! so frames wait in the backend (whose own buffers push back on passt or
//! the TAP queue) rather than being read and dropped.
//!
//! Sending never blocks the thread: a full backend keeps the frame here
//! and the thread watches the backend for room while it goes on receiving
//! (a thread stuck in a send would stop reading, and a peer waiting for
//! us to read would never make room: a deadlock).

use super::rx::{arm_kick_for_more_buffers, deliver, RxOutcome};
use super::tx::read_frame;
use crate::net_backend::{NetBackend, MAX_FRAME};
use crate::virtio::worker::stuck_ring;
use crate::virtio::{ActiveQueue, Memory};
use std::io;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use virtio_queue::QueueT;
use vmm_sys_util::epoll::{ControlOperation, Epoll, EpollEvent, EventSet};
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

const RX_QUEUE: u64 = 0;
const TX_QUEUE: u64 = 1;
const BACKEND: u64 = 2;
const KILL: u64 = 3;
/// Malformed packets reported at warn level before going quiet.
const LOUD_ERRORS: u32 = 10;
/// Frames moved per wake-up per direction before the other direction and
/// the kill event get a turn.
const BATCH: usize = 256;

pub const VIRTIO_NET_S_LINK_UP: u16 = 1;

pub(super) struct NetIo {
    pub rx: ActiveQueue,
    pub tx: ActiveQueue,
    pub mem: Memory,
    pub backend: Option<Box<dyn NetBackend>>,
    pub mergeable: bool,
    /// The config space's status field, cleared when the backend dies.
    pub status: Arc<AtomicU16>,
    pub name: String,
    rx_buf: Vec<u8>,
    tx_buf: Vec<u8>,
    /// Length of a frame in `rx_buf` still waiting for guest buffers.
    pending: Option<usize>,
    /// Length of a frame in `tx_buf` the backend had no room for.
    tx_pending: Option<usize>,
    /// The backend holds part of a frame it could not write yet.
    unflushed: bool,
    /// Whether the guest can take frames now (watch the backend for input).
    rx_wanted: bool,
    /// What the backend's fd is registered for in the epoll set.
    watching: EventSet,
    errors: u32,
}

impl NetIo {
    pub fn new(
        rx: ActiveQueue,
        tx: ActiveQueue,
        mem: Memory,
        backend: Option<Box<dyn NetBackend>>,
        mergeable: bool,
        status: Arc<AtomicU16>,
        name: String,
    ) -> Self {
        NetIo {
            rx,
            tx,
            mem,
            backend,
            mergeable,
            status,
            name,
            rx_buf: vec![0u8; MAX_FRAME],
            tx_buf: vec![0u8; MAX_FRAME],
            pending: None,
            tx_pending: None,
            unflushed: false,
            rx_wanted: false,
            watching: EventSet::empty(),
            errors: 0,
        }
    }

    fn malformed(&mut self, what: &str) {
        self.errors = self.errors.saturating_add(1);
        if self.errors <= LOUD_ERRORS {
            tracing::warn!("{}: dropped a packet: {what}", self.name);
            if self.errors == LOUD_ERRORS {
                tracing::warn!(
                    "{}: further dropped packets are logged at debug level",
                    self.name
                );
            }
        } else {
            tracing::debug!("{}: dropped a packet: {what}", self.name);
        }
    }

    fn backend_gone(&mut self, epoll: &Epoll, e: &dyn std::fmt::Display) {
        // Reported once: the backend is dropped, so it cannot fail again.
        tracing::error!("{}: {e}", self.name);
        self.rx_wanted = false;
        self.tx_pending = None;
        self.unflushed = false;
        self.update_watch(epoll);
        self.backend = None;
        self.pending = None;
        self.status
            .fetch_and(!VIRTIO_NET_S_LINK_UP, Ordering::Relaxed);
    }

    /// Register the backend's fd for input while the guest can take
    /// frames, and for output while a frame waits for room.
    fn update_watch(&mut self, epoll: &Epoll) {
        let Some(fd) = self.backend.as_ref().and_then(|b| b.poll_fd()) else {
            return;
        };
        let mut want = EventSet::empty();
        if self.rx_wanted {
            want |= EventSet::IN;
        }
        if self.tx_pending.is_some() || self.unflushed {
            want |= EventSet::OUT;
        }
        if want == self.watching {
            return;
        }
        let r = if self.watching.is_empty() {
            epoll.ctl(ControlOperation::Add, fd, EpollEvent::new(want, BACKEND))
        } else if want.is_empty() {
            epoll.ctl(ControlOperation::Delete, fd, EpollEvent::default())
        } else {
            epoll.ctl(ControlOperation::Modify, fd, EpollEvent::new(want, BACKEND))
        };
        match r {
            Ok(()) => self.watching = want,
            Err(e) => tracing::error!("{}: cannot (un)watch the backend: {e}", self.name),
        }
    }

    fn set_watch(&mut self, epoll: &Epoll, rx: bool) {
        self.rx_wanted = rx;
        self.update_watch(epoll);
    }

    /// Hand one frame of `tx_buf` to the backend. Returns false when the
    /// backend is full (the frame stays in `tx_pending`).
    fn send_tx(&mut self, epoll: &Epoll, len: usize) -> bool {
        let Some(b) = self.backend.as_mut() else {
            return true;
        };
        match b.send(&self.tx_buf[..len]) {
            Ok(()) => true,
            Err(e) if e.is_full() => {
                self.tx_pending = Some(len);
                self.update_watch(epoll);
                false
            }
            Err(e) if e.is_gone() => {
                self.backend_gone(epoll, &e);
                true
            }
            Err(e) => {
                tracing::debug!("{}: {e}", self.name);
                true
            }
        }
    }

    /// Push out what the backend holds of a partly written frame.
    fn flush_backend(&mut self, epoll: &Epoll) {
        let Some(b) = self.backend.as_mut() else {
            return;
        };
        match b.flush() {
            Ok(done) => self.unflushed = !done,
            Err(e) if e.is_gone() => return self.backend_gone(epoll, &e),
            Err(e) => tracing::debug!("{}: {e}", self.name),
        }
        self.update_watch(epoll);
    }

    /// Move frames from the backend to the guest until either runs dry or
    /// a batch is done. Returns (interrupt the guest, more may be waiting).
    pub fn process_rx(&mut self, epoll: &Epoll) -> io::Result<(bool, bool)> {
        let mut used = false;
        // Refills need no kick while we have buffers; re-armed when we run
        // out (with EVENT_IDX this is a no-op: kicks stop by themselves).
        self.rx
            .queue
            .disable_notification(&self.mem)
            .map_err(|e| io::Error::other(format!("receive queue: {e}")))?;
        let mut armed = false;
        for _ in 0..BATCH {
            let len = match self.pending.take() {
                Some(len) => len,
                None => {
                    let Some(backend) = self.backend.as_mut() else {
                        return Ok((used, false));
                    };
                    match backend.recv(&mut self.rx_buf) {
                        Ok(Some(n)) => n,
                        Ok(None) => {
                            self.set_watch(epoll, true);
                            return Ok((used, false));
                        }
                        Err(e) if e.is_gone() => {
                            self.backend_gone(epoll, &e);
                            return Ok((used, false));
                        }
                        Err(e) => {
                            tracing::debug!("{}: {e}", self.name);
                            continue;
                        }
                    }
                }
            };
            match deliver(
                &mut self.rx.queue,
                &self.mem,
                &self.rx_buf[..len],
                self.mergeable,
            )
            .map_err(|e| io::Error::other(format!("receive queue: {e}")))?
            {
                RxOutcome::Delivered { .. } => {
                    used = true;
                    armed = false;
                }
                RxOutcome::NoBuffers => {
                    self.pending = Some(len);
                    if !armed {
                        // Ask for a kick at the next buffer, then look
                        // again: buffers added before the request took
                        // effect would bring no kick.
                        arm_kick_for_more_buffers(&mut self.rx.queue, &self.mem)
                            .map_err(|e| io::Error::other(format!("receive queue: {e}")))?;
                        armed = true;
                        continue;
                    }
                    // Resumed by the guest's next receive-queue notification.
                    self.set_watch(epoll, false);
                    return Ok((used, false));
                }
                RxOutcome::Dropped(why) => {
                    used = true;
                    self.malformed(why);
                }
            }
        }
        Ok((used, true))
    }

    /// Send the frames the guest queued, up to a batch. Returns (interrupt
    /// the guest, more may be waiting).
    pub fn process_tx(&mut self, epoll: &Epoll) -> io::Result<(bool, bool)> {
        if let Some(len) = self.tx_pending.take() {
            if !self.send_tx(epoll, len) {
                return Ok((false, false));
            }
            self.update_watch(epoll);
        }
        let mut used = false;
        let mem = self.mem.clone();
        let ring_err = |e: virtio_queue::Error| io::Error::other(format!("transmit queue: {e}"));
        // No kicks while we drain the ring (a no-op with EVENT_IDX).
        self.tx.queue.disable_notification(&mem).map_err(ring_err)?;
        let mut rearmed = false;
        for _ in 0..BATCH {
            let Some(chain) = self.tx.queue.pop_descriptor_chain(&mem) else {
                // Re-arm the guest's kick; frames queued before it took
                // effect are picked up now rather than never.
                if self.tx.queue.enable_notification(&mem).map_err(ring_err)? {
                    if rearmed {
                        // Chains said to wait, none to take: a broken ring,
                        // which would keep this thread spinning.
                        return Err(stuck_ring(&self.tx.queue, &mem));
                    }
                    rearmed = true;
                    continue;
                }
                self.flush_backend(epoll);
                return Ok((used, false));
            };
            rearmed = false;
            let head = chain.head_index();
            let sent = match read_frame(chain, &mem, &mut self.tx_buf) {
                Ok(len) => self.send_tx(epoll, len),
                Err(e) => {
                    self.malformed(&e.to_string());
                    true
                }
            };
            // The frame is ours (copied out) even when the backend is full:
            // the descriptor goes back now; the guest's ring pushes back.
            self.tx
                .queue
                .add_used(&mem, head, 0)
                .map_err(|e| io::Error::other(format!("transmit queue: {e}")))?;
            used = true;
            if !sent {
                return Ok((used, false));
            }
        }
        self.flush_backend(epoll);
        Ok((used, true))
    }

    /// Serve until `kill`; hands itself back (queues with their positions,
    /// the backend, a frame still waiting in either direction), so a paused
    /// device can run again or a reset one give its backend back.
    fn run(mut self, kill: EventFd) -> NetIo {
        // A fresh epoll set: the backend's fd is in none yet.
        self.watching = EventSet::empty();
        let epoll = match Epoll::new() {
            Ok(e) => e,
            Err(e) => {
                tracing::error!("{}: epoll: {e}", self.name);
                return self;
            }
        };
        for (fd, token) in [
            (self.rx.notify.as_raw_fd(), RX_QUEUE),
            (self.tx.notify.as_raw_fd(), TX_QUEUE),
            (kill.as_raw_fd(), KILL),
        ] {
            if let Err(e) = epoll.ctl(
                ControlOperation::Add,
                fd,
                EpollEvent::new(EventSet::IN, token),
            ) {
                tracing::error!("{}: cannot watch an event: {e}", self.name);
                return self;
            }
        }
        let mut events = vec![EpollEvent::default(); 8];
        let mut rx_more = true;
        let mut tx_more = true;
        loop {
            if tx_more {
                tx_more = self.step(&epoll, TX_QUEUE);
            }
            if rx_more {
                rx_more = self.step(&epoll, RX_QUEUE);
            }
            // With work left over, only peek at new events.
            let timeout = if rx_more || tx_more { 0 } else { -1 };
            let n = match epoll.wait(timeout, &mut events) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    tracing::error!("{}: epoll wait: {e}", self.name);
                    return self;
                }
            };
            for ev in &events[..n] {
                match ev.data() {
                    KILL => return self,
                    RX_QUEUE => {
                        let _ = self.rx.notify.read();
                        rx_more = true;
                    }
                    TX_QUEUE => {
                        let _ = self.tx.notify.read();
                        tx_more = true;
                    }
                    BACKEND => {
                        rx_more = true;
                        tx_more = true;
                    }
                    _ => {}
                }
            }
        }
    }

    /// What the thread does after kicks on both queues, without the
    /// thread or any waiting: up to `rounds` rounds of one transmit batch
    /// and one receive batch. Returns whether work was left after them.
    pub fn run_rounds(&mut self, rounds: usize) -> io::Result<bool> {
        let epoll = Epoll::new()?;
        for _ in 0..rounds {
            let tx_more = self.step(&epoll, TX_QUEUE);
            let rx_more = self.step(&epoll, RX_QUEUE);
            if !tx_more && !rx_more {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// One batch in one direction; returns whether more may be waiting.
    fn step(&mut self, epoll: &Epoll, which: u64) -> bool {
        let r = if which == TX_QUEUE {
            self.process_tx(epoll)
        } else {
            self.process_rx(epoll)
        };
        let mem = self.mem.clone();
        let q = if which == TX_QUEUE {
            &mut self.tx
        } else {
            &mut self.rx
        };
        match r {
            Ok((used, more)) => {
                // With EVENT_IDX, only when the driver asked (used_event):
                // while its NAPI polls, an interrupt is a guest exit for
                // nothing. (Without it virtio-queue always says yes.)
                if used && q.queue.needs_notification(&mem).unwrap_or(true) {
                    if let Err(e) = q.interrupt.signal() {
                        tracing::warn!("{}: interrupt: {e}", self.name);
                    }
                }
                more
            }
            Err(e) => {
                tracing::warn!("{}: {e}", self.name);
                false
            }
        }
    }
}

use std::os::unix::io::AsRawFd;

/// A running network I/O thread; [`NetWorker::stop`] hands the [`NetIo`]
/// back (a reset device takes its backend out of it, a paused one keeps it
/// whole).
pub(super) struct NetWorker {
    kill: EventFd,
    thread: Option<JoinHandle<NetIo>>,
}

impl NetWorker {
    pub fn spawn(io: NetIo) -> io::Result<NetWorker> {
        let kill = EventFd::new(EFD_NONBLOCK)?;
        let k = kill.try_clone()?;
        let thread = std::thread::Builder::new()
            .name(io.name.clone())
            .spawn(move || {
                thread_filter::install_or_log(thread_filter::Kind::NetIo);
                io.run(k)
            })?;
        Ok(NetWorker {
            kill,
            thread: Some(thread),
        })
    }

    /// None when the thread had panicked.
    pub fn stop(mut self) -> Option<NetIo> {
        let _ = self.kill.write(1);
        self.thread.take().and_then(|t| t.join().ok())
    }
}

impl Drop for NetWorker {
    fn drop(&mut self) {
        let _ = self.kill.write(1);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
