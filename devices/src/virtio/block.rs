//! virtio-blk over a [`BlockSource`]: read, write, flush, get-id.
//!
//! Every request is checked against the disk size and the chain's shape;
//! a malformed chain fails that request (IOERR, or a zero-length used entry
//! when there is not even a status byte), never the monitor.

use super::runner::Runner;
use super::worker::{drain_queue, QueueHandler};
use super::{
    read_config_bytes, ActiveQueue, Memory, VirtioDevice, VIRTIO_ID_BLOCK, VIRTIO_RING_F_EVENT_IDX,
};
use block_source::BlockSource;
use std::io::{self, Read, Write};
use std::sync::Arc;
use virtio_queue::DescriptorChain;

pub const SECTOR_SIZE: u64 = 512;
const VIRTIO_BLK_F_SEG_MAX: u64 = 1 << 2;
const VIRTIO_BLK_F_RO: u64 = 1 << 5;
const VIRTIO_BLK_F_BLK_SIZE: u64 = 1 << 6;
const VIRTIO_BLK_F_FLUSH: u64 = 1 << 9;

pub const VIRTIO_BLK_T_IN: u32 = 0;
pub const VIRTIO_BLK_T_OUT: u32 = 1;
pub const VIRTIO_BLK_T_FLUSH: u32 = 4;
pub const VIRTIO_BLK_T_GET_ID: u32 = 8;

pub const VIRTIO_BLK_S_OK: u8 = 0;
pub const VIRTIO_BLK_S_IOERR: u8 = 1;
pub const VIRTIO_BLK_S_UNSUPP: u8 = 2;

/// Length of the id string returned by GET_ID.
const ID_BYTES: usize = 20;
/// Bytes moved per backend call, bounding the buffer a request can make
/// us allocate.
const CHUNK: usize = 128 * 1024;
const QUEUE_SIZE: u16 = 256;
const SEG_MAX: u32 = (QUEUE_SIZE - 2) as u32;

/// The request-serving half, owned by the I/O thread.
pub struct BlockHandler {
    source: Arc<dyn BlockSource>,
    read_only: bool,
    id: [u8; ID_BYTES],
}

impl BlockHandler {
    pub fn new(source: Arc<dyn BlockSource>, read_only: bool, id: &str) -> Self {
        let mut idb = [0u8; ID_BYTES];
        let n = id.len().min(ID_BYTES);
        idb[..n].copy_from_slice(&id.as_bytes()[..n]);
        let read_only = read_only || source.is_read_only();
        BlockHandler {
            source,
            read_only,
            id: idb,
        }
    }

    /// Serve one request; returns the number of bytes written into the
    /// chain (the used length).
    pub fn handle(&self, chain: DescriptorChain<&Memory>, mem: &Memory) -> u32 {
        let Ok(mut reader) = chain.clone().reader(mem) else {
            return 0;
        };
        let Ok(mut writer) = chain.writer(mem) else {
            return 0;
        };
        let writable = writer.available_bytes();
        if writable == 0 {
            tracing::debug!("virtio-blk: request without a status byte");
            return 0;
        }
        let Ok(mut status_w) = writer.split_at(writable - 1) else {
            return 0;
        };
        let mut hdr = [0u8; 16];
        let (status, data_len) = if reader.read_exact(&mut hdr).is_err() {
            (VIRTIO_BLK_S_IOERR, 0)
        } else {
            let kind = u32::from_le_bytes(hdr[0..4].try_into().unwrap());
            let sector = u64::from_le_bytes(hdr[8..16].try_into().unwrap());
            self.execute(kind, sector, &mut reader, &mut writer)
        };
        if status_w.write_all(&[status]).is_err() {
            return 0;
        }
        (data_len + 1) as u32
    }

    fn execute(
        &self,
        kind: u32,
        sector: u64,
        reader: &mut virtio_queue::Reader<'_>,
        writer: &mut virtio_queue::Writer<'_>,
    ) -> (u8, usize) {
        let offset = sector.checked_mul(SECTOR_SIZE);
        match kind {
            VIRTIO_BLK_T_IN => {
                let len = writer.available_bytes();
                let Some(offset) = offset.filter(|o| in_range(self.source.capacity(), *o, len))
                else {
                    return (VIRTIO_BLK_S_IOERR, 0);
                };
                let mut buf = vec![0u8; len.min(CHUNK)];
                let mut done = 0;
                while done < len {
                    let n = (len - done).min(CHUNK);
                    if let Err(e) = self.source.read_at(&mut buf[..n], offset + done as u64) {
                        tracing::warn!("virtio-blk: read at {}: {e}", offset + done as u64);
                        return (VIRTIO_BLK_S_IOERR, done);
                    }
                    if writer.write_all(&buf[..n]).is_err() {
                        return (VIRTIO_BLK_S_IOERR, done);
                    }
                    done += n;
                }
                (VIRTIO_BLK_S_OK, done)
            }
            VIRTIO_BLK_T_OUT => {
                if self.read_only {
                    return (VIRTIO_BLK_S_IOERR, 0);
                }
                let len = reader.available_bytes();
                let Some(offset) = offset.filter(|o| in_range(self.source.capacity(), *o, len))
                else {
                    return (VIRTIO_BLK_S_IOERR, 0);
                };
                let mut buf = vec![0u8; len.min(CHUNK)];
                let mut done = 0;
                while done < len {
                    let n = (len - done).min(CHUNK);
                    if reader.read_exact(&mut buf[..n]).is_err() {
                        return (VIRTIO_BLK_S_IOERR, 0);
                    }
                    if let Err(e) = self.source.write_at(&buf[..n], offset + done as u64) {
                        tracing::warn!("virtio-blk: write at {}: {e}", offset + done as u64);
                        return (VIRTIO_BLK_S_IOERR, 0);
                    }
                    done += n;
                }
                (VIRTIO_BLK_S_OK, 0)
            }
            VIRTIO_BLK_T_FLUSH => match self.source.flush() {
                Ok(()) => (VIRTIO_BLK_S_OK, 0),
                Err(e) => {
                    tracing::warn!("virtio-blk: flush: {e}");
                    (VIRTIO_BLK_S_IOERR, 0)
                }
            },
            VIRTIO_BLK_T_GET_ID => {
                let n = writer.available_bytes().min(ID_BYTES);
                match writer.write_all(&self.id[..n]) {
                    Ok(()) => (VIRTIO_BLK_S_OK, n),
                    Err(_) => (VIRTIO_BLK_S_IOERR, 0),
                }
            }
            _ => (VIRTIO_BLK_S_UNSUPP, 0),
        }
    }
}

fn in_range(capacity: u64, offset: u64, len: usize) -> bool {
    offset
        .checked_add(len as u64)
        .is_some_and(|end| end <= capacity)
}

impl QueueHandler for BlockHandler {
    fn process(&mut self, _index: usize, aq: &mut ActiveQueue, mem: &Memory) -> io::Result<()> {
        drain_queue(aq, mem, |chain| self.handle(chain, mem))
    }
}

/// The device as the transport sees it.
pub struct VirtioBlock {
    source: Arc<dyn BlockSource>,
    read_only: bool,
    id: String,
    config: Vec<u8>,
    runner: Runner<BlockHandler>,
}

impl VirtioBlock {
    pub fn new(source: Arc<dyn BlockSource>, read_only: bool, id: String) -> Self {
        let read_only = read_only || source.is_read_only();
        let mut config = vec![0u8; 24];
        config[0..8].copy_from_slice(&(source.capacity() / SECTOR_SIZE).to_le_bytes());
        config[12..16].copy_from_slice(&SEG_MAX.to_le_bytes());
        config[20..24].copy_from_slice(&(SECTOR_SIZE as u32).to_le_bytes());
        VirtioBlock {
            source,
            read_only,
            id,
            config,
            runner: Runner::Idle,
        }
    }
}

impl VirtioDevice for VirtioBlock {
    fn device_type(&self) -> u32 {
        VIRTIO_ID_BLOCK
    }
    fn queue_max_sizes(&self) -> &[u16] {
        &[QUEUE_SIZE]
    }
    fn features(&self) -> u64 {
        let mut f = VIRTIO_BLK_F_FLUSH
            | VIRTIO_BLK_F_SEG_MAX
            | VIRTIO_BLK_F_BLK_SIZE
            | VIRTIO_RING_F_EVENT_IDX;
        if self.read_only {
            f |= VIRTIO_BLK_F_RO;
        }
        f
    }
    fn read_config(&self, offset: u64, data: &mut [u8]) {
        read_config_bytes(&self.config, offset, data);
    }
    fn activate(
        &mut self,
        mem: Memory,
        _features: u64,
        queues: Vec<ActiveQueue>,
    ) -> io::Result<()> {
        let handler = BlockHandler::new(self.source.clone(), self.read_only, &self.id);
        self.runner.start("virtio-blk", handler, queues, mem)?;
        Ok(())
    }
    fn reset(&mut self) {
        self.runner.reset();
    }
    fn pause(&mut self) -> io::Result<Vec<super::SavedQueue>> {
        self.runner.pause()
    }
    fn resume(&mut self) -> io::Result<()> {
        self.runner.resume("virtio-blk")
    }
    fn pci_class(&self) -> u32 {
        0x018000
    }
}

#[cfg(test)]
mod tests;
