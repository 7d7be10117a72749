//! The virtio-pci transport's state for a snapshot: what the driver set
//! (features, status, queue setup, MSI-X table, where the BAR decodes),
//! the PCI configuration space, and each queue's positions taken from the
//! paused device. A restore builds the device as at boot, then takes all of
//! it back, starts the device on the saved queues and holds it paused until
//! the monitor resumes the VM.

use super::{MsixEntry, QueueConfig, VirtioPciDevice};
use crate::pci::BarMove;
use crate::virtio::SavedQueue;
use serde::{Deserialize, Serialize};
use std::io;

/// Everything [`VirtioPciDevice::save`] records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VirtioPciState {
    pub device_type: u32,
    pub config_space: Vec<u8>,
    pub device_feature_select: u32,
    pub driver_feature_select: u32,
    pub driver_features: u64,
    pub status: u8,
    pub config_generation: u8,
    pub queue_select: u16,
    pub msix_config_vector: u16,
    /// Per queue: size, enabled, vector, ring addresses (as the driver set
    /// them through the common configuration).
    pub queues: Vec<SavedQueueConfig>,
    /// Per vector: address, data, masked.
    pub msix: Vec<(u64, u32, bool)>,
    pub bar_addr: u64,
    pub decoded: Option<u64>,
    pub activated: bool,
    /// The device's queues with their positions (empty when not activated).
    pub running_queues: Vec<SavedQueue>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedQueueConfig {
    pub size: u16,
    pub enabled: bool,
    pub vector: u16,
    pub desc: u64,
    pub avail: u64,
    pub used: u64,
}

fn bad(what: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.into())
}

impl VirtioPciDevice {
    /// Pause the device (no guest memory touched until [`Self::resume`])
    /// and record the transport's state with the queues' positions.
    pub fn save(&mut self) -> io::Result<VirtioPciState> {
        let running_queues = if self.activated {
            self.device.pause()?
        } else {
            Vec::new()
        };
        Ok(VirtioPciState {
            device_type: self.device.device_type(),
            config_space: self.config.bytes().to_vec(),
            device_feature_select: self.device_feature_select,
            driver_feature_select: self.driver_feature_select,
            driver_features: self.driver_features,
            status: self.status,
            config_generation: self.config_generation,
            queue_select: self.queue_select,
            msix_config_vector: self.msix_config_vector,
            queues: self
                .queues
                .iter()
                .map(|q| SavedQueueConfig {
                    size: q.size,
                    enabled: q.enabled,
                    vector: q.vector,
                    desc: q.desc,
                    avail: q.avail,
                    used: q.used,
                })
                .collect(),
            msix: self
                .msix
                .iter()
                .map(|m| (m.address, m.data, m.masked))
                .collect(),
            bar_addr: self.bar_addr,
            decoded: self.decoded,
            activated: self.activated,
            running_queues,
        })
    }

    /// Serve again after [`Self::save`] or [`Self::restore`].
    pub fn resume(&mut self) -> io::Result<()> {
        if self.activated {
            self.device.resume()?;
        }
        Ok(())
    }

    /// Take a saved state back on a device built as at boot (same kind,
    /// same queues): the driver's setup, the MSI-X routes, the device
    /// started on the saved queues and left paused. Returns the BAR's move
    /// from where it was built to where the snapshot had it decode, for the
    /// caller to remap. Nothing is applied when the state does not fit.
    pub fn restore(&mut self, s: &VirtioPciState) -> io::Result<Option<BarMove>> {
        if s.device_type != self.device.device_type() {
            return Err(bad(format!(
                "saved virtio device type {} is not this device's {}",
                s.device_type,
                self.device.device_type()
            )));
        }
        if s.queues.len() != self.queues.len() || s.msix.len() != self.msix.len() {
            return Err(bad("the saved queue or MSI-X vector count differs"));
        }
        if s.activated && s.running_queues.len() != self.queues.len() {
            return Err(bad("an activated device without its queues' positions"));
        }
        for (q, saved) in self.queues.iter().zip(&s.queues) {
            if saved.size > q.max {
                return Err(bad(format!(
                    "saved queue size {} above {}",
                    saved.size, q.max
                )));
            }
        }
        self.config.restore_bytes(&s.config_space).map_err(bad)?;
        self.device_feature_select = s.device_feature_select;
        self.driver_feature_select = s.driver_feature_select;
        self.driver_features = s.driver_features;
        self.status = s.status;
        self.config_generation = s.config_generation;
        self.queue_select = s.queue_select;
        self.msix_config_vector = s.msix_config_vector;
        for (q, saved) in self.queues.iter_mut().zip(&s.queues) {
            *q = QueueConfig {
                size: saved.size,
                max: q.max,
                enabled: saved.enabled,
                vector: saved.vector,
                desc: saved.desc,
                avail: saved.avail,
                used: saved.used,
            };
        }
        for (m, &(address, data, masked)) in self.msix.iter_mut().zip(&s.msix) {
            *m = MsixEntry {
                address,
                data,
                masked,
            };
        }
        self.update_routes();
        if s.activated {
            self.activate_with(&s.running_queues)?;
            self.activated = true;
            self.device.pause()?;
            self.device.restored();
        }
        let built_at = self.decoded;
        self.bar_addr = s.bar_addr;
        self.decoded = s.decoded;
        Ok((built_at != s.decoded).then_some(BarMove {
            index: 0,
            from: built_at,
            to: s.decoded,
            size: super::BAR_SIZE,
        }))
    }
}
