//! virtio-scsi (virtio 1.x, device ID 8) with one CD-ROM logical unit at
//! target 0, LUN 0: the transport for the OVF environment ISO and the
//! package's own CD-ROM images, so the guest sees `/dev/sr0`.
//!
//! Queues: 0 control (task management answered "complete": every command
//! finishes before the next is taken, so nothing is ever left to abort),
//! 1 event (no hot-plug offered, so its buffers are just kept), 2 the one
//! request queue. The SCSI commands themselves are [`cdrom`]'s pure
//! function; this file only frames them. Other targets get BAD_TARGET,
//! other LUNs of target 0 "logical unit not supported".

pub mod cdrom;
mod cdrom_pages;

use super::runner::Runner;
use super::worker::{drain_queue, QueueHandler};
use super::{read_config_bytes, ActiveQueue, Memory, VirtioDevice, VIRTIO_RING_F_EVENT_IDX};
use block_source::BlockSource;
use cdrom::{absent_lun, Cdrom, Outcome};
use std::io::{self, Read, Write};
use std::sync::Arc;
use virtio_queue::DescriptorChain;

pub const VIRTIO_ID_SCSI: u32 = 8;

pub const VIRTIO_SCSI_S_OK: u8 = 0;
pub const VIRTIO_SCSI_S_OVERRUN: u8 = 1;
pub const VIRTIO_SCSI_S_BAD_TARGET: u8 = 3;
pub const VIRTIO_SCSI_S_FAILURE: u8 = 9;
pub const VIRTIO_SCSI_S_FUNCTION_COMPLETE: u8 = 0;
pub const VIRTIO_SCSI_T_TMF: u32 = 0;
pub const VIRTIO_SCSI_T_AN_QUERY: u32 = 1;
pub const VIRTIO_SCSI_T_AN_SUBSCRIBE: u32 = 2;

const QUEUE_SIZE: u16 = 128;
const QUEUES: [u16; 3] = [QUEUE_SIZE; 3];
pub const CONTROL_QUEUE: usize = 0;
pub const EVENT_QUEUE: usize = 1;
pub const REQUEST_QUEUE: usize = 2;
/// Default and largest CDB and sense sizes (the driver may lower them).
pub const CDB_SIZE: u32 = 32;
pub const SENSE_SIZE: u32 = 96;
const MAX_CDB_SIZE: u32 = 256;
const MAX_SENSE_SIZE: u32 = 256;
/// lun[8], id, task_attr, prio, crn before the CDB.
const REQ_HEADER: usize = 19;
/// sense_len, resid, status_qualifier, status, response before the sense.
const RESP_HEADER: usize = 12;
const CONFIG_LEN: usize = 36;
const SENSE_SIZE_OFF: usize = 20;
const CDB_SIZE_OFF: usize = 24;

/// The request-serving half, owned by the I/O thread.
pub struct ScsiHandler {
    unit: Cdrom,
    cdb_size: usize,
    sense_size: usize,
}

/// Which logical unit a request's 8-byte LUN field names.
#[derive(Debug, PartialEq, Eq)]
enum Address {
    Cdrom,
    AbsentLun,
    BadTarget,
}

fn address(lun: &[u8]) -> Address {
    if lun[0] != 1 || lun[1] != 0 {
        return Address::BadTarget;
    }
    let unit = (u16::from(lun[2] & 0x3f) << 8) | u16::from(lun[3]);
    if unit == 0 {
        Address::Cdrom
    } else {
        Address::AbsentLun
    }
}

impl ScsiHandler {
    pub fn new(unit: Cdrom, cdb_size: u32, sense_size: u32) -> Self {
        ScsiHandler {
            unit,
            cdb_size: cdb_size.min(MAX_CDB_SIZE) as usize,
            sense_size: sense_size.min(MAX_SENSE_SIZE) as usize,
        }
    }

    /// Serve one command; returns the used length.
    pub fn handle_request(&mut self, chain: DescriptorChain<&Memory>, mem: &Memory) -> u32 {
        let Ok(mut reader) = chain.clone().reader(mem) else {
            return 0;
        };
        let Ok(mut resp_w) = chain.writer(mem) else {
            return 0;
        };
        let resp_len = RESP_HEADER + self.sense_size;
        if resp_w.available_bytes() < resp_len {
            tracing::debug!("virtio-scsi: request without room for the response");
            return 0;
        }
        let Ok(mut data_w) = resp_w.split_at(resp_len) else {
            return 0;
        };
        let data_in = data_w.available_bytes();
        let mut req = vec![0u8; REQ_HEADER + self.cdb_size];
        let (response, outcome) = if reader.read_exact(&mut req).is_err() {
            (VIRTIO_SCSI_S_FAILURE, None)
        } else {
            let cdb = &req[REQ_HEADER..];
            match address(&req[..8]) {
                Address::BadTarget => (VIRTIO_SCSI_S_BAD_TARGET, None),
                Address::AbsentLun => (VIRTIO_SCSI_S_OK, Some(absent_lun(cdb))),
                Address::Cdrom => (VIRTIO_SCSI_S_OK, Some(self.unit.execute(cdb))),
            }
        };
        let outcome = outcome.unwrap_or(Outcome::good(Vec::new()));
        let n = outcome.data.len().min(data_in);
        let written = if data_w.write_all(&outcome.data[..n]).is_ok() {
            n
        } else {
            0
        };
        let response = if response == VIRTIO_SCSI_S_OK && outcome.data.len() > data_in {
            VIRTIO_SCSI_S_OVERRUN
        } else {
            response
        };
        let resp = self.response(&outcome, (data_in - written) as u32, response);
        if resp_w.write_all(&resp).is_err() {
            return 0;
        }
        (resp_len + written) as u32
    }

    /// The virtio_scsi_cmd_resp structure with `sense_size` sense bytes.
    fn response(&self, o: &Outcome, resid: u32, response: u8) -> Vec<u8> {
        let sense_len = o.sense.len().min(self.sense_size);
        let mut r = vec![0u8; RESP_HEADER + self.sense_size];
        r[0..4].copy_from_slice(&(sense_len as u32).to_le_bytes());
        r[4..8].copy_from_slice(&resid.to_le_bytes());
        r[10] = o.status;
        r[11] = response;
        r[RESP_HEADER..RESP_HEADER + sense_len].copy_from_slice(&o.sense[..sense_len]);
        r
    }

    /// Serve one control request; returns the used length.
    pub fn handle_control(&mut self, chain: DescriptorChain<&Memory>, mem: &Memory) -> u32 {
        let Ok(mut reader) = chain.clone().reader(mem) else {
            return 0;
        };
        let Ok(mut writer) = chain.writer(mem) else {
            return 0;
        };
        let mut kind = [0u8; 4];
        if reader.read_exact(&mut kind).is_err() {
            return 0;
        }
        let resp: &[u8] = match u32::from_le_bytes(kind) {
            VIRTIO_SCSI_T_TMF => &[VIRTIO_SCSI_S_FUNCTION_COMPLETE],
            // no asynchronous notifications: event_actual 0
            VIRTIO_SCSI_T_AN_QUERY | VIRTIO_SCSI_T_AN_SUBSCRIBE => &[0, 0, 0, 0, VIRTIO_SCSI_S_OK],
            other => {
                tracing::debug!("virtio-scsi: unknown control request {other}");
                return 0;
            }
        };
        let n = resp.len().min(writer.available_bytes());
        match writer.write_all(&resp[..n]) {
            Ok(()) => n as u32,
            Err(_) => 0,
        }
    }
}

impl QueueHandler for ScsiHandler {
    fn process(&mut self, index: usize, aq: &mut ActiveQueue, mem: &Memory) -> io::Result<()> {
        match index {
            CONTROL_QUEUE => drain_queue(aq, mem, |chain| self.handle_control(chain, mem)),
            REQUEST_QUEUE => drain_queue(aq, mem, |chain| self.handle_request(chain, mem)),
            // event buffers wait for events that never come (no hot-plug)
            _ => Ok(()),
        }
    }
}

/// The controller as the transport sees it.
pub struct VirtioScsi {
    medium: Arc<dyn BlockSource>,
    serial: String,
    config: Vec<u8>,
    runner: Runner<ScsiHandler>,
}

fn config_u32(config: &[u8], offset: usize) -> u32 {
    u32::from_le_bytes(config[offset..offset + 4].try_into().unwrap_or([0; 4]))
}

impl VirtioScsi {
    /// A controller whose CD-ROM holds `medium` (read-only whatever the
    /// source says: nothing here writes); `serial` is its VPD serial.
    pub fn new(medium: Arc<dyn BlockSource>, serial: String) -> Self {
        let mut config = vec![0u8; CONFIG_LEN];
        let mut put = |off: usize, v: u32| config[off..off + 4].copy_from_slice(&v.to_le_bytes());
        put(0, 1); // num_queues (request queues)
        put(4, u32::from(QUEUE_SIZE) - 2); // seg_max
        put(8, (cdrom::MAX_READ_BLOCKS * cdrom::BLOCK / 512) as u32); // max_sectors
        put(12, 64); // cmd_per_lun
        put(16, 16); // event_info_size
        put(SENSE_SIZE_OFF, SENSE_SIZE);
        put(CDB_SIZE_OFF, CDB_SIZE);
        // max_channel, max_target (u16 each) and max_lun stay 0
        VirtioScsi {
            medium,
            serial,
            config,
            runner: Runner::Idle,
        }
    }
}

impl VirtioDevice for VirtioScsi {
    fn device_type(&self) -> u32 {
        VIRTIO_ID_SCSI
    }
    fn queue_max_sizes(&self) -> &[u16] {
        &QUEUES
    }
    fn features(&self) -> u64 {
        VIRTIO_RING_F_EVENT_IDX
    }
    fn read_config(&self, offset: u64, data: &mut [u8]) {
        read_config_bytes(&self.config, offset, data);
    }
    /// The driver may set sense_size and cdb_size; the rest is read-only.
    fn write_config(&mut self, offset: u64, data: &[u8]) {
        for (i, b) in data.iter().enumerate() {
            let Some(o) = usize::try_from(offset).ok().and_then(|o| o.checked_add(i)) else {
                return;
            };
            if (SENSE_SIZE_OFF..CDB_SIZE_OFF + 4).contains(&o) {
                self.config[o] = *b;
            }
        }
    }
    fn activate(
        &mut self,
        mem: Memory,
        _features: u64,
        queues: Vec<ActiveQueue>,
    ) -> io::Result<()> {
        let unit = Cdrom::new(self.medium.clone(), &self.serial);
        let handler = ScsiHandler::new(
            unit,
            config_u32(&self.config, CDB_SIZE_OFF),
            config_u32(&self.config, SENSE_SIZE_OFF),
        );
        self.runner.start("virtio-scsi", handler, queues, mem)?;
        Ok(())
    }
    fn reset(&mut self) {
        self.runner.reset();
    }
    fn pause(&mut self) -> io::Result<Vec<super::SavedQueue>> {
        self.runner.pause()
    }
    fn resume(&mut self) -> io::Result<()> {
        self.runner.resume("virtio-scsi")
    }
    fn pci_class(&self) -> u32 {
        0x010000 // mass storage, SCSI
    }
}

#[cfg(test)]
mod tests;
