//! QEMU's firmware configuration device (fw_cfg), as SeaBIOS and OVMF
//! expect it on a PC: a 16-bit selector at I/O port 0x510, a byte-wide data
//! port at 0x511 and the DMA address register at 0x514 (big-endian, high
//! half at 0x514, low half at 0x518; writing the low half starts a
//! transfer).
//!
//! An item is a key and its bytes. Keys below 0x20 are fixed ones
//! (signature, interface ID, RAM size, CPU count, the file directory);
//! named items ("files": `etc/e820`, `bootorder`, `etc/acpi/tables`, …) get
//! keys from 0x20 on and are listed in the directory at key 0x19. Reads
//! past an item's end give zeros. Writes to items are not supported: the
//! data port ignores them and a DMA write sets the error bit, which is what
//! QEMU does for a read-only item.
//!
//! Reference: QEMU's `docs/specs/fw_cfg.rst` (selector and data registers,
//! the file directory layout, the DMA access structure and its control
//! bits).

use crate::bus::BusDevice;
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

/// First I/O port of the device (selector); data at +1, DMA at +4.
pub const FW_CFG_BASE: u64 = 0x510;
/// Selector (2), data (1), a gap, DMA address (8).
pub const FW_CFG_LEN: u64 = 0x0c;

const SELECTOR: u64 = 0;
const DATA: u64 = 1;
const DMA_HIGH: u64 = 4;
const DMA_LOW: u64 = 8;

/// Fixed keys (fw_cfg.rst, "Selector Register"; QEMU's fw_cfg_keys.h).
pub mod keys {
    pub const SIGNATURE: u16 = 0x0000;
    pub const ID: u16 = 0x0001;
    pub const RAM_SIZE: u16 = 0x0003;
    pub const NOGRAPHIC: u16 = 0x0004;
    pub const NB_CPUS: u16 = 0x0005;
    pub const MAX_CPUS: u16 = 0x000f;
    pub const FILE_DIR: u16 = 0x0019;
    pub const FILE_FIRST: u16 = 0x0020;
}

/// The interface ID's feature bits: the port interface, and DMA.
const ID_TRADITIONAL: u32 = 1;
const ID_DMA: u32 = 2;
/// What the DMA register reads as: "QEMU CFG", big-endian.
const DMA_SIGNATURE: u64 = 0x5145_4d55_2043_4647;
/// DMA control bits.
const DMA_ERROR: u32 = 0x01;
const DMA_READ: u32 = 0x02;
const DMA_SKIP: u32 = 0x04;
const DMA_SELECT: u32 = 0x08;
const DMA_WRITE: u32 = 0x10;
/// A file name in the directory is at most 55 bytes plus a NUL.
pub const MAX_NAME: usize = 55;
/// One DMA request moves at most this much (a hostile length is clamped, so
/// a bad guest cannot make the monitor allocate or loop without bound).
const DMA_CHUNK: usize = 64 * 1024;

/// Why an item cannot be added.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FwCfgError {
    #[error("fw_cfg file name {0:?} is empty or longer than 55 bytes")]
    BadName(String),
    #[error("fw_cfg already has a file named {0:?}")]
    Duplicate(String),
    #[error("fw_cfg has no room for more files")]
    Full,
}

struct File {
    name: String,
    key: u16,
}

/// The fw_cfg device.
pub struct FwCfg {
    items: std::collections::BTreeMap<u16, Vec<u8>>,
    files: Vec<File>,
    selected: u16,
    offset: usize,
    dma_high: u32,
    memory: Option<GuestMemoryMmap<()>>,
}

impl FwCfg {
    /// A device with the signature, the interface ID and an empty file
    /// directory. With `memory`, the DMA interface is offered.
    pub fn new(memory: Option<GuestMemoryMmap<()>>) -> Self {
        let mut dev = FwCfg {
            items: Default::default(),
            files: Vec::new(),
            selected: 0,
            offset: 0,
            dma_high: 0,
            memory,
        };
        let id = ID_TRADITIONAL | if dev.memory.is_some() { ID_DMA } else { 0 };
        dev.items.insert(keys::SIGNATURE, b"QEMU".to_vec());
        dev.items.insert(keys::ID, id.to_le_bytes().to_vec());
        dev.rebuild_directory();
        dev
    }

    /// Set a fixed item (e.g. [`keys::RAM_SIZE`] as 8 little-endian bytes).
    pub fn set_item(&mut self, key: u16, data: Vec<u8>) {
        self.items.insert(key, data);
    }

    /// The usual fixed items: RAM size, CPU count, no graphics.
    pub fn set_machine(&mut self, ram_bytes: u64, cpus: u16) {
        self.set_item(keys::RAM_SIZE, ram_bytes.to_le_bytes().to_vec());
        self.set_item(keys::NB_CPUS, cpus.to_le_bytes().to_vec());
        self.set_item(keys::MAX_CPUS, cpus.to_le_bytes().to_vec());
        self.set_item(keys::NOGRAPHIC, 1u16.to_le_bytes().to_vec());
    }

    /// Add a named item; returns its key.
    pub fn add_file(&mut self, name: &str, data: Vec<u8>) -> Result<u16, FwCfgError> {
        if name.is_empty() || name.len() > MAX_NAME || name.contains('\0') {
            return Err(FwCfgError::BadName(name.to_string()));
        }
        if self.files.iter().any(|f| f.name == name) {
            return Err(FwCfgError::Duplicate(name.to_string()));
        }
        let key = u16::try_from(self.files.len())
            .ok()
            .and_then(|n| keys::FILE_FIRST.checked_add(n))
            .filter(|k| *k < 0x4000) // below the write/arch-local flag bits
            .ok_or(FwCfgError::Full)?;
        self.files.push(File {
            name: name.to_string(),
            key,
        });
        self.items.insert(key, data);
        self.rebuild_directory();
        Ok(key)
    }

    /// The names of the files, in the order they were added.
    pub fn file_names(&self) -> Vec<String> {
        self.files.iter().map(|f| f.name.clone()).collect()
    }

    /// The directory (key 0x19): a big-endian count, then per file its size
    /// (be32), key (be16), two reserved bytes and a NUL-padded 56-byte name,
    /// sorted by name as QEMU sorts it.
    fn rebuild_directory(&mut self) {
        let mut files: Vec<&File> = self.files.iter().collect();
        files.sort_by(|a, b| a.name.cmp(&b.name));
        let mut dir = (files.len() as u32).to_be_bytes().to_vec();
        for f in files {
            let size = self.items.get(&f.key).map_or(0, Vec::len) as u32;
            dir.extend_from_slice(&size.to_be_bytes());
            dir.extend_from_slice(&f.key.to_be_bytes());
            dir.extend_from_slice(&[0, 0]);
            let mut name = [0u8; MAX_NAME + 1];
            name[..f.name.len()].copy_from_slice(f.name.as_bytes());
            dir.extend_from_slice(&name);
        }
        self.items.insert(keys::FILE_DIR, dir);
    }

    fn select(&mut self, key: u16) {
        self.selected = key;
        self.offset = 0;
    }

    /// The next byte of the selected item (0 past its end or for no item).
    fn next_byte(&mut self) -> u8 {
        let b = self
            .items
            .get(&self.selected)
            .and_then(|d| d.get(self.offset))
            .copied()
            .unwrap_or(0);
        self.offset = self.offset.saturating_add(1);
        b
    }

    /// Fill `buf` from the selected item at the current offset (zeros past
    /// its end) and move the offset on.
    fn copy_out(&mut self, buf: &mut [u8]) {
        let item = self
            .items
            .get(&self.selected)
            .map_or(&[][..], Vec::as_slice);
        let avail = item.get(self.offset..).unwrap_or(&[]);
        let n = avail.len().min(buf.len());
        buf[..n].copy_from_slice(&avail[..n]);
        buf[n..].fill(0);
        self.offset = self.offset.saturating_add(buf.len());
    }

    /// Run the DMA request whose descriptor is at guest address `at`, then
    /// write its status back into the descriptor's control field.
    fn dma(&mut self, at: u64) {
        let Some(mem) = self.memory.clone() else {
            return;
        };
        let mut desc = [0u8; 16];
        if mem.read_slice(&mut desc, GuestAddress(at)).is_err() {
            return; // nowhere to report the error
        }
        let control = u32::from_be_bytes(desc[0..4].try_into().unwrap_or_default());
        let length = u32::from_be_bytes(desc[4..8].try_into().unwrap_or_default());
        let address = u64::from_be_bytes(desc[8..16].try_into().unwrap_or_default());
        let status = self.dma_transfer(&mem, control, length, address);
        let _ = mem.write_slice(&status.to_be_bytes(), GuestAddress(at));
    }

    /// One DMA request: select, then read, skip or (refused) write.
    fn dma_transfer(
        &mut self,
        mem: &GuestMemoryMmap<()>,
        control: u32,
        length: u32,
        address: u64,
    ) -> u32 {
        if control & DMA_SELECT != 0 {
            self.select((control >> 16) as u16);
        }
        if control & DMA_WRITE != 0 {
            return DMA_ERROR;
        }
        if control & (DMA_READ | DMA_SKIP) == 0 {
            return 0;
        }
        let length = u64::from(length);
        if control & DMA_READ == 0 {
            // Skip: move the offset without touching memory.
            self.offset = self.offset.saturating_add(length as usize);
            return 0;
        }
        let mut done: u64 = 0;
        let mut chunk = vec![0u8; DMA_CHUNK.min(length as usize)];
        while done < length {
            let n = chunk.len().min((length - done) as usize);
            self.copy_out(&mut chunk[..n]);
            let Some(dst) = address.checked_add(done) else {
                return DMA_ERROR;
            };
            if mem.write_slice(&chunk[..n], GuestAddress(dst)).is_err() {
                return DMA_ERROR;
            }
            done += n as u64;
        }
        0
    }
}

impl BusDevice for FwCfg {
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        match offset {
            DATA => {
                for b in data.iter_mut() {
                    *b = self.next_byte();
                }
            }
            DMA_HIGH..=0x0b if self.memory.is_some() => {
                let sig = DMA_SIGNATURE.to_be_bytes();
                for (i, b) in data.iter_mut().enumerate() {
                    *b = sig
                        .get((offset - DMA_HIGH) as usize + i)
                        .copied()
                        .unwrap_or(0);
                }
            }
            _ => data.fill(0),
        }
    }

    fn write(&mut self, offset: u64, data: &[u8]) {
        match (offset, data.len()) {
            (SELECTOR, 2) => self.select(u16::from_le_bytes([data[0], data[1]])),
            // A byte write to the selector sets its low half (some firmware
            // probes that way); QEMU's port is 16-bit.
            (SELECTOR, 1) => self.select(u16::from(data[0])),
            (DMA_HIGH, 4) => {
                self.dma_high = u32::from_be_bytes([data[0], data[1], data[2], data[3]])
            }
            (DMA_LOW, 4) => {
                let low = u32::from_be_bytes([data[0], data[1], data[2], data[3]]);
                let at = u64::from(self.dma_high) << 32 | u64::from(low);
                self.dma_high = 0;
                self.dma(at);
            }
            (DMA_HIGH, 8) => {
                let at = u64::from_be_bytes(data.try_into().unwrap_or_default());
                self.dma(at);
            }
            // Writes to the data port: items are read-only.
            _ => {}
        }
    }
}

/// One entry of the `etc/e820` file: address, length, type (1 RAM,
/// 2 reserved), little-endian and packed, 20 bytes.
pub fn e820_file(entries: &[(u64, u64, u32)]) -> Vec<u8> {
    let mut out = Vec::with_capacity(entries.len() * 20);
    for &(addr, len, kind) in entries {
        out.extend_from_slice(&addr.to_le_bytes());
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&kind.to_le_bytes());
    }
    out
}

#[cfg(test)]
#[path = "fw_cfg_tests.rs"]
mod tests;
