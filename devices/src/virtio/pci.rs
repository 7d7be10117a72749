//! The virtio-pci modern transport (virtio 1.x, section 4.1).
//!
//! One 64-bit memory BAR holds the common configuration, ISR, device
//! configuration, queue notification and MSI-X table/PBA regions; vendor
//! capabilities in config space point at them. Notifications are meant to
//! be caught by KVM ioeventfds on the notify addresses (the monitor
//! registers [`VirtioPciDevice::notify_events`]); a write that still
//! reaches us is forwarded to the same eventfd. Interrupts are MSI-X only:
//! every vector has an eventfd wired as an irqfd to a GSI whose route
//! follows the guest's table entry.

use super::{
    ActiveQueue, Memory, Signal, VirtioDevice, VIRTIO_F_VERSION_1, VIRTIO_RING_F_EVENT_IDX,
};
use crate::bus::BusDevice;
use crate::interrupt::{MsiMessage, MsiRouter};
use crate::pci::{BarMove, ConfigSpace, PciDevice, PciId};
use std::io;
use std::sync::Arc;
use virtio_queue::{Queue, QueueT};
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

pub const BAR_SIZE: u64 = 0x1_0000;
const COMMON_OFFSET: u64 = 0x0000;
const COMMON_LEN: u64 = 0x40;
const ISR_OFFSET: u64 = 0x1000;
const DEVICE_OFFSET: u64 = 0x2000;
const DEVICE_LEN: u64 = 0x1000;
const NOTIFY_OFFSET: u64 = 0x3000;
const NOTIFY_LEN: u64 = 0x1000;
const NOTIFY_MULTIPLIER: u32 = 4;
const MSIX_TABLE_OFFSET: u64 = 0x4000;
const MSIX_PBA_OFFSET: u64 = 0x5000;

const CAP_VENDOR: u8 = 0x09;
const CAP_MSIX: u8 = 0x11;
const CFG_COMMON: u8 = 1;
const CFG_NOTIFY: u8 = 2;
const CFG_ISR: u8 = 3;
const CFG_DEVICE: u8 = 4;

const STATUS_DRIVER_OK: u8 = 4;
const STATUS_FEATURES_OK: u8 = 8;
const STATUS_NEEDS_RESET: u8 = 0x40;
pub const NO_VECTOR: u16 = 0xffff;

mod state;
pub use state::VirtioPciState;

#[derive(Clone, Copy, Default)]
struct QueueConfig {
    size: u16,
    max: u16,
    enabled: bool,
    vector: u16,
    desc: u64,
    avail: u64,
    used: u64,
}

#[derive(Clone, Copy, Default)]
struct MsixEntry {
    address: u64,
    data: u32,
    masked: bool,
}

/// Raises one MSI-X vector.
struct VectorSignal {
    evt: Option<EventFd>,
}

impl Signal for VectorSignal {
    fn signal(&self) -> io::Result<()> {
        match &self.evt {
            Some(e) => e.write(1),
            None => Ok(()),
        }
    }
}

pub struct VirtioPciDevice {
    config: ConfigSpace,
    msix_cap: usize,
    device: Box<dyn VirtioDevice>,
    mem: Memory,
    router: Arc<dyn MsiRouter>,
    device_feature_select: u32,
    driver_feature_select: u32,
    driver_features: u64,
    status: u8,
    config_generation: u8,
    queue_select: u16,
    queues: Vec<QueueConfig>,
    msix_config_vector: u16,
    notify: Vec<EventFd>,
    msix: Vec<MsixEntry>,
    vector_evts: Vec<EventFd>,
    vector_gsis: Vec<u32>,
    bar_addr: u64,
    /// Where the MMIO bus maps the BAR now (the VMM maps it at `bar_addr`
    /// to begin with, and moves it when the guest reprograms it).
    decoded: Option<u64>,
    activated: bool,
}

fn le(data: &[u8]) -> u64 {
    let mut b = [0u8; 8];
    let n = data.len().min(8);
    b[..n].copy_from_slice(&data[..n]);
    u64::from_le_bytes(b)
}

fn put(data: &mut [u8], v: u64) {
    let b = v.to_le_bytes();
    for (i, d) in data.iter_mut().enumerate() {
        *d = b.get(i).copied().unwrap_or(0);
    }
}

fn vendor_cap(cfg_type: u8, offset: u64, len: u64, extra: Option<u32>) -> Vec<u8> {
    let cap_len = if extra.is_some() { 20u8 } else { 16 };
    let mut body = vec![cap_len, cfg_type, 0, 0, 0, 0];
    body.extend_from_slice(&(offset as u32).to_le_bytes());
    body.extend_from_slice(&(len as u32).to_le_bytes());
    if let Some(x) = extra {
        body.extend_from_slice(&x.to_le_bytes());
    }
    body
}

impl VirtioPciDevice {
    /// Wrap `device`, with its BAR at `bar_addr` (64 KiB, aligned).
    pub fn new(
        device: Box<dyn VirtioDevice>,
        mem: Memory,
        router: Arc<dyn MsiRouter>,
        bar_addr: u64,
    ) -> io::Result<Self> {
        let dtype = device.device_type();
        let mut config = ConfigSpace::new(PciId {
            vendor: 0x1af4,
            device: 0x1040 + dtype as u16,
            class: device.pci_class(),
            revision: 1,
            subsystem_vendor: 0x1af4,
            subsystem: 0x40,
        });
        config.add_bar64(0, bar_addr, BAR_SIZE);
        config.add_capability(
            CAP_VENDOR,
            &vendor_cap(CFG_COMMON, COMMON_OFFSET, COMMON_LEN, None),
            &[],
        );
        config.add_capability(
            CAP_VENDOR,
            &vendor_cap(
                CFG_NOTIFY,
                NOTIFY_OFFSET,
                NOTIFY_LEN,
                Some(NOTIFY_MULTIPLIER),
            ),
            &[],
        );
        config.add_capability(CAP_VENDOR, &vendor_cap(CFG_ISR, ISR_OFFSET, 4, None), &[]);
        config.add_capability(
            CAP_VENDOR,
            &vendor_cap(CFG_DEVICE, DEVICE_OFFSET, DEVICE_LEN, None),
            &[],
        );
        let nq = device.queue_max_sizes().len();
        let vectors = nq + 1;
        let mut msix_body = Vec::new();
        msix_body.extend_from_slice(&((vectors - 1) as u16).to_le_bytes());
        msix_body.extend_from_slice(&(MSIX_TABLE_OFFSET as u32).to_le_bytes());
        msix_body.extend_from_slice(&(MSIX_PBA_OFFSET as u32).to_le_bytes());
        let msix_cap = config.add_capability(CAP_MSIX, &msix_body, &[0, 0xc0]);

        let mut vector_evts = Vec::with_capacity(vectors);
        let mut vector_gsis = Vec::with_capacity(vectors);
        for _ in 0..vectors {
            let e = EventFd::new(EFD_NONBLOCK)?;
            vector_gsis.push(router.allocate(&e)?);
            vector_evts.push(e);
        }
        let queues = device
            .queue_max_sizes()
            .iter()
            .map(|&max| QueueConfig {
                size: max,
                max,
                vector: NO_VECTOR,
                ..Default::default()
            })
            .collect();
        let notify = (0..nq)
            .map(|_| EventFd::new(EFD_NONBLOCK))
            .collect::<io::Result<Vec<_>>>()?;
        Ok(VirtioPciDevice {
            config,
            msix_cap,
            device,
            mem,
            router,
            device_feature_select: 0,
            driver_feature_select: 0,
            driver_features: 0,
            status: 0,
            config_generation: 0,
            queue_select: 0,
            queues,
            msix_config_vector: NO_VECTOR,
            notify,
            msix: vec![
                MsixEntry {
                    masked: true,
                    ..Default::default()
                };
                vectors
            ],
            vector_evts,
            vector_gsis,
            bar_addr,
            decoded: Some(bar_addr),
            activated: false,
        })
    }

    /// The guest address of each queue's notification and its eventfd, for
    /// KVM_IOEVENTFD.
    pub fn notify_events(&self) -> Vec<(u64, &EventFd)> {
        self.notify_events_at(self.bar_addr)
    }

    /// [`Self::notify_events`] for the BAR at `base` (where it was before a
    /// move, to unregister them).
    pub fn notify_events_at(&self, base: u64) -> Vec<(u64, &EventFd)> {
        self.notify
            .iter()
            .enumerate()
            .map(|(i, e)| {
                (
                    base + NOTIFY_OFFSET + i as u64 * NOTIFY_MULTIPLIER as u64,
                    e,
                )
            })
            .collect()
    }

    pub fn bar_addr(&self) -> u64 {
        self.bar_addr
    }

    fn offered_features(&self) -> u64 {
        self.device.features() | VIRTIO_F_VERSION_1
    }

    fn msix_control(&self) -> u16 {
        let b = self.config.bytes();
        u16::from_le_bytes([b[self.msix_cap + 2], b[self.msix_cap + 3]])
    }

    /// Push every vector's route to KVM.
    fn update_routes(&self) {
        let ctl = self.msix_control();
        let enabled = ctl & 0x8000 != 0 && ctl & 0x4000 == 0;
        for (i, e) in self.msix.iter().enumerate() {
            let msg = (enabled && !e.masked).then_some(MsiMessage {
                address: e.address,
                data: e.data,
            });
            if let Err(err) = self.router.route(self.vector_gsis[i], msg) {
                tracing::warn!("MSI-X vector {i}: {err}");
            }
        }
    }

    fn selected(&mut self) -> Option<&mut QueueConfig> {
        self.queues.get_mut(self.queue_select as usize)
    }

    fn reset(&mut self) {
        self.device.reset();
        self.activated = false;
        self.status = 0;
        self.driver_features = 0;
        self.msix_config_vector = NO_VECTOR;
        for q in &mut self.queues {
            *q = QueueConfig {
                size: q.max,
                max: q.max,
                vector: NO_VECTOR,
                ..Default::default()
            };
        }
    }

    fn activate(&mut self) -> io::Result<()> {
        self.activate_with(&[])
    }

    /// Activate with the queues as the driver set them up; `saved`, when
    /// given (a restore), holds each queue's state with its positions.
    fn activate_with(&mut self, saved: &[super::SavedQueue]) -> io::Result<()> {
        let features = self.driver_features & self.offered_features();
        let event_idx = features & VIRTIO_RING_F_EVENT_IDX != 0;
        let mut active = Vec::new();
        for (i, qc) in self.queues.iter().enumerate() {
            let mut q = Queue::new(qc.max).map_err(|e| io::Error::other(format!("{e:?}")))?;
            if let Some(s) = saved.get(i) {
                q = s
                    .queue()
                    .map_err(|e| io::Error::other(format!("saved queue {i}: {e:?}")))?;
                if q.ready() && !q.is_valid(&self.mem) {
                    return Err(io::Error::other(format!(
                        "saved queue {i}: its rings are not in guest memory"
                    )));
                }
            } else if qc.enabled {
                q.set_size(qc.size);
                q.set_desc_table_address(Some(qc.desc as u32), Some((qc.desc >> 32) as u32));
                q.set_avail_ring_address(Some(qc.avail as u32), Some((qc.avail >> 32) as u32));
                q.set_used_ring_address(Some(qc.used as u32), Some((qc.used >> 32) as u32));
                q.set_ready(true);
                q.set_event_idx(event_idx);
                if !q.is_valid(&self.mem) {
                    return Err(io::Error::other(format!(
                        "queue {i} has an invalid size or ring addresses"
                    )));
                }
            }
            let evt = self
                .vector_evts
                .get(qc.vector as usize)
                .map(|e| e.try_clone())
                .transpose()?;
            active.push(ActiveQueue {
                queue: q,
                notify: self.notify[i].try_clone()?,
                interrupt: Arc::new(VectorSignal { evt }),
            });
        }
        self.device.activate(self.mem.clone(), features, active)
    }

    fn write_status(&mut self, v: u8) {
        if v == 0 {
            self.reset();
            return;
        }
        let mut v = v;
        if v & STATUS_FEATURES_OK != 0
            && self.status & STATUS_FEATURES_OK == 0
            && (self.driver_features & !self.offered_features() != 0
                || self.driver_features & VIRTIO_F_VERSION_1 == 0)
        {
            // Features the device did not offer, or a legacy driver.
            v &= !STATUS_FEATURES_OK;
        }
        if v & STATUS_DRIVER_OK != 0 && !self.activated {
            if let Err(e) = self.activate() {
                tracing::warn!(
                    "virtio device {}: cannot start: {e}",
                    self.device.device_type()
                );
                v |= STATUS_NEEDS_RESET;
            } else {
                self.activated = true;
            }
        }
        self.status = v;
    }

    fn common_read(&mut self, off: u64, data: &mut [u8]) {
        let v: u64 = match off {
            0x00 => self.device_feature_select as u64,
            0x04 => match self.device_feature_select {
                0 => self.offered_features() & 0xffff_ffff,
                1 => self.offered_features() >> 32,
                _ => 0,
            },
            0x08 => self.driver_feature_select as u64,
            0x0c => match self.driver_feature_select {
                0 => self.driver_features & 0xffff_ffff,
                1 => self.driver_features >> 32,
                _ => 0,
            },
            0x10 => self.msix_config_vector as u64,
            0x12 => self.queues.len() as u64,
            0x14 => self.status as u64,
            0x15 => self.config_generation as u64,
            0x16 => self.queue_select as u64,
            _ => {
                let Some(q) = self.selected().copied() else {
                    put(data, 0);
                    return;
                };
                match off {
                    0x18 => q.size as u64,
                    0x1a => q.vector as u64,
                    0x1c => q.enabled as u64,
                    0x1e => self.queue_select as u64,
                    0x20 => q.desc,
                    0x24 => q.desc >> 32,
                    0x28 => q.avail,
                    0x2c => q.avail >> 32,
                    0x30 => q.used,
                    0x34 => q.used >> 32,
                    _ => 0,
                }
            }
        };
        put(data, v);
    }

    fn common_write(&mut self, off: u64, data: &[u8]) {
        let v = le(data);
        let set_lo = |old: u64, v: u64| (old & !0xffff_ffff) | (v & 0xffff_ffff);
        let set_hi = |old: u64, v: u64| (old & 0xffff_ffff) | (v << 32);
        let nvec = self.msix.len() as u64;
        let vector_ok = |v: u64| if v < nvec { v as u16 } else { NO_VECTOR };
        match off {
            0x00 => self.device_feature_select = v as u32,
            0x08 => self.driver_feature_select = v as u32,
            0x0c => {
                if self.status & STATUS_FEATURES_OK == 0 {
                    match self.driver_feature_select {
                        0 => self.driver_features = set_lo(self.driver_features, v),
                        1 => self.driver_features = set_hi(self.driver_features, v),
                        _ => {}
                    }
                }
            }
            0x10 => self.msix_config_vector = vector_ok(v),
            0x14 => self.write_status(v as u8),
            0x16 => self.queue_select = v as u16,
            _ => {
                if self.activated {
                    return;
                }
                let Some(q) = self.selected() else { return };
                match off {
                    0x18 => {
                        let s = v as u16;
                        // Sizes must be powers of two no larger than the maximum.
                        if s.is_power_of_two() && s <= q.max {
                            q.size = s;
                        }
                    }
                    0x1a => q.vector = vector_ok(v),
                    0x1c => q.enabled = v & 1 == 1,
                    0x20 => q.desc = set_lo(q.desc, v),
                    0x24 => q.desc = set_hi(q.desc, v),
                    0x28 => q.avail = set_lo(q.avail, v),
                    0x2c => q.avail = set_hi(q.avail, v),
                    0x30 => q.used = set_lo(q.used, v),
                    0x34 => q.used = set_hi(q.used, v),
                    _ => {}
                }
            }
        }
    }

    fn msix_read(&self, off: u64, data: &mut [u8]) {
        let idx = (off / 16) as usize;
        let Some(e) = self.msix.get(idx) else {
            put(data, 0);
            return;
        };
        let v = match off % 16 {
            0 => e.address & 0xffff_ffff,
            4 => e.address >> 32,
            8 => e.data as u64,
            12 => e.masked as u64,
            _ => 0,
        };
        put(data, v);
    }

    fn msix_write(&mut self, off: u64, data: &[u8]) {
        let idx = (off / 16) as usize;
        let v = le(data);
        let Some(e) = self.msix.get_mut(idx) else {
            return;
        };
        match (off % 16, data.len()) {
            (0, 8) => e.address = v,
            (0, _) => e.address = (e.address & !0xffff_ffff) | (v & 0xffff_ffff),
            (4, _) => e.address = (e.address & 0xffff_ffff) | (v << 32),
            (8, 8) => {
                e.data = v as u32;
                e.masked = (v >> 32) & 1 == 1;
            }
            (8, _) => e.data = v as u32,
            (12, _) => e.masked = v & 1 == 1,
            _ => return,
        }
        self.update_routes();
    }
}

impl PciDevice for VirtioPciDevice {
    fn config_read(&mut self, reg: usize) -> u32 {
        self.config.read_dword(reg)
    }

    fn config_write(&mut self, offset: usize, data: &[u8]) {
        self.config.write(offset, data);
        let cap = self.msix_cap;
        if offset < cap + 4 && offset + data.len() > cap + 2 {
            self.update_routes();
        }
    }

    fn take_bar_move(&mut self) -> Option<BarMove> {
        let mv = self.config.moved_bar(&[self.decoded])?;
        self.decoded = mv.to;
        if let Some(to) = mv.to {
            self.bar_addr = to;
        }
        Some(mv)
    }
}

impl BusDevice for VirtioPciDevice {
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        match offset {
            o if o < COMMON_OFFSET + COMMON_LEN => self.common_read(o - COMMON_OFFSET, data),
            o if (ISR_OFFSET..ISR_OFFSET + 4).contains(&o) => {
                // With MSI-X the ISR is unused; it reads as no interrupt.
                put(data, 0);
            }
            o if (DEVICE_OFFSET..DEVICE_OFFSET + DEVICE_LEN).contains(&o) => {
                self.device.read_config(o - DEVICE_OFFSET, data)
            }
            o if (MSIX_TABLE_OFFSET..MSIX_PBA_OFFSET).contains(&o) => {
                self.msix_read(o - MSIX_TABLE_OFFSET, data)
            }
            _ => put(data, 0),
        }
    }

    fn write(&mut self, offset: u64, data: &[u8]) {
        match offset {
            o if o < COMMON_OFFSET + COMMON_LEN => self.common_write(o - COMMON_OFFSET, data),
            o if (DEVICE_OFFSET..DEVICE_OFFSET + DEVICE_LEN).contains(&o) => {
                self.device.write_config(o - DEVICE_OFFSET, data)
            }
            o if (NOTIFY_OFFSET..NOTIFY_OFFSET + NOTIFY_LEN).contains(&o) => {
                let q = ((o - NOTIFY_OFFSET) / NOTIFY_MULTIPLIER as u64) as usize;
                if let Some(e) = self.notify.get(q) {
                    let _ = e.write(1);
                }
            }
            o if (MSIX_TABLE_OFFSET..MSIX_PBA_OFFSET).contains(&o) => {
                self.msix_write(o - MSIX_TABLE_OFFSET, data)
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests;
