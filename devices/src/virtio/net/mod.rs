//! virtio-net over a [`NetBackend`].
//!
//! Offers VIRTIO_NET_F_MAC, _MRG_RXBUF, _STATUS and VIRTIO_RING_F_EVENT_IDX
//! (each guest kick and each interrupt is a VM exit; with event indices
//! the guest's NAPI polling and our draining of the rings suppress them,
//! as with QEMU and Firecracker). No checksum or
//! segmentation offloads: the backends move plain Ethernet frames (passt's
//! stream protocol carries no virtio header), so the guest computes its
//! own checksums and segments to the MTU.
//!
//! Two queues (receive, transmit) served by one I/O thread that also
//! polls the backend ([`io_loop`]). When the backend dies the error is
//! logged once, the link status goes down and the guest keeps running.

pub mod header;
mod io_loop;
pub mod rx;
pub mod tx;

use super::{
    read_config_bytes, ActiveQueue, Memory, SavedQueue, VirtioDevice, VIRTIO_ID_NET,
    VIRTIO_RING_F_EVENT_IDX,
};
use crate::net_backend::NetBackend;
use io_loop::{NetIo, NetWorker, VIRTIO_NET_S_LINK_UP};
use std::io;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::Arc;

pub const VIRTIO_NET_F_MAC: u64 = 1 << 5;
pub const VIRTIO_NET_F_MRG_RXBUF: u64 = 1 << 15;
pub const VIRTIO_NET_F_STATUS: u64 = 1 << 16;

const QUEUE_SIZE: u16 = 256;
/// mac[6], status u16, max_virtqueue_pairs u16.
const CONFIG_LEN: usize = 10;

/// A MAC address derived from `seed` (e.g. the appliance and NIC name):
/// the same seed gives the same address on every run, so the guest's DHCP
/// lease and udev's interface naming stay put. Locally administered,
/// unicast.
pub fn stable_mac(seed: &str) -> [u8; 6] {
    // FNV-1a: fixed forever, unlike std's hasher.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in seed.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    let b = h.to_le_bytes();
    let mut mac = [b[0], b[1], b[2], b[3], b[4], b[5]];
    mac[0] = (mac[0] & 0xfc) | 0x02;
    mac
}

/// The device as the transport sees it.
pub struct VirtioNet {
    mac: [u8; 6],
    status: Arc<AtomicU16>,
    /// Here while the device is not running; moved into the I/O thread on
    /// activation and handed back on reset.
    backend: Option<Box<dyn NetBackend>>,
    name: String,
    worker: Option<NetWorker>,
    /// The I/O state of a device paused for a snapshot.
    paused: Option<Box<NetIo>>,
    /// Restored from a snapshot: tell the (new) backend the guest's MAC
    /// when it first runs.
    announce: bool,
}

impl VirtioNet {
    pub fn new(mac: [u8; 6], backend: Box<dyn NetBackend>) -> VirtioNet {
        let name = format!("virtio-net {}", format_mac(&mac));
        VirtioNet {
            mac,
            status: Arc::new(AtomicU16::new(VIRTIO_NET_S_LINK_UP)),
            backend: Some(backend),
            name,
            worker: None,
            paused: None,
            announce: false,
        }
    }

    pub fn mac(&self) -> [u8; 6] {
        self.mac
    }
}

/// The I/O thread's queue work without the thread, for the `virtio_net`
/// fuzz target (`devices/fuzz`, a guest-controlled memory image) and
/// tests: up to `rounds` rounds of one transmit batch then one receive
/// batch over `rx` and `tx` as a driver set them up, with `backend`.
/// Returns whether work was left after the last round: with finitely many
/// frames and chains, any ring, well-formed or not, must settle. The
/// device itself never calls this; it runs the same steps on its thread.
#[doc(hidden)]
pub fn process_queues(
    rx: ActiveQueue,
    tx: ActiveQueue,
    mem: Memory,
    backend: Box<dyn NetBackend>,
    mergeable: bool,
    rounds: usize,
) -> io::Result<bool> {
    let status = Arc::new(AtomicU16::new(VIRTIO_NET_S_LINK_UP));
    let name = "virtio-net (queues only)".to_string();
    NetIo::new(rx, tx, mem, Some(backend), mergeable, status, name).run_rounds(rounds)
}

impl VirtioNet {
    /// Stop the I/O thread (running or paused) and keep its backend here.
    fn take_back_backend(&mut self) {
        let io = match (self.worker.take(), self.paused.take()) {
            (Some(w), _) => w.stop(),
            (None, Some(io)) => Some(*io),
            (None, None) => None,
        };
        if let Some(io) = io {
            self.backend = io.backend.or(self.backend.take());
        }
    }
}

/// The RARP frame a restored guest's NIC sends first (as QEMU announces a
/// migrated guest): a new backend (passt) learns the guest's MAC from it
/// and can deliver incoming frames before the guest sends anything.
pub fn rarp_frame(mac: &[u8; 6]) -> [u8; 60] {
    let mut f = [0u8; 60];
    f[..6].fill(0xff); // broadcast
    f[6..12].copy_from_slice(mac);
    f[12..14].copy_from_slice(&0x8035u16.to_be_bytes()); // RARP
    f[14..16].copy_from_slice(&1u16.to_be_bytes()); // Ethernet
    f[16..18].copy_from_slice(&0x0800u16.to_be_bytes()); // IPv4
    f[18] = 6;
    f[19] = 4;
    f[20..22].copy_from_slice(&3u16.to_be_bytes()); // reverse request
    f[22..28].copy_from_slice(mac);
    f[32..38].copy_from_slice(mac);
    f
}

fn announce(mac: &[u8; 6], io: &mut NetIo) {
    if let Some(b) = io.backend.as_mut() {
        if let Err(e) = b.send(&rarp_frame(mac)) {
            tracing::debug!("{}: announcing the restored guest: {e:?}", io.name);
        }
    }
}

/// "52:54:00:12:34:56"
pub fn format_mac(mac: &[u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

impl VirtioDevice for VirtioNet {
    fn device_type(&self) -> u32 {
        VIRTIO_ID_NET
    }
    fn queue_max_sizes(&self) -> &[u16] {
        &[QUEUE_SIZE, QUEUE_SIZE]
    }
    fn features(&self) -> u64 {
        VIRTIO_NET_F_MAC | VIRTIO_NET_F_MRG_RXBUF | VIRTIO_NET_F_STATUS | VIRTIO_RING_F_EVENT_IDX
    }
    fn read_config(&self, offset: u64, data: &mut [u8]) {
        let mut c = [0u8; CONFIG_LEN];
        c[..6].copy_from_slice(&self.mac);
        c[6..8].copy_from_slice(&self.status.load(Ordering::Relaxed).to_le_bytes());
        c[8..10].copy_from_slice(&1u16.to_le_bytes());
        read_config_bytes(&c, offset, data);
    }
    fn activate(&mut self, mem: Memory, features: u64, queues: Vec<ActiveQueue>) -> io::Result<()> {
        let mut it = queues.into_iter();
        let (Some(rx), Some(tx)) = (it.next(), it.next()) else {
            return Err(io::Error::other(
                "virtio-net needs a receive and a transmit queue",
            ));
        };
        self.take_back_backend();
        let io = NetIo::new(
            rx,
            tx,
            mem,
            self.backend.take(),
            features & VIRTIO_NET_F_MRG_RXBUF != 0,
            self.status.clone(),
            self.name.clone(),
        );
        self.worker = Some(NetWorker::spawn(io)?);
        Ok(())
    }
    fn reset(&mut self) {
        self.take_back_backend();
    }
    fn pause(&mut self) -> io::Result<Vec<SavedQueue>> {
        if let Some(w) = self.worker.take() {
            let io = w
                .stop()
                .ok_or_else(|| io::Error::other("the network thread had failed"))?;
            self.paused = Some(Box::new(io));
        }
        Ok(self
            .paused
            .as_ref()
            .map(|io| vec![SavedQueue::of(&io.rx.queue), SavedQueue::of(&io.tx.queue)])
            .unwrap_or_default())
    }
    fn resume(&mut self) -> io::Result<()> {
        if let Some(mut io) = self.paused.take() {
            if std::mem::take(&mut self.announce) {
                announce(&self.mac, &mut io);
            }
            self.worker = Some(NetWorker::spawn(*io)?);
        }
        Ok(())
    }
    fn restored(&mut self) {
        self.announce = true;
    }
    fn pci_class(&self) -> u32 {
        0x020000
    }
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_event_idx;
